"""Debian "machines" under a real Docker engine: the engine, the image, the containers.

A machine is a container from a debootstrapped Debian bookworm image that boots systemd as PID 1,
so the node scripts meet what they meet on a fresh VM: apt, dpkg locks, systemctl, services.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from components.scripts import script_text
from components.transport import DockerExecTransport, Step, env_preamble

HERE = Path(__file__).parent
DOCKERFILE = HERE / "Dockerfile"
STANDINS = HERE / "standins"
STANDIN_LOG = "/var/log/standins.log"

SUITE = "bookworm"
INCLUDE = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "procps",
    "kmod",
    "iproute2",
    "iptables",  # reset.sh removes the cluster's chains, and only those
    "ca-certificates",
    "curl",
    "openssl",  # on Ubuntu hosts too; kubeadm-join.sh compares cluster CAs with it
    "python3",
)
IMAGE_REPO = "kubeadm-real-machine"
CACHE_DIR = Path(os.environ.get("REAL_CACHE_DIR", "/var/cache/kubeadm-real-tests"))
DOCKERD_LOG = Path(os.environ.get("REAL_DOCKERD_LOG", "/var/log/kubeadm-real-tests-dockerd.log"))
LABEL = "kubeadm-real-tests.session"
# Which kernel boot and PID namespace a session's pid belongs to: only sessions of this
# namespace can be judged dead by looking in this /proc (another CI job on a shared engine,
# or an earlier container that reused our pid, cannot).
OWNER_LABEL = "kubeadm-real-tests.owner"

# What `docker run --privileged` would grant, minus what this machine's bounding set lacks
# (SYS_RESOURCE) and what engine 20.10 does not know (BPF, PERFMON, CHECKPOINT_RESTORE).
CAPS = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE",
    "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT",
    "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_TIME",
    "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
)  # fmt: skip


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none could be started."""


def docker(
    *args: str,
    check: bool = True,
    input: str | bytes | None = None,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    text_input = input.decode() if isinstance(input, bytes) else input
    return subprocess.run(
        ["docker", *args],
        input=text_input,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return docker("info", check=False, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-q"]
    for cmd in ([*apt, "update"], [*apt, "install", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise EngineUnavailable(f"installing {' '.join(packages)} failed: {tail}")


def ensure_engine(wait_seconds: float = 60) -> None:
    """Use a Docker engine that answers, or start one; raise EngineUnavailable with the reason."""
    if _engine_answers():
        return
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers and starting one needs root")
    needed = [
        package
        for package, binary in (
            ("docker.io", "dockerd"),
            ("docker.io", "docker"),
            ("debootstrap", "debootstrap"),
        )
        if shutil.which(binary) is None
    ]
    if needed:
        _apt_install(sorted(set(needed)))
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if _engine_answers():
            return
        time.sleep(1)
    raise EngineUnavailable(
        f"dockerd did not answer within {wait_seconds:.0f}s (log: {DOCKERD_LOG})"
    )


# ---------------------------------------------------------------------------------------------
# The machine image


def image_tag() -> str:
    """Tag named by a hash of every build input, so a changed input builds a new image."""
    digest = hashlib.sha256()
    for part in (SUITE, "minbase", ",".join(INCLUDE), DOCKERFILE.read_text()):
        digest.update(part.encode() + b"\0")
    return f"{IMAGE_REPO}:{digest.hexdigest()[:16]}"


def _image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / "build.lock").open("w") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        yield


def build_image() -> str:
    """Build (or reuse) the machine image and return its tag."""
    tag = image_tag()
    if _image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        if os.geteuid() != 0:
            raise EngineUnavailable("debootstrap is not installed and installing it needs root")
        _apt_install(["debootstrap"])
    with _build_lock():
        if _image_exists(tag):
            return tag
        debootstrap_cache = CACHE_DIR / "debootstrap"
        debootstrap_cache.mkdir(parents=True, exist_ok=True)
        base = f"{IMAGE_REPO}-base:{tag.split(':', 1)[1]}"
        with tempfile.TemporaryDirectory(prefix="kubeadm-real-rootfs-", dir="/var/tmp") as tmp:
            rootfs = Path(tmp) / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(INCLUDE)}",
                    f"--cache-dir={debootstrap_cache}",
                    SUITE,
                    str(rootfs),
                ],
                check=True,
                capture_output=True,
                timeout=900,
            )
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                ["docker", "import", "-", base], stdin=tar.stdout, capture_output=True, timeout=600
            )
            assert tar.stdout is not None
            tar.stdout.close()
            if tar.wait() != 0 or imported.returncode != 0:
                raise RuntimeError(f"docker import failed: {imported.stderr.decode().strip()}")
            context = Path(tmp) / "context"
            context.mkdir()
            shutil.copy(DOCKERFILE, context / "Dockerfile")
            docker(
                "build",
                "--build-arg",
                f"BASE={base}",
                "-t",
                tag,
                str(context),
                env={"DOCKER_BUILDKIT": "0"},
            )
    return tag


