"""Control flow of kubeadm-init.sh, join-token.sh, kubeadm-join.sh and wait-ready.sh.

Kubernetes packages cannot be fetched here, so these run in plain machine containers (no systemd
needed) with the stand-in kubeadm/kubectl/kubelet from tests/real/standins/ on PATH. The stand-ins
log every call; the tests assert the exact commands, their order, and the files written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.scripts import LIBRARIES, SCRIPTS_DIR
from tests.real.machines import HERE, STANDINS, Fleet, Machine

pytestmark = pytest.mark.real

ADMIN = ["--kubeconfig", "/etc/kubernetes/admin.conf"]
CONFIG = "/etc/kubernetes/kubeadm-config.yaml"
MARKER = "/etc/kubernetes/.kubeadm-init-complete"
READYZ = ["kubectl", *ADMIN, "get", "--raw=/readyz"]
KUBEADM_CONFIG_MAP = ["kubectl", *ADMIN, "-n", "kube-system", "get", "configmap",
                      "kubeadm-config", "-o", "name"]  # fmt: skip
FINISHED_INIT_MAPS = ("kube-system/kubeadm-config kube-public/cluster-info kube-system/coredns "
                      "kube-system/kube-proxy")
FINISHED_INIT_CALLS = [
    ["kubectl", *ADMIN, "-n", ns, "get", "configmap", name, "-o", "name"]
    for ns, name in (item.split("/") for item in FINISHED_INIT_MAPS.split())
]
CRI = "unix:///run/containerd/containerd.sock"
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "ab" * 32
ENDPOINT = "172.29.0.10:6443"
JOIN_LINE = f"kubeadm join {ENDPOINT} --token {TOKEN} --discovery-token-ca-cert-hash {CA_HASH}"


NODE_IMAGE_STORAGE = (HERE.parents[1] / "toolchain" / "node-image" / "files" / "kind" /
                      "manifests" / "default-storage.yaml.in")


def prepare(machine: Machine) -> None:
    for name in ("kubeadm", "kubectl", "kubelet"):
        machine.put(STANDINS / name, f"/usr/local/bin/{name}")
    machine.sh("mkdir -p /opt/fixtures /kind/manifests")
    machine.put(HERE / "fixtures" / "kube-flannel.yml", "/opt/fixtures/kube-flannel.yml")
    machine.put(HERE / "fixtures" / "default-cni.yaml", "/kind/manifests/default-cni.yaml")
    # The node image's own default storage, filled in as toolchain/node-image.sh does.
    machine.put_text(NODE_IMAGE_STORAGE.read_text()
                     .replace("@PROVISIONER_IMAGE@", "kubeadm-cluster/local-path-provisioner:v0")
                     .replace("@HELPER_IMAGE@", "kubeadm-cluster/debian:bookworm"),
                     "/kind/manifests/default-storage.yaml")


def reset(machine: Machine, nodes: str = "") -> None:
    machine.reset_standins(nodes, "/etc/kubernetes")


@pytest.fixture(scope="module")
def control_plane(fleet: Fleet) -> Machine:
    machine = fleet.start("cp1", systemd=False, caps=("NET_ADMIN",))
    prepare(machine)
    return machine


@pytest.fixture(scope="module")
def worker(fleet: Fleet) -> Machine:
    machine = fleet.start("w1", systemd=False, caps=("NET_ADMIN",))
    prepare(machine)
    return machine


# What an old cluster's pod network leaves after `kubeadm reset` (flannel's, as on a real node),
# next to the machine's own link and firewall chain, which must stay.
PLANT_POD_NETWORK = """
mkdir -p /etc/cni/net.d /var/lib/cni/networks/cbr0 /run/flannel
echo '{"name": "cbr0"}' > /etc/cni/net.d/10-flannel.conflist
echo 10.244.1.7 > /var/lib/cni/networks/cbr0/last_reserved_ip.0
echo FLANNEL_SUBNET=10.244.1.1/24 > /run/flannel/subnet.env
ip link add cni0 type bridge && ip addr add 10.244.1.1/24 dev cni0
ip link add flannel.1 type vxlan id 1 dstport 8472 dev eth0 2>/dev/null ||
    ip link add flannel.1 type bridge
