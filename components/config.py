"""Stack configuration: read once, validated completely, returned as frozen typed objects.

This is the only module that reads `pulumi.Config`. Every check runs before any resource is
declared, and a bad value raises one `ConfigError` naming the key, showing the value and saying
the expected form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar, cast

import pulumi
import pulumi.runtime.config

from policy.references import IMAGE_REFERENCE, OPENSSH_PUBLIC_KEY

PROJECT = "kubeadm-cluster"

Target = Literal["local", "aws", "machines"]
TARGETS: tuple[Target, ...] = ("local", "aws", "machines")
ServiceType = Literal["NodePort", "ClusterIP", "LoadBalancer"]
PackageSource = Literal["docker", "distro"]
Architecture = Literal["x86_64", "arm64"]

MIN_KUBERNETES_MINOR = 24  # the first minor with packages on pkgs.k8s.io
MAX_KUBERNETES_MINOR = 37  # the newest minor this program has been checked against
MAX_WORKERS = 250
NODE_IP_OFFSET = 10  # master = network address + 10, worker i = network address + 11 + i
# Control-plane node i >= 1 = network address + 10 - i (so +9 .. +4): clear of the workers, whose
# addresses must not move when the control plane grows. The local load balancer is at + 3.
LOAD_BALANCER_IP_OFFSET = 3
# etcd keeps quorum while a majority of its members answer: 1 member tolerates no loss, 3
# tolerate 1, 5 tolerate 2, 7 tolerate 3 (etcd FAQ, "What is failure tolerance?"). An even
# count tolerates no more than the odd count below it.
MAX_CONTROL_PLANE_NODES = 7
# aws with apiLoadBalancer: the availability zones the control-plane nodes and the API load
# balancers span (one public subnet each), 3 unless controlPlaneZones or controlPlaneSubnetCidrs
# say otherwise. Every commercial region offers at least 3 to most accounts; us-west-1 offers 2.
DEFAULT_CONTROL_PLANE_ZONES = 3
MAX_CONTROL_PLANE_ZONES = 6
NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767
POD_CIDR_PER_NODE_PREFIX = 24  # kube-controller-manager's default node CIDR mask

# kind v0.33.0's node image for Kubernetes 1.37 (sigs.k8s.io/kind pkg/apis/config/defaults).
DEFAULT_NODE_IMAGE = (
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
)
# The local target's API load balancer: HAProxy, from its publisher's registry on ECR Public
# (Docker's official image, not rate-limited there). It reads /usr/local/etc/haproxy/haproxy.cfg
# and reloads on SIGUSR2 (master-worker mode, which the image's entrypoint turns on).
DEFAULT_LOAD_BALANCER_IMAGE = "public.ecr.aws/docker/library/haproxy:3.2"
DEFAULT_APP: dict[str, Any] = {
    "name": "nginx",
    "image": "public.ecr.aws/nginx/nginx-unprivileged:1.27.3",
    "replicas": 2,
    "port": 8080,
    "nodePort": 30080,
}

# drainTimeoutSeconds: kubectl drain's --timeout for a node leaving or being upgraded.
DEFAULT_DRAIN_TIMEOUT = 300
MIN_DRAIN_TIMEOUT = 10
MAX_DRAIN_TIMEOUT = 3600

KNOWN_KEYS = frozenset(
    {
        "target",
        "workers",
        "controlPlaneNodes",
        "kubernetesVersion",
        "podCidr",
        "serviceCidr",
        "apps",
        "appsNamespace",
        "vpcCidr",
        "subnetCidr",
        "privateSubnetCidr",
        "availabilityZone",
        "masterInstanceType",
        "workerInstanceType",
        "adminCidrs",
        "sshPublicKey",
        "sshPrivateKey",
        "sshUser",
        "ami",
        "rootVolumeSize",
        "packageSource",
        "privateWorkers",
        "nodeImage",
        "networkCidr",
        "apiServerPort",
        "localNodePorts",
        "loadBalancerImage",
        "controlPlaneHosts",
        "workerHosts",
        "apiEndpoint",
        "allowCgroupV1",
        "drainTimeoutSeconds",
        "registryMirrors",
        "apiLoadBalancer",
        "controlPlaneZones",
        "controlPlaneSubnetCidrs",
    }
)
APP_KEYS = frozenset(
    {
        "name",
        "image",
        "replicas",
        "port",
        "serviceType",
        "nodePort",
        "namespace",
        "cpuRequest",
        "cpuLimit",
        "memoryRequest",
        "memoryLimit",
        "capabilities",
        "volumes",
        "fsGroup",
        "persistentVolumeClaimRetentionPolicy",
        "abandonVolumeClaims",
    }
)


T = TypeVar("T")


class ConfigError(pulumi.RunError, ValueError):
    """One bad configuration value: which key, what value, what was expected.

    A pulumi.RunError, so `pulumi up` prints the message alone, with no Python traceback.
    """

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"invalid config {key!r}: got {value!r}; expected {expected}")


class ConfigErrors(ConfigError):
    """Several bad values found in one pass, reported together (one line each).

    `key`, `value` and `expected` are the first problem's, so a caller that handles one
    ConfigError still learns the first key; `errors` holds them all, in config order.
    """

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        ValueError.__init__(
            self,
            f"invalid config ({len(errors)} problems):\n"
            + "\n".join(f"  - {error}" for error in errors),
        )
        self.key, self.value, self.expected = first.key, first.value, first.expected
        self.errors = errors


class ErrorCollector:
    """Runs field parsers, keeping every ConfigError instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def check(self, parse: Callable[[], T]) -> T | None:
        """parse(), or None after recording its ConfigError(s)."""
        try:
            return parse()
        except ConfigErrors as several:
            self.errors.extend(several.errors)
        except ConfigError as error:
            self.errors.append(error)
        return None

    def add(self, key: str, value: object, expected: str) -> None:
        self.errors.append(ConfigError(key, value, expected))

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)


@dataclass(frozen=True)
class KubernetesVersion:
    minor: int
    patch: int | None

    @property
    def minor_version(self) -> str:
        return f"1.{self.minor}"

    def __str__(self) -> str:
        return self.minor_version if self.patch is None else f"1.{self.minor}.{self.patch}"


DEFAULT_KUBERNETES_VERSION = KubernetesVersion(37, None)


# registryMirrors as parsed: (registry, (mirror URL, ...)), sorted by registry.
RegistryMirrors = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class ClusterConfig:
    kubernetes_version: KubernetesVersion
    pod_cidr: str
    service_cidr: str
    # Run kubelet on cgroup v1 hosts, which it refuses by default from 1.35 on (KEP-5573).
    allow_cgroup_v1: bool = False
    # How long one node's drain may take (a worker leaving, or any node upgraded), in seconds.
    drain_timeout_seconds: int = 300
    # containerd's registry hosts configuration on every node: (registry, (mirror URL, ...)),
    # sorted by registry; each mirror is tried in order before the registry itself.
    registry_mirrors: RegistryMirrors = ()


@dataclass(frozen=True)
class ScratchVolume:
    """An app's emptyDir: scratch space that lives as long as the pod, on the node's disk or,
    with medium Memory, in RAM (counted against the container's memory limit)."""

    name: str
    mount_path: str
    medium: str = ""  # "" (the node's disk) or "Memory"
    size_limit: str | None = None  # a quantity such as 64Mi; the pod is evicted above it
    read_only: bool = False


@dataclass(frozen=True)
class ClaimVolume:
    """An app's persistent volume: one PersistentVolumeClaim per replica, made from the
    StatefulSet's volumeClaimTemplates and kept when the replica or the app goes (see
    AppConfig.claims_when_deleted)."""

    name: str
    mount_path: str
    storage: str  # the claim's resources.requests.storage, a quantity such as 1Gi
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    storage_class_name: str | None = None  # None: the cluster's default StorageClass
    read_only: bool = False


AppVolume = ScratchVolume | ClaimVolume
ClaimRetention = Literal["Retain", "Delete"]


@dataclass(frozen=True)
class AppConfig:
    name: str
    image: str
    replicas: int
    port: int
    service_type: ServiceType
    node_port: int | None
    namespace: str
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    capabilities: tuple[str, ...]
    volumes: tuple[AppVolume, ...] = ()
    # With claim volumes only: the pod's fsGroup (the volumes' group, added to the app's
    # process), and what happens to the claims when the app is deleted (scaling down always
    # keeps them): persistentVolumeClaimRetentionPolicy.whenDeleted.
    fs_group: int = 65532
    claims_when_deleted: ClaimRetention = "Retain"
    # True: the app may go from a StatefulSet (last run) to a Deployment, leaving its claims
    # unused (workloads.check_workload_switches refuses that otherwise).
    abandon_volume_claims: bool = False

    @property
    def stateful(self) -> bool:
        """An app with a claim volume runs as a StatefulSet, others as a Deployment."""
        return any(isinstance(v, ClaimVolume) for v in self.volumes)


