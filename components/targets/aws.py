"""EC2 hosts for the kubeadm cluster: network, firewall, key pair, instances with fixed IPs.

    VPC -> public subnet (IGW route) [-> private subnet (NAT route) when privateWorkers]
    security group: SSH, API and NodePorts from adminCidrs only; all traffic node to node
    key pair (given or generated) -> master (Elastic IP) + workers -> ClusterNode per instance
    node IAM role -> instance profile on every node (the EBS CSI driver, this cluster's volumes)
    an SSH host key per node, made before boot: cloud-init installs it, every connection pins it
    the API endpoint the cluster was made with, recorded (aws_endpoint_record.py)

With apiLoadBalancer (always with several control-plane nodes):

    a public subnet per further zone (IGW route) -> control-plane node i in zone i mod zones
    two network load balancers over the zones' subnets (aws_api_load_balancer.py): an
    internet-facing one for adminCidrs (the exported kubeconfig's server) and an internal one
    for the nodes (kubeadm's controlPlaneEndpoint), each with every control-plane node as target

Every per-node input comes from that node's own index and the config, never from the worker
or control-plane count, so scaling out leaves existing instances untouched; the master and the
workers keep the subnet and address they have without the load balancers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

from components.config import (
    NODE_PORT_MAX,
    NODE_PORT_MIN,
    Architecture,
    AwsConfig,
    StackConfig,
    node_ip,
)
from components.kubeadm import API_SERVER_PORT, ClusterHosts, ClusterNode, NodeInstall
from components.targets.aws_api_load_balancer import ApiLoadBalancer, ApiLoadBalancerArgs, ApiTarget
from components.targets.aws_endpoint_record import (
    ELASTIC_IP,
    LOAD_BALANCER,
    endpoint_record,
    gated,
    record_endpoint,
)
from components.targets.aws_node_role import NodeRole, build_node_role
from components.targets.ssh import SshLogin, known_hosts_line
from components.transport import PulumiHostTransport, SshTransport, Step

CANONICAL_OWNER_ID = "099720109477"
UBUNTU_AMI_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"
UBUNTU_ARCH: dict[Architecture, str] = {"x86_64": "amd64", "arm64": "arm64"}
SSH_PORT = 22
# How long a new instance's sshd may take to answer (wait-for-ssh.sh): boot, cloud-init, sshd.
SSH_WAIT_SECONDS = 600
ANYWHERE = "0.0.0.0/0"
CLUSTER_TAG = "kubeadm-cluster"
IMDS_HOP_LIMIT = 2  # 1 would stop pods (one hop further than the host) reaching IMDSv2

Role = Literal["master", "control-plane", "worker"]


@dataclass(frozen=True)
class AwsHostsArgs:
    config: StackConfig


def tags(cluster: str, name: str, **extra: str) -> dict[str, str]:
    return {"Name": name, CLUSTER_TAG: cluster, **extra}


def cidr_label(cidr: str) -> str:
    """A resource-name-safe form of a CIDR, so a rule's name follows its CIDR, not its position."""
    return cidr.replace(".", "-").replace("/", "-")


# ---------------------------------------------------------------------------------------------
# Network


@dataclass(frozen=True)
class Network:
    vpc: aws.ec2.Vpc
    gateway: aws.ec2.InternetGateway
    public_subnet: aws.ec2.Subnet
    private_subnet: aws.ec2.Subnet | None
    # What must exist before a node on that subnet can reach (and be reached from) the internet.
    public_routes: Sequence[pulumi.Resource]
    private_routes: Sequence[pulumi.Resource]

    @property
    def worker_subnet(self) -> aws.ec2.Subnet:
        """The private subnet when there is one (privateWorkers), else the public one."""
        return self.private_subnet or self.public_subnet

    @property
    def worker_routes(self) -> Sequence[pulumi.Resource]:
        return self.private_routes if self.private_subnet is not None else self.public_routes


