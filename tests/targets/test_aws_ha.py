"""Several control-plane nodes on target aws, under Pulumi mocks: the API load balancers, a
public subnet per zone, the control-plane instances at fixed addresses, kubeadm's endpoint, and
the record that refuses an endpoint a running cluster cannot take."""

from __future__ import annotations

import itertools
from typing import Any

import pulumi
import pytest

from benchmarks.durations import does_no_work, step_kind
from components.targets.aws_endpoint_record import EndpointChangeRefused, refusal
from tests.conftest import FAKE_EIP, ProgramMocks, ProgramRun, ProgramRunner, Registration
from tests.program import fake_host_public_key, fake_load_balancer_dns, fake_public_ip
from tests.targets.test_machines import env_of

CLUSTER = "kubeadm-aws"
MASTER = f"{CLUSTER}-master"
PUBLIC_API = f"{CLUSTER}-api"
INTERNAL_API = f"{CLUSTER}-api-internal"
PUBLIC_DNS = fake_load_balancer_dns(PUBLIC_API, internal=False)
INTERNAL_DNS = fake_load_balancer_dns(INTERNAL_API, internal=True)
ZONES = [("eu-west-1a", "10.0.1.0/24"), ("eu-west-1b", "10.0.255.0/24"),
         ("eu-west-1c", "10.0.254.0/24")]
RECORD = {"endpoint": "load-balancer", "zones": [list(pair) for pair in ZONES]}
ADMIN = "203.0.113.0/24"

INSTANCE = "aws:ec2/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
STASH = "pulumi:index:Stash"
GET_ZONES = "aws:index/getAvailabilityZones:getAvailabilityZones"


def plane(index: int) -> str:
    return f"{CLUSTER}-control-plane-{index}"


def worker(index: int) -> str:
    return f"{CLUSTER}-worker-{index}"


def by_name(run: ProgramRun, typ: str) -> dict[str, Registration]:
    return {r.name: r for r in run.of_type(typ)}


def recorded(monkeypatch: pytest.MonkeyPatch, record: dict[str, Any]) -> None:
    """The endpoint record an earlier `pulumi up` left in the stack's state."""
    monkeypatch.setattr(ProgramMocks, "stashed", {f"{CLUSTER}-api-endpoint": record})


# ---------------------------------------------------------------------------------------------
# The load balancers


def test_two_network_load_balancers_over_the_zones_with_every_control_plane_node_as_target(
    run_program: ProgramRunner,
) -> None:
    run = run_program("aws", controlPlaneNodes="3", workers="1")

    subnets = by_name(run, SUBNET)
    zone_subnet_ids = [f"{subnets[name].name}-id" for name in
                       (f"{CLUSTER}-public", f"{CLUSTER}-public-1", f"{CLUSTER}-public-2")]
    balancers = by_name(run, LOAD_BALANCER)
    assert set(balancers) == {PUBLIC_API, INTERNAL_API}
    for name, internal in ((PUBLIC_API, False), (INTERNAL_API, True)):
        values = balancers[name].inputs
        assert values["loadBalancerType"] == "network"
        assert values["internal"] is internal
        assert values["subnets"] == zone_subnet_ids
        assert values["securityGroups"] == [f"{name}-id"]  # its own, given at creation
        assert values["enableCrossZoneLoadBalancing"] is True
        assert "enableDeletionProtection" not in values  # pulumi destroy must work

    groups = by_name(run, TARGET_GROUP)
    listeners = by_name(run, LISTENER)
    assert set(groups) == set(listeners) == {PUBLIC_API, INTERNAL_API}
    for name in (PUBLIC_API, INTERNAL_API):
        group = groups[name].inputs
        assert (group["port"], group["protocol"], group["targetType"]) == (6443, "TCP", "ip")
        # A target reaching itself through the load balancer must see the load balancer's
        # address as source (AWS's loopback time-out): client IP preservation off.
        assert group["preserveClientIp"] == "false"
        assert group["vpcId"] == f"{CLUSTER}-vpc-id"
        check = group["healthCheck"]
        assert (check["protocol"], check["path"], check["port"], check["matcher"]) == (
            "HTTPS", "/readyz", "traffic-port", "200")
        assert check["enabled"] is True
        listener = listeners[name].inputs
        assert (listener["port"], listener["protocol"]) == (6443, "TCP")
        assert listener["loadBalancerArn"] == balancers[name].outputs["arn"]
        assert listener["defaultActions"] == [
            {"type": "forward", "targetGroupArn": groups[name].outputs["arn"]}]

    attachments = by_name(run, "aws:lb/targetGroupAttachment:TargetGroupAttachment")
    addresses = {MASTER: "10.0.1.10", plane(1): "10.0.255.9", plane(2): "10.0.254.8"}
    assert set(attachments) == {f"{lb}-{node}" for lb in (PUBLIC_API, INTERNAL_API)
                                for node in addresses}
    for lb, (node, address) in itertools.product((PUBLIC_API, INTERNAL_API), addresses.items()):
        attachment = attachments[f"{lb}-{node}"]
        assert attachment.inputs == {"targetGroupArn": groups[lb].outputs["arn"],
                                     "targetId": address, "port": 6443}
        assert run.depends_on(attachment, run.named(node))  # registered once it exists
    # No worker is a target.
    assert not [name for name in attachments if "-worker-" in name]

    hosts = next(r for r in run.resources if r.type == "kubeadm-cluster:aws:AwsHosts")
    for component in run.of_type("kubeadm-cluster:aws:ApiLoadBalancer"):
        assert component.parent == hosts.urn
    for res in run.resources:
        if res.type.startswith("aws:lb/"):
            assert run.by_urn(res.parent).type == "kubeadm-cluster:aws:ApiLoadBalancer"


