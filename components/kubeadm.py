"""The kubeadm cluster on any set of hosts: install, init, join, drain-on-delete, readiness,
kubeconfig, and version upgrades. Target-agnostic: a host is a name, a private IP and a transport.

Step graph (each arrow is a dependency):

    host -> install (preflight, install-runtime)             (only when `install` is set)
    host/install -> registry-mirrors              (only when registryMirrors is set; before
                                                   any step that pulls images on that node)
    master install -> master kubernetes -> init -> kubeconfig
         (kubernetes: kubelet/kubeadm/kubectl at kubernetesVersion when created; when the version
          changes, `kubeadm upgrade apply` and the master's kubelet)
    init + master kubernetes + worker install -> join-token(worker) -> join(worker)
         (the join installs the packages at the version the control plane runs, read by the
          join-token step, then joins)
    init -> join-token(control plane 1) -> join(control plane 1) -> join-token(control plane 2)
         -> join(control plane 2) ...   (one at a time: each changes etcd's membership; each
                                         token step uploads the certificates with a fresh key)
    init + worker host -> drain(worker) -> join(worker)
                                          (drain's delete drains and removes the Node; it is
                                           deleted after the join and before the host; a
                                           control-plane node's also removes its etcd member)
    master kubernetes -> control plane 1 kubernetes -> ... -> worker1 kubernetes -> ...
         (nothing when created; when the version changes, one worker at a time: drain, packages,
          `kubeadm upgrade node`, kubelet restart, Ready, uncordon)
    endpoint ready (a load balancer, when the target has one) -> init
    init -> control-plane-scheduling     (untainted while the master is the only node)
    init + scheduling + every join -> ready    (the readiness gate workloads depend on)
    (control-plane nodes after the master are joined like workers, with --control-plane)

Master steps never see the worker count, so scaling out leaves their inputs unchanged; each
worker's steps depend only on the master's init and on that worker's own host. Only the
kubernetes steps carry kubernetesVersion, so changing it changes nothing else: the preview of
an upgrade is one step per node, in the order they run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi

from components.config import DEFAULT_DRAIN_TIMEOUT, ClusterConfig, PackageSource
from components.scripts import script_command
from components.transport import CommandResource, Step, Transport

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig={ADMIN_KUBECONFIG}"
JOIN_TOKEN_TTL = "15m"
# Version-free, so a version change leaves every install step as it is.
INSTALL_SCRIPTS = ("preflight.sh", "install-runtime.sh")
# A node's Kubernetes version: installed on a node not in a cluster yet, upgraded on one that is.
VERSION_SCRIPTS = ("install-kubeadm.sh", "upgrade-node.sh")
# A host-profile worker installs the control plane's version, then joins.
JOIN_SCRIPTS = ("install-kubeadm.sh", "kubeadm-join.sh")
READY_TIMEOUT_SECONDS = 900
# A registry-mirrors step's delete: the script with no mirrors removes the files it wrote. Its
# text is inlined because a delete must not read stdin (components/transport.py).
REMOVE_REGISTRY_MIRRORS = script_command("registry-mirrors.sh", {"REGISTRY_MIRRORS": ""})
# How long one node may take to be Ready at its new version after its kubelet restarts.
UPGRADE_READY_TIMEOUT_SECONDS = 300
# Where kubeadm's API server listens on the control-plane node (kubeadm-init.sh's default).
API_SERVER_PORT = 6443

NodeProfile = Literal["host", "kind"]
Cni = Literal["flannel", "kind"]
# The cluster's default StorageClass, applied at init: none, or the kind node image's
# /kind/manifests/default-storage.yaml (config.DEFAULT_STORAGE_CLASS names the class).
DefaultStorage = Literal["none", "kind"]


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
    # The control-plane nodes after the master (kubeadm join --control-plane), in join order.
    control_planes: Sequence[ClusterNode] = ()
    # kubeadm's controlPlaneEndpoint (host:port every kubeconfig in the cluster names), or None
    # (the master's own address). Several control-plane nodes need one, from init on.
    control_plane_endpoint: pulumi.Input[str] | None = None
    # What must exist before anything reaches control_plane_endpoint (a load balancer that
    # routes to the master): kubeadm init waits for it, and so, through init, every join.
    endpoint_ready: Sequence[pulumi.Resource] = ()
    cert_sans: Sequence[pulumi.Input[str]] = ()  # extra API server certificate names
    install: NodeInstall | None = None  # None: the hosts already have the runtime and kubeadm
    profile: NodeProfile = "host"
    cni: Cni = "flannel"
    default_storage: DefaultStorage = "none"


@dataclass(frozen=True)
class KubeadmClusterArgs:
    cluster: ClusterConfig
    hosts: ClusterHosts


def drain_command(node_name: str, timeout_seconds: int = DEFAULT_DRAIN_TIMEOUT) -> str:
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
        f"--timeout={timeout_seconds}s; "
        f"{KUBECTL} delete node {node} --ignore-not-found; "
        "fi"
    )


def control_plane_scheduling_command(control_planes: Sequence[str], has_workers: bool) -> str:
    """Apps may run on the control-plane nodes only while there are no workers.

    A step of its own, not part of init: the worker count must never reach the master's init
    inputs, or scaling out would re-run init on the master.
    """
    names = list(control_planes)
    taint = "node-role.kubernetes.io/control-plane"
    if has_workers:
        return "; ".join(f"{KUBECTL} taint nodes {shlex.quote(name)} {taint}=:NoSchedule "
                         "--overwrite" for name in names)
    # The read is its own command under `set -e`: in a pipeline an unreachable API server
    # would read as "no taint" and the step would succeed without untainting.
    return "set -e; " + "; ".join(
        f"taints=$({KUBECTL} get node {shlex.quote(name)} -o jsonpath='{{.spec.taints[*].key}}'); "
        f'case " $taints " in *" {taint} "*) '
        f"{KUBECTL} taint nodes {shlex.quote(name)} {taint}:NoSchedule-;; esac"
        for name in names)


REMOVE_ATTEMPTS = 5
REMOVE_RETRY_SECONDS = 5


def remove_control_plane_command(node_name: str, timeout_seconds: int) -> str:
    """A control-plane node leaving, run on the master: drain it, delete its Node, then remove
    its etcd member (remove-etcd-member.sh), so etcd's quorum counts only the members left.

    The drain is retried (REMOVE_ATTEMPTS, REMOVE_RETRY_SECONDS apart): while etcd elects a new
    leader (the member another removal took away may have led), the API answers "etcdserver:
    request timed out" for a few seconds.
    """
    drain = shlex.quote(drain_command(node_name, timeout_seconds))
    return (f"attempt=1; until sh -c {drain}; do "
            f'if [ "$attempt" -ge {REMOVE_ATTEMPTS} ]; then '
            f'echo "error: draining {node_name} failed {REMOVE_ATTEMPTS} times" >&2; exit 1; fi; '
            f"attempt=$((attempt + 1)); sleep {REMOVE_RETRY_SECONDS}; done && "
            + script_command("remove-etcd-member.sh", {"MEMBER_NAME": node_name}))


def render_registry_mirrors(mirrors: Sequence[tuple[str, Sequence[str]]]) -> str:
    """registry-mirrors.sh's REGISTRY_MIRRORS: "REGISTRY URL [URL...]", one line each."""
    return "".join(f"{registry} {' '.join(urls)}\n" for registry, urls in mirrors)


