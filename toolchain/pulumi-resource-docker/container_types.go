package main

import "github.com/pulumi/pulumi-go-provider/infer"

// Container is docker:index/container:Container (SDK container.py).
type Container struct{}

// ContainerArgs are its inputs: every input the SDK declares (SDK ContainerArgs).
type ContainerArgs struct {
	Image                                   string                      `pulumi:"image"`
	Attach                                  *bool                       `pulumi:"attach,optional"`
	Capabilities                            *ContainerCapabilities      `pulumi:"capabilities,optional"`
	CgroupParent                            *string                     `pulumi:"cgroupParent,optional"`
	CgroupnsMode                            *string                     `pulumi:"cgroupnsMode,optional"`
	Command                                 []string                    `pulumi:"command,optional"`
	ContainerReadRefreshTimeoutMilliseconds *int                        `pulumi:"containerReadRefreshTimeoutMilliseconds,optional"`
	CPUPeriod                               *int                        `pulumi:"cpuPeriod,optional"`
	CPUQuota                                *int                        `pulumi:"cpuQuota,optional"`
	CPUSet                                  *string                     `pulumi:"cpuSet,optional"`
	CPUShares                               *int                        `pulumi:"cpuShares,optional"`
	CPUs                                    *string                     `pulumi:"cpus,optional"`
	DestroyGraceSeconds                     *int                        `pulumi:"destroyGraceSeconds,optional"`
	DeviceCgroupRules                       []string                    `pulumi:"deviceCgroupRules,optional"`
	DeviceReadBps                           []ContainerDeviceReadBp     `pulumi:"deviceReadBps,optional"`
	DeviceReadIops                          []ContainerDeviceReadIop    `pulumi:"deviceReadIops,optional"`
	DeviceRequests                          []ContainerDeviceRequest    `pulumi:"deviceRequests,optional"`
	DeviceWriteBps                          []ContainerDeviceWriteBp    `pulumi:"deviceWriteBps,optional"`
	DeviceWriteIops                         []ContainerDeviceWriteIop   `pulumi:"deviceWriteIops,optional"`
	Devices                                 []ContainerDevice           `pulumi:"devices,optional"`
	DNS                                     []string                    `pulumi:"dns,optional"`
	DNSOpts                                 []string                    `pulumi:"dnsOpts,optional"`
	DNSSearches                             []string                    `pulumi:"dnsSearches,optional"`
	Domainname                              *string                     `pulumi:"domainname,optional"`
	Entrypoints                             []string                    `pulumi:"entrypoints,optional"`
	Envs                                    []string                    `pulumi:"envs,optional"`
	Gpus                                    *string                     `pulumi:"gpus,optional"`
	GroupAdds                               []string                    `pulumi:"groupAdds,optional"`
	Healthcheck                             *ContainerHealthcheck       `pulumi:"healthcheck,optional"`
	Hostname                                *string                     `pulumi:"hostname,optional"`
	Hosts                                   []ContainerHost             `pulumi:"hosts,optional"`
	Init                                    *bool                       `pulumi:"init,optional"`
	IpcMode                                 *string                     `pulumi:"ipcMode,optional"`
	Labels                                  []ContainerLabel            `pulumi:"labels,optional"`
	LogDriver                               *string                     `pulumi:"logDriver,optional"`
	LogOpts                                 map[string]string           `pulumi:"logOpts,optional"`
	Logs                                    *bool                       `pulumi:"logs,optional"`
	MaxRetryCount                           *int                        `pulumi:"maxRetryCount,optional"`
	Memory                                  *int                        `pulumi:"memory,optional"`
	MemoryReservation                       *int                        `pulumi:"memoryReservation,optional"`
	MemorySwap                              *int                        `pulumi:"memorySwap,optional"`
	Mounts                                  []ContainerMount            `pulumi:"mounts,optional"`
	MustRun                                 *bool                       `pulumi:"mustRun,optional"`
	Name                                    *string                     `pulumi:"name,optional"`
	NetworkMode                             *string                     `pulumi:"networkMode,optional"`
	NetworksAdvanced                        []ContainerNetworksAdvanced `pulumi:"networksAdvanced,optional"`
	PidMode                                 *string                     `pulumi:"pidMode,optional"`
	Platform                                *string                     `pulumi:"platform,optional"`
	Ports                                   []ContainerPort             `pulumi:"ports,optional"`
	Privileged                              *bool                       `pulumi:"privileged,optional"`
	PublishAllPorts                         *bool                       `pulumi:"publishAllPorts,optional"`
	ReadOnly                                *bool                       `pulumi:"readOnly,optional"`
	RemoveVolumes                           *bool                       `pulumi:"removeVolumes,optional"`
	Restart                                 *string                     `pulumi:"restart,optional"`
	Rm                                      *bool                       `pulumi:"rm,optional"`
	Runtime                                 *string                     `pulumi:"runtime,optional"`
	SecurityOpts                            []string                    `pulumi:"securityOpts,optional"`
	ShmSize                                 *int                        `pulumi:"shmSize,optional"`
	Start                                   *bool                       `pulumi:"start,optional"`
	StdinOpen                               *bool                       `pulumi:"stdinOpen,optional"`
	StopSignal                              *string                     `pulumi:"stopSignal,optional"`
	StopTimeout                             *int                        `pulumi:"stopTimeout,optional"`
	StorageOpts                             map[string]string           `pulumi:"storageOpts,optional"`
	Sysctls                                 map[string]string           `pulumi:"sysctls,optional"`
	Tmpfs                                   map[string]string           `pulumi:"tmpfs,optional"`
	Tty                                     *bool                       `pulumi:"tty,optional"`
	Ulimits                                 []ContainerUlimit           `pulumi:"ulimits,optional"`
	Uploads                                 []ContainerUpload           `pulumi:"uploads,optional"`
	User                                    *string                     `pulumi:"user,optional"`
	UsernsMode                              *string                     `pulumi:"usernsMode,optional"`
	Volumes                                 []ContainerVolume           `pulumi:"volumes,optional"`
	Wait                                    *bool                       `pulumi:"wait,optional"`
	WaitTimeout                             *int                        `pulumi:"waitTimeout,optional"`
	WorkingDir                              *string                     `pulumi:"workingDir,optional"`
}

