package main

import (
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/blkiodev"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
)

// containerReadBack names the inputs a refresh reads back from `docker inspect` (TF schema:
// what upstream's read sets); the other inputs stay as last written: envs and labels (not read
// back on purpose, since the image adds its own), volumes, networksAdvanced, cgroupnsMode,
// cgroupParent, uploads, and the provider's own settings (attach, logs, start, wait...).
var containerReadBack = map[string]bool{
	"name": true, "rm": true, "readOnly": true, "image": true, "hostname": true,
	"domainname": true, "command": true, "entrypoints": true, "user": true, "dns": true,
	"dnsOpts": true, "securityOpts": true, "dnsSearches": true, "publishAllPorts": true,
	"restart": true, "maxRetryCount": true, "init": true, "workingDir": true,
	"capabilities": true, "runtime": true, "platform": true, "mounts": true, "tmpfs": true,
	"hosts": true, "ulimits": true, "privileged": true, "devices": true, "deviceReadBps": true,
	"deviceReadIops": true, "deviceWriteBps": true, "deviceWriteIops": true, "gpus": true,
	"deviceRequests": true, "deviceCgroupRules": true, "memory": true,
	"memoryReservation": true, "memorySwap": true, "shmSize": true, "cpus": true,
	"cpuShares": true, "cpuSet": true, "logDriver": true, "logOpts": true, "storageOpts": true,
	"networkMode": true, "pidMode": true, "usernsMode": true, "healthcheck": true,
	"sysctls": true, "ipcMode": true, "groupAdds": true, "tty": true, "stdinOpen": true,
	"stopSignal": true, "stopTimeout": true, "ports": true, "mustRun": true,
}