def test_one_control_plane_node_has_no_load_balancer_unless_asked(
    run_program: ProgramRunner,
) -> None:
    plain = run_program("aws", workers="1")
    assert not [r for r in plain.resources if r.type.startswith("aws:lb/")]
    assert len(plain.of_type(SUBNET)) == 1
    assert "CONTROL_PLANE_ENDPOINT" not in env_of(plain.named(f"{MASTER}-init"))
    assert plain.output("apiServer") == f"https://{FAKE_EIP}:6443"

    ready = run_program("aws", workers="1", apiLoadBalancer="true")
    assert len(ready.of_type(LOAD_BALANCER)) == 2
    assert len(ready.of_type(SUBNET)) == 3
    assert {r.name for r in ready.of_type(ATTACHMENT)} == {
        f"{PUBLIC_API}-{MASTER}", f"{INTERNAL_API}-{MASTER}"}
    assert env_of(ready.named(f"{MASTER}-init"))["CONTROL_PLANE_ENDPOINT"] == \
        f"{INTERNAL_DNS}:6443"
    assert not [r for r in ready.of_type(INSTANCE) if "-control-plane-" in r.name]


def test_the_load_balancers_admit_the_api_only_from_admins_and_the_nodes(
    run_program: ProgramRunner,
) -> None:
    other_admin = "198.51.100.7/32"
    run = run_program("aws", controlPlaneNodes="3", adminCidrs=[ADMIN, other_admin])

    def rules(group: str) -> set[tuple[Any, ...]]:
        found = set()
        for res in run.of_type(INGRESS) + run.of_type(EGRESS):
            values = res.inputs
            if values["securityGroupId"] != f"{group}-id":
                continue
            source = values.get("cidrIpv4") or values["referencedSecurityGroupId"]
            direction = "in" if res.type == INGRESS else "out"
            found.add((direction, values.get("fromPort"), values.get("toPort"), source))
        return found

    nodes = f"{CLUSTER}-nodes-id"
    assert rules(PUBLIC_API) == {("in", 6443, 6443, ADMIN), ("in", 6443, 6443, other_admin),
                                 ("out", 6443, 6443, nodes)}
    assert rules(INTERNAL_API) == {("in", 6443, 6443, nodes), ("out", 6443, 6443, nodes)}
    # The API servers admit what each load balancer forwards (and its health checks).
    node_rules = rules(f"{CLUSTER}-nodes")
    assert {("in", 6443, 6443, f"{PUBLIC_API}-id"),
            ("in", 6443, 6443, f"{INTERNAL_API}-id")} <= node_rules
    assert not [r for r in run.of_type(INGRESS) if r.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    # Every rule is its own resource: the groups carry none inline.
    for group in run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert "ingress" not in group.inputs and "egress" not in group.inputs


# ---------------------------------------------------------------------------------------------
# Zones, subnets, instances


def test_a_public_subnet_per_zone_routed_to_the_internet_gateway(
    run_program: ProgramRunner, invokes: list[pulumi.runtime.MockCallArgs],
) -> None:
    run = run_program("aws", controlPlaneNodes="3")

    subnets = by_name(run, SUBNET)
    names = [f"{CLUSTER}-public", f"{CLUSTER}-public-1", f"{CLUSTER}-public-2"]
    assert sorted(subnets) == names
    for name, (zone, cidr) in zip(names, ZONES, strict=True):
        values = subnets[name].inputs
        assert (values["availabilityZone"], values["cidrBlock"]) == (zone, cidr)
        assert values["mapPublicIpOnLaunch"] is True
        table = by_name(run, "aws:ec2/routeTable:RouteTable")[name]
        assert table.inputs["routes"] == [
            {"cidrBlock": "0.0.0.0/0", "gatewayId": f"{CLUSTER}-igw-id"}]
        association = by_name(run, "aws:ec2/routeTableAssociation:RouteTableAssociation")[name]
        assert association.inputs == {"subnetId": f"{name}-id", "routeTableId": f"{name}-id"}
    assert len([c for c in invokes if c.token == GET_ZONES]) == 1  # looked up once

    # availabilityZone stays the master's; the others follow in the region's order.
    moved = run_program("aws", controlPlaneNodes="3", availabilityZone="eu-west-1b")
    assert [by_name(moved, SUBNET)[name].inputs["availabilityZone"] for name in names] == [
        "eu-west-1b", "eu-west-1a", "eu-west-1c"]


def test_given_zones_and_subnets_need_no_lookup(
    run_program: ProgramRunner, invokes: list[pulumi.runtime.MockCallArgs],
) -> None:
    run = run_program("aws", controlPlaneNodes="3",
                      controlPlaneZones=["eu-west-1c", "eu-west-1a"],
                      controlPlaneSubnetCidrs=["10.0.64.0/26"])
    assert not [c for c in invokes if c.token == GET_ZONES]
    subnets = {r.inputs["cidrBlock"]: r.inputs["availabilityZone"] for r in run.of_type(SUBNET)}
    assert subnets == {"10.0.1.0/24": "eu-west-1c", "10.0.64.0/26": "eu-west-1a"}
    ips = {r.name: (r.inputs["privateIp"], r.inputs["subnetId"]) for r in run.of_type(INSTANCE)}
    assert ips[MASTER] == ("10.0.1.10", f"{CLUSTER}-public-id")
    assert ips[plane(1)] == ("10.0.64.9", f"{CLUSTER}-public-1-id")
    assert ips[plane(2)] == ("10.0.1.8", f"{CLUSTER}-public-id")


def test_a_region_with_too_few_zones_stops_with_one_line(run_program: ProgramRunner) -> None:
    run = run_program("aws", controlPlaneNodes="3", expect_error=True,
                      controlPlaneSubnetCidrs=["10.0.10.0/24", "10.0.11.0/24", "10.0.12.0/24"])
    assert "region eu-west-1 offers 3 available zones (eu-west-1a, eu-west-1b, eu-west-1c); " \
        "the API load balancers need 4" in str(run.error)
    assert not run.of_type(LOAD_BALANCER)


def test_control_plane_nodes_sit_at_fixed_addresses_in_their_zones(
    run_program: ProgramRunner,
) -> None:
    run = run_program("aws", controlPlaneNodes="5", workers="2", workerInstanceType="t3.large")

    instances = by_name(run, INSTANCE)
    placed = {name: (r.inputs["privateIp"], r.inputs["subnetId"]) for name, r in
              instances.items()}
    zone_subnet = [f"{CLUSTER}-public-id", f"{CLUSTER}-public-1-id", f"{CLUSTER}-public-2-id"]
    assert placed == {
        MASTER: ("10.0.1.10", zone_subnet[0]),
        plane(1): ("10.0.255.9", zone_subnet[1]),
        plane(2): ("10.0.254.8", zone_subnet[2]),
        plane(3): ("10.0.1.7", zone_subnet[0]),
        plane(4): ("10.0.255.6", zone_subnet[1]),
        worker(0): ("10.0.1.11", zone_subnet[0]),
        worker(1): ("10.0.1.12", zone_subnet[0]),
    }
    for index in range(1, 5):
        values = instances[plane(index)].inputs
        assert values["tags"] == {"Name": plane(index), "kubeadm-cluster": CLUSTER,
                                  "role": "control-plane"}
        assert values["instanceType"] == "t3.medium"  # masterInstanceType
        assert values["metadataOptions"]["httpTokens"] == "required"
        assert values["rootBlockDevice"]["encrypted"] is True
        assert instances[plane(index)].delete_before_replace  # its fixed address
    assert run.output("nodePrivateIps") == {name: ip for name, (ip, _) in placed.items()}


def test_master_and_workers_are_the_same_whatever_the_control_plane(
    run_program: ProgramRunner,
) -> None:
    """A stack made with one control-plane node keeps its master and workers, in the same
    subnet at the same address, whether the control plane is 1, 3 or 5 nodes (or 1 behind the
    load balancers)."""
    runs = [run_program("aws", workers="2"),
            run_program("aws", workers="2", apiLoadBalancer="true"),
            run_program("aws", workers="2", controlPlaneNodes="3"),
            run_program("aws", workers="2", controlPlaneNodes="5")]
    unchanged = [MASTER, f"{MASTER}-eip", f"{MASTER}-host-key", f"{MASTER}-ssh-wait",
                 f"{MASTER}-install", f"{MASTER}-kubernetes", f"{CLUSTER}-public",
                 f"{CLUSTER}-vpc", f"{CLUSTER}-nodes"]
    for i in range(2):
        unchanged += [worker(i), f"{worker(i)}-install", f"{worker(i)}-join",
                      f"{worker(i)}-join-token", f"{worker(i)}-drain", f"{worker(i)}-kubernetes",
                      f"{worker(i)}-ssh-wait"]
    first = {r.urn: r for r in runs[0].resources}
    for run in runs[1:]:
        later = {r.urn: r for r in run.resources}
        for res in first.values():
            if res.name in unchanged:
                assert later[res.urn].inputs == res.inputs, res.name


# ---------------------------------------------------------------------------------------------
# kubeadm on these hosts


def test_init_names_the_internal_load_balancer_and_waits_for_it(
    run_program: ProgramRunner,
) -> None:
    run = run_program("aws", controlPlaneNodes="3", workers="1")

    init = run.named(f"{MASTER}-init")
    env = env_of(init)
    assert env["CONTROL_PLANE_ENDPOINT"] == f"{INTERNAL_DNS}:6443"
    assert env["CERT_SANS"].split(",") == [
        FAKE_EIP, "ec2-203-0-113-10.eu-west-1.compute.amazonaws.com", PUBLIC_DNS, INTERNAL_DNS]
    # The endpoint routes to the master before init dials it.
    internal = [r for r in run.resources if r.name in (INTERNAL_API, f"{INTERNAL_API}-{MASTER}")
                and r.type in (LISTENER, ATTACHMENT)]
    assert len(internal) == 2
    for res in internal:
        assert run.depends_on(init, res), res.name
    # Admins reach the API through the internet-facing one.
    assert run.output("apiServer") == f"https://{PUBLIC_DNS}:6443"
    assert f"server: https://{PUBLIC_DNS}:6443" in run.output("kubeconfig")
    assert run.output("masterPublicIp") == FAKE_EIP
    assert run.output("apps")["apps/nginx"]["url"].startswith(f"http://{FAKE_EIP}:")


def test_control_plane_nodes_join_in_turn_and_upgrade_after_the_master(
    run_program: ProgramRunner,
) -> None:
    run = run_program("aws", controlPlaneNodes="3", workers="1")

    planes = [plane(1), plane(2)]
    assert run.output("nodeNames") == [MASTER, *planes, worker(0)]
    addresses = {plane(1): "10.0.255.9", plane(2): "10.0.254.8"}
    for name in planes:
        join = run.named(f"{name}-join")
        env = env_of(join)
        assert (env["CONTROL_PLANE"], env["ADVERTISE_ADDRESS"]) == ("true", addresses[name])
        assert env_of(run.named(f"{name}-join-token"))["CONTROL_PLANE"] == "true"
        assert "remove-etcd-member.sh" in run.named(f"{name}-drain").inputs["delete"]
        assert run.depends_on(join, run.named(f"{MASTER}-init"))
    assert run.depends_on(run.named(f"{planes[1]}-join-token"), run.named(f"{planes[0]}-join"))
    roles = {name: env_of(run.named(f"{name}-kubernetes"))["ROLE"]
             for name in (MASTER, *planes, worker(0))}
    assert roles == {MASTER: "control-plane", planes[0]: "additional-control-plane",
                     planes[1]: "additional-control-plane", worker(0): "worker"}
    for before, after in itertools.pairwise([MASTER, *planes, worker(0)]):
        assert run.depends_on(run.named(f"{after}-kubernetes"),
                              run.named(f"{before}-kubernetes"))


def test_every_control_plane_node_is_reached_over_ssh_with_its_pinned_key(
    run_program: ProgramRunner,
) -> None:
    run = run_program("aws", controlPlaneNodes="3", workers="1", privateWorkers="true")

    for name in (plane(1), plane(2)):
        wait = run.named(f"{name}-ssh-wait")
        assert wait.type == "command:local:Command"  # from this machine, to its public IP
        assert f"export SSH_HOST={fake_public_ip(name)}\n" in wait.inputs["stdin"]
        for step in ("install", "join", "kubernetes"):
            connection = run.named(f"{name}-{step}").inputs["connection"]
            assert connection["host"] == fake_public_ip(name)
            assert connection["hostKey"] == fake_host_public_key(name)
            assert "proxy" not in connection
        assert run.depends_on(run.named(f"{name}-install"), wait)
    commands = run.output("sshCommands")
    assert set(commands) == {MASTER, plane(1), plane(2), worker(0)}
    assert commands[plane(1)].endswith(
        f"-o HostKeyAlias={plane(1)} ubuntu@{fake_public_ip(plane(1))}")
    assert "ProxyCommand" in commands[worker(0)]  # private workers still jump via the master
    assert run.output("sshKnownHosts").splitlines() == [
        f"{node} {fake_host_public_key(node)}" for node in (MASTER, plane(1), plane(2), worker(0))]


# ---------------------------------------------------------------------------------------------
# Growing and shrinking: 1 -> 3 -> 5 and back


def changed_and_added(before: ProgramRun, after: ProgramRun) -> tuple[set[str], set[str]]:
    old = {r.urn: r for r in before.resources}
    new = {r.urn: r for r in after.resources}
    changed = {old[urn].name for urn in set(old) & set(new)
               if (old[urn].inputs, old[urn].secret_inputs) != (new[urn].inputs,
                                                                  new[urn].secret_inputs)}
    return changed, {new[urn].name for urn in set(new) - set(old)}


@pytest.mark.parametrize(("start", "overrides"), [
    ("3", {"controlPlaneNodes": "5"}),
    ("1", {"controlPlaneNodes": "3"}),
])
def test_growing_the_control_plane_touches_no_load_balancer_and_no_node(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch, start: str,
    overrides: dict[str, str],
) -> None:
    """What `pulumi preview` shows for 3 -> 5, and for 1 -> 3 on a stack made with
    apiLoadBalancer: new instances, their steps, their attachments; only the gates that list
    every node change."""
    first = {"controlPlaneNodes": start, "apiLoadBalancer": "true", "workers": "1"}
    before = run_program("aws", **first)
    recorded(monkeypatch, RECORD)
    after = run_program("aws", **{**first, **overrides})

    changed, added = changed_and_added(before, after)
    assert changed == {f"{CLUSTER}-ready", f"{CLUSTER}-control-plane-scheduling"}
    count = int(overrides["controlPlaneNodes"])
    new_planes = [plane(i) for i in range(int(start), count)]
    assert added == {
        *new_planes,
        *(f"{name}-{step}" for name in new_planes for step in (
            "host-key", "ssh-wait", "install", "join-token", "join", "drain", "kubernetes")),
        *(f"{lb}-{name}" for lb in (PUBLIC_API, INTERNAL_API) for name in new_planes),
    }


def test_shrinking_the_control_plane_removes_only_the_leaving_nodes(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = run_program("aws", controlPlaneNodes="5", workers="1")
    recorded(monkeypatch, RECORD)
    after = run_program("aws", controlPlaneNodes="3", workers="1")

    changed, added = changed_and_added(after, before)  # what 3 -> 5 would add, reversed
    assert changed == {f"{CLUSTER}-ready", f"{CLUSTER}-control-plane-scheduling"}
    assert {plane(3), plane(4), f"{PUBLIC_API}-{plane(4)}", f"{plane(3)}-drain"} <= added
    assert all(name.startswith((plane(3), plane(4))) or name.endswith((plane(3), plane(4)))
               for name in added)
    # The leaving node's etcd member is removed by its drain, on the master.
    assert "remove-etcd-member.sh" in before.named(f"{plane(4)}-drain").inputs["delete"]


# ---------------------------------------------------------------------------------------------
# The endpoint the cluster was made with


def test_the_record_says_what_the_cluster_is_made_with_and_follows_the_master(
    run_program: ProgramRunner,
) -> None:
    for overrides, record in (({}, {"endpoint": "elastic-ip"}),
                              ({"controlPlaneNodes": "3"}, RECORD)):
        run = run_program("aws", **overrides)
        stash = run.named(f"{CLUSTER}-api-endpoint")
        assert stash.type == STASH and stash.inputs == {"input": record}
        # A new master is a new cluster: the record is made again with it.
        assert stash.replace_with == [run.named(MASTER).urn]


@pytest.mark.parametrize(("record", "overrides", "says"), [
    ({"endpoint": "elastic-ip"}, {"controlPlaneNodes": "3"},
     "was initialised with the master's Elastic IP as its API endpoint"),
    # control-plane-3 would sit in the master's subnet, which exists already
    ({"endpoint": "elastic-ip"}, {"controlPlaneNodes": "5"}, "Keep controlPlaneNodes 1"),
    ({"endpoint": "elastic-ip"}, {"apiLoadBalancer": "true"},
     "can take neither the API load balancers nor a second control-plane node"),
    (RECORD, {}, "was initialised behind the API load balancers"),
    (RECORD, {"controlPlaneNodes": "3", "controlPlaneSubnetCidrs": ["10.0.8.0/24",
                                                                     "10.0.9.0/24"]},
     "would replace them"),
    ({"endpoint": "load-balancer", "zones": [["eu-west-1a", "10.0.1.0/24"]]},
     {"controlPlaneNodes": "3"}, "this program does not add eu-west-1b (10.0.255.0/24)"),
])
def test_an_endpoint_the_running_cluster_cannot_take_is_refused_before_anything_changes(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch, record: dict[str, Any],
    overrides: dict[str, str], says: str,
) -> None:
    recorded(monkeypatch, record)
    run = run_program("aws", workers="1", expect_error=True, **overrides)

    assert isinstance(run.error, EndpointChangeRefused)
    assert says in str(run.error) and "\n" not in str(run.error)
    # Nothing of the load balancers' is declared, no control-plane instance, no new subnet;
    # with them asked for, kubeadm init is not either (its endpoint waits for the check).
    assert not [r for r in run.resources if r.type.startswith("aws:lb/")]
    assert not [r for r in run.of_type(INSTANCE) if "-control-plane-" in r.name]
    assert not [r for r in run.of_type(SUBNET) if r.name != f"{CLUSTER}-public"]
    if overrides:
        assert not [r for r in run.resources if r.name == f"{MASTER}-init"]


@pytest.mark.parametrize(("record", "overrides"), [
    ({"endpoint": "elastic-ip"}, {"workers": "3"}),
    (RECORD, {"controlPlaneNodes": "5"}),
    (RECORD, {"controlPlaneNodes": "1", "apiLoadBalancer": "true"}),
])
def test_what_the_running_cluster_can_take_goes_ahead(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch, record: dict[str, Any],
    overrides: dict[str, str],
) -> None:
    recorded(monkeypatch, record)
    run = run_program("aws", **overrides)
    assert run.error is None
    assert run.named(f"{MASTER}-init")


def test_refusal_lines() -> None:
    assert refusal(CLUSTER, None, RECORD) is None  # a new record: nothing to compare
    assert refusal(CLUSTER, RECORD, dict(RECORD)) is None
    removed = refusal(CLUSTER, RECORD, {**RECORD, "zones": RECORD["zones"][:2]})
    assert removed is not None and "would replace them" in removed
    assert "set controlPlaneZones to [eu-west-1a, eu-west-1b, eu-west-1c] and " \
        "controlPlaneSubnetCidrs to [10.0.255.0/24, 10.0.254.0/24]" in removed


# ---------------------------------------------------------------------------------------------
# Benchmarks


def test_what_an_ha_stack_adds_has_a_modelled_duration(run_program: ProgramRunner) -> None:
    plain = run_program("aws", workers="1", privateWorkers="true")
    run = run_program("aws", controlPlaneNodes="3", workers="1", privateWorkers="true")
    known = {(r.type, r.name) for r in plain.resources}
    added = [r for r in run.resources if (r.type, r.name) not in known]
    assert {r.type for r in added} >= {LOAD_BALANCER, TARGET_GROUP, LISTENER, ATTACHMENT}
    unmodelled = {(r.type, r.name) for r in added
                  if not does_no_work(r.type) and step_kind(r.type, r.name) is None}
    assert unmodelled == set()
    balancer = step_kind(LOAD_BALANCER, PUBLIC_API)
    assert balancer is not None and balancer.seconds >= 60  # AWS provisions it for minutes
