package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/pulumi/pulumi-go-provider/infer"
)

// Network is docker:index/network:Network (SDK network.py).
type Network struct{}

// NetworkArgs are its inputs.
type NetworkArgs struct {
	Name        *string             `pulumi:"name,optional"`
	Attachable  *bool               `pulumi:"attachable,optional"`
	Driver      *string             `pulumi:"driver,optional"`
	Ingress     *bool               `pulumi:"ingress,optional"`
	Internal    *bool               `pulumi:"internal,optional"`
	IpamConfigs []NetworkIpamConfig `pulumi:"ipamConfigs,optional"`
	IpamDriver  *string             `pulumi:"ipamDriver,optional"`
	IpamOptions map[string]string   `pulumi:"ipamOptions,optional"`
	Ipv6        *bool               `pulumi:"ipv6,optional"`
	Labels      []NetworkLabel      `pulumi:"labels,optional"`
	Options     map[string]string   `pulumi:"options,optional"`
}

// NetworkState is its state: the inputs (as read back) and the scope.
type NetworkState struct {
	NetworkArgs
	Scope string `pulumi:"scope"`
}

type NetworkIpamConfig struct {
	AuxAddress map[string]string `pulumi:"auxAddress,optional"`
	Gateway    *string           `pulumi:"gateway,optional"`
	IPRange    *string           `pulumi:"ipRange,optional"`
	Subnet     *string           `pulumi:"subnet,optional"`
}

type NetworkLabel struct {
	Label string `pulumi:"label"`
	Value string `pulumi:"value"`
}

func (n *Network) Annotate(a infer.Annotator) {
	a.SetToken("index/network", "Network")
	a.Describe(n, "A Docker network.")
}

func (c *NetworkIpamConfig) Annotate(a infer.Annotator) {
	a.SetToken("index/NetworkIpamConfig", "NetworkIpamConfig")
}

func (l *NetworkLabel) Annotate(a infer.Annotator) { a.SetToken("index/NetworkLabel", "NetworkLabel") }

func (a *NetworkArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Name, "The name of the Docker network.")
	an.Describe(&a.Driver, "The driver of the Docker network.")
	an.Describe(&a.IpamDriver, "Driver used by the custom IP scheme of the network.")
	an.SetDefault(&a.IpamDriver, "default")
}

func (s *NetworkState) Annotate(a infer.Annotator) {
	a.Describe(&s.Scope, "Scope of the network. One of `swarm`, `global`, or `local`.")
}

var labelSpec = &spec{set: true}

var networkSpec = resourceSpec{namedDBR: true, inputs: map[string]*spec{
	"name":        {},
	"attachable":  {},
	"driver":      {computed: true},
	"ingress":     {},
	"internal":    {computed: true},
	"ipamConfigs": {set: true, computed: true, fields: map[string]*spec{"auxAddress": {kv: true}}},
	"ipamDriver":  {},
	"ipamOptions": {kv: true},
	"ipv6":        {},
	"labels":      labelSpec,
	"options":     {kv: true, computed: true},
}}

func (Network) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[NetworkArgs], error) {
	args, failures, err := infer.DefaultCheck[NetworkArgs](ctx, req.NewInputs)
	if err == nil && len(failures) == 0 {
		args.Name = autoNameIfUnset(args.Name, req.Name, req.OldInputs, req.NewInputs)
	}
	return infer.CheckResponse[NetworkArgs]{Inputs: args, Failures: failures}, err
}