// ContainerState is its state: the inputs (partly as read back) and the outputs only Docker
// knows (SDK: bridge, containerLogs, exitCode, networkDatas).
type ContainerState struct {
	ContainerArgs
	Bridge        *string                `pulumi:"bridge,optional"`
	ContainerLogs *string                `pulumi:"containerLogs,optional"`
	ExitCode      *int                   `pulumi:"exitCode,optional"`
	NetworkDatas  []ContainerNetworkData `pulumi:"networkDatas,optional"`
}

type ContainerCapabilities struct {
	Adds  []string `pulumi:"adds,optional"`
	Drops []string `pulumi:"drops,optional"`
}

type ContainerDevice struct {
	HostPath      string  `pulumi:"hostPath"`
	ContainerPath *string `pulumi:"containerPath,optional"`
	Permissions   *string `pulumi:"permissions,optional"`
}

type ContainerDeviceReadBp struct {
	Path string `pulumi:"path"`
	Rate int    `pulumi:"rate"`
}

type ContainerDeviceReadIop struct {
	Path string `pulumi:"path"`
	Rate int    `pulumi:"rate"`
}

type ContainerDeviceWriteBp struct {
	Path string `pulumi:"path"`
	Rate int    `pulumi:"rate"`
}

type ContainerDeviceWriteIop struct {
	Path string `pulumi:"path"`
	Rate int    `pulumi:"rate"`
}

type ContainerDeviceRequest struct {
	Capabilities []string          `pulumi:"capabilities,optional"`
	Count        *int              `pulumi:"count,optional"`
	DeviceIDs    []string          `pulumi:"deviceIds,optional"`
	Driver       *string           `pulumi:"driver,optional"`
	Options      map[string]string `pulumi:"options,optional"`
}

