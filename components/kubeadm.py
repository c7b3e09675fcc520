"""The kubeadm cluster on any set of hosts: install, init, join, drain-on-delete, readiness,
kubeconfig. Target-agnostic: a host is a name, a private IP and a transport.

Step graph (each arrow is a dependency):

    host -> install (preflight, install-runtime, install-kubeadm)   (only when `install` is set)
    master install -> init -> kubeconfig
    init + worker install -> join-token(worker) -> join(worker)
    init + worker host -> drain(worker) -> join(worker)
                                          (drain's delete drains and removes the Node; it is
                                           deleted after the join and before the host)
    init -> control-plane-scheduling     (untainted while the master is the only node)
    init + scheduling + every join -> ready    (the readiness gate workloads depend on)

Master steps never see the worker count, so scaling out leaves their inputs unchanged; each
worker's steps depend only on the master's init and on that worker's own host.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi

from components.config import ClusterConfig, PackageSource
from components.transport import CommandResource, Step, Transport

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig={ADMIN_KUBECONFIG}"
JOIN_TOKEN_TTL = "15m"
# kubeadm before the runtime: containerd's sandbox image is the pause image kubeadm names.
INSTALL_SCRIPTS = ("preflight.sh", "install-kubeadm.sh", "install-runtime.sh")
READY_TIMEOUT_SECONDS = 900
DRAIN_TIMEOUT = "300s"
# Where kubeadm's API server listens on the control-plane node (kubeadm-init.sh's default).
API_SERVER_PORT = 6443

NodeProfile = Literal["host", "kind"]
Cni = Literal["flannel", "kind"]


@dataclass(frozen=True)
class ClusterNode:
    """A host that will become a Kubernetes node."""

    name: str
    private_ip: pulumi.Input[str]
    transport: Transport
    # What must exist before any step runs on the host (the instance, a systemd wait, ...).
    depends_on: Sequence[pulumi.Resource] = ()
    # Identity of the underlying machine: when it changes, the node's steps run again.
    identity: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class NodeInstall:
    """Runtime and kubeadm installation, for hosts that do not ship them (EC2, not kind)."""

    package_source: PackageSource
    login_user: str


@dataclass(frozen=True)
class ClusterHosts:
    """What a target (AwsHosts, LocalHosts) hands to the kubeadm steps and the workloads."""

    master: ClusterNode
    workers: Sequence[ClusterNode]
    api_endpoint: pulumi.Input[str]  # host:port for the exported kubeconfig's server
    app_host: pulumi.Input[str]  # where users reach NodePorts (app URLs)
    cert_sans: Sequence[pulumi.Input[str]] = ()  # extra API server certificate names
    install: NodeInstall | None = None  # None: the hosts already have the runtime and kubeadm
    profile: NodeProfile = "host"
    cni: Cni = "flannel"


@dataclass(frozen=True)
class KubeadmClusterArgs:
    cluster: ClusterConfig
    hosts: ClusterHosts


def drain_command(node_name: str) -> str:
    """Drain a node and delete its Node object, run on the master when a worker goes away.

    A node that is already gone is fine; an unreachable API server is an error, so a scale-in
    never silently leaves an undrained node behind.
    """
    node = shlex.quote(node_name)
    return (
        "set -e; "
        f"found=$({KUBECTL} get node {node} --ignore-not-found -o name); "
        'if [ -n "$found" ]; then '
        f"{KUBECTL} drain {node} --ignore-daemonsets --delete-emptydir-data --force "
        f"--timeout={DRAIN_TIMEOUT}; "
        f"{KUBECTL} delete node {node} --ignore-not-found; "
        "fi"
    )


def control_plane_scheduling_command(master_name: str, has_workers: bool) -> str:
    """Apps may run on the control-plane node only while it is the only node.

    A step of its own, not part of init: the worker count must never reach the master's init
    inputs, or scaling out would re-run init on the master.
    """
    node = shlex.quote(master_name)
    taint = "node-role.kubernetes.io/control-plane"
    if has_workers:
        return f"{KUBECTL} taint nodes {node} {taint}=:NoSchedule --overwrite"
    # The read is its own command under `set -e`: in a pipeline an unreachable API server
    # would read as "no taint" and the step would succeed without untainting.
    return (
        f"set -e; taints=$({KUBECTL} get node {node} -o jsonpath='{{.spec.taints[*].key}}'); "
        f'case " $taints " in *" {taint} "*) '
        f"{KUBECTL} taint nodes {node} {taint}:NoSchedule-;; esac"
    )


def kubeconfig_with_server(admin_conf: str, endpoint: str) -> str:
    """admin.conf with its cluster server pointed at `endpoint` (host:port)."""
    return re.sub(r"(?m)^(\s*server:\s*)https://\S+$", rf"\g<1>https://{endpoint}", admin_conf)


class KubeadmCluster(pulumi.ComponentResource):
    """A kubeadm cluster: one control-plane node and any number of workers."""

    kubeconfig: pulumi.Output[str]
    # Names this control plane: changes exactly when the master is a new machine.
    cluster_identifier: pulumi.Output[str]
    ready: CommandResource
    node_names: list[str]
    node_private_ips: dict[str, pulumi.Input[str]]

    def __init__(
        self, name: str, args: KubeadmClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kubeadm-cluster:kubeadm:KubeadmCluster", name, None, opts)
        self._args = args

        master_prepared = self._install(args.hosts.master)
        init = self._run(
            args.hosts.master,
            f"{args.hosts.master.name}-init",
            Step(script="kubeadm-init.sh", env=self._init_env(),
                 triggers=self._triggers(args.hosts.master)),
            master_prepared,
        )

        joins = [self._join(worker, init) for worker in args.hosts.workers]
        scheduling = self._run(
            args.hosts.master,
            f"{name}-control-plane-scheduling",
            Step(
                inline=control_plane_scheduling_command(
                    args.hosts.master.name, bool(args.hosts.workers)
                ),
                triggers=self._triggers(args.hosts.master),
            ),
            [init],
        )

        nodes = [args.hosts.master, *args.hosts.workers]
        self.node_names = [node.name for node in nodes]
        self.node_private_ips = {node.name: node.private_ip for node in nodes}
        self.ready = self._run(
            args.hosts.master,
            f"{name}-ready",
            Step(
                script="wait-ready.sh",
                env={
                    "EXPECTED_NODES": " ".join(self.node_names),
                    "READY_TIMEOUT_SECONDS": str(READY_TIMEOUT_SECONDS),
                },
                triggers=self._triggers(args.hosts.master),
            ),
            [init, scheduling, *joins],
        )

        admin_conf = self._run(
            args.hosts.master,
            f"{name}-kubeconfig",
            Step(inline=f"cat {ADMIN_KUBECONFIG}", secret_output=True,
                 triggers=self._triggers(args.hosts.master)),
            [init],
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(admin_conf.stdout, args.hosts.api_endpoint).apply(
                lambda pair: kubeconfig_with_server(pair[0], pair[1])
            )
        )
        self.cluster_identifier = pulumi.Output.concat(name, "/", args.hosts.master.identity or "")
        self.register_outputs({
            "kubeconfig": self.kubeconfig,
            "nodeNames": self.node_names,
            "nodePrivateIps": self.node_private_ips,
        })

    # -- steps -----------------------------------------------------------------------------

    def _run(
        self,
        node: ClusterNode,
        name: str,
        step: Step,
        after: Sequence[pulumi.Resource],
    ) -> CommandResource:
        opts = pulumi.ResourceOptions(parent=self, depends_on=[*node.depends_on, *after])
        return node.transport.run(name, step, opts)

    @staticmethod
    def _triggers(node: ClusterNode) -> Sequence[pulumi.Input[str]]:
        return [node.identity] if node.identity is not None else []

    def _install(self, node: ClusterNode) -> list[CommandResource]:
        """Preflight, container runtime and kubeadm packages on one node, as one step.

        Three scripts on one stdin, in order: one SSH session and one resource per node
        instead of three (the program's cost grows with resources per worker).
        Empty when the host ships the runtime (kind).
        """
        install = self._args.hosts.install
        if install is None:
            return []
        step = Step(
            script=INSTALL_SCRIPTS,
            env={
                "PACKAGE_SOURCE": install.package_source,
                "LOGIN_USER": install.login_user,
                "KUBERNETES_VERSION": str(self._args.cluster.kubernetes_version),
                **self._cgroup_env(),
            },
            triggers=self._triggers(node),
        )
        return [self._run(node, f"{node.name}-install", step, [])]

    def _init_env(self) -> dict[str, pulumi.Input[str]]:
        args = self._args
        cert_sans = pulumi.Output.all(*args.hosts.cert_sans).apply(
            lambda sans: ",".join(s for s in sans if s)
        )
        return {
            "NODE_NAME": args.hosts.master.name,
            "ADVERTISE_ADDRESS": args.hosts.master.private_ip,
            "POD_CIDR": args.cluster.pod_cidr,
            "SERVICE_CIDR": args.cluster.service_cidr,
            "KUBERNETES_VERSION": str(args.cluster.kubernetes_version),
            "CERT_SANS": cert_sans,
            "NODE_PROFILE": args.hosts.profile,
            "CNI": args.hosts.cni,
            **self._cgroup_env(),
        }

    def _cgroup_env(self) -> dict[str, pulumi.Input[str]]:
        """ALLOW_CGROUP_V1 only when set, so stacks without it keep their steps' inputs."""
        return {"ALLOW_CGROUP_V1": "true"} if self._args.cluster.allow_cgroup_v1 else {}

    def _join(self, worker: ClusterNode, init: CommandResource) -> CommandResource:
        master = self._args.hosts.master
        # The join runs again when the worker's machine or the control plane is new (a rebuilt
        # master is a new cluster to join). Neither changes on scale-out.
        triggers = [*self._triggers(worker), *self._triggers(master)]
        prepared = self._install(worker)
        # The drain exists before the join and is removed after it: a worker going away, or a
        # replaced drain step, drains and deletes its Node before a machine of the same name
        # joins again, and before the worker's machine is deleted (it waits for the host).
        # It follows the worker's machine only: a rebuilt master has nothing to drain.
        drain = self._run(
            master,
            f"{worker.name}-drain",
            Step(
                inline=f"{KUBECTL} get --raw=/readyz",
                delete=drain_command(worker.name),
                triggers=self._triggers(worker),
            ),
            [init, *worker.depends_on],
        )
        # A fresh, short-lived join command per worker, made on the master once the worker is
        # ready to use it, so a slow install cannot outlive the token.
        token = self._run(
            master,
            f"{worker.name}-join-token",
            Step(script="join-token.sh", env={"TOKEN_TTL": JOIN_TOKEN_TTL}, secret_output=True,
                 triggers=triggers),
            [init, *prepared],
        )
        join = self._run(
            worker,
            f"{worker.name}-join",
            Step(
                script="kubeadm-join.sh",
                env={
                    "JOIN_COMMAND": pulumi.Output.secret(token.stdout.apply(str.strip)),
                    "NODE_NAME": worker.name,
                    "NODE_PROFILE": self._args.hosts.profile,
                    **self._cgroup_env(),
                },
                triggers=triggers,
            ),
            [*prepared, token, drain],
        )
        return join
