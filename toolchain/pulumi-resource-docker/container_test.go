package main

import (
	"context"
	"reflect"
	"slices"
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// nodeArgs are the inputs of a container made like components/targets/local.py's nodes (what the
// fixture testdata/container-inspect.json was made from), before Check.
func nodeArgs(image string) ContainerArgs {
	return ContainerArgs{
		Image:            image,
		Name:             ptr("kcdp-test-ctr"),
		Hostname:         ptr("kcdp-test-ctr"),
		Command:          []string{"sleep", "infinity"},
		NetworksAdvanced: []ContainerNetworksAdvanced{{Name: "kcdp-test", Ipv4Address: ptr("172.31.250.10")}},
		SecurityOpts:     []string{"seccomp=unconfined", "apparmor=unconfined"},
		Tmpfs:            map[string]string{"/tmp": "", "/run": ""},
		Volumes:          []ContainerVolume{{ContainerPath: ptr("/var/lib/kcdp")}},
		CgroupnsMode:     ptr("private"),
		Restart:          ptr("on-failure"),
		MaxRetryCount:    ptr(1),
		Init:             ptr(false),
		Tty:              ptr(true),
		Labels:           []ContainerLabel{{Label: "kcdp.cluster", Value: "test"}, {Label: "kcdp.role", Value: "a"}},
		Envs:             []string{"KCDP=1"},
		Ports:            []ContainerPort{{Internal: 8080, External: ptr(18080), IP: ptr("127.0.0.1"), Protocol: ptr("tcp")}},
	}
}

// checked runs Check (defaults, auto-naming) on typed inputs.
func checked(t *testing.T, args ContainerArgs) ContainerArgs {
	t.Helper()
	resp, err := Container{}.Check(context.Background(), infer.CheckRequest{Name: "ctr", NewInputs: encode(t, args)})
	if err != nil || len(resp.Failures) > 0 {
		t.Fatalf("Check: %v %v", err, resp.Failures)
	}
	return resp.Inputs
}

// created is the state Create stores for the fixture container made from `in`.
func created(t *testing.T, in ContainerArgs) ContainerState {
	fixture := inspectFixture(t)
	state := ContainerState{ContainerArgs: in}
	readContainer(&state, &fixture)
	return state
}

func TestCheckAppliesDefaults(t *testing.T) {
	in := checked(t, ContainerArgs{Image: "img", Ports: []ContainerPort{{Internal: 80}}})
	if !flag(in.MustRun, false) || !flag(in.Start, false) || !flag(in.RemoveVolumes, false) ||
		str(in.Restart) != "no" || str(in.NetworkMode) != "bridge" || num(in.WaitTimeout) != 60 ||
		num(in.ContainerReadRefreshTimeoutMilliseconds) != 15000 || in.Attach == nil || *in.Attach {
		t.Errorf("defaults not applied: %+v", in)
	}
	if str(in.Ports[0].IP) != "0.0.0.0" || str(in.Ports[0].Protocol) != "tcp" {
		t.Errorf("port defaults not applied: %+v", in.Ports[0])
	}
	if !isAutoName(str(in.Name), "ctr") {
		t.Errorf("name %q is not auto-named", str(in.Name))
	}
	// The auto-name is kept across updates.
	resp, err := Container{}.Check(context.Background(), infer.CheckRequest{
		Name: "ctr", OldInputs: encode(t, in), NewInputs: encode(t, ContainerArgs{Image: "img"}),
	})
	if err != nil || str(resp.Inputs.Name) != str(in.Name) {
		t.Errorf("auto-name not kept: %q vs %q (%v)", str(resp.Inputs.Name), str(in.Name), err)
	}
}

// Right after create, and after any number of refreshes, the program's unchanged inputs show no
// change (no perpetual diff), and a refresh reports the same inputs and state.
func TestReadBackHasNoDiff(t *testing.T) {
	fixture := inspectFixture(t)
	in := checked(t, nodeArgs(fixture.Image))
	state := created(t, in)
	if d := diffOf(t, containerToken, "ctr", in, state); d.HasChanges {
		t.Fatalf("diff right after create: %v", changed(d))
	}
	again := state
	readContainer(&again, &fixture)
	if !reflect.DeepEqual(encode(t, again), encode(t, state)) {
		t.Errorf("a second read-back differs:\n%v\n%v", encode(t, again), encode(t, state))
	}
	if got := readInputs(in, again.ContainerArgs, containerReadBack); !reflect.DeepEqual(encode(t, got), encode(t, in)) {
		t.Errorf("refreshed inputs differ from the inputs:\n%v\n%v", encode(t, got), encode(t, in))
	}
	// The read-back values of what Docker decides.
	if str(state.LogDriver) != "json-file" || num(state.ShmSize) != 64 || str(state.IpcMode) == "" ||
		len(state.NetworkDatas) != 1 || str(state.NetworkDatas[0].IPAddress) != "172.31.250.10" ||
		num(state.NetworkDatas[0].IPPrefixLength) != 24 || state.ExitCode != nil || !flag(state.MustRun, false) {
		t.Errorf("unexpected read-back: %+v", state)
	}
}

func TestDiffReplacesAndUpdates(t *testing.T) {
	fixture := inspectFixture(t)
	state := created(t, checked(t, nodeArgs(fixture.Image)))
	for _, tc := range []struct {
		name    string
		edit    func(*ContainerArgs)
		want    map[string]p.DiffKind
		replace bool
	}{
		{"label value", func(a *ContainerArgs) { a.Labels[1].Value = "b" },
			map[string]p.DiffKind{"labels": p.UpdateReplace}, true},
		{"labels reordered", func(a *ContainerArgs) { a.Labels[0], a.Labels[1] = a.Labels[1], a.Labels[0] }, nil, false},
		{"securityOpts reordered", func(a *ContainerArgs) { slices.Reverse(a.SecurityOpts) }, nil, false},
		{"labels removed (computed)", func(a *ContainerArgs) { a.Labels = nil }, nil, false},
		{"envs changed", func(a *ContainerArgs) { a.Envs = []string{"KCDP=2"} },
			map[string]p.DiffKind{"envs": p.UpdateReplace}, true},
		{"maxRetryCount", func(a *ContainerArgs) { a.MaxRetryCount = ptr(2) },
			map[string]p.DiffKind{"maxRetryCount": p.Update}, false},
		{"restart", func(a *ContainerArgs) { a.Restart = ptr("always") },
			map[string]p.DiffKind{"restart": p.Update}, false},
		{"tmpfs (updates, as upstream)", func(a *ContainerArgs) { a.Tmpfs["/var/log"] = "" },
			map[string]p.DiffKind{"tmpfs": p.Update}, false},
		{"tty off", func(a *ContainerArgs) { a.Tty = ptr(false) },
			map[string]p.DiffKind{"tty": p.UpdateReplace}, true},
		{"privileged on", func(a *ContainerArgs) { a.Privileged = ptr(true) },
			map[string]p.DiffKind{"privileged": p.UpdateReplace}, true},
		{"external port left to Docker", func(a *ContainerArgs) { a.Ports[0].External = nil }, nil, false},
		{"port ip", func(a *ContainerArgs) { a.Ports[0].IP = ptr("0.0.0.0") },
			map[string]p.DiffKind{"ports": p.UpdateReplace}, true},
		{"volume added", func(a *ContainerArgs) {
			a.Volumes = append(a.Volumes, ContainerVolume{HostPath: ptr("/lib/modules"), ContainerPath: ptr("/lib/modules"), ReadOnly: ptr(true)})
		}, map[string]p.DiffKind{"volumes": p.UpdateReplace}, true},
		{"ip address", func(a *ContainerArgs) { a.NetworksAdvanced[0].Ipv4Address = ptr("172.31.250.11") },
			map[string]p.DiffKind{"networksAdvanced": p.UpdateReplace}, true},
		{"cgroupnsMode", func(a *ContainerArgs) { a.CgroupnsMode = ptr("host") },
			map[string]p.DiffKind{"cgroupnsMode": p.UpdateReplace}, true},
		{"mustRun off", func(a *ContainerArgs) { a.MustRun = ptr(false) },
			map[string]p.DiffKind{"mustRun": p.Update}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := checked(t, nodeArgs(fixture.Image))
			tc.edit(&in)
			d := diffOf(t, containerToken, "ctr", in, state)
			got := map[string]p.DiffKind{}
			for k, v := range d.DetailedDiff {
				got[k] = v.Kind
			}
			if len(tc.want) == 0 && len(got) == 0 && !d.HasChanges {
				return
			}
			if !reflect.DeepEqual(got, tc.want) || d.HasChanges != (len(tc.want) > 0) {
				t.Errorf("diff = %v (changes %v), want %v", got, d.HasChanges, tc.want)
			}
			// A named container is replaced delete-first (two containers cannot share a name).
			if d.DeleteBeforeReplace != tc.replace {
				t.Errorf("deleteBeforeReplace = %v, want %v", d.DeleteBeforeReplace, tc.replace)
			}
		})
	}
}

