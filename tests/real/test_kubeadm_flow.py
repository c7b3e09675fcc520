"""Control flow of kubeadm-init.sh, join-token.sh, kubeadm-join.sh and wait-ready.sh.

Kubernetes packages cannot be fetched here, so these run in plain machine containers (no systemd
needed) with the stand-in kubeadm/kubectl/kubelet from tests/real/standins/ on PATH. The stand-ins
log every call; the tests assert the exact commands, their order, and the files written.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from components.scripts import SCRIPTS_DIR
from tests.real.machines import HERE, STANDINS, Fleet, Machine, ScriptRun

pytestmark = pytest.mark.real

ADMIN = ["--kubeconfig", "/etc/kubernetes/admin.conf"]
CONFIG = "/etc/kubernetes/kubeadm-config.yaml"
CRI = "unix:///run/containerd/containerd.sock"
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "ab" * 32
ENDPOINT = "172.29.0.10:6443"
JOIN_LINE = f"kubeadm join {ENDPOINT} --token {TOKEN} --discovery-token-ca-cert-hash {CA_HASH}"


def prepare(machine: Machine) -> None:
    for name in ("kubeadm", "kubectl", "kubelet"):
        machine.put(STANDINS / name, f"/usr/local/bin/{name}")
    machine.sh("mkdir -p /opt/fixtures /kind/manifests")
    machine.put(HERE / "fixtures" / "kube-flannel.yml", "/opt/fixtures/kube-flannel.yml")
    machine.put(HERE / "fixtures" / "default-cni.yaml", "/kind/manifests/default-cni.yaml")


def reset(machine: Machine, nodes: str = "") -> None:
    machine.sh(
        "rm -rf /etc/kubernetes /etc/standins /var/log/standins.log && mkdir -p /etc/standins"
        f" && printf '%s' '{nodes}' > /etc/standins/nodes"
    )


def calls(machine: Machine) -> list[list[str]]:
    text = machine.sh("cat /var/log/standins.log 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines()]


def one_error(run: ScriptRun, *fragments: str) -> str:
    assert run.returncode != 0, run.describe()
    assert len(run.error_lines) == 1, run.describe()
    assert run.stderr.rstrip().splitlines()[-1] == run.error_lines[0], run.describe()
    for fragment in fragments:
        assert fragment in run.error_lines[0], run.describe()
    return run.error_lines[0]


@pytest.fixture(scope="module")
def control_plane(fleet: Fleet) -> Machine:
    machine = fleet.start("cp1", systemd=False)
    prepare(machine)
    return machine


@pytest.fixture(scope="module")
def worker(fleet: Fleet) -> Machine:
    machine = fleet.start("w1", systemd=False)
    prepare(machine)
    return machine


def host_env(machine: Machine) -> dict[str, str]:
    return {
        "NODE_NAME": "cp1",
        "ADVERTISE_ADDRESS": machine.ip,
        "POD_CIDR": "10.32.0.0/16",
        "SERVICE_CIDR": "10.96.0.0/12",
        "CERT_SANS": "k8s.example.test,203.0.113.10",
        "KUBERNETES_VERSION": "1.31",
        "CONTROL_PLANE_ENDPOINT": "k8s.example.test:6443",
        "FLANNEL_MANIFEST_URL": "file:///opt/fixtures/kube-flannel.yml",
    }


def read_config(machine: Machine) -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all(machine.sh(f"cat {CONFIG}")))
    return {doc["kind"]: doc for doc in docs}


def test_init_host_profile_runs_init_then_cni_in_order(control_plane: Machine) -> None:
    reset(control_plane, "cp1 False node-role.kubernetes.io/control-plane\n")
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert run.returncode == 0, run.describe()
    assert run.stdout == ""
    assert calls(control_plane) == [
        ["kubeadm", "version", "-o", "short"],
        ["kubeadm", "init", "--config", CONFIG, "--skip-token-print"],
        ["kubectl", *ADMIN, "get", "--raw=/readyz"],
        ["kubectl", *ADMIN, "apply", "-f", "/etc/kubernetes/cni/kube-flannel.yml"],
    ]
    assert control_plane.sh(f"stat -c %a {CONFIG}").strip() == "600"


def test_init_writes_the_kubeadm_config(control_plane: Machine) -> None:
    config = read_config(control_plane)
    init, cluster, kubelet = (
        config["InitConfiguration"],
        config["ClusterConfiguration"],
        config["KubeletConfiguration"],
    )
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["nodeRegistration"] == {"name": "cp1", "criSocket": CRI}
    assert init["localAPIEndpoint"]["advertiseAddress"] == control_plane.ip
    assert [token["ttl"] for token in init["bootstrapTokens"]] == ["15m0s"]
    assert "token" not in init["bootstrapTokens"][0]
    assert "skipPhases" not in init
    assert cluster["kubernetesVersion"] == "v1.31.4"
    assert cluster["controlPlaneEndpoint"] == "k8s.example.test:6443"
    assert cluster["networking"] == {"podSubnet": "10.32.0.0/16", "serviceSubnet": "10.96.0.0/12"}
    sans = cluster["apiServer"]["certSANs"]
    assert sans == [control_plane.ip, "k8s.example.test", "203.0.113.10"]
    assert kubelet == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
    }


def test_init_sets_the_flannel_network_to_the_pod_cidr(control_plane: Machine) -> None:
    docs = list(yaml.safe_load_all(control_plane.sh("cat /etc/standins/applied/kube-flannel.yml")))
    config_map = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    assert json.loads(config_map["data"]["net-conf.json"])["Network"] == "10.32.0.0/16"


def test_init_second_run_skips_init_and_reapplies_the_cni(control_plane: Machine) -> None:
    control_plane.sh("rm -f /var/log/standins.log")
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert run.returncode == 0, run.describe()
    assert "already initialised" in run.stderr
    assert "wrote " not in run.stderr, run.describe()
    assert calls(control_plane) == [
        ["kubeadm", "version", "-o", "short"],
        ["kubectl", *ADMIN, "get", "--raw=/readyz"],
        ["kubectl", *ADMIN, "apply", "-f", "/etc/kubernetes/cni/kube-flannel.yml"],
    ]


def test_init_kind_profile_with_an_older_kubeadm(control_plane: Machine) -> None:
    reset(control_plane, "kind-control-plane False node-role.kubernetes.io/control-plane\n")
    env = {
        **host_env(control_plane),
        "NODE_NAME": "kind-control-plane",
        "KUBERNETES_VERSION": "1.30.2",
        "STANDIN_KUBEADM_VERSION": "v1.30.2",
        "NODE_PROFILE": "kind",
        "CNI": "kind",
        "CERT_SANS": "",
        "CRI_SOCKET": "unix:///run/containerd/containerd.sock",
    }
    run = control_plane.run_script("kubeadm-init.sh", env)
    assert run.returncode == 0, run.describe()
    assert calls(control_plane) == [
        ["kubeadm", "version", "-o", "short"],
        ["kubeadm", "init", "--config", CONFIG, "--skip-token-print"],
        ["kubectl", *ADMIN, "get", "--raw=/readyz"],
        ["kubectl", *ADMIN, "apply", "-f", "/etc/kubernetes/cni/kindnet.yml"],
    ]
    config = read_config(control_plane)
    assert config["InitConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert config["InitConfiguration"]["skipPhases"] == ["preflight"]
    assert config["ClusterConfiguration"]["kubernetesVersion"] == "v1.30.2"
    assert config["ClusterConfiguration"]["apiServer"]["certSANs"] == [control_plane.ip]
    kubelet = config["KubeletConfiguration"]
    assert kubelet["cgroupDriver"] == "systemd"
    assert kubelet["cgroupRoot"] == "/kubelet"
    assert kubelet["failSwapOn"] is False
    assert kubelet["imageGCHighThresholdPercent"] == 100
    assert set(kubelet["evictionHard"].values()) == {"0%"}
    applied = control_plane.sh("cat /etc/standins/applied/kindnet.yml")
    assert "value: 10.32.0.0/16" in applied
    assert "PodSubnet" not in applied


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"POD_CIDR": ""}, "required environment variable POD_CIDR is not set"),
        ({"POD_CIDR": "10.32.0.0"}, "POD_CIDR must be an IPv4 CIDR"),
        ({"KUBERNETES_VERSION": "latest"}, "KUBERNETES_VERSION must look like 1.31"),
        ({"KUBERNETES_VERSION": "1.29"}, "does not match the installed kubeadm v1.31.4"),
        ({"CNI": "calico"}, "CNI must be 'flannel' or 'kind'"),
    ],
)
def test_init_refuses_bad_input_before_doing_anything(
    control_plane: Machine, change: dict[str, str], message: str
) -> None:
    reset(control_plane)
    run = control_plane.run_script("kubeadm-init.sh", {**host_env(control_plane), **change})
    one_error(run, message)
    assert [call for call in calls(control_plane) if call[1] != "version"] == []
    assert control_plane.rc(f"test -e {CONFIG}") != 0


def test_init_reports_a_failed_kubeadm_init_and_stops(control_plane: Machine) -> None:
    reset(control_plane)
    control_plane.sh("echo init > /etc/standins/kubeadm-fail")
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    one_error(run, "kubeadm init failed")
    assert [call[:2] for call in calls(control_plane)] == [
        ["kubeadm", "version"],
        ["kubeadm", "init"],
    ]


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("", "required environment variable KUBERNETES_VERSION is not set"),
        ("latest", "KUBERNETES_VERSION must look like 1.31 or 1.31.4, not 'latest'"),
        ("1.23", "older than 1.24"),
    ],
)
def test_install_kubeadm_refuses_bad_versions(
    control_plane: Machine, version: str, message: str
) -> None:
    run = control_plane.run_script("install-kubeadm.sh", {"KUBERNETES_VERSION": version})
    one_error(run, message)


def test_join_token_prints_exactly_the_join_command(control_plane: Machine) -> None:
    reset(control_plane)
    control_plane.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf")
    run = control_plane.run_script("join-token.sh")
    assert run.returncode == 0, run.describe()
    assert run.stdout == JOIN_LINE + "\n"
    assert TOKEN not in run.stderr
    run = control_plane.run_script("join-token.sh", {"TOKEN_TTL": "1h"})
    assert run.returncode == 0, run.describe()
    assert calls(control_plane) == [
        ["kubeadm", "token", "create", "--print-join-command", "--ttl", "15m"],
        ["kubeadm", "token", "create", "--print-join-command", "--ttl", "1h"],
    ]


@pytest.mark.parametrize("ttl", ["0s", "forever", "15"])
def test_join_token_refuses_a_ttl_that_is_not_a_positive_duration(
    control_plane: Machine, ttl: str
) -> None:
    run = control_plane.run_script("join-token.sh", {"TOKEN_TTL": ttl})
    one_error(run, "TOKEN_TTL")
    assert run.stdout == ""


def test_join_runs_kubeadm_join_with_the_pinned_ca_then_skips(worker: Machine) -> None:
    reset(worker)
    env = {"JOIN_COMMAND": JOIN_LINE + " ", "NODE_NAME": "w1"}
    run = worker.run_script("kubeadm-join.sh", env)
    assert run.returncode == 0, run.describe()
    assert TOKEN not in run.stdout + run.stderr
    assert calls(worker) == [
        [
            "kubeadm", "join", ENDPOINT,
            "--token", TOKEN,
            "--discovery-token-ca-cert-hash", CA_HASH,
            "--node-name", "w1",
            "--cri-socket", CRI,
        ]
    ]  # fmt: skip
    again = worker.run_script("kubeadm-join.sh", env)
    assert again.returncode == 0, again.describe()
    assert "already joined" in again.stderr
    assert len(calls(worker)) == 1


def test_join_failure_is_one_line_without_the_token(worker: Machine) -> None:
    reset(worker)
    worker.sh("echo join > /etc/standins/kubeadm-fail")
    run = worker.run_script("kubeadm-join.sh", {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "w1"})
    one_error(run, f"kubeadm join {ENDPOINT} failed")
    assert TOKEN not in run.stdout + run.stderr
    assert worker.rc("test -e /etc/kubernetes/kubelet.conf") != 0


def test_scripts_also_run_from_their_files(worker: Machine) -> None:
    """Run from a checkout (not stdin), each script sources common.sh next to it."""
    reset(worker)
    docker_cp_dir = "/opt/scripts"
    worker.sh(f"mkdir -p {docker_cp_dir}")
    for name in ("common.sh", "kubeadm-join.sh"):
        worker.put(SCRIPTS_DIR / name, f"{docker_cp_dir}/{name}")
    out = worker.sh(
        f"JOIN_COMMAND='{JOIN_LINE}' NODE_NAME=w1 bash {docker_cp_dir}/kubeadm-join.sh 2>&1"
    )
    assert "kubeadm-join.sh: done" in out
    assert calls(worker)[0][:2] == ["kubeadm", "join"]


def test_join_kind_profile_skips_the_preflight_phase(worker: Machine) -> None:
    reset(worker)
    env = {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "kind-worker", "NODE_PROFILE": "kind"}
    run = worker.run_script("kubeadm-join.sh", env)
    assert run.returncode == 0, run.describe()
    assert calls(worker)[0][-1] == "--skip-phases=preflight"
    assert calls(worker)[0][7:9] == ["--node-name", "kind-worker"]


@pytest.mark.parametrize(
    ("join_command", "message"),
    [
        (f"kubeadm join {ENDPOINT} --token {TOKEN}", "no --discovery-token-ca-cert-hash"),
        (
            f"kubeadm join {ENDPOINT} --token {TOKEN} --discovery-token-ca-cert-hash sha256:abc",
            "not sha256:<64 hex digits>",
        ),
        (
            f"kubeadm join {ENDPOINT} --token {TOKEN} "
            "--discovery-token-unsafe-skip-ca-verification",
            "unexpected argument",
        ),
        (f"{JOIN_LINE} ; touch /tmp/injected", "unexpected argument"),
        (f"$(touch /tmp/injected) {JOIN_LINE}", "does not start with 'kubeadm join"),
        (
            f"kubeadm join {ENDPOINT} --token NOT-A-TOKEN --discovery-token-ca-cert-hash {CA_HASH}",
            "is not a bootstrap token",
        ),
    ],
)
def test_join_refuses_a_join_command_it_cannot_trust(
    worker: Machine, join_command: str, message: str
) -> None:
    reset(worker)
    run = worker.run_script("kubeadm-join.sh", {"JOIN_COMMAND": join_command, "NODE_NAME": "w1"})
    one_error(run, message)
    assert TOKEN not in run.stdout + run.stderr
    assert "NOT-A-TOKEN" not in run.stderr
    assert calls(worker) == []
    assert worker.rc("test -e /tmp/injected") != 0


def test_wait_ready_times_out_listing_each_node_not_ready(control_plane: Machine) -> None:
    reset(control_plane, "cp1 True\nw1 False\nw3 Unknown\n")
    control_plane.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf")
    env = {
        "EXPECTED_NODES": "cp1 w1 w2 w3",
        "READY_TIMEOUT_SECONDS": "3",
        "READY_POLL_SECONDS": "1",
    }
    run = control_plane.run_script("wait-ready.sh", env)
    error = one_error(run)
    assert error == (
        "error: wait-ready.sh: nodes not Ready after 3s: w1 (NotReady), w2 (missing), w3 (NotReady)"
    )
    assert 3 <= run.seconds < 15, run.describe()
    polls = calls(control_plane)
    assert len(polls) >= 3
    assert polls[0][:5] == ["kubectl", *ADMIN, "get", "nodes"]
    assert polls[0][5] == "-o" and polls[0][6].startswith("jsonpath=")


def test_wait_ready_returns_once_every_node_is_ready(control_plane: Machine) -> None:
    reset(control_plane, "cp1 True\nw1 False\n")
    control_plane.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf")
    control_plane.sh(
        "(sleep 2; printf 'cp1 True\\nw1 True\\n' > /etc/standins/nodes) >/dev/null 2>&1 &"
    )
    env = {"EXPECTED_NODES": "cp1 w1", "READY_TIMEOUT_SECONDS": "30", "READY_POLL_SECONDS": "1"}
    run = control_plane.run_script("wait-ready.sh", env)
    assert run.returncode == 0, run.describe()
    assert run.error_lines == []
    assert re.search(r"all 2 nodes are Ready", run.stderr)
    assert run.seconds < 15
