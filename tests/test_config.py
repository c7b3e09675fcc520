"""components/config.py: the shipped stacks validate, and each bad value fails with one message
that names the key, shows the value and says the expected form."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.config import (
    DEFAULT_NODE_IMAGE,
    ClaimVolume,
    ConfigError,
    ConfigErrors,
    KubernetesVersion,
    ScratchVolume,
    StackConfig,
    control_plane_ip,
    instance_architecture,
    load_balancer_ip,
    node_ip,
    parse_stack_config,
)
from tests.conftest import ProgramRunner, config_values

NGINX = {"name": "nginx", "image": "nginx:1.27.3", "replicas": 2, "port": 80, "nodePort": 30080}


def app(**fields: Any) -> list[dict[str, Any]]:
    return [{**NGINX, **fields}]


def parse(stack: str, **overrides: Any) -> StackConfig:
    return parse_stack_config(config_values(stack, **overrides), stack)


def test_dev_stack_as_shipped() -> None:
    config = parse("dev")
    assert config.target == "local"
    assert config.workers == 0
    assert config.cluster_name == "kubeadm-dev"
    assert config.cluster.kubernetes_version == KubernetesVersion(37, None)
    assert config.local is not None and config.aws is None
    assert config.local.node_image == DEFAULT_NODE_IMAGE
    assert config.local.api_server_port == 6443
    assert [a.name for a in config.apps] == ["nginx"]
    assert config.apps[0].replicas == 2
    assert config.apps[0].node_port in config.local.node_ports


def test_aws_stack_as_shipped() -> None:
    config = parse("aws")
    assert config.target == "aws"
    assert config.workers == 2
    assert config.aws is not None and config.local is None
    assert config.aws.region == "eu-west-1"
    assert config.aws.admin_cidrs == ("203.0.113.0/24",)
    assert config.aws.vpc_cidr == "10.0.0.0/16" and config.aws.subnet_cidr == "10.0.1.0/24"
    assert config.aws.master_architecture == "x86_64"
    assert config.apps[0].replicas == 3


def test_control_plane_nodes_and_their_fixed_addresses() -> None:
    config = parse("dev", controlPlaneNodes="5")
    assert config.control_plane_nodes == 5
    assert config.control_plane_names == [
        "kubeadm-dev-master", *(f"kubeadm-dev-control-plane-{i}" for i in range(1, 5))]
    assert [control_plane_ip("172.30.0.0/24", i) for i in range(5)] == [
        "172.30.0.10", "172.30.0.9", "172.30.0.8", "172.30.0.7", "172.30.0.6"]
    assert load_balancer_ip("172.30.0.0/24") == "172.30.0.3"
    assert parse("dev").control_plane_names == ["kubeadm-dev-master"]
    local = parse("dev").local
    assert local is not None
    assert local.load_balancer_image == "public.ecr.aws/docker/library/haproxy:3.2"


def test_aws_keeps_one_control_plane_node_and_no_load_balancer_by_default() -> None:
    aws = parse("aws").aws
    assert aws is not None
    assert (aws.api_load_balancer, aws.control_plane_zones, aws.zone_subnet_cidrs) == (
        False, (), ("10.0.1.0/24",))


def test_aws_control_plane_nodes_spread_over_three_zones_at_fixed_addresses() -> None:
    config = parse("aws", controlPlaneNodes="7")
    aws = config.aws
    assert aws is not None and config.control_plane_nodes == 7
    assert aws.api_load_balancer is True  # several control-plane nodes imply it
    assert aws.control_plane_zones == ()  # looked up at deploy time
    # The master's subnet first, then blocks of its size from the top of vpcCidr down.
    assert aws.zone_subnet_cidrs == ("10.0.1.0/24", "10.0.255.0/24", "10.0.254.0/24")
    assert [aws.control_plane_placement(i) for i in range(7)] == [
        (0, "10.0.1.0/24", "10.0.1.10"),  # the master, where it has always been
        (1, "10.0.255.0/24", "10.0.255.9"),
        (2, "10.0.254.0/24", "10.0.254.8"),
        (0, "10.0.1.0/24", "10.0.1.7"),
        (1, "10.0.255.0/24", "10.0.255.6"),
        (2, "10.0.254.0/24", "10.0.254.5"),
        (0, "10.0.1.0/24", "10.0.1.4"),
    ]
    # The workers' addresses do not move.
    assert aws.worker_subnet_cidr == "10.0.1.0/24"


def test_aws_zones_and_their_subnets_can_be_given() -> None:
    aws = parse("aws", controlPlaneNodes="3", availabilityZone="eu-west-1b",
                controlPlaneZones=["eu-west-1b", "eu-west-1c"],
                controlPlaneSubnetCidrs=["10.0.8.0/26"]).aws
    assert aws is not None
    assert aws.control_plane_zones == ("eu-west-1b", "eu-west-1c")
    assert aws.zone_subnet_cidrs == ("10.0.1.0/24", "10.0.8.0/26")
    assert [aws.control_plane_placement(i)[:2] for i in range(3)] == [
        (0, "10.0.1.0/24"), (1, "10.0.8.0/26"), (0, "10.0.1.0/24")]
    # One control-plane node may keep the load balancer, so it can grow later.
    one = parse("aws", apiLoadBalancer="true").aws
    assert one is not None and one.api_load_balancer and one.zone_count == 3


@pytest.mark.parametrize(("vpc", "subnet", "private"), [
    ("10.0.0.0/16", "10.0.1.0/24", "10.0.2.0/24"),
    ("10.0.0.0/16", "10.0.255.0/24", "10.0.254.0/24"),  # the top blocks are taken: skipped
    ("172.16.0.0/20", "172.16.15.0/24", "172.16.14.0/25"),
    ("10.20.0.0/24", "10.20.0.0/26", "10.20.0.192/26"),
])
def test_default_zone_subnets_never_overlap_the_other_networks(
    vpc: str, subnet: str, private: str,
) -> None:
    aws = parse("aws", controlPlaneNodes="5", vpcCidr=vpc, subnetCidr=subnet,
                privateSubnetCidr=private, privateWorkers="true").aws
    assert aws is not None
    zones = [ipaddress.ip_network(c) for c in aws.zone_subnet_cidrs]
    assert len(zones) == 3 and str(zones[0]) == subnet
    others = [ipaddress.ip_network(n) for n in (private, "10.244.0.0/16", "10.96.0.0/12")]
    for i, zone in enumerate(zones):
        assert zone.subnet_of(ipaddress.ip_network(vpc))  # type: ignore[arg-type]
        assert zone.prefixlen == zones[0].prefixlen
        assert not any(zone.overlaps(other) for other in [*others, *zones[:i]])


def test_every_bad_zone_and_zone_subnet_is_reported_at_once() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse("aws", controlPlaneNodes="3", apiLoadBalancer="nope",
              controlPlaneZones=["eu-west-1a", "eu-west-1a", "us-east-1b"],
              controlPlaneSubnetCidrs=["10.0.1.0/24", "10.1.0.0/24", "10.0.2.128/25",
                                       "10.0.9.0/24", "10.0.9.0/25", "x"])
    assert [(e.key, e.value) for e in caught.value.errors] == [
        ("apiLoadBalancer", "nope"),
        ("controlPlaneZones[1]", "eu-west-1a"),
        ("controlPlaneZones[2]", "us-east-1b"),
        ("controlPlaneSubnetCidrs", ["10.0.1.0/24", "10.1.0.0/24", "10.0.2.128/25",
                                     "10.0.9.0/24", "10.0.9.0/25", "x"]),
        ("controlPlaneSubnetCidrs[0]", "10.0.1.0/24"),
        ("controlPlaneSubnetCidrs[1]", "10.1.0.0/24"),
        ("controlPlaneSubnetCidrs[2]", "10.0.2.128/25"),
        ("controlPlaneSubnetCidrs[4]", "10.0.9.0/25"),
        ("controlPlaneSubnetCidrs[5]", "x"),
    ]
    expected = [e.expected for e in caught.value.errors]
    assert expected[4] == "a subnet that does not overlap subnetCidr 10.0.1.0/24"
    assert expected[5] == "a subnet inside vpcCidr 10.0.0.0/16"
    assert expected[6] == "a subnet that does not overlap privateSubnetCidr 10.0.2.0/24"
    assert expected[7] == "a subnet that does not overlap controlPlaneSubnetCidrs[3] 10.0.9.0/24"


def test_defaults_when_keys_are_absent() -> None:
    config = parse_stack_config({}, "dev")
    assert config.target == "local" and config.workers == 0
    assert config.cluster.pod_cidr == "10.244.0.0/16"
    assert config.cluster.service_cidr == "10.96.0.0/12"
    assert config.apps[0].name == "nginx"
    assert config.apps[0].namespace == "apps"
    assert config.cluster.drain_timeout_seconds == 300


@pytest.mark.parametrize("stack", ["dev", "aws"])
def test_both_stack_files_load_under_mocks(run_program: ProgramRunner, stack: str) -> None:
    run = run_program(stack)  # raises if the program fails
    assert run.output("target") == ("local" if stack == "dev" else "aws")


def test_bad_value_registers_nothing(run_program: ProgramRunner) -> None:
    run = run_program("aws", expect_error=True, workers="-3")
    assert isinstance(run.error, ConfigError)
    assert run.resources == []


def test_node_ip_rule() -> None:
    assert node_ip("10.0.1.0/24", 0) == "10.0.1.10"
    assert node_ip("10.0.1.0/24", 1) == "10.0.1.11"
    assert node_ip("172.30.0.0/24", 3) == "172.30.0.13"


@pytest.mark.parametrize(
    ("instance_type", "arch"),
    [("t3.medium", "x86_64"), ("t4g.medium", "arm64"), ("m7gd.large", "arm64"),
     ("c6gn.xlarge", "arm64"), ("g4dn.xlarge", "x86_64"), ("a1.large", "arm64"),
     ("m7i.large", "x86_64")],
)
def test_instance_architecture(instance_type: str, arch: str) -> None:
    assert instance_architecture(instance_type) == arch


def test_patch_version_and_matching_node_image() -> None:
    config = parse("dev", kubernetesVersion="1.37.0")
    assert str(config.cluster.kubernetes_version) == "1.37.0"


def test_local_ports_and_app_options() -> None:
    config = parse("dev", localNodePorts="30100-30104", apps=app(
        nodePort=30104, namespace="web", serviceType="NodePort", capabilities=["NET_BIND_SERVICE"],
        cpuLimit="1", memoryLimit="256Mi"))
    assert config.apps[0].namespace == "web"
    assert config.apps[0].capabilities == ("NET_BIND_SERVICE",)
    assert config.local is not None and list(config.local.node_ports)[-1] == 30104


def test_admin_cidrs_accepts_a_single_string() -> None:
    config = parse("aws", adminCidrs="198.51.100.7/32")
    assert config.aws is not None and config.aws.admin_cidrs == ("198.51.100.7/32",)


# (stack, overrides, key named in the message, fragment of the expected form)
BAD_INPUTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("dev", {"controlPlaneNodes": "2"}, "controlPlaneNodes", "an odd number from 1 to 7"),
    ("dev", {"controlPlaneNodes": "9"}, "controlPlaneNodes", "a whole number from 1 to 7"),
    ("dev", {"controlPlaneNodes": "0"}, "controlPlaneNodes", "from 1 to 7"),
    ("aws", {"controlPlaneNodes": "4"}, "controlPlaneNodes", "an odd number from 1 to 7"),
    ("aws", {"controlPlaneNodes": "3", "apiLoadBalancer": "false"}, "apiLoadBalancer",
     "true (or unset) with controlPlaneNodes 3"),
    ("aws", {"apiLoadBalancer": "yes"}, "apiLoadBalancer", "true or false"),
    ("aws", {"controlPlaneZones": ["eu-west-1a"]}, "controlPlaneZones",
     "nothing unless apiLoadBalancer is true"),
    ("aws", {"controlPlaneSubnetCidrs": ["10.0.3.0/24"]}, "controlPlaneSubnetCidrs",
     "nothing unless apiLoadBalancer is true"),
    ("aws", {"controlPlaneNodes": "3", "controlPlaneZones": []}, "controlPlaneZones",
     "a list of 1 to 6 zones of region eu-west-1"),
    ("aws", {"controlPlaneNodes": "3", "availabilityZone": "eu-west-1b",
             "controlPlaneZones": ["eu-west-1a", "eu-west-1b"]}, "controlPlaneZones[0]",
     "availabilityZone eu-west-1b: the first zone is the master's"),
    ("aws", {"controlPlaneNodes": "3", "controlPlaneZones": ["eu-west-1a", "eu-west-1b"],
             "controlPlaneSubnetCidrs": ["10.0.3.0/24", "10.0.4.0/24"]},
     "controlPlaneSubnetCidrs", "1 subnets, one per zone of controlPlaneZones after the first"),
    ("aws", {"controlPlaneNodes": "3", "vpcCidr": "10.0.0.0/23", "subnetCidr": "10.0.1.0/24"},
     "controlPlaneSubnetCidrs", "vpcCidr 10.0.0.0/23 has no room for 2 blocks of /24"),
    ("aws", {"apiLoadBalancer": "true", "controlPlaneSubnetCidrs": [f"10.0.{i}.0/24"
                                                                    for i in range(3, 9)]},
     "controlPlaneSubnetCidrs", "at most 5 subnets"),
    ("dev", {"loadBalancerImage": "haproxy"}, "loadBalancerImage", "a pinned image reference"),
    ("dev", {"target": "gcp"}, "target", "one of local, aws, machines"),
    ("dev", {"workers": "-1"}, "workers", "a whole number from 0 to 250"),
    ("dev", {"workers": "two"}, "workers", "a whole number"),
    ("dev", {"workers": "251"}, "workers", "from 0 to 250"),
    ("dev", {"worker": "3"}, "worker", "one of the documented keys"),
    ("dev", {"kubernetesVersion": "1.23"}, "kubernetesVersion", "from 1.24"),
    ("dev", {"kubernetesVersion": "2.0"}, "kubernetesVersion", "such as 1.31 or 1.31.4"),
    ("dev", {"kubernetesVersion": "1.99"}, "kubernetesVersion", "to 1.37"),
    ("dev", {"kubernetesVersion": "stable"}, "kubernetesVersion", "a Kubernetes minor version"),
    ("dev", {"drainTimeoutSeconds": "5"}, "drainTimeoutSeconds", "from 10 to 3600"),
    ("aws", {"drainTimeoutSeconds": "soon"}, "drainTimeoutSeconds", "a whole number"),
    ("dev", {"registryMirrors": "docker.io"}, "registryMirrors", "a mapping of registry name"),
    ("aws", {"registryMirrors": {"Docker.IO": ["https://m.example"]}}, "registryMirrors.Docker.IO",
     "lowercase"),
    ("dev", {"registryMirrors": {"docker.io": []}}, "registryMirrors.docker.io",
     "a list of 1 to 8 mirror URLs"),
    ("machines", {"registryMirrors": {"ghcr.io": ["https://user:pw@m.example"]}},
     "registryMirrors.ghcr.io[0]", "no credentials"),
    ("dev", {"registryMirrors": {"docker.io": ["ftp://m.example"]}},
     "registryMirrors.docker.io[0]", "an http:// or https:// URL"),
    ("dev", {"apps": app(volumes=[{"name": "tmp", "mountPath": "/data", "emptyDir": {}}])},
     "apps[0].volumes[0].name", "a name no other volume of the app has"),
    ("dev", {"apps": app(volumes=[{"name": "d", "mountPath": "/", "emptyDir": {}}])},
     "apps[0].volumes[0].mountPath", "an absolute path"),
    ("aws", {"apps": app(volumes=[{"name": "d", "mountPath": "/data"}])},
     "apps[0].volumes[0]", "exactly one of emptyDir"),
    ("aws", {"apps": app(volumes=[{"name": "d", "mountPath": "/data", "emptyDir": "[]"}])},
     "apps[0].volumes[0].emptyDir", "a mapping"),
    ("dev", {"apps": app(volumes=[{"name": "d", "mountPath": "/d",
                                   "emptyDir": {"sizeLimit": "lots"}}])},
     "apps[0].volumes[0].emptyDir.sizeLimit", "a size such as 64Mi"),
    ("dev", {"podCidr": "10.244.0.1/16"}, "podCidr", "no host bits set"),
    ("dev", {"podCidr": "10.244.0.0"}, "podCidr", "CIDR form"),
    ("dev", {"podCidr": "fd00::/64"}, "podCidr", "an IPv4 network"),
    ("dev", {"podCidr": "10.244.0.0/24"}, "podCidr", "a prefix from /8 to /22"),
    ("dev", {"serviceCidr": "10.244.0.0/16"}, "serviceCidr", "does not overlap podCidr"),
    ("dev", {"serviceCidr": "10.0.0.0/8"}, "serviceCidr", "a prefix from /12 to /28"),
    ("dev", {"networkCidr": "10.244.1.0/24"}, "networkCidr", "does not overlap podCidr"),
    ("dev", {"networkCidr": "172.30.0.0/28", "workers": "5"}, "networkCidr",
     "room for 6 node addresses"),
    ("dev", {"apiServerPort": "80"}, "apiServerPort", "from 1024 to 65535"),
    ("dev", {"apiServerPort": "http"}, "apiServerPort", "a whole number"),
    ("dev", {"apiServerPort": "30085"}, "apiServerPort", "a port outside localNodePorts"),
    ("dev", {"nodeImage": "kindest/node:v1.30.8"}, "nodeImage", "matches kubernetesVersion 1.37"),
    ("dev", {"kubernetesVersion": "1.37.5"}, "nodeImage", "matches kubernetesVersion 1.37.5"),
    ("dev", {"nodeImage": "kindest/node:latest"}, "nodeImage", "other than latest"),
    ("dev", {"localNodePorts": "30000-31000"}, "localNodePorts", "at most 100 ports"),
    ("dev", {"localNodePorts": "29000-29010"}, "localNodePorts", "within 30000-32767"),
    ("dev", {"appsNamespace": "Apps"}, "appsNamespace", "a DNS-1123 label"),
    ("dev", {"apps": "nginx"}, "apps[0]", "a mapping of app settings"),
    ("dev", {"apps": app(name="Nginx_1")}, "apps[0].name", "a DNS-1123 label"),
    ("dev", {"apps": app(name="a" * 64)}, "apps[0].name", "at most 63 characters"),
    ("dev", {"apps": [NGINX, {**NGINX, "nodePort": 30081}]}, "apps[1].name",
     "a name not used by apps[0]"),
    ("dev", {"apps": [NGINX, {**NGINX, "name": "web"}]}, "apps[1].nodePort",
     "a nodePort not used by apps[0]"),
    ("dev", {"apps": app(port=0)}, "apps[0].port", "from 1 to 65535"),
    ("dev", {"apps": app(port=70000)}, "apps[0].port", "from 1 to 65535"),
    ("dev", {"apps": app(nodePort=30090)}, "apps[0].nodePort", "from 30080 to 30089"),
    ("dev", {"localNodePorts": "30080-30080", "apps": [
        {**NGINX, "nodePort": None}, {**NGINX, "name": "web", "nodePort": None}]},
     "apps[1].nodePort", "every published port is used; widen localNodePorts"),
    ("aws", {"apps": app(nodePort=29999)}, "apps[0].nodePort", "from 30000 to 32767"),
    ("dev", {"apps": app(image="nginx")}, "apps[0].image", "a pinned image reference"),
    ("dev", {"apps": app(image="nginx:latest")}, "apps[0].image", "other than latest"),
    ("dev", {"apps": app(image="Nginx:1.27")}, "apps[0].image", "a pinned image reference"),
    ("dev", {"apps": app(replicas=-1)}, "apps[0].replicas", "from 0 to 1000"),
    ("dev", {"apps": app(serviceType="Ingress")}, "apps[0].serviceType",
     "one of NodePort, ClusterIP, LoadBalancer"),
    ("aws", {"apps": app(serviceType="ClusterIP")}, "apps[0].nodePort",
     "no nodePort when serviceType is ClusterIP"),
    ("dev", {"apps": app(replica=3)}, "apps[0].replica", "one of the app keys"),
    ("dev", {"apps": [{"name": "web", "port": 80, "serviceType": "ClusterIP"}]}, "apps[0].image",
     "a value for image"),
    ("dev", {"apps": app(cpuRequest="lots")}, "apps[0].cpuRequest", "a CPU quantity"),
    ("dev", {"apps": app(memoryLimit="1GB")}, "apps[0].memoryLimit", "a memory quantity"),
    ("dev", {"apps": app(capabilities=["net_admin"])}, "apps[0].capabilities[0]",
     "a Linux capability name"),
    ("aws", {"adminCidrs": None}, "adminCidrs", "no open-to-the-world default"),
    ("aws", {"adminCidrs": ["0.0.0.0/0"]}, "adminCidrs[0]", "not 0.0.0.0/0"),
    ("aws", {"adminCidrs": ["10.0.0.300/32"]}, "adminCidrs[0]", "CIDR form"),
    ("aws", {"aws:region": None}, "aws:region", "an AWS region"),
    ("aws", {"aws:region": "Europe"}, "aws:region", "an AWS region such as eu-west-1"),
    ("aws", {"subnetCidr": "10.1.1.0/24"}, "subnetCidr", "a subnet inside vpcCidr 10.0.0.0/16"),
    ("aws", {"subnetCidr": "10.0.1.0/28", "workers": "5"}, "subnetCidr",
     "room for 6 node addresses"),
    ("aws", {"vpcCidr": "10.96.0.0/16", "subnetCidr": "10.96.1.0/24"}, "serviceCidr",
     "does not overlap vpcCidr"),
    ("aws", {"masterInstanceType": "t3.micro"}, "masterInstanceType", "at least 2 GiB"),
    ("aws", {"workerInstanceType": "big"}, "workerInstanceType", "an EC2 instance type"),
    ("aws", {"workerInstanceType": "t2.small"}, "workerInstanceType", "at least 2 vCPUs"),
    ("aws", {"masterInstanceType": "m7g.medium"}, "masterInstanceType", "at least 2 vCPUs"),
    ("aws", {"ami": "ami-123"}, "ami", "an AMI id"),
    ("aws", {"sshPublicKey": "not a key"}, "sshPublicKey", "an OpenSSH public key line"),
    ("aws", {"sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "sshPrivateKey",
     "unless sshPublicKey is set"),
    ("aws", {"rootVolumeSize": "10"}, "rootVolumeSize", "from 20 to 16384"),
    ("aws", {"packageSource": "snap"}, "packageSource", "one of docker, distro"),
    ("aws", {"availabilityZone": "us-east-1a"}, "availabilityZone", "a zone of region eu-west-1"),
    ("aws", {"privateWorkers": "yes"}, "privateWorkers", "true or false"),
]


@pytest.mark.parametrize(
    ("stack", "overrides", "key", "expected"),
    BAD_INPUTS,
    ids=[f"{stack}-{key}-{i}" for i, (stack, _, key, _) in enumerate(BAD_INPUTS)],
)
def test_bad_input_is_rejected_with_a_clear_message(
    stack: str, overrides: dict[str, Any], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(stack, **overrides)
    error = caught.value
    message = str(error)
    assert error.key == key, message
    assert message.startswith(f"invalid config {key!r}: got "), message
    assert expected in message, message


def test_bad_inputs_are_many_and_distinct() -> None:
    assert len(BAD_INPUTS) >= 30
    assert len({repr(overrides) for _, overrides, _, _ in BAD_INPUTS}) == len(BAD_INPUTS)


def test_private_key_is_never_echoed() -> None:
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETSECRET"
    with pytest.raises(ConfigError) as caught:
        parse("aws", sshPrivateKey=secret)
    assert "SECRETSECRET" not in str(caught.value)


def test_config_from_the_engine_environment_is_read(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `pulumi up` hands config over as PULUMI_CONFIG; keys there count too."""
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"kubeadm-cluster:workers": "-2"}))
    run = run_program("dev", expect_error=True, workers=None)
    assert isinstance(run.error, ConfigError) and run.error.key == "workers"