class ZoneLookupError(pulumi.RunError):
    """The region offers fewer available zones than the control-plane zones need."""


def ordered_zones(names: Sequence[str], first: str | None, count: int, region: str) -> list[str]:
    """`count` zones from the region's available ones (`names`, as AWS lists them): `first`
    (availabilityZone) when set, then the others in order. ZoneLookupError (one line) when
    the region offers fewer than `count`."""
    ordered = [first, *(n for n in names if n != first)] if first else list(names)
    if len(ordered) < count:
        raise ZoneLookupError(
            f"region {region} offers {len(names)} available zones ({', '.join(names)}); the "
            f"API load balancers need {count}: list at most {len(ordered)} in controlPlaneZones, "
            "with one subnet fewer in controlPlaneSubnetCidrs (README, High availability)")
    return ordered[:count]


def availability_zones(cfg: AwsConfig, parent: pulumi.Resource) -> list[pulumi.Input[str]]:
    """The zone of each control-plane zone subnet, in order (one zone without the load
    balancers): controlPlaneZones when given, else availabilityZone and, when more are
    needed, the region's available zones looked up at deploy time (aws.getAvailabilityZones:
    DescribeAvailabilityZones, which leaves out Local and Wavelength Zones by default)."""
    if cfg.control_plane_zones:
        return list(cfg.control_plane_zones)
    if cfg.availability_zone is not None and cfg.zone_count == 1:
        return [cfg.availability_zone]
    lookup = aws.get_availability_zones_output(
        state="available", opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    if cfg.availability_zone is None and cfg.zone_count == 1:
        return [lookup.names[0]]  # as every stack made without the load balancers has it
    zones = lookup.names.apply(partial(ordered_zones, first=cfg.availability_zone,
                                       count=cfg.zone_count, region=cfg.region))
    return [cfg.availability_zone or zones[0],
            *(zones[index] for index in range(1, cfg.zone_count))]


def build_network(
    cluster: str, cfg: AwsConfig, zone: pulumi.Input[str], parent: pulumi.Resource
) -> Network:
    """The VPC, its internet gateway, the public subnet (in `zone`, the first control-plane
    zone) and, with privateWorkers, the private subnet behind a NAT gateway."""
    opts = pulumi.ResourceOptions(parent=parent)
    vpc = aws.ec2.Vpc(
        f"{cluster}-vpc",
        cidr_block=cfg.vpc_cidr,
        enable_dns_support=True,
        enable_dns_hostnames=True,  # gives the Elastic IP a public DNS name for the API cert
        tags=tags(cluster, f"{cluster}-vpc"),
        opts=opts,
    )
    gateway = aws.ec2.InternetGateway(
        f"{cluster}-igw", vpc_id=vpc.id, tags=tags(cluster, f"{cluster}-igw"), opts=opts
    )
    public_subnet, public_association = routed_subnet(
        cluster, "public", vpc.id, cfg.subnet_cidr, zone,
        aws.ec2.RouteTableRouteArgs(cidr_block=ANYWHERE, gateway_id=gateway.id), opts,
    )
    if not cfg.private_workers:
        return Network(vpc, gateway, public_subnet, None, [public_association], [])

    # Private workers still need outbound access for packages: a NAT gateway in the public subnet.
    nat_ip = aws.ec2.Eip(
        f"{cluster}-nat", domain="vpc", tags=tags(cluster, f"{cluster}-nat"), opts=opts
    )
    nat = aws.ec2.NatGateway(
        f"{cluster}-nat",
        subnet_id=public_subnet.id,
        allocation_id=nat_ip.allocation_id,
        tags=tags(cluster, f"{cluster}-nat"),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[public_association]),
    )
    private_subnet, private_association = routed_subnet(
        cluster, "private", vpc.id, cfg.private_subnet_cidr, zone,
        aws.ec2.RouteTableRouteArgs(cidr_block=ANYWHERE, nat_gateway_id=nat.id), opts,
    )
    return Network(
        vpc, gateway, public_subnet, private_subnet, [public_association],
        [private_association, nat],
    )