def parse_join_token_output(stdout: str) -> tuple[str, str, str]:
    """join-token.sh's lines: (the join command, the release the cluster runs, "1.31.4", the
    certificate key or "" for a worker's two lines)."""
    lines = [line.strip() for line in stdout.strip().splitlines()]
    if len(lines) not in (2, 3) or not lines[0].startswith("kubeadm join ") or not re.fullmatch(
        r"1\.\d+\.\d+", lines[1]
    ) or (len(lines) == 3 and not re.fullmatch(r"[0-9a-f]{64}", lines[2])):
        raise ValueError("join-token.sh printed something other than a join command, a "
                         "version and, for a control-plane node, a certificate key")
    return lines[0], lines[1], lines[2] if len(lines) == 3 else ""


def kubeconfig_with_server(admin_conf: str, endpoint: str) -> str:
    """admin.conf with its cluster server pointed at `endpoint` (host:port)."""
    return re.sub(r"(?m)^(\s*server:\s*)https://\S+$", rf"\g<1>https://{endpoint}", admin_conf)


class KubeadmCluster(pulumi.ComponentResource):
    """A kubeadm cluster: one control-plane node and any number of workers."""

    kubeconfig: pulumi.Output[str]
    ready: CommandResource
    node_names: list[str]
    node_private_ips: dict[str, pulumi.Input[str]]

    def __init__(
        self, name: str, args: KubeadmClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kubeadm-cluster:kubeadm:KubeadmCluster", name, None, opts)
        self._args = args
        self._control_plane_drains: list[CommandResource] = []

        master = args.hosts.master
        master_ready = self._prepare(master)
        master_version = self._kubernetes(master, master_ready, previous=None)
        master_prepared = [*master_ready, *master_version, *args.hosts.endpoint_ready]
        init = self._run(
            master,
            f"{master.name}-init",
            Step(script="kubeadm-init.sh", env=self._init_env(), triggers=self._triggers(master)),
            master_prepared,
        )
        admin_conf = self._run(
            master,
            f"{name}-kubeconfig",
            Step(inline=f"cat {ADMIN_KUBECONFIG}", secret_output=True,
                 triggers=self._triggers(master)),
            [init],
        )

        # Control-plane nodes join one at a time: each join adds an etcd member, and etcd
        # takes one new member at a time (kubeadm's HA guide joins them in turn).
        control_plane_joins: list[CommandResource] = []
        previous = master_version
        for node in args.hosts.control_planes:
            join = self._join(node, init, master_version, after=control_plane_joins[-1:],
                              control_plane=True)
            control_plane_joins.append(join)
            previous = self._kubernetes(node, [join], previous=previous,
                                        role="additional-control-plane")
        joins = list(control_plane_joins)
        for worker in args.hosts.workers:
            join = self._join(worker, init, master_version)
            joins.append(join)
            previous = self._kubernetes(
                worker, [join], previous=previous, admin_kubeconfig=admin_conf.stdout
            )
        control_plane_names = [master.name, *(n.name for n in args.hosts.control_planes)]
        scheduling = self._run(
            master,
            f"{name}-control-plane-scheduling",
            Step(
                inline=control_plane_scheduling_command(control_plane_names,
                                                        bool(args.hosts.workers)),
                triggers=self._triggers(master),
            ),
            [init, *control_plane_joins],
        )

        nodes = [master, *args.hosts.control_planes, *args.hosts.workers]
        self.node_names = [node.name for node in nodes]
        self.node_private_ips = {node.name: node.private_ip for node in nodes}
        self.ready = self._run(
            master,
            f"{name}-ready",
            Step(
                script="wait-ready.sh",
                env={
                    "EXPECTED_NODES": " ".join(self.node_names),
                    "READY_TIMEOUT_SECONDS": str(READY_TIMEOUT_SECONDS),
                },
                triggers=self._triggers(master),
            ),
            [init, scheduling, *joins],
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(admin_conf.stdout, args.hosts.api_endpoint).apply(
                lambda pair: kubeconfig_with_server(pair[0], pair[1])
            )
        )
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

    def _prepare(self, node: ClusterNode) -> list[CommandResource]:
        """What a node needs before kubeadm runs on it: its runtime, then its mirrors."""
        install = self._install(node)
        return [*install, *self._registry_mirrors(node, install)]

    def _registry_mirrors(
        self, node: ClusterNode, after: Sequence[pulumi.Resource]
    ) -> list[CommandResource]:
        """containerd's registry mirrors on one node (registry-mirrors.sh), when configured.

        Changing registryMirrors updates these steps only. Removing it deletes them, and each
        delete removes the hosts.toml files it wrote (the same script with no mirrors).
        """
        mirrors = self._args.cluster.registry_mirrors
        if not mirrors:
            return []
        step = Step(
            script="registry-mirrors.sh",
            env={"REGISTRY_MIRRORS": render_registry_mirrors(mirrors)},
            delete=REMOVE_REGISTRY_MIRRORS,
            triggers=self._triggers(node),
        )
        return [self._run(node, f"{node.name}-registry-mirrors", step, after)]

    def _install(self, node: ClusterNode) -> list[CommandResource]:
        """Preflight and container runtime on one node, as one step.

        Two scripts on one stdin, in order: one SSH session and one resource per node instead
        of two (the program's cost grows with resources per worker). No Kubernetes version:
        that is the kubernetes step's. Empty when the host ships the runtime (kind).
        """
        install = self._args.hosts.install
        if install is None:
            return []
        step = Step(
            script=INSTALL_SCRIPTS,
            env={
                "PACKAGE_SOURCE": install.package_source,
                "LOGIN_USER": install.login_user,
                **self._cgroup_env(),
            },
            triggers=self._triggers(node),
        )
        return [self._run(node, f"{node.name}-install", step, [])]

    def _kubernetes(
        self,
        node: ClusterNode,
        after: Sequence[pulumi.Resource],
        previous: Sequence[pulumi.Resource] | None,
        admin_kubeconfig: pulumi.Input[str] | None = None,
        role: str = "worker",
    ) -> list[CommandResource]:
        """The step that holds a node's kubernetesVersion (upgrade-node.sh), or nothing on kind.

        The master's (`previous` None) installs the packages when created, before init, and
        upgrades the control plane when the version changes. A worker's runs only when the
        version changes (its packages come with its join), after the step before it in the
        chain, and reaches the API with the admin kubeconfig to drain and uncordon itself. An
        additional control-plane node's (role "additional-control-plane") runs in the chain
        after the master's and before the workers', with its own admin.conf.
        """
        if self._args.hosts.install is None:
            return []
        cluster = self._args.cluster
        env: dict[str, pulumi.Input[str]] = {
            "ROLE": "control-plane" if previous is None else role,
            "NODE_NAME": node.name,
            "KUBERNETES_VERSION": str(cluster.kubernetes_version),
            "DRAIN_TIMEOUT": f"{cluster.drain_timeout_seconds}s",
            "READY_TIMEOUT_SECONDS": str(UPGRADE_READY_TIMEOUT_SECONDS),
            **self._cgroup_env(),
        }
        if admin_kubeconfig is not None:
            env["ADMIN_KUBECONFIG"] = pulumi.Output.secret(admin_kubeconfig)
        step = Step(
            script=VERSION_SCRIPTS,
            env=env,
            triggers=self._triggers(node),
            on_create=previous is None,
        )
        return [self._run(node, f"{node.name}-kubernetes", step, [*after, *(previous or [])])]

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
            "CERT_SANS": cert_sans,
            # Only when set: on the targets without one this key changes no input.
            **({"CONTROL_PLANE_ENDPOINT": args.hosts.control_plane_endpoint}
               if args.hosts.control_plane_endpoint is not None else {}),
            "NODE_PROFILE": args.hosts.profile,
            "CNI": args.hosts.cni,
            # Only when set: on the other targets this key changes no input.
            **({"DEFAULT_STORAGE": args.hosts.default_storage}
               if args.hosts.default_storage != "none" else {}),
            **self._cgroup_env(),
        }

    def _cgroup_env(self) -> dict[str, pulumi.Input[str]]:
        """ALLOW_CGROUP_V1 only when set, so stacks without it keep their steps' inputs."""
        return {"ALLOW_CGROUP_V1": "true"} if self._args.cluster.allow_cgroup_v1 else {}

    def _join(
        self, worker: ClusterNode, init: CommandResource,
        master_version: Sequence[CommandResource], after: Sequence[pulumi.Resource] = (),
        control_plane: bool = False,
    ) -> CommandResource:
        """A node's join: its drain-on-delete step and a fresh join command on the master, then
        `kubeadm join` on the node (with --control-plane and a certificate key for a
        control-plane node, whose drain also removes its etcd member)."""
        master = self._args.hosts.master
        timeout = self._args.cluster.drain_timeout_seconds
        # The join runs again when the worker's machine or the control plane is new (a rebuilt
        # master is a new cluster to join). Neither changes on scale-out.
        triggers = [*self._triggers(worker), *self._triggers(master)]
        prepared = self._prepare(worker)
        # The drain exists before the join and is removed after it: a worker going away, or a
        # replaced drain step, drains and deletes its Node before a machine of the same name
        # joins again, and before the worker's machine is deleted (it waits for the host).
        # It follows the worker's machine only: a rebuilt master has nothing to drain.
        drain = self._run(
            master,
            f"{worker.name}-drain",
            Step(
                inline=f"{KUBECTL} get --raw=/readyz",
                delete=remove_control_plane_command(worker.name, timeout) if control_plane
                else drain_command(worker.name, timeout),
                triggers=self._triggers(worker),
            ),
            # A control-plane node's after the one before it: deletes run in reverse order, so
            # leaving control-plane nodes go one at a time (each changes etcd's membership, and
            # removing the leader makes the API refuse requests until a new one is elected).
            [init, *worker.depends_on, *(self._control_plane_drains[-1:] if control_plane
                                         else [])],
        )
        if control_plane:
            self._control_plane_drains.append(drain)
        # A fresh, short-lived join command per worker, made on the master once the worker is
        # ready to use it, so a slow install cannot outlive the token. After the master's
        # kubernetes step: a worker added during an upgrade joins at the new version.
        token = self._run(
            master,
            f"{worker.name}-join-token",
            Step(script="join-token.sh",
                 env={"TOKEN_TTL": JOIN_TOKEN_TTL,
                      **({"CONTROL_PLANE": "true"} if control_plane else {})},
                 secret_output=True, triggers=triggers),
            [init, *master_version, *prepared, *after],
        )
        token_lines = token.stdout.apply(parse_join_token_output)
        env: dict[str, pulumi.Input[str]] = {
            "JOIN_COMMAND": pulumi.Output.secret(token_lines[0]),
            "NODE_NAME": worker.name,
            "NODE_PROFILE": self._args.hosts.profile,
            **self._cgroup_env(),
        }
        if control_plane:
            env.update({
                "CONTROL_PLANE": "true",
                "CERTIFICATE_KEY": pulumi.Output.secret(token_lines[2]),
                "ADVERTISE_ADDRESS": worker.private_ip,
            })
        if self._args.hosts.install is not None:
            env["KUBERNETES_VERSION"] = pulumi.Output.secret(token_lines[1])
        join = self._run(
            worker,
            f"{worker.name}-join",
            Step(
                script=JOIN_SCRIPTS if self._args.hosts.install is not None
                else "kubeadm-join.sh",
                env=env,
                triggers=triggers,
            ),
            [*prepared, token, drain],
        )
        return join
