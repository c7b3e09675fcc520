package main

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/blang/semver"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/integration"
	presource "github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// harness drives the provider the way the engine does (Check, Diff, Create, Update, Read,
// Delete), in process, and records what commands logged.
type harness struct {
	t      *testing.T
	server integration.Server
	mu     sync.Mutex
	lines  []string // "stdout: ..." / "stderr: ..."
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t}
	prov, err := newProvider(func(_ context.Context, stream, line string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.lines = append(h.lines, stream+": "+line)
	})
	if err != nil {
		t.Fatal(err)
	}
	server, err := integration.NewServer(t.Context(), packageName, semver.MustParse(packageVersion),
		integration.WithProvider(prov))
	if err != nil {
		t.Fatal(err)
	}
	h.server = server
	return h
}

func (h *harness) logged() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.lines...)
}

func (h *harness) resetLog() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = nil
}

func urnOf(typ tokens.Type, name string) presource.URN {
	return presource.NewURN("test", "project", "", typ, name)
}

// lifecycle is one resource's life as the engine sees it.
type lifecycle struct {
	h      *harness
	urn    presource.URN
	id     string
	inputs property.Map // last checked inputs
	state  property.Map
}

func (h *harness) resource(typ tokens.Type, name string) *lifecycle {
	return &lifecycle{h: h, urn: urnOf(typ, name)}
}

// check runs Check and fails the test on failures.
func (r *lifecycle) check(inputs property.Map) property.Map {
	r.h.t.Helper()
	resp, err := r.h.server.Check(p.CheckRequest{Urn: r.urn, State: r.inputs, Inputs: inputs})
	if err != nil {
		r.h.t.Fatalf("check: %v", err)
	}
	if len(resp.Failures) > 0 {
		r.h.t.Fatalf("check failures: %+v", resp.Failures)
	}
	return resp.Inputs
}

func (r *lifecycle) create(inputs property.Map, preview bool) (property.Map, error) {
	r.h.t.Helper()
	checked := r.check(inputs)
	resp, err := r.h.server.Create(p.CreateRequest{Urn: r.urn, Properties: checked, DryRun: preview})
	if err == nil && !preview {
		r.id, r.inputs, r.state = resp.ID, checked, resp.Properties
	}
	return resp.Properties, err
}

func (r *lifecycle) diff(inputs property.Map) p.DiffResponse {
	r.h.t.Helper()
	checked := r.check(inputs)
	resp, err := r.h.server.Diff(p.DiffRequest{ID: r.id, Urn: r.urn, State: r.state, OldInputs: r.inputs, Inputs: checked})
	if err != nil {
		r.h.t.Fatalf("diff: %v", err)
	}
	return resp
}

func (r *lifecycle) update(inputs property.Map, preview bool) (property.Map, error) {
	r.h.t.Helper()
	checked := r.check(inputs)
	resp, err := r.h.server.Update(p.UpdateRequest{ID: r.id, Urn: r.urn, State: r.state,
		OldInputs: r.inputs, Inputs: checked, DryRun: preview})
	if err == nil && !preview {
		r.inputs, r.state = checked, resp.Properties
	}
	return resp.Properties, err
}

func (r *lifecycle) read() p.ReadResponse {
	r.h.t.Helper()
	resp, err := r.h.server.Read(p.ReadRequest{ID: r.id, Urn: r.urn, Properties: r.state, Inputs: r.inputs})
	if err != nil {
		r.h.t.Fatalf("read: %v", err)
	}
	return resp
}

func (r *lifecycle) delete() error {
	return r.h.server.Delete(p.DeleteRequest{ID: r.id, Urn: r.urn, Properties: r.state, OldInputs: r.inputs})
}

// props builds a property map from Go values: string, bool, float64, []any, map[string]any,
// property.Value.
func props(kv map[string]any) property.Map {
	m := map[string]property.Value{}
	for k, v := range kv {
		m[k] = value(v)
	}
	return property.NewMap(m)
}

func value(v any) property.Value {
	switch v := v.(type) {
	case property.Value:
		return v
	case string:
		return property.New(v)
	case bool:
		return property.New(v)
	case float64:
		return property.New(v)
	case int:
		return property.New(float64(v))
	case []any:
		var arr []property.Value
		for _, e := range v {
			arr = append(arr, value(e))
		}
		return property.New(arr)
	case map[string]any:
		return property.New(props(v))
	case map[string]string:
		m := map[string]property.Value{}
		for k, e := range v {
			m[k] = property.New(e)
		}
		return property.New(m)
	}
	panic("unsupported test value")
}

// str is a string output of a state, failing the test when it is missing or not a string.
func str(t *testing.T, m property.Map, key string) string {
	t.Helper()
	v, ok := m.GetOk(key)
	if !ok || !v.IsString() {
		t.Fatalf("%s: not a known string in %v", key, m)
	}
	return v.AsString()
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}
