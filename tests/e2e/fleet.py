"""Test harness only: "machines you already have" for the machines-target e2e, as containers.

EC2 cannot run here, so the machines target (and with it the AWS node path: SSH with pinned
host keys, preflight, runtime and kubeadm packages, init, joins, drains) is proven on Debian
system containers instead. Each machine:

- boots systemd and sshd (tests/e2e/machine/Dockerfile) on its own Docker network at a fixed IP,
  with the same container settings the product gives its kind nodes (privileged, private cgroup
  namespace, tmpfs /run and /tmp, a volume on /var), so kubelet can run nested;
- has an ED25519 host key made by the test and copied in before its first boot: the stack
  file pins exactly that key, as a user pins what `ssh-keyscan` printed and they checked;
- lets user `kube` in with a client key made by the test, with passwordless sudo;
- trusts the test CA of the internet stand-in (tests/e2e/internet.py), whose names
  (pkgs.k8s.io, registry.k8s.io, ...) point at the network's gateway through --add-host;
- has an /etc/default/kubelet (the per-node file kubeadm's kubelet drop-in reads, which the
  kubelet package keeps when it exists) that lowers kubelet's hard eviction thresholds: the
  machines share this host's disk, whose free space (about 15 % here) is below kubelet's
  default imagefs threshold, so every node would be tainted disk-pressure. kind gives its
  nodes the same 0-ish thresholds for the same reason; a real machine has its own disk.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.e2e.project import APP_IMAGE

if TYPE_CHECKING:
    from tests.e2e.project import Workspace

ROOT = Path(__file__).resolve().parents[2]
MACHINE_DIR = Path(__file__).parent / "machine"
ENTRYPOINT = ROOT / "toolchain" / "node-image" / "files" / "usr" / "local" / "bin" / "entrypoint"
BASE_IMAGE = "kubeadm-cluster/debian:bookworm"  # made by toolchain/images.sh
IMAGE_REPO = "kubeadm-cluster/machine"
LOGIN_USER = "kube"
NETWORK = "kc-e2e-machines"
SUBNET_PREFIX = "172.28.5"
LABEL = "kubeadm-cluster.e2e-machine"
BOOT_SECONDS = 120
CA_PATH = "/usr/local/share/ca-certificates/kubeadm-cluster-e2e-ca.crt"
KUBELET_DEFAULTS = (
    "# Test harness (tests/e2e/fleet.py): this machine shares the test host's disk.\n"
    "KUBELET_EXTRA_ARGS=--eviction-hard=imagefs.available<1%,nodefs.available<1%,"
    "nodefs.inodesFree<1%\n"
)
# The app image, pushed to the stand-in registry under a name of the reserved .test domain.
APP_REGISTRY_IMAGE = f"registry.e2e.test/{APP_IMAGE}"


class FleetError(Exception):
    """A machine could not be made or reached; the message names it and the command."""


def docker(*args: str, check: bool = True, timeout: float = 300,
           input: str | None = None) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          input=input, check=False)
    if check and done.returncode != 0:
        raise FleetError(f"`docker {' '.join(args[:3])} ...` exited {done.returncode}: "
                         f"{done.stderr.strip()[-500:]}")
    return done.stdout


def image_tag() -> str:
    """The machine image's tag: a hash of its build inputs, so a change builds a new image."""
    digest = hashlib.sha256()
    for part in ((MACHINE_DIR / "Dockerfile").read_bytes(), (MACHINE_DIR / "runc").read_bytes(),
                 ENTRYPOINT.read_bytes(), BASE_IMAGE.encode()):
        digest.update(part + b"\0")
    return f"{IMAGE_REPO}:{digest.hexdigest()[:12]}"


def build_image() -> str:
    tag = image_tag()
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(prefix="kc-machine-image-") as tmp:
        shutil.copy(MACHINE_DIR / "Dockerfile", Path(tmp) / "Dockerfile")
        shutil.copy(MACHINE_DIR / "runc", Path(tmp) / "runc")
        shutil.copy(ENTRYPOINT, Path(tmp) / "entrypoint")
        docker("build", "--build-arg", f"BASE={BASE_IMAGE}", "-t", tag, tmp, timeout=900)
    return tag


