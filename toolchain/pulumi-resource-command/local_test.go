package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A local command's life: preview runs nothing, create runs `create` with environment and
// stdin, an input change updates in place (create again, then `update` once set), refresh
// keeps the state, delete runs `delete` with the old environment, stdin and outputs.
func TestLocalLifecycle(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t)
	r := h.resource(localCommandToken, "step")
	args := map[string]any{
		"create":      `touch created; echo "$FOO|$(cat)"; echo to-stderr >&2`,
		"delete":      `echo "$PULUMI_COMMAND_STDOUT/$PULUMI_COMMAND_STDERR/$FOO/$(cat)" > deleted`,
		"dir":         dir,
		"environment": map[string]string{"FOO": "bar"},
		"stdin":       "in",
		"triggers":    []any{"t1"},
	}

	out, err := r.create(props(args), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "created")); !os.IsNotExist(err) {
		t.Fatalf("preview ran the create command (stat: %v)", err)
	}
	if !out.Get("stdout").IsComputed() {
		t.Fatalf("preview: stdout should be unknown, got %v", out.Get("stdout"))
	}

	out, err = r.create(props(args), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, out, "stdout"); got != "bar|in" {
		t.Fatalf("stdout = %q, want %q", got, "bar|in")
	}
	if got := str(t, out, "stderr"); got != "to-stderr" {
		t.Fatalf("stderr = %q", got)
	}
	if str(t, out, "create") != args["create"] || str(t, out, "stdin") != "in" {
		t.Fatalf("inputs are not in the state: %v", out)
	}
	if !contains(h.logged(), "stdout: bar|in") || !contains(h.logged(), "stderr: to-stderr") {
		t.Fatalf("default logging should log both streams, logged %q", h.logged())
	}

	if d := r.diff(props(args)); d.HasChanges {
		t.Fatalf("same inputs: diff %+v", d)
	}

	// Refresh: the state comes back as it is.
	read := r.read()
	if !read.Properties.Equals(r.state) || !read.Inputs.Equals(r.inputs) {
		t.Fatalf("read changed the state:\n%v\n%v", read.Properties, r.state)
	}

	// An environment change is an update; without `update`, create runs again.
	args["environment"] = map[string]string{"FOO": "baz"}
	d := r.diff(props(args))
	if !d.HasChanges || d.DetailedDiff["environment.FOO"].Kind != p.Update {
		t.Fatalf("environment change: diff %+v", d)
	}
	out, err = r.update(props(args), true)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Get("stdout").IsComputed() {
		t.Fatalf("update preview: stdout should be unknown, got %v", out.Get("stdout"))
	}
	out, err = r.update(props(args), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, out, "stdout"); got != "baz|in" {
		t.Fatalf("update without `update` should rerun create: stdout = %q", got)
	}

	// With `update` set, it runs instead, and sees the previous outputs.
	args["update"] = `echo "previous=$PULUMI_COMMAND_STDOUT"`
	out, err = r.update(props(args), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, out, "stdout"); got != "previous=baz|in" {
		t.Fatalf("update: stdout = %q", got)
	}

	// addPreviousOutputInEnv false: no previous outputs in the environment.
	args["addPreviousOutputInEnv"] = false
	args["update"] = `echo "previous=${PULUMI_COMMAND_STDOUT-unset}"`
	out, err = r.update(props(args), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, out, "stdout"); got != "previous=unset" {
		t.Fatalf("addPreviousOutputInEnv=false: stdout = %q", got)
	}
	args["addPreviousOutputInEnv"] = true
	args["update"] = `echo "$FOO|$(cat)"; echo to-stderr >&2`
	if _, err = r.update(props(args), false); err != nil {
		t.Fatal(err)
	}

	// Delete: the old state's environment and stdin, and its outputs.
	if err := r.delete(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "deleted")); got != "baz|in/to-stderr/baz/in\n" {
		t.Fatalf("delete saw %q", got)
	}
}

// A change under `triggers` replaces; the engine then deletes the old resource with its own
// (old) inputs before creating the new one.
func TestLocalTriggersReplace(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t)
	r := h.resource(localCommandToken, "node")
	args := map[string]any{
		"create":      `echo "$GEN" >> log; echo "$GEN"`,
		"delete":      `echo "delete $GEN $PULUMI_COMMAND_STDOUT" >> log`,
		"dir":         dir,
		"triggers":    []any{"container-1"},
		"environment": map[string]string{"GEN": "1"},
	}
	if _, err := r.create(props(args), false); err != nil {
		t.Fatal(err)
	}
	args["triggers"] = []any{"container-2"}
	args["environment"] = map[string]string{"GEN": "2"}
	d := r.diff(props(args))
	if got := d.DetailedDiff["triggers[0]"].Kind; got != p.UpdateReplace {
		t.Fatalf("triggers[0]: %q, want %q (diff %+v)", got, p.UpdateReplace, d)
	}
	if got := d.DetailedDiff["environment.GEN"].Kind; got != p.Update {
		t.Fatalf("environment.GEN: %q, want %q", got, p.Update)
	}
	// delete-before-replace: the old resource goes with its old inputs, then the new one.
	if err := r.delete(); err != nil {
		t.Fatal(err)
	}
	n := h.resource(localCommandToken, "node")
	if _, err := n.create(props(args), false); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "log")); got != "1\ndelete 1 1\n2\n" {
		t.Fatalf("log = %q", got)
	}
}

