"""A network load balancer in front of the control-plane nodes' API servers (TCP 6443).

    security group (6443 in from the allowed clients only; 6443 out to the API servers)
    -> network load balancer over one public subnet per zone, cross-zone
    -> TCP 6443 listener -> target group (IP targets, HTTPS health check on /readyz)
    -> one attachment per control-plane node (its fixed private IP)
    + a rule on the nodes' security group: 6443 from this load balancer's group

The aws target makes two of them (components/targets/aws.py): an internet-facing one that
`adminCidrs` reach (the exported kubeconfig's server), and an internal one that the nodes reach
(kubeadm's controlPlaneEndpoint). One internet-facing load balancer cannot serve both: its DNS
name resolves to public addresses, inside the VPC too, so a node reaches it from its own public
IP or through the NAT gateway, never from its private IP, and a security group rule naming the
nodes' group (or the VPC's network) never matches it. Cluster API's AWS provider allows the NAT
gateways' public IPs for that reason (kubernetes-sigs/cluster-api-provider-aws#4406); public
workers here have no fixed public IP to allow.

AWS facts this relies on (Elastic Load Balancing user guide for Network Load Balancers, read
2026):
- Security groups can only be given when the load balancer is created; one made without them
  can never have them ("Update the security groups for your Network Load Balancer",
  load-balancer-security-groups.html). Health checks obey the group's outbound rules, not its
  inbound ones (same page): hence the egress rule to the API servers.
- IP targets of a TCP target group get the load balancer's private address as their source
  (client IP preservation is off by default for them, and set off here explicitly:
  edit-target-group-attributes.html#client-ip-preservation). With it on, a target that reaches
  the load balancer and is routed to itself sees its own address as source and destination and
  the connection times out ("Requests from a target to its load balancer time out",
  load-balancer-troubleshooting.html#loopback-timeout). Every control-plane node reaches the
  API through the endpoint (its admin.conf, kubelet), so this matters from the first node on.
  The nodes' group therefore admits 6443 from this load balancer's group, not from clients.
- Adding subnets (zones) to a network load balancer is an update; removing one replaces the
  load balancer (the provider's `subnets` documentation), and with it its DNS name, which every
  kubeconfig of the cluster names. The aws target never removes one from a running cluster
  (components/targets/aws_endpoint_record.py refuses it).
- Cross-zone load balancing is off by default for network load balancers; with it on each node
  of the load balancer routes to healthy targets in every enabled zone
  (target-group-health-checks.html), so one control-plane node serves all three zones. AWS
  bills cross-zone data transfer for network load balancers (Elastic Load Balancing FAQ).
- A target is used once its registration completes and it passes a health check, which "can
  take a few minutes"; when every target fails its checks the load balancer fails open and
  sends to all of them (target-group-health-checks.html). HTTPS health checks need TLS 1.2 on
  the target (same page); kube-apiserver's minimum is TLS 1.2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.kubeadm import API_SERVER_PORT

# /readyz answers 200 once the API server serves (etcd reachable, informers synced); anonymous
# requests may read it (kube-apiserver's system:public-info-viewer role). The check does not
# verify the serving certificate.
HEALTH_CHECK_PATH = "/readyz"
HEALTH_CHECK_INTERVAL_SECONDS = 10  # the range is 5-300
HEALTH_CHECK_TIMEOUT_SECONDS = 5  # the range is 2-120; HTTPS defaults to 10
HEALTHY_THRESHOLD = 2  # consecutive checks before a target is used again
UNHEALTHY_THRESHOLD = 2  # consecutive failures before it is taken out (about 20 s)
# A leaving target's open connections (long API watches) are closed this many seconds after
# it is deregistered, so its clients reconnect through the load balancer to another node.
DEREGISTRATION_DELAY_SECONDS = 30


@dataclass(frozen=True)
class ApiTarget:
    """A control-plane node behind the load balancer."""

    name: str  # its node name (the attachment's resource name ends with it)
    private_ip: str  # its fixed private IP: the target's id (an IP target)
    after: Sequence[pulumi.Resource] = ()  # registered once these exist (its instance)


@dataclass(frozen=True)
class ApiLoadBalancerArgs:
    cluster: str  # the cluster's name, for descriptions
    internal: bool  # True: only the VPC reaches it; False: internet-facing
    vpc_id: pulumi.Input[str]
    # One public subnet per zone, in zone order; later runs may append zones, never remove one.
    subnet_ids: Sequence[pulumi.Input[str]]
    # The API servers' security group: it gets a rule admitting 6443 from this load balancer.
    targets_security_group_id: pulumi.Input[str]
    targets: Sequence[ApiTarget]
    # Who may connect on 6443: these networks (IPv4 CIDRs), and members of this group.
    allowed_cidrs: Sequence[str] = ()
    allowed_security_group_id: pulumi.Input[str] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # on every resource, with Name


def rule_label(cidr: str) -> str:
    """A resource-name-safe form of a CIDR, so a rule's name follows its CIDR, not its place."""
    return cidr.replace(".", "-").replace("/", "-")


