package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InterfaceName is a network interface name as the kernel accepts it.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=15
// +kubebuilder:validation:Pattern=`^[^\s/:]+$`
type InterfaceName string

// L2Advertisement says which addresses are announced over ARP (IPv4) and NDP (IPv6), from
// which nodes and on which interfaces. For each announced address exactly one eligible node
// answers, chosen by the speakers among themselves.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=l2adv,categories=vipcast
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].message`,priority=1
type L2Advertisement struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec L2AdvertisementSpec `json:"spec,omitzero"`
	// +optional
	Status AdvertisementStatus `json:"status,omitzero"`
}

// AdvertisementStatus is written by the controller.
type AdvertisementStatus struct {
	// Conditions: Accepted (the advertisement is valid and in effect as written; False with
	// the reason when not).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// L2AdvertisementSpec selects addresses, Services, nodes and interfaces. Every list left
// empty selects everything of its kind.
type L2AdvertisementSpec struct {
	// IPAddressPools names the pools whose addresses are announced. Empty, together with
	// ipAddressPoolSelectors, means every pool.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select pools by label (any selector may match), in addition to
	// those named.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(s, !has(s.matchExpressions) || s.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0))",message="in a label selector, operators In and NotIn need values, Exists and DoesNotExist take none"
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// ServiceSelectors limit the announcement to Services with matching labels.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(s, !has(s.matchExpressions) || s.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0))",message="in a label selector, operators In and NotIn need values, Exists and DoesNotExist take none"
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`

	// NodeSelectors limit the nodes that may announce (any selector may match).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(s, !has(s.matchExpressions) || s.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0))",message="in a label selector, operators In and NotIn need values, Exists and DoesNotExist take none"
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Interfaces the node answers on. Empty: the interface that holds the node's address of
	// the announced family.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Interfaces []InterfaceName `json:"interfaces,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisements.
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []L2Advertisement `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &L2Advertisement{}, &L2AdvertisementList{})
}