def test_every_bad_key_is_reported_at_once_across_sections_and_apps() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse(
            "dev",
            worker="3",
            workers="-1",
            apps=[
                {**NGINX, "replicas": -1, "image": "nginx:latest", "cpuLimit": "lots"},
                {**NGINX, "name": "web", "port": 0, "nodePort": 30090},
                {**NGINX, "name": "ok", "nodePort": 30081},
            ],
        )
    errors = caught.value.errors
    assert [error.key for error in errors] == [
        "worker",
        "workers",
        "apps[0].image",
        "apps[0].replicas",
        "apps[0].cpuLimit",
        "apps[1].nodePort",
        "apps[1].port",
    ]
    message = str(caught.value)
    assert message.splitlines()[0] == "invalid config (7 problems):"
    for error in errors:
        assert f"  - invalid config {error.key!r}: got " in message


def test_a_bad_cluster_network_and_a_bad_app_are_reported_together() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse("aws", podCidr="10.244.0.1/16", apps=app(image="nginx"))
    assert [error.key for error in caught.value.errors] == ["podCidr", "apps[0].image"]


def test_a_bad_config_raises_a_run_error_so_pulumi_prints_no_traceback() -> None:
    with pytest.raises(pulumi.RunError):
        parse("dev", workers="-1")


