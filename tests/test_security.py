"""Security by default, program-wide under Pulumi mocks.

Every registered resource's inputs and outputs and every stack output are walked for values that
carry a credential (private key, bootstrap token, kubeconfig, join command); each must be secret.
Then the defaults: no admin ingress from anywhere, IMDSv2 with hop limit 2 and encrypted disks,
private workers behind a NAT gateway reached through the master, CA-pinned joins with 15-minute
tokens, and locked-down workloads. The mocks' fake credentials (tests/program.py) flow through
the program exactly as real ones would.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

import pytest

from components.config import ConfigError
from components.kubeadm import JOIN_TOKEN_TTL
from components.scripts import script_text
from policy.validators import prints_secret
from tests.program import (
    FAKE_CA_HASH,
    FAKE_EIP,
    FAKE_JOIN_COMMAND,
    FAKE_PRIVATE_KEY,
    FAKE_PUBLIC_KEY,
    REPO,
    ProgramRun,
    ProgramRunner,
    Registration,
    stack_runs,
)

SECRET_PATTERNS = {
    "a private key": re.compile(r"PRIVATE KEY-----"),
    "a bootstrap token": re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"),
    "a kubeconfig": re.compile(r"client-key-data"),
    "a join command": re.compile(re.escape(FAKE_JOIN_COMMAND)),
}
COMMANDS = ("command:local:Command", "command:remote:Command")
INGRESS_TYPES = (
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:ec2/securityGroup:SecurityGroup",
)
STACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "aws": ("aws", {}),
    "aws-private": ("aws", {"privateWorkers": "true"}),
    "aws-own-key": ("aws", {"sshPublicKey": FAKE_PUBLIC_KEY, "sshPrivateKey": FAKE_PRIVATE_KEY}),
    "aws-capabilities": ("aws", {"apps": [{
        "name": "web", "image": "public.ecr.aws/nginx/nginx-unprivileged:1.27.3", "port": 8080,
        "nodePort": 30081, "capabilities": ["NET_BIND_SERVICE"]}]}),
}


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, ProgramRun]]:
    """Each shipped stack (and variants) run once under mocks for the whole module."""
    with stack_runs(STACKS) as done:
        yield done


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from strings(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from strings(inner)


def carried_secrets(value: Any) -> set[str]:
    return {what for text in strings(value) for what, pattern in SECRET_PATTERNS.items()
            if pattern.search(text)}


def aws_runs(runs: dict[str, ProgramRun]) -> list[ProgramRun]:
    return [run for key, run in runs.items() if key.startswith("aws")]


# ---------------------------------------------------------------------------------------------
# Secrets: everything that carries a credential is secret


@pytest.mark.parametrize("key", list(STACKS))
def test_every_credential_in_resource_inputs_is_secret(
    runs: dict[str, ProgramRun], key: str,
) -> None:
    leaks = [
        f"{r.type} {r.name!r} input {name!r} carries {', '.join(sorted(found))}"
        for r in runs[key].resources
        for name, value in r.inputs.items()
        if (found := carried_secrets(value)) and name not in r.secret_inputs
    ]
    assert leaks == []


@pytest.mark.parametrize("key", list(STACKS))
def test_every_credential_in_resource_outputs_is_secret(
    runs: dict[str, ProgramRun], key: str,
) -> None:
    leaks = [
        f"{r.type} {r.name!r} output {name!r} carries {', '.join(sorted(found))}"
        for r in runs[key].resources
        for name, value in r.outputs.items()
        if (found := carried_secrets(value))
        and name not in r.additional_secret_outputs and name not in r.secret_inputs
    ]
    assert leaks == []


@pytest.mark.parametrize("key", list(STACKS))
def test_every_credential_in_stack_outputs_is_secret(
    runs: dict[str, ProgramRun], key: str,
) -> None:
    run = runs[key]
    leaks = [
        f"stack output {name!r} carries {', '.join(sorted(found))}"
        for name, value in run.outputs.items()
        if (found := carried_secrets(run.resolve(value))) and not run.is_secret(value)
    ]
    assert leaks == []
    assert run.is_secret(run.outputs["kubeconfig"])


def test_the_walk_sees_the_fake_credentials(runs: dict[str, ProgramRun]) -> None:
    """The secret checks above pass for a reason: the credentials really flow through."""
    aws = runs["aws"]
    seen = set().union(*(carried_secrets(r.inputs) for r in aws.resources))
    assert seen == set(SECRET_PATTERNS)
    assert carried_secrets(aws.resolve(aws.outputs["kubeconfig"])) == {"a kubeconfig"}
    assert carried_secrets(aws.resolve(aws.outputs["sshPrivateKey"])) == {"a private key"}
    own = runs["aws-own-key"]
    assert "sshPrivateKey" not in own.outputs, "a user's own key is never exported"
    assert any("a private key" in carried_secrets(r.inputs.get("connection"))
               for r in own.resources if r.type == "command:remote:Command")


@pytest.mark.parametrize("key", list(STACKS))
def test_commands_that_print_credentials_log_nothing(
    runs: dict[str, ProgramRun], key: str,
) -> None:
    # Chosen by what each command runs (kubeadm token create, cat admin.conf, ...), not by the
    # names the mocks happen to give credential-shaped stdout.
    printing = [r for r in runs[key].resources
                if r.type in COMMANDS and prints_secret(r.inputs)]
    assert any(r.name.endswith("-kubeconfig") for r in printing), [r.name for r in printing]
    for r in printing:
        assert "stdout" in r.additional_secret_outputs, r.name
        assert "stderr" in r.additional_secret_outputs, r.name
        assert r.inputs.get("logging") == "none", r.name


# ---------------------------------------------------------------------------------------------
# Network: nothing but the admin networks reaches the nodes


def ingress_cidrs(r: Registration) -> list[str]:
    p = r.inputs
    if r.type == INGRESS_TYPES[0]:
        return [c for c in (p.get("cidrIpv4"), p.get("cidrIpv6")) if c]
    if r.type == INGRESS_TYPES[1]:
        return [*p.get("cidrBlocks", []), *p.get("ipv6CidrBlocks", [])] \
            if p.get("type") == "ingress" else []
    return [c for rule in p.get("ingress") or []
            for c in (*rule.get("cidrBlocks", []), *rule.get("ipv6CidrBlocks", []))]


def test_no_ingress_from_anywhere(runs: dict[str, ProgramRun]) -> None:
    for run in aws_runs(runs):
        rules = [r for r in run.resources if r.type in INGRESS_TYPES]
        assert any(r.type == INGRESS_TYPES[0] for r in rules)
        for r in rules:
            for cidr in ingress_cidrs(r):
                assert ipaddress.ip_network(cidr, strict=False).prefixlen > 0, (r.name, cidr)
        # the group itself has no inline rules to drift from the rule resources
        group = run.named("kubeadm-aws-nodes")
        assert not group.inputs.get("ingress")


def test_admin_ports_are_open_only_to_admin_cidrs(runs: dict[str, ProgramRun]) -> None:
    rules = [r for r in runs["aws"].resources if r.type == INGRESS_TYPES[0]]
    with_cidr = [r for r in rules if "cidrIpv4" in r.inputs or "cidrIpv6" in r.inputs]
    assert {(r.inputs["fromPort"], r.inputs["toPort"]) for r in with_cidr} == {
        (22, 22), (6443, 6443), (30000, 32767)}
    assert {r.inputs["cidrIpv4"] for r in with_cidr} == {"203.0.113.0/24"}
    others = [r for r in rules if r not in with_cidr]
    assert [r.inputs.get("referencedSecurityGroupId") for r in others] == ["kubeadm-aws-nodes-id"]


def test_local_cluster_publishes_on_loopback_only(runs: dict[str, ProgramRun]) -> None:
    containers = runs["dev"].of_type("docker:index/container:Container")
    published = [p for c in containers for p in c.inputs.get("ports", [])]
    assert any(p["internal"] == 6443 for p in published)
    assert {p["ip"] for p in published} == {"127.0.0.1"}
    # Only the load balancer publishes anything.
    assert [c.name for c in containers if c.inputs.get("ports")] == ["kubeadm-dev-lb"]


def test_egress_to_anywhere_is_allowed(runs: dict[str, ProgramRun]) -> None:
    egress = runs["aws"].named("kubeadm-aws-egress")
    assert egress.type == "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
    assert egress.inputs["cidrIpv4"] == "0.0.0.0/0"


@pytest.mark.parametrize("admin_cidrs", [None, "[]", ["0.0.0.0/0"], ["::/0"]])
def test_aws_requires_admin_cidrs_narrower_than_the_internet(
    run_program: ProgramRunner, admin_cidrs: Any,
) -> None:
    run = run_program("aws", expect_error=True, adminCidrs=admin_cidrs)
    assert isinstance(run.error, ConfigError)
    assert run.error.key.startswith("adminCidrs")
    assert not any(r.type.startswith("aws:") for r in run.resources)


# ---------------------------------------------------------------------------------------------
# Instances


def test_every_instance_requires_imdsv2_with_hop_limit_2_and_encrypted_disks(
    runs: dict[str, ProgramRun],
) -> None:
    for run in aws_runs(runs):
        instances = run.of_type("aws:ec2/instance:Instance")
        assert len(instances) == 3
        for instance in instances:
            options = instance.inputs["metadataOptions"]
            assert options == {"httpEndpoint": "enabled", "httpTokens": "required",
                               "httpPutResponseHopLimit": 2}, instance.name
            assert instance.inputs["rootBlockDevice"]["encrypted"] is True, instance.name
            for device in instance.inputs.get("ebsBlockDevices") or []:
                assert device.get("encrypted") is True, instance.name


# ---------------------------------------------------------------------------------------------
# Private workers


def subnet_of(run: ProgramRun, instance: Registration) -> Registration:
    (urn,) = instance.property_dependencies["subnetId"]
    return run.by_urn(urn)


def test_private_workers_have_no_public_address(runs: dict[str, ProgramRun]) -> None:
    run = runs["aws-private"]
    for worker in run.of_type("aws:ec2/instance:Instance"):
        if worker.inputs["tags"]["role"] != "worker":
            continue
        assert worker.inputs.get("associatePublicIpAddress") in (None, False), worker.name
        subnet = subnet_of(run, worker)
        assert subnet.name == "kubeadm-aws-private"
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def test_private_workers_say_no_public_ip_explicitly(runs: dict[str, ProgramRun]) -> None:
    run = runs["aws-private"]
    workers = [i for i in run.of_type("aws:ec2/instance:Instance")
               if i.inputs["tags"]["role"] == "worker"]
    assert all(w.inputs.get("associatePublicIpAddress") is False for w in workers)


def test_private_workers_reach_out_through_a_nat_gateway(runs: dict[str, ProgramRun]) -> None:
    run = runs["aws-private"]
    (nat,) = run.of_type("aws:ec2/natGateway:NatGateway")
    assert subnet_of(run, nat).name == "kubeadm-aws-public"
    private_table = next(r for r in run.of_type("aws:ec2/routeTable:RouteTable")
                         if r.name == "kubeadm-aws-private")
    assert private_table.inputs["routes"] == [
        {"cidrBlock": "0.0.0.0/0", "natGatewayId": "kubeadm-aws-nat-id"}]
    assert runs["aws"].of_type("aws:ec2/natGateway:NatGateway") == [], "NAT only when asked"


def test_private_workers_are_reached_through_the_master(runs: dict[str, ProgramRun]) -> None:
    run = runs["aws-private"]
    for r in run.of_type("command:remote:Command"):
        connection = r.inputs["connection"]
        if r.name.startswith("kubeadm-aws-worker-") and r.name.endswith(
                ("-install", "-join", "-kubernetes")):
            assert connection["host"].startswith("10.0.2."), r.name
            proxy = connection["proxy"]
            assert proxy["host"] == FAKE_EIP, r.name
            assert proxy["user"] == connection["user"]
            assert "PRIVATE KEY-----" in proxy["privateKey"]
            assert "connection" in r.secret_inputs
        else:
            assert connection["host"] == FAKE_EIP, r.name
            assert "proxy" not in connection, r.name


def test_public_workers_use_no_jump_host(runs: dict[str, ProgramRun]) -> None:
    for r in runs["aws"].of_type("command:remote:Command"):
        assert "proxy" not in r.inputs["connection"], r.name


# ---------------------------------------------------------------------------------------------
# Joining: CA pinned, short-lived tokens, no certificate key


def all_strings(run: ProgramRun) -> Iterator[tuple[str, str]]:
    for r in run.resources:
        for text in strings(r.inputs):
            yield r.name, text


def test_nothing_skips_ca_verification(runs: dict[str, ProgramRun]) -> None:
    for run in runs.values():
        for name, text in all_strings(run):
            assert not re.search(r"unsafe-?skip-?ca-?verification", text, re.I), name


def test_joins_verify_the_ca_hash(runs: dict[str, ProgramRun]) -> None:
    for run in aws_runs(runs):
        joins = [r for r in run.of_type("command:remote:Command") if r.name.endswith("-join")]
        assert len(joins) == 2
        join_script = script_text(("install-kubeadm.sh", "kubeadm-join.sh"))
        for join in joins:
            stdin = join.inputs["stdin"]
            assert "stdin" in join.secret_inputs
            assert f"export JOIN_COMMAND='{FAKE_JOIN_COMMAND}'\n" in stdin
            assert f"--discovery-token-ca-cert-hash {FAKE_CA_HASH}" in stdin
            assert stdin.endswith(join_script)
            assert "refusing to join without verifying the cluster CA" in join_script


def test_join_tokens_live_15_minutes_and_are_made_per_worker(
    runs: dict[str, ProgramRun],
) -> None:
    assert JOIN_TOKEN_TTL == "15m"
    script = (REPO / "components" / "scripts" / "join-token.sh").read_text()
    assert 'kubeadm token create --print-join-command --ttl "$ttl"' in script
    assert "TOKEN_TTL:-15m" in script
    for run in aws_runs(runs):
        tokens = [r for r in run.of_type("command:remote:Command")
                  if r.name.endswith("-join-token")]
        assert sorted(t.name for t in tokens) == [
            "kubeadm-aws-worker-0-join-token", "kubeadm-aws-worker-1-join-token"]
        for token in tokens:
            assert token.inputs["stdin"].startswith("export TOKEN_TTL=15m\n")
            assert token.inputs["connection"]["host"] == FAKE_EIP  # made on the master


def test_kubeadm_init_makes_a_short_token_and_no_certificate_key(
    runs: dict[str, ProgramRun],
) -> None:
    script = (REPO / "components" / "scripts" / "kubeadm-init.sh").read_text()
    config = script[script.index("bootstrapTokens:"):script.index("localAPIEndpoint:")]
    assert re.search(r"^\s+ttl: 15m0s$", config, re.M)
    assert "--skip-token-print" in script
    for forbidden in ("upload-certs", "certificateKey", "certificate-key"):
        assert forbidden not in script
    init = runs["aws"].named("kubeadm-aws-master-init")
    assert init.inputs["stdin"].endswith(script_text("kubeadm-init.sh"))
    assert "ttl: 15m0s" in init.inputs["stdin"]


# ---------------------------------------------------------------------------------------------
# Workloads

PINNED = re.compile(r"^[^@]+:(?!latest$)[\w][\w.-]*$|@sha256:[a-f0-9]{64}$")


def deployment_containers(run: ProgramRun) -> Iterator[tuple[Registration, dict[str, Any]]]:
    for deployment in run.of_type("kubernetes:apps/v1:Deployment"):
        spec = deployment.inputs["spec"]["template"]["spec"]
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                yield deployment, container


@pytest.mark.parametrize("key", list(STACKS))
def test_workloads_are_locked_down(runs: dict[str, ProgramRun], key: str) -> None:
    run = runs[key]
    found = list(deployment_containers(run))
    assert found
    for deployment, container in found:
        pod = deployment.inputs["spec"]["template"]["spec"]
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        context = container["securityContext"]
        assert context["privileged"] is False
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert context["capabilities"]["drop"] == ["ALL"]
        limits = container["resources"]["limits"]
        assert limits.get("cpu") and limits.get("memory")
        assert PINNED.search(container["image"]), container["image"]


def test_capabilities_are_only_what_the_app_asks_for(runs: dict[str, ProgramRun]) -> None:
    for key, run in runs.items():
        for _, container in deployment_containers(run):
            added = container["securityContext"]["capabilities"].get("add")
            expected = ["NET_BIND_SERVICE"] if key == "aws-capabilities" else None
            assert added == expected, key
