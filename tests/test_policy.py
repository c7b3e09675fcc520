"""The policy pack's rules (policy/validators.py), called directly on resources captured under
Pulumi mocks: the shipped stacks pass every mandatory rule, a mutated copy of a real resource
fails each rule with a message naming the rule and the resource, and the advisory rules report
the shipped AWS stack's deliberate choices without failing it.

policy/__main__.py is never imported (building a PolicyPack starts its gRPC server and blocks);
one test runs it with PolicyPack replaced by a recorder.
"""

from __future__ import annotations

import copy
import runpy
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, ClassVar

import pulumi_policy
import pytest
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy import validators as v
from tests.program import FAKE_PRIVATE_KEY, FAKE_PUBLIC_KEY, REPO, ProgramRun, stack_runs

STACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "aws": ("aws", {}),
    "aws-private": ("aws", {"privateWorkers": "true"}),
    "aws-own-key": ("aws", {"sshPublicKey": FAKE_PUBLIC_KEY, "sshPrivateKey": FAKE_PRIVATE_KEY}),
    "dev-ha": ("dev", {"controlPlaneNodes": "3", "workers": "1"}),
    "aws-ha": ("aws", {"controlPlaneNodes": "3", "workers": "1"}),
    "aws-ha-private": ("aws", {"controlPlaneNodes": "5", "privateWorkers": "true"}),
}


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, ProgramRun]]:
    """Each shipped stack (and variants) run once under mocks for the whole module."""
    with stack_runs(STACKS) as done:
        yield done


def captured(run: ProgramRun) -> list[v.Resource]:
    return [
        v.Resource(
            type=r.type, name=r.name, props=r.inputs, urn=r.urn,
            secret_outputs=tuple(r.additional_secret_outputs),
            property_dependencies={k: tuple(urns) for k, urns in r.property_dependencies.items()},
        )
        for r in run.resources
    ]


def rule(name: str) -> v.Rule:
    return next(r for r in v.RULES if r.name == name)


def violations(rule_: v.Rule, resource: v.Resource) -> list[str]:
    return v.check_resource(rule_, resource.type, resource.props, resource.name,
                            resource.secret_outputs)


def all_violations(resources: list[v.Resource], rules: tuple[v.Rule, ...]) -> list[str]:
    found = [m for r in rules for res in resources for m in violations(r, res)]
    found += [x.message for r in rules for x in v.check_stack(r, resources)]
    return found


# ---------------------------------------------------------------------------------------------
# The shipped stacks


@pytest.mark.parametrize("key", list(STACKS))
def test_shipped_stacks_pass_every_mandatory_rule(runs: dict[str, ProgramRun], key: str) -> None:
    assert all_violations(captured(runs[key]), v.MANDATORY_RULES) == []


def test_rule_table_is_split_into_mandatory_and_advisory() -> None:
    names = [r.name for r in v.RULES]
    assert len(names) == len(set(names))
    assert {r.name for r in v.ADVISORY_RULES} == {
        v.PRIVATE_WORKERS, v.NARROW_ADMIN_CIDRS, v.EXPOSED_APPS, v.ADDED_CAPABILITIES}
    for r in v.RULES:
        assert (r.check is None) != (r.stack_check is None), r.name


def test_advisory_rules_report_public_workers_and_node_ports_on_shipped_aws(
    runs: dict[str, ProgramRun],
) -> None:
    found = all_violations(captured(runs["aws"]), v.ADVISORY_RULES)
    workers = [m for m in found if m.startswith(f"[{v.PRIVATE_WORKERS}]")]
    assert len(workers) == 2
    assert any("'kubeadm-aws-worker-0'" in m and "kubeadm-aws-public" in m for m in workers)
    assert any(m.startswith(f"[{v.EXPOSED_APPS}]") and "30080" in m for m in found)
    # reported, never failing: none of these rules is mandatory
    assert all(not rule(m[1:m.index("]")]).mandatory for m in found)


def test_private_workers_are_not_reported(runs: dict[str, ProgramRun]) -> None:
    found = all_violations(captured(runs["aws-private"]), (rule(v.PRIVATE_WORKERS),))
    assert found == []