@dataclass(frozen=True)
class AwsConfig:
    region: str
    vpc_cidr: str
    subnet_cidr: str
    private_subnet_cidr: str
    availability_zone: str | None
    master_instance_type: str
    worker_instance_type: str
    admin_cidrs: tuple[str, ...]
    ssh_public_key: str | None
    # Only with ssh_public_key: its private half (secret config); else the SSH agent is used.
    ssh_private_key: str | None
    ssh_user: str
    ami: str | None
    root_volume_size_gb: int
    package_source: PackageSource
    private_workers: bool
    # Network load balancers in front of the control-plane nodes' API servers: kubeadm's
    # controlPlaneEndpoint from init on (components/targets/aws_api_load_balancer.py).
    api_load_balancer: bool = False
    # With api_load_balancer: the zones the control-plane nodes and the load balancers use, the
    # master's first; () when they are looked up at deploy time (zone_count of them).
    control_plane_zones: tuple[str, ...] = ()
    # With api_load_balancer: the public subnet of each zone after the first, in zone order
    # (the first zone's is subnet_cidr).
    control_plane_subnet_cidrs: tuple[str, ...] = ()

    @property
    def worker_subnet_cidr(self) -> str:
        return self.private_subnet_cidr if self.private_workers else self.subnet_cidr

    @property
    def zone_subnet_cidrs(self) -> tuple[str, ...]:
        """The public subnet of each control-plane zone, in zone order: subnetCidr (the master's
        and the public workers'), then controlPlaneSubnetCidrs."""
        return (self.subnet_cidr, *self.control_plane_subnet_cidrs)

    @property
    def zone_count(self) -> int:
        return len(self.zone_subnet_cidrs)

    def control_plane_placement(self, index: int) -> tuple[int, str, str]:
        """(zone index, subnet CIDR, fixed private IP) of control-plane node `index`: zone
        index mod zone_count, at control_plane_ip in that zone's subnet (the master, index 0,
        at subnetCidr + 10 as ever)."""
        zone = index % self.zone_count
        cidr = self.zone_subnet_cidrs[zone]
        return zone, cidr, control_plane_ip(cidr, index)

    @property
    def master_architecture(self) -> Architecture:
        return instance_architecture(self.master_instance_type)

    @property
    def worker_architecture(self) -> Architecture:
        return instance_architecture(self.worker_instance_type)


@dataclass(frozen=True)
class LocalConfig:
    node_image: str
    network_cidr: str
    api_server_port: int
    node_port_first: int
    node_port_last: int
    load_balancer_image: str = DEFAULT_LOAD_BALANCER_IMAGE

    @property
    def node_ports(self) -> range:
        return range(self.node_port_first, self.node_port_last + 1)


@dataclass(frozen=True)
class MachineHost:
    """One machine the user already has, reached over SSH."""

    name: str  # its Kubernetes node name
    address: str  # what Pulumi dials: an IP address or a DNS name
    private_ip: str  # what Kubernetes uses: kubelet's node IP, the API server's advertise address
    port: int  # SSH port
    user: str  # SSH login user, with passwordless sudo
    host_key: str  # "ssh-ed25519 AAAA...": the only SSH host key the machine may present


@dataclass(frozen=True)
class MachinesConfig:
    control_plane: MachineHost  # the first control-plane host: kubeadm init runs on it
    workers: tuple[MachineHost, ...]
    # Secret config; None: the SSH agent of whoever runs pulumi (SSH_AUTH_SOCK).
    ssh_private_key: str | None
    ssh_user: str
    package_source: PackageSource
    api_endpoint: str  # host:port written into the exported kubeconfig
    # The other control-plane hosts (kubeadm join --control-plane), in join order.
    control_planes: tuple[MachineHost, ...] = ()
    # True when apiEndpoint was given: it is then kubeadm's controlPlaneEndpoint from init on
    # (several control-plane hosts need it), not only the exported kubeconfig's server.
    api_endpoint_given: bool = False


@dataclass(frozen=True)
class StackConfig:
    cluster_name: str
    target: Target
    workers: int
    cluster: ClusterConfig
    apps: tuple[AppConfig, ...]
    aws: AwsConfig | None
    local: LocalConfig | None
    machines: MachinesConfig | None = None
    # kubeadm control-plane nodes, each with a stacked etcd member: 1, 3, 5 or 7.
    control_plane_nodes: int = 1

    @property
    def master_name(self) -> str:
        """The first control-plane node: kubeadm init runs on it."""
        return f"{self.cluster_name}-master"

    @property
    def control_plane_names(self) -> list[str]:
        """Every control-plane node: the master, then <cluster>-control-plane-1, -2, ..."""
        return [self.master_name, *(f"{self.cluster_name}-control-plane-{i}"
                                    for i in range(1, self.control_plane_nodes))]

    def worker_name(self, index: int) -> str:
        return f"{self.cluster_name}-worker-{index}"

    @property
    def worker_names(self) -> list[str]:
        return [self.worker_name(i) for i in range(self.workers)]


# ---------------------------------------------------------------------------------------------
# Address rule shared by both targets


def control_plane_ip(cidr: str, index: int) -> str:
    """The fixed IP of control-plane node `index` (0 = master, at node_ip(cidr, 0); i >= 1 at
    network address + 10 - i, below the master, so the workers' addresses never move)."""
    if index == 0:
        return node_ip(cidr, 0)
    return str(ipaddress.ip_network(cidr).network_address + NODE_IP_OFFSET - index)


def load_balancer_ip(cidr: str) -> str:
    """The local API load balancer's fixed IP: network address + 3."""
    return str(ipaddress.ip_network(cidr).network_address + LOAD_BALANCER_IP_OFFSET)


def node_ip(cidr: str, index: int) -> str:
    """The fixed IP of node `index` (0 = master, 1.. = workers) in `cidr`.

    Master = network address + 10, worker i = network address + 11 + i: clear of the
    addresses AWS reserves (first four) and of a Docker network's gateway (.1).
    """
    network = ipaddress.ip_network(cidr)
    return str(network.network_address + NODE_IP_OFFSET + index)


def instance_architecture(instance_type: str) -> Architecture:
    """arm64 for AWS Graviton families (a1, and a `g` after the generation: t4g, m7gd, c6gn)."""
    family = instance_type.split(".", 1)[0]
    if family == "a1":
        return "arm64"
    match = re.fullmatch(r"([a-z]+)(\d+)([a-z-]*)", family)
    return "arm64" if match and "g" in match.group(3) else "x86_64"


ONE_VCPU_TYPES = frozenset({"t1.micro", "t2.small", "m1.small", "m1.medium", "m3.medium"})


def has_one_vcpu(instance_type: str) -> bool:
    """Known single-vCPU types: a few old ones, and Graviton `.medium` outside the t family."""
    family, size = instance_type.split(".", 1)
    graviton_medium = (
        size == "medium" and instance_architecture(instance_type) == "arm64"
        and not family.startswith("t")
    )
    return instance_type in ONE_VCPU_TYPES or graviton_medium


# ---------------------------------------------------------------------------------------------
# Field parsers: each returns a typed value or raises ConfigError(key, value, expected)

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
QUANTITY_CPU = re.compile(r"\d+(\.\d+)?m?")
QUANTITY_MEMORY = re.compile(r"\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?")
CAPABILITY = re.compile(r"[A-Z][A-Z_]+")
AWS_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
AMI_ID = re.compile(r"ami-[0-9a-f]{8}([0-9a-f]{9})?")
LINUX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def parse_int(key: str, raw: object, low: int, high: int) -> int:
    expected = f"a whole number from {low} to {high}"
    if isinstance(raw, bool):
        raise ConfigError(key, raw, expected)
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
        value = int(raw.strip())
    else:
        raise ConfigError(key, raw, expected)
    if not low <= value <= high:
        raise ConfigError(key, raw, expected)
    return value


