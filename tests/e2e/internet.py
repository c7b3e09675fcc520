"""The internet, as far as the machines target's node scripts need it, for the e2e's machines.

The e2e runs the product's node scripts (components/scripts/*.sh), unchanged, on Debian machine
containers. Those scripts, and the programs they install, reach four sites this test machine
cannot reach:

- https://pkgs.k8s.io/core:/stable:/v1.NN/deb/ — install-kubeadm.sh's apt repository for
  kubelet, kubeadm and kubectl (and its Release.key);
- https://github.com/flannel-io/flannel/releases/download/VERSION/kube-flannel.yml —
  kubeadm-init.sh's pod network manifest;
- registry.k8s.io — the images kubeadm names (install-runtime.sh gives containerd kubeadm's
  pause image as its sandbox image, so containerd's own default, pause:3.6 in Debian bookworm's
  1.6.20, is deliberately not served: a regression fails the pulls);
- ghcr.io — flannel's images, which that manifest names.

`InternetStandin` stands in for all four on one address, the machines' Docker network
gateway, port 443: a registry (`toolchain/registry.sh`, distribution's cmd/registry) on
127.0.0.1 holds the images, pushed from the local Docker engine under the names the machines
pull, and `toolchain/internet-standin` serves TLS for every name, proxying the registry API
for the registry hosts and static files for the others. Its certificate is signed by a test CA
(`toolchain/test-ca.sh`); the machines trust that CA as machines behind a corporate TLS proxy
trust the proxy's (in /usr/local/share/ca-certificates, then `update-ca-certificates`), which
apt, curl and containerd all read, and map each name to the gateway with `--add-host`.

    standin = InternetStandin("172.28.5.1")  # default: the e2e machines' network gateway
    standin.start()                          # build, registry, pushes, TLS server
    standin.ca_pem()                         # "-----BEGIN CERTIFICATE-----\n..."
    standin.add_hosts()                      # ["ghcr.io:172.28.5.1", "github.com:172.28.5.1", ...]
    standin.add_host_flags()                 # ["--add-host", "ghcr.io:172.28.5.1", ...]
    standin.check()                          # TLS GET registry.k8s.io/v2/ through the gateway
    standin.stop()

The network may be made after `start()` (the stand-in binds its gateway address before it
exists; `start()` checks it over TLS only if it exists, `check()` does later). Images of other
registry hosts can be added (`extra_images`, such as an app image under registry.e2e.test, a
name of the reserved .test domain): every image's host is served as a registry host and named
in the certificate.

It is also a context manager. Its processes' pid files and logs are in `state_dir`; `start()`
first ends the processes an earlier, crashed run left there (only those, by pid, and only if
the pid still runs our binary). The registry's storage is kept in $KC_CACHE, so a warm start
pushes nothing: an image whose manifest in the registry already points at the local image's
config (same image ID) is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.e2e.project import E2E_DIR, ROOT, toolchain_versions

TOOLCHAIN = ROOT / "toolchain"
KC_CACHE = Path(os.environ.get("KC_CACHE", "/var/cache/kubeadm-cluster"))
REGISTRY_BIN = KC_CACHE / "registry" / "bin" / "registry"
STANDIN_BIN = KC_CACHE / "internet-standin" / "bin" / "internet-standin"
# internet-standin.sh puts github.com's one file (flannel's manifest) here.
GITHUB_SITE = KC_CACHE / "internet-standin" / "sites" / "github.com"
CA_CERT = KC_CACHE / "test-ca" / "ca.crt"
REGISTRY_STORAGE = KC_CACHE / "internet-registry"
STATE_DIR = E2E_DIR / "internet"

# Hosts whose /v2/ is the registry even when no served image names them (the host of every
# served image is one too); every other stand-in host serves files.
REGISTRY_HOSTS = ("registry.k8s.io", "ghcr.io")
# What Debian bookworm's containerd (1.6.20) names as `sandbox_image` in `containerd config
# default`; not served (see the module docstring).
CONTAINERD_SANDBOX_IMAGE = "registry.k8s.io/pause:3.6"
# Pushes at once: the engine compresses each image's layers while it pushes, so a cold start
# is bound by CPU; a few at once keep both cores of a small machine busy.
PUSH_WORKERS = 3
# HOST/PATH:TAG, HOST a DNS name with a dot (one without would be Docker Hub's PATH).
IMAGE_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+/[a-z0-9._/-]+:[\w.-]+")
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


class StandinError(Exception):
    """The stand-in could not be built or started; the message says which part and why."""


@dataclass(frozen=True)
class Image:
    """One image the machines pull: `name` (HOST/PATH:TAG), served from the local engine's
    image `source` (usually the same name)."""

    name: str
    source: str

    @property
    def host(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def repository(self) -> str:
        """The repository in the registry: the host, then the path (as the stand-in maps it)."""
        return self.name.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.name.rpartition(":")[2]


def kubernetes_version() -> str:
    return toolchain_versions()["KUBERNETES_VERSION"]


def flannel_manifest() -> Path:
    version = toolchain_versions()["FLANNEL_VERSION"]
    return GITHUB_SITE / "flannel-io/flannel/releases/download" / version / "kube-flannel.yml"


def kubeadm_images(version: str) -> list[str]:
    """What `kubeadm config images list` names for `version`, with that version's kubeadm."""
    kubeadm = KC_CACHE / f"kubernetes-{version}" / "bin" / "kubeadm"
    if not kubeadm.exists():
        raise StandinError(f"{kubeadm} is not built: run `make tools` (toolchain/build.sh)")
    listed = _run([str(kubeadm), "config", "images", "list", "--kubernetes-version", version],
                  "kubeadm config images list").split()
    if not any(name.startswith("registry.k8s.io/pause:") for name in listed):
        raise StandinError(f"kubeadm {version} lists no registry.k8s.io/pause image")
    return listed