def test_every_secret_printing_command_is_recognised(runs: dict[str, ProgramRun]) -> None:
    """The rule must actually see the commands it protects, or passing proves nothing."""
    printing = {r.name for r in captured(runs["aws"])
                if r.type in v.COMMAND_TYPES and v.prints_secret(r.props)}
    assert printing == {"kubeadm-aws-kubeconfig", "kubeadm-aws-worker-0-join-token",
                        "kubeadm-aws-worker-1-join-token"}
    dev = {r.name for r in captured(runs["dev"])
           if r.type in v.COMMAND_TYPES and v.prints_secret(r.props)}
    assert dev == {"kubeadm-dev-kubeconfig"}


# ---------------------------------------------------------------------------------------------
# The control plane's size and endpoint (stack rules)

HA_RULES = (rule(v.ODD_CONTROL_PLANE_NODES), rule(v.STABLE_API_ENDPOINT))
HA_INIT = "kubeadm-dev-master-init"


def test_the_rules_see_every_control_plane_node(runs: dict[str, ProgramRun]) -> None:
    steps = sorted(r.name for r, _ in v.control_plane_steps(captured(runs["dev-ha"])))
    assert steps == ["kubeadm-dev-control-plane-1-join", "kubeadm-dev-control-plane-2-join",
                     HA_INIT]
    assert [r.name for r, _ in v.control_plane_steps(captured(runs["dev"]))] == [HA_INIT]


def test_an_even_control_plane_is_refused(runs: dict[str, ProgramRun]) -> None:
    resources = [r for r in captured(runs["dev-ha"])
                 if r.name != "kubeadm-dev-control-plane-2-join"]
    found = all_violations(resources, HA_RULES)
    assert len(found) == 1 and found[0].startswith(f"[{v.ODD_CONTROL_PLANE_NODES}]")
    assert "2 control-plane nodes" in found[0]


@pytest.mark.parametrize(("old", "new", "says"), [
    ("export CONTROL_PLANE_ENDPOINT=172.30.0.3:6443\n", "", "has no CONTROL_PLANE_ENDPOINT"),
    ("export CONTROL_PLANE_ENDPOINT=172.30.0.3:6443", "export CONTROL_PLANE_ENDPOINT=172.30.0.10",
     "is one control-plane node's own address"),
])
def test_several_control_plane_nodes_need_an_endpoint_that_is_no_single_node(
    runs: dict[str, ProgramRun], old: str, new: str, says: str,
) -> None:
    resources = [with_props(r, replace_text("stdin", old, new)) if r.name == HA_INIT else r
                 for r in captured(runs["dev-ha"])]
    found = all_violations(resources, HA_RULES)
    assert len(found) == 1 and found[0].startswith(f"[{v.STABLE_API_ENDPOINT}]"), found
    assert says in found[0] and HA_INIT in found[0]


def test_the_rules_see_the_aws_control_plane_behind_its_internal_load_balancer(
    runs: dict[str, ProgramRun],
) -> None:
    steps = v.control_plane_steps(captured(runs["aws-ha"]))
    assert [r.name for r, _ in steps] == ["kubeadm-aws-master-init",
                                         "kubeadm-aws-control-plane-1-join",
                                         "kubeadm-aws-control-plane-2-join"]
    endpoint = v.ENDPOINT_ENV.search(steps[0][1])
    assert endpoint is not None and endpoint.group(1).startswith("internal-kubeadm-aws-api-")
    # Pointed at a control-plane node instead, the stack fails the rule.
    resources = [with_props(r, replace_text("stdin", endpoint.group(1), "10.0.255.9:6443"))
                 if r.name == "kubeadm-aws-master-init" else r
                 for r in captured(runs["aws-ha"])]
    found = all_violations(resources, HA_RULES)
    assert len(found) == 1 and "is one control-plane node's own address" in found[0]


API_ADMIN_RULE = "kubeadm-aws-api-from-203-0-113-0-24"


