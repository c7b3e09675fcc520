"""components/kubeadm.py: the target-agnostic step graph, on stand-in hosts under mocks.

The hosts here are plain ClusterNodes with the two real transports, so the graph is checked
independently of how a target makes its machines.
"""

from __future__ import annotations

import itertools
import shlex
from typing import Any

import pulumi
import pytest

from components.config import load_stack_config, node_ip
from components.kubeadm import (
    REMOVE_REGISTRY_MIRRORS,
    ClusterHosts,
    ClusterNode,
    KubeadmCluster,
    KubeadmClusterArgs,
    NodeInstall,
    drain_command,
    kubeconfig_with_server,
    parse_join_token_output,
    render_registry_mirrors,
)
from components.scripts import script_command, script_text
from components.transport import DockerExecTransport, SshTransport
from tests.conftest import FAKE_ADMIN_CONF, ComponentRunner, ProgramRun


def stand_in_cluster(with_install: bool, ssh: bool) -> None:
    config = load_stack_config()

    def node(name: str, index: int) -> ClusterNode:
        transport: Any = (
            SshTransport(host=f"198.51.100.{index + 1}", user="ubuntu",
                         private_key=pulumi.Output.secret("KEY"))
            if ssh else DockerExecTransport(name)
        )
        return ClusterNode(name=name, private_ip=node_ip("10.0.1.0/24", index),
                           transport=transport, identity=f"machine-{name}")

    cluster = KubeadmCluster(
        config.cluster_name,
        KubeadmClusterArgs(
            cluster=config.cluster,
            hosts=ClusterHosts(
                master=node(config.master_name, 0),
                workers=[node(name, i + 1) for i, name in enumerate(config.worker_names)],
                api_endpoint="203.0.113.10:6443",
                app_host="203.0.113.10",
                cert_sans=["203.0.113.10", "ec2-203-0-113-10.example"],
                install=NodeInstall("docker", "ubuntu") if with_install else None,
            ),
        ),
    )
    pulumi.export("kubeconfig", cluster.kubeconfig)


def run_cluster(run_components: ComponentRunner, workers: int, with_install: bool = True,
                ssh: bool = True, **overrides: object) -> ProgramRun:
    return run_components(lambda: stand_in_cluster(with_install, ssh), stack="aws",
                          workers=str(workers), **overrides)


def step_names(run: ProgramRun) -> set[str]:
    return {r.name for r in run.resources if r.type.startswith("command:")}


@pytest.mark.parametrize("workers", [0, 1, 5])
def test_steps_for_each_node(run_components: ComponentRunner, workers: int) -> None:
    run = run_cluster(run_components, workers)
    master = "kubeadm-aws-master"
    expected = {f"{master}-install", f"{master}-kubernetes", f"{master}-init"}
    expected |= {"kubeadm-aws-ready", "kubeadm-aws-kubeconfig",
                 "kubeadm-aws-control-plane-scheduling"}
    for i in range(workers):
        worker = f"kubeadm-aws-worker-{i}"
        expected |= {f"{worker}-{s}" for s in (
            "install", "join-token", "join", "drain", "kubernetes")}
    assert step_names(run) == expected


def test_join_waits_for_init_and_its_own_install_only(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 3)
    init = run.named("kubeadm-aws-master-init")
    for i in range(3):
        join = run.named(f"kubeadm-aws-worker-{i}-join")
        assert run.depends_on(join, init)
        assert run.depends_on(join, run.named(f"kubeadm-aws-worker-{i}-install"))
        for j in range(3):
            if j != i:
                other_install = run.named(f"kubeadm-aws-worker-{j}-install")
                assert not run.depends_on(join, other_install)
                assert not run.depends_on(join, run.named(f"kubeadm-aws-worker-{j}-join"))
    for res in run.resources:
        if res.name.endswith("-install"):
            assert not run.depends_on(res, init), f"{res.name} waits for kubeadm init"