def keygen(path: Path, comment: str) -> str:
    """An ED25519 key pair at `path` (made once); returns the public key line without comment."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(path)], check=True, capture_output=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


@dataclass(frozen=True)
class Machine:
    name: str  # container name and hostname
    ip: str
    host_key: str  # "ssh-ed25519 AAAA...": the key its sshd presents

    def sh(self, command: str, check: bool = True, timeout: float = 300) -> str:
        return docker("exec", self.name, "bash", "-c", command, check=check, timeout=timeout)

    def rc(self, command: str) -> int:
        return subprocess.run(["docker", "exec", self.name, "bash", "-c", command],
                              capture_output=True, timeout=120).returncode


class Fleet:
    """The machines of one e2e run on network NETWORK (SUBNET_PREFIX.0/24).

    `workdir` keeps the client key and each machine's host key, so a rerun reuses them.
    `extra_hosts` are `NAME:IP` entries for every machine's /etc/hosts; `ca_pem` is installed
    as a trusted CA.
    """

    def __init__(self, workdir: Path, extra_hosts: list[str], ca_pem: str) -> None:
        self.workdir = workdir
        self.extra_hosts = extra_hosts
        self.ca_pem = ca_pem
        self.client_key = workdir / "id_ed25519"
        self.client_public_key = ""
        self.image = ""
        self.machines: dict[str, Machine] = {}

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.1"

    def prepare(self) -> None:
        self.image = build_image()
        self.client_public_key = keygen(self.client_key, "kubeadm-cluster-e2e")
        self.remove_all()
        docker("network", "create", "--subnet", f"{SUBNET_PREFIX}.0/24",
               "--gateway", self.gateway, "--label", LABEL, NETWORK)

    def start(self, name: str, index: int) -> Machine:
        """Machine `name` at SUBNET_PREFIX.(10 + index), booted, sshd up, CA trusted."""
        ip = f"{SUBNET_PREFIX}.{10 + index}"
        key_path = self.workdir / name / "ssh_host_ed25519_key"
        key_path.unlink(missing_ok=True)
        key_path.with_suffix(".pub").unlink(missing_ok=True)
        host_key = keygen(key_path, f"root@{name}")
        args = [
            "create", "--name", name, "--hostname", name, "--label", LABEL,
            "--network", NETWORK, "--ip", ip, "--privileged", "--tty",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--tmpfs", "/tmp", "--tmpfs", "/run", "--volume", "/var",
            "--volume", "/lib/modules:/lib/modules:ro", "--cgroupns", "private",
        ]  # fmt: skip
        for entry in self.extra_hosts:
            args += ["--add-host", entry]
        docker(*args, self.image)
        with tempfile.TemporaryDirectory(prefix="kc-machine-") as tmp:
            files = Path(tmp)
            shutil.copy(key_path, files / "ssh_host_ed25519_key")
            shutil.copy(key_path.with_suffix(".pub"), files / "ssh_host_ed25519_key.pub")
            (files / "ssh_host_ed25519_key").chmod(0o600)
            for file in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
                docker("cp", str(files / file), f"{name}:/etc/ssh/{file}")
            (files / "authorized_keys").write_text(self.client_public_key + "\n")
            docker("cp", str(files / "authorized_keys"), f"{name}:/home/{LOGIN_USER}/.ssh/")
            (files / "ca.crt").write_text(self.ca_pem)
            docker("cp", str(files / "ca.crt"), f"{name}:{CA_PATH}")
            (files / "kubelet").write_text(KUBELET_DEFAULTS)
            docker("cp", str(files / "kubelet"), f"{name}:/etc/default/kubelet")
        docker("start", name)
        machine = Machine(name, ip, host_key)
        self._wait_for_boot(machine)
        machine.sh(f"chown -R {LOGIN_USER}:{LOGIN_USER} /home/{LOGIN_USER}/.ssh && "
                   f"chmod 0600 /home/{LOGIN_USER}/.ssh/authorized_keys && "
                   "update-ca-certificates >/dev/null 2>&1")
        self.machines[name] = machine
        return machine

    def _wait_for_boot(self, machine: Machine) -> None:
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            if machine.rc("systemctl is-active --quiet ssh.service") == 0:
                return
            time.sleep(1)
        logs = docker("logs", "--tail", "20", machine.name, check=False)
        raise FleetError(f"machine {machine.name}: sshd not active within {BOOT_SECONDS}s; "
                         f"last log lines:\n{logs}")

    def replace_host_key(self, machine: Machine) -> str:
        """Give `machine` a new host key (as a reinstall would) and return it."""
        key_path = self.workdir / machine.name / "replaced_host_key"
        key_path.unlink(missing_ok=True)
        key_path.with_suffix(".pub").unlink(missing_ok=True)
        new_key = keygen(key_path, f"root@{machine.name}")
        docker("cp", str(key_path), f"{machine.name}:/etc/ssh/ssh_host_ed25519_key")
        docker("cp", str(key_path.with_suffix(".pub")),
               f"{machine.name}:/etc/ssh/ssh_host_ed25519_key.pub")
        machine.sh("chown root:root /etc/ssh/ssh_host_ed25519_key* && "
                   "chmod 0600 /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh.service")
        self.machines[machine.name] = Machine(machine.name, machine.ip, new_key)
        return new_key

    def remove_all(self) -> None:
        """Remove every e2e machine and the network (also those of a crashed earlier run)."""
        names = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
        if names:
            docker("rm", "-f", "-v", *names, check=False, timeout=300)
        if docker("network", "ls", "-q", "--filter", f"name=^{NETWORK}$", check=False).strip():
            docker("network", "rm", NETWORK, check=False)
        self.machines.clear()


def host_entry(machine: Machine) -> dict[str, Any]:
    return {"address": machine.ip, "hostKey": machine.host_key}


def machines_stack_file(
    control_plane: Machine,
    workers: list[Machine],
    app_image: str,
    kubernetes_version: str | None = None,
    drain_timeout_seconds: int | None = None,
) -> str:
    """The shipped Pulumi.machines.yaml with these machines, Debian's runtime packages
    (packageSource distro), the login user, `app_image` for the default app, and
    allowCgroupV1 when this host runs cgroup v1 (kubelet 1.35+ refuses it otherwise);
    `kubernetes_version` ("1.36") and `drain_timeout_seconds` when given."""
    document = yaml.safe_load((ROOT / "Pulumi.machines.yaml").read_text())
    config = document["config"]
    config["kubeadm-cluster:sshUser"] = LOGIN_USER
    config["kubeadm-cluster:packageSource"] = "distro"
    config["kubeadm-cluster:controlPlaneHosts"] = [host_entry(control_plane)]
    config["kubeadm-cluster:workerHosts"] = [host_entry(m) for m in workers]
    config["kubeadm-cluster:apps"][0]["image"] = app_image
    if kubernetes_version is not None:
        config["kubeadm-cluster:kubernetesVersion"] = kubernetes_version
    if drain_timeout_seconds is not None:
        config["kubeadm-cluster:drainTimeoutSeconds"] = drain_timeout_seconds
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        config["kubeadm-cluster:allowCgroupV1"] = True
    return yaml.safe_dump(document, sort_keys=False)


def set_login_key(workspace: Workspace, fleet: Fleet) -> None:
    """The fleet's client key as the stack's sshPrivateKey secret, as a user sets theirs."""
    workspace.run(["pulumi", "config", "set", "--secret", "sshPrivateKey",
                   "--stack", workspace.stack, "--non-interactive"],
                  input=fleet.client_key.read_text())