def test_the_api_load_balancers_rules_are_checked_like_the_nodes(
    runs: dict[str, ProgramRun],
) -> None:
    """no-world-admin-ingress sees the load balancer's own ingress rules: opened to the world,
    the internet-facing one fails the stack; its shipped rules pass."""
    resources = captured(runs["aws-ha"])
    checked = [r for r in resources if r.type == v.SG_INGRESS_RULE
               and r.props.get("securityGroupId") == "kubeadm-aws-api-id"]
    assert [r.name for r in checked] == [API_ADMIN_RULE]
    world = with_props(checked[0], set_path("cidrIpv4", value="0.0.0.0/0"))
    found = all_violations([world if r is checked[0] else r for r in resources],
                           v.MANDATORY_RULES)
    assert found == [
        f"[{v.NO_WORLD_ADMIN_INGRESS}] {v.SG_INGRESS_RULE} '{API_ADMIN_RULE}': opens the "
        "Kubernetes API server (6443) to the whole internet (0.0.0.0/0); allow only your admin "
        "networks (config adminCidrs)"]
    wide = with_props(checked[0], set_path("cidrIpv4", value="10.0.0.0/8"))
    assert violations(rule(v.NARROW_ADMIN_CIDRS), wide)
    # The control-plane nodes are no workers: the advisory rule reports only the worker.
    public = all_violations(resources, (rule(v.PRIVATE_WORKERS),))
    assert len(public) == 1 and "'kubeadm-aws-worker-0'" in public[0]


def test_a_lone_control_plane_node_needs_no_endpoint(runs: dict[str, ProgramRun]) -> None:
    resources = [with_props(r, replace_text("stdin", "export CONTROL_PLANE_ENDPOINT=", "export X="))
                 if r.name == HA_INIT else r for r in captured(runs["dev"])]
    assert all_violations(resources, HA_RULES) == []


# ---------------------------------------------------------------------------------------------
# One mutation per rule: a real captured resource, changed, fails with a named message


def find(resources: list[v.Resource], predicate: Callable[[v.Resource], bool]) -> v.Resource:
    matches = [r for r in resources if predicate(r)]
    assert matches, "no captured resource matches"
    return matches[0]


def by_name(name: str) -> Callable[[v.Resource], bool]:
    return lambda r: r.name == name


def with_props(resource: v.Resource, change: Callable[[dict[str, Any]], object]) -> v.Resource:
    props = copy.deepcopy(dict(resource.props))
    change(props)
    return replace(resource, props=props)