def test_readiness_gate_waits_for_every_node(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 2)
    ready = run.named("kubeadm-aws-ready")
    assert run.depends_on(ready, run.named("kubeadm-aws-master-init"))
    for i in range(2):
        assert run.depends_on(ready, run.named(f"kubeadm-aws-worker-{i}-join"))
    stdin = ready.inputs["stdin"]
    assert "export EXPECTED_NODES='kubeadm-aws-master kubeadm-aws-worker-0 kubeadm-aws-worker-1'" \
        in stdin


def test_drain_runs_on_the_master_before_the_worker_goes(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 2)
    for i in range(2):
        drain = run.named(f"kubeadm-aws-worker-{i}-drain")
        # The join waits for the drain, so the drain is deleted after the join: a replaced
        # drain step removes the old Node before a machine of the same name joins again.
        assert run.depends_on(run.named(f"kubeadm-aws-worker-{i}-join"), drain)
        assert run.depends_on(drain, run.named("kubeadm-aws-master-init"))
        assert drain.delete_before_replace
        delete = drain.inputs["delete"]
        assert delete.startswith("sudo -n sh -c ")
        assert "drain kubeadm-aws-worker-" in delete
        assert delete.index(" drain ") < delete.index(" delete node ")
        # It reaches the master, not the worker it removes.
        assert drain.inputs["connection"]["host"] == "198.51.100.1"


def test_drain_command_order_and_tolerance() -> None:
    command = drain_command("w-1")
    assert command.startswith("set -e; ")
    assert "get node w-1 --ignore-not-found -o name" in command
    assert command.index("drain w-1 --ignore-daemonsets --delete-emptydir-data --force") < \
        command.index("delete node w-1")


def test_join_token_is_secret_and_fresh_per_worker(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 2)
    for i in range(2):
        token = run.named(f"kubeadm-aws-worker-{i}-join-token")
        assert set(token.additional_secret_outputs) >= {"stdout", "stderr"}
        assert token.inputs["logging"] == "none"
        assert "export TOKEN_TTL=15m" in token.inputs["stdin"]
        assert token.inputs["connection"]["host"] == "198.51.100.1"
        join = run.named(f"kubeadm-aws-worker-{i}-join")
        assert "stdin" in join.secret_inputs
        assert run.depends_on(join, token)


def test_init_inputs(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 1)
    stdin = run.named("kubeadm-aws-master-init").inputs["stdin"]
    for line in (
        "export ADVERTISE_ADDRESS=10.0.1.10",
        "export CERT_SANS=203.0.113.10,ec2-203-0-113-10.example",
        "export CNI=flannel",
        "export NODE_NAME=kubeadm-aws-master",
        "export POD_CIDR=10.244.0.0/16",
        "export SERVICE_CIDR=10.96.0.0/12",
    ):
        assert line + "\n" in stdin
    assert "kubeadm init" in stdin
    # The version lives only in the kubernetes steps: changing it must not rerun init.
    assert "KUBERNETES_VERSION=" not in stdin.split("#!/usr/bin/env bash")[0]
    # No default storage on EC2 yet, and the key is left out so existing inits keep their inputs.
    assert "DEFAULT_STORAGE=" not in stdin.split("#!/usr/bin/env bash")[0]


def test_single_node_untaints_the_control_plane(run_components: ComponentRunner) -> None:
    step = run_cluster(run_components, 0).named("kubeadm-aws-control-plane-scheduling")
    assert "taint nodes kubeadm-aws-master node-role.kubernetes.io/control-plane:NoSchedule-" \
        in step.inputs["create"]
    step = run_cluster(run_components, 2).named("kubeadm-aws-control-plane-scheduling")
    assert "node-role.kubernetes.io/control-plane=:NoSchedule --overwrite" in step.inputs["create"]


