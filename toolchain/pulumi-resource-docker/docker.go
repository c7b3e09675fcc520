package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker/docker/client"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
)

// Config is the provider configuration (SDK config/vars.py). Non-string settings arrive
// JSON-encoded as strings (SDK provider.py passes them through to_json), so every field is a
// string here; only host and certPath are used.
type Config struct {
	Host                     *string `pulumi:"host,optional"`
	CertPath                 *string `pulumi:"certPath,optional"`
	CaMaterial               *string `pulumi:"caMaterial,optional"`
	CertMaterial             *string `pulumi:"certMaterial,optional"`
	KeyMaterial              *string `pulumi:"keyMaterial,optional"`
	Context                  *string `pulumi:"context,optional"`
	SSHOpts                  *string `pulumi:"sshOpts,optional"`
	RegistryAuth             *string `pulumi:"registryAuth,optional"`
	DisableDockerDaemonCheck *string `pulumi:"disableDockerDaemonCheck,optional"`
}

func (c *Config) Annotate(a infer.Annotator) {
	a.Describe(&c.Host, "The Docker daemon address (default: DOCKER_HOST, else the local socket).")
	a.Describe(&c.CertPath, "Path to a directory with ca.pem, cert.pem and key.pem for TLS.")
}

// Configure refuses the settings this stand-in does not implement, so that they fail clearly
// instead of being ignored.
func (c *Config) Configure(context.Context) error {
	unsupported := map[string]*string{
		"caMaterial": c.CaMaterial, "certMaterial": c.CertMaterial, "keyMaterial": c.KeyMaterial,
		"context": c.Context, "sshOpts": c.SSHOpts, "registryAuth": c.RegistryAuth,
	}
	for _, name := range []string{"caMaterial", "certMaterial", "keyMaterial", "context", "sshOpts", "registryAuth"} {
		if v := unsupported[name]; v != nil && *v != "" && *v != "[]" && *v != "null" {
			return fmt.Errorf("docker:%s is not implemented by the stand-in pulumi-resource-docker "+
				"(only docker:host and docker:certPath are)", name)
		}
	}
	return nil
}

var (
	dockerMu     sync.Mutex
	dockerClient *client.Client
)

// docker returns the Engine API client, made once per process: from the provider config when
// it names a host, else from the environment as the docker CLI does (DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION), negotiating the API version.
func docker(ctx context.Context) (*client.Client, error) {
	dockerMu.Lock()
	defer dockerMu.Unlock()
	if dockerClient != nil {
		return dockerClient, nil
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	cfg := infer.GetConfig[Config](ctx)
	if cfg.Host != nil && *cfg.Host != "" {
		if strings.HasPrefix(*cfg.Host, "ssh://") {
			return nil, errors.New("docker:host " + *cfg.Host + ": ssh:// hosts are not implemented by the stand-in pulumi-resource-docker")
		}
		opts = append(opts, client.WithHost(*cfg.Host))
	}
	if cfg.CertPath != nil && *cfg.CertPath != "" {
		dir := *cfg.CertPath
		opts = append(opts, client.WithTLSClientConfig(
			filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to the Docker engine: %w", err)
	}
	dockerClient = c
	return c, nil
}

// isNotFound is true for the Engine API's "no such ..." answers.
func isNotFound(err error) bool {
	return err != nil && (client.IsErrNotFound(err) || strings.Contains(strings.ToLower(err.Error()), "no such"))
}

// Small helpers for the optional (pointer) fields of the resource types.

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func num(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func flag(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

// notImplemented is the Check failure for an input this stand-in does not implement.
func notImplemented(property string) p.CheckFailure {
	return p.CheckFailure{Property: property, Reason: property +
		" is not implemented by the stand-in pulumi-resource-docker (toolchain/pulumi-resource-docker)"}
}
