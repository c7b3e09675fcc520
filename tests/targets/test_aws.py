"""AwsHosts under Pulumi mocks, wired to KubeadmCluster as __main__.py wires them (stack aws)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pulumi
import pytest
import yaml

from components.config import node_ip
from components.targets.aws import (
    CANONICAL_OWNER_ID,
    AwsHosts,
    AwsHostsArgs,
    host_key_cloud_config,
)
from components.targets.aws_node_role import ebs_csi_policy
from tests.conftest import (
    FAKE_EIP,
    FAKE_PRIVATE_KEY,
    FAKE_PUBLIC_KEY,
    ComponentRunner,
    ProgramRun,
    Registration,
)
from tests.program import (
    HOST_KEY_SUFFIX,
    WiredCluster,
    fake_host_private_key,
    fake_host_public_key,
    fake_public_ip,
    run_cluster_on,
)

CLUSTER = "kubeadm-aws"
MASTER = f"{CLUSTER}-master"
SUBNET = "10.0.1.0/24"
ADMIN = "203.0.113.0/24"
AMI_X86 = "ami-0aaaaaaaaaaaaaaa1"  # what the mocks' getAmi returns per architecture
AMI_ARM = "ami-0bbbbbbbbbbbbbbb2"

INSTANCE = "aws:ec2/instance:Instance"
COMMAND = "command:remote:Command"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
GET_AMI = "aws:ec2/getAmi:getAmi"
MASTER_STEPS = ["install", "kubernetes", "init"]
WORKER_STEPS = ["install", "join-token", "join", "drain", "kubernetes"]


def worker(index: int) -> str:
    return f"{CLUSTER}-worker-{index}"


Wired = WiredCluster[AwsHosts]


def run_aws(run_components: ComponentRunner, **overrides: Any) -> tuple[ProgramRun, Wired]:
    return run_cluster_on(
        run_components, lambda config: AwsHosts(config.cluster_name, AwsHostsArgs(config)),
        "aws", **overrides,
    )


def instances(run: ProgramRun) -> dict[str, Registration]:
    return {res.name: res for res in run.of_type(INSTANCE)}


def ami_filters(call: pulumi.runtime.MockCallArgs) -> dict[str, list[str]]:
    return {flt["name"]: flt["values"] for flt in call.args["filters"]}


# ---------------------------------------------------------------------------------------------
# Graph shape


@pytest.mark.parametrize("workers", [0, 1, 5])
def test_one_instance_and_one_step_chain_per_node(
    run_components: ComponentRunner, workers: int
) -> None:
    run, _ = run_aws(run_components, workers=workers)

    worker_names = [worker(i) for i in range(workers)]
    assert set(instances(run)) == {MASTER, *worker_names}
    expected_steps = {f"{MASTER}-{s}" for s in MASTER_STEPS} | {
        f"{CLUSTER}-ready", f"{CLUSTER}-kubeconfig", f"{CLUSTER}-control-plane-scheduling"
    } | {f"{name}-{s}" for name in worker_names for s in WORKER_STEPS}
    assert {res.name for res in run.of_type(COMMAND)} == expected_steps
    assert len(run.of_type("aws:ec2/eip:Eip")) == 1
    assert len(run.of_type("aws:ec2/keyPair:KeyPair")) == 1
    assert not run.of_type("aws:ec2/natGateway:NatGateway")
    component = next(r for r in run.resources if r.type == "kubeadm-cluster:aws:AwsHosts")
    own = [r for r in run.resources if r.type.startswith(("aws:", "tls:"))]
    assert own and all(r.parent == component.urn for r in own)


def test_private_ips_are_fixed_unique_and_inside_the_subnet(
    run_components: ComponentRunner,
) -> None:
    run, wired = run_aws(run_components, workers=5)

    ips = {name: res.inputs["privateIp"] for name, res in instances(run).items()}
    assert ips[MASTER] == node_ip(SUBNET, 0) == "10.0.1.10"
    for i in range(5):
        assert ips[worker(i)] == node_ip(SUBNET, i + 1)
    assert len(set(ips.values())) == len(ips)
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET) for ip in ips.values())
    assert wired.cluster.node_private_ips == ips
    nodes = wired.hosts.cluster_hosts
    assert nodes.master.private_ip == ips[MASTER]
    assert [w.private_ip for w in nodes.workers] == [ips[worker(i)] for i in range(5)]


def test_network_is_one_public_subnet_routed_to_an_internet_gateway(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_aws(run_components, workers=1)

    vpc = run.named(f"{CLUSTER}-vpc").inputs
    assert vpc["cidrBlock"] == "10.0.0.0/16"
    assert vpc["enableDnsHostnames"] is True
    subnets = run.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 1
    subnet = subnets[0].inputs
    assert subnet["cidrBlock"] == SUBNET
    assert subnet["mapPublicIpOnLaunch"] is True
    assert subnet["availabilityZone"] == "eu-west-1a"  # the region's first zone (mocked lookup)
    table = run.of_type("aws:ec2/routeTable:RouteTable")[0].inputs
    assert table["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": f"{CLUSTER}-igw-id"}]
    association = run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")[0].inputs
    assert association == {
        "subnetId": f"{CLUSTER}-public-id", "routeTableId": f"{CLUSTER}-public-id",
    }
    assert all(r.inputs["subnetId"] == f"{CLUSTER}-public-id" for r in run.of_type(INSTANCE))


def test_availability_zone_from_config(run_components: ComponentRunner,
                                       invokes: list[pulumi.runtime.MockCallArgs]) -> None:
    run, _ = run_aws(run_components, workers=0, availabilityZone="eu-west-1b")

    assert run.of_type("aws:ec2/subnet:Subnet")[0].inputs["availabilityZone"] == "eu-west-1b"
    assert not [c for c in invokes if "getAvailabilityZones" in c.token]


# ---------------------------------------------------------------------------------------------
# Firewall


def rule_shape(res: Registration) -> tuple[Any, ...]:
    values = res.inputs
    source = values.get("cidrIpv4") or ("self" if values.get("referencedSecurityGroupId") ==
                                        values["securityGroupId"] else None)
    direction = "in" if res.type == INGRESS else "out"
    return (direction, values["ipProtocol"], values.get("fromPort"), values.get("toPort"), source)


def test_security_group_rules_are_exactly_admin_access_node_to_node_and_egress(
    run_components: ComponentRunner,
) -> None:
    other_admin = "198.51.100.7/32"
    run, _ = run_aws(run_components, workers=2, adminCidrs=[ADMIN, other_admin])

    groups = run.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert len(groups) == 1
    # No inline rules: the rule resources below are the whole truth.
    assert "ingress" not in groups[0].inputs and "egress" not in groups[0].inputs
    rules = run.of_type(INGRESS) + run.of_type(EGRESS)
    assert all(r.inputs["securityGroupId"] == f"{CLUSTER}-nodes-id" for r in rules)
    expected: set[tuple[str, str, int | None, int | None, str]] = {
        ("out", "-1", None, None, "0.0.0.0/0"), ("in", "-1", None, None, "self"),
    }
    for cidr in (ADMIN, other_admin):
        expected |= {
            ("in", "tcp", 22, 22, cidr),
            ("in", "tcp", 6443, 6443, cidr),
            ("in", "tcp", 30000, 32767, cidr),
        }
    shapes = [rule_shape(r) for r in rules]
    assert sorted(shapes, key=str) == sorted(expected, key=str)
    assert not [s for s in shapes if s[0] == "in" and s[4] == "0.0.0.0/0"]
    for res in run.of_type(INSTANCE):
        assert res.inputs["vpcSecurityGroupIds"] == [f"{CLUSTER}-nodes-id"]


# ---------------------------------------------------------------------------------------------
# Instances


def test_instances_require_imdsv2_encrypt_gp3_and_are_tagged(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_aws(run_components, workers=2, rootVolumeSize="40",
                     workerInstanceType="t3.large")

    for name, res in instances(run).items():
        values = res.inputs
        assert values["metadataOptions"] == {
            "httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 2,
        }
        assert values["rootBlockDevice"] == {
            "volumeType": "gp3", "volumeSize": 40, "encrypted": True, "deleteOnTermination": True,
        }
        role = "master" if name == MASTER else "worker"
        assert values["tags"] == {"Name": name, "kubeadm-cluster": CLUSTER, "role": role}
        assert values["instanceType"] == ("t3.medium" if role == "master" else "t3.large")
        assert values["keyName"] == f"{CLUSTER}-key"
        assert values["userData"] == host_key_cloud_config(
            fake_host_private_key(name), fake_host_public_key(name) + "\n"
        )
        assert "userData" in res.secret_inputs  # it holds the host's private key
        assert values["userDataReplaceOnChange"] is True


def test_every_node_launches_with_the_clusters_node_role(
    run_components: ComponentRunner,
) -> None:
    """The EBS CSI driver's credentials (components/targets/aws_node_role.py); the profile is
    the same for every node, so scaling out changes no existing instance."""
    run, _ = run_aws(run_components, workers=2)  # Pulumi.aws.yaml: aws:region eu-west-1
    (role,) = run.of_type("aws:iam/role:Role")
    (policy,) = run.of_type("aws:iam/rolePolicy:RolePolicy")
    (profile,) = run.of_type("aws:iam/instanceProfile:InstanceProfile")
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"}
    assert policy.inputs["role"] == f"{role.name}-id"
    assert json.loads(policy.inputs["policy"]) == ebs_csi_policy(CLUSTER, "eu-west-1",
                                                                 "kubeadm-cluster")
    assert profile.inputs["role"] == role.outputs["name"]
    for name, res in instances(run).items():
        assert res.inputs["iamInstanceProfile"] == profile.outputs["name"], name


def test_master_has_an_elastic_ip_used_for_api_ssh_and_apps(
    run_components: ComponentRunner,
) -> None:
    run, wired = run_aws(run_components, workers=1)
    hosts = wired.hosts

    eip = run.of_type("aws:ec2/eip:Eip")[0]
    assert eip.inputs["domain"] == "vpc"
    association = run.of_type("aws:ec2/eipAssociation:EipAssociation")[0]
    assert association.inputs == {
        "instanceId": f"{MASTER}-id", "allocationId": f"eipalloc-{MASTER}-eip",
    }
    assert run.depends_on(association, eip)
    assert run.resolve(hosts.cluster_hosts.api_endpoint) == f"{FAKE_EIP}:6443"
    assert run.resolve(hosts.master_public_ip) == FAKE_EIP
    assert run.resolve(hosts.cluster_hosts.app_host) == FAKE_EIP
    assert [run.resolve(s) for s in hosts.cluster_hosts.cert_sans] == [
        FAKE_EIP, "ec2-203-0-113-10.eu-west-1.compute.amazonaws.com",
    ]
    nodes = hosts.cluster_hosts
    assert (nodes.profile, nodes.cni) == ("host", "flannel")
    assert nodes.install is not None and nodes.install.login_user == "ubuntu"
    assert nodes.install.package_source == "docker"

    # Every master step reaches the Elastic IP, only after it is associated; workers use
    # their own public IP.
    on_worker = {f"{worker(0)}-{s}" for s in ("install", "join", "kubernetes")}
    for res in run.of_type(COMMAND):
        on_master = res.name not in on_worker
        host = res.inputs["connection"]["host"]
        assert host == (FAKE_EIP if on_master else fake_public_ip(worker(0))), res.name
        if on_master:
            assert run.depends_on(res, association), res.name
    pinned = f"-o UserKnownHostsFile={CLUSTER}-known_hosts -o StrictHostKeyChecking=yes"
    assert run.resolve(hosts.ssh_commands[MASTER]) == \
        f"ssh -i {CLUSTER}-ssh.key {pinned} -o HostKeyAlias={MASTER} ubuntu@{FAKE_EIP}"
    assert run.resolve(hosts.ssh_commands[worker(0)]) == (
        f"ssh -i {CLUSTER}-ssh.key {pinned} -o HostKeyAlias={worker(0)} "
        f"ubuntu@{fake_public_ip(worker(0))}"
    )


def test_ami_is_the_latest_canonical_ubuntu_noble_and_never_churns(
    run_components: ComponentRunner, invokes: list[pulumi.runtime.MockCallArgs]
) -> None:
    run, _ = run_aws(run_components, workers=2)

    lookups = [c for c in invokes if c.token == GET_AMI]
    assert len(lookups) == 1  # one per architecture, shared by every node
    call = lookups[0]
    assert call.args["owners"] == [CANONICAL_OWNER_ID]
    assert call.args["mostRecent"] is True
    assert ami_filters(call) == {
        "name": ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"],
        "virtualization-type": ["hvm"],
        "architecture": ["x86_64"],
    }
    for res in run.of_type(INSTANCE):
        assert res.inputs["ami"] == AMI_X86
        # A newer Ubuntu image next week must not replace running nodes.
        assert res.ignore_changes == ["ami"]
        # A fixed private IP cannot be held by the old and the new instance at once.
        assert res.delete_before_replace


def test_graviton_instance_types_get_arm64_images(
    run_components: ComponentRunner, invokes: list[pulumi.runtime.MockCallArgs]
) -> None:
    run, _ = run_aws(run_components, workers=1, masterInstanceType="t3.medium",
                     workerInstanceType="m7g.large")

    by_arch = {ami_filters(c)["architecture"][0]: ami_filters(c)
               for c in invokes if c.token == GET_AMI}
    assert set(by_arch) == {"x86_64", "arm64"}
    assert by_arch["arm64"]["name"] == [
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*"
    ]
    nodes = instances(run)
    assert nodes[MASTER].inputs["ami"] == AMI_X86
    assert nodes[worker(0)].inputs["ami"] == AMI_ARM


def test_ami_override_skips_the_lookup(
    run_components: ComponentRunner, invokes: list[pulumi.runtime.MockCallArgs]
) -> None:
    run, _ = run_aws(run_components, workers=1, ami="ami-0123456789abcdef0")

    assert not [c for c in invokes if c.token == GET_AMI]
    assert {r.inputs["ami"] for r in run.of_type(INSTANCE)} == {"ami-0123456789abcdef0"}


# ---------------------------------------------------------------------------------------------
# kubeadm steps on these hosts


def test_each_worker_joins_after_init_and_its_own_install_only(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_aws(run_components, workers=3)

    init = run.named(f"{MASTER}-init")
    assert run.depends_on(init, run.named(f"{MASTER}-install"))
    assert run.depends_on(init, run.named(MASTER))
    for i in range(3):
        join = run.named(f"{worker(i)}-join")
        assert run.depends_on(join, init)
        assert run.depends_on(join, run.named(f"{worker(i)}-install"))
        assert run.depends_on(join, run.named(worker(i)))  # the instance itself
        for j in range(3):
            if j != i:
                assert not run.depends_on(join, run.named(f"{worker(j)}-install"))
                assert not run.depends_on(join, run.named(worker(j)))
    installs = [r for r in run.of_type(COMMAND)
                if r.name.endswith("-install")]
    assert len(installs) == 1 + 3  # one per node
    assert not [r.name for r in installs if run.depends_on(r, init)]


def test_each_worker_is_drained_and_deleted_before_it_goes(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_aws(run_components, workers=2)

    for i in range(2):
        drain = run.named(f"{worker(i)}-drain")
        delete = drain.inputs["delete"]
        assert f"drain {worker(i)}" in delete
        assert f"delete node {worker(i)}" in delete
        assert delete.index(f"drain {worker(i)}") < delete.index(f"delete node {worker(i)}")
        assert drain.delete_before_replace is True
        assert drain.inputs["connection"]["host"] == FAKE_EIP  # runs on the master
        # Removed after the join, before the instance: the Node is drained while it runs.
        assert run.depends_on(run.named(f"{worker(i)}-join"), drain)
        assert run.depends_on(drain, run.named(worker(i)))


# ---------------------------------------------------------------------------------------------
# Keys and secrets


def login_keys(run: ProgramRun) -> list[Registration]:
    """Generated login key pairs (not the per-node host keys)."""
    return [
        k for k in run.of_type("tls:index/privateKey:PrivateKey")
        if not k.name.endswith(HOST_KEY_SUFFIX)
    ]


def test_generated_key_pair_is_secret_everywhere(run_components: ComponentRunner) -> None:
    run, wired = run_aws(run_components, workers=1)

    key = login_keys(run)
    assert len(key) == 1 and key[0].inputs == {"algorithm": "ED25519"}
    assert run.of_type("aws:ec2/keyPair:KeyPair")[0].inputs["publicKey"] == FAKE_PUBLIC_KEY
    assert wired.hosts.ssh_private_key is not None
    assert run.is_secret(wired.hosts.ssh_private_key)
    assert run.resolve(wired.hosts.ssh_private_key) == FAKE_PRIVATE_KEY
    assert run.is_secret(wired.cluster.kubeconfig)
    for res in run.of_type(COMMAND):
        assert res.inputs["connection"]["privateKey"] == FAKE_PRIVATE_KEY
        assert "connection" in res.secret_inputs, res.name
    for i in range(1):
        token = run.named(f"{worker(i)}-join-token")
        assert "stdout" in token.additional_secret_outputs
        assert token.inputs["logging"] == "none"
        assert "stdin" in run.named(f"{worker(i)}-join").secret_inputs


def test_user_supplied_key_pair_with_private_key(run_components: ComponentRunner) -> None:
    user_key = FAKE_PRIVATE_KEY.replace("ZmFrZQ==", "dXNlcg==")
    run, wired = run_aws(run_components, workers=1, sshPublicKey=FAKE_PUBLIC_KEY,
                         sshPrivateKey=user_key)

    assert not login_keys(run)
    assert run.of_type("aws:ec2/keyPair:KeyPair")[0].inputs["publicKey"] == FAKE_PUBLIC_KEY
    assert wired.hosts.ssh_private_key is None  # the user's own key is not exported again
    for res in run.of_type(COMMAND):
        assert res.inputs["connection"]["privateKey"] == user_key
        assert "connection" in res.secret_inputs
    assert run.resolve(wired.hosts.ssh_commands[MASTER]) == (
        f"ssh -o UserKnownHostsFile={CLUSTER}-known_hosts -o StrictHostKeyChecking=yes "
        f"-o HostKeyAlias={MASTER} ubuntu@{FAKE_EIP}"
    )


def test_user_supplied_public_key_alone_uses_the_ssh_agent(
    run_components: ComponentRunner,
) -> None:
    run, wired = run_aws(run_components, workers=1, sshPublicKey=FAKE_PUBLIC_KEY)

    assert not login_keys(run)
    assert wired.hosts.ssh_private_key is None
    for res in run.of_type(COMMAND):
        assert "privateKey" not in res.inputs["connection"]


# ---------------------------------------------------------------------------------------------
# No churn


def test_scale_out_leaves_existing_nodes_untouched(run_components: ComponentRunner) -> None:
    before, _ = run_aws(run_components, workers=2)
    after, _ = run_aws(run_components, workers=3)

    old = {res.urn: res for res in before.resources}
    new = {res.urn: res for res in after.resources}
    assert set(old) <= set(new)
    changed = {
        old[urn].name for urn in old
        if (old[urn].inputs, old[urn].secret_inputs, old[urn].ignore_changes)
        != (new[urn].inputs, new[urn].secret_inputs, new[urn].ignore_changes)
    }
    # Only the readiness gate, which lists the expected nodes, may change.
    assert changed == {f"{CLUSTER}-ready"}
    added = {new[urn].name for urn in set(new) - set(old)}
    assert added == {worker(2), *(f"{worker(2)}-{s}" for s in [*WORKER_STEPS, "host-key",
                                                               "ssh-wait"])}
    for name in (MASTER, worker(0), worker(1)):
        assert before.named(name).inputs == after.named(name).inputs


# ---------------------------------------------------------------------------------------------
# Waiting for sshd, bounded by time


def test_every_node_waits_for_its_sshd_before_its_first_ssh_step(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_aws(run_components, workers=1)
    for node, host in ((MASTER, FAKE_EIP), (worker(0), fake_public_ip(worker(0)))):
        wait = run.named(f"{node}-ssh-wait")
        # From this machine, where pulumi-command dials from: bash, no login.
        assert wait.type == "command:local:Command" and wait.inputs["create"] == "bash -s"
        stdin = wait.inputs["stdin"]
        for line in (f"export SSH_HOST={host}", "export SSH_PORT=22",
                     "export SSH_WAIT_SECONDS=600"):
            assert line + "\n" in stdin, (node, line)
        assert "SCRIPT_NAME=wait-for-ssh.sh" in stdin
        assert run.depends_on(run.named(f"{node}-install"), wait)
        assert len(wait.inputs["triggers"]) == 1  # the instance id: a new instance waits again


def test_a_private_worker_is_waited_for_from_the_master(run_components: ComponentRunner) -> None:
    run, _ = run_aws(run_components, workers=1, privateWorkers="true")
    wait = run.named(f"{worker(0)}-ssh-wait")
    assert wait.type == COMMAND
    assert wait.inputs["connection"]["host"] == FAKE_EIP  # runs on the jump host
    assert "proxy" not in wait.inputs["connection"]
    assert f"export SSH_HOST={node_ip('10.0.2.0/24', 1)}\n" in wait.inputs["stdin"]
    assert run.depends_on(wait, run.named(f"{MASTER}-ssh-wait"))
    assert run.depends_on(run.named(f"{worker(0)}-install"), wait)


# ---------------------------------------------------------------------------------------------
# Private workers


def test_private_workers_sit_behind_nat_and_are_reached_through_the_master(
    run_components: ComponentRunner,
) -> None:
    run, wired = run_aws(run_components, workers=2, privateWorkers="true")

    private = "10.0.2.0/24"
    subnets = {r.inputs["cidrBlock"]: r.inputs for r in run.of_type("aws:ec2/subnet:Subnet")}
    assert subnets[private]["mapPublicIpOnLaunch"] is False
    assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == 1
    tables = [r.inputs for r in run.of_type("aws:ec2/routeTable:RouteTable")]
    assert {"cidrBlock": "0.0.0.0/0", "natGatewayId": f"{CLUSTER}-nat-id"} in \
        [route for table in tables for route in table["routes"]]

    nodes = instances(run)
    assert nodes[MASTER].inputs["privateIp"] == node_ip(SUBNET, 0)
    association = run.of_type("aws:ec2/eipAssociation:EipAssociation")[0]
    for i in range(2):
        values = nodes[worker(i)].inputs
        assert values["privateIp"] == node_ip(private, i + 1)
        assert values["subnetId"] == f"{CLUSTER}-private-id"
        join = run.named(f"{worker(i)}-join")
        connection = join.inputs["connection"]
        assert connection["host"] == node_ip(private, i + 1)
        assert connection["proxy"]["host"] == FAKE_EIP
        assert connection["proxy"]["privateKey"] == FAKE_PRIVATE_KEY
        assert connection["hostKey"] == fake_host_public_key(worker(i))
        assert connection["proxy"]["hostKey"] == fake_host_public_key(MASTER)
        assert run.depends_on(join, association)
        command = run.resolve(wired.hosts.ssh_commands[worker(i)])
        assert command.endswith(f"ubuntu@{node_ip(private, i + 1)}")
        # Both hops check the pinned keys: the jump the master's, the login the worker's.
        assert command.count(f"-o UserKnownHostsFile={CLUSTER}-known_hosts") == 2
        assert f"-o HostKeyAlias={MASTER} -W %h:%p ubuntu@{FAKE_EIP}'" in command
        assert f"-o HostKeyAlias={worker(i)} -o ProxyCommand=" in command
    assert run.resolve(wired.hosts.ssh_known_hosts).splitlines() == [
        f"{node} {fake_host_public_key(node)}" for node in (MASTER, worker(0), worker(1))
    ]


def test_install_step_carries_package_source_and_login_user_and_no_version(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_aws(run_components, workers=1, packageSource="distro", sshUser="admin",
                     kubernetesVersion="1.30.8")
    for node in (MASTER, worker(0)):
        stdin = run.named(f"{node}-install").inputs["stdin"]
        for line in ("export LOGIN_USER=admin", "export PACKAGE_SOURCE=distro"):
            assert line + "\n" in stdin, (node, line)
        # A version here would rerun every install on an upgrade.
        assert "KUBERNETES_VERSION" not in stdin.split("#!/usr/bin/env bash")[0]
        assert stdin.index("SCRIPT_NAME=preflight.sh") < stdin.index(
            "SCRIPT_NAME=install-runtime.sh")
        assert "SCRIPT_NAME=install-kubeadm.sh" not in stdin
        # The kubernetes step holds the version: install on a new node, upgrade on a member.
        version = run.named(f"{node}-kubernetes").inputs
        assert "export KUBERNETES_VERSION=1.30.8\n" in version["stdin"], node
        assert version["stdin"].index("SCRIPT_NAME=install-kubeadm.sh") < version[
            "stdin"].index("SCRIPT_NAME=upgrade-node.sh")
    # The master's is created before init; a worker's runs only when the version changes.
    assert run.named(f"{MASTER}-kubernetes").inputs.get("create") == "sudo -n bash -s"
    assert "update" not in run.named(f"{MASTER}-kubernetes").inputs
    assert "create" not in run.named(f"{worker(0)}-kubernetes").inputs
    assert run.named(f"{worker(0)}-kubernetes").inputs["update"] == "sudo -n bash -s"


# ---------------------------------------------------------------------------------------------
# SSH host keys


def test_each_node_gets_its_own_host_key_and_every_step_pins_it(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_aws(run_components, workers=2)

    keys = run.of_type("tls:index/privateKey:PrivateKey")
    nodes = [MASTER, worker(0), worker(1)]
    expected = [f"{CLUSTER}-ssh", *(f"{n}-host-key" for n in nodes)]
    assert sorted(k.name for k in keys) == sorted(expected)
    for key in keys:
        assert key.inputs == {"algorithm": "ED25519"}
    # Which node each step runs on, by its connection's host.
    host_of = {FAKE_EIP: MASTER, **{fake_public_ip(n): n for n in nodes[1:]}}
    for res in run.of_type(COMMAND):
        connection = res.inputs["connection"]
        node = host_of[connection["host"]]
        assert connection["hostKey"] == fake_host_public_key(node), res.name
        assert "proxy" not in connection


def test_known_hosts_output_lists_every_node_by_name_with_its_key(
    run_components: ComponentRunner,
) -> None:
    run, wired = run_aws(run_components, workers=2)

    assert run.resolve(wired.hosts.ssh_known_hosts) == "".join(
        f"{node} {fake_host_public_key(node)}\n" for node in (MASTER, worker(0), worker(1))
    )
    # ...and each login names the line it must match, whatever address the node has today.
    for node in (MASTER, worker(0), worker(1)):
        assert f"-o HostKeyAlias={node} " in run.resolve(wired.hosts.ssh_commands[node])


def test_host_key_cloud_config_installs_only_the_given_ed25519_key() -> None:
    text = host_key_cloud_config("PRIVATE\nKEY\n", "ssh-ed25519 AAAA comment\n")
    assert text.startswith("#cloud-config\n")
    assert yaml.safe_load(text) == {
        "ssh_deletekeys": True,
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {
            "ed25519_private": "PRIVATE\nKEY\n",
            "ed25519_public": "ssh-ed25519 AAAA comment",
        },
    }
