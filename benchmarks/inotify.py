"""inotify instances and watches held by each running node container (run as root on the
Docker host, not part of CI): the figures behind components/targets/docker_host.py PER_NODE.

    venv/bin/python -m benchmarks.inotify                       # every kubeadm-cluster node
    venv/bin/python -m benchmarks.inotify kubeadm-dev-master    # named containers

A container's processes are those in its init's PID namespace. An inotify instance is an fd
whose link reads `anon_inode:inotify`; its watches are the `inotify wd:` lines of its fdinfo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from components.targets.local import LABEL_CLUSTER

PROC = Path("/proc")


def pid_namespace(pid: str) -> str | None:
    try:
        return os.readlink(PROC / pid / "ns" / "pid")
    except OSError:
        return None


def count(namespace: str) -> tuple[int, int]:
    """(instances, watches) of every process in PID namespace `namespace`."""
    instances = watches = 0
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or pid_namespace(entry.name) != namespace:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) != "anon_inode:inotify":
                    continue
                info = (entry / "fdinfo" / fd.name).read_text()
            except OSError:
                continue
            instances += 1
            watches += sum(1 for line in info.splitlines() if line.startswith("inotify wd:"))
    return instances, watches


def containers(names: list[str]) -> list[str]:
    if names:
        return names
    out = subprocess.run(["docker", "ps", "--filter", f"label={LABEL_CLUSTER}",
                          "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return sorted(out.stdout.split())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("containers", nargs="*")
    args = parser.parse_args(argv)
    names = containers(args.containers)
    if not names:
        print("error: no running node container (label kubeadm-cluster.cluster)", file=sys.stderr)
        return 1
    print(f"{'container':32} {'instances':>9} {'watches':>8}")
    for name in names:
        pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name],
                             capture_output=True, text=True, check=True).stdout.strip()
        namespace = pid_namespace(pid)
        if namespace is None:
            print(f"error: cannot read the PID namespace of {name} (run as root)",
                  file=sys.stderr)
            return 1
        instances, watches = count(namespace)
        print(f"{name:32} {instances:>9} {watches:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
