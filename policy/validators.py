"""The security rules of the kubeadm-cluster policy pack, as plain functions.

Nothing here imports pulumi_policy or starts anything: `policy/__main__.py` wraps these
functions into a PolicyPack, and the tests call them directly on resources captured under
Pulumi mocks. Props are a resource's inputs with camelCase keys, exactly what the engine sends
a policy pack (`Analyze` gets the checked inputs; `AnalyzeStack` gets the outputs, which for
every type used here repeat the inputs).

A resource check is `check(resource_type, props, name, secret_outputs=(), **config)` and
returns violation messages; each message starts with `[<rule name>]` and names the resource.
A stack check takes every resource of the stack (`Resource`) and returns `Violation`s.

Values unknown during `pulumi preview` are `UNKNOWN` after `plain()`; a check never fails on a
value it cannot see (the same check runs again at `pulumi up`, when every input is known).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy.references import (
    IMAGE_REFERENCE,
    OPENSSH_PUBLIC_KEY,
    RESTRICTED_ADDABLE_CAPABILITIES,
)

# ---------------------------------------------------------------------------------------------
# Plain values from what the policy SDK hands over


class _Unknown:
    """A value the engine does not know yet (preview)."""

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN: Any = _Unknown()

# The engine's sentinels for unknown values (the same in every Pulumi SDK).
UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})


def plain(value: Any, unknown_errors: tuple[type[BaseException], ...] = ()) -> Any:
    """Plain dicts, lists and scalars from the SDK's read-only proxies.

    A value whose access raises one of `unknown_errors` (pulumi_policy's UnknownValueError)
    or that is an unknown sentinel becomes `UNKNOWN`.
    """
    if isinstance(value, str):
        return UNKNOWN if value in UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in value:
            try:
                inner = value[key]
            except unknown_errors:
                result[str(key)] = UNKNOWN
                continue
            result[str(key)] = plain(inner, unknown_errors)
        return result
    if isinstance(value, Sequence):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                inner = value[index]
            except unknown_errors:
                items.append(UNKNOWN)
                continue
            items.append(plain(inner, unknown_errors))
        return items
    return value


def get(value: Any, *path: str | int) -> Any:
    """value[path[0]][path[1]]...; None where a step is missing, UNKNOWN where unknown."""
    for key in path:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(key, int):
            if not isinstance(value, list) or key >= len(value):
                return None
            value = value[key]
        else:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None or value is UNKNOWN:
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def message(rule: str, resource_type: str, name: str, detail: str) -> str:
    return f"[{rule}] {resource_type} '{name}': {detail}"


# ---------------------------------------------------------------------------------------------
# Rule names (the policy names in the pack)

NO_WORLD_ADMIN_INGRESS = "no-world-admin-ingress"
IMDSV2_REQUIRED = "imdsv2-required"
ENCRYPTED_ROOT_VOLUME = "encrypted-root-volume"
JOIN_VERIFIES_CA = "join-verifies-ca"
SSH_HOST_KEY_PINNED = "ssh-host-key-pinned"
SHORT_LIVED_JOIN_TOKENS = "short-lived-join-tokens"
SECRET_COMMAND_OUTPUT = "secret-command-output"
NO_PRIVILEGED_CONTAINERS = "no-privileged-containers"
NO_PRIVILEGE_ESCALATION = "no-privilege-escalation"
DROP_ALL_CAPABILITIES = "drop-all-capabilities"
RESOURCE_LIMITS = "resource-limits"
PINNED_IMAGES = "pinned-images"
# advisory
PRIVATE_WORKERS = "private-workers"
NARROW_ADMIN_CIDRS = "narrow-admin-cidrs"
EXPOSED_APPS = "exposed-apps"
ADDED_CAPABILITIES = "added-capabilities"
ODD_CONTROL_PLANE_NODES = "odd-control-plane-nodes"
STABLE_API_ENDPOINT = "stable-api-endpoint"

# ---------------------------------------------------------------------------------------------
# Security group ingress

SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ADMIN_PORTS = {22: "SSH", 6443: "the Kubernetes API server"}
ALL_PROTOCOLS = {"-1", "all"}
TCP = {"tcp", "6"}
DEFAULT_WIDEST_IPV4_PREFIX = 16
DEFAULT_WIDEST_IPV6_PREFIX = 48


@dataclass(frozen=True)
class Ingress:
    """One ingress permission: protocol, port range and the source CIDRs."""

    where: str  # "" for a rule resource, "ingress[2]" for an inline group rule
    protocol: Any
    from_port: int | None
    to_port: int | None
    cidrs: tuple[Any, ...]


def ingress_permissions(resource_type: str, props: Mapping[str, Any]) -> list[Ingress]:
    if resource_type == SG_INGRESS_RULE:
        cidrs = tuple(c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if c)
        return [Ingress("", props.get("ipProtocol"), as_int(props.get("fromPort")),
                        as_int(props.get("toPort")), cidrs)]
    if resource_type == SG_RULE:
        if props.get("type") != "ingress":
            return []
        return [_inline_ingress("", props)]
    if resource_type == SECURITY_GROUP:
        return [_inline_ingress(f"ingress[{i}]", rule)
                for i, rule in enumerate(as_list(props.get("ingress")))
                if isinstance(rule, Mapping)]
    return []


def _inline_ingress(where: str, rule: Mapping[str, Any]) -> Ingress:
    cidrs = (*as_list(rule.get("cidrBlocks")), *as_list(rule.get("ipv6CidrBlocks")))
    return Ingress(where, rule.get("protocol"), as_int(rule.get("fromPort")),
                   as_int(rule.get("toPort")), tuple(cidrs))


def covered_ports(permission: Ingress, ports: Iterable[int]) -> list[int]:
    """Which of `ports` (TCP) the permission opens."""
    protocol = str(permission.protocol).lower() if permission.protocol is not UNKNOWN else "-1"
    if protocol in ALL_PROTOCOLS:
        return list(ports)
    if protocol not in TCP:
        return []
    low = permission.from_port if permission.from_port is not None else 0
    high = permission.to_port if permission.to_port is not None else 65535
    if low < 0:  # -1 means every port
        low, high = 0, 65535
    return [port for port in ports if low <= port <= high]


def network(cidr: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(cidr, str):
        return None
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return None


def _describe(permission: Ingress) -> str:
    return f"{permission.where} " if permission.where else ""


def check_no_world_admin_ingress(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), **_: Any,
) -> list[str]:
    """No ingress on SSH (22) or the API server (6443) from 0.0.0.0/0 or ::/0."""
    found = []
    for permission in ingress_permissions(resource_type, props):
        ports = covered_ports(permission, ADMIN_PORTS)
        if not ports:
            continue
        for cidr in permission.cidrs:
            net = network(cidr)
            if net is not None and net.prefixlen == 0:
                what = " and ".join(f"{ADMIN_PORTS[p]} ({p})" for p in ports)
                found.append(message(
                    NO_WORLD_ADMIN_INGRESS, resource_type, name,
                    f"{_describe(permission)}opens {what} to the whole internet ({cidr}); "
                    "allow only your admin networks (config adminCidrs)",
                ))
    return found


def check_narrow_admin_cidrs(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), widest_ipv4_prefix: int = DEFAULT_WIDEST_IPV4_PREFIX,
    widest_ipv6_prefix: int = DEFAULT_WIDEST_IPV6_PREFIX, **_: Any,
) -> list[str]:
    """Advisory: ingress from a network wider than /16 (IPv4) or /48 (IPv6) on any port."""
    found = []
    for permission in ingress_permissions(resource_type, props):
        every_port = covered_ports(permission, range(0, 65536))
        if not every_port:
            continue
        for cidr in permission.cidrs:
            net = network(cidr)
            if net is None:
                continue
            widest = widest_ipv4_prefix if net.version == 4 else widest_ipv6_prefix
            if net.prefixlen >= widest:
                continue
            if net.prefixlen == 0 and covered_ports(permission, ADMIN_PORTS):
                continue  # the mandatory no-world-admin-ingress rule reports this one
            span = (f"ports {every_port[0]}-{every_port[-1]}" if len(every_port) > 1
                    else f"port {every_port[0]}")
            found.append(message(
                NARROW_ADMIN_CIDRS, resource_type, name,
                f"{_describe(permission)}allows {span} from {cidr}, wider than "
                f"/{widest}; is that network really all yours?",
            ))
    return found


# ---------------------------------------------------------------------------------------------
# EC2 instances

INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
MAX_HOP_LIMIT = 2


def check_imdsv2_required(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), **_: Any,
) -> list[str]:
    """IMDSv2 only (httpTokens required) with a response hop limit of at most 2."""
    if resource_type not in (INSTANCE, LAUNCH_TEMPLATE):
        return []
    options = props.get("metadataOptions")
    if options is UNKNOWN:
        return []
    options = options if isinstance(options, Mapping) else {}
    if options.get("httpEndpoint") == "disabled":
        return []  # no metadata service at all
    found = []
    tokens = options.get("httpTokens")
    if tokens is not UNKNOWN and tokens != "required":
        found.append(message(
            IMDSV2_REQUIRED, resource_type, name,
            f"metadataOptions.httpTokens is {tokens!r}: set 'required' so only IMDSv2 "
            "(session tokens) answers",
        ))
    hops = as_int(options.get("httpPutResponseHopLimit"))
    if hops is not None and hops > MAX_HOP_LIMIT:
        found.append(message(
            IMDSV2_REQUIRED, resource_type, name,
            f"metadataOptions.httpPutResponseHopLimit is {hops}: at most {MAX_HOP_LIMIT} "
            "(2 lets pods reach IMDSv2, more lets traffic forwarded further reach it)",
        ))
    return found


def check_encrypted_root_volume(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), **_: Any,
) -> list[str]:
    """The root volume (and every extra EBS volume) of an instance is encrypted."""
    found = []
    if resource_type == INSTANCE:
        volumes = [("rootBlockDevice", props.get("rootBlockDevice"))]
        volumes += [(f"ebsBlockDevices[{i}]", device)
                    for i, device in enumerate(as_list(props.get("ebsBlockDevices")))]
    elif resource_type == LAUNCH_TEMPLATE:
        volumes = [(f"blockDeviceMappings[{i}].ebs", get(mapping, "ebs"))
                   for i, mapping in enumerate(as_list(props.get("blockDeviceMappings")))]
    else:
        return []
    for where, device in volumes:
        if device is UNKNOWN:
            continue
        encrypted = get(device, "encrypted")
        if encrypted is UNKNOWN or encrypted is True or encrypted == "true":
            continue
        found.append(message(
            ENCRYPTED_ROOT_VOLUME, resource_type, name,
            f"{where}.encrypted is {encrypted!r}: set it to true (etcd, kubelet credentials "
            "and container images live on this disk)",
        ))
    return found


# ---------------------------------------------------------------------------------------------
# Commands (pulumi-command): join, tokens, secret output

COMMAND_TYPES = ("command:local:Command", "command:remote:Command")
MAX_TOKEN_TTL = "1h"
DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
# What a command prints on stdout that is a credential.
SECRET_PRINTING = (
    (re.compile(r"kubeadm\s+token\s+create"), "a bootstrap token (kubeadm token create)"),
    (re.compile(r"\bcat\s+['\"]?/etc/kubernetes/[\w.-]*\.conf"), "a kubeconfig"),
    (re.compile(r"kubectl\s+config\s+view\b[^\n]*--raw"), "a kubeconfig"),
    (re.compile(r"kubeadm\s+kubeconfig\s+user"), "a kubeconfig"),
    (re.compile(r"kubeadm\s+certs\s+certificate-key"), "a certificate key"),
    (re.compile(r"kubeadm\s+init\s+phase\s+upload-certs"), "a certificate key"),
)
UNSAFE_SKIP_CA = re.compile(r"unsafe-?skip-?ca-?verification", re.IGNORECASE)
CA_HASH = re.compile(r"--discovery-token-ca-cert-hash[ =]['\"]?sha256:[0-9a-f]{64}")
JOIN_COMMAND_EXPORT = re.compile(r"(?m)^\s*(?:export\s+)?JOIN_COMMAND=(.*)$")
KUBEADM_JOIN_WITH_TOKEN = re.compile(r"(?m)^[^\n#]*kubeadm\s+join\s+\S+[^\n]*--token[^\n]*$")
KUBEADM_INIT_CALL = re.compile(r"(?m)^\s*(?:sudo\s+)?kubeadm\s+init(?:\s|$)(?!\s*phase)")
TOKEN_CREATE = re.compile(r"kubeadm\s+token\s+create")
TTL_FLAG = re.compile(r"--ttl[ =]['\"]?([0-9][0-9.hms]*)")
TTL_ENV = re.compile(r"(?m)^\s*(?:export\s+)?TOKEN_TTL=['\"]?([0-9][0-9.hms]*)")
TTL_DEFAULT = re.compile(r"TOKEN_TTL:-([0-9][0-9.hms]*)")
BOOTSTRAP_TTL = re.compile(r"(?m)^\s*ttl:\s*['\"]?([0-9][0-9.hms]*)")
CERTIFICATE_UPLOAD = re.compile(r"--upload-certs|upload-certs\b")
CERTIFICATE_KEY_IN_CONFIG = re.compile(r"certificateKey:")
FRESH_CERTIFICATE_KEY = re.compile(r"kubeadm\s+certs\s+certificate-key")


def command_text(props: Mapping[str, Any], include_delete: bool = True) -> str:
    """Everything a command runs: create/update/delete, stdin and environment values."""
    keys = ["create", "update", "stdin", *(["delete"] if include_delete else [])]
    parts = [props.get(key) for key in keys]
    environment = props.get("environment")
    if isinstance(environment, Mapping):
        parts += [f"{k}={v}" for k, v in environment.items()]
    return "\n".join(part for part in parts if isinstance(part, str))


def seconds(duration: str) -> float | None:
    """A Go duration (15m, 1h30m, 900s) in seconds; None if it is not one."""
    if duration.strip() == "0":
        return 0.0
    parts = DURATION.findall(duration)
    if not parts or "".join(a + b for a, b in parts) != duration.strip():
        return None
    scale = {"h": 3600, "m": 60, "s": 1}
    return sum(float(amount) * scale[unit] for amount, unit in parts)


def _ttl_problem(ttl: str, max_ttl: str) -> str | None:
    value, limit = seconds(ttl), seconds(max_ttl)
    if value is None:
        return f"TTL {ttl!r} is not a duration like 15m"
    if value <= 0:
        return f"TTL {ttl!r} never expires"
    if limit is not None and value > limit:
        return f"TTL {ttl} is longer than {max_ttl}"
    return None


def check_join_verifies_ca(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), **_: Any,
) -> list[str]:
    """A join never skips CA verification and always pins the CA hash."""
    if resource_type not in COMMAND_TYPES:
        return []
    text = command_text(props)
    found = []
    if UNSAFE_SKIP_CA.search(text):
        found.append(message(
            JOIN_VERIFIES_CA, resource_type, name,
            "uses unsafe-skip-ca-verification: a node joining without checking the cluster CA "
            "can be handed to an impostor API server",
        ))
    for match in JOIN_COMMAND_EXPORT.finditer(text):
        if not CA_HASH.search(match.group(1)):
            found.append(message(
                JOIN_VERIFIES_CA, resource_type, name,
                "JOIN_COMMAND has no --discovery-token-ca-cert-hash sha256:<64 hex>; make it "
                "with `kubeadm token create --print-join-command`",
            ))
    for match in KUBEADM_JOIN_WITH_TOKEN.finditer(text):
        line = match.group(0)
        if "JOIN_COMMAND=" not in line and "discovery-token-ca-cert-hash" not in line:
            found.append(message(
                JOIN_VERIFIES_CA, resource_type, name,
                "runs `kubeadm join ... --token` without --discovery-token-ca-cert-hash",
            ))
    return found


REMOTE_TYPES = ("command:remote:Command", "command:remote:CopyToRemote", "command:remote:CopyFile")


def is_openssh_public_key(value: Any) -> bool:
    return isinstance(value, str) and OPENSSH_PUBLIC_KEY.fullmatch(value.rstrip("\n")) is not None


def check_ssh_host_key_pinned(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), **_: Any,
) -> list[str]:
    """Every SSH connection (and its jump host) names the host key it expects."""
    if resource_type not in REMOTE_TYPES:
        return []
    found = []
    for where in (("connection",), ("connection", "proxy")):
        hop = get(props, *where)
        if hop is UNKNOWN or (hop is None and where != ("connection",)):
            continue
        key = get(hop, "hostKey")
        label = ".".join(where)
        if not key:
            found.append(message(
                SSH_HOST_KEY_PINNED, resource_type, name,
                f"{label}.hostKey is not set: the SSH client accepts any key the host (or "
                "whoever intercepts the connection) presents; pin the host's public key",
            ))
        elif key is not UNKNOWN and not is_openssh_public_key(key):
            found.append(message(
                SSH_HOST_KEY_PINNED, resource_type, name,
                f"{label}.hostKey is not an OpenSSH public key ('ssh-ed25519 AAAA...')",
            ))
    return found


def check_short_lived_join_tokens(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), max_ttl: str = MAX_TOKEN_TTL, **_: Any,
) -> list[str]:
    """Bootstrap tokens expire within `max_ttl`; control-plane certificates are uploaded only
    with a key made for that upload (`kubeadm certs certificate-key`), never one kept in a
    config file, so a key in the state opens nothing once kubeadm deletes the upload (2 h)."""
    if resource_type not in COMMAND_TYPES:
        return []
    text = command_text(props)
    found = []

    def report(detail: str) -> None:
        found.append(message(SHORT_LIVED_JOIN_TOKENS, resource_type, name, detail))

    if TOKEN_CREATE.search(text):
        ttls = TTL_FLAG.findall(text) + TTL_ENV.findall(text) + TTL_DEFAULT.findall(text)
        if not ttls:
            report("runs `kubeadm token create` without a TTL (kubeadm's default is 24h); "
                   f"pass --ttl of at most {max_ttl}")
        for ttl in ttls:
            problem = _ttl_problem(ttl, max_ttl)
            if problem:
                report(f"join token {problem}; use at most {max_ttl} (a fresh token is made "
                       "for each worker when it joins)")
    if KUBEADM_INIT_CALL.search(text):
        ttls = BOOTSTRAP_TTL.findall(text) if "bootstrapTokens" in text else []
        if not ttls:
            report("runs `kubeadm init` without bootstrapTokens[].ttl, so its token lives "
                   f"24h; set a ttl of at most {max_ttl}")
        for ttl in ttls:
            problem = _ttl_problem(ttl, max_ttl)
            if problem:
                report(f"kubeadm init's bootstrap token {problem}; use at most {max_ttl}")
    if CERTIFICATE_KEY_IN_CONFIG.search(text):
        report("writes a certificateKey into a kubeadm config: a fixed key would let anyone "
               "with a token join as a control plane for as long as the key is kept")
    elif CERTIFICATE_UPLOAD.search(text) and not FRESH_CERTIFICATE_KEY.search(text):
        report("uploads the control-plane certificates (--upload-certs) without a key made "
               "for this upload (`kubeadm certs certificate-key`); kubeadm init --upload-certs "
               "prints its key into the step's output")
    return found


def prints_secret(props: Mapping[str, Any]) -> str | None:
    """What secret the command prints on stdout, if any (create/update and stdin only)."""
    text = command_text(props, include_delete=False)
    for pattern, what in SECRET_PRINTING:
        if pattern.search(text):
            return what
    return None


def check_secret_command_output(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), **_: Any,
) -> list[str]:
    """A command that prints a credential keeps stdout secret and logs nothing."""
    if resource_type not in COMMAND_TYPES:
        return []
    what = prints_secret(props)
    if what is None:
        return []
    found = []
    logging = props.get("logging")
    if logging is not UNKNOWN and logging != "none":
        found.append(message(
            SECRET_COMMAND_OUTPUT, resource_type, name,
            f"prints {what} but logging is {logging!r}: set logging 'none' (logged output is "
            "shown and kept even when stdout is secret)",
        ))
    if "stdout" not in secret_outputs:
        found.append(message(
            SECRET_COMMAND_OUTPUT, resource_type, name,
            f"prints {what} but stdout is not secret: add additional_secret_outputs=['stdout']",
        ))
    return found


# ---------------------------------------------------------------------------------------------
# Kubernetes workloads

POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def workload_kind(resource_type: str, props: Mapping[str, Any]) -> str | None:
    if not resource_type.startswith("kubernetes:"):
        return None
    kind = resource_type.rsplit(":", 1)[-1]
    if kind not in POD_TEMPLATE_PATHS:
        kind = str(props.get("kind"))
    return kind if kind in POD_TEMPLATE_PATHS else None


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = workload_kind(resource_type, props)
    if kind is None:
        return None
    spec = get(props, *POD_TEMPLATE_PATHS[kind])
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in CONTAINER_LISTS:
        for index, container in enumerate(as_list(spec.get(key))):
            if isinstance(container, Mapping):
                label = container.get("name")
                yield (f"{key}[{index}] ({label})" if isinstance(label, str)
                       else f"{key}[{index}]"), container


def object_name(props: Mapping[str, Any], name: str) -> str:
    meta = props.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
        namespace = meta.get("namespace")
        return f"{namespace}/{meta['name']}" if isinstance(namespace, str) else meta["name"]
    return name


def _workload_check(
    rule: str,
    per_container: Callable[[Mapping[str, Any]], str | None],
    per_pod: Callable[[Mapping[str, Any]], list[str]] | None = None,
) -> Callable[..., list[str]]:
    def check(resource_type: str, props: Mapping[str, Any], name: str = "",
              secret_outputs: Sequence[str] = (), **_: Any) -> list[str]:
        spec = pod_spec(resource_type, props)
        if spec is None:
            return []
        label = name or object_name(props, name)
        found = [message(rule, resource_type, label, f"pod spec: {detail}")
                 for detail in (per_pod(spec) if per_pod else [])]
        for where, container in containers(spec):
            detail = per_container(container)
            if detail:
                found.append(message(rule, resource_type, label, f"{where}: {detail}"))
        return found

    check.__doc__ = f"The {rule} rule for every container of a pod template."
    return check


def _privileged(container: Mapping[str, Any]) -> str | None:
    if get(container, "securityContext", "privileged") is True:
        return "securityContext.privileged is true: a privileged container owns the node"
    return None


def _host_namespaces(spec: Mapping[str, Any]) -> list[str]:
    return [f"{key} is true: the pod shares the node's namespace"
            for key in HOST_NAMESPACES if spec.get(key) is True]


def _escalation(container: Mapping[str, Any]) -> str | None:
    value = get(container, "securityContext", "allowPrivilegeEscalation")
    if value is False or value is UNKNOWN:
        return None
    return (f"securityContext.allowPrivilegeEscalation is {value!r}: set it to false "
            "(unset means true)")


def _drop_all(container: Mapping[str, Any]) -> str | None:
    drop = get(container, "securityContext", "capabilities", "drop")
    if drop is UNKNOWN or any(str(c).upper() == "ALL" for c in as_list(drop)):
        return None
    return (f"securityContext.capabilities.drop is {drop!r}: drop ALL and add back only what "
            "the image needs (app setting capabilities)")


def _added(container: Mapping[str, Any]) -> str | None:
    add = [str(c).upper().removeprefix("CAP_")
           for c in as_list(get(container, "securityContext", "capabilities", "add"))]
    extra = sorted(set(add) - RESTRICTED_ADDABLE_CAPABILITIES)
    if not extra:
        return None
    return (f"adds capabilities {', '.join(extra)} beyond NET_BIND_SERVICE (set by the app's "
            "capabilities setting; the namespace then enforces only the baseline Pod Security "
            "Standard)")


def _limits(container: Mapping[str, Any]) -> str | None:
    limits = get(container, "resources", "limits")
    if limits is UNKNOWN:
        return None
    missing = [key for key in ("cpu", "memory")
               if not isinstance(limits, Mapping) or limits.get(key) in (None, "")]
    if not missing:
        return None
    return (f"resources.limits has no {' or '.join(missing)}: one pod could starve the node "
            "(app settings cpuLimit, memoryLimit)")


def image_problem(image: Any) -> str | None:
    if image is UNKNOWN:
        return None
    if not isinstance(image, str) or not image:
        return "has no image"
    match = IMAGE_REFERENCE.fullmatch(image)
    if match is None:
        return f"image {image!r} is not an image reference"
    if match.group("digest"):
        return None
    if not match.group("tag"):
        return f"image {image!r} has no tag (means latest): pin a version tag or a digest"
    if match.group("tag") == "latest":
        return f"image {image!r} uses latest: pin a version tag or a digest"
    return None


def _pinned(container: Mapping[str, Any]) -> str | None:
    return image_problem(container.get("image"))


check_no_privileged_containers = _workload_check(
    NO_PRIVILEGED_CONTAINERS, _privileged, _host_namespaces)
check_no_privilege_escalation = _workload_check(NO_PRIVILEGE_ESCALATION, _escalation)
check_drop_all_capabilities = _workload_check(DROP_ALL_CAPABILITIES, _drop_all)
check_added_capabilities = _workload_check(ADDED_CAPABILITIES, _added)
check_resource_limits = _workload_check(RESOURCE_LIMITS, _limits)
check_pinned_images = _workload_check(PINNED_IMAGES, _pinned)


SERVICE = "kubernetes:core/v1:Service"


def check_exposed_apps(
    resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), **_: Any,
) -> list[str]:
    """Advisory: a Service reachable from outside the cluster (NodePort, LoadBalancer)."""
    if resource_type != SERVICE:
        return []
    kind = get(props, "spec", "type")
    external_ips = as_list(get(props, "spec", "externalIPs"))
    if kind not in ("NodePort", "LoadBalancer") and not external_ips:
        return []
    ports = [str(as_int(get(port, "nodePort")) or "allocated")
             for port in as_list(get(props, "spec", "ports"))]
    how = f"type {kind}" if kind in ("NodePort", "LoadBalancer") else "externalIPs"
    return [message(
        EXPOSED_APPS, resource_type, name or object_name(props, name),
        f"{how} exposes the app outside the cluster (node ports: {', '.join(ports) or '-'}) "
        "to whoever reaches a node (on AWS: adminCidrs); use serviceType ClusterIP for an "
        "in-cluster app",
    )]


# ---------------------------------------------------------------------------------------------
# Stack-level: workers with public IPs


@dataclass(frozen=True)
class Resource:
    """One resource of a stack, for stack checks."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    secret_outputs: tuple[str, ...] = ()
    # property name -> URNs of the resources that property came from
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None = None


SUBNET = "aws:ec2/subnet:Subnet"


def is_worker(resource: Resource) -> bool:
    tags = resource.props.get("tags")
    role = tags.get("role") if isinstance(tags, Mapping) else None
    if isinstance(role, str):
        return role == "worker"
    return "worker" in resource.name


def check_private_workers(resources: Sequence[Resource], **_: Any) -> list[Violation]:
    """Advisory: worker instances with (or liable to get) a public IP address."""
    by_urn = {r.urn: r for r in resources if r.urn}
    found = []
    for instance in resources:
        if instance.type != INSTANCE or not is_worker(instance):
            continue
        public = instance.props.get("associatePublicIpAddress")
        if public is False:
            continue
        reason = None
        if public is True:
            reason = "associatePublicIpAddress is true"
        elif public is None:
            subnets = [by_urn[u] for u in instance.property_dependencies.get("subnetId", ())
                       if u in by_urn and by_urn[u].type == SUBNET]
            maps = [s.props.get("mapPublicIpOnLaunch") for s in subnets]
            if not subnets:
                reason = "associatePublicIpAddress is not false and its subnet is not known"
            elif any(m is True or m is UNKNOWN for m in maps):
                reason = f"its subnet '{subnets[0].name}' maps public IPs on launch"
        if reason is None:
            continue
        found.append(Violation(message(
            PRIVATE_WORKERS, instance.type, instance.name,
            f"worker has a public IP ({reason}); with privateWorkers true workers sit in a "
            "private subnet behind a NAT gateway and are reached through the master",
        ), instance.urn or None))
    return found


# ---------------------------------------------------------------------------------------------
# The control plane: how many nodes, and the endpoint in front of them

CONTROL_PLANE_JOIN = re.compile(r"(?m)^\s*(?:export\s+)?CONTROL_PLANE=['\"]?true\b")
ENDPOINT_ENV = re.compile(r"(?m)^\s*(?:export\s+)?CONTROL_PLANE_ENDPOINT=['\"]?([^'\"\s]+)")
ADVERTISE_ENV = re.compile(r"(?m)^\s*(?:export\s+)?ADVERTISE_ADDRESS=['\"]?([^'\"\s]+)")


def control_plane_steps(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    """The commands that make a control-plane node (kubeadm init, or a join with
    CONTROL_PLANE=true), each with its text; a command whose text is unknown is left out."""
    found = []
    for resource in resources:
        if resource.type not in COMMAND_TYPES:
            continue
        text = command_text(resource.props, include_delete=False)
        if KUBEADM_INIT_CALL.search(text) or (
                JOIN_COMMAND_EXPORT.search(text) and CONTROL_PLANE_JOIN.search(text)):
            found.append((resource, text))
    return found


def check_odd_control_plane_nodes(resources: Sequence[Resource], **_: Any) -> list[Violation]:
    """The stacked etcd cluster has an odd number of members (one per control-plane node): an
    even count needs one more member for quorum and tolerates no more lost ones."""
    steps = control_plane_steps(resources)
    if len(steps) % 2 == 1 or not steps:
        return []
    first = steps[0][0]
    return [Violation(message(
        ODD_CONTROL_PLANE_NODES, first.type, first.name,
        f"{len(steps)} control-plane nodes (etcd members): {len(steps)} tolerate no more lost "
        f"members than {len(steps) - 1}; use an odd number (controlPlaneNodes)",
    ), first.urn or None)]


def check_stable_api_endpoint(resources: Sequence[Resource], **_: Any) -> list[Violation]:
    """With several control-plane nodes, kubeadm's controlPlaneEndpoint is set and is not one
    node's own address: every kubeconfig names it, so it must outlive any one node."""
    steps = control_plane_steps(resources)
    if len(steps) < 2:
        return []
    addresses = {m.group(1) for _, text in steps for m in ADVERTISE_ENV.finditer(text)}
    found = []
    for resource, text in steps:
        if not KUBEADM_INIT_CALL.search(text):
            continue
        endpoint = ENDPOINT_ENV.search(text)
        if endpoint is None:
            detail = ("kubeadm init has no CONTROL_PLANE_ENDPOINT: every kubeconfig would name "
                      "the first node, and the cluster stops answering when it goes")
        elif endpoint.group(1).rsplit(":", 1)[0] in addresses:
            detail = (f"controlPlaneEndpoint {endpoint.group(1)} is one control-plane node's "
                      "own address; put a load balancer or a DNS name in front of them all")
        else:
            continue
        found.append(Violation(message(STABLE_API_ENDPOINT, resource.type, resource.name,
                                       detail), resource.urn or None))
    return found


# ---------------------------------------------------------------------------------------------
# The rule table the pack is built from

ResourceCheck = Callable[..., list[str]]
StackCheck = Callable[..., list[Violation]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    mandatory: bool
    check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    # policy config key -> (check keyword, JSON schema type, default)
    config: Mapping[str, tuple[str, str, Any]] = field(default_factory=dict)


RULES: tuple[Rule, ...] = (
    Rule(NO_WORLD_ADMIN_INGRESS,
         "No ingress on SSH (22) or the Kubernetes API (6443) from 0.0.0.0/0 or ::/0.",
         True, check_no_world_admin_ingress),
    Rule(IMDSV2_REQUIRED,
         "EC2 instances require IMDSv2 tokens with a response hop limit of at most 2.",
         True, check_imdsv2_required),
    Rule(ENCRYPTED_ROOT_VOLUME,
         "EC2 root and extra EBS volumes are encrypted.", True, check_encrypted_root_volume),
    Rule(JOIN_VERIFIES_CA,
         "kubeadm joins pin the cluster CA hash and never skip CA verification.",
         True, check_join_verifies_ca),
    Rule(SSH_HOST_KEY_PINNED,
         "SSH connections (and jump hosts) pin the host key they expect.",
         True, check_ssh_host_key_pinned),
    Rule(SHORT_LIVED_JOIN_TOKENS,
         "Bootstrap tokens expire within maxTtl (default 1h); control-plane certificates are "
         "uploaded only with a key made for that upload.",
         True, check_short_lived_join_tokens,
         config={"maxTtl": ("max_ttl", "string", MAX_TOKEN_TTL)}),
    Rule(SECRET_COMMAND_OUTPUT,
         "Commands that print tokens or kubeconfigs keep stdout secret and log nothing.",
         True, check_secret_command_output),
    Rule(NO_PRIVILEGED_CONTAINERS,
         "Workloads run no privileged container and share no host namespace.",
         True, check_no_privileged_containers),
    Rule(NO_PRIVILEGE_ESCALATION,
         "Every container sets allowPrivilegeEscalation: false.",
         True, check_no_privilege_escalation),
    Rule(DROP_ALL_CAPABILITIES,
         "Every container drops ALL capabilities (and adds back only what it needs).",
         True, check_drop_all_capabilities),
    Rule(RESOURCE_LIMITS,
         "Every container has CPU and memory limits.", True, check_resource_limits),
    Rule(PINNED_IMAGES,
         "Every container image is pinned: a tag other than latest, or a digest.",
         True, check_pinned_images),
    Rule(ODD_CONTROL_PLANE_NODES,
         "The control plane has an odd number of nodes (stacked etcd members).",
         True, stack_check=check_odd_control_plane_nodes),
    Rule(STABLE_API_ENDPOINT,
         "Several control-plane nodes sit behind a controlPlaneEndpoint that is no single "
         "node's address.", True, stack_check=check_stable_api_endpoint),
    Rule(PRIVATE_WORKERS,
         "Advisory: worker nodes have no public IP (config privateWorkers true).",
         False, stack_check=check_private_workers),
    Rule(NARROW_ADMIN_CIDRS,
         "Advisory: ingress comes from networks no wider than /16 (IPv4) or /48 (IPv6).",
         False, check_narrow_admin_cidrs,
         config={"widestIpv4Prefix": ("widest_ipv4_prefix", "integer",
                                      DEFAULT_WIDEST_IPV4_PREFIX),
                 "widestIpv6Prefix": ("widest_ipv6_prefix", "integer",
                                      DEFAULT_WIDEST_IPV6_PREFIX)}),
    Rule(EXPOSED_APPS,
         "Advisory: an app Service of type NodePort or LoadBalancer is reachable from outside "
         "the cluster.", False, check_exposed_apps),
    Rule(ADDED_CAPABILITIES,
         "Advisory: containers add no capability beyond NET_BIND_SERVICE.",
         False, check_added_capabilities),
)

MANDATORY_RULES = tuple(rule for rule in RULES if rule.mandatory)
ADVISORY_RULES = tuple(rule for rule in RULES if not rule.mandatory)


def check_kwargs(rule: Rule, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The check's keyword arguments from the policy's config (defaults where unset)."""
    values = dict(config or {})
    return {kwarg: values.get(key, default) for key, (kwarg, _, default) in rule.config.items()}


def check_resource(
    rule: Rule, resource_type: str, props: Mapping[str, Any], name: str = "",
    secret_outputs: Sequence[str] = (), config: Mapping[str, Any] | None = None,
) -> list[str]:
    if rule.check is None:
        return []
    return rule.check(resource_type, props, name, secret_outputs, **check_kwargs(rule, config))


def check_stack(
    rule: Rule, resources: Sequence[Resource], config: Mapping[str, Any] | None = None,
) -> list[Violation]:
    if rule.stack_check is None:
        return []
    return rule.stack_check(resources, **check_kwargs(rule, config))
