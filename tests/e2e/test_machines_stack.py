"""The machines target for real, and with it the AWS node path: everything after "the
instances exist" (SSH with pinned host keys, preflight, Docker Engine and containerd from
Debian, kubeadm packages from an apt repository, init, fresh-token joins, drains, readiness,
apps) runs for real on Debian machine containers (tests/e2e/fleet.py) reached over SSH.

In order, as a user would drive it (each test builds on the one before):
up with 1 control plane + 2 workers at the previous minor (1.36) -> no perpetual diff -> the
app's image moved to a registry only a configured mirror serves (registryMirrors) -> the
upgrade to the default minor previewed as one step per node -> the upgrade while a request loop
runs, stopped by a PodDisruptionBudget that blocks the first worker's drain -> the budget
freed, the rerun resumes and finishes -> a downgrade refused -> a machine whose host key is not
the pinned one is refused -> 3 workers (the new one gets the mirrors and joins at the cluster's
version) -> 1 worker (drained, then reset, its mirrors removed) -> apiEndpoint moved to a DNS
name (the API server certificate is reissued with it) -> destroy (every machine reset,
packages left). Checks read the cluster through the exported kubeconfig and app URL, and the
machines through `docker exec`, never through the program's internals.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleet import (
    APP_REGISTRY_IMAGE,
    Fleet,
    Machine,
    keygen,
    machines_stack_file,
    set_login_key,
)
from tests.e2e.internet import InternetStandin
from tests.e2e.project import APP_IMAGE, E2E_DIR, E2EError, Workspace, wait_for
from tests.e2e.traffic import RequestLoop, answers

pytestmark = pytest.mark.e2e

STACK = "machines"
CLUSTER = "kubeadm-machines"
MASTER = f"{CLUSTER}-master"
NODE_PORT = 30080
STATE: dict[str, Any] = {}
# The cluster starts at the previous minor and is upgraded to the default one; both are in the
# internet stand-in's apt repository and registry (toolchain/versions.sh).
PREVIOUS_RELEASE = "v1.36.5"
RELEASE = "v1.37.2"
DRAIN_TIMEOUT_SECONDS = 30
BLOCKER = "upgrade-blocker"
API_NAME = "api.e2e.test"


def worker(index: int) -> str:
    return f"{CLUSTER}-worker-{index}"


@pytest.fixture(scope="module")
def internet() -> Iterator[InternetStandin]:
    standin = InternetStandin(extra_images={APP_REGISTRY_IMAGE: APP_IMAGE})
    standin.start()
    yield standin
    standin.stop()


def forget_earlier_stack() -> None:
    """An earlier run's stack names machines that are about to be made anew (with new host
    keys, which a destroy would rightly refuse): remove it from the backend without a destroy."""
    workspace = Workspace(STACK, lambda: "")
    workspace.check_tools()
    workspace.prepare()
    if workspace.stack_exists():
        workspace.pulumi("stack", "rm", "--yes", "--force")


@pytest.fixture(scope="module")
def fleet(internet: InternetStandin) -> Iterator[Fleet]:
    forget_earlier_stack()
    fleet = Fleet(E2E_DIR / "machines", internet.add_hosts(), internet.ca_pem())
    fleet.prepare()
    for index, name in enumerate([MASTER, worker(0), worker(1)]):
        fleet.start(name, index)
    yield fleet
    if os.environ.get("KEEP") != "1":
        fleet.remove_all()


@pytest.fixture(scope="module")
def workspace(fleet: Fleet) -> Iterator[Workspace]:
    workers = [fleet.machines[worker(0)], fleet.machines[worker(1)]]
    workspace = Workspace(STACK, lambda: machines_stack_file(
        fleet.machines[MASTER], workers, APP_REGISTRY_IMAGE,
        kubernetes_version=PREVIOUS_RELEASE.removeprefix("v").rsplit(".", 1)[0],
        drain_timeout_seconds=DRAIN_TIMEOUT_SECONDS))
    workspace.check_tools()
    workspace.prepare()
    workspace.fresh_stack()
    set_login_key(workspace, fleet)
    yield workspace
    if os.environ.get("KEEP") != "1":
        workspace.pulumi("destroy", "--yes", "--skip-preview", check=False)


# -- reading the cluster and the machines ----------------------------------------------------


def nodes(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """Node name -> {ready, ip}."""
    items = json.loads(workspace.kubectl("get", "nodes", "-o", "json"))["items"]
    return {
        n["metadata"]["name"]: {
            "ready": any(c["type"] == "Ready" and c["status"] == "True"
                         for c in n["status"]["conditions"]),
            "ip": next(a["address"] for a in n["status"]["addresses"]
                       if a["type"] == "InternalIP"),
        }
        for n in items
    }


def running_pods(workspace: Workspace, namespace: str) -> dict[str, str]:
    """Pod name -> node name, for Running pods whose containers are all ready."""
    items = json.loads(workspace.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in items
        if p["status"].get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
    }


def app_answers(workspace: Workspace) -> bool:
    return answers(next(iter(workspace.outputs()["apps"].values()))["url"], timeout=5)


def reset_leftovers(machine: Machine) -> list[str]:
    """What of a cluster is still on `machine` (empty: the machine is reset)."""
    checks = {
        "kubelet.conf": "test -e /etc/kubernetes/kubelet.conf",
        "admin.conf": "test -e /etc/kubernetes/admin.conf",
        "static pods": "ls /etc/kubernetes/manifests/*.yaml >/dev/null 2>&1",
        "kubelet active": "systemctl is-active --quiet kubelet",
        "CNI config": "ls /etc/cni/net.d/* >/dev/null 2>&1",
        "pod network links": "ip link show cni0 >/dev/null 2>&1 || ip link show flannel.1 "
                             ">/dev/null 2>&1",
        "cluster iptables chains": "iptables-save | grep -Eq 'KUBE-|FLANNEL|CNI-'",
        "etcd data": "test -d /var/lib/etcd/member",
    }
    return [what for what, command in checks.items() if machine.rc(command) == 0]


# -- the run ---------------------------------------------------------------------------------


def test_up_gives_ready_nodes_flannel_and_the_app(workspace: Workspace, fleet: Fleet) -> None:
    result = workspace.up()
    STATE["bring_up_seconds"] = result.seconds
    print(f"\nmachines bring-up, 1 control plane + 2 workers: {result.seconds:.1f}s")
    workspace.write_kubeconfig()
    expected = {name: fleet.machines[name].ip for name in (MASTER, worker(0), worker(1))}
    found = wait_for("3 Ready nodes", lambda: (n := nodes(workspace)) and all(
        v["ready"] for v in n.values()) and len(n) == 3 and n)
    assert {name: v["ip"] for name, v in found.items()} == expected
    flannel = wait_for("flannel on every node", lambda: (
        p := running_pods(workspace, "kube-flannel")) and set(p.values()) == set(expected) and p)
    assert len(flannel) == 3
    assert wait_for("the app answers on its node port", lambda: app_answers(workspace))
    url = next(iter(workspace.outputs()["apps"].values()))["url"]
    assert url == f"http://{fleet.machines[MASTER].ip}:{NODE_PORT}"
    for name in expected:
        machine = fleet.machines[name]
        assert machine.sh("kubeadm version -o short").strip() == PREVIOUS_RELEASE
        held = machine.sh("apt-mark showhold").split()
        assert {"kubelet", "kubeadm", "kubectl"} <= set(held)
        # containerd's sandbox image is kubeadm's pause, not its own default (pause:3.6).
        assert_pause_follows_kubeadm(machine, PREVIOUS_RELEASE)
        assert "pause:3.6" not in machine.sh("ctr -n k8s.io images ls -q")
        # packageSource distro: the runtime is Debian's own (its versions end in +debNN...).
        for package in ("containerd", "docker.io"):
            assert "deb12" in machine.sh(f"dpkg-query -W -f='${{Version}}' {package}"), package


def test_no_changes_after_up(workspace: Workspace) -> None:
    workspace.pulumi("preview", "--expect-no-changes", "--skip-plugin-pre-install")


# A registry name nothing resolves: only a mirror can serve images named under it.
MIRRORED_REGISTRY = "mirrored-only.e2e.test"
MIRRORED_IMAGE = f"{MIRRORED_REGISTRY}/{APP_IMAGE}"


def app_pod_images(workspace: Workspace) -> dict[str, str]:
    """Running, ready app pod -> its image."""
    app = next(iter(workspace.outputs()["apps"].values()))
    items = json.loads(workspace.kubectl("get", "pods", "-n", app["namespace"], "-o",
                                         "json"))["items"]
    return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in items
            if p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))}


def test_registry_mirrors_serve_an_image_its_own_registry_cannot(
    workspace: Workspace, fleet: Fleet,
) -> None:
    """registryMirrors (issue 16 item 4): the app's image moves to a registry name no machine
    can resolve, mirrored by the stand-in registry; every replica pulls it through the mirror
    (containerd's hosts.toml, written by each node's registry-mirrors step)."""
    workspace.config_set(f'registryMirrors["{MIRRORED_REGISTRY}"][0]', "https://registry.e2e.test")
    workspace.config_set("apps[0].image", MIRRORED_IMAGE)
    changes = workspace.preview_changes()
    # One mirrors step per machine, and the app's new image; nothing else.
    assert [c for c in changes if c[0] != "update" or "Deployment" not in c[1]] == [
        ("create", "command:remote:Command")] * 3, changes
    workspace.up()
    images = wait_for("every app replica runs the mirrored image", lambda: (
        i := app_pod_images(workspace)) and len(i) == 3 and set(i.values()) == {MIRRORED_IMAGE}
        and i)
    assert len(images) == 3
    for name in (MASTER, worker(0), worker(1)):
        machine = fleet.machines[name]
        assert machine.rc(f"getent hosts {MIRRORED_REGISTRY}") != 0  # no route but the mirror
        hosts_toml = machine.sh(f"cat /etc/containerd/certs.d/{MIRRORED_REGISTRY}/hosts.toml")
        assert '[host."https://registry.e2e.test"]' in hosts_toml
    assert wait_for("the app answers", lambda: app_answers(workspace))
    workspace.pulumi("preview", "--expect-no-changes", "--skip-plugin-pre-install")


def node_versions(workspace: Workspace) -> dict[str, tuple[str, bool]]:
    """Node name -> (kubelet version, cordoned)."""
    items = json.loads(workspace.kubectl("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: (n["status"]["nodeInfo"]["kubeletVersion"],
                                    bool(n["spec"].get("unschedulable")))
            for n in items}


def assert_pause_follows_kubeadm(machine: Machine, release: str) -> None:
    pause = machine.sh(f"kubeadm config images list --kubernetes-version {release} | grep pause")
    assert f'sandbox_image = "{pause.strip()}"' in machine.sh("cat /etc/containerd/config.toml")


def preview_steps(workspace: Workspace) -> list[tuple[str, str]]:
    """(operation, resource name) of every step a preview would take, in the engine's order."""
    result = workspace.pulumi("preview", "--json", "--skip-plugin-pre-install")
    steps = json.loads(result.stdout).get("steps", [])
    return [(s["op"], s["urn"].rsplit("::", 1)[-1]) for s in steps if s["op"] != "same"]


