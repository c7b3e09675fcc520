"""Real bring-up of the machines target, measured: 1 control plane + N workers, N = 1..4, in one
run on this machine (not part of CI).

    make tools && venv/bin/python -m benchmarks.machines                # N = 1, 2, 3, 4
    venv/bin/python -m benchmarks.machines --workers 2 --json out.json

Each round starts from fresh machine containers (tests/e2e/fleet.py: Debian bookworm, systemd,
sshd, nothing of Kubernetes) and a fresh stack, and times `pulumi up` until the default app
answers HTTP 200 at its exported URL. That covers everything after "the instances exist" on
EC2: SSH with pinned host keys, preflight, Docker Engine and containerd from Debian's mirror
(downloaded each round, as on a fresh machine), the kubeadm packages from the local signed apt
repository, kubeadm init, flannel, the joins and the readiness gate. Booting the machine
containers is not counted (on EC2 that is the instances' launch). Then `pulumi destroy`
(drain, then reset every machine) is timed too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.real import wait_until
from tests.e2e.fleet import APP_REGISTRY_IMAGE, Fleet, machines_stack_file, set_login_key
from tests.e2e.internet import InternetStandin
from tests.e2e.project import APP_IMAGE, E2E_DIR, Workspace
from tests.e2e.traffic import answers

STACK = "machines"
CLUSTER = "kubeadm-machines"


def one_round(internet: InternetStandin, workers: int) -> dict[str, float]:
    fleet = Fleet(E2E_DIR / "machines", internet.add_hosts(), internet.ca_pem())
    fleet.prepare()
    try:
        control_plane = fleet.start(f"{CLUSTER}-master", 0)
        nodes = [fleet.start(f"{CLUSTER}-worker-{i}", i + 1) for i in range(workers)]
        workspace = Workspace(
            STACK, lambda: machines_stack_file(control_plane, nodes, APP_REGISTRY_IMAGE)
        )
        workspace.check_tools()
        workspace.prepare()
        workspace.fresh_stack()
        set_login_key(workspace, fleet)
        start = time.monotonic()
        workspace.up()
        url = next(iter(workspace.outputs()["apps"].values()))["url"]
        wait_until(lambda: answers(url), timeout=600)
        up = time.monotonic() - start
        destroy = workspace.pulumi("destroy", "--yes", "--skip-preview").seconds
        return {"workers": workers, "bring_up": up, "destroy": destroy}
    finally:
        fleet.remove_all()


def table(rows: list[dict[str, float]]) -> str:
    lines = ["| nodes | `pulumi up` until the app answers | `pulumi destroy` (drain + reset) |",
             "|---|---|---|"]
    for row in rows:
        lines.append(f"| 1 + {row['workers']:.0f} | {row['bring_up']:.1f} s | "
                     f"{row['destroy']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,3,4",
                        help="comma-separated worker counts, one round each (default 1,2,3,4)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    with InternetStandin(extra_images={APP_REGISTRY_IMAGE: APP_IMAGE}) as internet:
        for workers in counts:
            row = one_round(internet, workers)
            print(f"1 + {workers} workers: up {row['bring_up']:.1f} s, "
                  f"destroy {row['destroy']:.1f} s", file=sys.stderr, flush=True)
            rows.append(row)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
