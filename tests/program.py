"""Pulumi mocks for the whole program, usable from tests and benchmarks alike.

`run_program(stack, **overrides)` loads the shipped `Pulumi.<stack>.yaml` as config (with
overrides), runs `__main__.py` with `runpy` on a fresh event loop and a fresh root stack, and
returns every RegisterResource request the mock monitor saw plus the stack outputs.
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import shlex
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from unittest.mock import patch

import pulumi
import pulumi.runtime.settings
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from components.config import PROJECT, StackConfig, load_stack_config
from components.kubeadm import ClusterHosts, KubeadmCluster, KubeadmClusterArgs
from components.targets.docker_host import DockerHost

REPO = Path(__file__).resolve().parent.parent
PLAIN_DOCKER_HOST = DockerHost("overlay2", "extfs", {})
MAIN = REPO / "__main__.py"

FAKE_CA_HASH = "sha256:" + "ab" * 32
FAKE_JOIN_COMMAND = (
    "kubeadm join 10.0.1.10:6443 --token abcdef.0123456789abcdef "
    f"--discovery-token-ca-cert-hash {FAKE_CA_HASH}"
)
FAKE_CLUSTER_RELEASE = "1.37.2"
FAKE_ADMIN_CONF = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: RkFLRS1DQQ==
    server: https://10.0.1.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
users:
- name: kubernetes-admin
  user:
    client-certificate-data: RkFLRS1DRVJU
    client-key-data: RkFLRS1LRVk=
"""
FAKE_PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nZmFrZQ==\n-----END OPENSSH PRIVATE KEY-----\n"
)
FAKE_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake"
FAKE_EIP = "203.0.113.10"
HOST_KEY_SUFFIX = "-host-key"


def fake_public_ip(instance_name: str) -> str:
    """An instance's (mock) public IP, distinct per instance: 198.51.100.(20 + 1 + worker index),
    198.51.100.(10 + i) for control-plane node i >= 1, 198.51.100.20 for anything else."""
    for marker, base in (("-worker-", 21), ("-control-plane-", 10)):
        index = instance_name.rsplit(marker, 1)[1] if marker in instance_name else None
        if index and index.isdigit():
            return f"198.51.100.{base + int(index)}"
    return "198.51.100.20"


def fake_load_balancer_dns(name: str, internal: bool) -> str:
    """A (mock) network load balancer's DNS name, as AWS forms them: internal ones start with
    `internal-`."""
    return f"{'internal-' if internal else ''}{name}-0123456789abcdef.elb.eu-west-1.amazonaws.com"


def fake_host_public_key(node: str) -> str:
    """A node's (mock) SSH host public key, distinct per node, as the tls provider prints it."""
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{node.replace('-', '')}"


def fake_host_private_key(node: str) -> str:
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\nhost-{node}\n-----END OPENSSH PRIVATE KEY-----\n"