def add_drain_blocker(workspace: Workspace, node: str) -> None:
    """One pod on `node` behind a PodDisruptionBudget that allows no disruption."""
    manifest = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": BLOCKER, "namespace": "default"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": BLOCKER}},
                  "template": {"metadata": {"labels": {"app": BLOCKER}}, "spec": {
                      "nodeSelector": {"kubernetes.io/hostname": node},
                      "containers": [{"name": "web", "image": APP_REGISTRY_IMAGE}]}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": {"name": BLOCKER, "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": BLOCKER}}}},
    ]}
    path = workspace.kubeconfig.parent / f"{BLOCKER}.json"
    path.write_text(json.dumps(manifest))
    workspace.kubectl("apply", "-f", str(path))
    workspace.kubectl("rollout", "status", f"deployment/{BLOCKER}", "-n", "default",
                      "--timeout=180s")


def test_the_upgrade_previews_as_one_step_per_node_in_order(workspace: Workspace) -> None:
    workspace.pulumi("config", "set", "kubernetesVersion", RELEASE.removeprefix("v"))
    assert preview_steps(workspace) == [
        ("update", f"{MASTER}-kubernetes"),
        ("update", f"{worker(0)}-kubernetes"),
        ("update", f"{worker(1)}-kubernetes"),
    ]