ip link add own0 type bridge
iptables -N KUBE-SERVICES && iptables -A INPUT -j KUBE-SERVICES
iptables -t nat -N FLANNEL-POSTRTG && iptables -t nat -A POSTROUTING -j FLANNEL-POSTRTG
iptables -t nat -N CNI-HOSTPORT-DNAT && iptables -t nat -A PREROUTING -j CNI-HOSTPORT-DNAT
iptables -N OWN-FIREWALL && iptables -A INPUT -s 192.0.2.0/24 -j OWN-FIREWALL
"""
POD_NETWORK_CHECKS = {
    "CNI config": "ls -A /etc/cni/net.d | grep -q .",
    "IP allocations": "ls -A /var/lib/cni | grep -q .",
    "flannel subnet lease": "test -e /run/flannel/subnet.env",
    "cni0": "ip link show cni0",
    "flannel.1": "ip link show flannel.1",
    "cluster chains": "iptables-save | grep -Eq 'KUBE-|FLANNEL|CNI-'",
}
OWN_NETWORK_CHECKS = {
    "own link": "ip link show own0",
    "own chain and rule": "iptables-save | grep -q -- '-A INPUT -s 192.0.2.0/24 -j OWN-FIREWALL'",
}


def plant_pod_network(machine: Machine) -> None:
    """An old pod network on the machine, with the machine's own link and chain; checked."""
    machine.sh("ip link delete own0 2>/dev/null; iptables -F; iptables -X; "
               "iptables -t nat -F; iptables -t nat -X; true")
    machine.sh(PLANT_POD_NETWORK)
    assert pod_network_left(machine) == list(POD_NETWORK_CHECKS)


def pod_network_left(machine: Machine) -> list[str]:
    return [what for what, check in POD_NETWORK_CHECKS.items()
            if machine.rc(f"{check} >/dev/null 2>&1") == 0]


def own_network_kept(machine: Machine) -> list[str]:
    return [what for what, check in OWN_NETWORK_CHECKS.items()
            if machine.rc(f"{check} >/dev/null 2>&1") == 0]


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
    assert control_plane.standin_calls() == [
        ["kubeadm", "version", "-o", "short"],
        ["kubeadm", "init", "--config", CONFIG, "--skip-token-print"],
        ["kubectl", *ADMIN, "get", "--raw=/readyz"],
        ["kubectl", *ADMIN, "apply", "-f", "/etc/kubernetes/cni/kube-flannel.yml"],
    ]
    assert control_plane.sh(f"stat -c %a {CONFIG}").strip() == "600"
    assert control_plane.sh(f"cat {MARKER}") == "kubeadm init completed (Kubernetes v1.31.4)\n"


def test_init_writes_the_kubeadm_config(control_plane: Machine) -> None:
    config = read_config(control_plane)
    # A node that cannot write nf_conntrack_max (this machine container: the sysctl belongs to
    # the host) tells kube-proxy to leave it alone, or kube-proxy before 1.37 crash-loops.
    proxy = config.pop("KubeProxyConfiguration", None)
    writable = control_plane.rc("test -w /proc/sys/net/netfilter/nf_conntrack_max") == 0
    assert (proxy is None) == writable, proxy
    if proxy is not None:
        assert proxy["conntrack"] == {"maxPerCore": 0}
    assert set(config) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"}
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
    assert control_plane.standin_calls() == [
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
        "CONTROL_PLANE_ENDPOINT": "",
        "CRI_SOCKET": "unix:///run/containerd/containerd.sock",
    }
    run = control_plane.run_script("kubeadm-init.sh", env)
    assert run.returncode == 0, run.describe()
    assert control_plane.standin_calls() == [
        ["kubeadm", "version", "-o", "short"],
        ["kubeadm", "init", "--config", CONFIG, "--skip-token-print"],
        ["kubectl", *ADMIN, "get", "--raw=/readyz"],
        ["kubectl", *ADMIN, "apply", "-f", "/etc/kubernetes/cni/kindnet.yml"],
    ]
    config = read_config(control_plane)
    assert config["InitConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert config["InitConfiguration"]["skipPhases"] == ["preflight"]
    assert config["ClusterConfiguration"]["kubernetesVersion"] == "v1.30.2"
    assert "failCgroupV1" not in config["KubeletConfiguration"]  # no such field before 1.31
    assert config["ClusterConfiguration"]["apiServer"]["certSANs"] == [control_plane.ip]
    kubelet = config["KubeletConfiguration"]
    assert kubelet["cgroupDriver"] == "systemd"
    assert kubelet["cgroupRoot"] == "/kubelet"
    assert kubelet["failSwapOn"] is False
    assert kubelet["imageGCHighThresholdPercent"] == 100
    assert set(kubelet["evictionHard"].values()) == {"0%"}
    # kind's kube-proxy settings: kube-proxy must not raise nf_conntrack_max from a node container.
    assert config["KubeProxyConfiguration"] == {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "iptables": {"minSyncPeriod": "1s"},
        "conntrack": {"maxPerCore": 0},
    }
    applied = control_plane.sh("cat /etc/standins/applied/kindnet.yml")
    assert "PodSubnet" not in applied
    assert kindnet_env(applied) == [
        {"name": "CONTROL_PLANE_ENDPOINT", "value": f"{control_plane.ip}:6443"},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_SUBNET", "value": "10.32.0.0/16"},
    ]
    kinds = [doc["kind"] for doc in yaml.safe_load_all(applied) if doc]
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount", "DaemonSet"]


def kindnet_env(manifest: str) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(manifest) if doc]
    daemon_set = next(doc for doc in docs if doc["kind"] == "DaemonSet")
    env: list[dict[str, Any]] = daemon_set["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def test_init_kind_cni_reaches_the_given_control_plane_endpoint_and_is_idempotent(
    control_plane: Machine,
) -> None:
    reset(control_plane, "kind-control-plane False node-role.kubernetes.io/control-plane\n")
    env = {
        **host_env(control_plane),
        "NODE_NAME": "kind-control-plane",
        "NODE_PROFILE": "kind",
        "CNI": "kind",
        "CONTROL_PLANE_ENDPOINT": "kind-control-plane",
    }
    run = control_plane.run_script("kubeadm-init.sh", env)
    assert run.returncode == 0, run.describe()
    assert "kindnet reaches the API server at kind-control-plane:6443" in run.stderr
    # This machine's host is on cgroup v1: kubelet >= 1.35 would refuse to start without this.
    assert read_config(control_plane)["KubeletConfiguration"]["failCgroupV1"] is False
    written = control_plane.sh("cat /etc/kubernetes/cni/kindnet.yml")
    assert kindnet_env(written)[0] == {
        "name": "CONTROL_PLANE_ENDPOINT",
        "value": "kind-control-plane:6443",
    }
    again = control_plane.run_script("kubeadm-init.sh", env)
    assert again.returncode == 0, again.describe()
    assert "wrote " not in again.stderr, again.describe()
    assert control_plane.sh("cat /etc/kubernetes/cni/kindnet.yml") == written
    assert [entry["name"] for entry in kindnet_env(written)].count("CONTROL_PLANE_ENDPOINT") == 1