func TestDiffAutoNamedReplacesCreateFirst(t *testing.T) {
	fixture := inspectFixture(t)
	args := nodeArgs(fixture.Image)
	args.Name = nil
	in := checked(t, args)
	state := created(t, in)
	state.Name = in.Name
	in.Tty = ptr(false)
	if d := diffOf(t, containerToken, "ctr", in, state); !d.HasChanges || d.DeleteBeforeReplace {
		t.Errorf("auto-named: changes %v, deleteBeforeReplace %v", d.HasChanges, d.DeleteBeforeReplace)
	}
}

func TestDiffUnknownAndIgnoreChanges(t *testing.T) {
	fixture := inspectFixture(t)
	in := checked(t, nodeArgs(fixture.Image))
	state := created(t, in)

	// During a preview the image ID of a replaced image is unknown: a replacement.
	news := encode(t, in).Set("image", property.New(property.Computed))
	d, err := diffResource(p.DiffRequest{Urn: urn(containerToken, "ctr"), State: encode(t, state), Inputs: news}, containerSpec)
	if err != nil || d.DetailedDiff["image"].Kind != p.UpdateReplace {
		t.Errorf("unknown image: %v %v", d.DetailedDiff, err)
	}

	// A Docker that reports the network mode as "default": a change, unless ignored.
	state.NetworkMode = ptr("default")
	if d := diffOf(t, containerToken, "ctr", in, state); d.DetailedDiff["networkMode"].Kind != p.UpdateReplace {
		t.Errorf("networkMode: %v", d.DetailedDiff)
	}
	if d := diffOf(t, containerToken, "ctr", in, state, "networkMode", "logDriver", "logOpts"); d.HasChanges {
		t.Errorf("ignored networkMode still a change: %v", changed(d))
	}
}