def container(props: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = props["spec"]["template"]["spec"]["containers"][0]
    return result


def set_path(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        target = props
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return change


def drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        target = props
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def in_container(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda props: change(container(props))


def replace_text(key: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        assert old in props[key], f"{old!r} not in {key}"
        props[key] = props[key].replace(old, new)
    return change


def to_security_group_rule(resource: v.Resource, cidr: str) -> v.Resource:
    """The same permission as an aws:ec2/securityGroupRule (the older rule resource)."""
    p = resource.props
    return replace(resource, type=v.SG_RULE, props={
        "type": "ingress", "protocol": p["ipProtocol"], "fromPort": p["fromPort"],
        "toPort": p["toPort"], "cidrBlocks": [cidr], "securityGroupId": p["securityGroupId"],
    })


SSH_RULE = "kubeadm-aws-ssh-203-0-113-0-24"
API_RULE = "kubeadm-aws-api-203-0-113-0-24"
JOIN = "kubeadm-aws-worker-0-join"
JOIN_TOKEN = "kubeadm-aws-worker-0-join-token"
INIT = "kubeadm-aws-master-init"
KUBECONFIG = "kubeadm-aws-kubeconfig"
DEPLOYMENT = "apps/nginx-deployment"
JOIN_LINE = "--token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:" + "ab" * 32

Mutation = tuple[str, str, Callable[[list[v.Resource]], v.Resource]]

MUTATIONS: dict[str, Mutation] = {
    "ssh-from-anywhere": (v.NO_WORLD_ADMIN_INGRESS, SSH_RULE, lambda rs: with_props(
        find(rs, by_name(SSH_RULE)), set_path("cidrIpv4", value="0.0.0.0/0"))),
    "api-from-anywhere-ipv6": (v.NO_WORLD_ADMIN_INGRESS, API_RULE, lambda rs: with_props(
        find(rs, by_name(API_RULE)),
        lambda p: (p.pop("cidrIpv4"), p.update(cidrIpv6="::/0")))),
    "all-traffic-from-anywhere": (
        v.NO_WORLD_ADMIN_INGRESS, "kubeadm-aws-node-to-node", lambda rs: with_props(
            find(rs, by_name("kubeadm-aws-node-to-node")),
            lambda p: (p.pop("referencedSecurityGroupId"), p.update(cidrIpv4="0.0.0.0/0")))),
    "inline-group-ingress": (v.NO_WORLD_ADMIN_INGRESS, "kubeadm-aws-nodes", lambda rs: with_props(
        find(rs, by_name("kubeadm-aws-nodes")), set_path("ingress", value=[
            {"protocol": "tcp", "fromPort": 6000, "toPort": 7000,
             "cidrBlocks": ["0.0.0.0/0"]}]))),
    "security-group-rule": (v.NO_WORLD_ADMIN_INGRESS, SSH_RULE, lambda rs: to_security_group_rule(
        find(rs, by_name(SSH_RULE)), "0.0.0.0/0")),
    "imds-optional": (v.IMDSV2_REQUIRED, "kubeadm-aws-master", lambda rs: with_props(
        find(rs, by_name("kubeadm-aws-master")),
        set_path("metadataOptions", "httpTokens", value="optional"))),
    "imds-hop-limit": (v.IMDSV2_REQUIRED, "kubeadm-aws-worker-0", lambda rs: with_props(
        find(rs, by_name("kubeadm-aws-worker-0")),
        set_path("metadataOptions", "httpPutResponseHopLimit", value=3.0))),
    "imds-unset": (v.IMDSV2_REQUIRED, "kubeadm-aws-master", lambda rs: with_props(
        find(rs, by_name("kubeadm-aws-master")), drop("metadataOptions"))),
    "root-unencrypted": (v.ENCRYPTED_ROOT_VOLUME, "kubeadm-aws-master", lambda rs: with_props(
        find(rs, by_name("kubeadm-aws-master")),
        set_path("rootBlockDevice", "encrypted", value=False))),
    "root-default": (v.ENCRYPTED_ROOT_VOLUME, "kubeadm-aws-worker-1", lambda rs: with_props(
        find(rs, by_name("kubeadm-aws-worker-1")), drop("rootBlockDevice"))),
    "join-skips-ca": (v.JOIN_VERIFIES_CA, JOIN, lambda rs: with_props(
        find(rs, by_name(JOIN)), replace_text(
            "stdin", JOIN_LINE,
            "--token abcdef.0123456789abcdef --discovery-token-unsafe-skip-ca-verification"))),
    "join-without-ca-hash": (v.JOIN_VERIFIES_CA, JOIN, lambda rs: with_props(
        find(rs, by_name(JOIN)), replace_text(
            "stdin", JOIN_LINE, "--token abcdef.0123456789abcdef"))),
    "inline-join-without-ca-hash": (v.JOIN_VERIFIES_CA, JOIN, lambda rs: with_props(
        find(rs, by_name(JOIN)), lambda p: (p.pop("stdin"), p.update(
            create="sudo kubeadm join 10.0.1.10:6443 --token abcdef.0123456789abcdef")))),
    "ssh-host-key-unpinned": (v.SSH_HOST_KEY_PINNED, JOIN, lambda rs: with_props(
        find(rs, by_name(JOIN)), drop("connection", "hostKey"))),
    "ssh-host-key-garbage": (v.SSH_HOST_KEY_PINNED, JOIN, lambda rs: with_props(
        find(rs, by_name(JOIN)), set_path("connection", "hostKey", value="x"))),
    "jump-host-key-unpinned": (
        v.SSH_HOST_KEY_PINNED, JOIN, lambda rs: with_props(
            find(rs, by_name(JOIN)),
            set_path("connection", "proxy", value={"host": "203.0.113.10", "user": "ubuntu"}))),
    "token-ttl-long": (v.SHORT_LIVED_JOIN_TOKENS, JOIN_TOKEN, lambda rs: with_props(
        find(rs, by_name(JOIN_TOKEN)),
        replace_text("stdin", "export TOKEN_TTL=15m", "export TOKEN_TTL=24h"))),
    "token-ttl-forever": (v.SHORT_LIVED_JOIN_TOKENS, JOIN_TOKEN, lambda rs: with_props(
        find(rs, by_name(JOIN_TOKEN)),
        replace_text("stdin", "export TOKEN_TTL=15m", "export TOKEN_TTL=0"))),
    "token-ttl-missing": (v.SHORT_LIVED_JOIN_TOKENS, JOIN_TOKEN, lambda rs: with_props(
        find(rs, by_name(JOIN_TOKEN)), lambda p: (p.pop("stdin"), p.update(
            create="sudo kubeadm token create --print-join-command")))),
    "init-token-ttl": (v.SHORT_LIVED_JOIN_TOKENS, INIT, lambda rs: with_props(
        find(rs, by_name(INIT)), replace_text("stdin", "ttl: 15m0s", "ttl: 24h0m0s"))),
    "init-upload-certs": (v.SHORT_LIVED_JOIN_TOKENS, INIT, lambda rs: with_props(
        find(rs, by_name(INIT)),
        replace_text("stdin", "--skip-token-print", "--skip-token-print --upload-certs"))),
    "kubeconfig-logged": (v.SECRET_COMMAND_OUTPUT, KUBECONFIG, lambda rs: with_props(
        find(rs, by_name(KUBECONFIG)), drop("logging"))),
    "kubeconfig-stdout-plain": (v.SECRET_COMMAND_OUTPUT, KUBECONFIG, lambda rs: replace(
        find(rs, by_name(KUBECONFIG)), secret_outputs=("connection",))),
    "join-token-logged": (v.SECRET_COMMAND_OUTPUT, JOIN_TOKEN, lambda rs: with_props(
        find(rs, by_name(JOIN_TOKEN)), set_path("logging", value="stdoutAndStderr"))),
    "privileged": (v.NO_PRIVILEGED_CONTAINERS, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)),
        in_container(set_path("securityContext", "privileged", value=True)))),
    "host-network": (v.NO_PRIVILEGED_CONTAINERS, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)),
        set_path("spec", "template", "spec", "hostNetwork", value=True))),
    "escalation-unset": (v.NO_PRIVILEGE_ESCALATION, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)),
        in_container(drop("securityContext", "allowPrivilegeEscalation")))),
    "escalation-true": (v.NO_PRIVILEGE_ESCALATION, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)),
        in_container(set_path("securityContext", "allowPrivilegeEscalation", value=True)))),
    "capabilities-kept": (v.DROP_ALL_CAPABILITIES, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)),
        in_container(set_path("securityContext", "capabilities", "drop", value=["NET_RAW"])))),
    "no-limits": (v.RESOURCE_LIMITS, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)), in_container(drop("resources", "limits")))),
    "no-memory-limit": (v.RESOURCE_LIMITS, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)), in_container(drop("resources", "limits", "memory")))),
    "image-latest": (v.PINNED_IMAGES, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)), in_container(set_path("image", value="nginx:latest")))),
    "image-untagged": (v.PINNED_IMAGES, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)),
        in_container(set_path("image", value="public.ecr.aws/nginx/nginx-unprivileged")))),
    # advisory rules: they report the same way (the pack only changes the enforcement level)
    "wide-admin-cidr": (v.NARROW_ADMIN_CIDRS, SSH_RULE, lambda rs: with_props(
        find(rs, by_name(SSH_RULE)), set_path("cidrIpv4", value="10.0.0.0/8"))),
    "node-ports-from-anywhere": (
        v.NARROW_ADMIN_CIDRS, "kubeadm-aws-nodeports-203-0-113-0-24", lambda rs: with_props(
            find(rs, by_name("kubeadm-aws-nodeports-203-0-113-0-24")),
            set_path("cidrIpv4", value="0.0.0.0/0"))),
    "added-capability": (v.ADDED_CAPABILITIES, DEPLOYMENT, lambda rs: with_props(
        find(rs, by_name(DEPLOYMENT)), in_container(
            set_path("securityContext", "capabilities", "add", value=["SYS_ADMIN"])))),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_a_mutated_resource_fails_its_rule(runs: dict[str, ProgramRun], case: str) -> None:
    rule_name, resource_name, mutate = MUTATIONS[case]
    resources = captured(runs["aws"])
    original = find(resources, by_name(resource_name))
    assert violations(rule(rule_name), original) == [], "the shipped resource must pass"

    mutated = mutate(resources)
    found = violations(rule(rule_name), mutated)

    assert found, f"{case}: rule {rule_name} did not report"
    for text in found:
        assert text.startswith(f"[{rule_name}] {mutated.type} '{resource_name}': "), text