def test_init_applies_the_node_images_default_storage_after_the_pod_network(
    control_plane: Machine,
) -> None:
    reset(control_plane, "kind-control-plane False node-role.kubernetes.io/control-plane\n")
    env = {**host_env(control_plane), "NODE_NAME": "kind-control-plane", "NODE_PROFILE": "kind",
           "CNI": "kind", "DEFAULT_STORAGE": "kind"}
    run = control_plane.run_script("kubeadm-init.sh", env)
    assert run.returncode == 0, run.describe()
    assert control_plane.standin_calls()[-2:] == [
        ["kubectl", *ADMIN, "apply", "-f", "/etc/kubernetes/cni/kindnet.yml"],
        ["kubectl", *ADMIN, "apply", "-f", "/kind/manifests/default-storage.yaml"],
    ]
    docs = [doc for doc in yaml.safe_load_all(
        control_plane.sh("cat /etc/standins/applied/default-storage.yaml")) if doc]
    (storage_class,) = [doc for doc in docs if doc["kind"] == "StorageClass"]
    assert storage_class["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"}
    assert storage_class["provisioner"] == "rancher.io/local-path"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    # Without it, DEFAULT_STORAGE=kind on a host that is no kind node fails with one line.
    control_plane.sh("mv /kind/manifests/default-storage.yaml /kind/manifests/away.yaml")
    try:
        missing = control_plane.run_script("kubeadm-init.sh", env)
    finally:
        control_plane.sh("mv /kind/manifests/away.yaml /kind/manifests/default-storage.yaml")
    assert missing.returncode != 0
    assert "DEFAULT_STORAGE=kind needs /kind/manifests/default-storage.yaml" in missing.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"POD_CIDR": ""}, "required environment variable POD_CIDR is not set"),
        ({"POD_CIDR": "10.32.0.0"}, "POD_CIDR must be an IPv4 CIDR"),
        ({"KUBERNETES_VERSION": "latest"}, "KUBERNETES_VERSION must look like 1.31"),
        ({"KUBERNETES_VERSION": "1.29"}, "does not match the installed kubeadm v1.31.4"),
        ({"CNI": "calico"}, "CNI must be 'flannel' or 'kind'"),
        ({"DEFAULT_STORAGE": "ebs"}, "DEFAULT_STORAGE must be 'none' or 'kind'"),
    ],
)
def test_init_refuses_bad_input_before_doing_anything(
    control_plane: Machine, change: dict[str, str], message: str
) -> None:
    reset(control_plane)
    run = control_plane.run_script("kubeadm-init.sh", {**host_env(control_plane), **change})
    run.one_error(message)
    assert [call for call in control_plane.standin_calls() if call[1] != "version"] == []
    assert control_plane.rc(f"test -e {CONFIG}") != 0


