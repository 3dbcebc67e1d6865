package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SpeakerStatus is written by the speaker of one node (the object is named after the node):
// what it announces and how, and which speakers it sees alive. The controller reads them all
// into each Service's Announced condition. The speaker writes it on change, at most once a
// second.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=spkst,categories=vipcast
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Announced",type=integer,JSONPath=`.status.announcedCount`
// +kubebuilder:printcolumn:name="Members",type=string,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Sessions",type=string,JSONPath=`.status.sessions[*].state`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Conflicts",type=string,JSONPath=`.status.conflicts[*].ip`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SpeakerStatus struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Status SpeakerReport `json:"status,omitzero"`
}

// AnnouncementMode is how an address is announced.
// +kubebuilder:validation:Enum=L2;BGP
type AnnouncementMode string

// Announcement modes.
const (
	ModeL2  AnnouncementMode = "L2"
	ModeBGP AnnouncementMode = "BGP"
)

// AnnouncedSet is the addresses a speaker announces one way: in one mode, on the same
// interfaces (L2) or to the same peers (BGP).
type AnnouncedSet struct {
	// Mode is L2 (ARP/NDP) or BGP.
	// +required
	Mode AnnouncementMode `json:"mode"`
	// Interfaces the node answers on (L2).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Interfaces []InterfaceName `json:"interfaces,omitempty"`
	// Peers are the BGPPeers whose established sessions carry the addresses (BGP; none: no
	// session is established, so no router hears them).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	Peers []string `json:"peers,omitempty"`
	// Count is the number of addresses in the set, for people and printing.
	// +required
	// +kubebuilder:validation:Minimum=1
	Count int32 `json:"count"`
	// Addresses are the set's addresses in vipcast's compact encoding (base64 in JSON; Go:
	// github.com/vipcast/vipcast/internal/addrset): a version byte, then for IPv4 and for
	// IPv6 a count and the sorted addresses as unsigned varints, the first address itself and
	// each next one as its difference from the one before minus one.
	// +required
	// +kubebuilder:validation:MaxLength=1048576
	Addresses []byte `json:"addresses"`
}

// SpeakerReport is what a speaker reports about itself.
type SpeakerReport struct {
	// Announced are the addresses this node announces now, one set for each distinct mode,
	// interfaces and peers, sorted by mode, then interfaces, then peers. An address announced
	// both ways is in two sets. Which Services hold an address is in their status, not here.
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	// +listType=atomic
	Announced []AnnouncedSet `json:"announced,omitempty"`
	// AnnouncedCount is the number of addresses announced (the sets' counts summed: an address
	// announced both ways counts twice), for printing.
	// +optional
	AnnouncedCount int32 `json:"announcedCount"`
	// Members are the nodes whose speakers this speaker sees alive, itself included.
	// +optional
	// +kubebuilder:validation:MaxItems=5000
	// +listType=set
	Members []string `json:"members,omitempty"`
	// Sessions are the node's BGP sessions.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=peer
	Sessions []BGPSessionStatus `json:"sessions,omitempty"`
	// Interfaces are the interfaces this node can answer ARP and NDP on (up, not excluded,
	// not enslaved), as the speaker also publishes them to the other speakers.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=name
	Interfaces []SpeakerInterface `json:"interfaces,omitempty"`
	// Conflicts are addresses this node announced that another MAC claimed too, seen in the
	// last 30 seconds (this node may have yielded the address since).
	// +optional
	// +kubebuilder:validation:MaxItems=1024
	// +listType=map
	// +listMapKey=ip
	Conflicts []AddressConflict `json:"conflicts,omitempty"`
	// Conditions: Ready (the speaker has joined its peers and applies its plan; False with
	// reason Joining until it has joined them) and Conflict (another MAC claims an address
	// this node announces).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SpeakerInterface is an interface a node can answer on.
type SpeakerInterface struct {
	// Name is the interface's name.
	// +required
	Name InterfaceName `json:"name"`
	// MAC is its Ethernet address.
	// +optional
	// +kubebuilder:validation:MaxLength=17
	MAC string `json:"mac,omitempty"`
	// Prefixes are the on-link prefixes of its addresses.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +listType=atomic
	Prefixes []string `json:"prefixes,omitempty"`
}

// AddressConflict is another MAC claiming an address this node announces over layer 2.
type AddressConflict struct {
	// IP is the address.
	// +required
	// +kubebuilder:validation:MaxLength=45
	IP string `json:"ip"`
	// MAC is the other claimant's Ethernet address.
	// +required
	// +kubebuilder:validation:MaxLength=17
	MAC string `json:"mac"`
	// Node is the node whose speaker has that MAC; empty for a device that is no speaker.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`
	// Since is when the claim was first seen.
	// +required
	Since metav1.Time `json:"since"`
}

// BGPSessionStatus is one BGP session of a node.
type BGPSessionStatus struct {
	// Peer is the BGPPeer's name.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Peer string `json:"peer"`
	// Address is the peer's address.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	Address string `json:"address,omitempty"`
	// State is the BGP state (Idle, Connect, Active, OpenSent, OpenConfirm, Established).
	// +optional
	// +kubebuilder:validation:MaxLength=16
	State string `json:"state,omitempty"`
	// BFD is the BFD session's state (Up, Down, Init, AdminDown); empty when BFD is off.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	BFD string `json:"bfd,omitempty"`
	// Advertised is the number of prefixes sent on the session.
	// +optional
	Advertised int32 `json:"advertised,omitempty"`
	// Reason is why the speaker cannot use the peer as written, CamelCase: SecretNotFound
	// (its password Secret cannot be read; the session, if any, runs on the last password
	// read) or InvalidPeer (the peer cannot be configured at all). Empty when all is well.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([A-Z][A-Za-z0-9]*)?$`
	Reason string `json:"reason,omitempty"`
	// Message says more about the reason, for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// SpeakerStatusList is a list of SpeakerStatuses.
// +kubebuilder:object:root=true
type SpeakerStatusList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []SpeakerStatus `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &SpeakerStatus{}, &SpeakerStatusList{})
}