// Docker adds label=disable to a privileged container's security options: unless the program
// declares it, that reads back as a change (components/targets/local.py declares it).
func TestDiffSeesDockerAddedSecurityOpt(t *testing.T) {
	fixture := inspectFixture(t)
	fixture.HostConfig.SecurityOpt = append(fixture.HostConfig.SecurityOpt, "label=disable")
	in := checked(t, nodeArgs(fixture.Image))
	state := ContainerState{ContainerArgs: in}
	readContainer(&state, &fixture)
	if d := diffOf(t, containerToken, "ctr", in, state); d.DetailedDiff["securityOpts"].Kind != p.UpdateReplace {
		t.Errorf("securityOpts: %v", d.DetailedDiff)
	}
	in.SecurityOpts = append(in.SecurityOpts, "label=disable")
	if d := diffOf(t, containerToken, "ctr", in, state); d.HasChanges {
		t.Errorf("declared label=disable still a change: %v", changed(d))
	}
}

func TestReadStoppedContainer(t *testing.T) {
	fixture := inspectFixture(t)
	fixture.State.Running, fixture.State.Status, fixture.State.ExitCode = false, "exited", 137
	fixture.NetworkSettings.Ports = nil
	in := checked(t, nodeArgs(fixture.Image))
	state := created(t, in)
	readContainer(&state, &fixture)
	if flag(state.MustRun, true) || num(state.ExitCode) != 137 {
		t.Errorf("stopped: mustRun %v exitCode %v", flag(state.MustRun, true), num(state.ExitCode))
	}
	// mustRun=false then updates in place (Update starts it again); the lost port bindings
	// replace it, as upstream's read leaves them.
	d := diffOf(t, containerToken, "ctr", in, state)
	if d.DetailedDiff["mustRun"].Kind != p.Update || d.DetailedDiff["ports"].Kind != p.AddReplace {
		t.Errorf("stopped: %v", d.DetailedDiff)
	}
	// Without ports, only mustRun changes.
	noPorts := in
	noPorts.Ports = nil
	state = created(t, noPorts)
	readContainer(&state, &fixture)
	if d := diffOf(t, containerToken, "ctr", noPorts, state); len(d.DetailedDiff) != 1 || d.DetailedDiff["mustRun"].Kind != p.Update {
		t.Errorf("stopped, no ports: %v", d.DetailedDiff)
	}
}