def local_ports(**overrides: Any) -> dict[str, int | None]:
    return {a.name: a.node_port for a in parse("dev", **overrides).apps}


def test_local_apps_without_a_node_port_get_one_stably() -> None:
    def web(name: str, **fields: Any) -> dict[str, Any]:
        return {**NGINX, "name": name, "nodePort": None, **fields}

    first = local_ports(apps=[web("a"), {**NGINX, "name": "b", "nodePort": 30081}, web("c")])
    assert first == {"a": 30080, "b": 30081, "c": 30082}
    # Appending an app, or removing the last one, moves no other app's port.
    appended = local_ports(apps=[web("a"), {**NGINX, "name": "b", "nodePort": 30081}, web("c"),
                                 web("d")])
    assert appended == {**first, "d": 30083}
    assert local_ports(apps=[web("a"), {**NGINX, "name": "b", "nodePort": 30081}]) == {
        "a": 30080, "b": 30081}
    # A ClusterIP app needs none, and takes none.
    assert local_ports(apps=[web("a", serviceType="ClusterIP"), web("e")]) == {
        "a": None, "e": 30080}


def test_aws_apps_without_a_node_port_are_left_to_kubernetes() -> None:
    config = parse("aws", apps=app(nodePort=None))
    assert config.apps[0].node_port is None