def parse_bool(key: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise ConfigError(key, raw, "true or false")


def parse_choice(key: str, raw: object, choices: tuple[str, ...]) -> str:
    if not isinstance(raw, str) or raw not in choices:
        raise ConfigError(key, raw, "one of " + ", ".join(choices))
    return raw


def parse_regex(key: str, raw: object, pattern: re.Pattern[str], expected: str) -> str:
    if not isinstance(raw, str) or not pattern.fullmatch(raw):
        raise ConfigError(key, raw, expected)
    return raw


def parse_network(key: str, raw: object) -> ipaddress.IPv4Network:
    expected = "an IPv4 network in CIDR form with no host bits set, such as 10.0.0.0/16"
    if not isinstance(raw, str) or "/" not in raw:
        raise ConfigError(key, raw, expected)
    try:
        network = ipaddress.ip_network(raw.strip(), strict=True)
    except ValueError:
        raise ConfigError(key, raw, expected) from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ConfigError(key, raw, expected)
    return network


def parse_network_prefix(key: str, raw: object, shortest: int, longest: int) -> str:
    network = parse_network(key, raw)
    if not shortest <= network.prefixlen <= longest:
        raise ConfigError(key, raw, f"a network with a prefix from /{shortest} to /{longest}")
    return str(network)


def parse_kubernetes_version(key: str, raw: object) -> KubernetesVersion:
    expected = (
        f"a Kubernetes minor version from 1.{MIN_KUBERNETES_MINOR} to 1.{MAX_KUBERNETES_MINOR}, "
        "such as 1.31 or 1.31.4 (kubeadm packages exist from 1.24 on)"
    )
    text = str(raw).strip().removeprefix("v") if isinstance(raw, (str, int, float)) else ""
    match = re.fullmatch(r"1\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise ConfigError(key, raw, expected)
    minor = int(match.group(1))
    if not MIN_KUBERNETES_MINOR <= minor <= MAX_KUBERNETES_MINOR:
        raise ConfigError(key, raw, expected)
    patch = int(match.group(2)) if match.group(2) is not None else None
    return KubernetesVersion(minor, patch)


def parse_image(key: str, raw: object) -> str:
    expected = "a pinned image reference with a tag other than latest or a sha256 digest, " \
        "such as nginx:1.27.3"
    if not isinstance(raw, str) or len(raw) > 255:
        raise ConfigError(key, raw, expected)
    match = IMAGE_REFERENCE.fullmatch(raw)
    if not match or not (match.group("tag") or match.group("digest")):
        raise ConfigError(key, raw, expected)
    if match.group("tag") == "latest" and not match.group("digest"):
        raise ConfigError(key, raw, expected)
    return raw


def parse_json_list(key: str, raw: object) -> list[Any]:
    """A list given in the stack file (Pulumi passes it as JSON text) or as one plain item."""
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if not text.startswith("["):
            return [text] if text else []
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(key, raw, "a YAML list") from None
        if isinstance(value, list):
            return value
    raise ConfigError(key, raw, "a YAML list")


def parse_json_object(key: str, raw: object) -> dict[str, Any]:
    if isinstance(raw, str):
        with contextlib.suppress(json.JSONDecodeError):
            raw = json.loads(raw)
    if not isinstance(raw, dict):
        raise ConfigError(key, raw, "a mapping of app settings (name, image, replicas, port, ...)")
    return raw


def optional(values: Mapping[str, object], key: str, parse: Callable[[object], T], default: T) -> T:
    raw = values.get(key)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return default
    return parse(raw)


# registryMirrors: a registry as images name it (docker.io, ghcr.io, registry.example:5000) or
# _default (every registry); each mirror an http(s) URL of a registry serving the same images.
REGISTRY_NAME = re.compile(
    r"_default|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(:[0-9]{1,5})?"
)
MIRROR_URL = re.compile(
    r"https?://[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?"
)
MAX_MIRRORS = 8


def parse_registry_mirrors(raw: object) -> RegistryMirrors:
    """registryMirrors: every bad registry name or mirror URL in one ConfigErrors."""
    expected_map = ("a mapping of registry name to a list of mirror URLs, such as "
                    "{docker.io: [https://mirror.example.com]}")
    if isinstance(raw, str):
        with contextlib.suppress(json.JSONDecodeError):
            raw = json.loads(raw)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("registryMirrors", raw, expected_map)
    errors = ErrorCollector()
    mirrors = []
    for registry, urls in raw.items():
        key = f"registryMirrors.{registry}"
        if not isinstance(registry, str) or not REGISTRY_NAME.fullmatch(registry):
            errors.add(key, registry, "a registry host as images name it, lowercase, with an "
                       "optional :port (docker.io, ghcr.io, registry.example:5000), or _default")
            continue
        listed = errors.check(partial(parse_json_list, key, urls))
        if listed is None:
            continue
        if not 1 <= len(listed) <= MAX_MIRRORS:
            errors.add(key, urls, f"a list of 1 to {MAX_MIRRORS} mirror URLs")
            continue
        good = []
        for index, url in enumerate(listed):
            if not isinstance(url, str) or not MIRROR_URL.fullmatch(url):
                errors.add(f"{key}[{index}]", url, "an http:// or https:// URL of a registry "
                           "mirror, lowercase host, no credentials, query or fragment, such as "
                           "https://mirror.example.com or http://10.0.0.5:5000")
            elif url.rstrip("/") in good:
                errors.add(f"{key}[{index}]", url, "a mirror not listed twice")
            else:
                good.append(url.rstrip("/"))
        mirrors.append((registry, tuple(good)))
    errors.raise_if_any()
    return tuple(sorted(mirrors))


# ---------------------------------------------------------------------------------------------
# Sections


def parse_cluster(values: Mapping[str, object], errors: ErrorCollector) -> ClusterConfig | None:
    """kubernetesVersion, podCidr, serviceCidr, allowCgroupV1, drainTimeoutSeconds,
    registryMirrors; problems go to `errors`."""
    found = len(errors.errors)
    version = errors.check(lambda: optional(
        values, "kubernetesVersion",
        lambda raw: parse_kubernetes_version("kubernetesVersion", raw),
        DEFAULT_KUBERNETES_VERSION,
    ))
    pod_cidr = errors.check(lambda: optional(
        values, "podCidr", lambda raw: parse_network_prefix("podCidr", raw, 8, 22), "10.244.0.0/16"
    ))
    service_cidr = errors.check(lambda: optional(
        values, "serviceCidr", lambda raw: parse_network_prefix("serviceCidr", raw, 12, 28),
        "10.96.0.0/12",
    ))
    if pod_cidr is not None and service_cidr is not None and overlaps(pod_cidr, service_cidr):
        errors.add(
            "serviceCidr", service_cidr, f"a network that does not overlap podCidr {pod_cidr}"
        )
    allow_cgroup_v1 = errors.check(lambda: optional(
        values, "allowCgroupV1", lambda v: parse_bool("allowCgroupV1", v), False
    ))
    drain_timeout = errors.check(lambda: optional(
        values, "drainTimeoutSeconds",
        lambda v: parse_int("drainTimeoutSeconds", v, MIN_DRAIN_TIMEOUT, MAX_DRAIN_TIMEOUT),
        DEFAULT_DRAIN_TIMEOUT,
    ))
    no_mirrors: RegistryMirrors = ()
    registry_mirrors = errors.check(lambda: optional(
        values, "registryMirrors", parse_registry_mirrors, no_mirrors
    ))
    if len(errors.errors) > found:
        return None
    assert version is not None and pod_cidr is not None and service_cidr is not None
    assert drain_timeout is not None and registry_mirrors is not None
    return ClusterConfig(version, pod_cidr, service_cidr, bool(allow_cgroup_v1), drain_timeout,
                         registry_mirrors)


VOLUME_KEYS = frozenset({"name", "mountPath", "readOnly", "emptyDir", "volumeClaimTemplate"})
VOLUME_KINDS = ("emptyDir", "volumeClaimTemplate")
EMPTY_DIR_KEYS = frozenset({"medium", "sizeLimit"})
CLAIM_KEYS = frozenset({"storage", "accessModes", "storageClassName"})
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod", "ReadOnlyMany", "ReadWriteMany")
MAX_VOLUMES = 16
# A StatefulSet's pods carry the label controller-revision-hash=<name>-<10 characters>, which
# must fit a label value's 63 characters (kubernetes/kubernetes#64023).
MAX_STATEFUL_NAME = 52
# The program's own volume on every app: /tmp, since the root filesystem is read-only.
TMP_VOLUME = ScratchVolume("tmp", "/tmp")
MOUNT_PATH = re.compile(r"/[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _mapping(raw: object) -> object:
    """A value given as JSON text (the CLI's --path form) read as what it encodes."""
    if isinstance(raw, str):
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(raw or "{}")
    return raw


def _volume_kind(
    key: str, raw: object, allowed: frozenset[str], expected: str, errors: ErrorCollector
) -> dict[str, Any] | None:
    """A volume kind's mapping (emptyDir, volumeClaimTemplate), its unknown keys reported;
    None when it is no mapping (reported as `expected`)."""
    spec = _mapping(raw)
    if not isinstance(spec, dict):
        errors.add(key, raw, expected)
        return None
    for unknown in sorted(set(spec) - allowed):
        errors.add(f"{key}.{unknown}", spec[unknown], "one of " + ", ".join(sorted(allowed)))
    return spec


def _empty_dir(at: str, raw: object, errors: ErrorCollector) -> tuple[str, str | None] | None:
    """(medium, sizeLimit) of a volume's emptyDir, or None when it is bad (reported)."""
    key = f"{at}.emptyDir"
    found = len(errors.errors)
    spec = _volume_kind(key, raw, EMPTY_DIR_KEYS, "a mapping ({} or medium and sizeLimit): "
                        "scratch space for the pod's lifetime", errors)
    if spec is None:
        return None
    medium = spec.get("medium", "")
    if medium not in ("", "Memory"):
        errors.add(f"{key}.medium", medium, "Memory (RAM, counted against memoryLimit) or "
                   "nothing (the node's disk)")
    size_limit = spec.get("sizeLimit")
    if size_limit is not None and (not isinstance(size_limit, str)
                                   or not QUANTITY_MEMORY.fullmatch(size_limit)):
        errors.add(f"{key}.sizeLimit", size_limit, "a size such as 64Mi or 1Gi")
    if len(errors.errors) > found:
        return None
    return str(medium), cast("str | None", size_limit)


def _claim_template(
    at: str, raw: object, errors: ErrorCollector
) -> tuple[str, tuple[str, ...], str | None] | None:
    """(storage, accessModes, storageClassName) of a volume's volumeClaimTemplate, or None
    when it is bad (reported)."""
    key = f"{at}.volumeClaimTemplate"
    found = len(errors.errors)
    spec = _volume_kind(key, raw, CLAIM_KEYS, "a mapping with storage (such as 1Gi), and "
                        "optionally accessModes and storageClassName: a persistent volume per "
                        "replica", errors)
    if spec is None:
        return None
    storage = spec.get("storage")
    if not isinstance(storage, str) or not QUANTITY_MEMORY.fullmatch(storage) \
            or not re.search(r"[1-9]", storage.split(".")[0] + storage.split(".")[-1]):
        errors.add(f"{key}.storage", storage, "the size each replica's volume asks for, more "
                   "than zero, such as 1Gi")
    modes = _mapping(spec.get("accessModes", ["ReadWriteOnce"]))
    if not isinstance(modes, list) or not modes or len(set(map(str, modes))) != len(modes) \
            or any(mode not in ACCESS_MODES for mode in modes) \
            or ("ReadWriteOncePod" in modes and len(modes) > 1):
        errors.add(f"{key}.accessModes", spec.get("accessModes"),
                   "a list of distinct access modes from " + ", ".join(ACCESS_MODES)
                   + " (ReadWriteOncePod only on its own)")
    class_name = spec.get("storageClassName")
    if class_name is not None and (not isinstance(class_name, str) or len(class_name) > 253
                                   or not DNS1123_SUBDOMAIN.fullmatch(class_name)):
        errors.add(f"{key}.storageClassName", class_name, "a StorageClass name (a DNS-1123 "
                   "subdomain); leave it out for the cluster's default class")
    if len(errors.errors) > found:
        return None
    return cast(str, storage), tuple(cast(list[str], modes)), cast("str | None", class_name)


def parse_volumes(where: str, raw: object) -> tuple[AppVolume, ...]:
    """An app's `volumes`: every problem in them raised together (ConfigErrors)."""
    key = f"{where}.volumes"
    entries = parse_json_list(key, raw)
    errors = ErrorCollector()
    if len(entries) > MAX_VOLUMES:
        errors.add(key, raw, f"at most {MAX_VOLUMES} volumes")
    volumes: list[AppVolume] = []
    names: set[str] = {TMP_VOLUME.name}
    paths: set[str] = {TMP_VOLUME.mount_path}
    for i, item in enumerate(entries):
        at = f"{key}[{i}]"
        item = _mapping(item)
        if not isinstance(item, dict):
            errors.add(at, item, "a mapping with name, mountPath and emptyDir or "
                       "volumeClaimTemplate")
            continue
        for unknown in sorted(set(item) - VOLUME_KEYS):
            errors.add(f"{at}.{unknown}", item[unknown],
                       "one of the volume keys " + ", ".join(sorted(VOLUME_KEYS)))
        name = item.get("name")
        if not isinstance(name, str) or not DNS1123_LABEL.fullmatch(name) or len(name) > 63:
            errors.add(f"{at}.name", name, "a DNS-1123 label of at most 63 characters")
            name = None
        elif name in names:
            errors.add(f"{at}.name", name, "a name no other volume of the app has (tmp is the "
                       "program's own /tmp volume)")
            name = None
        path = item.get("mountPath")
        if not isinstance(path, str) or not MOUNT_PATH.fullmatch(path) or \
                ".." in path.split("/"):
            errors.add(f"{at}.mountPath", path, "an absolute path such as /var/cache/nginx, "
                       "not / and without ..")
            path = None
        elif any(path == p or path.startswith(p + "/") or p.startswith(path + "/")
                 for p in paths):
            errors.add(f"{at}.mountPath", path, "a path that is not, is not inside and does not "
                       "contain another volume's mountPath (/tmp is the program's own)")
            path = None
        read_only = errors.check(partial(optional, item, "readOnly",
                                         partial(parse_bool, f"{at}.readOnly"), False))
        kinds = [kind for kind in VOLUME_KINDS if kind in item]
        if len(kinds) != 1:
            errors.add(at, item, "exactly one of emptyDir (scratch space for the pod's "
                       "lifetime) and volumeClaimTemplate (a persistent volume per replica)")
            continue
        volume: AppVolume | None = None
        if kinds == ["emptyDir"]:
            scratch = _empty_dir(at, item["emptyDir"], errors)
            if scratch is not None and name is not None and path is not None:
                volume = ScratchVolume(name, path, scratch[0], scratch[1], bool(read_only))
        else:
            claim = _claim_template(at, item["volumeClaimTemplate"], errors)
            if claim is not None and name is not None and path is not None:
                volume = ClaimVolume(name, path, claim[0], claim[1], claim[2], bool(read_only))
        if volume is not None and read_only is not None:
            names.add(volume.name)
            paths.add(volume.mount_path)
            volumes.append(volume)
    errors.raise_if_any()
    return tuple(volumes)


def _declares_claims(raw: object) -> bool:
    """Whether raw `volumes` (valid or not) ask for a volumeClaimTemplate."""
    entries = _mapping(raw)
    return isinstance(entries, list) and any(
        isinstance(item, dict) and "volumeClaimTemplate" in item
        for item in map(_mapping, entries))


def parse_claim_retention(key: str, raw: object) -> ClaimRetention:
    """persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain | Delete}; whenScaled, if
    given, must be Retain (scaling down never deletes a claim)."""
    policy = _mapping(raw)
    expected = ("a mapping {whenDeleted: Retain or Delete}: whether deleting the app (or "
                "pulumi destroy) deletes its claims and their data")
    if not isinstance(policy, dict) or set(policy) - {"whenDeleted", "whenScaled"}:
        raise ConfigError(key, raw, expected)
    if policy.get("whenScaled", "Retain") != "Retain":
        raise ConfigError(f"{key}.whenScaled", policy["whenScaled"],
                          "Retain (scaling down never deletes a claim) or nothing")
    return cast(ClaimRetention, parse_choice(f"{key}.whenDeleted",
                                             policy.get("whenDeleted", "Retain"),
                                             ("Retain", "Delete")))


def parse_app(
    index: int, raw: object, default_namespace: str, local: LocalConfig | None
) -> AppConfig:
    """One entry of `apps`; every problem in it is raised together (ConfigErrors)."""
    where = f"apps[{index}]"
    entry = parse_json_object(where, raw)
    errors = ErrorCollector()
    for unknown in sorted(set(entry) - APP_KEYS):
        errors.add(f"{where}.{unknown}", entry[unknown],
                   "one of the app keys " + ", ".join(sorted(APP_KEYS)))
    for required in ("name", "image", "port"):
        if entry.get(required) in (None, ""):
            errors.add(f"{where}.{required}", None, f"a value for {required}")

    def key(name: str) -> str:
        return f"{where}.{name}"

    def given(name: str, parse: Callable[[object], T]) -> T | None:
        """A required field's value, or None when it is missing (already reported) or bad."""
        if entry.get(name) in (None, ""):
            return None
        return errors.check(lambda: parse(entry[name]))

    def quantity(name: str, pattern: re.Pattern[str], expected: str, default: str) -> str | None:
        return errors.check(lambda: optional(
            entry, name, lambda v: parse_regex(key(name), v, pattern, expected), default))

    name = given("name", lambda v: parse_regex(
        key("name"), v, DNS1123_LABEL,
        "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a "
        "letter or digit, at most 63 characters",
    ))
    if name is not None and len(name) > 63:
        errors.add(key("name"), name, "a DNS-1123 label of at most 63 characters")
    namespace = errors.check(lambda: optional(
        entry, "namespace",
        lambda v: parse_regex(key("namespace"), v, DNS1123_LABEL, "a DNS-1123 label"),
        default_namespace,
    ))
    service_type = errors.check(lambda: parse_choice(
        key("serviceType"), entry.get("serviceType", "NodePort"),
        ("NodePort", "ClusterIP", "LoadBalancer"),
    ))
    node_port = errors.check(lambda: optional(
        entry, "nodePort", lambda v: parse_int(key("nodePort"), v, NODE_PORT_MIN, NODE_PORT_MAX),
        None,
    ))
    if node_port is not None and service_type == "ClusterIP":
        errors.add(key("nodePort"), node_port, "no nodePort when serviceType is ClusterIP")
    elif local is not None and service_type not in (None, "ClusterIP") and (
        node_port is not None and node_port not in local.node_ports
    ):
        errors.add(
            key("nodePort"), node_port,
            f"a nodePort from {local.node_port_first} to {local.node_port_last} "
            "(localNodePorts: the ports the local node publishes on 127.0.0.1)",
        )
    capabilities_raw = errors.check(
        lambda: parse_json_list(key("capabilities"), entry.get("capabilities", []))) or []

    def capability(i: int, cap: object) -> str | None:
        return errors.check(lambda: parse_regex(
            f"{key('capabilities')}[{i}]", cap, CAPABILITY,
            "a Linux capability name such as NET_BIND_SERVICE"))

    capabilities = [capability(i, cap) for i, cap in enumerate(capabilities_raw)]
    image = given("image", lambda v: parse_image(key("image"), v))
    replicas = errors.check(lambda: optional(
        entry, "replicas", lambda v: parse_int(key("replicas"), v, 0, 1000), 1))
    port = given("port", lambda v: parse_int(key("port"), v, 1, 65535))
    cpu_request = quantity("cpuRequest", QUANTITY_CPU, "a CPU quantity like 100m", "50m")
    cpu_limit = quantity("cpuLimit", QUANTITY_CPU, "a CPU quantity like 500m", "500m")
    memory_request = quantity("memoryRequest", QUANTITY_MEMORY, "a memory quantity like 64Mi",
                              "64Mi")
    memory_limit = quantity("memoryLimit", QUANTITY_MEMORY, "a memory quantity like 128Mi",
                            "128Mi")
    no_volumes: tuple[AppVolume, ...] = ()
    volumes = errors.check(lambda: optional(entry, "volumes",
                                            lambda v: parse_volumes(where, v), no_volumes))
    # Bad volumes are reported already; whether the app is meant to be stateful is still
    # plain from the raw entries, so its other keys are checked as such.
    stateful = (any(isinstance(v, ClaimVolume) for v in volumes) if volumes is not None
                else _declares_claims(entry.get("volumes")))
    fs_group = errors.check(lambda: optional(
        entry, "fsGroup", lambda v: parse_int(key("fsGroup"), v, 1, 2**31 - 1), 65532))
    claims_when_deleted = errors.check(lambda: optional(
        entry, "persistentVolumeClaimRetentionPolicy",
        lambda v: parse_claim_retention(key("persistentVolumeClaimRetentionPolicy"), v),
        cast(ClaimRetention, "Retain")))
    abandon = errors.check(lambda: optional(
        entry, "abandonVolumeClaims", lambda v: parse_bool(key("abandonVolumeClaims"), v), False))
    if not stateful:
        for only_stateful in ("fsGroup", "persistentVolumeClaimRetentionPolicy"):
            if entry.get(only_stateful) not in (None, ""):
                errors.add(key(only_stateful), entry[only_stateful],
                           "nothing unless a volume has a volumeClaimTemplate")
    elif name is not None and len(name) > MAX_STATEFUL_NAME:
        errors.add(key("name"), name, f"at most {MAX_STATEFUL_NAME} characters for an app "
                   "with a volumeClaimTemplate (a StatefulSet's pods carry the label "
                   "controller-revision-hash=<name>-<hash>, at most 63)")
    errors.raise_if_any()
    return AppConfig(
        name=cast(str, name),
        image=cast(str, image),
        replicas=cast(int, replicas),
        port=cast(int, port),
        service_type=cast(ServiceType, service_type),
        node_port=node_port,
        namespace=cast(str, namespace),
        cpu_request=cast(str, cpu_request),
        cpu_limit=cast(str, cpu_limit),
        memory_request=cast(str, memory_request),
        memory_limit=cast(str, memory_limit),
        capabilities=tuple(cast(str, cap) for cap in capabilities),
        volumes=volumes or (),
        fs_group=cast(int, fs_group),
        claims_when_deleted=cast(ClaimRetention, claims_when_deleted),
        abandon_volume_claims=bool(abandon),
    )


def parse_apps(
    values: Mapping[str, object], local: LocalConfig | None, errors: ErrorCollector
) -> tuple[AppConfig, ...] | None:
    """Every app, each checked on its own; problems go to `errors` (None when any)."""
    found = len(errors.errors)
    default_namespace = errors.check(lambda: optional(
        values,
        "appsNamespace",
        lambda v: parse_regex("appsNamespace", v, DNS1123_LABEL, "a DNS-1123 label"),
        "apps",
    )) or "apps"
    raw_apps = errors.check(
        lambda: optional(values, "apps", lambda v: parse_json_list("apps", v), [DEFAULT_APP])
    ) or []

    def one_app(index: int, raw: object) -> AppConfig | None:
        return errors.check(lambda: parse_app(index, raw, default_namespace, local))

    parsed = [one_app(i, raw) for i, raw in enumerate(raw_apps)]
    seen: dict[tuple[str, str], int] = {}
    ports: dict[int, int] = {}
    for i, app in enumerate(parsed):
        if app is None:
            continue
        if (app.namespace, app.name) in seen:
            errors.add(
                f"apps[{i}].name", app.name,
                f"a name not used by apps[{seen[(app.namespace, app.name)]}] in namespace "
                f"{app.namespace}",
            )
        seen.setdefault((app.namespace, app.name), i)
        if app.node_port is not None:
            if app.node_port in ports:
                errors.add(
                    f"apps[{i}].nodePort", app.node_port,
                    f"a nodePort not used by apps[{ports[app.node_port]}]",
                )
            ports.setdefault(app.node_port, i)
    # A stateful app's headless Service is <name>-headless: no other app may be called that.
    for i, app in enumerate(parsed):
        headless = (app.namespace, f"{app.name}-headless") if app is not None else None
        if app is not None and app.stateful and headless in seen:
            errors.add(f"apps[{seen[headless]}].name", headless[1],
                       f"a name other than {headless[1]}, the headless Service of apps[{i}] "
                       "(it has a volumeClaimTemplate)")
    if len(errors.errors) > found:
        return None
    apps = tuple(app for app in parsed if app is not None)
    return assign_local_node_ports(apps, local, errors) if local is not None else apps


def assign_local_node_ports(
    apps: tuple[AppConfig, ...], local: LocalConfig, errors: ErrorCollector
) -> tuple[AppConfig, ...] | None:
    """Give every local app that is reached through a node port and names none the lowest
    published port (localNodePorts) that no app names and no earlier app was given.

    Stable: appending an app, or removing the last one, moves no other app's port. What moves
    one: removing or reordering an earlier app without a nodePort, or giving an app a nodePort
    that a later one had been given (README, "Configuration reference").
    """
    taken = {app.node_port for app in apps if app.node_port is not None}
    free = (port for port in local.node_ports if port not in taken)
    assigned: list[AppConfig] = []
    for index, app in enumerate(apps):
        if app.service_type == "ClusterIP" or app.node_port is not None:
            assigned.append(app)
            continue
        port = next(free, None)
        if port is None:
            errors.add(
                f"apps[{index}].nodePort", None,
                f"a free port of localNodePorts {local.node_port_first}-{local.node_port_last}: "
                "every published port is used; widen localNodePorts (up to 100 ports)",
            )
            return None
        assigned.append(dataclasses.replace(app, node_port=port))
    return tuple(assigned)


def parse_local(values: Mapping[str, object], cluster: ClusterConfig, workers: int) -> LocalConfig:
    """The local section; every problem in it is raised together (ConfigErrors)."""
    errors = ErrorCollector()
    node_image = errors.check(lambda: optional(
        values, "nodeImage", lambda v: parse_image("nodeImage", v), DEFAULT_NODE_IMAGE))
    tag_match = re.search(r":v1\.(\d+)(?:\.(\d+))?(?:@|$)", node_image or "")
    version = cluster.kubernetes_version
    if tag_match and (
        int(tag_match.group(1)) != version.minor
        or (version.patch is not None and tag_match.group(2) is not None
            and int(tag_match.group(2)) != version.patch)
    ):
        errors.add(
            "nodeImage", node_image,
            f"a kind node image whose tag matches kubernetesVersion {version} "
            f"(kindest/node:v{version.minor_version}.x)",
        )
    network = errors.check(lambda: optional(
        values, "networkCidr", lambda v: parse_network_prefix("networkCidr", v, 16, 28),
        "172.30.0.0/24",
    ))
    if network is not None:
        clear = True
        for other_key, other in (("podCidr", cluster.pod_cidr),
                                 ("serviceCidr", cluster.service_cidr)):
            if overlaps(network, other):
                errors.add("networkCidr", network,
                           f"a network that does not overlap {other_key} {other}")
                clear = False
        if clear:
            errors.check(lambda: check_room_for_nodes("networkCidr", network, 1 + workers))
    load_balancer_image = errors.check(lambda: optional(
        values, "loadBalancerImage", lambda v: parse_image("loadBalancerImage", v),
        DEFAULT_LOAD_BALANCER_IMAGE))
    port = errors.check(lambda: optional(
        values, "apiServerPort", lambda v: parse_int("apiServerPort", v, 1024, 65535), 6443))
    ports = errors.check(lambda: optional(values, "localNodePorts", parse_port_range,
                                          (30080, 30089)))
    if port is not None and ports is not None and ports[0] <= port <= ports[1]:
        errors.add("apiServerPort", port,
                   f"a port outside localNodePorts {ports[0]}-{ports[1]} (both are published on "
                   "127.0.0.1)")
    errors.raise_if_any()
    assert node_image is not None and network is not None and port is not None
    assert ports is not None and load_balancer_image is not None
    return LocalConfig(node_image, network, port, ports[0], ports[1], load_balancer_image)


def parse_port_range(raw: object) -> tuple[int, int]:
    expected = f"a range FIRST-LAST of at most 100 ports within {NODE_PORT_MIN}-{NODE_PORT_MAX}"
    match = re.fullmatch(r"(\d+)-(\d+)", str(raw).strip())
    if not match:
        raise ConfigError("localNodePorts", raw, expected)
    first, last = int(match.group(1)), int(match.group(2))
    if not (NODE_PORT_MIN <= first <= last <= NODE_PORT_MAX and last - first < 100):
        raise ConfigError("localNodePorts", raw, expected)
    return first, last


def check_room_for_nodes(key: str, cidr: str, nodes: int) -> None:
    network = ipaddress.IPv4Network(cidr)
    last_needed = network.network_address + NODE_IP_OFFSET + nodes - 1
    if last_needed >= network.broadcast_address:
        raise ConfigError(
            key, cidr,
            f"a network with room for {nodes} node addresses from .{NODE_IP_OFFSET} on "
            f"(master at +{NODE_IP_OFFSET}, workers after it); use a larger network or fewer "
            "workers",
        )


def parse_aws_region(values: Mapping[str, object]) -> str:
    region = values.get("aws:region")
    if region in (None, ""):
        raise ConfigError("aws:region", region,
                          "an AWS region such as eu-west-1 (pulumi config set aws:region ...)")
    return parse_regex("aws:region", region, AWS_REGION, "an AWS region such as eu-west-1")


def parse_aws_networks(
    values: Mapping[str, object], cluster: ClusterConfig, workers: int
) -> tuple[str, str, str, bool]:
    """(vpcCidr, subnetCidr, privateSubnetCidr, privateWorkers): checked in order, each check
    needing the ones before it, so this group stops at its first problem."""
    vpc = optional(values, "vpcCidr", lambda v: parse_network_prefix("vpcCidr", v, 16, 28),
                   "10.0.0.0/16")
    subnet = optional(values, "subnetCidr",
                      lambda v: parse_network_prefix("subnetCidr", v, 16, 28), "10.0.1.0/24")
    private_subnet = optional(values, "privateSubnetCidr",
                              lambda v: parse_network_prefix("privateSubnetCidr", v, 16, 28),
                              "10.0.2.0/24")
    private_workers = optional(values, "privateWorkers",
                               lambda v: parse_bool("privateWorkers", v), False)
    subnets = [("subnetCidr", subnet)]
    if private_workers:
        subnets.append(("privateSubnetCidr", private_subnet))
    for key, net in subnets:
        if not ipaddress.ip_network(net).subnet_of(ipaddress.ip_network(vpc)):  # type: ignore[arg-type]
            raise ConfigError(key, net, f"a subnet inside vpcCidr {vpc}")
    if private_workers and overlaps(subnet, private_subnet):
        raise ConfigError("privateSubnetCidr", private_subnet,
                          f"a subnet that does not overlap subnetCidr {subnet}")
    for key, net in (("podCidr", cluster.pod_cidr), ("serviceCidr", cluster.service_cidr)):
        if overlaps(net, vpc):
            raise ConfigError(key, net, f"a network that does not overlap vpcCidr {vpc}")
    if private_workers:
        check_room_for_nodes("subnetCidr", subnet, 1)
        check_room_for_nodes("privateSubnetCidr", private_subnet, 1 + workers)
    else:
        check_room_for_nodes("subnetCidr", subnet, 1 + workers)
    return vpc, subnet, private_subnet, private_workers


def parse_instance_type(values: Mapping[str, object], key: str) -> str:
    value = optional(values, key, lambda v: parse_regex(
        key, v, INSTANCE_TYPE, "an EC2 instance type such as t3.medium"), "t3.medium")
    if value.split(".", 1)[1] in ("nano", "micro"):
        raise ConfigError(key, value, "an instance type with at least 2 GiB of memory "
                          "(kubeadm's minimum), such as t3.small or t3.medium")
    if has_one_vcpu(value):
        raise ConfigError(key, value, "an instance type with at least 2 vCPUs (kubeadm's "
                          "minimum), such as t3.small, t3.medium or m7g.large")
    return value


def parse_admin_cidrs(values: Mapping[str, object]) -> tuple[str, ...]:
    admin_raw = values.get("adminCidrs")
    if admin_raw in (None, "", "[]"):
        raise ConfigError(
            "adminCidrs", admin_raw,
            "a list of CIDRs allowed to reach SSH, the Kubernetes API and NodePorts, such as "
            "[203.0.113.7/32]; there is no open-to-the-world default",
        )
    errors = ErrorCollector()
    items = parse_json_list("adminCidrs", admin_raw)

    def one(index: int, item: object) -> str | None:
        return errors.check(lambda: parse_admin_cidr(f"adminCidrs[{index}]", item))

    cidrs = [one(i, item) for i, item in enumerate(items)]
    errors.raise_if_any()
    if not cidrs:
        raise ConfigError("adminCidrs", admin_raw, "at least one CIDR")
    return tuple(cast(str, cidr) for cidr in cidrs)


ApiLoadBalancerConfig = tuple[bool, tuple[str, ...], tuple[str, ...]]


def parse_api_load_balancer(
    values: Mapping[str, object], region: str | None, availability_zone: str | None,
    networks: tuple[str, str, str, bool] | None, control_planes: int | None,
) -> ApiLoadBalancerConfig:
    """(apiLoadBalancer, controlPlaneZones, controlPlaneSubnetCidrs); every problem in them is
    raised together (ConfigErrors). A check that needs another value (the region, the networks,
    the control-plane count) runs once that value is valid.

    apiLoadBalancer defaults to true with several control-plane nodes, which need it. The zones
    default to none given (looked up at deploy time: DEFAULT_CONTROL_PLANE_ZONES of them, or one
    more than the subnets given); the subnets default to blocks of subnetCidr's size taken from
    the top of vpcCidr down, clear of subnetCidr and privateSubnetCidr (10.0.255.0/24 and
    10.0.254.0/24 with the default networks). Inside vpcCidr, they cannot overlap podCidr or
    serviceCidr (parse_aws_networks keeps those outside it).
    """
    errors = ErrorCollector()
    several = control_planes is not None and control_planes > 1
    wanted = errors.check(lambda: optional(
        values, "apiLoadBalancer", lambda v: parse_bool("apiLoadBalancer", v), several))
    if wanted is False and several:
        errors.add("apiLoadBalancer", values.get("apiLoadBalancer"),
                   f"true (or unset) with controlPlaneNodes {control_planes}: several "
                   "control-plane nodes sit behind the API load balancers, kubeadm's "
                   "controlPlaneEndpoint")
    if wanted is False:  # a bad value (reported) leaves the zone keys checked as if true
        for key in ("controlPlaneZones", "controlPlaneSubnetCidrs"):
            if values.get(key) not in (None, ""):
                errors.add(key, values[key], "nothing unless apiLoadBalancer is true (or "
                           "controlPlaneNodes is more than 1)")
        errors.raise_if_any()
        return False, (), ()
    zones = errors.check(lambda: parse_control_plane_zones(values, region, availability_zone))
    given_cidrs = values.get("controlPlaneSubnetCidrs") not in (None, "")
    cidrs = errors.check(lambda: parse_json_list(
        "controlPlaneSubnetCidrs", values.get("controlPlaneSubnetCidrs") or []))
    if cidrs is None or networks is None:
        errors.raise_if_any()
        return True, (), ()
    # A bad zone list is reported already; the subnets are still checked on their own.
    count = (len(zones) if zones else 1 + len(cidrs) if given_cidrs
             else DEFAULT_CONTROL_PLANE_ZONES) if zones is not None else None
    vpc, subnet, private_subnet, _ = networks
    if count is not None and not given_cidrs:
        subnets = errors.check(lambda: default_zone_subnets(vpc, subnet, private_subnet,
                                                            count - 1))
        errors.raise_if_any()
        return True, zones or (), tuple(subnets or ())
    if len(cidrs) > MAX_CONTROL_PLANE_ZONES - 1:
        errors.add("controlPlaneSubnetCidrs", cidrs,
                   f"at most {MAX_CONTROL_PLANE_ZONES - 1} subnets (one per zone after the first)")
    elif count is not None and len(cidrs) != count - 1:
        errors.add("controlPlaneSubnetCidrs", cidrs,
                   f"{count - 1} subnets, one per zone of controlPlaneZones after the first "
                   f"(whose subnet is subnetCidr {subnet})")
    parsed: dict[int, str] = {}
    for index, raw in enumerate(cidrs):
        key = f"controlPlaneSubnetCidrs[{index}]"
        cidr = errors.check(partial(parse_network_prefix, key, raw, 16, 28))
        if cidr is None:
            continue
        taken = [("subnetCidr", subnet), ("privateSubnetCidr", private_subnet),
                 *((f"controlPlaneSubnetCidrs[{i}]", other) for i, other in parsed.items())]
        if not ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(vpc)):  # type: ignore[arg-type]
            errors.add(key, cidr, f"a subnet inside vpcCidr {vpc}")
        elif clash := next((name for name, net in taken if overlaps(cidr, net)), None):
            errors.add(key, cidr, f"a subnet that does not overlap {clash} "
                       f"{dict(taken)[clash]}")
        else:
            parsed[index] = cidr
    errors.raise_if_any()
    return True, zones or (), tuple(parsed.values())


def parse_control_plane_zones(
    values: Mapping[str, object], region: str | None, availability_zone: str | None,
) -> tuple[str, ...]:
    """controlPlaneZones: 1 to MAX_CONTROL_PLANE_ZONES distinct zones of the region, starting
    with availabilityZone when that is set (the master's zone is the first); () when unset."""
    raw = values.get("controlPlaneZones")
    if raw in (None, "") or region is None:
        return ()
    errors = ErrorCollector()
    listed = parse_json_list("controlPlaneZones", raw)
    if not 1 <= len(listed) <= MAX_CONTROL_PLANE_ZONES:
        raise ConfigError("controlPlaneZones", raw, f"a list of 1 to {MAX_CONTROL_PLANE_ZONES} "
                          f"zones of region {region}, such as [{region}a, {region}b, {region}c]")
    zones: list[str] = []
    pattern = re.compile(re.escape(region) + r"[a-z]")
    for index, item in enumerate(listed):
        key = f"controlPlaneZones[{index}]"
        zone = errors.check(partial(parse_regex, key, item, pattern,
                                    f"a zone of region {region}, such as {region}a"))
        if zone is not None and zone in zones:
            errors.add(key, zone, "a zone not listed before (one subnet per zone)")
        elif zone is not None:
            zones.append(zone)
    if zones and availability_zone is not None and listed[0] != availability_zone:
        errors.add("controlPlaneZones[0]", listed[0],
                   f"availabilityZone {availability_zone}: the first zone is the master's")
    errors.raise_if_any()
    return tuple(zones)


def default_zone_subnets(vpc: str, subnet: str, private_subnet: str, count: int) -> list[str]:
    """`count` blocks of subnet's size from the top of vpc down, clear of subnet and
    private_subnet (the default control-plane zone subnets)."""
    size = ipaddress.ip_network(subnet).prefixlen
    free = (str(block) for block in reversed(list(ipaddress.ip_network(vpc).subnets(
        new_prefix=size))) if not overlaps(str(block), subnet)
        and not overlaps(str(block), private_subnet))
    chosen = [block for _, block in zip(range(count), free, strict=False)]
    if len(chosen) < count:
        raise ConfigError("controlPlaneSubnetCidrs", None,
                          f"{count} public subnets for the control-plane zones after the first: "
                          f"vpcCidr {vpc} has no room for {count} blocks of /{size} clear of "
                          "subnetCidr and privateSubnetCidr; list them, or use a larger vpcCidr")
    return chosen


def parse_aws(values: Mapping[str, object], cluster: ClusterConfig, workers: int,
              control_planes: int | None = 1) -> AwsConfig:
    """The aws section; its problems are raised together (ConfigErrors). The networks are one
    group checked in order (each check needs the values before it)."""
    errors = ErrorCollector()
    region = errors.check(lambda: parse_aws_region(values))
    networks = errors.check(lambda: parse_aws_networks(values, cluster, workers))
    availability_zone = None
    if region is not None:
        availability_zone = errors.check(lambda: optional(
            values, "availabilityZone",
            lambda v: parse_regex("availabilityZone", v,
                                  re.compile(re.escape(region) + r"[a-z]"),
                                  f"a zone of region {region}, such as {region}a"),
            None,
        ))
    master_type = errors.check(lambda: parse_instance_type(values, "masterInstanceType"))
    worker_type = errors.check(lambda: parse_instance_type(values, "workerInstanceType"))
    admin_cidrs = errors.check(lambda: parse_admin_cidrs(values))
    ssh_public_key = errors.check(lambda: optional(
        values, "sshPublicKey",
        lambda v: parse_regex(
            "sshPublicKey", str(v).strip(), OPENSSH_PUBLIC_KEY,
            "an OpenSSH public key line (ssh-ed25519 AAAA... or ssh-rsa ...)",
        ),
        None,
    ))
    ssh_private_key = errors.check(lambda: parse_private_key(values))
    ssh_user = errors.check(lambda: optional(values, "sshUser", lambda v: parse_regex(
        "sshUser", v, LINUX_USER, "a Linux user name such as ubuntu"), "ubuntu"))
    ami = errors.check(lambda: optional(values, "ami", lambda v: parse_regex(
        "ami", v, AMI_ID, "an AMI id such as ami-0123456789abcdef0"), None))
    root_volume = errors.check(lambda: optional(
        values, "rootVolumeSize", lambda v: parse_int("rootVolumeSize", v, 20, 16384), 30))
    package_source: PackageSource | None = errors.check(lambda: optional(
        values, "packageSource",
        lambda v: cast(PackageSource, parse_choice("packageSource", v, ("docker", "distro"))),
        "docker",
    ))
    load_balancer = errors.check(lambda: parse_api_load_balancer(
        values, region, availability_zone, networks, control_planes))
    errors.raise_if_any()
    assert region is not None and networks is not None and admin_cidrs is not None
    assert load_balancer is not None
    vpc, subnet, private_subnet, private_workers = networks
    api_load_balancer, control_plane_zones, control_plane_subnet_cidrs = load_balancer
    return AwsConfig(
        region=region,
        vpc_cidr=vpc,
        subnet_cidr=subnet,
        private_subnet_cidr=private_subnet,
        availability_zone=availability_zone,
        master_instance_type=cast(str, master_type),
        worker_instance_type=cast(str, worker_type),
        admin_cidrs=admin_cidrs,
        ssh_public_key=ssh_public_key,
        ssh_private_key=ssh_private_key,
        ssh_user=cast(str, ssh_user),
        ami=ami,
        root_volume_size_gb=cast(int, root_volume),
        package_source=cast(PackageSource, package_source),
        private_workers=private_workers,
        api_load_balancer=api_load_balancer,
        control_plane_zones=control_plane_zones,
        control_plane_subnet_cidrs=control_plane_subnet_cidrs,
    )


def parse_private_key(values: Mapping[str, object]) -> str | None:
    raw = values.get("sshPrivateKey")
    if raw in (None, ""):
        return None
    if values.get("sshPublicKey") in (None, ""):
        raise ConfigError("sshPrivateKey", "[secret]",
                          "no sshPrivateKey unless sshPublicKey is set (a key pair is generated)")
    if not isinstance(raw, str) or "PRIVATE KEY-----" not in raw:
        # Never echo a private key back, even a malformed one.
        raise ConfigError("sshPrivateKey", "[secret]",
                          "a PEM or OpenSSH private key (pulumi config set --secret sshPrivateKey)")
    return raw


SSH_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
HOST_KEY_EXPECTED = (
    "the machine's SSH host public key as one line, such as the part after the host name in "
    "`ssh-keyscan -t ed25519 HOST` (ssh-ed25519 AAAA...); check it out of band"
)
MACHINE_HOST_KEYS = frozenset({"name", "address", "privateIp", "port", "user", "hostKey"})


def parse_machine_host(
    where: str, raw: object, default_name: str, default_user: str, errors: ErrorCollector
) -> MachineHost | None:
    """One entry of controlPlaneHosts or workerHosts; every problem goes to `errors`."""
    if isinstance(raw, str):
        with contextlib.suppress(json.JSONDecodeError):
            raw = json.loads(raw)
    if not isinstance(raw, dict):
        errors.add(where, raw, "a mapping with address, hostKey and optionally name, "
                   "privateIp, port, user")
        return None
    for unknown in sorted(set(raw) - MACHINE_HOST_KEYS):
        errors.add(f"{where}.{unknown}", raw[unknown],
                   "one of the host keys " + ", ".join(sorted(MACHINE_HOST_KEYS)))

    def key(name: str) -> str:
        return f"{where}.{name}"

    name = errors.check(lambda: optional(raw, "name", lambda v: parse_regex(
        key("name"), v, DNS1123_LABEL,
        "a DNS-1123 label (the node name): lower-case letters, digits and '-'"), default_name))
    if name is not None and len(name) > 63:
        errors.add(key("name"), name, "a node name of at most 63 characters")
        name = None
    address = None
    if raw.get("address") in (None, ""):
        errors.add(key("address"), raw.get("address"),
                   "the address Pulumi dials over SSH: an IP address or a DNS name")
    else:
        address = errors.check(lambda: parse_regex(
            key("address"), raw["address"], SSH_HOST,
            "the address Pulumi dials over SSH: an IP address or a DNS name"))
    private_ip: str | None = None
    if raw.get("privateIp") in (None, ""):
        if address is not None and is_ipv4(address):
            private_ip = address
        elif address is not None:
            errors.add(key("privateIp"), raw.get("privateIp"),
                       f"the IPv4 address Kubernetes uses for this node (address {address} is "
                       "a name, so privateIp must be given)")
    else:
        private_ip = errors.check(lambda: parse_ipv4(key("privateIp"), raw["privateIp"]))
    port = errors.check(lambda: optional(raw, "port",
                                         lambda v: parse_int(key("port"), v, 1, 65535), 22))
    user = errors.check(lambda: optional(raw, "user", lambda v: parse_regex(
        key("user"), v, LINUX_USER, "a Linux user name with passwordless sudo"), default_user))
    host_key = None
    if raw.get("hostKey") in (None, ""):
        errors.add(key("hostKey"), raw.get("hostKey"),
                   HOST_KEY_EXPECTED + " (required: no host is trusted on first use)")
    else:
        host_key = errors.check(lambda: parse_host_key(key("hostKey"), raw["hostKey"]))
    if None in (name, address, private_ip, port, user, host_key):
        return None
    return MachineHost(name, address, private_ip, port, user, host_key)  # type: ignore[arg-type]


def parse_host_key(key: str, raw: object) -> str:
    """One OpenSSH public key line without its comment: what pulumi-command's hostKey takes."""
    if not isinstance(raw, str) or not OPENSSH_PUBLIC_KEY.fullmatch(raw.strip()):
        raise ConfigError(key, raw, HOST_KEY_EXPECTED)
    return " ".join(raw.split()[:2])


def parse_ipv4(key: str, raw: object) -> str:
    if not isinstance(raw, str) or not is_ipv4(raw.strip()):
        raise ConfigError(key, raw, "an IPv4 address such as 10.0.1.10")
    return raw.strip()


def is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def parse_endpoint(key: str, raw: object) -> str:
    """host or host:port (default port 6443), host an IP address or a DNS name."""
    expected = (
        "host or host:port for the Kubernetes API, such as 192.0.2.10 or k8s.example.com:6443"
    )
    match = re.fullmatch(r"([^:\s]+)(?::(\d+))?", raw.strip()) if isinstance(raw, str) else None
    if not match or not SSH_HOST.fullmatch(match.group(1)):
        raise ConfigError(key, raw, expected)
    port = int(match.group(2)) if match.group(2) else 6443
    if not 1 <= port <= 65535:
        raise ConfigError(key, raw, expected)
    return f"{match.group(1)}:{port}"


def parse_machines(
    values: Mapping[str, object], cluster: ClusterConfig, cluster_name: str,
    errors: ErrorCollector,
) -> MachinesConfig | None:
    """controlPlaneHosts, workerHosts and the SSH settings of target machines.

    Every problem found is recorded in `errors` (all hosts are checked); None when any was.
    """
    found = len(errors.errors)
    ssh_user = errors.check(lambda: optional(values, "sshUser", lambda v: parse_regex(
        "sshUser", v, LINUX_USER, "a Linux user name with passwordless sudo"), "ubuntu")) \
        or "ubuntu"
    if values.get("workers") not in (None, ""):
        errors.add("workers", values["workers"],
                   "no workers key on target machines: the workers are the workerHosts list")
    for aws_only in ("sshPublicKey", "adminCidrs", "privateWorkers"):
        if values.get(aws_only) not in (None, ""):
            errors.add(aws_only, values[aws_only], f"no {aws_only} on target machines "
                       "(an aws setting)")
    control_raw = errors.check(lambda: parse_json_list(
        "controlPlaneHosts", values.get("controlPlaneHosts") or []))
    control: MachineHost | None = None
    more_control: list[MachineHost | None] = []
    if control_raw is not None:
        if len(control_raw) not in range(1, MAX_CONTROL_PLANE_NODES + 1, 2):
            errors.add("controlPlaneHosts", f"{len(control_raw)} hosts",
                       "a list of 1, 3, 5 or 7 hosts (address, privateIp, hostKey, ...): the "
                       "control-plane nodes; etcd needs a majority of them, so an even count "
                       "tolerates no more lost members than the odd count below it")
        else:
            control = parse_machine_host("controlPlaneHosts[0]", control_raw[0],
                                         f"{cluster_name}-master", ssh_user, errors)
            more_control = [
                parse_machine_host(f"controlPlaneHosts[{i}]", raw,
                                   f"{cluster_name}-control-plane-{i}", ssh_user, errors)
                for i, raw in enumerate(control_raw[1:], start=1)]
    worker_raw = errors.check(lambda: parse_json_list(
        "workerHosts", values.get("workerHosts") or [])) or []
    if len(worker_raw) > MAX_WORKERS:
        errors.add("workerHosts", f"{len(worker_raw)} hosts", f"at most {MAX_WORKERS} hosts")
    workers = [
        parse_machine_host(f"workerHosts[{i}]", raw, f"{cluster_name}-worker-{i}", ssh_user,
                           errors)
        for i, raw in enumerate(worker_raw)
    ]
    hosts = [("controlPlaneHosts[0]", control),
             *((f"controlPlaneHosts[{i}]", c) for i, c in enumerate(more_control, start=1)),
             *((f"workerHosts[{i}]", w) for i, w in enumerate(workers))]
    seen: dict[tuple[str, object], str] = {}
    for where, host in hosts:
        if host is None:
            continue
        for field_key, value in (("name", host.name), ("privateIp", host.private_ip),
                                 ("address", f"{host.address}:{host.port}"),
                                 ("hostKey", host.host_key)):
            other = seen.setdefault((field_key, value), where)
            if other != where:
                errors.add(f"{where}.{field_key}", value, f"a {field_key} not used by {other}")
        for net_key, net in (("podCidr", cluster.pod_cidr), ("serviceCidr", cluster.service_cidr)):
            if ipaddress.ip_address(host.private_ip) in ipaddress.ip_network(net):
                errors.add(f"{where}.privateIp", host.private_ip,
                           f"an address outside {net_key} {net}")
    package_source: PackageSource | None = errors.check(lambda: optional(
        values, "packageSource",
        lambda v: cast(PackageSource, parse_choice("packageSource", v, ("docker", "distro"))),
        "docker",
    ))
    private_key = errors.check(lambda: parse_secret_key(values))
    api_endpoint_given = values.get("apiEndpoint") not in (None, "")
    api_endpoint = errors.check(lambda: optional(
        values, "apiEndpoint", lambda v: parse_endpoint("apiEndpoint", v),
        f"{control.address}:6443" if control is not None else "",
    ))
    if more_control and not api_endpoint_given:
        errors.add("apiEndpoint", None,
                   "host:port of a load balancer or DNS name in front of every "
                   "control-plane host's API server (port 6443), which every node can reach: "
                   "with several control-plane hosts it is kubeadm's controlPlaneEndpoint")
    elif more_control and api_endpoint is not None:
        endpoint_host = api_endpoint.rsplit(":", 1)[0]
        for i, host in enumerate([control, *more_control]):
            if host is not None and endpoint_host in (host.address, host.private_ip):
                errors.add("apiEndpoint", api_endpoint,
                           f"an address that is not controlPlaneHosts[{i}]'s own: a load "
                           "balancer or DNS name in front of every control-plane host, so the "
                           "API outlives any one of them")
    if len(errors.errors) > found or control is None or package_source is None \
            or api_endpoint is None:
        return None
    return MachinesConfig(
        control_plane=control,
        workers=tuple(w for w in workers if w is not None),
        ssh_private_key=private_key,
        ssh_user=ssh_user,
        package_source=package_source,
        api_endpoint=api_endpoint,
        control_planes=tuple(c for c in more_control if c is not None),
        api_endpoint_given=api_endpoint_given,
    )


def parse_secret_key(values: Mapping[str, object]) -> str | None:
    """sshPrivateKey for target machines (no sshPublicKey needed: the key is already on the
    machines). Never echoed back, even malformed."""
    raw = values.get("sshPrivateKey")
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or "PRIVATE KEY-----" not in raw:
        raise ConfigError("sshPrivateKey", "[secret]",
                          "a PEM or OpenSSH private key (pulumi config set --secret sshPrivateKey)")
    return raw


def parse_admin_cidr(key: str, raw: object) -> str:
    network = parse_network(key, raw)
    if network.prefixlen == 0:
        raise ConfigError(key, raw, "a CIDR narrower than the whole internet (not 0.0.0.0/0)")
    return str(network)


def overlaps(a: str, b: str) -> bool:
    return ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))