type ContainerHealthcheck struct {
	Interval      *string  `pulumi:"interval,optional"`
	Retries       *int     `pulumi:"retries,optional"`
	StartInterval *string  `pulumi:"startInterval,optional"`
	StartPeriod   *string  `pulumi:"startPeriod,optional"`
	Tests         []string `pulumi:"tests,optional"`
	Timeout       *string  `pulumi:"timeout,optional"`
}

type ContainerHost struct {
	Host string `pulumi:"host"`
	IP   string `pulumi:"ip"`
}

type ContainerLabel struct {
	Label string `pulumi:"label"`
	Value string `pulumi:"value"`
}

type ContainerMount struct {
	Target        string                       `pulumi:"target"`
	Type          string                       `pulumi:"type"`
	BindOptions   *ContainerMountBindOptions   `pulumi:"bindOptions,optional"`
	ReadOnly      *bool                        `pulumi:"readOnly,optional"`
	Source        *string                      `pulumi:"source,optional"`
	TmpfsOptions  *ContainerMountTmpfsOptions  `pulumi:"tmpfsOptions,optional"`
	VolumeOptions *ContainerMountVolumeOptions `pulumi:"volumeOptions,optional"`
}

type ContainerMountBindOptions struct {
	Propagation *string `pulumi:"propagation,optional"`
}

type ContainerMountTmpfsOptions struct {
	Mode      *int `pulumi:"mode,optional"`
	SizeBytes *int `pulumi:"sizeBytes,optional"`
}

type ContainerMountVolumeOptions struct {
	DriverName    *string                            `pulumi:"driverName,optional"`
	DriverOptions map[string]string                  `pulumi:"driverOptions,optional"`
	Labels        []ContainerMountVolumeOptionsLabel `pulumi:"labels,optional"`
	NoCopy        *bool                              `pulumi:"noCopy,optional"`
	Subpath       *string                            `pulumi:"subpath,optional"`
}

type ContainerMountVolumeOptionsLabel struct {
	Label string `pulumi:"label"`
	Value string `pulumi:"value"`
}

type ContainerNetworkData struct {
	Gateway                *string `pulumi:"gateway,optional"`
	GlobalIpv6Address      *string `pulumi:"globalIpv6Address,optional"`
	GlobalIpv6PrefixLength *int    `pulumi:"globalIpv6PrefixLength,optional"`
	IPAddress              *string `pulumi:"ipAddress,optional"`
	IPPrefixLength         *int    `pulumi:"ipPrefixLength,optional"`
	Ipv6Gateway            *string `pulumi:"ipv6Gateway,optional"`
	MacAddress             *string `pulumi:"macAddress,optional"`
	NetworkName            *string `pulumi:"networkName,optional"`
}

type ContainerNetworksAdvanced struct {
	Name         string   `pulumi:"name"`
	Aliases      []string `pulumi:"aliases,optional"`
	DriverOpts   []string `pulumi:"driverOpts,optional"`
	GwPriority   *int     `pulumi:"gwPriority,optional"`
	Ipv4Address  *string  `pulumi:"ipv4Address,optional"`
	Ipv6Address  *string  `pulumi:"ipv6Address,optional"`
	LinkLocalIps []string `pulumi:"linkLocalIps,optional"`
	MacAddress   *string  `pulumi:"macAddress,optional"`
}

type ContainerPort struct {
	Internal int     `pulumi:"internal"`
	External *int    `pulumi:"external,optional"`
	IP       *string `pulumi:"ip,optional"`
	Protocol *string `pulumi:"protocol,optional"`
}

type ContainerUlimit struct {
	Hard int    `pulumi:"hard"`
	Name string `pulumi:"name"`
	Soft int    `pulumi:"soft"`
}

type ContainerUpload struct {
	File          string  `pulumi:"file"`
	Content       *string `pulumi:"content,optional"`
	ContentBase64 *string `pulumi:"contentBase64,optional"`
	Executable    *bool   `pulumi:"executable,optional"`
	Group         *string `pulumi:"group,optional"`
	Owner         *string `pulumi:"owner,optional"`
	Permissions   *string `pulumi:"permissions,optional"`
	Source        *string `pulumi:"source,optional"`
	SourceHash    *string `pulumi:"sourceHash,optional"`
}