func TestLocalFailure(t *testing.T) {
	h := newHarness(t)
	failing := `echo some-output; echo the-reason >&2; exit 3`

	_, err := h.resource(localCommandToken, "fails").create(props(map[string]any{"create": failing}), false)
	if err == nil {
		t.Fatal("a non-zero exit should fail the create")
	}
	for _, want := range []string{"exit status 3", "the-reason", "some-output"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	h.resetLog()
	_, err = h.resource(localCommandToken, "secret").create(props(map[string]any{
		"create": `echo s3cr3t; echo s3cr3t-err >&2; exit 5`, "logging": "none"}), false)
	if err == nil || !strings.Contains(err.Error(), "exit status 5") {
		t.Fatalf("error %v should name exit status 5", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("logging none: the error shows the output: %v", err)
	}
	if len(h.logged()) != 0 {
		t.Fatalf("logging none: logged %q", h.logged())
	}
}

func TestLocalLoggingChoices(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		logging        string
		stdout, stderr bool
	}{
		{"stdout", true, false},
		{"stderr", false, true},
		{"stdoutAndStderr", true, true},
		{"none", false, false},
	} {
		h.resetLog()
		out, err := h.resource(localCommandToken, "log-"+tc.logging).create(props(map[string]any{
			"create": `echo line-out; echo line-err >&2`, "logging": tc.logging}), false)
		if err != nil {
			t.Fatal(err)
		}
		if str(t, out, "stdout") != "line-out" || str(t, out, "stderr") != "line-err" {
			t.Fatalf("%s: outputs are captured whatever the logging: %v", tc.logging, out)
		}
		if got := contains(h.logged(), "stdout: line-out"); got != tc.stdout {
			t.Errorf("%s: stdout logged = %v, want %v (%q)", tc.logging, got, tc.stdout, h.logged())
		}
		if got := contains(h.logged(), "stderr: line-err"); got != tc.stderr {
			t.Errorf("%s: stderr logged = %v, want %v (%q)", tc.logging, got, tc.stderr, h.logged())
		}
	}
}

func TestLocalInterpreter(t *testing.T) {
	h := newHarness(t)
	out, err := h.resource(localCommandToken, "interp").create(props(map[string]any{
		"create": "print('from python')", "interpreter": []any{"python3", "-c"}}), false)
	if err != nil {
		t.Skipf("python3 not available: %v", err)
	}
	if got := str(t, out, "stdout"); got != "from python" {
		t.Fatalf("stdout = %q", got)
	}
}

func TestNotImplemented(t *testing.T) {
	h := newHarness(t)
	r := h.resource(localCommandToken, "assets")
	resp, err := h.server.Check(p.CheckRequest{Urn: r.urn, Inputs: props(map[string]any{
		"create": "true", "assetPaths": []any{"*.txt"}})})
	if err != nil || len(resp.Failures) != 1 || !strings.Contains(resp.Failures[0].Reason, "not implemented by the stand-in") {
		t.Fatalf("assetPaths: %v %+v", err, resp.Failures)
	}
	_, err = h.server.Check(p.CheckRequest{Urn: urnOf("command:remote:CopyToRemote", "copy"),
		Inputs: property.NewMap(nil)})
	if err == nil || !strings.Contains(err.Error(), "not implemented by the stand-in") {
		t.Fatalf("CopyToRemote: %v", err)
	}
	_, err = h.server.Invoke(p.InvokeRequest{Token: "command:local:run", Args: property.NewMap(nil)})
	if err == nil || !strings.Contains(err.Error(), "not implemented by the stand-in") {
		t.Fatalf("local.run: %v", err)
	}
	resp, err = h.server.Check(p.CheckRequest{Urn: r.urn, Inputs: props(map[string]any{"logging": "verbose"})})
	if err != nil || len(resp.Failures) != 1 || resp.Failures[0].Property != "logging" {
		t.Fatalf("logging verbose: %v %+v", err, resp.Failures)
	}
}

// During a preview, inputs may be unknown (a trigger that is the ID of a container still to
// be made, a connection to a host still to be made): check and preview accept them and keep
// them unknown; the diff reports a replacement for an unknown trigger.
func TestPreviewWithUnknowns(t *testing.T) {
	h := newHarness(t)
	unknown := property.New(property.Computed)
	local := h.resource(localCommandToken, "unknown-trigger")
	out, err := local.create(props(map[string]any{"create": "true", "stdin": unknown,
		"triggers": []any{unknown}}), true)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Get("stdin").IsComputed() || !out.Get("stdout").IsComputed() {
		t.Fatalf("preview outputs: %v", out)
	}
	if _, err := local.create(props(map[string]any{"create": "true", "triggers": []any{"c1"}}), false); err != nil {
		t.Fatal(err)
	}
	d := local.diff(props(map[string]any{"create": "true", "triggers": []any{unknown}}))
	if d.DetailedDiff["triggers[0]"].Kind != p.UpdateReplace {
		t.Fatalf("unknown trigger: %+v", d)
	}

	for name, conn := range map[string]property.Value{
		"unknown connection": unknown,
		"unknown host":       property.New(props(map[string]any{"host": unknown, "user": "admin", "hostKey": unknown})).WithSecret(true),
	} {
		remote := h.resource(remoteCommandToken, "remote")
		out, err := remote.create(props(map[string]any{"connection": conn, "create": "true"}), true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !out.Get("stdout").IsComputed() {
			t.Fatalf("%s: preview outputs: %v", name, out)
		}
	}
}