// readContainer sets the state from `docker inspect`. Deterministic: the same container reads
// back the same state, which is what Create stores, so a refresh right after create changes
// nothing.
func readContainer(s *ContainerState, c *container.InspectResponse) {
	cfg, host := c.Config, c.HostConfig
	if cfg == nil {
		cfg = &container.Config{}
	}
	if host == nil {
		host = &container.HostConfig{}
	}
	running := c.State != nil && c.State.Running

	s.Name = ptr(strings.TrimPrefix(c.Name, "/"))
	s.Rm = ptr(host.AutoRemove)
	s.ReadOnly = ptr(host.ReadonlyRootfs)
	// An image given by ID reads back as the ID, one given by name as that name.
	if strings.HasPrefix(s.Image, "sha256:") {
		s.Image = c.Image
	} else {
		s.Image = cfg.Image
	}
	s.Hostname = ptr(cfg.Hostname)
	s.Domainname = ptr(cfg.Domainname)
	s.Command = nonEmptyList([]string(cfg.Cmd))
	s.Entrypoints = nonEmptyList([]string(cfg.Entrypoint))
	s.User = ptr(cfg.User)
	s.WorkingDir = ptr(cfg.WorkingDir)
	s.Tty = ptr(cfg.Tty)
	s.StdinOpen = ptr(cfg.OpenStdin)
	s.StopSignal = ptr(cfg.StopSignal)
	s.StopTimeout = ptr(0)
	if cfg.StopTimeout != nil {
		s.StopTimeout = ptr(*cfg.StopTimeout)
	}
	s.DNS = keepOrder(s.DNS, host.DNS)
	s.DNSOpts = keepOrder(s.DNSOpts, host.DNSOptions)
	s.DNSSearches = keepOrder(s.DNSSearches, host.DNSSearch)
	s.SecurityOpts = keepOrder(s.SecurityOpts, host.SecurityOpt)
	s.GroupAdds = keepOrder(s.GroupAdds, host.GroupAdd)
	s.PublishAllPorts = ptr(host.PublishAllPorts)
	s.Privileged = ptr(host.Privileged)
	s.Restart = ptr(string(host.RestartPolicy.Name))
	s.MaxRetryCount = ptr(host.RestartPolicy.MaximumRetryCount)
	s.Init = ptr(host.Init != nil && *host.Init)
	if len(host.CapAdd) > 0 || len(host.CapDrop) > 0 {
		old := s.Capabilities
		if old == nil {
			old = &ContainerCapabilities{}
		}
		s.Capabilities = &ContainerCapabilities{
			Adds: keepOrder(old.Adds, []string(host.CapAdd)), Drops: keepOrder(old.Drops, []string(host.CapDrop)),
		}
	}
	s.Runtime = ptr(host.Runtime)
	s.Platform = ptr(c.Platform)
	s.Mounts = keepOrder(s.Mounts, readMounts(host.Mounts))
	s.Tmpfs = nonEmptyMap(host.Tmpfs)
	hosts := []ContainerHost{}
	for _, h := range host.ExtraHosts {
		name, ip, _ := strings.Cut(h, ":")
		hosts = append(hosts, ContainerHost{Host: name, IP: ip})
	}
	s.Hosts = keepOrder(s.Hosts, hosts)
	if len(s.Ulimits) > 0 {
		ulimits := []ContainerUlimit{}
		for _, u := range host.Ulimits {
			ulimits = append(ulimits, ContainerUlimit{Name: u.Name, Soft: int(u.Soft), Hard: int(u.Hard)})
		}
		s.Ulimits = keepOrder(s.Ulimits, ulimits)
	}
	if len(s.Devices) > 0 {
		devices := []ContainerDevice{}
		for _, d := range host.Devices {
			devices = append(devices, ContainerDevice{
				HostPath: d.PathOnHost, ContainerPath: ptr(d.PathInContainer), Permissions: ptr(d.CgroupPermissions),
			})
		}
		s.Devices = keepOrder(s.Devices, devices)
	}
	s.DeviceReadBps = keepOrder(s.DeviceReadBps, readThrottles[ContainerDeviceReadBp](host.BlkioDeviceReadBps))
	s.DeviceReadIops = keepOrder(s.DeviceReadIops, readThrottles[ContainerDeviceReadIop](host.BlkioDeviceReadIOps))
	s.DeviceWriteBps = keepOrder(s.DeviceWriteBps, readThrottles[ContainerDeviceWriteBp](host.BlkioDeviceWriteBps))
	s.DeviceWriteIops = keepOrder(s.DeviceWriteIops, readThrottles[ContainerDeviceWriteIop](host.BlkioDeviceWriteIOps))
	if s.Gpus != nil {
		if g, ok := gpusOf(host.DeviceRequests); ok {
			s.Gpus = ptr(g)
		}
	} else if len(s.DeviceRequests) > 0 {
		reqs := []ContainerDeviceRequest{}
		for _, r := range host.DeviceRequests {
			req := ContainerDeviceRequest{Driver: ptr(r.Driver), Count: ptr(r.Count), DeviceIDs: r.DeviceIDs, Options: r.Options}
			for _, caps := range r.Capabilities {
				req.Capabilities = append(req.Capabilities, caps...)
			}
			reqs = append(reqs, req)
		}
		s.DeviceRequests = keepOrder(s.DeviceRequests, reqs)
	}
	if len(s.DeviceCgroupRules) > 0 {
		s.DeviceCgroupRules = keepOrder(s.DeviceCgroupRules, host.DeviceCgroupRules)
	}
	s.Memory = ptr(int(host.Memory / mib))
	s.MemoryReservation = ptr(int(host.MemoryReservation / mib))
	if host.MemorySwap > 0 {
		s.MemorySwap = ptr(int(host.MemorySwap / mib))
	} else {
		s.MemorySwap = ptr(int(host.MemorySwap))
	}
	s.ShmSize = ptr(int(host.ShmSize / mib))
	if host.NanoCPUs > 0 {
		s.CPUs = ptr(formatCPUs(host.NanoCPUs))
	}
	s.CPUShares = ptr(int(host.CPUShares))
	s.CPUSet = ptr(host.CpusetCpus)
	s.LogDriver = ptr(host.LogConfig.Type)
	if len(s.LogOpts) > 0 { // read back only when set: daemon.json adds its own (TF schema)
		s.LogOpts = nonEmptyMap(host.LogConfig.Config)
	}
	s.StorageOpts = nonEmptyMap(host.StorageOpt)
	s.NetworkMode = ptr(string(host.NetworkMode))
	if s.PidMode != nil {
		s.PidMode = ptr(string(host.PidMode))
	}
	s.UsernsMode = ptr(string(host.UsernsMode))
	s.Sysctls = nonEmptyMap(host.Sysctls)
	s.IpcMode = ptr(string(host.IpcMode))
	if h := cfg.Healthcheck; h != nil {
		s.Healthcheck = &ContainerHealthcheck{
			Tests: h.Test, Interval: ptr(h.Interval.String()), Timeout: ptr(h.Timeout.String()),
			StartPeriod: ptr(h.StartPeriod.String()), StartInterval: ptr(h.StartInterval.String()),
			Retries: ptr(h.Retries),
		}
	}

	if ns := c.NetworkSettings; ns != nil {
		s.Bridge = ptr(ns.Bridge)
		// A stopped container has no port bindings: keep the state's then, unless the
		// container is meant to run anyway (as upstream).
		if len(s.Ports) > 0 && (running || flag(s.MustRun, true)) {
			s.Ports = readPorts(ns.Ports)
		}
		s.NetworkDatas = readNetworkData(ns.Networks)
	}
	s.ExitCode = nil
	if c.State != nil && !running {
		s.ExitCode = ptr(c.State.ExitCode)
		// A stopped container that must run reads back mustRun=false: the next update starts
		// it (TF docs of must_run).
		if flag(s.MustRun, true) {
			s.MustRun = ptr(false)
		}
	}
}

