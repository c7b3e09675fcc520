"""preflight.sh and install-runtime.sh on a fresh Debian machine, run twice.

The first run installs and configures the runtime; the second must change nothing (same /etc
contents, same package set, services not restarted) and take a small fraction of the time.
Both durations go to a JSON file (REAL_TIMINGS_FILE, default .cache/real-timings.json).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bringup import TIMINGS_FILE
from tests.real.machines import Fleet, Machine, ScriptRun

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.real

INSTALL_ENV = {"PACKAGE_SOURCE": "distro", "LOGIN_USER": "ops"}
SCRIPTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("preflight.sh", {}),
    ("install-runtime.sh", INSTALL_ENV),
)

# /etc checksums, installed packages, and when each service last started.
SNAPSHOT = r"""
find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum
echo '--- packages'
dpkg-query -W -f='${Package} ${Version} ${Status}\n'
echo '--- services'
systemctl show -p ActiveEnterTimestampMonotonic -p MainPID containerd docker
"""


def run_all(machine: Machine) -> list[ScriptRun]:
    runs = []
    for script, env in SCRIPTS:
        run = machine.run_script(script, env)
        assert run.returncode == 0, run.describe()
        runs.append(run)
    return runs


@pytest.fixture(scope="module")
def installed(fleet: Fleet) -> dict[str, Any]:
    machine = fleet.start("install")
    machine.sh("useradd --create-home ops")
    first = run_all(machine)
    before = machine.sh(SNAPSHOT)
    second = run_all(machine)
    after = machine.sh(SNAPSHOT)
    return {"machine": machine, "first": first, "second": second, "before": before, "after": after}


def test_first_run_installs_and_configures_the_runtime(installed: dict[str, Any]) -> None:
    machine: Machine = installed["machine"]
    for run in installed["first"]:
        assert run.error_lines == [], run.describe()
    assert machine.rc("docker info >/dev/null") == 0
    assert machine.sh("docker info --format '{{.CgroupDriver}}'").strip() == "systemd"
    plugins = machine.sh("ctr plugins ls")
    assert re.search(r"^io\.containerd\.grpc\.v1\s+cri\s+.*\bok\s*$", plugins, re.M), plugins
    assert machine.sh("systemctl is-enabled containerd docker").split() == ["enabled", "enabled"]


def test_containerd_config_has_cri_enabled_and_systemd_cgroups(installed: dict[str, Any]) -> None:
    config = installed["machine"].sh("cat /etc/containerd/config.toml")
    assert re.search(r"^disabled_plugins = \[\]$", config, re.M)
    options = config.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]')
    assert len(options) == 2, "runc options table missing"
    runc_options = options[1].split("[", 1)[0]
    assert re.search(r"^\s*SystemdCgroup = true$", runc_options, re.M), runc_options
    assert config.count("SystemdCgroup = true") == 1


def test_docker_daemon_uses_the_systemd_cgroup_driver(installed: dict[str, Any]) -> None:
    daemon = json.loads(installed["machine"].sh("cat /etc/docker/daemon.json"))
    assert daemon["exec-opts"] == ["native.cgroupdriver=systemd"]


def test_login_user_is_in_the_docker_group(installed: dict[str, Any]) -> None:
    assert "docker" in installed["machine"].sh("id -nG ops").split()


def test_kernel_modules_and_sysctls_are_set_and_persisted(installed: dict[str, Any]) -> None:
    machine: Machine = installed["machine"]
    assert machine.sh("cat /etc/modules-load.d/kubernetes.conf").split() == [
        "overlay",
        "br_netfilter",
    ]
    persisted = machine.sh("cat /etc/sysctl.d/99-kubernetes.conf")
    for key in (
        "net.ipv4.ip_forward",
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ):
        assert f"{key} = 1" in persisted
        assert machine.sh(f"cat /proc/sys/{key.replace('.', '/')}").strip() == "1"
    assert machine.sh("tail -n +2 /proc/swaps").strip() == ""


def test_second_run_changes_nothing_and_is_fast(installed: dict[str, Any]) -> None:
    first: list[ScriptRun] = installed["first"]
    second: list[ScriptRun] = installed["second"]
    assert installed["after"] == installed["before"]
    for run in second:
        assert "wrote " not in run.stderr, run.describe()
        assert "apt-get" not in run.stderr, run.describe()
        assert "restarting" not in run.stderr, run.describe()
    first_total = sum(run.seconds for run in first)
    second_total = sum(run.seconds for run in second)
    timings = {
        "what": "preflight.sh + install-runtime.sh (PACKAGE_SOURCE=distro) on a fresh Debian "
        "bookworm machine container, then again on the same machine",
        "first_run_seconds": {run.script: round(run.seconds, 2) for run in first},
        "second_run_seconds": {run.script: round(run.seconds, 2) for run in second},
        "first_run_total_seconds": round(first_total, 2),
        "second_run_total_seconds": round(second_total, 2),
        "second_over_first": round(second_total / first_total, 3),
    }
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS_FILE.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\nreal timings ({TIMINGS_FILE}): {json.dumps(timings)}")
    assert second_total < 0.25 * first_total, timings
    assert second_total < 10, timings


# -- registry mirrors (registry-mirrors.sh), on the runtime installed above -------------------

CERTS = "/etc/containerd/certs.d"
MIRRORS = ("docker.io https://mirror.example http://10.0.0.5:5000\n"
           "ghcr.io https://ghcr-mirror.example\n")
MARK = "# Written by kubeadm-cluster from the stack's registryMirrors; replaced on pulumi up."
NODE_IMAGE_CONFIG = ROOT / "toolchain" / "node-image" / "files" / "etc" / "containerd" / \
    "config.toml.in"


def containerd_started(machine: Machine) -> str:
    return machine.sh("systemctl show -p ActiveEnterTimestampMonotonic containerd")


def mirrors(machine: Machine, value: str) -> ScriptRun:
    run = machine.run_script("registry-mirrors.sh", {"REGISTRY_MIRRORS": value})
    assert run.returncode == 0, run.describe()
    return run


def test_registry_mirrors_are_hosts_toml_files_containerd_reads_without_a_restart(
    installed: dict[str, Any],
) -> None:
    machine: Machine = installed["machine"]
    assert f'config_path = "{CERTS}"' in machine.sh("containerd config dump")
    started = containerd_started(machine)
    mirrors(machine, MIRRORS)
    assert machine.sh(f"cat {CERTS}/docker.io/hosts.toml") == (
        f'{MARK}\nserver = "https://registry-1.docker.io"\n\n'
        '[host."https://mirror.example"]\n  capabilities = ["pull", "resolve"]\n\n'
        '[host."http://10.0.0.5:5000"]\n  capabilities = ["pull", "resolve"]\n'
    )
    assert 'server = "https://ghcr.io"' in machine.sh(f"cat {CERTS}/ghcr.io/hosts.toml")
    assert containerd_started(machine) == started
    again = mirrors(machine, MIRRORS)
    assert "wrote " not in again.stderr, again.describe()
    # A registry dropped from the config loses its file; a file the user wrote stays.
    machine.sh(f"mkdir -p {CERTS}/quay.io && echo 'server = \"https://quay.io\"' > "
               f"{CERTS}/quay.io/hosts.toml")
    mirrors(machine, "ghcr.io https://ghcr-mirror.example\n")
    assert machine.sh(f"ls {CERTS}").split() == ["ghcr.io", "quay.io"]
    mirrors(machine, "")  # the step's delete
    assert machine.sh(f"ls {CERTS}").split() == ["quay.io"]
    assert containerd_started(machine) == started


def test_registry_mirrors_add_config_path_where_a_kind_node_config_has_none(
    installed: dict[str, Any],
) -> None:
    machine: Machine = installed["machine"]
    machine.sh("cp /etc/containerd/config.toml /root/config.toml.installed")
    try:
        kind_config = NODE_IMAGE_CONFIG.read_text().replace(
            "@SANDBOX_IMAGE@", "registry.k8s.io/pause:3.10")
        machine.put_text(kind_config, "/etc/containerd/config.toml")
        machine.sh("systemctl restart containerd")
        assert "config_path" not in machine.sh("cat /etc/containerd/config.toml")
        started = containerd_started(machine)
        run = mirrors(machine, MIRRORS)
        assert "restarting containerd" in run.stderr
        assert containerd_started(machine) != started
        assert machine.sh("systemctl is-active containerd").strip() == "active"
        assert f'config_path = "{CERTS}"' in machine.sh("containerd config dump")
        started = containerd_started(machine)
        mirrors(machine, MIRRORS)
        assert containerd_started(machine) == started
        # A config that still uses the CRI plugin's old mirrors tables is refused, unchanged.
        machine.put_text(kind_config + '\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors.'
                         '"docker.io"]\n  endpoint = ["https://m.example"]\n',
                         "/etc/containerd/config.toml")
        before = machine.sh("cat /etc/containerd/config.toml")
        refused = machine.run_script("registry-mirrors.sh", {"REGISTRY_MIRRORS": MIRRORS})
        assert refused.one_error("without config_path")
        assert machine.sh("cat /etc/containerd/config.toml") == before
    finally:
        machine.sh("cp /root/config.toml.installed /etc/containerd/config.toml && "
                   "systemctl restart containerd && rm -rf /etc/containerd/certs.d/*")