@dataclass
class Registration:
    """One RegisterResource request, as the engine would receive it."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    delete_before_replace: bool
    additional_secret_outputs: list[str]
    replace_on_changes: list[str]
    ignore_changes: list[str]
    provider: str
    secret_inputs: set[str] = field(default_factory=set)
    replace_with: list[str] = field(default_factory=list)
    retain_on_delete: bool = False


class ProgramMocks(pulumi.runtime.Mocks):
    """Plausible provider outputs for each resource type the program declares."""

    # What each Stash (by resource name) holds from an earlier update; absent: a new one.
    stashed: dict[str, Any] = {}  # noqa: RUF012 - tests replace it, never mutate it

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        typ, name = args.typ, args.name
        if typ in ("command:local:Command", "command:remote:Command"):
            outputs["stdout"] = fake_stdout(name)
            outputs["stderr"] = ""
        elif typ == "aws:ec2/instance:Instance":
            outputs.setdefault("publicIp", fake_public_ip(name))
            outputs["arn"] = f"arn:aws:ec2:eu-west-1:123456789012:instance/i-{name}"
        elif typ == "aws:ec2/eip:Eip":
            outputs["publicIp"] = FAKE_EIP
            outputs["publicDns"] = "ec2-203-0-113-10.eu-west-1.compute.amazonaws.com"
            outputs["allocationId"] = f"eipalloc-{name}"
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            outputs["arn"] = f"arn:aws:elasticloadbalancing:eu-west-1:123456789012:" \
                f"loadbalancer/net/{name}/0123456789abcdef"
            outputs["dnsName"] = fake_load_balancer_dns(name, bool(args.inputs.get("internal")))
            outputs["zoneId"] = "Z2IFOLAFXWLO4F"
        elif typ in ("aws:lb/targetGroup:TargetGroup", "aws:lb/listener:Listener"):
            kind = "targetgroup" if typ.endswith("TargetGroup") else "listener/net"
            outputs["arn"] = f"arn:aws:elasticloadbalancing:eu-west-1:123456789012:{kind}/{name}"
        elif typ == "pulumi:index:Stash":
            outputs["output"] = self.stashed.get(name, args.inputs.get("input"))
        elif typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
            outputs.setdefault("name", f"{name}-1a2b3c4")  # the provider's autonaming
        elif typ == "aws:ec2/keyPair:KeyPair":
            outputs.setdefault("keyName", name)
        elif typ == "tls:index/privateKey:PrivateKey" and name.endswith(HOST_KEY_SUFFIX):
            node = name.removesuffix(HOST_KEY_SUFFIX)
            outputs["privateKeyOpenssh"] = fake_host_private_key(node)
            outputs["publicKeyOpenssh"] = fake_host_public_key(node) + "\n"
        elif typ == "tls:index/privateKey:PrivateKey":
            outputs["privateKeyOpenssh"] = FAKE_PRIVATE_KEY
            outputs["privateKeyPem"] = FAKE_PRIVATE_KEY
            outputs["publicKeyOpenssh"] = FAKE_PUBLIC_KEY
        elif typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = "sha256:" + "cd" * 32
            outputs["repoDigest"] = f"{args.inputs.get('name')}"
        elif typ == "kubernetes:core/v1:Service" and "spec" in outputs:
            outputs.setdefault("status", {})
        return f"{name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "aws:ec2/getAmi:getAmi":
            arch = "arm64"
            for flt in args.args.get("filters", []):
                if flt.get("name") == "architecture":
                    arch = flt["values"][0]
            ami = "ami-0aaaaaaaaaaaaaaa1" if arch == "x86_64" else "ami-0bbbbbbbbbbbbbbb2"
            return {"id": ami, "architecture": arch, "imageId": ami}, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
                    "zoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"]}, []
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": "eu-west-1", "region": "eu-west-1"}, []
        return {}, []


def fake_stdout(name: str) -> str:
    if name.endswith("-join-token"):
        return f"{FAKE_JOIN_COMMAND}\n{FAKE_CLUSTER_RELEASE}\n"
    if name.endswith("-kubeconfig"):
        return FAKE_ADMIN_CONF
    return ""


SECRET_SIG = rpc._special_secret_sig if hasattr(rpc, "_special_secret_sig") else \
    "1b47061264138c4ac30d75fd1eb44270"


def secret_paths(value: Any, path: str = "") -> set[str]:
    """Top-level input names whose serialized value contains a secret anywhere inside."""
    found: set[str] = set()
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == SECRET_SIG:
            found.add(path)
        for key, inner in value.items():
            found |= secret_paths(inner, path or key)
    elif isinstance(value, list):
        for inner in value:
            found |= secret_paths(inner, path)
    return found


def unwrap_secrets(value: Any) -> Any:
    """Plain values from deserialized properties (secretness is kept in `secret_inputs`)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {key: unwrap_secrets(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(inner) for inner in value]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, keeping every RegisterResource request with its options."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        from google.protobuf import json_format

        raw = json_format.MessageToDict(request.object)
        urn = response.urn
        self.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=urn,
                inputs=unwrap_secrets(rpc.deserialize_properties(request.object)),
                outputs=self.resources[urn].state,
                parent=request.parent,
                dependencies=list(request.dependencies),
                property_dependencies={
                    key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                delete_before_replace=request.deleteBeforeReplace,
                additional_secret_outputs=list(request.additionalSecretOutputs),
                replace_on_changes=list(request.replaceOnChanges),
                ignore_changes=list(request.ignoreChanges),
                provider=request.provider,
                secret_inputs=secret_paths(raw),
                replace_with=list(request.replace_with),
                retain_on_delete=request.retainOnDelete,
            )
        )
        return response


@dataclass
class ProgramRun:
    """What one run of the program declared."""

    loop: asyncio.AbstractEventLoop
    resources: list[Registration]
    outputs: dict[str, Any]
    error: BaseException | None = None

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.resources if r.type == typ]

    def named(self, name: str) -> Registration:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name!r}, found {len(matches)}"
        return matches[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.resources if r.urn == urn)

    def direct_dependencies(self, res: Registration) -> set[str]:
        deps = set(res.dependencies)
        for urns in res.property_dependencies.values():
            deps |= set(urns)
        return deps

    def depends_on(self, res: Registration, other: Registration) -> bool:
        """True when `res` waits for `other`, directly or through other resources."""
        seen: set[str] = set()
        todo = [res.urn]
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            current = self.by_urn(urn) if any(r.urn == urn for r in self.resources) else None
            if current is None:
                continue
            deps = self.direct_dependencies(current)
            if other.urn in deps:
                return True
            todo.extend(deps)
        return False

    def resolve(self, value: Any) -> Any:
        """The plain value, with Outputs nested in lists and dicts resolved too."""
        return self.loop.run_until_complete(pulumi.Output.from_input(value).future())

    def is_secret(self, value: Any) -> bool:
        return bool(self.loop.run_until_complete(pulumi.Output.from_input(value).is_secret()))

    def output(self, key: str) -> Any:
        return self.resolve(self.outputs[key])