def test_init_reports_a_failed_kubeadm_init_and_stops(control_plane: Machine) -> None:
    reset(control_plane)
    control_plane.sh("echo init > /etc/standins/kubeadm-fail")
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    error = run.one_error()
    assert error == (
        "error: kubeadm-init.sh: kubeadm init failed (see its output above): run 'kubeadm reset -f'"
        " on cp1 to clear the partial init, then 'pulumi up' again"
    )
    assert [call[:2] for call in control_plane.standin_calls()] == [
        ["kubeadm", "version"],
        ["kubeadm", "init"],
    ]
    # kubeadm wrote admin.conf (its kubeconfig phase) before failing; no marker was written.
    assert control_plane.rc("test -f /etc/kubernetes/admin.conf") == 0
    assert control_plane.rc(f"test -e {MARKER}") != 0


HALF_DONE = (
    "error: kubeadm-init.sh: /etc/kubernetes/admin.conf exists but kubeadm init never finished"
    f" here (no {MARKER}; the API server does not answer or kubeadm's last phases left no trace):"
    " run 'kubeadm reset -f' on cp1, then 'pulumi up' again"
)


def test_init_after_a_half_finished_init_asks_for_a_reset_then_inits_after_it(
    control_plane: Machine,
) -> None:
    """The run after test_init_reports_a_failed_kubeadm_init_and_stops: admin.conf, no marker."""
    control_plane.sh("rm -f /etc/standins/kubeadm-fail /var/log/standins.log")
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert run.one_error() == HALF_DONE
    assert control_plane.standin_calls() == [
        ["kubeadm", "version", "-o", "short"],
        READYZ,
        KUBEADM_CONFIG_MAP,
    ]
    assert control_plane.rc(f"test -e {MARKER}") != 0
    # The operator follows the advice; the next run initialises.
    control_plane.sh("kubeadm reset -f && rm -f /var/log/standins.log")
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert run.returncode == 0, run.describe()
    assert [call[:2] for call in control_plane.standin_calls()] == [
        ["kubeadm", "version"],
        ["kubeadm", "init"],
        ["kubectl", "--kubeconfig"],
        ["kubectl", "--kubeconfig"],
    ]
    assert control_plane.rc(f"test -f {MARKER}") == 0


def test_init_with_admin_conf_but_no_answering_api_asks_for_a_reset(
    control_plane: Machine,
) -> None:
    reset(control_plane)
    control_plane.sh(
        "mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf"
        " && echo kube-system/kubeadm-config > /etc/standins/configmaps"
        " && touch /etc/standins/api-down"
    )
    env = {**host_env(control_plane), "RETRY_ATTEMPTS": "2", "RETRY_DELAY": "0"}
    run = control_plane.run_script("kubeadm-init.sh", env)
    assert run.one_error() == HALF_DONE
    assert control_plane.standin_calls() == [["kubeadm", "version", "-o", "short"], READYZ, READYZ]


def test_init_retried_after_a_failure_past_upload_config_asks_for_a_reset(
    control_plane: Machine,
) -> None:
    """kubeadm-config is uploaded mid-init; without cluster-info and the addons it is not done."""
    reset(control_plane)
    control_plane.sh(
        "mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf"
        " && echo kube-system/kubeadm-config > /etc/standins/configmaps"
    )
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert run.one_error() == HALF_DONE
    assert control_plane.standin_calls() == [
        ["kubeadm", "version", "-o", "short"], READYZ, *FINISHED_INIT_CALLS[:2]]
    assert control_plane.rc(f"test -f {MARKER}") != 0


def test_init_adopts_a_control_plane_initialised_before_markers(control_plane: Machine) -> None:
    """A cluster made by the earlier script: admin.conf, API up, every init phase's trace."""
    reset(control_plane)
    control_plane.sh(
        "mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf"
        f" && printf '%s\\n' {FINISHED_INIT_MAPS} > /etc/standins/configmaps"
    )
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert run.returncode == 0, run.describe()
    assert "initialised before init markers were kept" in run.stderr
    assert control_plane.standin_calls() == [
        ["kubeadm", "version", "-o", "short"],
        READYZ,
        *FINISHED_INIT_CALLS,
        READYZ,
        ["kubectl", *ADMIN, "apply", "-f", "/etc/kubernetes/cni/kube-flannel.yml"],
    ]
    assert control_plane.sh(f"cat {MARKER}") == "kubeadm init completed (Kubernetes v1.31.4)\n"
    control_plane.sh("rm -f /var/log/standins.log")
    again = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert again.returncode == 0, again.describe()
    assert "already initialised" in again.stderr
    assert [call[:4] for call in control_plane.standin_calls()] == [
        ["kubeadm", "version", "-o", "short"],
        READYZ[:4],
        ["kubectl", *ADMIN, "apply"],
    ]