# ---------------------------------------------------------------------------------------------
# Machines and the transport


def transport_invocation(
    container: str, script: str, env: Mapping[str, str]
) -> tuple[list[str], str]:
    """Exactly what the program's local transport runs, through its own code.

    The command is DockerExecTransport's create command (`docker exec -i NAME bash -s`), run by
    /bin/sh -c as pulumi_command.local runs it; stdin is what transport.stdin_text resolves to:
    the inputs as `export` lines, then common.sh and the script.
    """
    command = DockerExecTransport(container).create_command(Step(script=script))
    return ["/bin/sh", "-c", command], env_preamble(env) + script_text(script)


@dataclass(frozen=True)
class ScriptRun:
    script: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def one_error(self, *fragments: str) -> str:
        """Assert the run failed with exactly one `error:` line, its last, holding each
        fragment; return that line."""
        assert self.returncode != 0, self.describe()
        assert len(self.error_lines) == 1, self.describe()
        assert self.stderr.rstrip().splitlines()[-1] == self.error_lines[0], self.describe()
        for fragment in fragments:
            assert fragment in self.error_lines[0], self.describe()
        return self.error_lines[0]

    def describe(self) -> str:
        return (
            f"{self.script} exited {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr (last 60 lines) ---\n"
            + "\n".join(self.stderr.splitlines()[-60:])
        )


