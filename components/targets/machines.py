"""Machines the user already has, reached over SSH, as the kubeadm cluster's hosts.

    config (controlPlaneHosts, workerHosts) -> per machine: SSH with its pinned host key
    -> `<node>-machine` step (proves SSH and passwordless sudo; its delete resets the machine)
    -> ClusterNode per machine (the same install, init, join, drain steps as on EC2)

Nothing is created or destroyed but what runs on the machines: `pulumi destroy` (or removing a
worker from workerHosts) drains the node, then resets kubeadm on the machine and removes what
the cluster left there (CNI config, pod network links, kube-proxy's and flannel's iptables
chains). Installed packages stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.config import MachineHost, StackConfig
from components.kubeadm import ClusterHosts, ClusterNode, NodeInstall
from components.scripts import script_command
from components.targets.aws_endpoint_record import gated
from components.targets.ssh import SshLogin, known_hosts_line
from components.transport import CommandResource, SshTransport, Step


class ControlPlaneGrowthRefused(pulumi.RunError):
    """Control-plane hosts added to a cluster initialised without an endpoint (one line)."""


def growth_refusal(cluster: str, recorded: dict[str, Any] | None, added: int) -> str | None:
    """Why `added` control-plane hosts cannot join the cluster the record describes, or None.

    kubeadm "does not support turning a single control plane cluster created without
    --control-plane-endpoint into a highly available cluster" (kubeadm's "Creating a cluster
    with kubeadm"): every kubeconfig it made names the first host.
    """
    if not added or recorded is None or recorded.get("endpoint"):
        return None
    return (f"{cluster} was initialised without apiEndpoint, so every kubeconfig in it names "
            "the first control-plane host and kubeadm cannot add another: keep one host in "
            "controlPlaneHosts, or rebuild the cluster with apiEndpoint set (pulumi destroy, "
            "then pulumi up; README, High availability)")


@dataclass(frozen=True)
class MachineHostsArgs:
    config: StackConfig


def reset_command() -> str:
    """Return a machine to how it was before it joined: `reset-node.sh` (kubeadm reset, then
    what reset leaves: CNI config, IP allocations, pod network links, the cluster's iptables
    chains; see reset.sh). Its text is inlined because a delete must not read stdin
    (components/transport.py). The machine's own firewall rules and its packages stay.
    """
    return script_command("reset-node.sh")


# Run on create: the login works, sudo needs no password, and which machine answered.
MACHINE_CHECK = "echo \"$(hostname) $(uname -sr)\""


def machine_identity(host: MachineHost) -> str:
    """What makes a machine a new node: its private IP and its host key (a reinstalled
    machine has a new one). The SSH address, port and user are only how it is reached."""
    return f"{host.private_ip} {host.host_key}"


class MachineHosts(pulumi.ComponentResource):
    """The control-plane machines and the worker machines of target `machines`, as ClusterNodes.

    Every SSH connection pins the host key from config (`hostKey`): a machine presenting
    another key is refused by pulumi-command ("ssh: handshake failed: ssh: host key mismatch").
    """

    cluster_hosts: ClusterHosts
    ssh_commands: dict[str, str]
    ssh_known_hosts: str

    def __init__(
        self, name: str, args: MachineHostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kubeadm-cluster:machines:MachineHosts", name, None, opts)
        self._machine_steps: list[CommandResource] = []
        cfg = args.config.machines
        if cfg is None:
            raise ValueError("MachineHosts needs a stack with target machines (config.machines "
                             "is None)")
        private_key = (
            pulumi.Output.secret(cfg.ssh_private_key) if cfg.ssh_private_key is not None else None
        )
        master = self._node(cfg.control_plane, private_key)
        # The endpoint the cluster was initialised with, kept in the state (a Stash replaced
        # with the first host's machine step: a new first host is a new cluster). Extra
        # control-plane hosts on a cluster made without one are refused before any step runs.
        record = pulumi.Stash(
            f"{args.config.cluster_name}-api-endpoint",
            input={"endpoint": cfg.api_endpoint if cfg.api_endpoint_given else None},
            opts=pulumi.ResourceOptions(parent=self, replace_with=[self._machine_steps[0]]))
        cluster_name = args.config.cluster_name
        added = len(cfg.control_planes)

        def check(recorded: Any) -> None:
            reason = growth_refusal(cluster_name, recorded, added)
            if reason is not None:
                raise ControlPlaneGrowthRefused(reason)

        checked = record.output.apply(check)
        control_planes = [self._node(host, private_key, gate=checked)
                          for host in cfg.control_planes]
        workers = [self._node(host, private_key) for host in cfg.workers]

        login = SshLogin(cfg.ssh_user, None, f"{args.config.cluster_name}-known_hosts")
        hosts = [cfg.control_plane, *cfg.control_planes, *cfg.workers]
        self.ssh_commands = {
            host.name: login.command(host.name, host.address, port=host.port, user=host.user)
            for host in hosts
        }
        self.ssh_known_hosts = "".join(
            f"{known_hosts_line(host.name, host.host_key)}\n" for host in hosts
        )
        endpoint_host = cfg.api_endpoint.rsplit(":", 1)[0]
        self.cluster_hosts = ClusterHosts(
            master=master,
            control_planes=control_planes,
            workers=workers,
            api_endpoint=cfg.api_endpoint,
            # A given apiEndpoint is kubeadm's controlPlaneEndpoint from init on, so the control
            # plane can grow later; without one the kubeconfigs name the first host, as before.
            control_plane_endpoint=cfg.api_endpoint if cfg.api_endpoint_given else None,
            app_host=cfg.control_plane.address,
            cert_sans=[endpoint_host, cfg.control_plane.address,
                       *(host.address for host in cfg.control_planes)],
            install=NodeInstall(package_source=cfg.package_source, login_user=cfg.ssh_user),
            profile="host",
            cni="flannel",
        )
        self.register_outputs({
            "apiEndpoint": cfg.api_endpoint,
            "sshCommands": self.ssh_commands,
            "sshKnownHosts": self.ssh_known_hosts,
        })

    def _node(self, host: MachineHost, private_key: pulumi.Output[str] | None,
              gate: pulumi.Output[None] | None = None) -> ClusterNode:
        """The machine's ClusterNode; with `gate`, its first step waits for that check (a
        refused check declares nothing on the machine)."""
        transport = SshTransport(
            host=host.address, port=host.port, user=host.user, private_key=private_key,
            host_key=host.host_key,
        )
        identity = machine_identity(host)
        # The kubeadm steps depend on this one, so it is deleted after all of them: on destroy
        # or scale-in the node is drained first, then the machine is reset.
        machine = transport.run(
            f"{host.name}-machine",
            Step(inline=MACHINE_CHECK, delete=reset_command(),
                 triggers=[identity if gate is None else gated(gate, identity)]),
            pulumi.ResourceOptions(parent=self),
        )
        self._machine_steps.append(machine)
        return ClusterNode(
            name=host.name,
            private_ip=host.private_ip,
            transport=transport,
            depends_on=[machine],
            identity=identity,
        )

