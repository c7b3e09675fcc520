// Command pulumi-resource-command is a stand-in, made here, for the Pulumi Command provider
// plugin (package `command`, version 1.2.1): it serves the resources of the Python SDK
// pulumi_command==1.2.1 that this project's program declares, under the same type tokens
// and property names, so the unchanged program runs against it.
//
// Why it exists: upstream's plugin is the Go module github.com/pulumi/pulumi-command/provider,
// and the Go module proxy this project builds from refuses every version of it (403 Forbidden,
// "This module version is not available", for the pseudo-version of every release commit from
// v0.1.0 to v1.2.1). No upstream code is used here; the behaviour below was written from the
// Python SDK's files (pulumi_command/local/command.py, remote/command.py, remote/_inputs.py,
// the enums in */_enums.py and pulumi-plugin.json, cited as "SDK") and pulumi-command's
// documentation (the registry's API docs for command 1.x, cited as "docs"). It is built with
// pulumi-go-provider's infer package and golang.org/x/crypto/ssh, against sdk/v3 v3.260.0 (the
// CLI's version). pulumi-go-provider is at v1.5.0: v1.3.0 does not compile against pkg/v3
// v3.260.0 (schema.PackageSpec.Provider became a pointer), and v1.6.0 is refused by the proxy.
//
// What it implements:
//
//   - command:local:Command (local.go) with inputs create, update, delete, dir, environment,
//     interpreter (default ["/bin/sh", "-c"]: SDK), stdin, triggers, logging,
//     addPreviousOutputInEnv (default true: SDK), and outputs stdout and stderr plus every input
//     (SDK: the Command class's output properties).
//   - command:remote:Command (remote.go, ssh.go): the same commands run over SSH with the
//     `connection` input (host, port 22, user "root", password, privateKey, privateKeyPassword,
//     agentSocketPath defaulting to SSH_AUTH_SOCK, dialErrorLimit 10 with -1 for unlimited,
//     perDialTimeout 15 seconds with 0 for no limit, hostKey, proxy: SDK, remote/_inputs.py).
//   - Lifecycle (SDK docstrings of create/update/delete/triggers, docs): preview runs nothing;
//     create runs `create` once; a change of `triggers` replaces the resource (the SDK also
//     declares replace_on_changes=["triggers[*]"]), so the engine deletes the old one with its
//     old inputs and creates the new one; a change of any other input is an in-place update
//     that runs `update`, or `create` again when `update` is unset; delete runs `delete` when set,
//     with the old state's environment and stdin. Update and delete see the previous stdout and
//     stderr as PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR unless addPreviousOutputInEnv is
//     false (SDK). Refresh (Read) returns the state unchanged: a command has nothing to read back.
//   - A non-zero exit status fails the operation (docs: "A command is considered to have failed
//     when it finished with a non-zero exit code. This will fail the CRUD step"); the error names
//     the exit status and, unless logging is "none", ends with the last lines of stderr and
//     stdout.
//   - logging (SDK, */_enums.py): "stdout", "stderr", "stdoutAndStderr" (the default) or "none"
//     chooses which streams are sent to the engine log line by line while the command runs;
//     stdout and stderr are captured as outputs either way ("This doesn't affect the capturing
//     of stdout and stderr as outputs"). With "none" nothing of the output is logged or put in an
//     error message.
//   - Remote specifics (SDK, remote/_inputs.py and remote/command.py): stdin is written to the
//     session's stdin; environment (and PULUMI_COMMAND_STDOUT/STDERR) is sent with the SSH
//     "env" request, which a server may refuse (environment: "this only works if the SSH server
//     is configured to accept these variables via AcceptEnv"), and a refusal is not an error;
//     dialing is retried up to dialErrorLimit times, each attempt bounded by perDialTimeout;
//     hostKey, when set, is the only host key accepted ("The expected host key to verify the
//     server's identity. If not provided, the host key will be ignored."); proxy is a bastion
//     through which the target is reached (an SSH direct-tcpip channel); privateKey is
//     preferred over password ("This takes preference over the password if provided").
//
// Choices of this stand-in where no source says what upstream does: one trailing newline is
// dropped from stdout and stderr; dial attempts are spaced by a backoff from 1 to 15 seconds; a
// host key that does not match fails at once instead of being retried (nothing was sent to
// that server yet); only the pinned key's algorithm is asked for, so a server with several host
// keys presents the pinned one; keys of the SSH agent are offered after privateKey; an
// environment variable of the program that the server refuses is reported as a warning naming
// the variable (never its value), a refused PULUMI_COMMAND_STDOUT/STDERR is not.
//
// What it does not implement, and fails clearly on: assetPaths/archivePaths (and so the assets
// and archive outputs), command:remote:CopyToRemote, command:remote:CopyFile and the
// command:local:run function. The program (components/transport.py, components/targets/local.py) uses
// none of them.
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

// The package name and version the Python SDK asks the engine for (pulumi-plugin.json).
const (
	packageName    = "command"
	packageVersion = "1.2.1"
)

// Resource and function tokens of the SDK that this stand-in does not serve.
var notImplemented = map[tokens.Type]bool{
	"command:remote:CopyToRemote": true,
	"command:remote:CopyFile":     true,
	"command:local:run":           true,
}

func main() {
	prov, err := newProvider(nil)
	if err == nil {
		err = p.RunProvider(context.Background(), packageName, packageVersion, prov)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

// newProvider builds the provider. logf, when not nil, receives every line a command logs
// (for tests); otherwise lines go to the engine log of the resource being operated on.
func newProvider(logf lineLogger) (p.Provider, error) {
	fallback := p.Provider{
		Check: func(_ context.Context, req p.CheckRequest) (p.CheckResponse, error) {
			return p.CheckResponse{}, notServed(req.Urn.Type())
		},
		Invoke: func(_ context.Context, req p.InvokeRequest) (p.InvokeResponse, error) {
			return p.InvokeResponse{}, notServed(req.Token)
		},
	}
	prov, err := infer.NewProviderBuilder().
		WithDisplayName("Command (stand-in)").
		WithDescription("A stand-in for the Pulumi Command provider: local and remote (SSH) commands.").
		WithResources(
			infer.Resource(&LocalCommand{logf: logf}),
			infer.Resource(&RemoteCommand{logf: logf}),
		).
		WithWrapped(fallback).
		Build()
	if err != nil {
		return p.Provider{}, err
	}
	// infer's own diff cannot tell replacing inputs from updating ones below the top level
	// (it sees `triggers[0]`, not `triggers`): both command types use diffCommand instead.
	inferDiff := prov.Diff
	prov.Diff = func(ctx context.Context, req p.DiffRequest) (p.DiffResponse, error) {
		switch req.Urn.Type() {
		case localCommandToken, remoteCommandToken:
			return diffCommand(req)
		}
		return inferDiff(ctx, req)
	}
	return prov, nil
}

func notServed(token tokens.Type) error {
	if notImplemented[token] {
		return fmt.Errorf("%s is not implemented by the stand-in pulumi-resource-command "+
			"(toolchain/pulumi-resource-command): only command:local:Command and "+
			"command:remote:Command are", token)
	}
	return fmt.Errorf("%s is not a type of the command package", token)
}
