// Command pulumi-resource-docker is a stand-in, made here, for the Pulumi Docker provider
// plugin (package `docker`, version 5.2.0): it serves the three resources of the Python SDK
// pulumi_docker==5.2.0 that this project's program declares (components/targets/local.py), under the
// same type tokens and property names and with the same observable behaviour, so that the
// unchanged program runs against it.
//
// Why it exists: upstream's plugin is built from the Go module
// github.com/pulumi/pulumi-docker/provider/v5 (v4 before it), which bridges the Terraform
// provider github.com/kreuzwerker/terraform-provider-docker, and the Go module proxy this
// project builds from refuses every version of all three (403 Forbidden, "This module version
// is not available", e.g. for provider/v5@v5.0.0-20260626165050-e944612c4c97). No upstream
// code is used here. It is built with pulumi-go-provider's infer package and talks to the
// Docker Engine API with Docker's Go client (github.com/docker/docker/client), configured as
// the docker CLI is, from DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and
// DOCKER_API_VERSION (the API version is negotiated), or from the provider config.
//
// Sources of the behaviour, cited below as: "SDK" (the Python SDK's files pulumi_docker/
// remote_image.py, network.py, container.py, _inputs.py, outputs.py, provider.py and
// pulumi-plugin.json: their types and docstrings), "docs" (pulumi-docker's API documentation
// of RemoteImage, Network and Container, which reproduces the Terraform docker provider's
// documentation of docker_image, docker_network and docker_container), and "TF schema" (that
// provider's attribute flags: which attributes replace on change, have defaults, are computed
// or are sets, and which ones its read sets from `docker inspect`; learnt from its published
// documentation and source, read for behaviour only, nothing copied).
//
// What it implements:
//
//   - docker:index/remoteImage:RemoteImage (image.go). A local image of that `name` is used as
//     is, without pulling (docs: the image is pulled to the Docker host; the project relies on a
//     locally built node image); otherwise it is pulled (for `platform` when set). Outputs:
//     imageId, the image's ID (sha256:...), and repoDigest, its repo digest of the same
//     repository, or its only one, or "" (SDK: "may not be populated when building an image").
//     The resource ID is the image ID followed by the name (TF schema). Delete removes the image
//     unless keepLocally, forcibly when forceRemove (SDK). A refresh reports the resource
//     deleted when no local image has that name, and picks up the ID the name now points to.
//     name, platform, pullTriggers and triggers replace (SDK: triggers "will force the
//     RemoteImage resource to be replaced"); keepLocally and forceRemove update in place.
//   - docker:index/network:Network (network.go): name, driver, options, internal, attachable,
//     ingress, ipv6, ipamDriver (default "default", SDK), ipamOptions, ipamConfigs (subnet,
//     gateway, ipRange, auxAddress) and labels; output scope (SDK). Every change replaces (TF
//     schema: no update). A refresh reads every property back from `docker network inspect`.
//     Delete retries for 30 seconds while containers are still leaving the network.
//   - docker:index/container:Container (container*.go): every input of the SDK's ContainerArgs
//     (docs for each one's meaning), sent to the Engine API's container create. Create: the
//     image must exist locally, or is pulled; the container is created on the default bridge
//     and, when networksAdvanced is set, moved to those networks (ipv4Address, ipv6Address,
//     aliases, linkLocalIps, macAddress, driverOpts, gwPriority); uploads are copied in; it is
//     started unless start=false; with wait, Create waits up to waitTimeout seconds for a
//     healthy healthcheck; with attach, for the container to exit (its output kept as
//     containerLogs when logs is set); otherwise, with mustRun (docs: "the Docker container will
//     be kept running"), it must be running within containerReadRefreshTimeoutMilliseconds
//     (docs: "The total number of milliseconds to wait for the container to reach status
//     'running'") and still a second later, or Create fails with the container's status, exit
//     code and last 20 log lines. A container whose Create fails is removed, with its volumes
//     (a choice of this stand-in: upstream keeps it as a tainted resource). Delete stops it
//     first when destroyGraceSeconds is set (docs), then force-removes it with its anonymous
//     volumes unless removeVolumes is false (SDK: "Defaults to `true`"), and waits until it is
//     gone. A refresh reports a container that is gone as deleted, and reads back from `docker
//     inspect` what the TF schema reads back: name, image (as an ID when given as one), hostname,
//     domainname, command, entrypoints, user, workingDir, dns, dnsOpts, dnsSearches,
//     securityOpts, publishAllPorts, privileged, restart, maxRetryCount, init, capabilities,
//     runtime, platform, mounts, tmpfs, hosts, ulimits and devices (when set), deviceRead/Write
//     Bps/Iops, gpus or deviceRequests (when set), memory, memoryReservation, memorySwap,
//     shmSize, cpus, cpuShares, cpuSet, logDriver, logOpts (when set), storageOpts, networkMode,
//     pidMode (when set), usernsMode, healthcheck, sysctls, ipcMode, groupAdds, tty, stdinOpen,
//     stopSignal, stopTimeout, rm, readOnly, ports (when set, sorted by internal port and
//     protocol), and the outputs networkDatas (sorted by network name), bridge and exitCode (of a
//     stopped container). envs and labels are not read back (TF schema: the image adds its own),
//     nor volumes, networksAdvanced, cgroupnsMode, cgroupParent and uploads: they stay as
//     written. A stopped container reads back mustRun=false (docs: "If your container is
//     stopped, Terraform will set must_run to false and this will trigger a change"); its port
//     bindings read back empty (as upstream), which replaces it when it publishes ports, and
//     otherwise the update starts it again.
//   - Replace or update (TF schema): a change of any Container input replaces it, except rm,
//     start, wait, waitTimeout, attach, logs, mustRun, restart, maxRetryCount, removeVolumes,
//     tmpfs, deviceRead/Write Bps/Iops, destroyGraceSeconds, memory, memoryReservation,
//     memorySwap, cpuShares, cpuSet, cpuPeriod, cpuQuota, healthcheck, init and
//     containerReadRefreshTimeoutMilliseconds, which update in place: restart, maxRetryCount,
//     memory*, cpuShares, cpuSet and the device rates through `docker update`, mustRun
//     false->true by starting the container, the others in the state only (as upstream: a
//     changed tmpfs, init, healthcheck, cpuPeriod or cpuQuota does not reach the container
//     until it is replaced for another reason).
//   - Diff (diff.go), for all three: each input the program sets is compared with the state's
//     value (after a refresh, the value read back), as upstream's plan compares configuration
//     with state, so a value Docker reports differently is a change right after create (e.g.
//     the label=disable Docker adds to a privileged container's securityOpts). false, 0, "" and
//     empty lists and maps count as unset; set-typed inputs (TF schema: labels, envs,
//     securityOpts, volumes, networksAdvanced, dns*, hosts, mounts, ...) compare without order,
//     lists (ports, command, entrypoints, healthcheck tests) in order; a computed input the
//     program leaves unset (hostname, command, envs, labels, logDriver, a port's external
//     port, ...) is no change; an unknown value in a preview is a change; ignoreChanges paths
//     are honoured. A replacement of a Container or Network whose name the program set is
//     delete-before-replace, as the Pulumi bridge makes it for a name that is not auto-named.
//   - Check: the documented defaults (SDK/docs: attach, logs, rm, readOnly, tty, stdinOpen and
//     wait false; mustRun, start and removeVolumes true; restart "no"; networkMode "bridge";
//     waitTimeout 60; memoryReservation 0; containerReadRefreshTimeoutMilliseconds 15000; a
//     port's ip "0.0.0.0" and protocol "tcp"; a device's permissions "rwm"; healthcheck
//     durations "0s" and retries 0; deviceRequests driver "cdi" and count 0; ipamDriver
//     "default"; RemoteImage platform ""). An unset Container or Network name is auto-named
//     "<resource name>-<7 hex digits>" and keeps that name, as Pulumi auto-names bridged
//     resources.
//   - Provider config (SDK provider.py): host (tcp:// or unix://) and certPath (ca.pem,
//     cert.pem and key.pem for TLS).
//
// Not implemented, each failing with an error that names this stand-in: RemoteImage.build
// (refused by Check); the provider config caMaterial, certMaterial, keyMaterial, context,
// sshOpts and registryAuth, and ssh:// hosts; upload owner or group given as a name (numeric
// IDs work); every other resource and function of the package (Image, RegistryImage, Volume,
// Service, ServiceConfig, Secret, Tag, Plugin, BuildxBuilder, the get* functions).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