def test_every_bad_aws_and_local_setting_is_reported_at_once() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse("aws", **{"aws:region": "Europe", "masterInstanceType": "t3.micro",
                        "adminCidrs": ["0.0.0.0/0", "10.0.0.300/32"], "ami": "ami-123",
                        "rootVolumeSize": "10"})
    assert [error.key for error in caught.value.errors] == [
        "aws:region", "masterInstanceType", "adminCidrs[0]", "adminCidrs[1]", "ami",
        "rootVolumeSize",
    ]
    with pytest.raises(ConfigErrors) as caught:
        parse("dev", nodeImage="kindest/node:v1.30.8", networkCidr="10.244.1.0/24",
              apiServerPort="30085")
    assert [error.key for error in caught.value.errors] == [
        "nodeImage", "networkCidr", "apiServerPort",
    ]


def test_registry_mirrors_are_sorted_and_every_bad_entry_is_reported_at_once() -> None:
    config = parse("aws", registryMirrors={
        "ghcr.io": "https://ghcr-mirror.example:5000/",
        "docker.io": ["https://mirror.example", "http://10.0.0.5:5000"],
        "_default": ["https://all.example"],
    })
    assert config.cluster.registry_mirrors == (
        ("_default", ("https://all.example",)),
        ("docker.io", ("https://mirror.example", "http://10.0.0.5:5000")),
        ("ghcr.io", ("https://ghcr-mirror.example:5000",)),
    )
    with pytest.raises(ConfigError) as raised:
        parse("aws", registryMirrors={"docker.io": ["https://a.example", "https://a.example/"],
                                      "BAD": ["https://b.example"], "quay.io": ["b.example"]})
    message = str(raised.value)
    for key in ("registryMirrors.docker.io[1]", "registryMirrors.BAD",
                "registryMirrors.quay.io[0]"):
        assert f"'{key}'" in message