def routed_subnet(
    cluster: str,
    kind: str,
    vpc_id: pulumi.Input[str],
    cidr: str,
    zone: pulumi.Input[str],
    default_route: aws.ec2.RouteTableRouteArgs,
    opts: pulumi.ResourceOptions,
) -> tuple[aws.ec2.Subnet, aws.ec2.RouteTableAssociation]:
    """A subnet `<cluster>-<kind>` whose default route is `default_route`; public ones
    (kind public or public-<zone index>) map public IPs on launch."""
    name = f"{cluster}-{kind}"
    subnet = aws.ec2.Subnet(
        name,
        vpc_id=vpc_id,
        cidr_block=cidr,
        availability_zone=zone,
        map_public_ip_on_launch=kind.startswith("public"),
        tags=tags(cluster, name),
        opts=opts,
    )
    table = aws.ec2.RouteTable(
        name, vpc_id=vpc_id, routes=[default_route], tags=tags(cluster, name), opts=opts
    )
    association = aws.ec2.RouteTableAssociation(
        name, subnet_id=subnet.id, route_table_id=table.id, opts=opts
    )
    return subnet, association


# ---------------------------------------------------------------------------------------------
# Security group


@dataclass(frozen=True)
class Firewall:
    group: aws.ec2.SecurityGroup
    rules: Sequence[pulumi.Resource]


def build_firewall(
    cluster: str, cfg: AwsConfig, vpc: aws.ec2.Vpc, parent: pulumi.Resource
) -> Firewall:
    """One group for every node. Rules are separate resources (the group has none inline), so
    adding an admin CIDR adds rules without touching the group or any instance."""
    opts = pulumi.ResourceOptions(parent=parent)
    group = aws.ec2.SecurityGroup(
        f"{cluster}-nodes",
        vpc_id=vpc.id,
        description="kubeadm cluster nodes",
        tags=tags(cluster, f"{cluster}-nodes"),
        opts=opts,
    )
    rules: list[pulumi.Resource] = []
    admin_ports = (
        ("ssh", SSH_PORT, SSH_PORT, "SSH"),
        ("api", API_SERVER_PORT, API_SERVER_PORT, "Kubernetes API server"),
        ("nodeports", NODE_PORT_MIN, NODE_PORT_MAX, "Kubernetes NodePort services"),
    )
    for cidr in cfg.admin_cidrs:
        for label, first, last, description in admin_ports:
            rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{cluster}-{label}-{cidr_label(cidr)}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=first,
                to_port=last,
                cidr_ipv4=cidr,
                description=f"{description} from admin network {cidr}",
                opts=opts,
            ))
    rules.append(aws.vpc.SecurityGroupIngressRule(
        f"{cluster}-node-to-node",
        security_group_id=group.id,
        ip_protocol="-1",
        referenced_security_group_id=group.id,
        description="All traffic between cluster nodes (kubelet, etcd, flannel VXLAN)",
        opts=opts,
    ))
    rules.append(aws.vpc.SecurityGroupEgressRule(
        f"{cluster}-egress",
        security_group_id=group.id,
        ip_protocol="-1",
        cidr_ipv4=ANYWHERE,
        description="Outbound: packages, images, AWS APIs",
        opts=opts,
    ))
    return Firewall(group, rules)


# ---------------------------------------------------------------------------------------------
# SSH key


@dataclass(frozen=True)
class NodeKey:
    key_name: pulumi.Output[str]
    # What the SSH transport uses; None means the SSH agent of whoever runs `pulumi up`.
    private_key: pulumi.Output[str] | None
    # The private key to export: only one this program generated (a user's key stays theirs).
    generated_private_key: pulumi.Output[str] | None


