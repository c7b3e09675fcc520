"""Faults injected while the node scripts run on a real Debian machine.

Each ends either in success or in one clear `error:` line and a non-zero exit, with nothing
left half-configured: an unsupported host, an unreachable package mirror, the script killed in
the middle of installing packages, and the dpkg lock held by another process.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.real.machines import STANDINS, Fleet, Machine, ScriptRun

pytestmark = pytest.mark.real

FAKE_UNAME_DIR = "/opt/fake-uname"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FAST_RETRIES = {"RETRY_ATTEMPTS": "3", "RETRY_DELAY": "1"}
INSTALL_ENV = {"PACKAGE_SOURCE": "distro"}
LOCK_SECONDS = 10
REPAIR_WAITING = "dpkg lock held by another process; waiting"

RELEASE_FILE = "/run/dpkg-lock-release"
DPKG_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")
LISTS_LOCK = ("/var/lib/apt/lists/lock",)
# Holds the locks named in argv[1] (comma-separated) with fcntl, as dpkg and apt do, like a
# concurrent apt run: for LOCK_SECONDS, and with --until-released until RELEASE_FILE exists too
# (at most 300 s).
LOCK_HOLDER = f"""
import fcntl, os, sys, time
handles = []
for path in sys.argv[1].split(","):
    handle = open(path, "w")
    fcntl.lockf(handle, fcntl.LOCK_EX)
    handles.append(handle)
open("/run/dpkg-lock-held", "w").close()
start = time.monotonic()
time.sleep({LOCK_SECONDS})
while sys.argv[2:] == ["--until-released"] and not os.path.exists("{RELEASE_FILE}"):
    if time.monotonic() - start > 300:
        break
    time.sleep(0.2)
"""

# Wait (at most 300 s) until the script's dpkg unpacks or configures packages; exit 3 if the
# script ends first. Run in the machine, right before KILL_SCRIPT_TREE, it freezes dpkg within
# ~50 ms of seeing it.
WATCH_FOR_DPKG = r"""
timeout 300 sh -c '
    until pgrep -f "^bash -s$" >/dev/null; do sleep 0.05; done
    until pgrep -f "^(/usr/bin/)?dpkg .*--(unpack|configure)" >/dev/null; do
        pgrep -f "^bash -s$" >/dev/null || exit 3
        sleep 0.05
    done
' || exit
"""

# Freeze, then kill, the process tree of the running `bash -s` script (apt-get, dpkg,
# maintainer scripts included), the way a lost machine or an OOM kill would stop it.
KILL_SCRIPT_TREE = r"""
root=$(pgrep -o -f '^bash -s$')
pids=$root
while :; do
    kill -STOP $pids 2>/dev/null || true
    more=$pids
    for pid in $pids; do more="$more $(pgrep -P "$pid" | tr '\n' ' ')"; done
    more=$(printf '%s\n' $more | sort -un | tr '\n' ' ')
    [ "$more" = "$(printf '%s\n' $pids | sort -un | tr '\n' ' ')" ] && break
    pids=$more
