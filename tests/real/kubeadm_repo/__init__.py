"""A tiny signed apt repository standing in for the Kubernetes community repository.

The test machines cannot reach pkgs.k8s.io, so install-kubeadm.sh is pointed (KUBERNETES_APT_URL)
at this one instead: the same layout (a flat repository, `deb [signed-by=...] URL /`, its
ASCII-armored signing key at URL/Release.key) and the same package names and dependencies, with
tiny shell scripts for binaries (tests/real/kubeadm_repo/standin.sh). Built on the test host with
dpkg-deb, dpkg-scanpackages and a throwaway GPG key, then served over HTTP from a machine on the
fleet network (`python3 -m http.server` bound to that machine's address).
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.real import machines
from tests.real.machines import Machine

HERE = Path(__file__).parent
STANDIN_TEMPLATE = HERE / "standin.sh"

KUBERNETES_VERSION = "1.31.4"
DEB_REVISION = "1.1"  # the community repository's revision suffix: 1.31.4-1.1
PACKAGE_VERSION = f"{KUBERNETES_VERSION}-{DEB_REVISION}"
KUBERNETES_PACKAGES = ("kubelet", "kubeadm", "kubectl")
REMOTE_DIR = "/srv/kubeadm-repo"
PORT = 8080
KEY_UID = "kubeadm-real-tests stand-in repository <stand-in-repo@kubeadm-real-tests.invalid>"

WHY = (
    " A stand-in built by the kubeadm-cluster real-container tests (tests/real/kubeadm_repo):\n"
    " the Kubernetes community apt repository cannot be reached from the test machines, so\n"
    " install-kubeadm.sh installs this package instead. Its programs only record their\n"
    " arguments and print a version."
)

KUBELET_UNIT = """[Unit]
Description=kubelet stand-in from the kubeadm-cluster test repository (does nothing)
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class StandinPackage:
    name: str
    version: str
    summary: str
    programs: tuple[str, ...]
    depends: str = ""
    extra_files: dict[str, str] = field(default_factory=dict)


# Names and dependencies as in the community repository: kubeadm needs cri-tools and kubelet
# needs kubernetes-cni, so apt resolves them from this repository too.
PACKAGES = (
    StandinPackage("kubelet", PACKAGE_VERSION, "stand-in for the Kubernetes node agent",
                   ("/usr/bin/kubelet",), depends="kubernetes-cni (>= 1.4.0)",
                   extra_files={"/usr/lib/systemd/system/kubelet.service": KUBELET_UNIT}),
    StandinPackage("kubeadm", PACKAGE_VERSION, "stand-in for the Kubernetes cluster bootstrapper",
                   ("/usr/bin/kubeadm",), depends="cri-tools (>= 1.31.0)"),
    StandinPackage("kubectl", PACKAGE_VERSION, "stand-in for the Kubernetes command-line client",
                   ("/usr/bin/kubectl",)),
    StandinPackage("cri-tools", f"1.31.1-{DEB_REVISION}", "stand-in for crictl",
                   ("/usr/bin/crictl",)),
    StandinPackage("kubernetes-cni", f"1.5.1-{DEB_REVISION}", "stand-in for the CNI plugins",
                   ("/opt/cni/bin/loopback",)),
)  # fmt: skip


def _run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _require_tools() -> None:
    missing = {
        package
        for package, tool in (("dpkg-dev", "dpkg-scanpackages"), ("gpg", "gpg"))
        if shutil.which(tool) is None
    }
    if missing:
        if os.geteuid() != 0:
            raise machines.EngineUnavailable(
                f"building the stand-in apt repository needs {', '.join(sorted(missing))}"
            )
        machines._apt_install(sorted(missing))


