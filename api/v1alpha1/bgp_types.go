package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPPeer is a router the speakers of the selected nodes open a BGP session with.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgppeer,categories=vipcast
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="BFD",type=boolean,JSONPath=`.spec.bfd.enabled`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].reason`
// +kubebuilder:printcolumn:name="Established",type=integer,JSONPath=`.status.establishedNodes`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].message`,priority=1
type BGPPeer struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec BGPPeerSpec `json:"spec"`
	// +optional
	Status BGPPeerStatus `json:"status,omitzero"`
}

// BGPPeerSpec describes the session.
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultiHop) || !self.ebgpMultiHop || self.myASN != self.peerASN",message="ebgpMultiHop is for eBGP only: myASN equals peerASN, so this is an iBGP session"
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultiHop) || !self.ebgpMultiHop || !has(self.bfd) || !self.bfd.enabled",message="BFD is single-hop (RFC 5881): not with ebgpMultiHop"
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",message="sourceAddress and peerAddress must be of the same family"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !has(self.holdTime) || duration(self.holdTime) == duration('0s') || duration(self.keepaliveTime) < duration(self.holdTime)",message="keepaliveTime must be shorter than holdTime"
type BGPPeerSpec struct {
	// MyASN is the autonomous system the nodes speak for.
	// +required
	// +kubebuilder:validation:Minimum=1
	MyASN uint32 `json:"myASN"`
	// PeerASN is the router's autonomous system.
	// +required
	// +kubebuilder:validation:Minimum=1
	PeerASN uint32 `json:"peerASN"`
	// PeerAddress is the router's address (IPv4 or IPv6).
	// +required
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address"
	PeerAddress string `json:"peerAddress"`
	// PeerPort is the router's BGP port.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort int32 `json:"peerPort,omitempty"`
	// SourceAddress is the local address of the session (default: chosen by the node's routes).
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address"
	SourceAddress string `json:"sourceAddress,omitempty"`
	// HoldTime is the BGP hold time: 0 (no keepalives) or at least 3s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || duration(self) >= duration('3s')",message="holdTime must be 0s or at least 3s"
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`
	// KeepaliveTime is how often keepalives go out (default a third of holdTime).
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`
	// ConnectTime is how long to wait between connection attempts.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="connectTime must be at least 1s"
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`
	// RouterID overrides the BGP router ID (default: the node's IPv4 address).
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address"
	RouterID string `json:"routerID,omitempty"`
	// EBGPMultiHop allows an eBGP peer that is not directly connected.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`
	// NodeSelectors limit the nodes that peer with this router (any selector may match);
	// empty: every node.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(s, !has(s.matchExpressions) || s.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0))",message="in a label selector, operators In and NotIn need values, Exists and DoesNotExist take none"
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	// PasswordSecret names a Secret holding the TCP MD5 password; it is never logged.
	// +optional
	PasswordSecret *SecretKeyReference `json:"passwordSecret,omitempty"`
	// BFD detects a dead session in well under a second.
	// +optional
	BFD *BFDSettings `json:"bfd,omitempty"`
	// GracefulRestart keeps the router forwarding while a speaker restarts.
	// +optional
	GracefulRestart *GracefulRestartSettings `json:"gracefulRestart,omitempty"`
}

// SecretKeyReference points at one key of a Secret.
type SecretKeyReference struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Key in the Secret's data.
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// BFDSettings are the BFD session's timers, in milliseconds.
type BFDSettings struct {
	// +required
	Enabled bool `json:"enabled"`
	// ReceiveInterval is the slowest rate at which BFD packets are wanted.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	ReceiveInterval int32 `json:"receiveInterval,omitempty"`
	// TransmitInterval is the fastest rate at which BFD packets are sent.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	TransmitInterval int32 `json:"transmitInterval,omitempty"`
	// DetectMultiplier is how many packets may be missed before the session is down.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	DetectMultiplier int32 `json:"detectMultiplier,omitempty"`
}

// GracefulRestartSettings configure BGP graceful restart.
type GracefulRestartSettings struct {
	// +required
	Enabled bool `json:"enabled"`
	// RestartTime is how long the router keeps the routes of a restarting speaker.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('4095s')",message="restartTime must be between 1s and 4095s"
	RestartTime *metav1.Duration `json:"restartTime,omitempty"`
}

// BGPPeerStatus is written by the controller from the spec and the speakers' reports.
type BGPPeerStatus struct {
	// Conditions: Accepted (the peer is valid and the speakers can use it; False with the
	// reason when not).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// EstablishedNodes is the number of speakers whose session to this peer is Established.
	// +optional
	EstablishedNodes int32 `json:"establishedNodes"`
	// Nodes is the number of speakers that report a session to this peer, in any state.
	// +optional
	Nodes int32 `json:"nodes"`
}

// BGPPeerList is a list of BGPPeers.
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []BGPPeer `json:"items"`
}

// Community is a BGP community: standard "65000:100" (two 16-bit numbers) or large
// "large:1:2:3" (three 32-bit numbers).
// +kubebuilder:validation:MaxLength=40
// +kubebuilder:validation:Pattern=`^([0-9]{1,5}:[0-9]{1,5}|large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10})$`
// +kubebuilder:validation:XValidation:rule="self.startsWith('large:') ? self.split(':').all(p, p == 'large' || int(p) <= 4294967295) : self.split(':').all(p, int(p) <= 65535)",message="a standard community is two numbers up to 65535, a large one three numbers up to 4294967295"
type Community string

// BGPAdvertisement says which addresses are announced over BGP, how, to which peers and from
// which nodes. Every list left empty selects everything of its kind.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=vipcast
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].message`,priority=1
type BGPAdvertisement struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec BGPAdvertisementSpec `json:"spec,omitzero"`
	// +optional
	Status AdvertisementStatus `json:"status,omitzero"`
}

// BGPAdvertisementSpec selects addresses and sets the path attributes.
type BGPAdvertisementSpec struct {
	// IPAddressPools names the pools whose addresses are announced.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	IPAddressPools []string `json:"ipAddressPools,omitempty"`
	// IPAddressPoolSelectors select pools by label, in addition to those named.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(s, !has(s.matchExpressions) || s.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0))",message="in a label selector, operators In and NotIn need values, Exists and DoesNotExist take none"
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	// AggregationLength announces IPv4 addresses as prefixes of this length (default 32).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`
	// AggregationLengthV6 is the same for IPv6 (default 128).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`
	// LocalPref is the LOCAL_PREF attribute. It is sent on iBGP sessions only (myASN equals
	// peerASN); eBGP peers get the addresses without it.
	// +optional
	LocalPref *uint32 `json:"localPref,omitempty"`
	// Communities attached to the paths.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Communities []Community `json:"communities,omitempty"`
	// Peers names the BGPPeers to announce to; empty: all.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	Peers []string `json:"peers,omitempty"`
	// NodeSelectors limit the nodes that announce (any selector may match).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(s, !has(s.matchExpressions) || s.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0))",message="in a label selector, operators In and NotIn need values, Exists and DoesNotExist take none"
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	// ServiceSelectors limit the announcement to Services with matching labels.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(s, !has(s.matchExpressions) || s.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0))",message="in a label selector, operators In and NotIn need values, Exists and DoesNotExist take none"
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisements.
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []BGPAdvertisement `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &BGPPeer{}, &BGPPeerList{}, &BGPAdvertisement{}, &BGPAdvertisementList{})
}