def stack_config(stack: str, overrides: dict[str, Any]) -> dict[str, str]:
    """The shipped Pulumi.<stack>.yaml as engine config, with overrides by short key.

    An override of None removes the key. Values are passed as the Pulumi CLI passes them:
    strings, and JSON text for lists and objects.
    """
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    values: dict[str, Any] = dict(document.get("config") or {})
    for key, value in overrides.items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            values.pop(full_key, None)
        else:
            values[full_key] = value
    return {key: engine_value(value) for key, value in values.items()}


def config_values(stack: str, **overrides: Any) -> dict[str, object]:
    """The stack's config by short key (plus aws:region), as `parse_stack_config` takes it."""
    prefix = f"{PROJECT}:"
    return {
        key.removeprefix(prefix): value
        for key, value in stack_config(stack, overrides).items()
        if key.startswith(prefix) or key == "aws:region"
    }


def engine_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


ProgramRunner = Callable[..., ProgramRun]
ComponentRunner = Callable[..., ProgramRun]


def run_program_with(
    loop: asyncio.AbstractEventLoop,
    stack: str,
    preview: bool = False,
    program: Callable[[], None] | None = None,
    expect_error: bool = False,
    docker_host: DockerHost = PLAIN_DOCKER_HOST,
    **overrides: Any,
) -> ProgramRun:
    """Run `program` (default: __main__.py via runpy) under mocks with the stack's config;
    `docker_host` is what the local target's host inspection reports."""
    config = stack_config(stack, overrides)
    monitor = RecordingMonitor(ProgramMocks())
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        ProgramMocks(), project=PROJECT, stack=stack, preview=preview, monitor=monitor
    )
    pulumi.runtime.set_all_config(config)

    def main_program() -> None:
        # The Docker engine's host is not inspected under mocks: a host that needs nothing.
        with patch("components.targets.docker_host.inspect_docker_host",
                   lambda **_: docker_host):
            runpy.run_path(str(MAIN), run_name="__main__")

    cwd = os.getcwd()
    os.chdir(REPO)
    error: BaseException | None = None
    try:
        loop.run_until_complete(pulumi.runtime.stack.run_pulumi_func(program or main_program))
    except Exception as exc:
        if not expect_error:
            raise
        error = exc
        # A program that failed in an apply leaves its RPCs behind; the next run must not
        # inherit them (or their exception).
        pulumi.runtime.settings._get_rpc_manager().clear()
        with pulumi.runtime.settings.SETTINGS.lock:
            pulumi.runtime.settings.SETTINGS.outputs.clear()
    finally:
        os.chdir(cwd)
    root = pulumi.runtime.settings.get_root_resource()
    outputs = dict(getattr(root, "outputs", {}) or {})
    return ProgramRun(loop=loop, resources=monitor.registrations, outputs=outputs, error=error)


@contextmanager
def stack_runs(
    variants: Mapping[str, tuple[str, dict[str, Any]]],
) -> Iterator[dict[str, ProgramRun]]:
    """Each variant (stack, config overrides) run once on one shared event loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield {key: run_program_with(loop, stack, **overrides)
               for key, (stack, overrides) in variants.items()}
    finally:
        loop.close()
        asyncio.set_event_loop(None)


class Target(Protocol):
    """A target component (AwsHosts, LocalHosts): it builds the ClusterHosts."""

    cluster_hosts: ClusterHosts


Hosts = TypeVar("Hosts", bound=Target)


@dataclass
class WiredCluster(Generic[Hosts]):
    """What a hosts -> kubeadm mini program built, for assertions on component attributes."""

    hosts: Hosts
    cluster: KubeadmCluster


def run_cluster_on(
    run_components: ComponentRunner,
    make_hosts: Callable[[StackConfig], Hosts],
    stack: str,
    **overrides: Any,
) -> tuple[ProgramRun, WiredCluster[Hosts]]:
    """A target's hosts and the kubeadm cluster on them, wired as __main__.py wires them."""
    built: list[WiredCluster[Hosts]] = []

    def program() -> None:
        config = load_stack_config()
        hosts = make_hosts(config)
        cluster = KubeadmCluster(
            config.cluster_name, KubeadmClusterArgs(config.cluster, hosts.cluster_hosts)
        )
        built.append(WiredCluster(hosts, cluster))

    run = run_components(program, stack=stack, **overrides)
    return run, built[0]


def exported_env(stdin: str) -> dict[str, str]:
    """The `export KEY=value` lines a step's stdin starts with (before its first script), as
    the shell reads them; a multi-line value keeps its first line."""
    env: dict[str, str] = {}
    for line in stdin.split("#!/usr/bin/env bash")[0].splitlines():
        if not line.startswith("export "):
            continue  # a multi-line value's other lines
        key, _, value = line[len("export "):].partition("=")
        try:
            env[key] = shlex.split(value)[0] if value else ""
        except ValueError:  # the first line of a multi-line value
            env[key] = value
    return env