def test_worker_count_never_reaches_the_master_init(run_components: ComponentRunner) -> None:
    inits = {run_cluster(run_components, n).named("kubeadm-aws-master-init").inputs["stdin"]
             for n in (0, 1, 4)}
    assert len(inits) == 1


def test_kubeconfig_is_secret_and_points_at_the_public_endpoint(
    run_components: ComponentRunner,
) -> None:
    run = run_cluster(run_components, 1)
    assert run.is_secret(run.outputs["kubeconfig"])
    kubeconfig = run.output("kubeconfig")
    assert "server: https://203.0.113.10:6443" in kubeconfig
    read = run.named("kubeadm-aws-kubeconfig")
    assert read.inputs["logging"] == "none"
    assert "stdout" in read.additional_secret_outputs


def test_kubeconfig_with_server_replaces_only_the_server() -> None:
    rewritten = kubeconfig_with_server(FAKE_ADMIN_CONF, "127.0.0.1:6443")
    assert "    server: https://127.0.0.1:6443\n" in rewritten
    assert rewritten.replace("127.0.0.1:6443", "10.0.1.10:6443") == FAKE_ADMIN_CONF


def test_scale_out_leaves_existing_nodes_steps_unchanged(run_components: ComponentRunner) -> None:
    before = {r.name: r.inputs for r in run_cluster(run_components, 2).resources}
    after = {r.name: r.inputs for r in run_cluster(run_components, 3).resources}
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed == {"kubeadm-aws-ready"}, changed
    added = set(after) - set(before)
    assert added == {f"kubeadm-aws-worker-2-{s}" for s in (
        "install", "join-token", "join", "drain", "kubernetes")}


def test_without_install_no_install_steps_run(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 1, with_install=False, ssh=False)
    assert not any(n.endswith("-install") for n in step_names(run))
    init = run.named("kubeadm-aws-master-init")
    assert init.inputs["create"] == "docker exec -i kubeadm-aws-master bash -s"
    join = run.named("kubeadm-aws-worker-0-join")
    assert join.inputs["create"] == "docker exec -i kubeadm-aws-worker-0 bash -s"
    drain = run.named("kubeadm-aws-worker-0-drain")
    assert "; docker exec kubeadm-aws-master sh -c " in drain.inputs["delete"]


def test_steps_rerun_when_their_machine_is_replaced(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 1)
    # The master's own steps follow the master's machine (the worker steps: the next test).
    for name in ("kubeadm-aws-master-install", "kubeadm-aws-master-init"):
        assert run.named(name).inputs["triggers"] == ["machine-kubeadm-aws-master"], name


def test_worker_steps_rerun_for_a_new_control_plane(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 1)
    for name in ("kubeadm-aws-worker-0-join-token", "kubeadm-aws-worker-0-join"):
        assert run.resolve(run.named(name).inputs["triggers"]) == [
            "machine-kubeadm-aws-worker-0", "machine-kubeadm-aws-master"], name
    # The install and the drain belong to the worker's machine alone: a new master neither
    # reinstalls workers nor drains them (against a control plane that is going away).
    for name in ("kubeadm-aws-worker-0-install", "kubeadm-aws-worker-0-drain"):
        assert run.named(name).inputs["triggers"] == ["machine-kubeadm-aws-worker-0"], name
    # What must happen again on a new control plane: the taint and the readiness gate.
    for name in ("kubeadm-aws-control-plane-scheduling", "kubeadm-aws-ready"):
        assert run.named(name).inputs["triggers"] == ["machine-kubeadm-aws-master"], name


def test_join_token_is_made_after_the_workers_install(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 2)
    for i in range(2):
        token = run.named(f"kubeadm-aws-worker-{i}-join-token")
        assert run.depends_on(token, run.named(f"kubeadm-aws-worker-{i}-install"))
        assert not run.depends_on(token, run.named(f"kubeadm-aws-worker-{1 - i}-install"))


# ---------------------------------------------------------------------------------------------
# Upgrades: the version lives in one step per node, chained master first


