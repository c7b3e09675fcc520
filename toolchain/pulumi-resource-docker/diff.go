package main

import (
	"encoding/json"
	"reflect"
	"regexp"
	"sort"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// spec says how one input property (or a nested field) is compared.
type spec struct {
	update   bool             // a change updates in place (otherwise it replaces)
	computed bool             // left unset by the program, it keeps the state's value: no change
	set      bool             // a list compared without regard to order
	kv       bool             // a free-form map of strings: keys count even with "" values
	fields   map[string]*spec // the fields of an object, or of each object in a list
}

// resourceSpec describes a resource's inputs for diffResource.
type resourceSpec struct {
	inputs map[string]*spec
	// namedDBR: a replacement is delete-before-replace when the program set `name` itself
	// (not auto-named), since two Docker objects cannot share a name.
	namedDBR bool
}

var diffSpecs = map[tokens.Type]resourceSpec{
	remoteImageToken: remoteImageSpec,
	networkToken:     networkSpec,
	containerToken:   containerSpec,
}

// unknown stands for a value not known during a preview.
type unknown struct{}

// diffResource compares the new inputs with the state: a property the program sets is
// compared with the state's value of it (which, after a refresh, is the value read back from
// Docker), as upstream's plan compares configuration with state. See the package comment.
func diffResource(req p.DiffRequest, rs resourceSpec) (p.DiffResponse, error) {
	olds, _ := plain(property.New(req.State)).(map[string]any)
	news, _ := plain(property.New(req.Inputs)).(map[string]any)
	if olds == nil {
		olds = map[string]any{}
	}
	if news == nil {
		news = map[string]any{}
	}
	// ignoreChanges: the new value at each path is the state's.
	for _, raw := range req.IgnoreChanges {
		path, err := resource.ParsePropertyPath(raw)
		if err != nil || len(path) == 0 {
			continue
		}
		old, ok := getPath(olds, path)
		news = setPath(news, path, old, ok).(map[string]any)
	}
	detailed := map[string]p.PropertyDiff{}
	replaces := false
	for name, s := range rs.inputs {
		kind, changed := diffProperty(news[name], olds[name], s)
		// Shown as an add or a delete only when the property itself appears or disappears.
		if _, had := olds[name]; changed && had && olds[name] != nil && news[name] != nil {
			kind = p.Update
		}
		if !changed {
			continue
		}
		if !s.update {
			kind = replaceKind(kind)
			replaces = true
		}
		detailed[name] = p.PropertyDiff{Kind: kind}
	}
	resp := p.DiffResponse{HasChanges: len(detailed) > 0, DetailedDiff: detailed}
	if replaces && rs.namedDBR {
		name, _ := news["name"].(string)
		resp.DeleteBeforeReplace = name != "" && !isAutoName(name, req.Urn.Name())
	}
	return resp, nil
}

// diffProperty reports whether a property changed, and how.
func diffProperty(nv, ov any, s *spec) (p.DiffKind, bool) {
	if nv == nil && s.computed {
		return "", false
	}
	if hasUnknown(nv) {
		if canon(ov, s) == nil {
			return p.Add, true
		}
		return p.Update, true
	}
	nv = fillComputed(nv, ov, s)
	nc, oc := canon(nv, s), canon(ov, s)
	if reflect.DeepEqual(nc, oc) {
		return "", false
	}
	switch {
	case oc == nil:
		return p.Add, true
	case nc == nil:
		return p.Delete, true
	default:
		return p.Update, true
	}
}

func replaceKind(k p.DiffKind) p.DiffKind {
	switch k {
	case p.Add:
		return p.AddReplace
	case p.Delete:
		return p.DeleteReplace
	default:
		return p.UpdateReplace
	}
}

// canon is the comparable form of a value: false, 0, "" and empty lists, maps and objects
// become nil (unset); sets are sorted; objects lose their unset fields.
func canon(v any, s *spec) any {
	if s == nil {
		s = &spec{}
	}
	switch v := v.(type) {
	case nil:
		return nil
	case bool:
		if !v {
			return nil
		}
		return v
	case float64:
		if v == 0 {
			return nil
		}
		return v
	case string:
		if v == "" {
			return nil
		}
		return v
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = canon(e, &spec{fields: s.fields})
		}
		if s.set {
			sort.Slice(out, func(i, j int) bool { return jsonOf(out[i]) < jsonOf(out[j]) })
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			if s.kv {
				out[k] = e
				continue
			}
			if c := canon(e, s.fields[k]); c != nil {
				out[k] = c
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	default:
		return v
	}
}

// fillComputed gives the objects of an ordered list (or an object) the state's values of their
// computed fields that the program leaves unset (e.g. a port's external port, chosen by Docker).
func fillComputed(nv, ov any, s *spec) any {
	if s == nil || s.fields == nil || s.set {
		return nv
	}
	switch n := nv.(type) {
	case []any:
		o, ok := ov.([]any)
		if !ok || len(o) != len(n) {
			return nv
		}
		out := make([]any, len(n))
		for i := range n {
			out[i] = fillComputed(n[i], o[i], s)
		}
		return out
	case map[string]any:
		o, ok := ov.(map[string]any)
		if !ok {
			return nv
		}
		out := map[string]any{}
		for k, e := range n {
			out[k] = e
		}
		for k, fs := range s.fields {
			if fs != nil && fs.computed && out[k] == nil && o[k] != nil {
				out[k] = o[k]
			}
		}
		return out
	}
	return nv
}

func hasUnknown(v any) bool {
	switch v := v.(type) {
	case unknown:
		return true
	case []any:
		for _, e := range v {
			if hasUnknown(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if hasUnknown(e) {
				return true
			}
		}
	}
	return false
}

// plain turns a property value into nil, bool, float64, string, []any, map[string]any or
// unknown{}; secrets are compared by their values.
func plain(v property.Value) any {
	switch {
	case v.IsComputed():
		return unknown{}
	case v.IsNull():
		return nil
	case v.IsBool():
		return v.AsBool()
	case v.IsNumber():
		return v.AsNumber()
	case v.IsString():
		return v.AsString()
	case v.IsArray():
		out := []any{}
		for _, e := range v.AsArray().All {
			out = append(out, plain(e))
		}
		return out
	case v.IsMap():
		out := map[string]any{}
		for k, e := range v.AsMap().All {
			out[k] = plain(e)
		}
		return out
	}
	return jsonOf(v)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// getPath and setPath read and write a property path (of string keys and int indexes) in a
// plain value.
func getPath(v any, path resource.PropertyPath) (any, bool) {
	for _, seg := range path {
		switch seg := seg.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[seg]; !ok {
				return nil, false
			}
		case int:
			a, ok := v.([]any)
			if !ok || seg < 0 || seg >= len(a) {
				return nil, false
			}
			v = a[seg]
		default:
			return nil, false
		}
	}
	return v, true
}

func setPath(v any, path resource.PropertyPath, val any, present bool) any {
	if len(path) == 0 {
		if !present {
			return nil
		}
		return val
	}
	switch seg := path[0].(type) {
	case string:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := map[string]any{}
		for k, e := range m {
			out[k] = e
		}
		if len(path) == 1 && !present {
			delete(out, seg)
		} else if e, ok := out[seg]; ok || len(path) == 1 {
			out[seg] = setPath(e, path[1:], val, present)
		}
		return out
	case int:
		a, ok := v.([]any)
		if !ok || seg < 0 || seg >= len(a) {
			return v
		}
		out := append([]any(nil), a...)
		out[seg] = setPath(a[seg], path[1:], val, present)
		return out
	}
	return v
}

// autoName matches the names Check gives an unnamed Network or Container.
var autoName = regexp.MustCompile(`-[0-9a-f]{7}$`)

func isAutoName(name, resourceName string) bool {
	return len(name) == len(resourceName)+8 && name[:len(resourceName)] == resourceName &&
		autoName.MatchString(name)
}