def test_init_runs_again_when_the_marker_outlived_its_control_plane(
    control_plane: Machine,
) -> None:
    """`kubeadm reset -f` removes admin.conf but not the marker: that marker means nothing,
    and the old pod network reset left is cleared before the new init (issue 16 item 1)."""
    reset(control_plane)
    control_plane.sh(f"mkdir -p /etc/kubernetes && echo old > {MARKER}")
    plant_pod_network(control_plane)
    run = control_plane.run_script("kubeadm-init.sh", host_env(control_plane))
    assert run.returncode == 0, run.describe()
    assert "is left from a control plane that is gone" in run.stderr
    assert pod_network_left(control_plane) == []
    assert own_network_kept(control_plane) == list(OWN_NETWORK_CHECKS)
    assert [call[:2] for call in control_plane.standin_calls()][:2] == [
        ["kubeadm", "version"],
        ["kubeadm", "init"],
    ]
    assert control_plane.sh(f"cat {MARKER}") == "kubeadm init completed (Kubernetes v1.31.4)\n"


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
    run.one_error(message)


def test_join_token_prints_exactly_the_join_command_and_the_cluster_release(
    control_plane: Machine,
) -> None:
    reset(control_plane)
    control_plane.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf")
    control_plane.sh("echo kube-system/kubeadm-config >> /etc/standins/configmaps")
    run = control_plane.run_script("join-token.sh")
    assert run.returncode == 0, run.describe()
    # The join command, then the release the cluster runs (what a joining worker installs).
    assert run.stdout == JOIN_LINE + "\n1.31.4\n"
    assert TOKEN not in run.stderr
    run = control_plane.run_script("join-token.sh", {"TOKEN_TTL": "1h"})
    assert run.returncode == 0, run.describe()
    read_version = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "-n", "kube-system",
                    "get", "configmap", "kubeadm-config", "-o",
                    "jsonpath={.data.ClusterConfiguration}"]
    assert control_plane.standin_calls() == [
        ["kubeadm", "token", "create", "--print-join-command", "--ttl", "15m"], read_version,
        ["kubeadm", "token", "create", "--print-join-command", "--ttl", "1h"], read_version,
    ]


CERTIFICATE_KEY = "0f" * 32  # what the kubeadm stand-in's `certs certificate-key` prints


def test_a_control_plane_join_token_uploads_the_certificates_with_a_fresh_key(
    control_plane: Machine,
) -> None:
    """CONTROL_PLANE=true: a third line, the key kubeadm just made, with which the certificates
    were uploaded; the key never reaches the log."""
    reset(control_plane)
    control_plane.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf"
                     " && echo kube-system/kubeadm-config >> /etc/standins/configmaps"
                     " && echo 172.29.0.3:6443 > /etc/standins/control-plane-endpoint")
    run = control_plane.run_script("join-token.sh", {"CONTROL_PLANE": "true"})
    assert run.returncode == 0, run.describe()
    assert run.stdout == f"{JOIN_LINE}\n1.31.4\n{CERTIFICATE_KEY}\n"
    assert CERTIFICATE_KEY not in run.stderr and TOKEN not in run.stderr
    calls = control_plane.standin_calls()
    assert ["kubeadm", "certs", "certificate-key"] in calls
    assert ["kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--certificate-key",
            CERTIFICATE_KEY] in calls
    assert control_plane.sh("cat /etc/standins/uploaded-certs").strip() == CERTIFICATE_KEY


def test_a_control_plane_join_token_on_a_cluster_without_an_endpoint_is_one_error(
    control_plane: Machine,
) -> None:
    reset(control_plane)
    control_plane.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf"
                     " && echo kube-system/kubeadm-config >> /etc/standins/configmaps"
                     " && rm -f /etc/standins/control-plane-endpoint")
    run = control_plane.run_script("join-token.sh", {"CONTROL_PLANE": "true"})
    run.one_error("this cluster was initialised without a controlPlaneEndpoint")
    assert run.stdout == ""
    assert not any(call[1:3] == ["init", "phase"] for call in control_plane.standin_calls())


@pytest.mark.parametrize("ttl", ["0s", "forever", "15"])
def test_join_token_refuses_a_ttl_that_is_not_a_positive_duration(
    control_plane: Machine, ttl: str
) -> None:
    run = control_plane.run_script("join-token.sh", {"TOKEN_TTL": ttl})
    run.one_error("TOKEN_TTL")
    assert run.stdout == ""


@dataclass(frozen=True)
class ClusterCA:
    pem: Path
    pin: str  # kubeadm's --discovery-token-ca-cert-hash for it

    def join_line(self) -> str:
        return f"kubeadm join {ENDPOINT} --token {TOKEN} --discovery-token-ca-cert-hash {self.pin}"


def _der_element(data: bytes, pos: int) -> tuple[int, int]:
    """(content start, element end) of the DER element at pos."""
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return start, start + length