type ContainerVolume struct {
	ContainerPath  *string `pulumi:"containerPath,optional"`
	FromContainer  *string `pulumi:"fromContainer,optional"`
	HostPath       *string `pulumi:"hostPath,optional"`
	ReadOnly       *bool   `pulumi:"readOnly,optional"`
	SelinuxRelabel *string `pulumi:"selinuxRelabel,optional"`
	VolumeName     *string `pulumi:"volumeName,optional"`
}

// Tokens of the object types, as the SDK's schema names them (docker:index/X:X).

func (c *Container) Annotate(a infer.Annotator) {
	a.SetToken("index/container", "Container")
	a.Describe(c, "Manages the lifecycle of a Docker container.")
}

func (*ContainerCapabilities) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerCapabilities", "ContainerCapabilities")
}

func (d *ContainerDevice) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerDevice", "ContainerDevice")
	a.SetDefault(&d.Permissions, "rwm")
}

func (*ContainerDeviceReadBp) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerDeviceReadBp", "ContainerDeviceReadBp")
}

func (*ContainerDeviceReadIop) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerDeviceReadIop", "ContainerDeviceReadIop")
}

func (*ContainerDeviceWriteBp) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerDeviceWriteBp", "ContainerDeviceWriteBp")
}

func (*ContainerDeviceWriteIop) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerDeviceWriteIop", "ContainerDeviceWriteIop")
}

func (d *ContainerDeviceRequest) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerDeviceRequest", "ContainerDeviceRequest")
	a.SetDefault(&d.Driver, "cdi")
	a.SetDefault(&d.Count, 0)
}

func (h *ContainerHealthcheck) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerHealthcheck", "ContainerHealthcheck")
	a.SetDefault(&h.Interval, "0s")
	a.SetDefault(&h.Timeout, "0s")
	a.SetDefault(&h.StartPeriod, "0s")
	a.SetDefault(&h.StartInterval, "0s")
	a.SetDefault(&h.Retries, 0)
}

func (*ContainerHost) Annotate(a infer.Annotator) { a.SetToken("index/ContainerHost", "ContainerHost") }

func (*ContainerLabel) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerLabel", "ContainerLabel")
}

func (*ContainerMount) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerMount", "ContainerMount")
}

func (*ContainerMountBindOptions) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerMountBindOptions", "ContainerMountBindOptions")
}

func (*ContainerMountTmpfsOptions) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerMountTmpfsOptions", "ContainerMountTmpfsOptions")
}

func (*ContainerMountVolumeOptions) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerMountVolumeOptions", "ContainerMountVolumeOptions")
}

func (*ContainerMountVolumeOptionsLabel) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerMountVolumeOptionsLabel", "ContainerMountVolumeOptionsLabel")
}

func (*ContainerNetworkData) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerNetworkData", "ContainerNetworkData")
}

func (*ContainerNetworksAdvanced) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerNetworksAdvanced", "ContainerNetworksAdvanced")
}

func (p *ContainerPort) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerPort", "ContainerPort")
	a.SetDefault(&p.IP, "0.0.0.0")
	a.SetDefault(&p.Protocol, "tcp")
}

func (*ContainerUlimit) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerUlimit", "ContainerUlimit")
}

func (u *ContainerUpload) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerUpload", "ContainerUpload")
	a.SetDefault(&u.Executable, false)
}

func (*ContainerVolume) Annotate(a infer.Annotator) {
	a.SetToken("index/ContainerVolume", "ContainerVolume")
}

