package main

import (
	"context"
	"reflect"
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

func networkArgs() NetworkArgs {
	return NetworkArgs{
		Name:        ptr("kcdp-test"),
		Driver:      ptr("bridge"),
		IpamConfigs: []NetworkIpamConfig{{Subnet: ptr("172.31.250.0/24"), Gateway: ptr("172.31.250.1")}},
		Labels:      []NetworkLabel{{Label: "kcdp.test", Value: "yes"}},
	}
}

func checkedNetwork(t *testing.T, args NetworkArgs) NetworkArgs {
	t.Helper()
	resp, err := Network{}.Check(context.Background(), infer.CheckRequest{Name: "net", NewInputs: encode(t, args)})
	if err != nil || len(resp.Failures) > 0 {
		t.Fatalf("Check: %v %v", err, resp.Failures)
	}
	return resp.Inputs
}

func TestNetworkReadBackHasNoDiff(t *testing.T) {
	fixture := networkFixture(t)
	in := checkedNetwork(t, networkArgs())
	if str(in.IpamDriver) != "default" {
		t.Errorf("ipamDriver default: %q", str(in.IpamDriver))
	}
	state := NetworkState{NetworkArgs: in}
	readNetwork(&state, &fixture)
	if state.Scope != "local" || str(state.Driver) != "bridge" || flag(state.Internal, true) {
		t.Errorf("read-back: %+v", state)
	}
	if d := diffOf(t, networkToken, "net", in, state); d.HasChanges {
		t.Fatalf("diff right after create: %v", changed(d))
	}
	again := state
	readNetwork(&again, &fixture)
	if !reflect.DeepEqual(encode(t, again), encode(t, state)) {
		t.Error("a second read-back differs")
	}
	if got := readInputs(in, again.NetworkArgs, nil); !reflect.DeepEqual(encode(t, got), encode(t, in)) {
		t.Errorf("refreshed inputs differ:\n%v\n%v", encode(t, got), encode(t, in))
	}
}

func TestNetworkDiff(t *testing.T) {
	fixture := networkFixture(t)
	state := NetworkState{NetworkArgs: checkedNetwork(t, networkArgs())}
	readNetwork(&state, &fixture)

	in := checkedNetwork(t, networkArgs())
	in.IpamConfigs[0].Subnet = ptr("172.31.251.0/24")
	d := diffOf(t, networkToken, "net", in, state)
	if d.DetailedDiff["ipamConfigs"].Kind != p.UpdateReplace || !d.DeleteBeforeReplace {
		t.Errorf("subnet: %v dbr %v", d.DetailedDiff, d.DeleteBeforeReplace)
	}
	in = checkedNetwork(t, networkArgs())
	in.Labels = append(in.Labels, NetworkLabel{Label: "x", Value: "y"})
	if d := diffOf(t, networkToken, "net", in, state); d.DetailedDiff["labels"].Kind != p.UpdateReplace {
		t.Errorf("labels: %v", d.DetailedDiff)
	}
	in = checkedNetwork(t, networkArgs())
	in.Driver = nil // computed: left to Docker, no change
	if d := diffOf(t, networkToken, "net", in, state); d.HasChanges {
		t.Errorf("driver unset: %v", changed(d))
	}
}

func TestRemoteImageDiffAndDigest(t *testing.T) {
	state := RemoteImageState{RemoteImageArgs: RemoteImageArgs{Name: "kc/node:v1", KeepLocally: ptr(true), Platform: ptr("")},
		ImageID: "sha256:1"}
	in := state.RemoteImageArgs
	if d := diffOf(t, remoteImageToken, "img", in, state); d.HasChanges {
		t.Errorf("unchanged: %v", changed(d))
	}
	in.KeepLocally = ptr(false)
	if d := diffOf(t, remoteImageToken, "img", in, state); d.DetailedDiff["keepLocally"].Kind != p.Update {
		t.Errorf("keepLocally: %v", d.DetailedDiff)
	}
	in = state.RemoteImageArgs
	in.Name = "kc/node:v2"
	if d := diffOf(t, remoteImageToken, "img", in, state); d.DetailedDiff["name"].Kind != p.UpdateReplace || d.DeleteBeforeReplace {
		t.Errorf("name: %v dbr %v", d.DetailedDiff, d.DeleteBeforeReplace)
	}
	in = state.RemoteImageArgs
	in.PullTriggers = []string{"sha256:2"}
	if d := diffOf(t, remoteImageToken, "img", in, state); d.DetailedDiff["pullTriggers"].Kind != p.AddReplace {
		t.Errorf("pullTriggers: %v", d.DetailedDiff)
	}

	for _, tc := range []struct {
		name    string
		digests []string
		want    string
	}{
		{"kc/node:v1", nil, ""},
		{"kc/node:v1", []string{"x/y@sha256:1"}, "x/y@sha256:1"},
		{"nginx:1.19", []string{"127.0.0.1:15000/nginx@sha256:a", "nginx@sha256:b"}, "nginx@sha256:b"},
		{"127.0.0.1:15000/nginx:1", []string{"127.0.0.1:15000/nginx@sha256:a", "nginx@sha256:b"}, "127.0.0.1:15000/nginx@sha256:a"},
	} {
		if got := repoDigest(tc.name, tc.digests); got != tc.want {
			t.Errorf("repoDigest(%s, %v) = %q, want %q", tc.name, tc.digests, got, tc.want)
		}
	}
}

func TestRemoteImageBuildRefused(t *testing.T) {
	args := encode(t, RemoteImageArgs{Name: "x"})
	args = args.Set("build", property.New(map[string]property.Value{"context": property.New(".")}))
	resp, err := RemoteImage{}.Check(context.Background(), infer.CheckRequest{Name: "img", NewInputs: args})
	if err != nil || len(resp.Failures) != 1 || resp.Failures[0].Property != "build" {
		t.Errorf("build: %v %v", resp.Failures, err)
	}
}
