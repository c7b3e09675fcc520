package main

import (
	"reflect"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

func TestCanon(t *testing.T) {
	s := &spec{set: true, fields: map[string]*spec{"aliases": {set: true}}}
	a := []any{map[string]any{"name": "n", "aliases": []any{"x", "y"}, "gwPriority": 0.0}, map[string]any{"name": "m"}}
	b := []any{map[string]any{"name": "m", "macAddress": ""}, map[string]any{"aliases": []any{"y", "x"}, "name": "n"}}
	if !reflect.DeepEqual(canon(a, s), canon(b, s)) {
		t.Errorf("sets with unset fields differ: %v %v", canon(a, s), canon(b, s))
	}
	if canon([]any{}, s) != nil || canon(false, nil) != nil || canon("", nil) != nil || canon(0.0, nil) != nil {
		t.Error("empty values are not unset")
	}
	kv := &spec{kv: true}
	if reflect.DeepEqual(canon(map[string]any{"/tmp": ""}, kv), canon(map[string]any{}, kv)) {
		t.Error("a free-form map key with an empty value is dropped")
	}
	// Ordered lists keep their order.
	if reflect.DeepEqual(canon([]any{"a", "b"}, &spec{}), canon([]any{"b", "a"}, &spec{})) {
		t.Error("an ordered list compares without order")
	}
}

func TestPaths(t *testing.T) {
	v := map[string]any{"ports": []any{map[string]any{"ip": "1", "internal": 80.0}}}
	path, err := resource.ParsePropertyPath("ports[0].ip")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := getPath(v, path); !ok || got != "1" {
		t.Errorf("getPath = %v %v", got, ok)
	}
	out := setPath(v, path, "2", true).(map[string]any)
	if got, _ := getPath(out, path); got != "2" {
		t.Errorf("setPath: %v", out)
	}
	if got, _ := getPath(v, path); got != "1" {
		t.Error("setPath changed its input")
	}
	out = setPath(v, resource.PropertyPath{"ports"}, nil, false).(map[string]any)
	if _, ok := out["ports"]; ok {
		t.Error("setPath of an absent value kept the key")
	}
}

func TestAutoName(t *testing.T) {
	if !isAutoName("ctr-0a1b2c3", "ctr") || isAutoName("ctr", "ctr") || isAutoName("kind-control-plane", "kind") {
		t.Error("isAutoName")
	}
}
