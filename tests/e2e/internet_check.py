"""Checks the internet stand-in (tests/e2e/internet.py) from a Debian container, for real.

    venv/bin/python -m tests.e2e.internet_check [--cold] [--keep]

Makes a Docker network with a fixed subnet, starts the stand-in on its gateway, then a
kubeadm-cluster/debian:bookworm container on that network with the stand-in's --add-host
flags and its CA in the system trust store (ca-certificates, curl and Debian's containerd are
installed from Debian's mirror, which the container reaches), and shows through TLS checked
against that CA: github.com serves flannel's manifest, registry.k8s.io answers /v2/, and
containerd pulls every served image (kubeadm's, pause also under containerd's default
sandbox tag, flannel's ghcr.io images when the local engine has them, else a ghcr.io name of
this check's own). Then it stops and starts the
stand-in again and reports both start times. Images missing from the local engine are left
out of the registry (and named); so is an apt repository that is not built yet.

--cold empties the registry's storage first, so the first start pushes every image.
--keep leaves the network, the container and the stand-in running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.internet import (
    CONTAINERD_SANDBOX_IMAGE,
    REGISTRY_STORAGE,
    Image,
    InternetStandin,
    StandinError,
    default_files,
    default_images,
)

IMAGE = "kubeadm-cluster/debian:bookworm"
CA_PATH = "/usr/local/share/ca-certificates/kubeadm-cluster-e2e-ca.crt"
APT_URL = "https://pkgs.k8s.io/core:/stable:/v1.37/deb/"
KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
SOURCES = "/etc/apt/sources.list.d/kubernetes.list"
GHCR_CHECK_IMAGE = "ghcr.io/kubeadm-cluster/internet-check:1"
FLANNEL_URL = "https://github.com/flannel-io/flannel/releases/download/v0.27.4/kube-flannel.yml"


def sh(container: str, command: str, timeout: float = 600, stdin: str | None = None) -> str:
    done = subprocess.run(["docker", "exec", "-i", container, "bash", "-euo", "pipefail", "-c",
                           command], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: in {container}: `{command}` exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


def present(images: list[Image]) -> tuple[list[Image], list[str]]:
    have, missing = [], []
    for image in images:
        found = subprocess.run(["docker", "image", "inspect", image.source],
                               capture_output=True, check=False).returncode == 0
        if found:
            have.append(image)
        else:
            missing.append(image.source)
    return have, missing


def create_network(name: str) -> str:
    """A network on the first free 172.29.240-254.0/24; returns its gateway."""
    for third in range(240, 255):
        prefix = f"172.29.{third}"
        done = subprocess.run(["docker", "network", "create", "--subnet", f"{prefix}.0/24",
                               "--gateway", f"{prefix}.1", name],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return f"{prefix}.1"
    raise SystemExit(f"error: no free /24 for the network: {done.stderr.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty the registry storage first")
    parser.add_argument("--keep", action="store_true", help="leave everything running")
    args = parser.parse_args()

    images, missing = present(default_images())
    if missing:
        print(f"not in the local engine, not served: {', '.join(missing)}")
    if not any(image.host == "ghcr.io" for image in images):
        # Still show a pull from ghcr.io: kubeadm's pause under a name of this check's own.
        pause = next(image.source for image in images if "/pause:" in image.name)
        images.append(Image(GHCR_CHECK_IMAGE, pause))
        print(f"no ghcr.io image in the local engine: serving {pause} as {GHCR_CHECK_IMAGE}")
    files = default_files()
    placeholder = None
    if not files["pkgs.k8s.io"].is_dir():
        print(f"no apt repository at {files['pkgs.k8s.io']}: pkgs.k8s.io serves an empty folder")
        placeholder = tempfile.mkdtemp(prefix="kc-apt-placeholder-")
        files["pkgs.k8s.io"] = Path(placeholder)
    if args.cold:
        shutil.rmtree(REGISTRY_STORAGE, ignore_errors=True)

    name = f"kc-internet-check-{os.getpid()}"
    gateway = create_network(name)
    standin = InternetStandin(gateway, images=images, files=files)
    container = ""
    try:
        standin.start()
        print(f"stand-in on {gateway}:443, first start: {standin.timings} "
              f"({len(standin.pushed)} pushed, {len(standin.skipped)} already there)")
        standin.stop()
        standin = InternetStandin(gateway, images=images, files=files)
        standin.start()
        print(f"second start: {standin.timings} "
              f"({len(standin.pushed)} pushed, {len(standin.skipped)} already there)")

        container = name
        subprocess.run(["docker", "run", "-d", "--name", container, "--network", name,
                        "--privileged", *standin.add_host_flags(), IMAGE, "sleep", "infinity"],
                       capture_output=True, check=True)
        start = time.monotonic()
        sh(container, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
                      "apt-get install -y -q --no-install-recommends ca-certificates curl gpg "
                      "containerd >/dev/null", timeout=900)
        print(f"apt-get install ca-certificates curl gpg containerd: "
              f"{time.monotonic() - start:.0f}s")
        sh(container, "containerd >/var/log/containerd.log 2>&1 & "
                      "for _ in $(seq 50); do ctr version >/dev/null 2>&1 && exit 0; "
                      "sleep 0.2; done; tail /var/log/containerd.log; exit 1")
        # Before the CA is trusted, TLS verification must refuse the stand-in.
        print("before the CA is trusted, curl:",
              sh(container, "{ curl -sS https://registry.k8s.io/v2/ 2>&1 || true; } | "
                            "head -1").strip())
        print("before the CA is trusted, ctr:",
              sh(container, "{ ctr -n k8s.io images pull registry.k8s.io/pause:3.10.2 2>&1 "
                            "|| true; } | tail -1").strip())
        sh(container, f"cat > {CA_PATH} && update-ca-certificates >/dev/null",
           stdin=standin.ca_pem())
        print("machine trusts the test CA:", sh(container, f"ls -l /etc/ssl/certs | grep -c "
                                                           f"{Path(CA_PATH).stem}").strip())

        manifest = sh(container, f"curl -fsSL {FLANNEL_URL}")
        assert "kind: DaemonSet" in manifest, manifest[:500]
        print(f"curl {FLANNEL_URL}: {len(manifest)} bytes, "
              f"{sum('image:' in line for line in manifest.splitlines())} image lines")
        print("curl https://registry.k8s.io/v2/:",
              sh(container, "curl -fsS -w ' HTTP %{http_code}' https://registry.k8s.io/v2/"))
        print("curl https://ghcr.io/v2/:",
              sh(container, "curl -fsS -w ' HTTP %{http_code}' https://ghcr.io/v2/"))
        print("a file nobody stood in for:",
              sh(container, "curl -sS https://github.com/nothing -w ' HTTP %{http_code}'"))
        if placeholder is None:
            # apt over TLS, as install-kubeadm.sh sets it up: the key, the source, a download.
            start = time.monotonic()
            print(f"apt from {APT_URL}:", sh(container, f"""
                mkdir -p /etc/apt/keyrings
                curl -fsSL {APT_URL}Release.key | gpg --batch --yes --dearmor -o {KEYRING}
                echo 'deb [signed-by={KEYRING}] {APT_URL} /' > {SOURCES}
                apt-get update -q -o Dir::Etc::sourcelist={SOURCES} \\
                  -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >/dev/null
                cd /tmp && apt-get download -q kubeadm >/dev/null
                echo "$(apt-cache madison kubeadm | head -1 | tr -s ' ')," $(ls /tmp/*.deb)
                """).strip(), f"({time.monotonic() - start:.1f}s)")
        sandbox = sh(container, "containerd config default | grep sandbox_image").strip()
        print(f"this containerd's default {sandbox}")
        assert f'"{CONTAINERD_SANDBOX_IMAGE}"' in sandbox, "internet.py's CONTAINERD_SANDBOX_IMAGE"
        for ref in [image.name for image in images]:
            start = time.monotonic()
            sh(container, f"ctr -n k8s.io images pull {ref} >/dev/null", timeout=300)
            print(f"ctr -n k8s.io images pull {ref}: ok in {time.monotonic() - start:.1f}s")
        print(sh(container, "ctr -n k8s.io images ls -q"))
        return 0
    except StandinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            if container:
                subprocess.run(["docker", "rm", "-f", container], capture_output=True,
                               check=False)
            standin.stop()
            subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)
            if placeholder:
                shutil.rmtree(placeholder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