class ApiLoadBalancer(pulumi.ComponentResource):
    """A network load balancer that forwards TCP 6443 to every control-plane node's API server.

    `endpoint` is `<DNS name>:6443` (an Output: the name is known once AWS made the load
    balancer). `ready` is what must exist before anything dials the endpoint and reaches the
    first target: the listener and the first target's attachment.
    """

    endpoint: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    security_group: aws.ec2.SecurityGroup
    load_balancer: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    listener: aws.lb.Listener
    attachments: dict[str, aws.lb.TargetGroupAttachment]
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: ApiLoadBalancerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kubeadm-cluster:aws:ApiLoadBalancer", name, None, opts)
        if not args.subnet_ids or not args.targets:
            raise ValueError("ApiLoadBalancer needs at least one subnet and one target")
        child = pulumi.ResourceOptions(parent=self)
        scheme = "internal" if args.internal else "internet-facing"

        def tags(resource: str) -> dict[str, str]:
            return {"Name": resource, **args.tags}

        self.security_group = aws.ec2.SecurityGroup(
            name, vpc_id=args.vpc_id,
            description=f"{args.cluster} API load balancer ({scheme}): {API_SERVER_PORT} from "
                        "allowed clients only",
            tags=tags(name), opts=child,
        )
        group_id = self.security_group.id
        rules: list[pulumi.Resource] = [
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-{rule_label(cidr)}", security_group_id=group_id,
                ip_protocol="tcp", from_port=API_SERVER_PORT, to_port=API_SERVER_PORT,
                cidr_ipv4=cidr, description=f"Kubernetes API from admin network {cidr}",
                opts=child)
            for cidr in args.allowed_cidrs
        ]
        if args.allowed_security_group_id is not None:
            rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-nodes", security_group_id=group_id, ip_protocol="tcp",
                from_port=API_SERVER_PORT, to_port=API_SERVER_PORT,
                referenced_security_group_id=args.allowed_security_group_id,
                description="Kubernetes API from the cluster's nodes", opts=child))
        # Forwarded connections and health checks leave through this rule only.
        rules.append(aws.vpc.SecurityGroupEgressRule(
            f"{name}-to-api-servers", security_group_id=group_id, ip_protocol="tcp",
            from_port=API_SERVER_PORT, to_port=API_SERVER_PORT,
            referenced_security_group_id=args.targets_security_group_id,
            description="Forwarded connections and health checks to the API servers",
            opts=child))
        rules.append(aws.vpc.SecurityGroupIngressRule(
            f"{name}-api-server-ingress", security_group_id=args.targets_security_group_id,
            ip_protocol="tcp", from_port=API_SERVER_PORT, to_port=API_SERVER_PORT,
            referenced_security_group_id=group_id,
            description=f"Kubernetes API from the {scheme} API load balancer", opts=child))

        self.load_balancer = aws.lb.LoadBalancer(
            name,
            load_balancer_type="network",
            internal=args.internal,
            ip_address_type="ipv4",
            subnets=list(args.subnet_ids),
            security_groups=[group_id],
            enable_cross_zone_load_balancing=True,
            tags=tags(name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=rules),
        )
        self.target_group = aws.lb.TargetGroup(
            name,
            port=API_SERVER_PORT,
            protocol="TCP",
            target_type="ip",
            vpc_id=args.vpc_id,
            preserve_client_ip="false",  # the default for IP targets, stated: see above
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            connection_termination=True,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                protocol="HTTPS",
                port="traffic-port",
                path=HEALTH_CHECK_PATH,
                matcher="200",
                interval=HEALTH_CHECK_INTERVAL_SECONDS,
                timeout=HEALTH_CHECK_TIMEOUT_SECONDS,
                healthy_threshold=HEALTHY_THRESHOLD,
                unhealthy_threshold=UNHEALTHY_THRESHOLD,
            ),
            tags=tags(name),
            opts=child,
        )
        self.listener = aws.lb.Listener(
            name,
            load_balancer_arn=self.load_balancer.arn,
            port=API_SERVER_PORT,
            protocol="TCP",
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="forward", target_group_arn=self.target_group.arn)],
            tags=tags(name),
            opts=child,
        )
        self.attachments = {
            target.name: aws.lb.TargetGroupAttachment(
                f"{name}-{target.name}",
                target_group_arn=self.target_group.arn,
                target_id=target.private_ip,
                port=API_SERVER_PORT,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(target.after)),
            )
            for target in args.targets
        }
        self.ready = [self.listener, self.attachments[args.targets[0].name]]
        self.dns_name = self.load_balancer.dns_name
        self.endpoint = pulumi.Output.concat(self.dns_name, f":{API_SERVER_PORT}")
        self.register_outputs({"endpoint": self.endpoint, "dnsName": self.dns_name})
