package main

import (
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// outputOnly are the state properties that are not inputs.
var outputOnly = map[string]bool{"stdout": true, "stderr": true, "assets": true, "archive": true}

// replacing are the inputs whose change replaces the resource instead of updating it.
var replacing = map[string]bool{"triggers": true}

// diffCommand compares a command's old inputs with its new ones. Any difference is a change;
// a difference under `triggers` (at any depth, including triggers appearing or disappearing)
// requires a replacement, every other one an in-place update. Unknown new values (during a
// preview) count as differences.
func diffCommand(req p.DiffRequest) (p.DiffResponse, error) {
	olds := oldInputs(req)
	// ignoreChanges needs nothing here: the engine has already put the old values of the
	// ignored paths into the new inputs.
	news := req.Inputs
	oldMap := resource.ToResourcePropertyValue(property.New(olds)).ObjectValue()
	newMap := resource.ToResourcePropertyValue(property.New(news)).ObjectValue()
	objDiff := oldMap.Diff(newMap)
	if objDiff == nil || !objDiff.AnyChanges() {
		return p.DiffResponse{DetailedDiff: map[string]p.PropertyDiff{}}, nil
	}
	detailed := map[string]p.PropertyDiff{}
	for path, d := range plugin.NewDetailedDiffFromObjectDiff(objDiff, true) {
		kind := d.Kind
		if replacing[rootOf(path)] {
			kind = kind.AsReplace()
		}
		detailed[path] = p.PropertyDiff{Kind: toDiffKind(kind), InputDiff: true}
	}
	return p.DiffResponse{HasChanges: true, DetailedDiff: detailed}, nil
}

// oldInputs are the inputs the resource was last created or updated with: the engine sends
// them; a state written without them is read as its inputs (every non-output property).
func oldInputs(req p.DiffRequest) property.Map {
	if req.OldInputs.Len() > 0 {
		return req.OldInputs
	}
	m := map[string]property.Value{}
	for k, v := range req.State.All {
		if !outputOnly[k] {
			m[k] = v
		}
	}
	return property.NewMap(m)
}

// rootOf is the top-level property of a detailed-diff path ("triggers[0]" -> "triggers").
func rootOf(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

func toDiffKind(k plugin.DiffKind) p.DiffKind {
	switch k {
	case plugin.DiffAdd:
		return p.Add
	case plugin.DiffAddReplace:
		return p.AddReplace
	case plugin.DiffDelete:
		return p.Delete
	case plugin.DiffDeleteReplace:
		return p.DeleteReplace
	case plugin.DiffUpdateReplace:
		return p.UpdateReplace
	default:
		return p.Update
	}
}
