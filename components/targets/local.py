"""The local target: a Docker network with a fixed subnet and one kind-node container per node.

Each node container is run the way kind runs one (kubernetes-sigs/kind,
pkg/cluster/internal/providers/docker/provision.go): privileged, seccomp and AppArmor
unconfined, tmpfs on /tmp and /run, an anonymous volume on /var, /lib/modules read-only (and
/dev/mapper where the engine's storage needs it: components/targets/docker_host.py), a private
cgroup namespace, restart on-failure:1, no docker-init, and a TTY so that systemd's
boot messages reach `docker logs`. The kind image ships containerd, kubeadm, kubelet and the
preloaded images, so no install step runs; the kubeadm steps reach a node with `docker exec -i`.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.config import (
    PROJECT,
    LocalConfig,
    StackConfig,
    control_plane_ip,
    load_balancer_ip,
    node_ip,
)
from components.kubeadm import ADMIN_KUBECONFIG, ClusterHosts, ClusterNode
from components.targets.docker_host import DockerHost
from components.targets.local_load_balancer import Backend, LoadBalancer, LoadBalancerArgs
from components.transport import DockerExecTransport

LOOPBACK = "127.0.0.1"
LABEL_CLUSTER = f"{PROJECT}.cluster"
LABEL_ROLE = f"{PROJECT}.role"
# kind's own readiness pattern (pkg/cluster/internal/providers/common/cgroups.go): systemd
# reached multi-user, or, on a cgroup v1 host, the image's entrypoint has set up cgroups.
SYSTEMD_READY_PATTERN = "Reached target .*Multi-User System|detected cgroup v1"
SYSTEMD_WAIT_SECONDS = 60

# Fields this program never sets whose value the engine reports back differently across
# Docker versions and daemon.json settings (a network mode of "default" vs "bridge", log
# options from daemon.json). After a refresh they would otherwise read as a change, and every
# container field forces replacement: a lost cluster for nothing.
CONTAINER_IGNORE_CHANGES = ["networkMode", "logDriver", "logOpts"]


def systemd_wait_command(container: str, seconds: int = SYSTEMD_WAIT_SECONDS) -> str:
    """A POSIX sh command that returns once `container`'s systemd is up, as kind waits.

    It polls `docker logs` for kind's pattern, fails at once with the last log lines if the
    container stopped, and fails after `seconds` with one line naming the container.
    """
    name = shlex.quote(container)
    pattern = shlex.quote(SYSTEMD_READY_PATTERN)
    # `date +%s` is whole seconds: `-gt` (not `-ge`) so it never gives up before `seconds`.
    return (
        f"deadline=$(( $(date +%s) + {seconds} )); "
        f"until docker logs {name} 2>&1 | grep -Eq {pattern}; do "
        f"running=$(docker inspect -f '{{{{.State.Running}}}}' {name} 2>/dev/null); "
        'if [ "$running" != true ]; then '
        f"docker logs --tail 20 {name} >&2 2>&1; "
        f"echo \"error: node container {container} is not running (its last log lines are "
        f'above)" >&2; exit 1; fi; '
        f'if [ "$(date +%s)" -gt "$deadline" ]; then '
        f'echo "error: node container {container}: systemd did not reach the multi-user '
        f'target within {seconds}s (see: docker logs {container})" >&2; exit 1; fi; '
        "sleep 1; done"
    )


@dataclass(frozen=True)
class LocalHostsArgs:
    config: StackConfig
    docker_host: DockerHost = field(default_factory=lambda: DockerHost("overlay2"))


class LocalHosts(pulumi.ComponentResource):
    """Kind-node containers on a Docker network with a fixed subnet: the local ClusterHosts."""

    cluster_hosts: ClusterHosts  # what the kubeadm steps and the workloads use
    network_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: LocalHostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kubeadm-cluster:local:LocalHosts", name, None, opts)
        config = args.config
        if config.local is None:
            raise ValueError("LocalHosts needs a stack with target: local")
        local: LocalConfig = config.local
        child = pulumi.ResourceOptions(parent=self)

        image = docker.RemoteImage(
            f"{name}-node-image",
            name=local.node_image,
            keep_locally=True,
            opts=child,
        )
        network = docker.Network(
            f"{name}-network",
            name=config.cluster_name,
            driver="bridge",
            ipam_configs=[
                docker.NetworkIpamConfigArgs(
                    subnet=local.network_cidr, gateway=gateway_ip(local.network_cidr)
                )
            ],
            labels=[docker.NetworkLabelArgs(label=LABEL_CLUSTER, value=config.cluster_name)],
            # A fixed name and subnet: a replacement cannot exist next to the old network.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.network_name = network.name

        control_planes = [Backend(node, control_plane_ip(local.network_cidr, index))
                          for index, node in enumerate(config.control_plane_names)]
        workers = [Backend(node, node_ip(local.network_cidr, 1 + index))
                   for index, node in enumerate(config.worker_names)]
        load_balancer = LoadBalancer(f"{name}-load-balancer", LoadBalancerArgs(
            name=f"{config.cluster_name}-lb",
            image=local.load_balancer_image,
            network_name=network.name,
            ip=load_balancer_ip(local.network_cidr),
            api_server_port=local.api_server_port,
            node_ports=list(local.node_ports),
            control_planes=control_planes,
            nodes=[*control_planes, *workers],
            labels={LABEL_CLUSTER: config.cluster_name, LABEL_ROLE: "load-balancer"},
        ), opts=child)
        volumes = node_volumes(args.docker_host)
        nodes = [
            self._node(config, node, image, network, volumes, load_balancer,
                       role="control-plane" if index < len(control_planes) else "worker")
            for index, node in enumerate([*control_planes, *workers])
        ]
        self.cluster_hosts = ClusterHosts(
            master=nodes[0],
            control_planes=nodes[1:len(control_planes)],
            workers=nodes[len(control_planes):],
            api_endpoint=f"{LOOPBACK}:{local.api_server_port}",
            # Every node and kubeconfig reaches the API through the load balancer, from init on.
            control_plane_endpoint=load_balancer.endpoint,
            app_host=LOOPBACK,
            cert_sans=[LOOPBACK, "localhost"],
            install=None,  # the kind image ships containerd, kubeadm and kubelet
            profile="kind",
            # The image's bundled pod network (/kind/manifests/default-cni.yaml: kindnet in kind's
            # images, flannel in toolchain/node-image's): it is already in the image, so it works
            # offline, and it is the CNI the image is released and tested with. EC2 hosts have
            # no such manifest and use flannel, fetched at init.
            cni="kind",
            # The image's /kind/manifests/default-storage.yaml, as kind applies it: the
            # StorageClass `standard` (local-path-provisioner in kind's and toolchain's images).
            default_storage="kind",
        )

        self.register_outputs(
            {
                "apiEndpoint": self.cluster_hosts.api_endpoint,
                "networkName": self.network_name,
            }
        )

    def _node(
        self,
        config: StackConfig,
        node: Backend,
        image: docker.RemoteImage,
        network: docker.Network,
        volumes: list[docker.ContainerVolumeArgs],
        load_balancer: LoadBalancer,
        role: str,
    ) -> ClusterNode:
        name = node.name
        container = docker.Container(
            name,
            name=name,
            hostname=name,
            image=image.image_id,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=network.name, ipv4_address=node.ip)
            ],
            privileged=True,
            # Docker adds label=disable to a privileged container's options unless a label
            # option is given; declaring it keeps the read-back equal to the inputs, so a
            # refresh does not see a change (and every container field forces replacement).
            security_opts=["seccomp=unconfined", "apparmor=unconfined", "label=disable"],
            tmpfs={"/tmp": "", "/run": ""},
            volumes=volumes,
            cgroupns_mode="private",
            restart="on-failure",
            max_retry_count=1,
            init=False,
            # As kind does (--tty): without a TTY systemd prints nothing to `docker logs`,
            # and the systemd wait below would never see its line.
            tty=True,
            labels=[
                docker.ContainerLabelArgs(label=LABEL_CLUSTER, value=config.cluster_name),
                docker.ContainerLabelArgs(label=LABEL_ROLE, value=role),
            ],
            envs=[f"KUBECONFIG={ADMIN_KUBECONFIG}"] if role == "control-plane" else None,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Fixed name and IP: the old container must go first.
                delete_before_replace=True,
                ignore_changes=CONTAINER_IGNORE_CHANGES,
            ),
        )
        systemd = command.local.Command(
            f"{name}-systemd",
            create=systemd_wait_command(name),
            triggers=[container.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[container]),
        )
        return ClusterNode(
            name=name,
            private_ip=node.ip,
            transport=DockerExecTransport(name),
            # The load balancer answers before kubeadm runs: every kubeconfig names it.
            depends_on=[systemd, load_balancer.ready],
            identity=container.id,
        )


def node_volumes(host: DockerHost) -> list[docker.ContainerVolumeArgs]:
    """An anonymous volume on /var, the host's /lib/modules read-only and, on a host whose
    storage needs it (DockerHost.needs_dev_mapper), /dev/mapper, as kind mounts them."""
    volumes = [
        docker.ContainerVolumeArgs(container_path="/var"),
        docker.ContainerVolumeArgs(
            host_path="/lib/modules", container_path="/lib/modules", read_only=True
        ),
    ]
    if host.needs_dev_mapper:
        volumes.append(
            docker.ContainerVolumeArgs(host_path="/dev/mapper", container_path="/dev/mapper")
        )
    return volumes


def gateway_ip(cidr: str) -> str:
    """The network's first host address: the bridge's gateway (node addresses start at +10)."""
    return str(next(ipaddress.ip_network(cidr).hosts()))