def test_a_public_worker_is_reported_even_in_a_private_subnet(
    runs: dict[str, ProgramRun],
) -> None:
    resources = captured(runs["aws-private"])
    worker = find(resources, by_name("kubeadm-aws-worker-1"))
    public = with_props(worker, set_path("associatePublicIpAddress", value=True))
    found = v.check_stack(rule(v.PRIVATE_WORKERS),
                          [public if r is worker else r for r in resources])
    assert [x.urn for x in found] == [worker.urn]
    assert found[0].message.startswith(
        f"[{v.PRIVATE_WORKERS}] aws:ec2/instance:Instance 'kubeadm-aws-worker-1': ")


def test_a_narrow_world_rule_is_not_reported_twice(runs: dict[str, ProgramRun]) -> None:
    """0.0.0.0/0 on SSH is the mandatory rule's finding, not also an advisory one."""
    ssh = find(captured(runs["aws"]), by_name(SSH_RULE))
    world = with_props(ssh, set_path("cidrIpv4", value="0.0.0.0/0"))
    assert violations(rule(v.NARROW_ADMIN_CIDRS), world) == []
    assert violations(rule(v.NO_WORLD_ADMIN_INGRESS), world)


def test_egress_to_anywhere_is_not_ingress(runs: dict[str, ProgramRun]) -> None:
    egress = find(captured(runs["aws"]), by_name("kubeadm-aws-egress"))
    assert egress.props["cidrIpv4"] == "0.0.0.0/0"
    assert all(violations(r, egress) == [] for r in v.RULES if r.check)