def spki_pin(pem: str) -> str:
    """kubeadm's CA pin, computed here without openssl: sha256 of the DER SubjectPublicKeyInfo,
    the 7th field of tbsCertificate (6th when the optional [0] version is absent)."""
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    der = base64.b64decode(body)
    cert_start, _ = _der_element(der, 0)
    tbs_start, tbs_end = _der_element(der, cert_start)
    fields = []
    pos = tbs_start
    while pos < tbs_end:
        _, end = _der_element(der, pos)
        fields.append((pos, end))
        pos = end
    if der[fields[0][0]] == 0xA0:
        fields = fields[1:]
    spki_start, spki_end = fields[5]
    return "sha256:" + hashlib.sha256(der[spki_start:spki_end]).hexdigest()


@pytest.fixture(scope="module")
def cluster_cas(tmp_path_factory: pytest.TempPathFactory) -> tuple[ClusterCA, ClusterCA]:
    """Two self-signed cluster CAs: the old control plane's and a rebuilt one's."""
    directory = tmp_path_factory.mktemp("cluster-cas")
    cas = []
    for name in ("old", "new"):
        pem = directory / f"{name}-ca.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(directory / f"{name}-ca.key"), "-out", str(pem),
             "-subj", "/CN=kubernetes", "-days", "2"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        cas.append(ClusterCA(pem, spki_pin(pem.read_text())))
    assert cas[0].pin != cas[1].pin
    return cas[0], cas[1]


def join_call(pin: str) -> list[str]:
    return [
        "kubeadm", "join", ENDPOINT,
        "--token", TOKEN,
        "--discovery-token-ca-cert-hash", pin,
        "--node-name", "w1",
        "--cri-socket", CRI,
    ]  # fmt: skip


def serve_ca(worker: Machine, ca: ClusterCA) -> None:
    """The CA of the control plane the stand-in kubeadm join joins."""
    worker.put(ca.pem, "/etc/standins/cluster-ca.crt")


def test_join_runs_kubeadm_join_with_the_pinned_ca_then_skips(
    worker: Machine, cluster_cas: tuple[ClusterCA, ClusterCA]
) -> None:
    old, _ = cluster_cas
    reset(worker)
    serve_ca(worker, old)
    env = {"JOIN_COMMAND": old.join_line() + " ", "NODE_NAME": "w1"}
    run = worker.run_script("kubeadm-join.sh", env)
    assert run.returncode == 0, run.describe()
    assert TOKEN not in run.stdout + run.stderr
    assert worker.standin_calls() == [join_call(old.pin)]
    again = worker.run_script("kubeadm-join.sh", env)
    assert again.returncode == 0, again.describe()
    assert "already joined" in again.stderr
    assert len(worker.standin_calls()) == 1


def test_join_rejoins_when_the_control_plane_was_rebuilt(
    worker: Machine, cluster_cas: tuple[ClusterCA, ClusterCA]
) -> None:
    """Joined to the old control plane (the test above); the join command now pins a new CA.
    The old pod network kubeadm reset leaves is cleared before the join (issue 16 item 1)."""
    old, new = cluster_cas
    worker.sh("rm -f /var/log/standins.log")
    assert worker.rc("test -f /etc/kubernetes/kubelet.conf") == 0
    serve_ca(worker, new)
    plant_pod_network(worker)
    env = {"JOIN_COMMAND": new.join_line(), "NODE_NAME": "w1", "CRI_SOCKET": "unix:///run/x.sock"}
    run = worker.run_script("kubeadm-join.sh", env)
    assert run.returncode == 0, run.describe()
    assert "rejoining a new control plane" in run.stderr
    assert f"CA {old.pin[:19]}..." in run.stderr
    assert worker.standin_calls() == [
        ["kubeadm", "reset", "-f", "--cri-socket", "unix:///run/x.sock"],
        [*join_call(new.pin)[:-1], "unix:///run/x.sock"],
    ]
    assert spki_pin(worker.sh("cat /etc/kubernetes/pki/ca.crt")) == new.pin
    assert pod_network_left(worker) == []
    assert own_network_kept(worker) == list(OWN_NETWORK_CHECKS)
    again = worker.run_script("kubeadm-join.sh", env)
    assert again.returncode == 0, again.describe()
    assert "already joined" in again.stderr
    assert len(worker.standin_calls()) == 2


def test_reset_node_returns_a_machine_to_before_it_joined(worker: Machine) -> None:
    """What the machines target runs when a machine leaves (reset_command): kubeadm reset,
    then what reset leaves; the machine's own link and firewall chain stay."""
    worker.sh("rm -f /var/log/standins.log && mkdir -p /etc/kubernetes && "
              f"echo old > /etc/kubernetes/kubelet.conf && echo cfg > {CONFIG}")
    plant_pod_network(worker)
    run = worker.run_script("reset-node.sh", {})
    assert run.returncode == 0, run.describe()
    assert worker.standin_calls() == [["kubeadm", "reset", "-f", "--cri-socket", CRI]]
    assert worker.rc(f"test -e /etc/kubernetes/kubelet.conf || test -e {CONFIG}") != 0
    assert pod_network_left(worker) == []
    assert own_network_kept(worker) == list(OWN_NETWORK_CHECKS)
    again = worker.run_script("reset-node.sh", {})
    assert again.returncode == 0, again.describe()


