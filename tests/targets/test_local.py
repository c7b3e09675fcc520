"""LocalHosts under Pulumi mocks, wired to KubeadmCluster as __main__.py wires them (stack dev)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import load_stack_config
from components.kubeadm import drain_command
from components.targets.local import (
    CONTAINER_IGNORE_CHANGES,
    SYSTEMD_READY_PATTERN,
    LocalHosts,
    LocalHostsArgs,
    systemd_wait_command,
)
from tests.conftest import ComponentRunner, ProgramRun
from tests.program import WiredCluster, exported_env, run_cluster_on

MASTER = "kubeadm-dev-master"
LOAD_BALANCER = "kubeadm-dev-lb"
WORKERS = ["kubeadm-dev-worker-0", "kubeadm-dev-worker-1"]
CONTAINER = "docker:index/container:Container"
COMMAND = "command:local:Command"
NODE_IMAGE = (
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
)
IMAGE_ID = "sha256:" + "cd" * 32  # what the mocks report as the RemoteImage's imageId


Wired = WiredCluster[LocalHosts]


def run_local(run_components: ComponentRunner, **overrides: Any) -> tuple[ProgramRun, Wired]:
    return run_cluster_on(
        run_components, lambda config: LocalHosts(config.cluster_name, LocalHostsArgs(config)),
        "dev", **overrides,
    )


def node_containers(run: ProgramRun) -> list[Any]:
    return [c for c in run.of_type(CONTAINER) if c.name != LOAD_BALANCER]


@pytest.fixture(params=[0, 2], ids=["workers0", "workers2"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def local(run_components: ComponentRunner, workers: int) -> tuple[ProgramRun, Wired]:
    return run_local(run_components, workers=workers)


# -- image and network ----------------------------------------------------------------------


def test_node_image_is_pulled_once_and_kept(local: tuple[ProgramRun, Wired]) -> None:
    run, _ = local
    images = sorted((i.inputs for i in run.of_type("docker:index/remoteImage:RemoteImage")),
                    key=lambda inputs: str(inputs["name"]))
    assert images == [{"name": NODE_IMAGE, "keepLocally": True},
                      {"name": "public.ecr.aws/docker/library/haproxy:3.2", "keepLocally": True}]


def test_network_has_the_configured_subnet_and_first_host_as_gateway(
    local: tuple[ProgramRun, Wired],
) -> None:
    run, wired = local
    (network,) = run.of_type("docker:index/network:Network")
    values = network.inputs
    assert values["name"] == "kubeadm-dev"
    assert values["driver"] == "bridge"
    assert values["ipamConfigs"] == [{"subnet": "172.30.0.0/24", "gateway": "172.30.0.1"}]
    assert network.delete_before_replace
    assert run.resolve(wired.hosts.network_name) == "kubeadm-dev"


# -- node containers ------------------------------------------------------------------------


def test_one_container_per_node_with_fixed_name_hostname_and_ip(
    local: tuple[ProgramRun, Wired], workers: int
) -> None:
    run, wired = local
    containers = {c.name: c.inputs for c in node_containers(run)}
    expected_ips = {MASTER: "172.30.0.10"} | {
        f"kubeadm-dev-worker-{i}": f"172.30.0.{11 + i}" for i in range(workers)
    }
    assert set(containers) == set(expected_ips)
    for name, ip in expected_ips.items():
        assert containers[name]["name"] == name
        assert containers[name]["hostname"] == name
        assert containers[name]["image"] == IMAGE_ID
        assert containers[name]["networksAdvanced"] == [{"name": "kubeadm-dev", "ipv4Address": ip}]
    assert [n.name for n in wired.hosts.cluster_hosts.workers] == list(expected_ips)[1:]
    nodes = [wired.hosts.cluster_hosts.master, *wired.hosts.cluster_hosts.workers]
    assert {n.name: n.private_ip for n in nodes} == expected_ips
    assert wired.cluster.node_private_ips == expected_ips


def test_containers_run_as_kind_runs_its_nodes(local: tuple[ProgramRun, Wired]) -> None:
    run, _ = local
    for container in node_containers(run):
        values = container.inputs
        role = "control-plane" if container.name == MASTER else "worker"
        assert values["privileged"] is True
        assert values["securityOpts"] == [
            "seccomp=unconfined", "apparmor=unconfined", "label=disable"]
        assert values["tmpfs"] == {"/tmp": "", "/run": ""}
        assert values["volumes"] == [
            {"containerPath": "/var"},
            {"hostPath": "/lib/modules", "containerPath": "/lib/modules", "readOnly": True},
        ]
        assert values["cgroupnsMode"] == "private"
        assert (values["restart"], values["maxRetryCount"]) == ("on-failure", 1)
        assert values["init"] is False
        assert values["tty"] is True  # systemd's boot lines reach `docker logs` only with a TTY
        assert values["labels"] == [
            {"label": "kubeadm-cluster.cluster", "value": "kubeadm-dev"},
            {"label": "kubeadm-cluster.role", "value": role},
        ]
        assert container.delete_before_replace, container.name
        assert container.ignore_changes == CONTAINER_IGNORE_CHANGES
        # Nothing the program sets is hidden from diffs.
        assert not set(container.ignore_changes) & set(values)


def test_the_load_balancer_publishes_api_and_every_node_port_on_loopback(
    local: tuple[ProgramRun, Wired],
) -> None:
    run, wired = local
    master = run.named(MASTER).inputs
    assert master["envs"] == ["KUBECONFIG=/etc/kubernetes/admin.conf"]
    expected = [{"internal": 6443, "external": 6443, "ip": "127.0.0.1", "protocol": "tcp"}] + [
        {"internal": port, "external": port, "ip": "127.0.0.1", "protocol": "tcp"}
        for port in range(30080, 30090)
    ]
    assert run.named(LOAD_BALANCER).inputs["ports"] == expected
    for node in node_containers(run):
        assert "ports" not in node.inputs
        if node.name != MASTER:
            assert "envs" not in node.inputs
    nodes = wired.hosts.cluster_hosts
    assert nodes.api_endpoint == "127.0.0.1:6443"
    assert nodes.app_host == "127.0.0.1"
    assert nodes.cert_sans == ["127.0.0.1", "localhost"]
    assert (nodes.install, nodes.profile, nodes.cni) == (None, "kind", "kind")


def test_api_server_port_and_node_port_range_come_from_config(
    run_components: ComponentRunner,
) -> None:
    run, wired = run_local(
        run_components, apiServerPort="16443", localNodePorts="31000-31002",
        apps=[{"name": "web", "image": "nginx:1.27.3", "port": 80, "nodePort": 31001}],
    )
    ports = run.named(LOAD_BALANCER).inputs["ports"]
    assert [(p["internal"], p["external"]) for p in ports] == [
        (6443, 16443), (31000, 31000), (31001, 31001), (31002, 31002),
    ]
    assert wired.hosts.cluster_hosts.api_endpoint == "127.0.0.1:16443"
    kubeconfig = yaml.safe_load(run.resolve(wired.cluster.kubeconfig))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:16443"


# -- waiting for systemd --------------------------------------------------------------------


def test_each_node_waits_for_systemd_before_any_step(local: tuple[ProgramRun, Wired]) -> None:
    run, _ = local
    containers = node_containers(run)
    for container in containers:
        wait = run.named(f"{container.name}-systemd")
        assert wait.inputs == {
            "create": systemd_wait_command(container.name),
            "triggers": [f"{container.name}-id"],  # the container's id: a new one waits again
        }
        assert run.depends_on(wait, container)
        steps = [
            r for r in run.of_type(COMMAND)
            if r is not wait and r.inputs["create"].startswith(
                (f"docker exec -i {container.name} ", f"docker exec {container.name} ")
            )
        ]
        assert steps
        for step in steps:
            assert run.depends_on(step, wait), step.name


def test_systemd_wait_command_is_bounded_and_uses_kinds_pattern() -> None:
    text = systemd_wait_command("kubeadm-dev-master")
    assert SYSTEMD_READY_PATTERN == "Reached target .*Multi-User System|detected cgroup v1"
    assert f"docker logs kubeadm-dev-master 2>&1 | grep -Eq {shlex.quote(SYSTEMD_READY_PATTERN)}" \
        in text
    assert "+ 60 ))" in text
    assert "systemd did not reach the multi-user target within 60s" in text
    assert "+ 5 ))" in systemd_wait_command("x", seconds=5)


CLOCK_STUBS = {
    # A simulated clock (a file holding seconds as a float): each docker call costs 0.1 s and
    # `sleep N` costs N, so the run is exact and takes no real time.
    "advance": 'awk -v d="$1" \'{ printf "%.2f", $1 + d }\' "$CLOCK" > "$CLOCK.new"; '
    'mv "$CLOCK.new" "$CLOCK"',
    "date": 'c=$(cat "$CLOCK"); echo "${c%.*}"',
    "sleep": 'advance "$1"',
    "docker": 'advance 0.1; if [ "$1" = inspect ]; then echo true; fi',
}


@pytest.mark.parametrize("start", ["100.00", "100.50", "100.95", "100.99"])
def test_systemd_wait_never_gives_up_before_its_bound(tmp_path: Path, start: str) -> None:
    """`date +%s` has whole seconds: started at x.99 the wait must still last `seconds`."""
    for name, body in CLOCK_STUBS.items():
        stub = tmp_path / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    clock = tmp_path / "clock"
    clock.write_text(start)

    ran = subprocess.run(
        ["sh", "-c", systemd_wait_command("silent-node", seconds=3)],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "CLOCK": str(clock)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip

    assert ran.returncode == 1
    assert "did not reach the multi-user target within 3s" in ran.stderr
    elapsed = float(clock.read_text()) - float(start)
    assert 3 <= elapsed < 6, elapsed  # whole-second clock: at most about 2 s late


# -- the kubeadm steps through docker exec --------------------------------------------------


def test_steps_use_the_exact_docker_exec_commands(
    local: tuple[ProgramRun, Wired], workers: int
) -> None:
    run, _ = local
    script_on_master = f"docker exec -i {MASTER} bash -s"
    for name in (f"{MASTER}-init", "kubeadm-dev-ready"):
        values = run.named(name).inputs
        assert values["create"] == script_on_master
        assert "delete" not in values
        assert values["stdin"].startswith("export ")
    kubeconfig = run.named("kubeadm-dev-kubeconfig").inputs
    assert kubeconfig["create"] == f"docker exec {MASTER} sh -c 'cat /etc/kubernetes/admin.conf'"
    assert "stdin" not in kubeconfig
    for worker in WORKERS[:workers]:
        token = run.named(f"{worker}-join-token").inputs
        assert token["create"] == script_on_master
        join = run.named(f"{worker}-join").inputs
        assert join["create"] == f"docker exec -i {worker} bash -s"
        assert "delete" not in join
        drain = run.named(f"{worker}-drain").inputs
        get_node = "kubectl --kubeconfig=/etc/kubernetes/admin.conf get --raw=/readyz"
        assert drain["create"] == f"docker exec {MASTER} sh -c {shlex.quote(get_node)}"
        assert drain["delete"].endswith(
            f"; docker exec {MASTER} sh -c {shlex.quote(drain_command(worker))}")
        assert drain["delete"].startswith(
            f"if ! state=$(docker container inspect -f '{{{{.State.Status}}}}' {MASTER} 2>&1)")
        assert " -i " not in drain["delete"]  # a delete never reads the replayed stdin
        assert "stdin" not in drain
        assert run.named(f"{worker}-drain").delete_before_replace


def test_step_order_without_install_steps(local: tuple[ProgramRun, Wired], workers: int) -> None:
    run, _ = local
    names = {r.name for r in run.of_type(COMMAND)}
    assert not {n for n in names if re.search(r"preflight|install", n)}
    init = run.named(f"{MASTER}-init")
    ready = run.named("kubeadm-dev-ready")
    assert run.depends_on(init, run.named(f"{MASTER}-systemd"))
    assert run.depends_on(ready, init)
    assert run.depends_on(run.named("kubeadm-dev-kubeconfig"), init)
    for worker in WORKERS[:workers]:
        token, join = run.named(f"{worker}-join-token"), run.named(f"{worker}-join")
        drain = run.named(f"{worker}-drain")
        assert run.depends_on(token, init)
        assert run.depends_on(join, token)
        assert run.depends_on(join, run.named(f"{worker}-systemd"))
        assert run.depends_on(ready, join)
        assert run.depends_on(join, drain)
        assert run.depends_on(drain, run.named(f"{worker}-systemd"))
    expected_nodes = " ".join([MASTER, *WORKERS[:workers]])
    assert exported_env(ready.inputs["stdin"])["EXPECTED_NODES"] == expected_nodes


def test_init_env_is_kinds(local: tuple[ProgramRun, Wired], workers: int) -> None:
    run, _ = local
    env = exported_env(run.named(f"{MASTER}-init").inputs["stdin"])
    assert env["NODE_NAME"] == MASTER
    assert env["ADVERTISE_ADDRESS"] == "172.30.0.10"
    assert env["CERT_SANS"] == "127.0.0.1,localhost"
    assert env["NODE_PROFILE"] == "kind"
    assert env["CNI"] == "kind"
    assert env["DEFAULT_STORAGE"] == "kind"
    assert "UNTAINT_CONTROL_PLANE" not in env  # the worker count never reaches init
    # A lone control-plane node must take workloads; with workers it keeps its taint.
    scheduling = run.named("kubeadm-dev-control-plane-scheduling").inputs["create"]
    assert scheduling.startswith(f"docker exec {MASTER} sh -c ")
    assert ("NoSchedule-" in scheduling) == (workers == 0)
    assert run.resolve(run.named(f"{MASTER}-init").inputs["triggers"]) == [f"{MASTER}-id"]


# -- secrets --------------------------------------------------------------------------------


def test_kubeconfig_is_secret_and_points_at_the_published_port(
    local: tuple[ProgramRun, Wired],
) -> None:
    run, wired = local
    assert run.is_secret(wired.cluster.kubeconfig)
    kubeconfig = yaml.safe_load(run.resolve(wired.cluster.kubeconfig))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    fetch = run.named("kubeadm-dev-kubeconfig")
    assert "stdout" in fetch.additional_secret_outputs
    assert fetch.inputs["logging"] == "none"


def test_join_tokens_are_secret_and_never_logged(
    local: tuple[ProgramRun, Wired], workers: int
) -> None:
    run, _ = local
    for worker in WORKERS[:workers]:
        token = run.named(f"{worker}-join-token")
        assert "stdout" in token.additional_secret_outputs
        assert token.inputs["logging"] == "none"
        join = run.named(f"{worker}-join")
        assert "stdin" in join.secret_inputs
        assert "--discovery-token-ca-cert-hash sha256:" in join.inputs["stdin"]


# -- scale out ------------------------------------------------------------------------------


def test_scale_out_leaves_the_master_untouched(run_components: ComponentRunner) -> None:
    one, _ = run_local(run_components, workers=0)
    three, _ = run_local(run_components, workers=2)
    for name in (MASTER, f"{MASTER}-systemd", "kubeadm-dev-network", "kubeadm-dev-node-image"):
        before, after = one.named(name), three.named(name)
        assert repr(before.inputs) == repr(after.inputs), name
        assert before.dependencies == after.dependencies, name
        assert (before.delete_before_replace, before.ignore_changes) == (
            after.delete_before_replace, after.ignore_changes
        )
    assert len(three.of_type(CONTAINER)) == 4  # the load balancer and three nodes
    # The load balancer's container stays; only the configuration it is given changes.
    lb_one, lb_three = one.named(LOAD_BALANCER), three.named(LOAD_BALANCER)
    assert [p for p in lb_one.inputs if p != "uploads"] == [
        p for p in lb_three.inputs if p != "uploads"]
    assert lb_three.ignore_changes and "uploads" in lb_three.ignore_changes
    config_one = one.named("kubeadm-dev-load-balancer-config").inputs["stdin"]
    config_three = three.named("kubeadm-dev-load-balancer-config").inputs["stdin"]
    assert "kubeadm-dev-worker-1 172.30.0.12:30080 check" not in config_one
    assert "kubeadm-dev-worker-1 172.30.0.12:30080 check" in config_three


# -- the load balancer and several control-plane nodes ---------------------------------------


def test_the_api_endpoint_is_the_load_balancer_from_init_on(
    local: tuple[ProgramRun, Wired], workers: int,
) -> None:
    run, wired = local
    lb = run.named(LOAD_BALANCER)
    assert lb.inputs["networksAdvanced"] == [{"name": "kubeadm-dev", "ipv4Address": "172.30.0.3"}]
    assert lb.inputs["restart"] == "unless-stopped"
    assert lb.delete_before_replace
    env = exported_env(run.named(f"{MASTER}-init").inputs["stdin"])
    assert env["CONTROL_PLANE_ENDPOINT"] == "172.30.0.3:6443"
    assert wired.hosts.cluster_hosts.control_plane_endpoint == "172.30.0.3:6443"
    config = run.named("kubeadm-dev-load-balancer-config")
    assert config.inputs["create"].startswith(f"docker exec -i -u 0 {LOAD_BALANCER} sh -c ")
    assert "haproxy -c -q -f" in config.inputs["create"]  # a bad config is never installed
    assert run.depends_on(run.named(f"{MASTER}-init"), config)
    haproxy = config.inputs["stdin"]
    assert lb.inputs["uploads"] == [
        {"file": "/usr/local/etc/haproxy/haproxy.cfg", "content": haproxy}]
    # The API goes to the control-plane nodes, checked on /readyz over TLS; each published
    # NodePort goes to every node.
    api = haproxy.split("\nbackend kube-apiservers\n")[1].split("frontend")[0]
    assert "  server kubeadm-dev-master 172.30.0.10:6443 check check-ssl verify none" in api
    assert "option httpchk GET /readyz" in api and "worker" not in api
    for i in range(workers):
        assert f"  server kubeadm-dev-worker-{i} 172.30.0.{11 + i}:30089 check" in haproxy
    assert haproxy.count("frontend node-port-") == 10


def test_three_control_plane_nodes_join_one_at_a_time_behind_the_load_balancer(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_local(run_components, workers=1, controlPlaneNodes="3")
    planes = ["kubeadm-dev-control-plane-1", "kubeadm-dev-control-plane-2"]
    containers = {c.name: c.inputs for c in node_containers(run)}
    assert {n: containers[n]["networksAdvanced"][0]["ipv4Address"] for n in planes} == {
        planes[0]: "172.30.0.9", planes[1]: "172.30.0.8"}
    # Workers keep their addresses whatever the control plane's size.
    assert containers["kubeadm-dev-worker-0"]["networksAdvanced"][0]["ipv4Address"] == \
        "172.30.0.11"
    for name in planes:
        assert {"label": "kubeadm-cluster.role", "value": "control-plane"} in \
            containers[name]["labels"]
        token = exported_env(run.named(f"{name}-join-token").inputs["stdin"])
        assert token["CONTROL_PLANE"] == "true"
        env = exported_env(run.named(f"{name}-join").inputs["stdin"])
        assert env["CONTROL_PLANE"] == "true"
        assert env["ADVERTISE_ADDRESS"] == containers[name]["networksAdvanced"][0]["ipv4Address"]
        assert "CERTIFICATE_KEY" in env
        assert "stdin" in run.named(f"{name}-join").secret_inputs
        drain = run.named(f"{name}-drain").inputs["delete"]
        assert "remove-etcd-member.sh" in drain and f"MEMBER_NAME={name}" in drain
    # One at a time: the second node's fresh key is made after the first has joined, and
    # (deletes run in reverse order) the second leaves before the first does.
    assert run.depends_on(run.named(f"{planes[1]}-join-token"), run.named(f"{planes[0]}-join"))
    assert run.depends_on(run.named(f"{planes[1]}-drain"), run.named(f"{planes[0]}-drain"))
    # A drain that meets etcd's leader election is tried again.
    assert "until sh -c" in run.named(f"{planes[0]}-drain").inputs["delete"]
    worker_token = exported_env(run.named("kubeadm-dev-worker-0-join-token").inputs["stdin"])
    assert "CONTROL_PLANE" not in worker_token
    ready = exported_env(run.named("kubeadm-dev-ready").inputs["stdin"])
    assert ready["EXPECTED_NODES"].split() == [MASTER, *planes, "kubeadm-dev-worker-0"]
    haproxy = run.named("kubeadm-dev-load-balancer-config").inputs["stdin"]
    api = haproxy.split("\nbackend kube-apiservers\n")[1].split("frontend")[0]
    assert [line.split()[1] for line in api.splitlines() if "server " in line] == [
        MASTER, *planes]
    scheduling = run.named("kubeadm-dev-control-plane-scheduling").inputs["create"]
    assert all(name in scheduling for name in (MASTER, *planes))


def test_a_stack_without_local_config_is_refused(run_components: ComponentRunner) -> None:
    def program() -> None:
        config = load_stack_config()
        LocalHosts(config.cluster_name, LocalHostsArgs(config))

    with pytest.raises(ValueError, match="target: local"):
        run_components(program, stack="aws")