def test_a_blocked_drain_stops_the_upgrade_with_the_pod_and_budget_named(
    workspace: Workspace,
) -> None:
    add_drain_blocker(workspace, worker(0))
    url = next(iter(workspace.outputs()["apps"].values()))["url"]
    started = time.monotonic()
    with RequestLoop(url, max_seconds=1800) as loop, pytest.raises(E2EError) as failed:
        workspace.up()
    print(f"\nupgrade {PREVIOUS_RELEASE} -> {RELEASE}, stopped at {worker(0)}'s drain "
          f"({DRAIN_TIMEOUT_SECONDS}s bound): {time.monotonic() - started:.1f}s; {loop.total} "
          f"requests, {loop.failures} failed ({loop.describe_failures()})")
    message = str(failed.value)
    # The control plane's step asked kubeadm for its plan before applying it.
    log = re.search(r"\(log: (\S+)\)", message)
    assert log is not None, message
    assert f"upgrade-node.sh: kubeadm upgrade plan {RELEASE}" in Path(log.group(1)).read_text()
    assert f"draining {worker(0)} did not finish within {DRAIN_TIMEOUT_SECONDS}s" in message
    assert f"held by PodDisruptionBudget default/{BLOCKER} (0 disruptions allowed)" in message
    assert f"pod default/{BLOCKER}-" in message
    versions = node_versions(workspace)
    # The control plane was upgraded, the blocked worker stays cordoned at the old version,
    # the next worker was not touched, and the app kept answering.
    assert versions[MASTER] == (RELEASE, False)
    assert versions[worker(0)] == (PREVIOUS_RELEASE, True)
    assert versions[worker(1)] == (PREVIOUS_RELEASE, False)
    # The requests enter through the control plane's NodePort, and that node's kube-proxy,
    # containerd and kubelet restart during its own upgrade: the goal is 0 failed (3 of 4 runs),
    # one run lost 7 of 5109. More than 1% means the upgrade took the app down.
    assert loop.failures <= loop.total // 100, (
        f"{loop.failures}/{loop.total}: {loop.describe_failures()}")
    STATE["blocked_requests"] = loop.total


