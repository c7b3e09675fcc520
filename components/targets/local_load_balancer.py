"""The local target's load balancer: one HAProxy container in front of every node.

kubeadm's `controlPlaneEndpoint` must exist from `kubeadm init` on, or a control plane cannot
grow past one node (kubeadm's HA guide: "the load balancer ... must exist before kubeadm init").
kind runs such a container for clusters with several control-plane nodes; this target runs one
for every cluster, so going from 1 to 3 control-plane nodes needs no rebuild. It also publishes
the apps' NodePorts, spread over every node, so an app stays reachable when one node stops.

- `:6443` on the cluster network (the endpoint kubeadm writes into every kubeconfig) and
  127.0.0.1:`apiServerPort` on the host: the control-plane nodes' API servers, health-checked
  with `GET /readyz` over TLS.
- 127.0.0.1:`localNodePorts`: the same port on every node, health-checked by TCP connect.

The configuration is written into the running container and HAProxy reloads it (SIGUSR2, its
master-worker mode): adding or removing a node never replaces the container, so the API and the
apps stay reachable while the cluster changes shape.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.kubeadm import API_SERVER_PORT

LOOPBACK = "127.0.0.1"
# Where the image reads its configuration (Docker's official haproxy image and the toolchain's).
CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg"
# A dead node's connect attempt gives up after CONNECT_TIMEOUT and the request is retried on
# another node (`option redispatch`); a node failing FALL checks INTERVAL apart is taken out.
CONNECT_TIMEOUT = "1s"
CHECK_INTERVAL = "1s"
CHECK_FALL = 2
CHECK_RISE = 2
MAX_CONNECTIONS = 4096


@dataclass(frozen=True)
class Backend:
    """A node behind the load balancer: its name and its address on the cluster network."""

    name: str
    ip: str


def haproxy_config(control_planes: Sequence[Backend], nodes: Sequence[Backend],
                   node_ports: Sequence[int]) -> str:
    """HAProxy's configuration: the API on API_SERVER_PORT to `control_planes`, and each of
    `node_ports` to the same port on every one of `nodes`. TCP passthrough: TLS ends at the API
    servers, whose certificates name the load balancer's address (kubeadm adds the endpoint)."""
    lines = [
        "# Written by the program (components/targets/local_load_balancer.py).",
        "global",
        # HAProxy asks for about 2 file descriptors per connection; a non-root HAProxy cannot
        # raise its limit above the container's (20000 on some engines), so stay well below.
        f"  maxconn {MAX_CONNECTIONS}",
        "defaults",
        "  mode tcp",
        "  option redispatch",
        "  retries 3",
        f"  timeout connect {CONNECT_TIMEOUT}",
        "  timeout client 1h",
        "  timeout server 1h",
        f"  default-server inter {CHECK_INTERVAL} fall {CHECK_FALL} rise {CHECK_RISE}",
        "frontend kube-apiserver",
        f"  bind *:{API_SERVER_PORT}",
        "  default_backend kube-apiservers",
        "backend kube-apiservers",
        "  option httpchk GET /readyz",
        "  http-check expect status 200",
        *(f"  server {b.name} {b.ip}:{API_SERVER_PORT} check check-ssl verify none"
          for b in control_planes),
    ]
    for port in node_ports:
        lines += [
            f"frontend node-port-{port}",
            f"  bind *:{port}",
            f"  default_backend node-port-{port}",
            f"backend node-port-{port}",
            *(f"  server {b.name} {b.ip}:{port} check" for b in nodes),
        ]
    return "\n".join(lines) + "\n"


def reload_command(container: str) -> str:
    """Write the configuration from stdin into `container`, check it, and reload HAProxy.

    A configuration HAProxy refuses is not installed: the step fails with HAProxy's own
    message and the running one keeps serving.
    """
    name = shlex.quote(container)
    inner = (f"cat > {CONFIG_PATH}.new && haproxy -c -q -f {CONFIG_PATH}.new && "
             f"mv {CONFIG_PATH}.new {CONFIG_PATH} && kill -USR2 1")
    return (f"docker exec -i -u 0 {name} sh -c {shlex.quote(inner)} || "
            f"{{ echo \"error: the load balancer {container} refused its new configuration "
            f"(see above); it keeps the one it had\" >&2; exit 1; }}")


@dataclass(frozen=True)
class LoadBalancerArgs:
    name: str  # the container's name
    image: str
    network_name: pulumi.Input[str]
    ip: str
    api_server_port: int  # published on 127.0.0.1
    node_ports: Sequence[int]  # published on 127.0.0.1, each as itself
    control_planes: Sequence[Backend]
    nodes: Sequence[Backend]
    labels: dict[str, str]


class LoadBalancer(pulumi.ComponentResource):
    """The HAProxy container and the step that keeps its configuration current.

    `ready` is what must exist before anything reaches the API through the endpoint (kubeadm
    init, every join).
    """

    endpoint: str  # ip:6443 on the cluster network: kubeadm's controlPlaneEndpoint
    ready: command.local.Command

    def __init__(self, name: str, args: LoadBalancerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:local:LoadBalancer", name, None, opts)
        config = haproxy_config(args.control_planes, args.nodes, args.node_ports)
        image = docker.RemoteImage(f"{name}-image", name=args.image, keep_locally=True,
                                   opts=pulumi.ResourceOptions(parent=self))
        container = docker.Container(
            args.name,
            name=args.name,
            hostname=args.name,
            image=image.image_id,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(
                name=args.network_name, ipv4_address=args.ip)],
            ports=[
                docker.ContainerPortArgs(internal=API_SERVER_PORT, external=args.api_server_port,
                                         ip=LOOPBACK, protocol="tcp"),
                *(docker.ContainerPortArgs(internal=port, external=port, ip=LOOPBACK,
                                           protocol="tcp") for port in args.node_ports),
            ],
            # The configuration it starts with; later ones are written by the step below, so
            # the container (its address, its published ports) outlives every change of nodes.
            uploads=[docker.ContainerUploadArgs(file=CONFIG_PATH, content=config)],
            restart="unless-stopped",
            labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in args.labels.items()],
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,  # fixed name, address and host ports
                ignore_changes=["uploads", "networkMode", "logDriver", "logOpts"],
            ),
        )
        self.ready = command.local.Command(
            f"{name}-config",
            create=reload_command(args.name),
            stdin=config,  # a new configuration reruns it
            triggers=[container.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[container]),
        )
        self.endpoint = f"{args.ip}:{API_SERVER_PORT}"
        self.register_outputs({"endpoint": self.endpoint})