def build_key(cluster: str, cfg: AwsConfig, parent: pulumi.Resource) -> NodeKey:
    opts = pulumi.ResourceOptions(parent=parent)
    if cfg.ssh_public_key is not None:
        pair = aws.ec2.KeyPair(
            f"{cluster}-key", public_key=cfg.ssh_public_key,
            tags=tags(cluster, f"{cluster}-key"), opts=opts,
        )
        private = (
            pulumi.Output.secret(cfg.ssh_private_key) if cfg.ssh_private_key is not None else None
        )
        return NodeKey(pair.key_name, private, None)

    key = tls.PrivateKey(f"{cluster}-ssh", algorithm="ED25519", opts=opts)
    pair = aws.ec2.KeyPair(
        f"{cluster}-key", public_key=key.public_key_openssh,
        tags=tags(cluster, f"{cluster}-key"), opts=opts,
    )
    private = pulumi.Output.secret(key.private_key_openssh)
    return NodeKey(pair.key_name, private, private)


# ---------------------------------------------------------------------------------------------
# SSH host keys


@dataclass(frozen=True)
class HostKey:
    """A node's SSH host key, made before the node boots so no connection trusts on first use."""

    # "ssh-ed25519 AAAA...": what pulumi-command's `host_key` and a known_hosts line expect.
    public_key: pulumi.Output[str]
    # Secret: cloud-config that installs the key pair as the node's only SSH host key.
    user_data: pulumi.Output[str]


def host_key_cloud_config(private_key_openssh: str, public_key_openssh: str) -> str:
    """cloud-config (cc_ssh) replacing the image's host keys with this one ED25519 key.

    ssh_genkeytypes names only ed25519, which ssh_keys already provides, so nothing is
    generated and the pinned key is the node's only identity (cloud-init's schema refuses an
    empty list). Values are JSON strings, which YAML reads as double-quoted scalars.
    """
    return (
        "#cloud-config\n"
        "ssh_deletekeys: true\n"
        "ssh_genkeytypes: [ed25519]\n"
        "ssh_keys:\n"
        f"  ed25519_private: {json.dumps(private_key_openssh)}\n"
        f"  ed25519_public: {json.dumps(public_key_openssh.strip())}\n"
    )


def build_host_key(node_name: str, parent: pulumi.Resource) -> HostKey:
    key = tls.PrivateKey(
        f"{node_name}-host-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=parent)
    )
    user_data = pulumi.Output.all(key.private_key_openssh, key.public_key_openssh).apply(
        lambda pair: host_key_cloud_config(pair[0], pair[1])
    )
    return HostKey(
        public_key=key.public_key_openssh.apply(str.strip),
        user_data=pulumi.Output.secret(user_data),
    )


# ---------------------------------------------------------------------------------------------
# Instances