def test_a_version_change_changes_only_the_kubernetes_steps(
    run_components: ComponentRunner,
) -> None:
    before = {r.name: r.inputs for r in run_cluster(
        run_components, 2, kubernetesVersion="1.36").resources}
    after = {r.name: r.inputs for r in run_cluster(
        run_components, 2, kubernetesVersion="1.37.2").resources}
    assert set(before) == set(after)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {f"kubeadm-aws-{node}-kubernetes"
                       for node in ("master", "worker-0", "worker-1")}
    for name in changed:
        assert "export KUBERNETES_VERSION=1.37.2\n" in after[name]["stdin"], name


def test_kubernetes_steps_run_master_first_then_one_worker_at_a_time(
    run_components: ComponentRunner,
) -> None:
    run = run_cluster(run_components, 3)
    chain = [run.named(f"kubeadm-aws-{node}-kubernetes")
             for node in ("master", "worker-0", "worker-1", "worker-2")]
    for earlier, later in itertools.pairwise(chain):
        assert earlier.urn in run.direct_dependencies(later), later.name
    for i, step in enumerate(chain[1:]):
        # After its own join, and never before the worker before it.
        assert run.depends_on(step, run.named(f"kubeadm-aws-worker-{i}-join"))
        assert "export ROLE=worker\n" in step.inputs["stdin"]
        assert "stdin" in step.secret_inputs  # it carries the admin kubeconfig
        assert f"export ADMIN_KUBECONFIG={FAKE_ADMIN_CONF!r}" not in step.inputs["stdin"]
        assert "ADMIN_KUBECONFIG=" in step.inputs["stdin"]
    assert "export ROLE=control-plane\n" in chain[0].inputs["stdin"]
    assert "ADMIN_KUBECONFIG" not in chain[0].inputs["stdin"].split("#!/usr/bin/env bash")[0]
    # init waits for the master's packages; a worker's join token for the master's upgrade,
    # so a worker added during an upgrade joins at the new version.
    assert run.depends_on(run.named("kubeadm-aws-master-init"), chain[0])
    assert run.depends_on(run.named("kubeadm-aws-worker-2-join-token"), chain[0])
    # The workers' chain must not order the joins: they still run side by side.
    for i in range(3):
        join = run.named(f"kubeadm-aws-worker-{i}-join")
        assert not any(run.depends_on(join, step) for step in chain[1:]), join.name


def test_drain_timeout_reaches_scale_in_and_upgrade_drains(
    run_components: ComponentRunner,
) -> None:
    run = run_cluster(run_components, 1, drainTimeoutSeconds="45")
    assert "--timeout=45s" in run.named("kubeadm-aws-worker-0-drain").inputs["delete"]
    assert "export DRAIN_TIMEOUT=45s\n" in run.named("kubeadm-aws-worker-0-kubernetes").inputs[
        "stdin"]
    default = run_cluster(run_components, 1)
    assert "--timeout=300s" in default.named("kubeadm-aws-worker-0-drain").inputs["delete"]


def test_join_installs_the_version_the_cluster_runs(run_components: ComponentRunner) -> None:
    join = run_cluster(run_components, 1, kubernetesVersion="1.36").named(
        "kubeadm-aws-worker-0-join")
    stdin = join.inputs["stdin"]
    # From the join-token step's second line, not from config.
    assert "export KUBERNETES_VERSION=1.37.2\n" in stdin
    assert stdin.index("SCRIPT_NAME=install-kubeadm.sh") < stdin.index(
        "SCRIPT_NAME=kubeadm-join.sh")


def test_kind_nodes_have_no_kubernetes_steps(run_components: ComponentRunner) -> None:
    run = run_cluster(run_components, 1, with_install=False, ssh=False)
    assert not [r for r in run.resources if r.name.endswith("-kubernetes")]
    join = run.named("kubeadm-aws-worker-0-join").inputs["stdin"]
    assert "KUBERNETES_VERSION" not in join.split("#!/usr/bin/env bash")[0]


