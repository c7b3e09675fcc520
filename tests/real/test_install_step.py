"""A new control-plane node's preparation, for real: the install step (preflight and runtime on
one stdin), then the kubernetes step (kubelet, kubeadm and kubectl at the stack's version).

On EC2 each node gets one install step, `render_stdin(INSTALL_SCRIPTS, env)`, and the control
plane then its kubernetes step, `render_stdin(VERSION_SCRIPTS, env)`. This runs those exact
texts through the program's own transport on a fresh machine, with the packages
from a signed stand-in of the Kubernetes community repository (tests/real/kubeadm_repo) served
from another machine on the fleet network, as KUBERNETES_APT_URL. Then runs it again (nothing
changes, much faster), and asks for a patch release the repository does not have (one clear
error line). Both durations go to REAL_TIMINGS_FILE under their own key.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bringup import INSTALL_STEP_KEY, TIMINGS_FILE
from components.kubeadm import INSTALL_SCRIPTS, VERSION_SCRIPTS
from components.transport import DockerExecTransport, Step, render_stdin
from tests.real import kubeadm_repo
from tests.real.machines import Fleet, Machine, ScriptRun

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[2]
# What benchmarks/bringup.py reads from the timings file (written by test_install.py).
READER_KEYS = ("first_run_seconds", "second_run_seconds", "first_run_total_seconds",
               "second_run_total_seconds")  # fmt: skip
KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
SOURCES = "/etc/apt/sources.list.d/kubernetes.list"
STEP_NAME = "+".join((*INSTALL_SCRIPTS, *VERSION_SCRIPTS))
PACKAGE_SCRIPTS = ("install-kubeadm.sh",)

# /etc checksums, installed packages with versions, held packages, service start times.
SNAPSHOT = r"""
find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum
echo '--- packages'
dpkg-query -W -f='${Package} ${Version} ${Status}\n'
echo '--- held'
apt-mark showhold
echo '--- services'
systemctl show -p ActiveEnterTimestampMonotonic -p MainPID containerd docker
"""


def install_env(repo_url: str, version: str = kubeadm_repo.KUBERNETES_VERSION) -> dict[str, str]:
    return {
        "PACKAGE_SOURCE": "distro",
        "LOGIN_USER": "ops",
        "KUBERNETES_VERSION": version,
        "KUBERNETES_APT_URL": repo_url,
        "ROLE": "control-plane",
        "NODE_NAME": "install-step",
    }


def run_scripts(machine: Machine, scripts: tuple[str, ...], env: Mapping[str, str],
                timeout: float) -> ScriptRun:
    """One step as the program runs it: its create command under /bin/sh -c (as
    pulumi_command.local does), stdin exactly `render_stdin(scripts, env)`."""
    command = DockerExecTransport(machine.name).create_command(Step(script=scripts))
    start = time.monotonic()
    done = subprocess.run(["/bin/sh", "-c", command], input=render_stdin(scripts, env),
                          capture_output=True, text=True, timeout=timeout)
    return ScriptRun("+".join(scripts), done.returncode, done.stdout, done.stderr,
                     time.monotonic() - start)


def run_install_step(machine: Machine, env: Mapping[str, str], timeout: float = 1500) -> ScriptRun:
    """The install step, then (if it succeeded) the kubernetes step, as one timed run."""
    install = run_scripts(machine, INSTALL_SCRIPTS, env, timeout)
    if install.returncode != 0:
        return install
    version = run_scripts(machine, VERSION_SCRIPTS, env, timeout)
    return ScriptRun(STEP_NAME, version.returncode, install.stdout + version.stdout,
                     install.stderr + version.stderr, install.seconds + version.seconds)


@pytest.fixture(scope="module")
def repo(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stand-in repository, built on this host and served from its own machine."""
    directory = tmp_path_factory.mktemp("kubeadm-repo")
    key = kubeadm_repo.build(directory)
    server = fleet.start("aptrepo", systemd=False)
    return {"url": kubeadm_repo.serve(server, directory), "key": key}


@pytest.fixture(scope="module")
def installed(fleet: Fleet, repo: dict[str, Any]) -> dict[str, Any]:
    machine = fleet.start("install-step")
    machine.sh("useradd --create-home ops")
    env = install_env(repo["url"])
    first = run_install_step(machine, env)
    assert first.returncode == 0, first.describe()
    before = machine.sh(SNAPSHOT)
    second = run_install_step(machine, env)
    assert second.returncode == 0, second.describe()
    after = machine.sh(SNAPSHOT)
    return {
        "machine": machine, "first": first, "second": second, "before": before, "after": after,
    }  # fmt: skip