def ubuntu_ami(arch: Architecture, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The newest Canonical Ubuntu 24.04 LTS image for `arch`, looked up at deploy time."""
    return aws.ec2.get_ami_output(
        most_recent=True,
        owners=[CANONICAL_OWNER_ID],
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name",
                                     values=[UBUNTU_AMI_NAME.format(arch=UBUNTU_ARCH[arch])]),
            aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=[arch]),
        ],
        opts=pulumi.InvokeOutputOptions(parent=parent),
    ).id


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    role: Role
    instance_type: str
    ami: pulumi.Input[str]
    subnet: aws.ec2.Subnet
    private_ip: str
    after: Sequence[pulumi.Resource]
    host_key: HostKey
    # False for private workers; None leaves it to the subnet (public: map on launch).
    public_ip: bool | None = None
    # An Output the instance waits for (the endpoint check): refused, it is never declared.
    gate: pulumi.Output[None] | None = None


def build_instance(
    cluster: str,
    cfg: AwsConfig,
    spec: InstanceSpec,
    firewall: Firewall,
    key: NodeKey,
    node_role: NodeRole,
    parent: pulumi.Resource,
) -> aws.ec2.Instance:
    subnet_id: pulumi.Input[str] = spec.subnet.id
    if spec.gate is not None:
        subnet_id = gated(spec.gate, subnet_id)
    return aws.ec2.Instance(
        spec.name,
        ami=spec.ami,
        instance_type=spec.instance_type,
        subnet_id=subnet_id,
        private_ip=spec.private_ip,
        associate_public_ip_address=spec.public_ip,
        vpc_security_group_ids=[firewall.group.id],
        key_name=key.key_name,
        iam_instance_profile=node_role.profile.name,
        user_data=spec.host_key.user_data,
        # cloud-init installs the host key on an instance's first boot only: a new key needs a
        # new instance, or every SSH step would (rightly) refuse the old one.
        user_data_replace_on_change=True,
        metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            http_put_response_hop_limit=IMDS_HOP_LIMIT,
        ),
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
            volume_type="gp3",
            volume_size=cfg.root_volume_size_gb,
            encrypted=True,
            delete_on_termination=True,
        ),
        # Flannel's VXLAN encapsulates pod traffic in node-to-node packets, so the default
        # source/destination check stays on.
        tags=tags(cluster, spec.name, role=spec.role),
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[*spec.after, *firewall.rules],
            # The AMI is looked up at deploy time: without this, the next Ubuntu release would
            # replace every running node on the following `pulumi up`. New nodes get the newest
            # image; move an existing node onto it with `pulumi up --replace <instance urn>`.
            ignore_changes=["ami"],
            # The private IP is fixed: a replacement created before the old instance is gone
            # would fail with the address still in use.
            delete_before_replace=True,
        ),
    )


# ---------------------------------------------------------------------------------------------
# The component


class AwsHosts(pulumi.ComponentResource):
    """The master (Elastic IP), the other control-plane nodes, and the workers on EC2, as
    kubeadm ClusterNodes; with apiLoadBalancer, the API load balancers in front of the
    control-plane nodes.

    Its `cluster_hosts` are what the kubeadm steps and the workloads use.
    """

    cluster_hosts: ClusterHosts
    # for exports
    master_public_ip: pulumi.Output[str]
    ssh_private_key: pulumi.Output[str] | None
    ssh_key_file: str | None
    ssh_known_hosts_file: str
    ssh_known_hosts: pulumi.Output[str]
    ssh_commands: dict[str, pulumi.Output[str]]
    # With apiLoadBalancer: for admins (adminCidrs) and for the nodes; else None.
    public_api: ApiLoadBalancer | None
    internal_api: ApiLoadBalancer | None

    def __init__(
        self, name: str, args: AwsHostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kubeadm-cluster:aws:AwsHosts", name, None, opts)
        config = args.config
        cfg = config.aws
        if cfg is None:
            raise ValueError("AwsHosts needs a stack with target aws (config.aws is None)")
        if config.control_plane_nodes > 1 and not cfg.api_load_balancer:
            raise ValueError("several control-plane nodes need cfg.api_load_balancer")
        cluster = config.cluster_name
        child = pulumi.ResourceOptions(parent=self)

        zones = availability_zones(cfg, self)
        network = build_network(cluster, cfg, zones[0], self)
        firewall = build_firewall(cluster, cfg, network.vpc, self)
        key = build_key(cluster, cfg, self)
        node_role = build_node_role(cluster, cfg.region, CLUSTER_TAG,
                                    tags(cluster, f"{cluster}-node-role"), self)
        amis: dict[Architecture, pulumi.Input[str]] = {}

        def ami(arch: Architecture) -> pulumi.Input[str]:
            if cfg.ami is not None:
                return cfg.ami
            if arch not in amis:
                amis[arch] = ubuntu_ami(arch, self)
            return amis[arch]

        master_ip = node_ip(cfg.subnet_cidr, 0)
        master_host_key = build_host_key(config.master_name, self)
        master = build_instance(cluster, cfg, InstanceSpec(
            name=config.master_name, role="master", instance_type=cfg.master_instance_type,
            ami=ami(cfg.master_architecture), subnet=network.public_subnet,
            private_ip=master_ip, after=network.public_routes, host_key=master_host_key,
        ), firewall, key, node_role, self)
        # An Elastic IP keeps the API endpoint (and the kubeconfig) valid across stop/start.
        eip = aws.ec2.Eip(
            f"{config.master_name}-eip", domain="vpc",
            tags=tags(cluster, f"{config.master_name}-eip"), opts=child,
        )
        eip_association = aws.ec2.EipAssociation(
            f"{config.master_name}-eip", allocation_id=eip.allocation_id, instance_id=master.id,
            opts=child,
        )
        self.master_public_ip = eip.public_ip
        master_wait = self._wait_for_ssh(
            config.master_name, PulumiHostTransport(), eip.public_ip, master.id,
            [master, eip_association],
        )
        master_ready: list[pulumi.Resource] = [master, eip_association, master_wait]
        master_ssh = self._transport(cfg, key, eip.public_ip, master_host_key.public_key)
        master_node = ClusterNode(
            name=config.master_name,
            private_ip=master_ip,
            transport=master_ssh,
            depends_on=master_ready,
            identity=master.id,
        )

        # What the cluster was made with, and the check that the config still asks for it:
        # refused, nothing of the load balancers' is declared and the run stops with one line.
        wanted = endpoint_record(
            LOAD_BALANCER, list(zip(zones, cfg.zone_subnet_cidrs, strict=True))
        ) if cfg.api_load_balancer else endpoint_record(ELASTIC_IP)
        checked = record_endpoint(f"{cluster}-api-endpoint", wanted, cluster, master, self)

        self.ssh_key_file = f"{cluster}-ssh.key" if key.generated_private_key is not None else None
        self.ssh_known_hosts_file = f"{cluster}-known_hosts"
        login = SshLogin(cfg.ssh_user, self.ssh_key_file, self.ssh_known_hosts_file)
        self.ssh_commands = {
            config.master_name: eip.public_ip.apply(login.to(config.master_name))
        }
        known_hosts = [
            master_host_key.public_key.apply(partial(known_hosts_line, config.master_name))
        ]

        control_planes: list[ClusterNode] = []
        self.public_api = self.internal_api = None
        if cfg.api_load_balancer:
            zone_subnets = self._zone_subnets(cluster, cfg, network, zones, checked)
            targets = [ApiTarget(config.master_name, master_ip, [master])]
            for index, node_name in enumerate(config.control_plane_names[1:], start=1):
                zone, _, private_ip = cfg.control_plane_placement(index)
                subnet, routes = zone_subnets[zone]
                host_key = build_host_key(node_name, self)
                instance = build_instance(cluster, cfg, InstanceSpec(
                    name=node_name, role="control-plane", instance_type=cfg.master_instance_type,
                    ami=ami(cfg.master_architecture), subnet=subnet, private_ip=private_ip,
                    after=routes, host_key=host_key, gate=checked,
                ), firewall, key, node_role, self)
                # In a public subnet like the master: its own public IP, no jump host.
                wait = self._wait_for_ssh(
                    node_name, PulumiHostTransport(), instance.public_ip, instance.id, [instance]
                )
                self.ssh_commands[node_name] = instance.public_ip.apply(login.to(node_name))
                known_hosts.append(host_key.public_key.apply(partial(known_hosts_line, node_name)))
                targets.append(ApiTarget(node_name, private_ip, [instance]))
                control_planes.append(ClusterNode(
                    name=node_name, private_ip=private_ip,
                    transport=self._transport(cfg, key, instance.public_ip, host_key.public_key),
                    depends_on=[instance, wait], identity=instance.id,
                ))
            self.public_api, self.internal_api = self._api_load_balancers(
                cluster, cfg, network, firewall, [subnet for subnet, _ in zone_subnets],
                targets, checked)

        workers: list[ClusterNode] = []
        for index in range(config.workers):
            worker_name = config.worker_name(index)
            worker_ip = node_ip(cfg.worker_subnet_cidr, index + 1)
            host_key = build_host_key(worker_name, self)
            worker = build_instance(cluster, cfg, InstanceSpec(
                name=worker_name, role="worker", instance_type=cfg.worker_instance_type,
                ami=ami(cfg.worker_architecture), subnet=network.worker_subnet,
                private_ip=worker_ip, after=network.worker_routes, host_key=host_key,
                public_ip=False if cfg.private_workers else None,
            ), firewall, key, node_role, self)
            if cfg.private_workers:
                # Reached through the master: the same key opens both hops.
                transport = self._transport(
                    cfg, key, worker_ip, host_key.public_key, jump=master_ssh
                )
                # Waited for from the master, where the dial to it starts.
                wait = self._wait_for_ssh(
                    worker_name, master_ssh, worker_ip, worker.id, [worker, *master_ready]
                )
                depends_on: list[pulumi.Resource] = [worker, *master_ready, wait]
                self.ssh_commands[worker_name] = eip.public_ip.apply(
                    login.to(worker_name, worker_ip, jump_name=config.master_name)
                )
            else:
                transport = self._transport(cfg, key, worker.public_ip, host_key.public_key)
                wait = self._wait_for_ssh(
                    worker_name, PulumiHostTransport(), worker.public_ip, worker.id, [worker]
                )
                depends_on = [worker, wait]
                self.ssh_commands[worker_name] = worker.public_ip.apply(login.to(worker_name))
            known_hosts.append(host_key.public_key.apply(partial(known_hosts_line, worker_name)))
            workers.append(ClusterNode(
                name=worker_name, private_ip=worker_ip, transport=transport,
                depends_on=depends_on, identity=worker.id,
            ))
        self.ssh_known_hosts = pulumi.Output.all(*known_hosts).apply(
            lambda lines: "".join(f"{line}\n" for line in lines)
        )

        eip_names: list[pulumi.Input[str]] = [eip.public_ip, eip.public_dns]
        if self.public_api is not None and self.internal_api is not None:
            # Every node, and kubeadm's own kubeconfigs, reach the API through the internal
            # load balancer; admins through the internet-facing one. The certificate names
            # both, and the Elastic IP as before (the master stays reachable on it).
            api_endpoint: pulumi.Input[str] = gated(checked, self.public_api.endpoint)
            control_plane_endpoint: pulumi.Input[str] | None = gated(
                checked, self.internal_api.endpoint)
            cert_sans: list[pulumi.Input[str]] = [gated(checked, san) for san in (
                *eip_names, self.public_api.dns_name, self.internal_api.dns_name)]
            endpoint_ready: list[pulumi.Resource] = self.internal_api.ready
        else:
            api_endpoint = pulumi.Output.concat(eip.public_ip, f":{API_SERVER_PORT}")
            control_plane_endpoint = None
            cert_sans = eip_names
            endpoint_ready = []
        self.cluster_hosts = ClusterHosts(
            master=master_node,
            control_planes=control_planes,
            workers=workers,
            api_endpoint=api_endpoint,
            control_plane_endpoint=control_plane_endpoint,
            endpoint_ready=endpoint_ready,
            app_host=eip.public_ip,
            cert_sans=cert_sans,
            install=NodeInstall(package_source=cfg.package_source, login_user=cfg.ssh_user),
            profile="host",
            cni="flannel",
        )
        self.ssh_private_key = key.generated_private_key
        self.register_outputs({
            "masterPublicIp": self.master_public_ip,
            "apiEndpoint": self.cluster_hosts.api_endpoint,
            "controlPlaneEndpoint": control_plane_endpoint,
            "sshCommands": self.ssh_commands,
            "sshKnownHosts": self.ssh_known_hosts,
            # Awaited here, so a refused endpoint stops the run even where nothing else
            # waits for the check (without the load balancers).
            "apiEndpointChecked": checked,
        })

    def _zone_subnets(
        self, cluster: str, cfg: AwsConfig, network: Network,
        zones: Sequence[pulumi.Input[str]], checked: pulumi.Output[None],
    ) -> list[tuple[aws.ec2.Subnet, Sequence[pulumi.Resource]]]:
        """Each control-plane zone's public subnet and what routes it: the public subnet for
        the first zone, then `<cluster>-public-<zone index>` (controlPlaneSubnetCidrs), routed
        to the internet gateway like it. They wait for the endpoint check."""
        route = aws.ec2.RouteTableRouteArgs(cidr_block=ANYWHERE, gateway_id=network.gateway.id)
        subnets: list[tuple[aws.ec2.Subnet, Sequence[pulumi.Resource]]] = [
            (network.public_subnet, network.public_routes)]
        for index, cidr in enumerate(cfg.control_plane_subnet_cidrs, start=1):
            subnet, association = routed_subnet(
                cluster, f"public-{index}", gated(checked, network.vpc.id), cidr, zones[index],
                route, pulumi.ResourceOptions(parent=self))
            subnets.append((subnet, [association]))
        return subnets

    def _api_load_balancers(
        self, cluster: str, cfg: AwsConfig, network: Network, firewall: Firewall,
        subnets: Sequence[aws.ec2.Subnet], targets: Sequence[ApiTarget],
        checked: pulumi.Output[None],
    ) -> tuple[ApiLoadBalancer, ApiLoadBalancer]:
        """`<cluster>-api` (internet-facing, adminCidrs) and `<cluster>-api-internal` (the
        nodes' security group), over every zone's subnet, each with every control-plane node
        as target. They wait for the endpoint check."""
        for_admins = ApiLoadBalancerArgs(
            cluster=cluster,
            internal=False,
            vpc_id=gated(checked, network.vpc.id),
            subnet_ids=[subnet.id for subnet in subnets],
            targets_security_group_id=firewall.group.id,
            targets=targets,
            allowed_cidrs=cfg.admin_cidrs,
            tags={CLUSTER_TAG: cluster},
        )
        for_nodes = dataclasses.replace(
            for_admins, internal=True, allowed_cidrs=(),
            allowed_security_group_id=firewall.group.id)
        child = pulumi.ResourceOptions(parent=self)
        return (ApiLoadBalancer(f"{cluster}-api", for_admins, opts=child),
                ApiLoadBalancer(f"{cluster}-api-internal", for_nodes, opts=child))

    def _wait_for_ssh(
        self,
        node_name: str,
        runner: PulumiHostTransport | SshTransport,
        host: pulumi.Input[str],
        instance_id: pulumi.Input[str],
        after: Sequence[pulumi.Resource],
    ) -> pulumi.Resource:
        """`<node>-ssh-wait`: until the node's sshd sends its banner, at most SSH_WAIT_SECONDS,
        checked from where the dial to the node starts (this machine, or the jump host). A new
        instance waits again (its id is a trigger)."""
        step = Step(
            script="wait-for-ssh.sh",
            env={"SSH_HOST": host, "SSH_PORT": str(SSH_PORT),
                 "SSH_WAIT_SECONDS": str(SSH_WAIT_SECONDS)},
            triggers=[instance_id],
        )
        return runner.run(
            f"{node_name}-ssh-wait", step, pulumi.ResourceOptions(parent=self, depends_on=after)
        )

    @staticmethod
    def _transport(
        cfg: AwsConfig,
        key: NodeKey,
        host: pulumi.Input[str],
        host_key: pulumi.Input[str],
        jump: SshTransport | None = None,
    ) -> SshTransport:
        """SSH to `host` pinned to `host_key`, optionally through `jump`; a private_key of None
        means the SSH agent (pulumi-command falls back to SSH_AUTH_SOCK)."""
        return SshTransport(
            host=host, user=cfg.ssh_user, private_key=key.private_key, host_key=host_key,
            jump=jump,
        )