func (Network) Create(ctx context.Context, req infer.CreateRequest[NetworkArgs]) (infer.CreateResponse[NetworkState], error) {
	in := req.Inputs
	state := NetworkState{NetworkArgs: in}
	if req.DryRun {
		return infer.CreateResponse[NetworkState]{Output: state}, nil
	}
	c, err := docker(ctx)
	if err != nil {
		return infer.CreateResponse[NetworkState]{}, err
	}
	opts := network.CreateOptions{
		Driver:     str(in.Driver),
		Options:    in.Options,
		Internal:   flag(in.Internal, false),
		Attachable: flag(in.Attachable, false),
		Ingress:    flag(in.Ingress, false),
		Labels:     labelMap(in.Labels),
	}
	if flag(in.Ipv6, false) {
		opts.EnableIPv6 = ptr(true)
	}
	if in.IpamDriver != nil || len(in.IpamConfigs) > 0 || len(in.IpamOptions) > 0 {
		opts.IPAM = &network.IPAM{Driver: str(in.IpamDriver), Options: in.IpamOptions}
		for _, ic := range in.IpamConfigs {
			opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{
				Subnet: str(ic.Subnet), IPRange: str(ic.IPRange), Gateway: str(ic.Gateway), AuxAddress: ic.AuxAddress,
			})
		}
	}
	created, err := c.NetworkCreate(ctx, str(in.Name), opts)
	if err != nil {
		return infer.CreateResponse[NetworkState]{}, fmt.Errorf("creating network %s: %w", str(in.Name), err)
	}
	inspect, err := c.NetworkInspect(ctx, created.ID, network.InspectOptions{})
	if err != nil {
		return infer.CreateResponse[NetworkState]{}, fmt.Errorf("inspecting network %s: %w", str(in.Name), err)
	}
	readNetwork(&state, &inspect)
	return infer.CreateResponse[NetworkState]{ID: created.ID, Output: state}, nil
}

func (Network) Read(ctx context.Context, req infer.ReadRequest[NetworkArgs, NetworkState]) (infer.ReadResponse[NetworkArgs, NetworkState], error) {
	c, err := docker(ctx)
	if err != nil {
		return infer.ReadResponse[NetworkArgs, NetworkState]{}, err
	}
	inspect, err := c.NetworkInspect(ctx, req.ID, network.InspectOptions{})
	if isNotFound(err) {
		return infer.ReadResponse[NetworkArgs, NetworkState]{}, nil // gone: deleted
	}
	if err != nil {
		return infer.ReadResponse[NetworkArgs, NetworkState]{}, fmt.Errorf("inspecting network %s: %w", req.ID, err)
	}
	state := req.State
	readNetwork(&state, &inspect)
	return infer.ReadResponse[NetworkArgs, NetworkState]{
		ID: inspect.ID, Inputs: readInputs(req.Inputs, state.NetworkArgs, nil), State: state,
	}, nil
}

func (Network) Delete(ctx context.Context, req infer.DeleteRequest[NetworkState]) (infer.DeleteResponse, error) {
	c, err := docker(ctx)
	if err != nil {
		return infer.DeleteResponse{}, err
	}
	// Containers leaving the network may still be detaching: retry for a while (as upstream).
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = c.NetworkRemove(ctx, req.ID)
		if err == nil || isNotFound(err) {
			return infer.DeleteResponse{}, nil
		}
		if !strings.Contains(err.Error(), "has active endpoints") || time.Now().After(deadline) {
			return infer.DeleteResponse{}, fmt.Errorf("removing network %s: %w", str(req.State.Name), err)
		}
		select {
		case <-ctx.Done():
			return infer.DeleteResponse{}, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// readNetwork sets the state from `docker network inspect`: every input, and the scope.
func readNetwork(state *NetworkState, n *network.Inspect) {
	state.Name = ptr(n.Name)
	state.Driver = ptr(n.Driver)
	state.Internal = ptr(n.Internal)
	state.Attachable = ptr(n.Attachable)
	state.Ingress = ptr(n.Ingress)
	state.Ipv6 = ptr(n.EnableIPv6)
	state.IpamDriver = ptr(n.IPAM.Driver)
	state.IpamOptions = nonEmptyMap(n.IPAM.Options)
	state.Options = nonEmptyMap(n.Options)
	state.Scope = n.Scope
	labels := []NetworkLabel{}
	for _, k := range sortedKeys(n.Labels) {
		labels = append(labels, NetworkLabel{Label: k, Value: n.Labels[k]})
	}
	state.Labels = keepOrder(state.Labels, labels)
	configs := []NetworkIpamConfig{}
	for _, ic := range n.IPAM.Config {
		configs = append(configs, NetworkIpamConfig{
			Subnet: nonEmpty(ic.Subnet), Gateway: nonEmpty(ic.Gateway), IPRange: nonEmpty(ic.IPRange),
			AuxAddress: nonEmptyMap(ic.AuxAddress),
		})
	}
	state.IpamConfigs = keepOrder(state.IpamConfigs, configs)
}

func labelMap(labels []NetworkLabel) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, l := range labels {
		m[l.Label] = l.Value
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonEmptyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