def test_install_step_installs_runtime_and_kubeadm_packages(installed: dict[str, Any]) -> None:
    machine: Machine = installed["machine"]
    first: ScriptRun = installed["first"]
    assert first.error_lines == [], first.describe()
    for script in (*INSTALL_SCRIPTS, "install-kubeadm.sh"):
        assert f"==> {script}:" in first.stderr, first.describe()
    assert (
        f"installed kubelet kubeadm kubectl {kubeadm_repo.PACKAGE_VERSION} (held)" in first.stderr
    ), first.describe()
    # Not in a cluster yet: the upgrade part of the kubernetes step has nothing to do.
    assert "install-step is not in a cluster yet" in first.stderr, first.describe()
    versions = machine.sh(
        "dpkg-query -W -f='${Package} ${Version} ${Status}\\n' "
        + " ".join(kubeadm_repo.KUBERNETES_PACKAGES)
    )
    assert sorted(versions.splitlines()) == sorted(
        f"{pkg} {kubeadm_repo.PACKAGE_VERSION} hold ok installed"
        for pkg in kubeadm_repo.KUBERNETES_PACKAGES
    )
    # Their dependencies came from the stand-in repository too.
    assert machine.rc("dpkg-query -W cri-tools kubernetes-cni >/dev/null") == 0
    assert sorted(machine.sh("apt-mark showhold").split()) == sorted(
        kubeadm_repo.KUBERNETES_PACKAGES
    )
    assert machine.sh("systemctl is-enabled kubelet").strip() == "enabled"
    assert "v1.31.4" in machine.sh("kubeadm version -o short")


def test_install_step_gives_containerd_the_pause_image_kubeadm_uses(
    installed: dict[str, Any],
) -> None:
    """Not containerd's own default (pause:3.6 in Debian's 1.6.20 and older in others): once
    kubeadm is installed, install-kubeadm.sh points containerd at what `kubeadm config images
    list` names (the stand-in kubeadm names registry.k8s.io/pause:3.10), and a later
    install-runtime.sh keeps it."""
    machine: Machine = installed["machine"]
    first: ScriptRun = installed["first"]
    config = machine.sh(
        "grep -E '^[[:space:]]*sandbox_image[[:space:]]*=' /etc/containerd/config.toml"
    )
    assert config.strip() == 'sandbox_image = "registry.k8s.io/pause:3.10"'
    assert "sandbox (pause) image is now registry.k8s.io/pause:3.10" in first.stderr
    order = [first.stderr.index(f"==> {script}:") for script in (
        *INSTALL_SCRIPTS, "install-kubeadm.sh")]
    assert order == sorted(order)
    second: ScriptRun = installed["second"]
    assert "sandbox (pause) image: registry.k8s.io/pause:3.10" in second.stderr


def test_install_step_trusts_only_the_configured_repository_key(
    installed: dict[str, Any], repo: dict[str, Any]
) -> None:
    machine: Machine = installed["machine"]
    assert machine.sh(f"cat {SOURCES}") == f"deb [signed-by={KEYRING}] {repo['url']} /\n"
    installed_key = machine.sh(f"sha256sum {KEYRING}").split()[0]
    assert installed_key == hashlib.sha256(kubeadm_repo.dearmored_key(repo["key"])).hexdigest()


def test_install_step_leaves_a_working_docker(installed: dict[str, Any]) -> None:
    machine: Machine = installed["machine"]
    assert machine.rc("docker info >/dev/null") == 0
    assert machine.sh("docker info --format '{{.CgroupDriver}}'").strip() == "systemd"
    assert "docker" in machine.sh("id -nG ops").split()


def test_install_step_again_changes_nothing_and_is_fast(installed: dict[str, Any]) -> None:
    first: ScriptRun = installed["first"]
    second: ScriptRun = installed["second"]
    assert installed["after"] == installed["before"]
    assert second.error_lines == [], second.describe()
    for marker in ("wrote ", "apt-get", "restarting", "fetching"):
        assert marker not in second.stderr, second.describe()
    timings = {
        "what": "the install step then the kubernetes step exactly as the program sends them "
        f"(render_stdin of {', '.join(INSTALL_SCRIPTS)}, then of {', '.join(VERSION_SCRIPTS)}; "
        "PACKAGE_SOURCE=distro, kubeadm packages from a local stand-in repository) on a fresh "
        "Debian bookworm machine container, then again",
        "first_run_seconds": round(first.seconds, 2),
        "second_run_seconds": round(second.seconds, 2),
        "second_over_first": round(second.seconds / first.seconds, 3),
    }
    record_timings(timings)
    assert second.seconds < 0.25 * first.seconds, timings
    assert second.seconds < 15, timings