func TestReadPortsSorted(t *testing.T) {
	fixture := inspectFixture(t)
	fixture.NetworkSettings.Ports = nil
	loadJSON(t, "testdata/ports.json", &fixture.NetworkSettings.Ports)
	ports := readPorts(fixture.NetworkSettings.Ports)
	var got []string
	for _, p := range ports {
		got = append(got, str(p.Protocol)+":"+jsonOf(p.Internal)+"->"+str(p.IP)+":"+jsonOf(num(p.External)))
	}
	want := []string{"tcp:80->127.0.0.1:8080", "udp:80->127.0.0.1:8080", "tcp:6443->127.0.0.1:16443", "tcp:30080->127.0.0.1:30080"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ports = %v, want %v", got, want)
	}
}

func TestBuildCreateSpec(t *testing.T) {
	args := nodeArgs("sha256:abc")
	args.Volumes = append(args.Volumes,
		ContainerVolume{HostPath: ptr("/lib/modules"), ContainerPath: ptr("/lib/modules"), ReadOnly: ptr(true)},
		ContainerVolume{VolumeName: ptr("data"), ContainerPath: ptr("/data")},
		ContainerVolume{FromContainer: ptr("other")})
	args.SecurityOpts = append(args.SecurityOpts, "systempaths=unconfined")
	args.Privileged = ptr(true)
	in := checked(t, args)
	s, err := buildCreateSpec(&in)
	if err != nil {
		t.Fatal(err)
	}
	h, c := s.host, s.config
	if !reflect.DeepEqual(h.Binds, []string{"/lib/modules:/lib/modules:ro", "data:/data:rw"}) ||
		!reflect.DeepEqual(h.VolumesFrom, []string{"other"}) || len(c.Volumes) != 3 {
		t.Errorf("volumes: binds %v from %v volumes %v", h.Binds, h.VolumesFrom, c.Volumes)
	}
	if h.Init == nil || *h.Init || string(h.CgroupnsMode) != "private" || !h.Privileged ||
		string(h.RestartPolicy.Name) != "on-failure" || h.RestartPolicy.MaximumRetryCount != 1 {
		t.Errorf("host config: %+v", h)
	}
	if !reflect.DeepEqual(h.SecurityOpt, []string{"seccomp=unconfined", "apparmor=unconfined"}) ||
		h.MaskedPaths == nil || len(h.MaskedPaths) != 0 {
		t.Errorf("security: %v masked %v", h.SecurityOpt, h.MaskedPaths)
	}
	if b := h.PortBindings["8080/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "18080" {
		t.Errorf("port bindings: %v", h.PortBindings)
	}
	if !c.Tty || c.Labels["kcdp.role"] != "a" || !reflect.DeepEqual([]string(c.Cmd), []string{"sleep", "infinity"}) ||
		!reflect.DeepEqual(h.Tmpfs, map[string]string{"/tmp": "", "/run": ""}) {
		t.Errorf("config: %+v", c)
	}
	bad := in
	bad.Command = []string{"sh", ""}
	if _, err := buildCreateSpec(&bad); err == nil {
		t.Error("an empty command element is accepted")
	}
	bad = in
	bad.Volumes = []ContainerVolume{{ReadOnly: ptr(true)}}
	if _, err := buildCreateSpec(&bad); err == nil {
		t.Error("a volume without a container path is accepted")
	}
}

func TestCheckLeavesUnknownNameUnknown(t *testing.T) {
	news := encode(t, ContainerArgs{Image: "img"}).Set("name", property.New(property.Computed))
	resp, err := Container{}.Check(context.Background(), infer.CheckRequest{Name: "ctr", NewInputs: news})
	if err != nil || str(resp.Inputs.Name) != "" { // encoded back as unknown by infer
		t.Errorf("unknown name: %v %v", str(resp.Inputs.Name), err)
	}
}
