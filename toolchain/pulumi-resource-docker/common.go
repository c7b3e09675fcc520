package main

import (
	"crypto/rand"
	"encoding/hex"
	"reflect"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// autoNameIfUnset names an unnamed Network or Container "<resource name>-<7 hex digits>",
// keeping the name it was given before (Pulumi's auto-naming of bridged resources).
func autoNameIfUnset(name *string, resourceName string, oldInputs, newInputs property.Map) *string {
	if name != nil && *name != "" {
		return name
	}
	if v, ok := newInputs.GetOk("name"); ok && v.IsComputed() {
		return name // not known yet (a preview): not unset
	}
	if old, ok := oldInputs.GetOk("name"); ok && old.IsString() && old.AsString() != "" {
		return ptr(old.AsString())
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return ptr(resourceName + "-" + hex.EncodeToString(b)[:7])
}

// keepOrder returns the items read back in the order the state had them (a set read back
// must not look reordered); items the state did not have follow in their own order.
func keepOrder[T any](state, read []T) []T {
	if len(read) == 0 {
		return nil
	}
	used := make([]bool, len(read))
	out := make([]T, 0, len(read))
	for _, s := range state {
		for i, r := range read {
			if !used[i] && jsonOf(r) == jsonOf(s) {
				used[i] = true
				out = append(out, r)
				break
			}
		}
	}
	for i, r := range read {
		if !used[i] {
			out = append(out, r)
		}
	}
	return out
}

// readInputs is what a refresh reports as the inputs: the old inputs, with each property they
// set (and, when `only` is not nil, that `only` names) replaced by the value read back, as the
// bridge derives inputs from a refreshed state.
func readInputs[T any](old, read T, only map[string]bool) T {
	ov := reflect.ValueOf(&old).Elem()
	rv := reflect.ValueOf(read)
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("pulumi"), ",")
		if name == "" || (only != nil && !only[name]) || ov.Field(i).IsZero() {
			continue
		}
		ov.Field(i).Set(rv.Field(i))
	}
	return old
}