def record_timings(timings: dict[str, Any]) -> None:
    """Add this step's timings under their own key, keeping what test_install.py wrote.

    benchmarks/bringup.py reads the file's top-level keys unconditionally, so a file holding
    only this key would break it: without test_install.py's keys the timings are only printed.
    """
    print(f"\nreal timings, {INSTALL_STEP_KEY}: {json.dumps(timings)}")
    try:
        data: dict[str, Any] = json.loads(TIMINGS_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    if not all(key in data for key in READER_KEYS):
        print(f"not recorded in {TIMINGS_FILE}: run tests/real/test_install.py first")
        return
    data[INSTALL_STEP_KEY] = timings
    tmp = TIMINGS_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(TIMINGS_FILE)


def test_install_step_fails_clearly_for_a_patch_the_repository_lacks(
    installed: dict[str, Any], repo: dict[str, Any]
) -> None:
    machine: Machine = installed["machine"]
    run = run_install_step(machine, install_env(repo["url"], "1.31.9"), timeout=300)
    error = run.one_error()
    assert error.startswith("error: install-kubeadm.sh: "), error
    assert "1.31.9 is not in the package repository" in error, error
    assert repo["url"] in error and kubeadm_repo.PACKAGE_VERSION in error, error
    # Nothing was changed: the installed packages stay, held.
    assert machine.sh("dpkg-query -W -f='${Version}' kubeadm") == kubeadm_repo.PACKAGE_VERSION
    assert sorted(machine.sh("apt-mark showhold").split()) == sorted(
        kubeadm_repo.KUBERNETES_PACKAGES
    )


def test_install_kubeadm_leaves_the_packages_of_a_node_in_a_cluster_alone(
    installed: dict[str, Any], repo: dict[str, Any]
) -> None:
    """A node already in a cluster changes version only through upgrade-node.sh (drain,
    kubeadm upgrade, kubelet restart, uncordon), never by a package install under it."""
    machine: Machine = installed["machine"]
    machine.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/kubelet.conf")
    try:
        run = run_scripts(machine, PACKAGE_SCRIPTS, install_env(repo["url"], "1.32"), 300)
    finally:
        machine.sh("rm -rf /etc/kubernetes")
    assert run.returncode == 0, run.describe()
    assert (
        "this node is in a cluster (/etc/kubernetes/kubelet.conf exists) with kubeadm "
        f"{kubeadm_repo.PACKAGE_VERSION}: its packages change only through an upgrade"
    ) in run.stderr, run.describe()
    assert "apt-get" not in run.stderr and "fetching" not in run.stderr, run.describe()
    assert machine.sh(f"cat {SOURCES}") == f"deb [signed-by={KEYRING}] {repo['url']} /\n"
    assert machine.sh("dpkg-query -W -f='${Version}' kubeadm") == kubeadm_repo.PACKAGE_VERSION


def test_install_kubeadm_in_a_cluster_skips_even_the_same_minor(
    installed: dict[str, Any], repo: dict[str, Any]
) -> None:
    machine: Machine = installed["machine"]
    machine.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/kubelet.conf")
    try:
        run = run_scripts(machine, PACKAGE_SCRIPTS, install_env(repo["url"], "1.31"), 300)
    finally:
        machine.sh("rm -rf /etc/kubernetes")
    assert run.returncode == 0, run.describe()
    assert "its packages change only through an upgrade" in run.stderr, run.describe()


def test_common_pkg_installed_counts_held_packages(installed: dict[str, Any]) -> None:
    """dpkg says "hold ok installed" for a held package; it is installed all the same."""
    machine: Machine = installed["machine"]
    machine.sh("mkdir -p /opt/scripts")
    machine.put(REPO / "components" / "scripts" / "common.sh", "/opt/scripts/common.sh")
    statuses = machine.sh(
        "dpkg-query -W -f='${Package} ${Status}\\n' kubeadm ca-certificates"
    ).splitlines()
    assert sorted(statuses) == [
        "ca-certificates install ok installed",
        "kubeadm hold ok installed",
    ]
    out = machine.sh(
        "bash -c '. /opt/scripts/common.sh"
        " && for p in kubeadm ca-certificates no-such-package; do"
        "      if pkg_installed $p; then echo $p yes; else echo $p no; fi; done"
        ' && printf "missing=[%s]\\n" "$(missing_packages kubeadm kubectl no-such-package)"\''
    )
    assert out.splitlines() == [
        "kubeadm yes",
        "ca-certificates yes",
        "no-such-package no",
        "missing=[no-such-package]",
    ]
