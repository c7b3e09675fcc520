package main

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/blkiodev"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const mib = 1024 * 1024

// createSpec is what the Engine API's container create takes, made from the inputs (each
// input as the TF docs describe it).
type createSpec struct {
	config   *container.Config
	host     *container.HostConfig
	platform *ocispec.Platform
}

func buildCreateSpec(in *ContainerArgs) (*createSpec, error) {
	cfg := &container.Config{
		Image:      in.Image,
		Hostname:   str(in.Hostname),
		Domainname: str(in.Domainname),
		User:       str(in.User),
		Tty:        flag(in.Tty, false),
		OpenStdin:  flag(in.StdinOpen, false),
		StopSignal: str(in.StopSignal),
		Env:        in.Envs,
		Entrypoint: in.Entrypoints,
		WorkingDir: str(in.WorkingDir),
		Labels:     containerLabelMap(in.Labels),
	}
	if num(in.StopTimeout) != 0 {
		cfg.StopTimeout = ptr(*in.StopTimeout)
	}
	for _, c := range in.Command {
		if c == "" {
			return nil, errors.New("values for command may not be empty")
		}
	}
	cfg.Cmd = in.Command
	host := &container.HostConfig{
		Privileged:      flag(in.Privileged, false),
		PublishAllPorts: flag(in.PublishAllPorts, false),
		RestartPolicy: container.RestartPolicy{
			Name:              container.RestartPolicyMode(str(in.Restart)),
			MaximumRetryCount: num(in.MaxRetryCount),
		},
		Runtime:        str(in.Runtime),
		AutoRemove:     flag(in.Rm, false),
		ReadonlyRootfs: flag(in.ReadOnly, false),
		LogConfig:      container.LogConfig{Type: str(in.LogDriver), Config: in.LogOpts},
		Tmpfs:          in.Tmpfs,
		DNS:            in.DNS,
		DNSOptions:     in.DNSOpts,
		DNSSearch:      in.DNSSearches,
		NetworkMode:    container.NetworkMode(str(in.NetworkMode)),
		UsernsMode:     container.UsernsMode(str(in.UsernsMode)),
		PidMode:        container.PidMode(str(in.PidMode)),
		IpcMode:        container.IpcMode(str(in.IpcMode)),
		Sysctls:        in.Sysctls,
		StorageOpt:     in.StorageOpts,
		GroupAdd:       in.GroupAdds,
		CgroupnsMode:   container.CgroupnsMode(str(in.CgroupnsMode)),
		// Always explicit, so the daemon's default does not apply (as upstream).
		Init: ptr(flag(in.Init, false)),
	}
	host.CgroupParent = str(in.CgroupParent)
	host.DeviceCgroupRules = in.DeviceCgroupRules
	host.Memory = int64(num(in.Memory)) * mib
	host.MemoryReservation = int64(num(in.MemoryReservation)) * mib
	if swap := int64(num(in.MemorySwap)); swap > 0 {
		host.MemorySwap = swap * mib
	} else {
		host.MemorySwap = swap
	}
	host.ShmSize = int64(num(in.ShmSize)) * mib
	host.CPUShares = int64(num(in.CPUShares))
	host.CpusetCpus = str(in.CPUSet)
	if cpus := str(in.CPUs); cpus != "" {
		nano, err := parseCPUs(cpus)
		if err != nil {
			return nil, err
		}
		host.NanoCPUs = nano // cpuPeriod and cpuQuota are ignored then (SDK)
	} else {
		host.CPUPeriod = int64(num(in.CPUPeriod))
		host.CPUQuota = int64(num(in.CPUQuota))
	}
	if cm := str(in.CgroupnsMode); cm != "" && cm != "private" && cm != "host" {
		return nil, fmt.Errorf("cgroupnsMode %q: must be either 'private', 'host' or empty", cm)
	}
	if r := str(in.Restart); r != "no" && r != "on-failure" && r != "always" && r != "unless-stopped" {
		return nil, fmt.Errorf("restart %q: must be one of 'no', 'on-failure', 'always', 'unless-stopped'", r)
	}

	// Ports: each is exposed, and bound when an external port or an IP is given.
	for _, p := range in.Ports {
		port, err := nat.NewPort(orDefault(str(p.Protocol), "tcp"), strconv.Itoa(p.Internal))
		if err != nil {
			return nil, fmt.Errorf("port %d: %w", p.Internal, err)
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = nat.PortSet{}
			host.PortBindings = nat.PortMap{}
		}
		cfg.ExposedPorts[port] = struct{}{}
		binding := nat.PortBinding{HostIP: str(p.IP)}
		if p.External != nil {
			binding.HostPort = strconv.Itoa(*p.External)
		}
		if p.External != nil || p.IP != nil {
			host.PortBindings[port] = append(host.PortBindings[port], binding)
		}
	}

	// Volumes: a host path or a volume name is a bind, a bare container path an anonymous
	// volume, fromContainer a volumes-from (SDK ContainerVolumeArgs).
	for _, v := range in.Volumes {
		cpath, from := str(v.ContainerPath), str(v.FromContainer)
		source := str(v.VolumeName)
		if hp := str(v.HostPath); hp != "" {
			source = hp // host_path takes precedence over volume_name (SDK)
		}
		switch {
		case from == "" && cpath == "":
			return nil, errors.New("volume entry without container path or source container")
		case from != "" && cpath != "":
			return nil, errors.New("both a container and a path specified in a volume entry")
		case from != "":
			host.VolumesFrom = append(host.VolumesFrom, from)
		default:
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[cpath] = struct{}{}
			if source != "" {
				mode := "rw"
				if flag(v.ReadOnly, false) {
					mode = "ro"
				}
				if rl := str(v.SelinuxRelabel); rl != "" {
					mode += "," + rl
				}
				host.Binds = append(host.Binds, source+":"+cpath+":"+mode)
			}
		}
	}
	for _, m := range in.Mounts {
		mnt := mount.Mount{Type: mount.Type(m.Type), Target: m.Target, Source: str(m.Source), ReadOnly: flag(m.ReadOnly, false)}
		switch mnt.Type {
		case mount.TypeBind:
			if m.BindOptions != nil {
				mnt.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(str(m.BindOptions.Propagation))}
			}
		case mount.TypeVolume:
			if vo := m.VolumeOptions; vo != nil {
				mnt.VolumeOptions = &mount.VolumeOptions{NoCopy: flag(vo.NoCopy, false), Subpath: str(vo.Subpath)}
				for _, l := range vo.Labels {
					if mnt.VolumeOptions.Labels == nil {
						mnt.VolumeOptions.Labels = map[string]string{}
					}
					mnt.VolumeOptions.Labels[l.Label] = l.Value
				}
				if vo.DriverName != nil || len(vo.DriverOptions) > 0 {
					mnt.VolumeOptions.DriverConfig = &mount.Driver{Name: str(vo.DriverName), Options: vo.DriverOptions}
				}
			}
		case mount.TypeTmpfs:
			if to := m.TmpfsOptions; to != nil {
				mnt.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: int64(num(to.SizeBytes)), Mode: os.FileMode(num(to.Mode))}
			}
		default:
			return nil, fmt.Errorf("mount %s: type %q must be bind, volume or tmpfs", m.Target, m.Type)
		}
		host.Mounts = append(host.Mounts, mnt)
	}

	for _, h := range in.Hosts {
		host.ExtraHosts = append(host.ExtraHosts, h.Host+":"+h.IP)
	}
	for _, u := range in.Ulimits {
		host.Ulimits = append(host.Ulimits, &container.Ulimit{Name: u.Name, Soft: int64(u.Soft), Hard: int64(u.Hard)})
	}
	if c := in.Capabilities; c != nil {
		host.CapAdd, host.CapDrop = c.Adds, c.Drops
	}
	for _, d := range in.Devices {
		host.Devices = append(host.Devices, container.DeviceMapping{
			PathOnHost: d.HostPath, PathInContainer: orDefault(str(d.ContainerPath), d.HostPath),
			CgroupPermissions: orDefault(str(d.Permissions), "rwm"),
		})
	}
	host.BlkioDeviceReadBps = throttles(in.DeviceReadBps)
	host.BlkioDeviceReadIOps = throttles(in.DeviceReadIops)
	host.BlkioDeviceWriteBps = throttles(in.DeviceWriteBps)
	host.BlkioDeviceWriteIOps = throttles(in.DeviceWriteIops)
	for _, r := range in.DeviceRequests {
		req := container.DeviceRequest{Driver: str(r.Driver), Count: num(r.Count), DeviceIDs: r.DeviceIDs, Options: r.Options}
		if len(r.Capabilities) > 0 {
			req.Capabilities = [][]string{r.Capabilities}
		}
		host.DeviceRequests = append(host.DeviceRequests, req)
	}
	if g := str(in.Gpus); g != "" {
		if len(in.DeviceRequests) > 0 {
			return nil, errors.New("gpus conflicts with deviceRequests")
		}
		req, err := parseGpus(g)
		if err != nil {
			return nil, err
		}
		host.DeviceRequests = []container.DeviceRequest{req}
	}
	// "systempaths=unconfined" is the CLI's option for unmasking /proc and /sys: it is not sent
	// to the daemon as such.
	for _, opt := range in.SecurityOpts {
		if opt == "systempaths=unconfined" {
			host.MaskedPaths, host.ReadonlyPaths = []string{}, []string{}
			continue
		}
		host.SecurityOpt = append(host.SecurityOpt, opt)
	}
	if hc := in.Healthcheck; hc != nil {
		h := &container.HealthConfig{Test: hc.Tests, Retries: num(hc.Retries)}
		var err error
		for _, d := range []struct {
			dst  *time.Duration
			src  *string
			name string
		}{{&h.Interval, hc.Interval, "interval"}, {&h.Timeout, hc.Timeout, "timeout"},
			{&h.StartPeriod, hc.StartPeriod, "startPeriod"}, {&h.StartInterval, hc.StartInterval, "startInterval"}} {
			if *d.dst, err = parseDuration(str(d.src)); err != nil {
				return nil, fmt.Errorf("healthcheck %s: %w", d.name, err)
			}
		}
		cfg.Healthcheck = h
	}
	spec := &createSpec{config: cfg, host: host}
	if pl := str(in.Platform); pl != "" {
		parts := strings.Split(pl, "/")
		spec.platform = &ocispec.Platform{OS: parts[0]}
		if len(parts) > 1 {
			spec.platform.Architecture = parts[1]
		}
		if len(parts) > 2 {
			spec.platform.Variant = parts[2]
		}
	}
	return spec, nil
}