// Defaults of the inputs (SDK docstrings "Defaults to ...", TF docs).
func (c *ContainerArgs) Annotate(a infer.Annotator) {
	a.Describe(&c.Image, "The ID of the image to back this container.")
	a.SetDefault(&c.Attach, false)
	a.SetDefault(&c.Logs, false)
	a.SetDefault(&c.MustRun, true)
	a.SetDefault(&c.Start, true)
	a.SetDefault(&c.Rm, false)
	a.SetDefault(&c.ReadOnly, false)
	a.SetDefault(&c.Wait, false)
	a.SetDefault(&c.WaitTimeout, 60)
	a.SetDefault(&c.RemoveVolumes, true)
	a.SetDefault(&c.Restart, "no")
	a.SetDefault(&c.NetworkMode, "bridge")
	a.SetDefault(&c.MemoryReservation, 0)
	a.SetDefault(&c.ContainerReadRefreshTimeoutMilliseconds, defaultReadRefreshTimeoutMs)
	a.SetDefault(&c.Tty, false)
	a.SetDefault(&c.StdinOpen, false)
}

const defaultReadRefreshTimeoutMs = 15000

// containerSpec: which inputs replace, which are computed, which are sets (TF schema).
var containerSpec = resourceSpec{namedDBR: true, inputs: map[string]*spec{
	"image":        {},
	"attach":       {update: true},
	"capabilities": {fields: map[string]*spec{"adds": {set: true}, "drops": {set: true}}},
	"cgroupParent": {},
	"cgroupnsMode": {},
	"command":      {computed: true},
	"containerReadRefreshTimeoutMilliseconds": {update: true},
	"cpuPeriod":           {update: true},
	"cpuQuota":            {update: true},
	"cpuSet":              {update: true},
	"cpuShares":           {update: true},
	"cpus":                {},
	"destroyGraceSeconds": {update: true},
	"deviceCgroupRules":   {set: true},
	"deviceReadBps":       {update: true, set: true},
	"deviceReadIops":      {update: true, set: true},
	"deviceRequests": {set: true, fields: map[string]*spec{
		"capabilities": {set: true}, "deviceIds": {set: true}, "options": {kv: true}}},
	"deviceWriteBps":    {update: true, set: true},
	"deviceWriteIops":   {update: true, set: true},
	"devices":           {set: true},
	"dns":               {set: true},
	"dnsOpts":           {set: true},
	"dnsSearches":       {set: true},
	"domainname":        {},
	"entrypoints":       {computed: true},
	"envs":              {set: true, computed: true},
	"gpus":              {},
	"groupAdds":         {set: true},
	"healthcheck":       {update: true, computed: true},
	"hostname":          {computed: true},
	"hosts":             {set: true},
	"init":              {update: true, computed: true},
	"ipcMode":           {computed: true},
	"labels":            {set: true, computed: true},
	"logDriver":         {computed: true},
	"logOpts":           {kv: true},
	"logs":              {update: true},
	"maxRetryCount":     {update: true},
	"memory":            {update: true},
	"memoryReservation": {update: true},
	"memorySwap":        {update: true},
	"mounts": {set: true, fields: map[string]*spec{"volumeOptions": {fields: map[string]*spec{
		"labels": {set: true}, "driverOptions": {kv: true}}}}},
	"mustRun":     {update: true},
	"name":        {},
	"networkMode": {},
	"networksAdvanced": {set: true, fields: map[string]*spec{
		"aliases": {set: true}, "linkLocalIps": {set: true}, "driverOpts": {set: true}}},
	"pidMode":         {},
	"platform":        {computed: true},
	"ports":           {fields: map[string]*spec{"external": {computed: true}}},
	"privileged":      {},
	"publishAllPorts": {},
	"readOnly":        {},
	"removeVolumes":   {update: true},
	"restart":         {update: true},
	"rm":              {update: true},
	"runtime":         {computed: true},
	"securityOpts":    {set: true, computed: true},
	"shmSize":         {computed: true},
	"start":           {update: true},
	"stdinOpen":       {},
	"stopSignal":      {computed: true},
	"stopTimeout":     {computed: true},
	"storageOpts":     {kv: true},
	"sysctls":         {kv: true},
	"tmpfs":           {update: true, kv: true},
	"tty":             {},
	"ulimits":         {set: true},
	"uploads":         {set: true},
	"user":            {computed: true}, // "" is a no-op (TF schema)
	"usernsMode":      {},
	"volumes":         {set: true},
	"wait":            {update: true},
	"waitTimeout":     {update: true},
	"workingDir":      {computed: true}, // likewise
}}