# ---------------------------------------------------------------------------------------------
# Entry points


def cluster_name_for(stack: str) -> str:
    """A DNS-1123 name for the cluster, from the stack name: node and host names derive from it."""
    label = re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")[:40].strip("-")
    if not label:
        raise ConfigError("stack", stack, "a stack name with at least one letter or digit")
    return f"kubeadm-{label}"


def parse_stack_config(values: Mapping[str, object], stack: str = "dev") -> StackConfig:
    """Validate raw config values keyed by their short names (plus `aws:region`).

    Every section is checked even when an earlier one failed, and every problem found is
    reported together: one ConfigError, or ConfigErrors when there are several. A check that
    needs another value (an overlap, a count) runs once that value is valid.
    """
    errors = ErrorCollector()
    for key in sorted(k for k in values if k not in KNOWN_KEYS and k != "aws:region"
                      and not k.startswith("aws:")):
        errors.add(key, values[key], "one of the documented keys: " + ", ".join(sorted(KNOWN_KEYS)))
    target: Target | None = errors.check(lambda: optional(
        values, "target", lambda v: cast(Target, parse_choice("target", v, TARGETS)), "local",
    ))
    cluster_name = cluster_name_for(stack)
    cluster = parse_cluster(values, errors)
    control_planes = errors.check(lambda: parse_control_plane_nodes(values, target))
    if target == "machines":
        machines = parse_machines(values, cluster, cluster_name, errors) if cluster else None
        apps = parse_apps(values, None, errors)
        check_claims(apps, target, cluster.kubernetes_version if cluster else None, errors)
        errors.raise_if_any()
        assert cluster is not None and machines is not None and apps is not None
        return StackConfig(cluster_name, "machines", len(machines.workers), cluster, apps, None,
                           None, machines, 1 + len(machines.control_planes))
    for machines_only in MACHINES_ONLY_KEYS:
        if values.get(machines_only) not in (None, ""):
            errors.add(machines_only, values[machines_only],
                       f"no {machines_only} unless target is machines")
    workers = errors.check(lambda: optional(
        values, "workers", lambda v: parse_int("workers", v, 0, MAX_WORKERS), 0))
    local = aws = None
    if cluster is not None:
        # A bad workers value is reported already; the sections still check everything else.
        nodes_after_master = workers if workers is not None else 0
        if target == "local":
            local = errors.check(lambda: parse_local(values, cluster, nodes_after_master))
        elif target == "aws":
            aws = errors.check(lambda: parse_aws(values, cluster, nodes_after_master,
                                                 control_planes))
    # Apps are checked against the local node ports only when those are known to be valid.
    apps = parse_apps(values, local, errors)
    check_claims(apps, target, cluster.kubernetes_version if cluster else None, errors)
    errors.raise_if_any()
    assert target is not None and cluster is not None and workers is not None
    assert apps is not None and control_planes is not None
    return StackConfig(cluster_name, target, workers, cluster, apps, aws, local,
                       control_plane_nodes=control_planes)