def test_the_rerun_resumes_and_every_node_runs_the_new_version(
    workspace: Workspace, fleet: Fleet,
) -> None:
    workspace.kubectl("delete", "poddisruptionbudget", BLOCKER, "-n", "default")
    # The short bound was only there to make the blocked drain fail fast. With it the rerun's
    # drain could run out too (one CI run: the app's budget evicts its two pods on the node one
    # after the other, each through a preStop pause), so resume as a user would, with the
    # default bound.
    workspace.pulumi("config", "rm", "drainTimeoutSeconds")
    url = next(iter(workspace.outputs()["apps"].values()))["url"]
    with RequestLoop(url, max_seconds=1800) as loop:
        result = workspace.up()
    print(f"\nupgrade {PREVIOUS_RELEASE} -> {RELEASE}, resumed after the blocked drain: "
          f"{result.seconds:.1f}s; {loop.total} requests, {loop.failures} failed "
          f"({loop.describe_failures()})")
    assert loop.failures == 0, f"{loop.failures}/{loop.total}: {loop.describe_failures()}"
    assert node_versions(workspace) == {
        name: (RELEASE, False) for name in (MASTER, worker(0), worker(1))}
    for name in (MASTER, worker(0), worker(1)):
        machine = fleet.machines[name]
        assert machine.sh("kubeadm version -o short").strip() == RELEASE, name
        assert {"kubelet", "kubeadm", "kubectl"} <= set(machine.sh("apt-mark showhold").split())
        assert_pause_follows_kubeadm(machine, RELEASE)
    server = json.loads(workspace.kubectl("version", "-o", "json"))["serverVersion"]
    assert server["gitVersion"] == RELEASE
    workspace.kubectl("delete", "deployment", BLOCKER, "-n", "default")
    workspace.pulumi("preview", "--expect-no-changes", "--skip-plugin-pre-install")


def test_a_downgrade_is_refused_before_any_node_is_touched(workspace: Workspace) -> None:
    workspace.pulumi("config", "set", "kubernetesVersion", PREVIOUS_RELEASE.removeprefix("v"))
    with pytest.raises(E2EError) as failed:
        workspace.up()
    assert f"the cluster runs Kubernetes {RELEASE.removeprefix('v')}" in str(failed.value)
    assert "would be a downgrade" in str(failed.value)
    assert node_versions(workspace) == {
        name: (RELEASE, False) for name in (MASTER, worker(0), worker(1))}
    workspace.pulumi("config", "set", "kubernetesVersion", RELEASE.removeprefix("v"))
    workspace.pulumi("preview", "--expect-no-changes", "--skip-plugin-pre-install")


def test_a_machine_with_another_host_key_is_refused(workspace: Workspace, fleet: Fleet) -> None:
    """The third worker's pinned key is not the key its sshd presents: the program must not
    log in, so nothing is installed there."""
    third = fleet.start(worker(2), 3)
    wrong_key = keygen(fleet.workdir / "stranger" / "ssh_host_ed25519_key", "root@stranger")
    workspace.config_set("workerHosts[2].address", third.ip)
    workspace.config_set("workerHosts[2].hostKey", wrong_key)
    with pytest.raises(E2EError) as failed:
        workspace.up()
    assert "host key mismatch" in str(failed.value)
    assert third.rc("test -e /etc/apt/sources.list.d/kubernetes.list") != 0
    assert third.rc("command -v kubeadm") != 0
    assert set(nodes(workspace)) == {MASTER, worker(0), worker(1)}