// readPorts lists the port bindings sorted by internal port, then protocol.
func readPorts(ports nat.PortMap) []ContainerPort {
	keys := make([]nat.Port, 0, len(ports))
	for k := range ports {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Int() != keys[j].Int() {
			return keys[i].Int() < keys[j].Int()
		}
		return keys[i].Proto() < keys[j].Proto()
	})
	var out []ContainerPort
	for _, k := range keys {
		for _, b := range ports[k] {
			external, _ := strconv.Atoi(b.HostPort)
			out = append(out, ContainerPort{
				Internal: k.Int(), External: ptr(external), IP: ptr(b.HostIP), Protocol: ptr(k.Proto()),
			})
		}
	}
	return out
}

// readNetworkData lists the container's networks, sorted by name.
func readNetworkData(networks map[string]*networkEndpoint) []ContainerNetworkData {
	var out []ContainerNetworkData
	for _, name := range sortedKeys(networks) {
		n := networks[name]
		if n == nil {
			continue
		}
		out = append(out, ContainerNetworkData{
			NetworkName: ptr(name), IPAddress: ptr(n.IPAddress), IPPrefixLength: ptr(n.IPPrefixLen),
			Gateway: ptr(n.Gateway), GlobalIpv6Address: ptr(n.GlobalIPv6Address),
			GlobalIpv6PrefixLength: ptr(n.GlobalIPv6PrefixLen), Ipv6Gateway: ptr(n.IPv6Gateway),
			MacAddress: ptr(n.MacAddress),
		})
	}
	return out
}

func readMounts(mounts []mount.Mount) []ContainerMount {
	var out []ContainerMount
	for _, m := range mounts {
		cm := ContainerMount{Target: m.Target, Type: string(m.Type), Source: nonEmpty(m.Source)}
		if m.ReadOnly {
			cm.ReadOnly = ptr(true)
		}
		if b := m.BindOptions; b != nil && b.Propagation != "" {
			cm.BindOptions = &ContainerMountBindOptions{Propagation: ptr(string(b.Propagation))}
		}
		if v := m.VolumeOptions; v != nil {
			vo := &ContainerMountVolumeOptions{Subpath: nonEmpty(v.Subpath)}
			if v.NoCopy {
				vo.NoCopy = ptr(true)
			}
			for _, k := range sortedKeys(v.Labels) {
				vo.Labels = append(vo.Labels, ContainerMountVolumeOptionsLabel{Label: k, Value: v.Labels[k]})
			}
			if d := v.DriverConfig; d != nil {
				vo.DriverName, vo.DriverOptions = nonEmpty(d.Name), nonEmptyMap(d.Options)
			}
			cm.VolumeOptions = vo
		}
		if t := m.TmpfsOptions; t != nil {
			cm.TmpfsOptions = &ContainerMountTmpfsOptions{}
			if t.SizeBytes != 0 {
				cm.TmpfsOptions.SizeBytes = ptr(int(t.SizeBytes))
			}
			if t.Mode != 0 {
				cm.TmpfsOptions.Mode = ptr(int(t.Mode))
			}
		}
		out = append(out, cm)
	}
	return out
}

func readThrottles[T ContainerDeviceReadBp | ContainerDeviceReadIop | ContainerDeviceWriteBp | ContainerDeviceWriteIop](in []*blkiodev.ThrottleDevice) []T {
	var out []T
	for _, t := range in {
		if t != nil {
			out = append(out, T(ContainerDeviceReadBp{Path: t.Path, Rate: int(t.Rate)}))
		}
	}
	return out
}

// gpusOf is the --gpus form of a container's device requests, if they have one.
func gpusOf(reqs []container.DeviceRequest) (string, bool) {
	if len(reqs) == 0 {
		return "", true
	}
	if len(reqs) != 1 {
		return "", false
	}
	r := reqs[0]
	switch {
	case len(r.DeviceIDs) > 0:
		return "device=" + strings.Join(r.DeviceIDs, ","), true
	case r.Count == -1:
		return "all", true
	case r.Count > 0:
		return strconv.Itoa(r.Count), true
	}
	return "", false
}

func nonEmptyList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}