def parse_control_plane_nodes(values: Mapping[str, object], target: Target | None) -> int:
    """controlPlaneNodes: 1 (default), 3, 5 or 7 kubeadm control-plane nodes (stacked etcd).

    An even count is refused: it tolerates no more lost members than the odd count below it
    and needs one more for quorum. On machines the controlPlaneHosts list says how many; on
    aws several sit behind the API load balancers (apiLoadBalancer, checked by parse_aws).
    """
    if target == "machines" and values.get("controlPlaneNodes") not in (None, ""):
        raise ConfigError("controlPlaneNodes", values["controlPlaneNodes"],
                          "no controlPlaneNodes on target machines: the control-plane nodes "
                          "are the controlPlaneHosts list")
    count = optional(values, "controlPlaneNodes", lambda v: parse_int(
        "controlPlaneNodes", v, 1, MAX_CONTROL_PLANE_NODES), 1)
    if count % 2 == 0:
        raise ConfigError("controlPlaneNodes", count,
                          "an odd number from 1 to 7: etcd needs a majority of its members, so "
                          f"{count} tolerate no more lost members than {count - 1}")
    return count


MACHINES_ONLY_KEYS = ("controlPlaneHosts", "workerHosts", "apiEndpoint")
# The default StorageClass each target's cluster gets (None: no default, so a claim must name
# a class the user made): local, the node image's local-path provisioner
# (/kind/manifests/default-storage.yaml); aws, the EBS CSI driver's gp3 (components/storage.py).
DEFAULT_STORAGE_CLASS: dict[Target, str | None] = {"local": "standard", "aws": "gp3",
                                                   "machines": None}


