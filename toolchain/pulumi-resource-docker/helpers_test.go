package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// encode turns a typed input or state into the property map the engine would hold: nil
// pointers, slices and maps are left out, as the provider's encoder leaves them out.
func encode(t *testing.T, v any) property.Map {
	t.Helper()
	return toValue(plainOf(reflect.ValueOf(v))).AsMap()
}

func toValue(v any) property.Value {
	switch v := v.(type) {
	case nil:
		return property.New(property.Null)
	case bool:
		return property.New(v)
	case float64:
		return property.New(v)
	case string:
		return property.New(v)
	case []any:
		out := []property.Value{}
		for _, e := range v {
			out = append(out, toValue(e))
		}
		return property.New(out)
	case map[string]any:
		out := map[string]property.Value{}
		for k, e := range v {
			out[k] = toValue(e)
		}
		return property.New(out)
	}
	panic(fmt.Sprintf("toValue: %T", v))
}

func plainOf(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plainOf(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		addFields(v, out)
		return out
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := []any{}
		for i := 0; i < v.Len(); i++ {
			out = append(out, plainOf(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = plainOf(v.MapIndex(k))
		}
		return out
	case reflect.Int, reflect.Int64:
		return float64(v.Int())
	case reflect.Bool:
		return v.Bool()
	case reflect.String:
		return v.String()
	}
	return v.Interface()
}

func addFields(v reflect.Value, out map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			addFields(v.Field(i), out)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("pulumi"), ",")
		if name == "" {
			continue
		}
		if e := plainOf(v.Field(i)); e != nil {
			out[name] = e
		}
	}
}

func urn(token tokens.Type, name string) resource.URN {
	return resource.NewURN("dev", "test", "", token, name)
}

// diffOf runs the provider's diff of new inputs against a state.
func diffOf(t *testing.T, token tokens.Type, name string, news, state any, ignore ...string) p.DiffResponse {
	t.Helper()
	resp, err := diffResource(p.DiffRequest{
		Urn: urn(token, name), State: encode(t, state), Inputs: encode(t, news), IgnoreChanges: ignore,
	}, diffSpecs[token])
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// inspectFixture is `docker inspect` of a container made like components/targets/local.py's nodes (not
// privileged: see testdata/README).
func inspectFixture(t *testing.T) container.InspectResponse {
	var c container.InspectResponse
	loadJSON(t, "testdata/container-inspect.json", &c)
	return c
}

func networkFixture(t *testing.T) network.Inspect {
	var n network.Inspect
	loadJSON(t, "testdata/network-inspect.json", &n)
	return n
}

func changed(resp p.DiffResponse) []string {
	var out []string
	for k := range resp.DetailedDiff {
		out = append(out, k)
	}
	return out
}