// endpointSettings is how the container joins one of networksAdvanced.
func endpointSettings(n ContainerNetworksAdvanced) *network.EndpointSettings {
	es := &network.EndpointSettings{
		Aliases:    n.Aliases,
		MacAddress: str(n.MacAddress),
		GwPriority: num(n.GwPriority),
		IPAMConfig: &network.EndpointIPAMConfig{
			IPv4Address: str(n.Ipv4Address), IPv6Address: str(n.Ipv6Address), LinkLocalIPs: n.LinkLocalIps,
		},
	}
	for _, o := range n.DriverOpts {
		k, v, _ := strings.Cut(o, "=")
		if es.DriverOpts == nil {
			es.DriverOpts = map[string]string{}
		}
		es.DriverOpts[k] = v
	}
	return es
}

// uploadArchive is the tar archive of the uploads, to be copied to the container's "/".
func uploadArchive(uploads []ContainerUpload) (*bytes.Buffer, error) {
	buf := &bytes.Buffer{}
	tw := tar.NewWriter(buf)
	for _, u := range uploads {
		var content []byte
		set := 0
		if c := str(u.Content); c != "" {
			content, set = []byte(c), set+1
		}
		if c := str(u.ContentBase64); c != "" {
			b, err := base64.StdEncoding.DecodeString(c)
			if err != nil {
				return nil, fmt.Errorf("upload %s: contentBase64: %w", u.File, err)
			}
			content, set = b, set+1
		}
		if s := str(u.Source); s != "" {
			b, err := os.ReadFile(s)
			if err != nil {
				return nil, fmt.Errorf("upload %s: %w", u.File, err)
			}
			content, set = b, set+1
		}
		if set != 1 {
			return nil, fmt.Errorf("upload %s: exactly one of content, contentBase64 and source must be set", u.File)
		}
		mode := int64(0o644)
		if flag(u.Executable, false) {
			mode = 0o744
		}
		if p := str(u.Permissions); p != "" {
			m, err := strconv.ParseInt(p, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("upload %s: permissions %q: %w", u.File, p, err)
			}
			mode = m
		}
		hdr := &tar.Header{Name: u.File, Mode: mode, Size: int64(len(content)), ModTime: time.Now()}
		for _, id := range []struct {
			dst  *int
			src  *string
			name string
		}{{&hdr.Uid, u.Owner, "owner"}, {&hdr.Gid, u.Group, "group"}} {
			if s := str(id.src); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil {
					return nil, fmt.Errorf("upload %s: %s %q: only numeric IDs are implemented by the "+
						"stand-in pulumi-resource-docker", u.File, id.name, s)
				}
				*id.dst = n
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	return buf, tw.Close()
}

func throttles[T ContainerDeviceReadBp | ContainerDeviceReadIop | ContainerDeviceWriteBp | ContainerDeviceWriteIop](in []T) []*blkiodev.ThrottleDevice {
	var out []*blkiodev.ThrottleDevice
	for _, t := range in {
		d := ContainerDeviceReadBp(t)
		out = append(out, &blkiodev.ThrottleDevice{Path: d.Path, Rate: uint64(d.Rate)})
	}
	return out
}

func containerLabelMap(labels []ContainerLabel) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, l := range labels {
		m[l.Label] = l.Value
	}
	return m
}

// parseCPUs turns a decimal number of CPUs ("1.5") into nano-CPUs.
func parseCPUs(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("cpus %q: not a number of CPUs", s)
	}
	return int64(math.Round(f * 1e9)), nil
}

// formatCPUs is parseCPUs' inverse.
func formatCPUs(nano int64) string {
	return strconv.FormatFloat(float64(nano)/1e9, 'f', -1, 64)
}

// parseGpus reads the docker CLI's --gpus forms: "all", a count, or "device=ID[,ID...]".
func parseGpus(s string) (container.DeviceRequest, error) {
	req := container.DeviceRequest{Capabilities: [][]string{{"gpu"}}}
	v := strings.Trim(strings.TrimSpace(s), `"'`)
	switch {
	case v == "all":
		req.Count = -1
	case strings.HasPrefix(v, "device="):
		req.DeviceIDs = strings.Split(strings.TrimPrefix(v, "device="), ",")
	default:
		n, err := strconv.Atoi(strings.TrimPrefix(v, "count="))
		if err != nil {
			return req, fmt.Errorf("gpus %q: expected all, a count or device=ID[,ID...]", s)
		}
		req.Count = n
	}
	return req, nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("must not be negative")
	}
	return d, err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