done
kill -KILL $pids
echo "$pids"
"""


PREFLIGHT_FILES = ("/etc/sysctl.d/99-kubernetes.conf", "/etc/modules-load.d/kubernetes.conf")
RUNTIME_FILES = ("/etc/containerd/config.toml", "/etc/docker/daemon.json")


def assert_absent(machine: Machine, paths: tuple[str, ...]) -> None:
    leftovers = machine.sh(f"ls -d {' '.join(paths)} 2>/dev/null || true")
    assert leftovers.strip() == "", "left half-configured"


@pytest.fixture(scope="module")
def machine(fleet: Fleet) -> Machine:
    machine = fleet.start("faults")
    machine.sh(f"mkdir -p {FAKE_UNAME_DIR}")
    machine.put(STANDINS / "uname", f"{FAKE_UNAME_DIR}/uname")
    return machine


def fake_uname_env(arch: str = "", kernel: str = "") -> dict[str, str]:
    env = {"PATH": f"{FAKE_UNAME_DIR}:{SYSTEM_PATH}"}
    if arch:
        env["FAKE_UNAME_M"] = arch
    if kernel:
        env["FAKE_UNAME_R"] = kernel
    return env


def test_unsupported_architecture_is_refused(machine: Machine) -> None:
    run = machine.run_script("preflight.sh", fake_uname_env(arch="armv7l"))
    run.one_error("unsupported architecture 'armv7l'")
    assert_absent(machine, PREFLIGHT_FILES)


def test_old_kernel_is_refused(machine: Machine) -> None:
    run = machine.run_script("preflight.sh", fake_uname_env(kernel="3.2.0-4-amd64"))
    run.one_error("kernel 3.2.0-4-amd64 is too old", "3.10")
    assert_absent(machine, PREFLIGHT_FILES)


def test_arm64_and_a_new_kernel_pass_the_platform_check(machine: Machine) -> None:
    run = machine.run_script("preflight.sh", fake_uname_env(arch="aarch64", kernel="6.1.0-arm64"))
    assert run.returncode == 0, run.describe()
    assert "platform aarch64, kernel 6.1.0-arm64: supported" in run.stderr


def test_unreachable_mirror_fails_after_bounded_retries(machine: Machine) -> None:
    # Block the machine's package mirror by pointing its name at a closed local port.
    host = machine.sh(
        "sed -nE 's#^deb +https?://([^/ ]+)/.*#\\1#p' /etc/apt/sources.list | head -n1"
    ).strip()
    assert host, "no mirror in the machine's sources.list"
    saved = machine.sh("cat /etc/hosts")
    machine.sh(f"echo '127.0.0.1 {host}' >> /etc/hosts")
    try:
        run = machine.run_script("install-runtime.sh", {**INSTALL_ENV, **FAST_RETRIES})
    finally:
        machine.put_text(saved, "/etc/hosts")
    run.one_error("apt-get update failed after 3 attempts", "unreachable")
    assert run.stderr.count("apt-get update: attempt") == 3, run.describe()
    assert run.seconds < 60, run.describe()
    status = machine.sh("dpkg-query -W -f='${Status}' docker.io 2>/dev/null || true")
    assert status != "install ok installed"
    assert_absent(machine, RUNTIME_FILES)


state: dict[str, Any] = {}


def test_install_killed_in_the_middle_leaves_dpkg_interrupted(machine: Machine) -> None:
    proc = machine.start_script("install-runtime.sh", INSTALL_ENV)
    # Watch and kill inside the machine, in one command: dpkg unpacking or configuring
    # packages (the worst moment to die) is frozen within ~50 ms of being seen.
    watch_then_kill = WATCH_FOR_DPKG + KILL_SCRIPT_TREE
    killed = machine.sh(watch_then_kill, check=False, timeout=400).split()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert len(killed) >= 2, f"dpkg never ran, or the install ended first: {killed}"
    assert proc.returncode != 0
    interrupted = machine.sh("find /var/lib/dpkg/updates -type f | head -n1; dpkg --audit || true")
    assert interrupted.strip(), "the kill did not leave the install unfinished"
    state["killed"] = True


def run_with_lock_held(
    machine: Machine,
    locks: tuple[str, ...] = DPKG_LOCKS,
    release_once_seen: str | None = None,
    env: dict[str, str] = INSTALL_ENV,
) -> tuple[ScriptRun, float]:
    """Run install-runtime.sh while another process holds `locks`; (run, seconds).

    The lock is held LOCK_SECONDS and, with `release_once_seen`, until the script has printed
    that text, so a slow mirror cannot make the script arrive after the lock is gone.
    """
    machine.sh(f"rm -f /run/dpkg-lock-held {RELEASE_FILE}")
    holder = subprocess.Popen(
        ["docker", "exec", machine.name, "python3", "-c", LOCK_HOLDER, ",".join(locks),
         *(["--until-released"] if release_once_seen else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while machine.rc("test -e /run/dpkg-lock-held") != 0:
            assert time.monotonic() < deadline, "the lock holder did not start"
            assert holder.poll() is None, holder.communicate()
            time.sleep(0.2)
        locked_at = time.monotonic()
        if release_once_seen is None:
            run = machine.run_script("install-runtime.sh", env)
        else:
            run = run_releasing_lock(machine, release_once_seen, locked_at)
        return run, time.monotonic() - locked_at
    finally:
        machine.sh(f"touch {RELEASE_FILE}", check=False)
        holder.wait(timeout=60)


def run_releasing_lock(machine: Machine, text: str, locked_at: float) -> ScriptRun:
    """install-runtime.sh, reading its stderr live; the lock goes once `text` has appeared."""
    proc = machine.start_script("install-runtime.sh", INSTALL_ENV)
    started = time.monotonic()
    streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
    seen = threading.Event()

    def pump(name: str) -> None:
        stream = getattr(proc, name)
        for line in stream:
            streams[name].append(line)
            if text in line:
                seen.set()

    pumps = [threading.Thread(target=pump, args=(n,), daemon=True) for n in streams]
    for thread in pumps:
        thread.start()
    seen.wait(timeout=600)
    time.sleep(max(0.0, LOCK_SECONDS - (time.monotonic() - locked_at)))
    machine.sh(f"touch {RELEASE_FILE}")
    returncode = proc.wait(timeout=900)
    for thread in pumps:
        thread.join(timeout=30)
    return ScriptRun("install-runtime.sh", returncode, "".join(streams["stdout"]),
                     "".join(streams["stderr"]), time.monotonic() - started)


def assert_runtime_works(machine: Machine) -> None:
    assert machine.rc("docker info >/dev/null") == 0
    assert "io.containerd.grpc.v1" in machine.sh("ctr plugins ls")
    assert "SystemdCgroup = true" in machine.sh("cat /etc/containerd/config.toml")
    assert machine.sh("dpkg --audit").strip() == ""
    for package in ("docker.io", "containerd"):
        assert machine.sh(f"dpkg-query -W -f='${{Status}}' {package}") == "install ok installed"


def test_rerun_waits_for_a_held_dpkg_lock_and_completes(machine: Machine) -> None:
    if not state.get("killed"):
        pytest.skip("depends on the killed install above")
    run, waited = run_with_lock_held(machine, release_once_seen=REPAIR_WAITING)
    print(f"\nrerun after the kill, with the dpkg lock held {LOCK_SECONDS}s:\n{run.describe()}")
    assert run.returncode == 0, run.describe()
    assert run.error_lines == [], run.describe()
    assert REPAIR_WAITING in run.stderr, run.describe()
    assert waited >= LOCK_SECONDS - 1, run.describe()
    assert_runtime_works(machine)


def test_install_waits_for_apt_held_by_another_process(machine: Machine) -> None:
    """The common case on a fresh cloud machine: unattended-upgrades holds dpkg's lock."""
    machine.sh("apt-get purge -y -q docker.io >/dev/null 2>&1")
    run, waited = run_with_lock_held(machine)
    assert run.returncode == 0, run.describe()
    assert run.error_lines == [], run.describe()
    assert "dpkg --configure -a" not in run.stderr, run.describe()
    assert waited >= LOCK_SECONDS - 1, run.describe()
    assert_runtime_works(machine)