@dataclass
class Machine:
    name: str
    ip: str

    def run_script(
        self, script: str, env: Mapping[str, str] | None = None, timeout: float = 900
    ) -> ScriptRun:
        """Run a node script exactly as the program does: its text on stdin of `bash -s`."""
        argv, stdin = transport_invocation(self.name, script, env or {})
        start = time.monotonic()
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return ScriptRun(
            script, done.returncode, done.stdout, done.stderr, time.monotonic() - start
        )

    def start_script(self, script: str, env: Mapping[str, str] | None = None) -> subprocess.Popen:
        argv, stdin = transport_invocation(self.name, script, env or {})
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        return proc

    def sh(self, command: str, check: bool = True, timeout: float = 300) -> str:
        done = docker("exec", self.name, "bash", "-c", command, check=False, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{self.name}: `{command}` exited {done.returncode}: {done.stderr.strip()}"
            )
        return done.stdout

    def rc(self, command: str, timeout: float = 300) -> int:
        done = docker("exec", self.name, "bash", "-c", command, check=False, timeout=timeout)
        return done.returncode

    def put(self, local: Path, remote: str) -> None:
        docker("cp", str(local), f"{self.name}:{remote}")

    def put_text(self, text: str, remote: str) -> None:
        """Write `text` to `remote` (its directory is made), through stdin, not a copy: this
        also works under /tmp and /run, which are tmpfs mounts in a machine."""
        done = subprocess.run(
            ["docker", "exec", "-i", self.name, "sh", "-c",
             'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", remote],
            input=text, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{self.name}: writing {remote}: {done.stderr.strip()}"

    def standin_calls(self) -> list[list[str]]:
        """The stand-in executables' recorded argument lists (standins/*), in call order."""
        text = self.sh(f"cat {STANDIN_LOG} 2>/dev/null || true")
        return [json.loads(line) for line in text.splitlines()]

    def reset_standins(self, nodes: str = "", *also_remove: str) -> None:
        """Forget the stand-ins' calls and state; `nodes` is what stand-in kubectl lists."""
        self.sh(f"rm -rf /etc/standins {STANDIN_LOG} {' '.join(also_remove)}")
        self.put_text(nodes, "/etc/standins/nodes")


class Fleet:
    """The machines of one test session on one network with a fixed subnet."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.session = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.network = f"kubeadm-real-{self.session}"
        self.subnet_prefix = ""
        self.machines: list[Machine] = []
        self._next_host = 10

    def labels(self) -> list[str]:
        """`docker run`/`create` flags marking a container as this session's."""
        return ["--label", f"{LABEL}={self.session}", "--label", f"{OWNER_LABEL}={owner()}"]

    def create_network(self) -> None:
        _remove_stale_sessions()
        errors = []
        for third in range(200, 240):
            prefix = f"172.29.{third}"
            done = docker(
                "network", "create",
                "--subnet", f"{prefix}.0/24", "--gateway", f"{prefix}.1",
                *self.labels(),
                self.network,
                check=False,
            )  # fmt: skip
            if done.returncode == 0:
                self.subnet_prefix = prefix
                return
            errors.append(done.stderr.strip())
        raise RuntimeError(f"no free /24 for the test network: {errors[-1]}")

    def start(self, role: str, systemd: bool = True, caps: tuple[str, ...] = ()) -> Machine:
        """A machine on the session's network: booting systemd with `CAPS`, or (systemd False)
        a plain `sleep` container with only `caps` added to Docker's default set."""
        name = f"kubeadm-real-{self.session}-{role}"
        ip = f"{self.subnet_prefix}.{self._next_host}"
        self._next_host += 1
        argv = [
            "run", "-d", "--name", name, "--hostname", role,
            "--network", self.network, "--ip", ip,
            *self.labels(),
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
        ]  # fmt: skip
        if systemd:
            for cap in CAPS:
                argv += ["--cap-add", cap]
            argv += [
                "--device-cgroup-rule=a *:* rwm",
                "--cgroupns=host",
                "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                "-v", "/var/lib/docker",
                "-v", "/var/lib/containerd",
            ]  # fmt: skip
            if Path("/lib/modules").is_dir():
                argv += ["-v", "/lib/modules:/lib/modules:ro"]
            argv += [self.image, "/sbin/init"]
        else:
            for cap in caps:
                argv += ["--cap-add", cap]
            argv += [self.image, "sleep", "infinity"]
        docker(*argv)
        machine = Machine(name, ip)
        self.machines.append(machine)
        if systemd:
            wait_for_systemd(machine)
        return machine

    def remove(self) -> None:
        for machine in self.machines:
            docker("rm", "-f", "-v", machine.name, check=False, timeout=120)
        if self.subnet_prefix:
            docker("network", "rm", self.network, check=False, timeout=60)


def wait_for_systemd(machine: Machine, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    state = ""
    while time.monotonic() < deadline:
        done = docker(
            "exec", machine.name, "systemctl", "is-system-running", check=False, timeout=30
        )
        state = done.stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise RuntimeError(
        f"{machine.name}: systemd not running after {seconds:.0f}s (state {state!r})"
    )


def owner() -> str:
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return f"{boot_id} {os.readlink('/proc/self/ns/pid')}"


def _remove_stale_sessions() -> None:
    """Remove machines and networks of earlier sessions in this PID namespace that are gone."""
    mine = f"label={OWNER_LABEL}={owner()}"
    listed = docker(
        "ps", "-a", "--filter", mine, "--format", f'{{{{.Names}}}} {{{{.Label "{LABEL}"}}}}',
        check=False,
    )
    nets = docker(
        "network", "ls", "--filter", mine, "--format", f'{{{{.Name}}}} {{{{.Label "{LABEL}"}}}}',
        check=False,
    )
    for line in listed.stdout.splitlines():
        name, _, session = line.partition(" ")
        if not _pid_alive(session.split("-")[0]):
            docker("rm", "-f", "-v", name, check=False, timeout=120)
    for line in nets.stdout.splitlines():
        name, _, session = line.partition(" ")
        if not _pid_alive(session.split("-")[0]):
            docker("network", "rm", name, check=False)


def _pid_alive(pid: str) -> bool:
    if not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return True
    return Path(f"/proc/{pid}").exists()