def test_join_of_a_joined_node_without_its_ca_is_one_error(worker: Machine) -> None:
    reset(worker)
    worker.sh("mkdir -p /etc/kubernetes && echo old > /etc/kubernetes/kubelet.conf")
    run = worker.run_script("kubeadm-join.sh", {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "w1"})
    assert run.one_error() == (
        "error: kubeadm-join.sh: /etc/kubernetes/kubelet.conf exists but /etc/kubernetes/pki/ca.crt"
        " does not, so this node's cluster cannot be told: run 'kubeadm reset -f' on w1, then"
        " 'pulumi up' again"
    )
    assert worker.standin_calls() == []


def test_join_of_a_joined_node_without_openssl_is_one_error(
    worker: Machine, cluster_cas: tuple[ClusterCA, ClusterCA]
) -> None:
    old, _ = cluster_cas
    reset(worker)
    worker.sh("mkdir -p /etc/kubernetes/pki && echo old > /etc/kubernetes/kubelet.conf")
    worker.put(old.pem, "/etc/kubernetes/pki/ca.crt")
    worker.sh("mv /usr/bin/openssl /usr/bin/openssl.hidden")
    try:
        run = worker.run_script(
            "kubeadm-join.sh", {"JOIN_COMMAND": old.join_line(), "NODE_NAME": "w1"}
        )
    finally:
        worker.sh("mv /usr/bin/openssl.hidden /usr/bin/openssl")
    assert run.one_error() == "error: kubeadm-join.sh: required command 'openssl' not found on PATH"
    assert worker.standin_calls() == []


def test_join_with_an_expired_token_says_how_to_get_a_fresh_one(worker: Machine) -> None:
    reset(worker)
    worker.sh("touch /etc/standins/join-token-expired")
    run = worker.run_script("kubeadm-join.sh", {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "w1"})
    assert run.one_error() == (
        f"error: kubeadm-join.sh: kubeadm join {ENDPOINT} was refused: the join command has"
        " expired (or its token is unknown to this control plane); get a fresh one by replacing"
        " the step that makes it: pulumi up --replace <URN of w1-join-token>"
        " (pulumi stack --show-urns lists it)"
    )
    assert "could not find a JWS signature" in run.stderr  # kubeadm's own words stay visible
    assert TOKEN not in run.stdout + run.stderr
    assert worker.standin_calls() == [join_call(CA_HASH)]
    assert worker.rc("test -e /etc/kubernetes/kubelet.conf") != 0


def test_join_failure_is_one_line_without_the_token(worker: Machine) -> None:
    reset(worker)
    worker.sh("echo join > /etc/standins/kubeadm-fail")
    run = worker.run_script("kubeadm-join.sh", {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "w1"})
    run.one_error(f"kubeadm join {ENDPOINT} failed")
    assert TOKEN not in run.stdout + run.stderr
    assert worker.rc("test -e /etc/kubernetes/kubelet.conf") != 0


def test_scripts_also_run_from_their_files(worker: Machine) -> None:
    """Run from a checkout (not stdin), each script sources common.sh and its libraries next
    to it (the README's way to reset a node by hand)."""
    reset(worker)
    docker_cp_dir = "/opt/scripts"
    worker.sh(f"mkdir -p {docker_cp_dir}")
    for name in ("common.sh", "kubeadm-join.sh", *LIBRARIES["kubeadm-join.sh"]):
        worker.put(SCRIPTS_DIR / name, f"{docker_cp_dir}/{name}")
    out = worker.sh(
        f"JOIN_COMMAND='{JOIN_LINE}' NODE_NAME=w1 bash {docker_cp_dir}/kubeadm-join.sh 2>&1"
    )
    assert "kubeadm-join.sh: done" in out
    assert worker.standin_calls()[0][:2] == ["kubeadm", "join"]