def default_images() -> list[Image]:
    """Every image a machines cluster pulls, each served under its own name from the local
    image of that name: kubeadm's list for KUBERNETES_VERSION and for
    PREVIOUS_KUBERNETES_VERSION (the minor an upgrade starts from), and the images flannel's
    manifest names (built first: `toolchain/build.sh`, or `InternetStandin.build()`)."""
    versions = toolchain_versions()
    listed = kubeadm_images(versions["KUBERNETES_VERSION"])
    listed += kubeadm_images(versions["PREVIOUS_KUBERNETES_VERSION"])
    manifest = flannel_manifest()
    if not manifest.exists():
        raise StandinError(f"{manifest} is missing: run toolchain/internet-standin.sh")
    flannel = re.findall(r"(?m)^\s*image:\s*(\S+)\s*$", manifest.read_text())
    return [Image(name, name) for name in dict.fromkeys([*listed, *flannel])]


def default_files() -> dict[str, Path]:
    """Host -> directory served for it: as pkgs.k8s.io, the root toolchain/build.sh makes with
    both minors' apt repositories (`core:/stable:/v1.NN/deb/...` for PREVIOUS_KUBERNETES_VERSION
    and KUBERNETES_VERSION, kubernetes-apt-root.sh); as github.com, the tree
    internet-standin.sh makes."""
    versions = toolchain_versions()
    both = f"{versions['PREVIOUS_KUBERNETES_VERSION']}+{versions['KUBERNETES_VERSION']}"
    return {
        "pkgs.k8s.io": KC_CACHE / f"apt-repos-{both}",
        "github.com": GITHUB_SITE,
    }


def machines_gateway() -> str:
    """The gateway of the e2e machines' Docker network (tests/e2e/fleet.py)."""
    from tests.e2e.fleet import SUBNET_PREFIX

    return f"{SUBNET_PREFIX}.1"