def test_scale_out_to_three_workers(workspace: Workspace, fleet: Fleet) -> None:
    started = {name: fleet.machines[name].sh("systemctl show -p ActiveEnterTimestamp kubelet")
               for name in (MASTER, worker(0), worker(1))}
    workspace.config_set("workerHosts[2].hostKey", fleet.machines[worker(2)].host_key)
    workspace.up()
    found = wait_for("4 Ready nodes", lambda: (n := nodes(workspace)) and len(n) == 4 and all(
        v["ready"] for v in n.values()) and n)
    assert found[worker(2)]["ip"] == fleet.machines[worker(2)].ip
    # It joined at the version the cluster runs (upgraded above), not an older one.
    assert node_versions(workspace)[worker(2)] == (RELEASE, False)
    # It got the registry mirrors before it joined.
    assert fleet.machines[worker(2)].rc(
        f"test -f /etc/containerd/certs.d/{MIRRORED_REGISTRY}/hosts.toml") == 0
    # The nodes that were there were not touched: their kubelets kept running.
    for name, before in started.items():
        assert fleet.machines[name].sh("systemctl show -p ActiveEnterTimestamp kubelet") == before
    workspace.pulumi("preview", "--expect-no-changes", "--skip-plugin-pre-install")


def test_scale_in_to_one_worker_drains_then_resets(workspace: Workspace, fleet: Fleet) -> None:
    workspace.pulumi("config", "rm", "--path", "workerHosts[2]")
    workspace.pulumi("config", "rm", "--path", "workerHosts[1]")
    workspace.up()
    assert set(nodes(workspace)) == {MASTER, worker(0)}
    for name in (worker(1), worker(2)):
        assert reset_leftovers(fleet.machines[name]) == [], name
        assert fleet.machines[name].rc("command -v kubeadm") == 0  # packages stay
        # The mirrors step's delete removed the hosts.toml it wrote.
        assert fleet.machines[name].rc(
            f"test -e /etc/containerd/certs.d/{MIRRORED_REGISTRY}") != 0, name
    assert wait_for("the app answers after the scale-in", lambda: app_answers(workspace))


@pytest.fixture(scope="module")
def api_name(fleet: Fleet) -> Iterator[str]:
    """A DNS name for the control plane, as a user's DNS record would give it: a line in this
    host's /etc/hosts (where pulumi, its Kubernetes provider and kubectl resolve names), removed
    afterwards."""
    hosts = Path("/etc/hosts")
    line = f"{fleet.machines[MASTER].ip} {API_NAME}\n"
    hosts.write_text(hosts.read_text() + line)
    yield API_NAME
    hosts.write_text(hosts.read_text().replace(line, ""))


def test_a_new_endpoint_name_is_added_to_the_api_server_certificate(
    workspace: Workspace, api_name: str,
) -> None:
    """apiEndpoint moves to a DNS name the certificate made at init does not carry: the init
    step reissues the certificate with every current name, so the exported kubeconfig works
    with TLS verification against that name."""
    workspace.config_set("apiEndpoint", f"{api_name}:6443")
    workspace.up()
    kubeconfig = workspace.outputs()["kubeconfig"]
    assert f"server: https://{api_name}:6443" in kubeconfig
    path = workspace.kubeconfig.with_name("kubeconfig-machines-endpoint")
    path.touch(mode=0o600)
    path.write_text(kubeconfig)
    names = workspace.run(["kubectl", "--kubeconfig", str(path), "get", "nodes", "-o", "name"])
    assert f"node/{MASTER}" in names.stdout.split()
    # The cluster's kubeadm-config knows the name too, so a later `kubeadm upgrade` keeps it.
    config = workspace.kubectl("-n", "kube-system", "get", "configmap", "kubeadm-config", "-o",
                               "jsonpath={.data.ClusterConfiguration}")
    assert api_name in config
    workspace.pulumi("preview", "--expect-no-changes", "--skip-plugin-pre-install")


def test_destroy_resets_every_machine(workspace: Workspace, fleet: Fleet) -> None:
    workspace.pulumi("destroy", "--yes", "--skip-preview")
    for machine in fleet.machines.values():
        assert reset_leftovers(machine) == [], machine.name
    assert fleet.machines[MASTER].rc("command -v kubeadm && command -v containerd") == 0