// The package name and version the Python SDK asks the engine for (SDK pulumi-plugin.json).
const (
	packageName    = "docker"
	packageVersion = "5.2.0"
)

// The resource tokens this stand-in serves (SDK: the type passed to CustomResource.__init__).
const (
	remoteImageToken tokens.Type = "docker:index/remoteImage:RemoteImage"
	networkToken     tokens.Type = "docker:index/network:Network"
	containerToken   tokens.Type = "docker:index/container:Container"
)

func main() {
	prov, err := newProvider()
	if err == nil {
		err = p.RunProvider(context.Background(), packageName, packageVersion, prov)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

// newProvider builds the provider: infer serves the three resources, and Diff is replaced by
// diff.go's (which works on the raw property maps, so it sees unknowns, and knows which
// properties replace and which are sets).
func newProvider() (p.Provider, error) {
	fallback := p.Provider{
		Check: func(_ context.Context, req p.CheckRequest) (p.CheckResponse, error) {
			return p.CheckResponse{}, notServed(string(req.Urn.Type()))
		},
		Invoke: func(_ context.Context, req p.InvokeRequest) (p.InvokeResponse, error) {
			return p.InvokeResponse{}, notServed(string(req.Token))
		},
	}
	prov, err := infer.NewProviderBuilder().
		WithDisplayName("Docker (stand-in)").
		WithDescription("A stand-in for the Pulumi Docker provider: RemoteImage, Network and Container.").
		WithConfig(infer.Config(&Config{})).
		WithResources(
			infer.Resource(RemoteImage{}),
			infer.Resource(Network{}),
			infer.Resource(Container{}),
		).
		WithWrapped(fallback).
		Build()
	if err != nil {
		return p.Provider{}, err
	}
	// Tokens are module/member paths under index (docker:index/container:Container), as in
	// upstream's schema, whose meta.moduleFormat says so; infer has no option for it.
	inferSchema := prov.GetSchema
	prov.GetSchema = func(ctx context.Context, req p.GetSchemaRequest) (p.GetSchemaResponse, error) {
		resp, err := inferSchema(ctx, req)
		if err != nil {
			return resp, err
		}
		var schema map[string]any
		if err := json.Unmarshal([]byte(resp.Schema), &schema); err != nil {
			return resp, err
		}
		meta, _ := schema["meta"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		meta["moduleFormat"] = "(.*)(?:/[^/]*)"
		schema["meta"] = meta
		out, err := json.Marshal(schema)
		return p.GetSchemaResponse{Schema: string(out)}, err
	}
	inferDiff := prov.Diff
	prov.Diff = func(ctx context.Context, req p.DiffRequest) (p.DiffResponse, error) {
		if spec, ok := diffSpecs[req.Urn.Type()]; ok {
			return diffResource(req, spec)
		}
		return inferDiff(ctx, req)
	}
	return prov, nil
}

func notServed(token string) error {
	return fmt.Errorf("%s is not implemented by the stand-in pulumi-resource-docker "+
		"(toolchain/pulumi-resource-docker): only %s, %s and %s are",
		token, remoteImageToken, networkToken, containerToken)
}