@pytest.mark.parametrize("stdout", [
    "kubeadm join 10.0.0.1:6443 --token a.b\n",
    "kubeadm join 10.0.0.1:6443 --token a.b\n1.37\n",
    "not a join\n1.37.2\n",
    "",
    "kubeadm join 10.0.0.1:6443 --token a.b\n1.37.2\nnot-a-key\n",
    "kubeadm join 10.0.0.1:6443 --token a.b\n1.37.2\n" + "a" * 64 + "\nextra\n",
])
def test_join_token_output_must_be_a_join_command_and_a_release(stdout: str) -> None:
    with pytest.raises(ValueError, match="a join command, a version"):
        parse_join_token_output(stdout)


def test_join_token_output_parses() -> None:
    assert parse_join_token_output("kubeadm join h:6443 --token t\n1.36.5\n") == (
        "kubeadm join h:6443 --token t", "1.36.5", "")
    key = "0123456789abcdef" * 4
    assert parse_join_token_output(f"kubeadm join h:6443 --token t\n1.36.5\n{key}\n") == (
        "kubeadm join h:6443 --token t", "1.36.5", key)


MIRRORS = {"docker.io": ["https://mirror.example", "http://10.0.0.5:5000"],
           "ghcr.io": ["https://ghcr-mirror.example"]}


@pytest.mark.parametrize("with_install", [True, False], ids=["hosts", "kind"])
def test_registry_mirrors_reach_every_node_before_anything_pulls(
    run_components: ComponentRunner, with_install: bool,
) -> None:
    assert not any(name.endswith("-registry-mirrors")
                   for name in step_names(run_cluster(run_components, 2, with_install)))
    run = run_cluster(run_components, 2, with_install, registryMirrors=MIRRORS)
    for node in ("master", "worker-0", "worker-1"):
        step = run.named(f"kubeadm-aws-{node}-registry-mirrors")
        assert ("export REGISTRY_MIRRORS='docker.io https://mirror.example "
                "http://10.0.0.5:5000\nghcr.io https://ghcr-mirror.example\n'\n"
                ) in step.inputs["stdin"]
        assert step.inputs["delete"].endswith(
            f"sh -c {shlex.quote(REMOVE_REGISTRY_MIRRORS)} </dev/null")
        if with_install:
            assert run.depends_on(step, run.named(f"kubeadm-aws-{node}-install"))
        later = "init" if node == "master" else "join"
        assert run.depends_on(run.named(f"kubeadm-aws-{node}-{later}"), step)
    if with_install:
        assert run.depends_on(run.named("kubeadm-aws-master-kubernetes"),
                              run.named("kubeadm-aws-master-registry-mirrors"))


def test_changing_registry_mirrors_changes_only_the_mirror_steps(
    run_components: ComponentRunner,
) -> None:
    before = {r.name: r.inputs for r in run_cluster(
        run_components, 2, registryMirrors=MIRRORS).resources}
    after = {r.name: r.inputs for r in run_cluster(
        run_components, 2, registryMirrors={"docker.io": ["https://other.example"]}).resources}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {f"kubeadm-aws-{node}-registry-mirrors"
                       for node in ("master", "worker-0", "worker-1")}


def test_registry_mirrors_delete_removes_the_files_it_wrote() -> None:
    """The delete is the same script with no mirrors, as one command (no stdin on delete)."""
    expected = script_command("registry-mirrors.sh", {"REGISTRY_MIRRORS": ""})
    assert expected == REMOVE_REGISTRY_MIRRORS
    assert shlex.split(REMOVE_REGISTRY_MIRRORS) == [
        "env", "REGISTRY_MIRRORS=", "bash", "-c", script_text("registry-mirrors.sh")]
    assert render_registry_mirrors([("docker.io", ("https://a", "https://b"))]) == (
        "docker.io https://a https://b\n")