# Access modes the default classes serve: local-path and EBS volumes attach to one node.
DEFAULT_CLASS_ACCESS_MODES = frozenset({"ReadWriteOnce", "ReadWriteOncePod"})
# StatefulSet persistentVolumeClaimRetentionPolicy (StatefulSetAutoDeletePVC) and the
# ReadWriteOncePod access mode: on by default from Kubernetes 1.27 (beta), GA later.
CLAIM_FEATURES_MINOR = 27


def check_claims(
    apps: tuple[AppConfig, ...] | None, target: Target | None,
    version: KubernetesVersion | None, errors: ErrorCollector,
) -> None:
    """What a claim needs from the cluster: a class (named, where the target's cluster has no
    default), access modes the default class serves, and features the version has."""
    if apps is None or target is None:
        return
    default_class = DEFAULT_STORAGE_CLASS[target]
    for i, app in enumerate(apps):
        old = version is not None and version.minor < CLAIM_FEATURES_MINOR
        if old and app.stateful and app.claims_when_deleted == "Delete":
            errors.add(f"apps[{i}].persistentVolumeClaimRetentionPolicy.whenDeleted", "Delete",
                       f"Retain before Kubernetes 1.{CLAIM_FEATURES_MINOR} (the API server "
                       f"ignores the policy on {version}: claims would stay)")
        for j, volume in enumerate(app.volumes):
            if not isinstance(volume, ClaimVolume):
                continue
            at = f"apps[{i}].volumes[{j}].volumeClaimTemplate"
            if volume.storage_class_name is None and default_class is None:
                errors.add(f"{at}.storageClassName", None,
                           f"the name of a StorageClass you made: a {target} cluster has no "
                           "default StorageClass (README, Volumes)")
            elif volume.storage_class_name is None and \
                    not set(volume.access_modes) <= DEFAULT_CLASS_ACCESS_MODES:
                errors.add(f"{at}.accessModes", list(volume.access_modes),
                           f"ReadWriteOnce or ReadWriteOncePod: the default class "
                           f"{default_class} attaches a volume to one node; name a class that "
                           "serves the others in storageClassName")
            if old and "ReadWriteOncePod" in volume.access_modes:
                errors.add(f"{at}.accessModes", list(volume.access_modes),
                           f"no ReadWriteOncePod before Kubernetes 1.{CLAIM_FEATURES_MINOR}")


def raw_config_values() -> dict[str, object]:
    """Every value set for this project's namespace, plus `aws:region`, by short key."""
    project = pulumi.get_project()
    prefix = f"{project}:"
    values: dict[str, object] = {}
    # The language host copies the engine's PULUMI_CONFIG into the runtime's config map; read
    # both so no key is missed (and unknown keys are found) whichever way it arrived.
    runtime_config = pulumi.runtime.config
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    for full_key in sorted(keys):
        if full_key.startswith(prefix):
            values[full_key[len(prefix):]] = runtime_config.get_config(full_key)
    region = pulumi.Config("aws").get("region")
    if region is not None:
        values["aws:region"] = region
    return values


def load_stack_config() -> StackConfig:
    """Read and validate the stack's configuration; the program's first step."""
    return parse_stack_config(raw_config_values(), pulumi.get_stack())