def test_rule_config_tightens_limits(runs: dict[str, ProgramRun]) -> None:
    token = find(captured(runs["aws"]), by_name(JOIN_TOKEN))
    short = rule(v.SHORT_LIVED_JOIN_TOKENS)
    assert v.check_resource(short, token.type, token.props, token.name, (),
                            {"maxTtl": "10m"})
    ssh = find(captured(runs["aws"]), by_name(SSH_RULE))  # a /24
    narrow = rule(v.NARROW_ADMIN_CIDRS)
    assert v.check_resource(narrow, ssh.type, ssh.props, ssh.name, (),
                            {"widestIpv4Prefix": 28})


def test_unknown_values_in_preview_do_not_fail(runs: dict[str, ProgramRun]) -> None:
    resources = captured(runs["aws"])
    ssh = with_props(find(resources, by_name(SSH_RULE)),
                     set_path("cidrIpv4", value=UNKNOWN_STRING_VALUE))
    join = with_props(find(resources, by_name(JOIN)), set_path("stdin", value=v.UNKNOWN))
    # A host key generated in the same update is unknown until the tls provider makes it.
    pinned_later = with_props(find(resources, by_name(JOIN)),
                              set_path("connection", "hostKey", value=UNKNOWN_STRING_VALUE))
    for resource in (ssh, join, pinned_later):
        props = v.plain(unknown_checking_proxy(dict(resource.props)), (UnknownValueError,))
        assert all(v.check_resource(r, resource.type, props, resource.name) == []
                   for r in v.MANDATORY_RULES)


# ---------------------------------------------------------------------------------------------
# The pack itself, built without serving it


class RecordedPack:
    """Stands in for pulumi_policy.PolicyPack, whose constructor starts a gRPC server."""

    packs: ClassVar[list[RecordedPack]] = []

    def __init__(self, name: str, policies: list[pulumi_policy.Policy],
                 enforcement_level: pulumi_policy.EnforcementLevel | None = None,
                 **kwargs: Any) -> None:
        self.name = name
        self.policies = policies
        self.enforcement_level = enforcement_level
        RecordedPack.packs.append(self)