def test_a_control_plane_join_passes_its_key_and_address_and_deletes_the_upload(
    worker: Machine,
) -> None:
    reset(worker)
    worker.sh(f"mkdir -p /etc/standins && echo {CERTIFICATE_KEY} > /etc/standins/uploaded-certs")
    env = {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "cp2", "CONTROL_PLANE": "true",
           "CERTIFICATE_KEY": CERTIFICATE_KEY, "ADVERTISE_ADDRESS": "172.29.0.9"}
    run = worker.run_script("kubeadm-join.sh", env)
    assert run.returncode == 0, run.describe()
    assert CERTIFICATE_KEY not in run.stdout + run.stderr and TOKEN not in run.stderr
    join, delete = worker.standin_calls()
    assert join[-5:] == ["--control-plane", "--certificate-key", CERTIFICATE_KEY,
                         "--apiserver-advertise-address", "172.29.0.9"]
    assert delete[0] == "kubectl" and delete[-4:] == [
        "delete", "secret", "kubeadm-certs", "--ignore-not-found"]
    assert worker.sh("test -e /etc/standins/uploaded-certs || echo gone").strip() == "gone"


@pytest.mark.parametrize(("env", "message"), [
    ({"ADVERTISE_ADDRESS": "172.29.0.9"}, "CERTIFICATE_KEY is not set"),
    ({"CERTIFICATE_KEY": "abc", "ADVERTISE_ADDRESS": "172.29.0.9"},
     "CERTIFICATE_KEY is not 64 hex digits"),
    ({"CERTIFICATE_KEY": CERTIFICATE_KEY, "ADVERTISE_ADDRESS": "cp2"},
     "ADVERTISE_ADDRESS must be an IPv4 address"),
])
def test_a_control_plane_join_without_its_key_or_address_is_one_error(
    worker: Machine, env: dict[str, str], message: str,
) -> None:
    reset(worker)
    run = worker.run_script("kubeadm-join.sh", {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "cp2",
                                                "CONTROL_PLANE": "true", **env})
    run.one_error(message)
    assert worker.standin_calls() == []


def test_join_kind_profile_skips_the_preflight_phase(worker: Machine) -> None:
    reset(worker)
    env = {"JOIN_COMMAND": JOIN_LINE, "NODE_NAME": "kind-worker", "NODE_PROFILE": "kind"}
    run = worker.run_script("kubeadm-join.sh", env)
    assert run.returncode == 0, run.describe()
    assert worker.standin_calls()[0][-1] == "--skip-phases=preflight"
    assert worker.standin_calls()[0][7:9] == ["--node-name", "kind-worker"]


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
    run.one_error(message)
    assert TOKEN not in run.stdout + run.stderr
    assert "NOT-A-TOKEN" not in run.stderr
    assert worker.standin_calls() == []
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
    error = run.one_error()
    assert error == (
        "error: wait-ready.sh: nodes not Ready after 3s: w1 (NotReady), w2 (missing), w3 (NotReady)"
    )
    assert 3 <= run.seconds < 15, run.describe()
    polls = control_plane.standin_calls()
    assert len(polls) >= 2  # at least two polls (a CPU-starved machine may fit no more)
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


# -- upgrade-node.sh: what it refuses before it touches a node --------------------------------


@pytest.mark.parametrize(
    ("role", "wanted", "message"),
    [
        ("control-plane", "1.33", "the cluster runs Kubernetes 1.31.4; 1.33 skips a minor version,"
         " and kubeadm upgrades one minor at a time: set kubernetesVersion to 1.32, run pulumi up,"
         " and repeat one minor at a time"),
        ("control-plane", "1.30", "the cluster runs Kubernetes 1.31.4; 1.30 would be a downgrade"),
        ("control-plane", "1.31.2", "the cluster runs Kubernetes 1.31.4; 1.31.2 would be a "
         "downgrade"),
        ("worker", "1.32", "the control plane runs Kubernetes 1.31.4, not 1.32: it is upgraded "
         "first, by its own step"),
    ],
)
def test_upgrade_node_refuses_before_touching_the_node(
    control_plane: Machine, role: str, wanted: str, message: str
) -> None:
    """The cluster's version is read from kubeadm-config (the kubectl stand-in answers
    v1.31.4); a skipped minor, a downgrade, and a worker ahead of its control plane stop with
    one line, after reads only: no apt, no kubeadm, no drain."""
    reset(control_plane)
    control_plane.sh(
        "mkdir -p /etc/kubernetes /etc/standins && echo stand-in > /etc/kubernetes/admin.conf"
        " && echo stand-in > /etc/kubernetes/kubelet.conf"
        " && echo kube-system/kubeadm-config >> /etc/standins/configmaps"
    )
    env = {"ROLE": role, "NODE_NAME": "cp1", "KUBERNETES_VERSION": wanted}
    if role == "worker":
        env["ADMIN_KUBECONFIG"] = "apiVersion: v1\nkind: Config\n"
    run = control_plane.run_script("upgrade-node.sh", env)
    error = run.one_error()
    assert error.startswith("error: upgrade-node.sh: ") and message in error, run.describe()
    calls = control_plane.standin_calls()
    assert calls and all(call[0] == "kubectl" and "get" in call for call in calls), calls
    assert "apt-get" not in run.stderr, run.describe()
