"""What the Docker engine's host must provide before kind-style node containers can boot.

Read once, when the program starts, before any resource is declared:

- Storage: on an engine whose storage driver is btrfs, zfs or devicemapper, or whose backing
  filesystem is btrfs, zfs or xfs, kubelet cannot find the device of its root filesystem
  unless the node sees the host's /dev/mapper; kind then mounts /dev/mapper into every node
  (kubernetes-sigs/kind, pkg/cluster/internal/providers/docker/util.go, `mountDevMapper`).
  This program does the same (`LocalHosts`).
- inotify: every node's systemd, journald, containerd, kubelet and pods hold inotify instances
  and watches, counted per user (root) across all containers on the host. Too few make nodes
  fail to boot or kubelet fail with "too many open files" (kind's known issues). The limits
  cannot be raised from here without changing the user's host, so the check stops with one
  line naming the setting and the command that raises it.

The sysctls are read from /proc only when the engine is this machine's (no DOCKER_HOST, or a
unix socket): a remote engine's limits are not visible here, and are then not checked.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

# kind's known-issues page recommends these values for hosts running many nodes.
INOTIFY_INSTANCES = "fs.inotify.max_user_instances"
INOTIFY_WATCHES = "fs.inotify.max_user_watches"
RECOMMENDED = {INOTIFY_INSTANCES: 512, INOTIFY_WATCHES: 524288}
# Per node: measured with `python -m benchmarks.inotify` (it counts each node container's
# inotify fds and their watches): a kind-style control plane held 12 instances and 307 watches
# 40 s after boot, Debian machine nodes with kubelet and flannel 15 and 190-295. The need is
# that, rounded up for nodes with more pods, times the nodes, plus room for the host's own
# root processes (about 11 instances on the measuring host).
PER_NODE = {INOTIFY_INSTANCES: 16, INOTIFY_WATCHES: 1024}
HOST_HEADROOM = {INOTIFY_INSTANCES: 32, INOTIFY_WATCHES: 8192}
DEV_MAPPER_DRIVERS = ("btrfs", "zfs", "devicemapper")
DEV_MAPPER_BACKING = ("btrfs", "zfs", "xfs")


class DockerHostError(pulumi.RunError):
    """The Docker engine's host cannot run the stack's node containers; one line says why."""


@dataclass(frozen=True)
class DockerHost:
    """What `docker info` and the host's /proc say: the storage driver and its backing
    filesystem (lowercase, "" when not reported), and the inotify sysctls (empty when the
    engine is not this machine's)."""

    storage_driver: str
    backing_filesystem: str = ""
    sysctls: Mapping[str, int] = field(default_factory=dict)

    @property
    def needs_dev_mapper(self) -> bool:
        """kind's rule: the node must see /dev/mapper to find its root filesystem's device."""
        return (self.storage_driver in DEV_MAPPER_DRIVERS
                or self.backing_filesystem in DEV_MAPPER_BACKING)


def inotify_need(nodes: int) -> dict[str, int]:
    return {name: PER_NODE[name] * nodes + HOST_HEADROOM[name] for name in PER_NODE}


def host_problems(host: DockerHost, nodes: int) -> list[str]:
    """One line per inotify limit below what `nodes` node containers need; [] when fine or
    when the limits were not readable."""
    problems = []
    for name, need in inotify_need(nodes).items():
        have = host.sysctls.get(name)
        if have is not None and have < need:
            target = max(need, RECOMMENDED[name])
            problems.append(
                f"the Docker host's {name} is {have}; {nodes} node container(s) need about "
                f"{need}: raise it with `sudo sysctl -w {name}={target}` (persist it in "
                f"/etc/sysctl.d/), then `pulumi up` again"
            )
    return problems


def check_docker_host(host: DockerHost, nodes: int) -> None:
    """DockerHostError listing every limit too low for `nodes` nodes, before anything is made."""
    problems = host_problems(host, nodes)
    if problems:
        raise DockerHostError("\n".join(problems))


Runner = Callable[[list[str]], str]


def _docker_info(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerHostError(f"the local target needs the Docker engine: `docker info` "
                              f"failed ({exc})") from exc
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise DockerHostError(f"the local target needs the Docker engine: `docker info` "
                              f"failed: {reason[0]}")
    return done.stdout


def engine_is_local(env: Mapping[str, str], provider_host: str | None) -> bool:
    """True when the engine is reached through a unix socket on this machine."""
    address = provider_host or env.get("DOCKER_HOST", "")
    return address == "" or address.startswith("unix://")


def read_sysctls(proc_sys: Path = Path("/proc/sys")) -> dict[str, int]:
    values = {}
    for name in PER_NODE:
        path = proc_sys / name.replace(".", "/")
        try:
            values[name] = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return values


def inspect_docker_host(run: Runner = _docker_info, env: Mapping[str, str] | None = None,
                        provider_host: str | None = None,
                        proc_sys: Path = Path("/proc/sys")) -> DockerHost:
    """The engine's storage (`docker info`: Driver, DriverStatus's "Backing Filesystem") and,
    for a local engine, the inotify sysctls. DockerHostError when `docker info` fails."""
    env = os.environ if env is None else env
    info = json.loads(run(["docker", "info", "--format", "{{json .}}"]) or "{}")
    driver = str(info.get("Driver") or "").lower()
    backing = ""
    for item in info.get("DriverStatus") or []:
        if len(item) == 2 and item[0] == "Backing Filesystem":
            backing = str(item[1]).lower()
    sysctls = read_sysctls(proc_sys) if engine_is_local(env, provider_host) else {}
    return DockerHost(driver, backing, sysctls)