@pytest.fixture
def pack(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordedPack]:
    RecordedPack.packs = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", RecordedPack)
    monkeypatch.setattr(sys, "path", list(sys.path))
    had_validators = sys.modules.get("validators")
    try:
        runpy.run_path(str(REPO / "policy" / "__main__.py"), run_name="__main__")
    finally:
        if had_validators is None:
            sys.modules.pop("validators", None)
    assert len(RecordedPack.packs) == 1
    yield RecordedPack.packs[0]


def test_pack_builds_every_rule_with_its_enforcement_level(pack: RecordedPack) -> None:
    assert pack.name == "kubeadm-cluster-security"
    levels = {p.name: p.enforcement_level for p in pack.policies}
    assert levels == {
        r.name: (pulumi_policy.EnforcementLevel.MANDATORY if r.mandatory
                 else pulumi_policy.EnforcementLevel.ADVISORY)
        for r in v.RULES
    }
    kinds = {p.name: type(p) for p in pack.policies}
    assert kinds[v.PRIVATE_WORKERS] is pulumi_policy.StackValidationPolicy
    assert kinds[v.IMDSV2_REQUIRED] is pulumi_policy.ResourceValidationPolicy


def options(secret_outputs: tuple[str, ...]) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0),
                                 list(secret_outputs))


def validate_like_the_engine(policy: Any, resource: v.Resource) -> list[str]:
    """Run a built policy as the analyzer server would: props behind the SDK's proxy."""
    reported: list[str] = []
    args = pulumi_policy.ResourceValidationArgs(
        resource.type, unknown_checking_proxy(copy.deepcopy(dict(resource.props))),
        resource.urn, resource.name, options(resource.secret_outputs), None)
    policy.validate(args, lambda text, urn=None: reported.append(text))
    return reported


def test_built_policies_validate_proxied_props(
    pack: RecordedPack, runs: dict[str, ProgramRun],
) -> None:
    policies = {p.name: p for p in pack.policies}
    resources = captured(runs["aws"])
    kubeconfig = find(resources, by_name(KUBECONFIG))
    assert validate_like_the_engine(policies[v.SECRET_COMMAND_OUTPUT], kubeconfig) == []
    leaked = replace(kubeconfig, secret_outputs=())
    assert validate_like_the_engine(policies[v.SECRET_COMMAND_OUTPUT], leaked)

    master = find(resources, by_name("kubeadm-aws-master"))
    weak = with_props(master, set_path("metadataOptions", "httpTokens", value="optional"))
    assert validate_like_the_engine(policies[v.IMDSV2_REQUIRED], master) == []
    assert validate_like_the_engine(policies[v.IMDSV2_REQUIRED], weak)


def test_built_stack_policy_sees_subnets_through_dependencies(
    pack: RecordedPack, runs: dict[str, ProgramRun],
) -> None:
    resources = captured(runs["aws"])
    by_urn = {}
    policy_resources = []
    for r in resources:
        res = pulumi_policy.PolicyResource(
            r.type, unknown_checking_proxy(copy.deepcopy(dict(r.props))), r.urn, r.name,
            options(r.secret_outputs), None, None, [], {})
        by_urn[r.urn] = res
        policy_resources.append(res)
    for r in resources:
        by_urn[r.urn].property_dependencies = {
            key: [by_urn[u] for u in urns if u in by_urn]
            for key, urns in r.property_dependencies.items()}
    reported: list[tuple[str, str | None]] = []
    policy = next(p for p in pack.policies if p.name == v.PRIVATE_WORKERS)
    assert isinstance(policy, pulumi_policy.StackValidationPolicy)

    def report(text: str, urn: str | None = None) -> None:
        reported.append((text, urn))

    policy.validate(pulumi_policy.StackValidationArgs(policy_resources), report)
    assert sorted(urn or "" for _, urn in reported) == sorted(
        r.urn for r in resources if r.name.startswith("kubeadm-aws-worker-")
        and r.type == v.INSTANCE)


def test_plain_turns_proxies_into_plain_values() -> None:
    proxied = unknown_checking_proxy({"a": [{"b": UNKNOWN_STRING_VALUE}], "c": "x"})
    value = v.plain(proxied, (UnknownValueError,))
    assert type(value) is dict and type(value["a"]) is list
    assert value["a"][0]["b"] is v.UNKNOWN and value["c"] == "x"