FAKE_CLOUD_INIT_DIR = "/opt/fake-cloud-init"


def cloud_init_env(seconds: int, timeout: int) -> dict[str, str]:
    return {
        **INSTALL_ENV,
        "PATH": f"{FAKE_CLOUD_INIT_DIR}:{SYSTEM_PATH}",
        "FAKE_CLOUD_INIT_SECONDS": str(seconds),
        "CLOUD_INIT_TIMEOUT": str(timeout),
    }


def test_waits_for_cloud_init_before_touching_apt(machine: Machine) -> None:
    machine.sh(f"mkdir -p {FAKE_CLOUD_INIT_DIR} && rm -f /var/log/standins.log")
    machine.put(STANDINS / "cloud-init", f"{FAKE_CLOUD_INIT_DIR}/cloud-init")
    run = machine.run_script("install-runtime.sh", cloud_init_env(seconds=3, timeout=60))
    assert run.returncode == 0, run.describe()
    assert "waiting for cloud-init to finish" in run.stderr
    assert run.seconds >= 3, run.describe()
    assert machine.sh("cat /var/log/standins.log").splitlines() == ["cloud-init status --wait"]


def test_cloud_init_that_never_finishes_is_a_clear_error(machine: Machine) -> None:
    run = machine.run_script("install-runtime.sh", cloud_init_env(seconds=60, timeout=2))
    run.one_error("cloud-init did not finish within 2s")
    assert run.seconds < 20, run.describe()


def test_install_waits_for_the_package_lists_lock_beyond_its_retries(machine: Machine) -> None:
    """apt-daily's `apt-get update` holds the lists lock, which DPkg::Lock::Timeout ignores:
    with retries far shorter than the lock (3 attempts, 1+2 s apart) the update still waits."""
    machine.sh("apt-get purge -y -q docker.io >/dev/null 2>&1")
    run, waited = run_with_lock_held(machine, LISTS_LOCK, env={**INSTALL_ENV, **FAST_RETRIES})
    assert run.returncode == 0, run.describe()
    assert run.error_lines == [], run.describe()
    assert "apt's package lists are locked by another process; waiting" in run.stderr, \
        run.describe()
    assert "attempt 1/3 failed" not in run.stderr, run.describe()
    assert waited >= LOCK_SECONDS - 1, run.describe()
    assert_runtime_works(machine)


CGROUP_V1_HOST = not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def test_cgroup_v1_is_refused_from_kubernetes_1_35_unless_allowed(machine: Machine) -> None:
    """kubelet 1.35+ refuses cgroup v1 (KEP-5573): preflight says so before anything is
    installed, unless the stack allows it. (The machines share this host's cgroup version.)"""
    refused = machine.run_script("preflight.sh", {"KUBERNETES_VERSION": "1.37"})
    allowed = machine.run_script(
        "preflight.sh", {"KUBERNETES_VERSION": "1.37", "ALLOW_CGROUP_V1": "true"}
    )
    older = machine.run_script("preflight.sh", {"KUBERNETES_VERSION": "1.34"})
    unknown = machine.run_script("preflight.sh", {})
    for run in (allowed, older, unknown):
        assert run.returncode == 0, run.describe()
    if CGROUP_V1_HOST:
        refused.one_error("this host uses cgroup v1, which kubelet 1.37 refuses to run on",
                          "systemd.unified_cgroup_hierarchy=1", "allowCgroupV1")
        assert "kubeadm skips its SystemVerification check (allowCgroupV1)" in allowed.stderr
        assert "cgroup v1, which Kubernetes deprecates; kubelet 1.34 still runs" in older.stderr
    else:
        assert refused.returncode == 0, refused.describe()
        assert "cgroup v2 (unified hierarchy)" in refused.stderr