def test_scratch_volumes_parse_and_every_bad_one_is_reported_at_once() -> None:
    config = parse("dev", apps=app(volumes=[
        {"name": "cache", "mountPath": "/var/cache/nginx", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "ram", "mountPath": "/run/work", "emptyDir": {"medium": "Memory"}},
    ]))
    assert config.apps[0].volumes == (
        ScratchVolume("cache", "/var/cache/nginx", "", "64Mi"),
        ScratchVolume("ram", "/run/work", "Memory", None))
    assert not config.apps[0].stateful
    with pytest.raises(ConfigError) as raised:
        parse("dev", apps=app(volumes=[
            {"name": "a", "mountPath": "/data", "emptyDir": {}},
            {"name": "a", "mountPath": "/data/inner", "emptyDir": {"medium": "Disk"}},
            {"name": "b", "mountPath": "/x/../etc", "emptyDir": {}, "readOnly": "maybe"},
        ]))
    message = str(raised.value)
    for key in ("apps[0].volumes[1].name", "apps[0].volumes[1].mountPath",
                "apps[0].volumes[1].emptyDir.medium", "apps[0].volumes[2].mountPath",
                "apps[0].volumes[2].readOnly"):
        assert f"'{key}'" in message, key


def test_claim_volumes_make_a_stateful_app_with_retained_claims_by_default() -> None:
    config = parse("dev", apps=app(volumes=[
        {"name": "data", "mountPath": "/data", "volumeClaimTemplate": {"storage": "1Gi"}},
        {"name": "seed", "mountPath": "/seed", "readOnly": "true", "volumeClaimTemplate": {
            "storage": "100Mi", "accessModes": ["ReadOnlyMany"], "storageClassName": "fast"}},
    ]))
    only = config.apps[0]
    assert only.volumes == (
        ClaimVolume("data", "/data", "1Gi"),
        ClaimVolume("seed", "/seed", "100Mi", ("ReadOnlyMany",), "fast", read_only=True))
    assert only.stateful
    assert (only.fs_group, only.claims_when_deleted) == (65532, "Retain")
    deleting = parse("dev", apps=app(
        volumes=[{"name": "data", "mountPath": "/data", "volumeClaimTemplate": {"storage": "1Gi"}}],
        fsGroup=2000, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"})).apps[0]
    assert (deleting.fs_group, deleting.claims_when_deleted) == (2000, "Delete")


def test_every_bad_claim_volume_key_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        parse("dev", apps=[
            {**NGINX, "name": "a" * 53, "fsGroup": 0,
             "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"},
             "volumes": [
                 {"name": "data", "mountPath": "/data",
                  "volumeClaimTemplate": {"storage": "lots", "accessModes": ["ReadWriteAlways"],
                                          "storageClassName": "Fast_SSD", "size": "1Gi"}},
                 {"name": "both", "mountPath": "/both", "emptyDir": {},
                  "volumeClaimTemplate": {"storage": "1Gi"}},
             ]},
            {**NGINX, "name": "plain", "nodePort": 30081, "fsGroup": 1000},
        ])
    message = str(raised.value)
    for key in ("apps[0].name", "apps[0].fsGroup",
                "apps[0].persistentVolumeClaimRetentionPolicy.whenScaled",
                "apps[0].volumes[0].volumeClaimTemplate.storage",
                "apps[0].volumes[0].volumeClaimTemplate.accessModes",
                "apps[0].volumes[0].volumeClaimTemplate.storageClassName",
                "apps[0].volumes[0].volumeClaimTemplate.size", "apps[0].volumes[1]",
                "apps[1].fsGroup"):
        assert f"'{key}'" in message, key


def test_a_claim_needs_a_class_where_the_cluster_has_no_default() -> None:
    claim = {"name": "data", "mountPath": "/data", "volumeClaimTemplate": {"storage": "1Gi"}}
    with pytest.raises(ConfigError) as raised:
        parse("machines", apps=app(volumes=[claim]))
    assert "'apps[0].volumes[0].volumeClaimTemplate.storageClassName'" in str(raised.value)
    assert "has no default StorageClass" in str(raised.value)
    named = {**claim, "volumeClaimTemplate": {"storage": "1Gi", "storageClassName": "nfs"}}
    assert parse("machines", apps=app(volumes=[named])).apps[0].stateful
    # dev: the node image's local-path class; aws: the EBS CSI driver's gp3.
    for stack in ("dev", "aws"):
        assert parse(stack, apps=app(volumes=[claim])).apps[0].stateful


def test_claims_the_cluster_could_never_bind_are_refused_up_front() -> None:
    def claim(**template: Any) -> dict[str, Any]:
        return {"name": "data", "mountPath": "/data",
                "volumeClaimTemplate": {"storage": "1Gi", **template}}

    with pytest.raises(ConfigError) as raised:
        parse("dev", apps=[
            {**NGINX, "volumes": [claim(storage="0Gi")]},
            {**NGINX, "name": "b", "nodePort": 30081,
             "volumes": [claim(accessModes=["ReadWriteOncePod", "ReadWriteOnce"])]},
        ])
    message = str(raised.value)
    assert "'apps[0].volumes[0].volumeClaimTemplate.storage'" in message
    assert "'apps[1].volumes[0].volumeClaimTemplate.accessModes'" in message
    # The default classes (local-path, EBS) attach a volume to one node.
    for stack, default_class in (("dev", "standard"), ("aws", "gp3")):
        with pytest.raises(ConfigError) as raised:
            parse(stack, apps=app(volumes=[claim(accessModes=["ReadWriteMany"])]))
        assert raised.value.key == "apps[0].volumes[0].volumeClaimTemplate.accessModes"
        assert f"the default class {default_class} attaches a volume to one node" in str(
            raised.value)
    shared = parse("aws", apps=app(volumes=[claim(accessModes=["ReadWriteMany"],
                                                  storageClassName="efs")]))
    assert shared.apps[0].stateful


def test_claim_features_kubernetes_turns_on_in_1_27_are_refused_before() -> None:
    old = {"kubernetesVersion": "1.26", "nodeImage": "kindest/node:v1.26.15"}
    with pytest.raises(ConfigError) as raised:
        parse("dev", **old, apps=app(
            volumes=[{"name": "data", "mountPath": "/data", "volumeClaimTemplate": {
                "storage": "1Gi", "accessModes": ["ReadWriteOncePod"]}}],
            persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"}))
    message = str(raised.value)
    assert "'apps[0].persistentVolumeClaimRetentionPolicy.whenDeleted'" in message
    assert "'apps[0].volumes[0].volumeClaimTemplate.accessModes'" in message
    kept = parse("dev", **old, apps=app(volumes=[
        {"name": "data", "mountPath": "/data", "volumeClaimTemplate": {"storage": "1Gi"}}]))
    assert kept.apps[0].claims_when_deleted == "Retain"


def test_no_app_may_take_the_name_of_a_stateful_apps_headless_service() -> None:
    claim = {"name": "data", "mountPath": "/data", "volumeClaimTemplate": {"storage": "1Gi"}}
    with pytest.raises(ConfigError) as raised:
        parse("dev", apps=[{**NGINX, "name": "db", "volumes": [claim]},
                           {**NGINX, "name": "db-headless", "nodePort": 30081}])
    assert "'apps[1].name'" in str(raised.value)
    assert "headless Service of apps[0]" in str(raised.value)


@pytest.mark.parametrize("stack", ["dev", "aws", "machines"])
def test_shipped_stack_files_hold_no_secrets_provider_state(stack: str) -> None:
    """A shipped stack file must work with the user's own passphrase: an encryptionsalt (or a
    secure value) would tie it to whoever ran pulumi in the checkout."""
    text = (Path(__file__).resolve().parents[1] / f"Pulumi.{stack}.yaml").read_text()
    assert "encryptionsalt" not in text
    assert "secure:" not in text