def _build_deb(package: StandinPackage, pool: Path, work: Path) -> Path:
    root = work / package.name
    (root / "DEBIAN").mkdir(parents=True)
    upstream = package.version.split("-", 1)[0]
    template = STANDIN_TEMPLATE.read_text()
    for program in package.programs:
        path = root / program.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            template.replace("@PROGRAM@", Path(program).name)
            .replace("@PACKAGE@", package.name)
            .replace("@VERSION@", package.version)
            .replace("@UPSTREAM@", upstream)
        )
        path.chmod(0o755)
    for name, content in package.extra_files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o644)
    control = [
        f"Package: {package.name}",
        f"Version: {package.version}",
        "Architecture: all",
        "Maintainer: kubeadm-cluster tests <stand-in-repo@kubeadm-real-tests.invalid>",
        "Section: admin",
        "Priority: optional",
    ]
    if package.depends:
        control.append(f"Depends: {package.depends}")
    control.append(f"Description: {package.summary} (test stand-in)\n{WHY}")
    (root / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
    deb = pool / f"{package.name}_{package.version}_all.deb"
    _run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)])
    return deb


def _release(repo: Path) -> str:
    """A Release file covering the Packages indexes, as apt-ftparchive would write it."""
    lines = [
        "Origin: kubeadm-real-tests",
        "Label: stand-in for the Kubernetes community repository",
        "Date: " + datetime.datetime.now(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S UTC"),
    ]
    indexes = [repo / "Packages", repo / "Packages.gz"]
    for field_name, algorithm in (("MD5Sum", "md5"), ("SHA256", "sha256")):
        lines.append(f"{field_name}:")
        for index in indexes:
            data = index.read_bytes()
            digest = hashlib.new(algorithm, data).hexdigest()
            lines.append(f" {digest} {len(data)} {index.name}")
    return "\n".join(lines) + "\n"


def build(repo: Path) -> Path:
    """Build the signed repository in `repo` (an empty directory); returns Release.key's path."""
    _require_tools()
    pool = repo / "pool"
    pool.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="kubeadm-repo-") as tmp:
        work = Path(tmp)
        for package in PACKAGES:
            _build_deb(package, pool, work / "staging")
        packages = _run(["dpkg-scanpackages", "--multiversion", "pool", "/dev/null"], cwd=repo)
        (repo / "Packages").write_text(packages)
        (repo / "Packages.gz").write_bytes(gzip.compress(packages.encode(), mtime=0))
        (repo / "Release").write_text(_release(repo))

        # A throwaway key, in a keyring that lives only as long as this build.
        home = work / "gnupg"
        home.mkdir(mode=0o700)
        env = {**os.environ, "GNUPGHOME": str(home)}
        gpg = ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]
        try:
            _run([*gpg, "--quick-gen-key", KEY_UID, "ed25519", "sign", "1d"], env=env)
            key = repo / "Release.key"
            key.write_text(_run([*gpg, "--armor", "--export", KEY_UID], env=env))
            release = str(repo / "Release")
            _run([*gpg, "--clearsign", "-o", str(repo / "InRelease"), release], env=env)
            _run([*gpg, "--armor", "--detach-sign", "-o", release + ".gpg", release], env=env)
        finally:
            subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)
    return repo / "Release.key"


def dearmored_key(armored: Path) -> bytes:
    """The binary keyring `gpg --dearmor` makes of Release.key (what the script installs)."""
    done = subprocess.run(
        ["gpg", "--dearmor"], input=armored.read_bytes(), capture_output=True, check=True
    )
    return done.stdout


def serve(machine: Machine, repo: Path, wait_seconds: float = 30) -> str:
    """Copy the repository into `machine` and serve it on the machine's address; returns its URL."""
    machines.docker("cp", str(repo), f"{machine.name}:{REMOTE_DIR}")
    machines.docker(
        "exec", "-d", machine.name,
        "python3", "-m", "http.server", str(PORT), "--bind", machine.ip, "--directory", REMOTE_DIR,
    )  # fmt: skip
    url = f"http://{machine.ip}:{PORT}/"
    probe = f"import urllib.request; urllib.request.urlopen('{url}InRelease', timeout=5).read()"
    deadline = time.monotonic() + wait_seconds
    while machine.rc(f'python3 -c "{probe}"') != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stand-in repository at {url} did not answer")
        time.sleep(0.5)
    return url
