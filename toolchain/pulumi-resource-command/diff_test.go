package main

import (
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

func TestDiffCommand(t *testing.T) {
	base := map[string]any{
		"create":      "echo hi",
		"delete":      "echo bye",
		"environment": map[string]string{"A": "1"},
		"triggers":    []any{"id-1", 2.0},
	}
	with := func(key string, v any) map[string]any {
		m := map[string]any{}
		for k, e := range base {
			m[k] = e
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		news    map[string]any
		changes bool
		want    map[string]p.DiffKind
	}{
		{name: "no change", news: base},
		{name: "create changed", news: with("create", "echo hello"), changes: true,
			want: map[string]p.DiffKind{"create": p.Update}},
		{name: "delete changed", news: with("delete", "echo ciao"), changes: true,
			want: map[string]p.DiffKind{"delete": p.Update}},
		{name: "update added", news: with("update", "echo again"), changes: true,
			want: map[string]p.DiffKind{"update": p.Add}},
		{name: "environment value", news: with("environment", map[string]string{"A": "2"}), changes: true,
			want: map[string]p.DiffKind{"environment.A": p.Update}},
		{name: "trigger changed", news: with("triggers", []any{"id-2", 2.0}), changes: true,
			want: map[string]p.DiffKind{"triggers[0]": p.UpdateReplace}},
		{name: "trigger appended", news: with("triggers", []any{"id-1", 2.0, true}), changes: true,
			want: map[string]p.DiffKind{"triggers[2]": p.AddReplace}},
		{name: "triggers removed", news: with("triggers", nil), changes: true,
			want: map[string]p.DiffKind{"triggers": p.DeleteReplace}},
		{name: "trigger unknown (preview)", news: with("triggers", []any{property.New(property.Computed), 2.0}), changes: true,
			want: map[string]p.DiffKind{"triggers[0]": p.UpdateReplace}},
		{name: "create unknown (preview)", news: with("create", property.New(property.Computed)), changes: true,
			want: map[string]p.DiffKind{"create": p.Update}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := diffCommand(p.DiffRequest{
				State:     props(with("stdout", "hi")),
				OldInputs: props(base),
				Inputs:    props(tc.news),
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.HasChanges != tc.changes {
				t.Fatalf("HasChanges = %v, want %v (%+v)", resp.HasChanges, tc.changes, resp.DetailedDiff)
			}
			if len(resp.DetailedDiff) != len(tc.want) {
				t.Fatalf("detailed diff %+v, want %v", resp.DetailedDiff, tc.want)
			}
			for path, kind := range tc.want {
				if got := resp.DetailedDiff[path]; got.Kind != kind || !got.InputDiff {
					t.Fatalf("%s: %+v, want %q", path, got, kind)
				}
			}
			if resp.DeleteBeforeReplace {
				t.Fatal("deleteBeforeReplace is the program's choice (resource option), not the provider's")
			}
		})
	}
}

// Without old inputs from the engine, the state's inputs are compared (outputs ignored).
func TestDiffWithoutOldInputs(t *testing.T) {
	state := props(map[string]any{"create": "echo hi", "stdout": "hi", "stderr": ""})
	resp, err := diffCommand(p.DiffRequest{State: state, Inputs: props(map[string]any{"create": "echo hi"})})
	if err != nil || resp.HasChanges {
		t.Fatalf("no change expected: %v %+v", err, resp)
	}
	resp, err = diffCommand(p.DiffRequest{State: state, Inputs: props(map[string]any{"create": "echo ho"})})
	if err != nil || !resp.HasChanges || resp.DetailedDiff["create"].Kind != p.Update {
		t.Fatalf("create change expected: %v %+v", err, resp)
	}
}