@dataclass
class InternetStandin:
    """The stand-in on `gateway_ip`:443; see the module docstring.

    gateway_ip: the machines' network gateway (default `machines_gateway()`); the network may
        be made after `start()`, and made again while the stand-in runs.
    images: what the registry serves (default `default_images()`), and extra_images more of
        them as {name: local source}, such as {"registry.e2e.test/kubeadm-cluster/nginx:1.0":
        "kubeadm-cluster/nginx:1.0"}; every source must be in the local engine, and every
        image's host is served as a registry host. files: host -> directory (default
        `default_files()`).
    After `start()`, `timings` holds seconds per phase ("build", "registry", "push",
    "server") and `pushed` / `skipped` the image names pushed and already there.
    """

    gateway_ip: str = ""
    images: Sequence[Image] | None = None
    extra_images: Mapping[str, str] | None = None
    files: Mapping[str, Path] | None = None
    state_dir: Path = STATE_DIR
    port: int = 443
    timings: dict[str, float] = field(default_factory=dict, init=False)
    pushed: list[str] = field(default_factory=list, init=False)
    skipped: list[str] = field(default_factory=list, init=False)
    registry_port: int = field(default=0, init=False)
    _images: list[Image] | None = field(default=None, init=False, repr=False)
    _server_dir: Path | None = field(default=None, init=False, repr=False)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False,
                                                         repr=False)

    def __post_init__(self) -> None:
        self.gateway_ip = self.gateway_ip or machines_gateway()
        ipaddress.IPv4Address(self.gateway_ip)

    # -- what the machines get ----------------------------------------------------------

    def served_images(self) -> list[Image]:
        """`images` (or the default list) and `extra_images`, checked for their form."""
        if self._images is None:
            images = list(self.images if self.images is not None else default_images())
            images += [Image(name, source) for name, source in (self.extra_images or {}).items()]
            bad = [i.name for i in images if not IMAGE_NAME.fullmatch(i.name)]
            if bad:
                raise StandinError(f"image names not of the form HOST/PATH:TAG: {bad}")
            self._images = images
        return self._images

    def registry_hosts(self) -> list[str]:
        """REGISTRY_HOSTS and the host of every served image."""
        return sorted({*REGISTRY_HOSTS, *(image.host for image in self.served_images())})

    def hosts(self) -> list[str]:
        """Every host name served: the registry hosts and the file hosts."""
        return sorted({*self.registry_hosts(), *self._files()})

    def add_hosts(self) -> list[str]:
        """`NAME:IP` for every served name (`docker run --add-host NAME:IP`)."""
        return [f"{host}:{self.gateway_ip}" for host in self.hosts()]

    def add_host_flags(self) -> list[str]:
        """The `docker run` flags of `add_hosts()`."""
        return [word for entry in self.add_hosts() for word in ("--add-host", entry)]

    def ca_pem(self) -> str:
        """The test CA's certificate (PEM), for each machine's trust store."""
        return CA_CERT.read_text()

    # -- lifecycle ------------------------------------------------------------------------

    def build(self) -> None:
        """Build the registry and the stand-in and make the CA and the server certificate for
        every served name (each a no-op when cached)."""
        _run([str(TOOLCHAIN / "registry.sh")], "toolchain/registry.sh")
        _run([str(TOOLCHAIN / "internet-standin.sh")], "toolchain/internet-standin.sh")
        out = _run([str(TOOLCHAIN / "test-ca.sh"), *self.hosts()], "toolchain/test-ca.sh")
        self._server_dir = Path(out.strip().splitlines()[-1])

    def start(self) -> InternetStandin:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stop_recorded()
        try:
            with self._phase("build"):
                self.build()
                images = self.served_images()
                self._check_sources(images)
                files = self._files()
                missing = [f"{host}={path}" for host, path in files.items() if not path.is_dir()]
                if missing:
                    raise StandinError(f"no directory to serve for {', '.join(missing)}")
            with self._phase("registry"):
                self._start_registry()
            with (
                self._phase("push"),
                _locked(KC_CACHE / "locks" / "internet-registry.lock"),
                ThreadPoolExecutor(PUSH_WORKERS) as pool,
            ):
                list(pool.map(self._push, images))
            with self._phase("server"):
                self._start_server(files)
        except BaseException:
            self.stop()
            raise
        return self

    def check(self) -> None:
        """GET https://registry.k8s.io/v2/ through the gateway, checking the certificate
        against the test CA as a machine does; raise StandinError unless it answers 200.
        `start()` does this itself when the gateway address exists already."""
        try:
            status, body = self.get("registry.k8s.io", "/v2/")
        except OSError as exc:
            raise StandinError(f"the internet stand-in on {self.gateway_ip}:{self.port}: "
                               f"{exc}") from exc
        if status != 200:
            raise StandinError(f"the internet stand-in answered {status} for "
                               f"registry.k8s.io/v2/: {body[:200]!r}")

    def stop(self) -> None:
        """End the processes this run started, and any a crashed run recorded."""
        for name, proc in list(self._procs.items()):
            _end(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            (self.state_dir / f"{name}.pid").unlink(missing_ok=True)
        self._procs.clear()
        self._stop_recorded()

    def __enter__(self) -> InternetStandin:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- parts ----------------------------------------------------------------------------

    def _files(self) -> dict[str, Path]:
        files = dict(self.files if self.files is not None else default_files())
        both = set(files) & {*REGISTRY_HOSTS, *(i.host for i in self.served_images())}
        if both:
            raise StandinError(f"{', '.join(sorted(both))}: a registry host cannot serve files")
        return files

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.timings[name] = round(time.monotonic() - start, 1)

    def _stop_recorded(self) -> None:
        """End the processes named by pid files in state_dir that still run our binaries."""
        for name, binary in (("registry", REGISTRY_BIN), ("standin", STANDIN_BIN)):
            pid_file = self.state_dir / f"{name}.pid"
            if not pid_file.exists():
                continue
            text = pid_file.read_text().strip()
            if text.isdigit() and _runs(int(text), binary):
                _end(int(text))
            pid_file.unlink(missing_ok=True)

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        log = self.state_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=dict(env),
                                    start_new_session=True)
        self._procs[name] = proc
        (self.state_dir / f"{name}.pid").write_text(f"{proc.pid}\n")

    def _exited(self, name: str) -> str | None:
        """None while the process runs; else its exit code and its log's tail."""
        code = self._procs[name].poll()
        if code is None:
            return None
        log = self.state_dir / f"{name}.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        return f"exited {code} (log {log}): " + " | ".join(tail)

    def _start_registry(self) -> None:
        REGISTRY_STORAGE.mkdir(parents=True, exist_ok=True)
        self.registry_port = _free_port()
        config = self.state_dir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  formatter: text\n"
            f"storage:\n  filesystem:\n    rootdirectory: {REGISTRY_STORAGE}\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{self.registry_port}\n"
        )
        # No REGISTRY_* variable of ours may override the config; no trace exporter.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        env["OTEL_TRACES_EXPORTER"] = "none"
        self._spawn("registry", [str(REGISTRY_BIN), "serve", str(config)], env)
        deadline = time.monotonic() + 30
        while True:
            if (why := self._exited("registry")) is not None:
                raise StandinError(f"the registry {why}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{self.registry_port}/v2/"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise StandinError(f"the registry did not answer {url} within 30s")
            time.sleep(0.2)

    def _check_sources(self, images: Sequence[Image]) -> None:
        sources = sorted({image.source for image in images})
        done = _docker("image", "inspect", "-f", "{{.Id}}", *sources, check=False)
        if done.returncode != 0:
            missing = [s for s in sources
                       if _docker("image", "inspect", s, check=False).returncode != 0]
            raise StandinError(f"not in the local Docker engine: {', '.join(missing)}")

    def _registry_has(self, image: Image, image_id: str) -> bool:
        """True when the registry's manifest for the image is the local image (its config
        digest, or for an engine with the containerd image store, its own digest)."""
        url = (f"http://127.0.0.1:{self.registry_port}/v2/{image.repository}"
               f"/manifests/{image.tag}")
        request = urllib.request.Request(url, headers={"Accept": ", ".join(MANIFEST_TYPES)})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                digest = response.headers.get("Docker-Content-Digest", "")
                manifest = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise StandinError(f"the registry answered {exc.code} for {url}") from exc
        return image_id in (digest, manifest.get("config", {}).get("digest"))

    def _push(self, image: Image) -> None:
        image_id = _docker("image", "inspect", "-f", "{{.Id}}", image.source).stdout.strip()
        if self._registry_has(image, image_id):
            self.skipped.append(image.name)
            return
        local = f"127.0.0.1:{self.registry_port}/{image.repository}:{image.tag}"
        _docker("tag", image.source, local)
        try:
            _docker("push", "-q", local, timeout=900)
        finally:
            _docker("image", "rm", local, check=False)
        self.pushed.append(image.name)

    def _start_server(self, files: Mapping[str, Path]) -> None:
        assert self._server_dir is not None
        argv = [
            str(STANDIN_BIN), "-listen", f"{self.gateway_ip}:{self.port}",
            "-cert", str(self._server_dir / "tls.crt"), "-key", str(self._server_dir / "tls.key"),
            "-registry", f"127.0.0.1:{self.registry_port}",
        ]  # fmt: skip
        for host in self.registry_hosts():
            argv += ["-registry-host", host]
        for host, path in sorted(files.items()):
            argv += ["-files", f"{host}={path}"]
        log = self.state_dir / "standin.log"
        offset = log.stat().st_size if log.exists() else 0
        self._spawn("standin", argv, os.environ)
        # It listens once it logs "serving on"; it answers over TLS once the address exists.
        deadline = time.monotonic() + 30
        while True:
            if (why := self._exited("standin")) is not None:
                raise StandinError(f"the internet stand-in {why}")
            with log.open("rb") as handle:
                handle.seek(offset)
                if b" serving on " in handle.read():
                    break
            if time.monotonic() > deadline:
                raise StandinError(f"the internet stand-in did not listen on "
                                   f"{self.gateway_ip}:{self.port} within 30s (log {log})")
            time.sleep(0.1)
        if _is_local(self.gateway_ip):
            self.check()

    def get(self, host: str, path: str) -> tuple[int, bytes]:
        """GET https://HOST/PATH from the stand-in, checking its certificate against the
        test CA as a machine would; (status, body). Raises OSError when it cannot connect."""
        context = ssl.create_default_context(cafile=str(CA_CERT))
        with (
            socket.create_connection((self.gateway_ip, self.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                        .encode())
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body


# -- helpers ----------------------------------------------------------------------------------


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    if shutil.which("go") is None:
        env["PATH"] = f"{env.get('PATH', '/usr/bin:/bin')}:/usr/local/go/bin"
    return env


def _run(argv: list[str], what: str, timeout: float = 1800) -> str:
    """Run a command; on failure raise StandinError with its last `error:` (or any) line."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=_script_env(), check=False)
    except subprocess.TimeoutExpired as exc:
        raise StandinError(f"{what} did not finish within {timeout:.0f}s") from exc
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""]
        errors = [line for line in lines if line.startswith("error:")]
        raise StandinError(f"{what} exited {done.returncode}: {(errors or lines)[-1]}")
    return done.stdout


def _docker(*args: str, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and done.returncode != 0:
        raise StandinError(f"`docker {' '.join(args)}` exited {done.returncode}: "
                           f"{done.stderr.strip()}")
    return done


def _is_local(ip: str) -> bool:
    """True when `ip` is an address of this host (its Docker network exists)."""
    with socket.socket() as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _runs(pid: int, binary: Path) -> bool:
    """True when process `pid` runs `binary` (also after the binary was rebuilt)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return exe.removesuffix(" (deleted)") == str(binary.resolve())


def _end(pid: int, wait: float = 5) -> None:
    """SIGTERM one process, SIGKILL it if it is still there after `wait` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            # Reap it if it is our child; then a zombie does not count as running.
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
