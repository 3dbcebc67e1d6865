package migrate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlb "go.universe.tf/metallb/api/v1beta1"
	mlb2 "go.universe.tf/metallb/api/v1beta2"
)

// Scheme knows MetalLB's kinds.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := errors.Join(mlb.AddToScheme(s), mlb2.AddToScheme(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// Decode adds the MetalLB objects of r (YAML or JSON documents, Lists too) to in, and
// returns a Gap for each document of another kind.
func Decode(r io.Reader, in *Input) ([]Gap, error) {
	s, err := Scheme()
	if err != nil {
		return nil, err
	}
	dec := serializer.NewCodecFactory(s).UniversalDeserializer()
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var gaps []Gap
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return gaps, nil
		}
		if err != nil {
			return gaps, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		g, err := decodeDoc(dec, doc, in)
		if err != nil {
			return gaps, err
		}
		gaps = append(gaps, g...)
	}
}

func decodeDoc(dec runtime.Decoder, doc []byte, in *Input) ([]Gap, error) {
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta      `json:"metadata"`
		Items           []runtime.RawExtension `json:"items"`
	}
	if err := utilyaml.Unmarshal(doc, &head); err != nil {
		return nil, fmt.Errorf("reading a document: %w", err)
	}
	if head.Kind == "" && len(head.Items) == 0 && head.APIVersion == "" {
		return nil, nil // comments only
	}
	if head.Kind == "List" || (head.APIVersion == "v1" && len(head.Items) > 0) {
		var gaps []Gap
		for _, item := range head.Items {
			g, err := decodeDoc(dec, item.Raw, in)
			if err != nil {
				return gaps, err
			}
			gaps = append(gaps, g...)
		}
		return gaps, nil
	}
	obj, gvk, err := dec.Decode(doc, nil, nil)
	if err != nil {
		if runtime.IsNotRegisteredError(err) {
			return []Gap{{Kind: head.Kind, Name: head.Metadata.Name, Dropped: true, Reason: head.APIVersion + " " + head.Kind + " is not a MetalLB kind this reads"}}, nil
		}
		return nil, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	switch o := obj.(type) {
	case *mlb.IPAddressPool:
		in.Pools = append(in.Pools, *o)
	case *mlb.L2Advertisement:
		in.L2 = append(in.L2, *o)
	case *mlb.BGPAdvertisement:
		in.BGP = append(in.BGP, *o)
	case *mlb.Community:
		in.Communities = append(in.Communities, *o)
	case *mlb.BFDProfile:
		in.BFDProfiles = append(in.BFDProfiles, *o)
	case *mlb2.BGPPeer:
		in.Peers = append(in.Peers, *o)
	case *mlb.BGPPeer:
		var p mlb2.BGPPeer
		if err := o.ConvertTo(&p); err != nil {
			return nil, fmt.Errorf("BGPPeer %s (v1beta1): %w", o.Name, err)
		}
		in.Peers = append(in.Peers, p)
	default:
		return []Gap{{Kind: gvk.Kind, Name: head.Metadata.Name, Dropped: true, Reason: "not converted: " + gvk.Kind + " has no vipcast equivalent"}}, nil
	}
	return nil, nil
}

// Read lists MetalLB's objects in namespace ns. A kind whose CRD is not installed reads as
// none.
func Read(ctx context.Context, c client.Reader, ns string) (Input, error) {
	var (
		in          Input
		pools       mlb.IPAddressPoolList
		l2          mlb.L2AdvertisementList
		bgp         mlb.BGPAdvertisementList
		peers       mlb2.BGPPeerList
		communities mlb.CommunityList
		bfd         mlb.BFDProfileList
	)
	for _, l := range []client.ObjectList{&pools, &l2, &bgp, &peers, &communities, &bfd} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil && !meta.IsNoMatchError(err) {
			return in, fmt.Errorf("listing MetalLB's %T: %w", l, err)
		}
	}
	in.Pools, in.L2, in.BGP, in.Peers, in.Communities, in.BFDProfiles = pools.Items, l2.Items, bgp.Items, peers.Items, communities.Items, bfd.Items
	return in, nil
}
