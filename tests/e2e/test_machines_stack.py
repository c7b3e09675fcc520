"""The machines target for real, and with it the AWS node path: everything after "the
instances exist" (SSH with pinned host keys, preflight, Docker Engine and containerd from
Debian, kubeadm packages from an apt repository, init, fresh-token joins, drains, readiness,
apps) runs for real on Debian machine containers (tests/e2e/fleet.py) reached over SSH.

In order, as a user would drive it (each test builds on the one before):
up with 1 control plane + 2 workers -> no perpetual diff -> a machine whose host key is not the
pinned one is refused -> 3 workers -> 1 worker (drained, then reset) -> destroy (every machine
reset, packages left). Checks read the cluster through the exported kubeconfig and app URL,
and the machines through `docker exec`, never through the program's internals.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
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
from tests.e2e.traffic import answers

pytestmark = pytest.mark.e2e

STACK = "machines"
CLUSTER = "kubeadm-machines"
MASTER = f"{CLUSTER}-master"
NODE_PORT = 30080
STATE: dict[str, Any] = {}


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
        fleet.machines[MASTER], workers, APP_REGISTRY_IMAGE))
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
        assert machine.sh("kubeadm version -o short").strip() == "v1.37.2"
        held = machine.sh("apt-mark showhold").split()
        assert {"kubelet", "kubeadm", "kubectl"} <= set(held)
        # containerd's sandbox image is kubeadm's pause, not its own default (pause:3.6).
        pause = machine.sh("kubeadm config images list --kubernetes-version v1.37.2 | grep pause")
        assert f'sandbox_image = "{pause.strip()}"' in machine.sh("cat /etc/containerd/config.toml")
        assert "pause:3.6" not in machine.sh("ctr -n k8s.io images ls -q")
        # packageSource distro: the runtime is Debian's own (its versions end in +debNN...).
        for package in ("containerd", "docker.io"):
            assert "deb12" in machine.sh(f"dpkg-query -W -f='${{Version}}' {package}"), package


def test_no_changes_after_up(workspace: Workspace) -> None:
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
    assert wait_for("the app answers after the scale-in", lambda: app_answers(workspace))


def test_destroy_resets_every_machine(workspace: Workspace, fleet: Fleet) -> None:
    workspace.pulumi("destroy", "--yes", "--skip-preview")
    for machine in fleet.machines.values():
        assert reset_leftovers(machine) == [], machine.name
    assert fleet.machines[MASTER].rc("command -v kubeadm && command -v containerd") == 0
