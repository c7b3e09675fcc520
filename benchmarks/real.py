"""Real bring-up, measured: the dev stack with the real Pulumi engine, next to `kind create
cluster` on the same locally built node image, in the same run.

    make tools && venv/bin/python -m benchmarks.real            # 3 rounds (about 15 minutes)
    venv/bin/python -m benchmarks.real --rounds 1 --json out.json

Each round, on this machine (not part of CI):
- this project: from a fresh stack, `pulumi up` start to the default app answering HTTP 200 at
  its exported URL; then the cost of each later step: scale the app 2 -> 4 (until 4 pods are
  Ready), roll out a new image tag, add a worker (until it is Ready), and `pulumi destroy`;
- kind: `kind create cluster --image <the same node image> --wait 10m` (kind's CLI built from
  its Go module), until its node is Ready, then `kind delete cluster`.
The table gives the median over the rounds, and every round's figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.project import APP_IMAGE_NEXT, E2E_DIR, E2EError, Workspace, node_image
from tests.e2e.traffic import answers

KIND_CLUSTER = "kc-bench"
# kind (v0.33.0) does not set failCgroupV1, so on a cgroup v1 host (this one) kubelet >= 1.35
# refuses to start in its nodes; this program's kind profile sets it (kubeadm-init.sh). The
# same one-line patch, given to kind through its own config, makes the comparison fair.
KIND_CGROUP_V1_CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
kubeadmConfigPatches:
  - |
    apiVersion: kubelet.config.k8s.io/v1beta1
    kind: KubeletConfiguration
    failCgroupV1: false
"""


def wait_until(check: Callable[[], bool], timeout: float = 600, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"not true within {timeout:.0f}s")


def ready_count(workspace: Workspace, what: str, selector: str = "") -> int:
    args = ["get", what, "-A", "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}"]
    if selector:
        args += ["-l", selector]
    out = workspace.kubectl(*args, check=False)
    return out.split().count("True")


def timed(step: Callable[[], object]) -> float:
    start = time.monotonic()
    step()
    return time.monotonic() - start


def project_round(workspace: Workspace) -> dict[str, float]:
    workspace.reset_stack_file()
    workspace.fresh_stack()
    figures: dict[str, float] = {}
    start = time.monotonic()
    workspace.up()
    url = next(iter(workspace.outputs()["apps"].values()))["url"]
    wait_until(lambda: answers(url))
    figures["bring-up"] = time.monotonic() - start
    workspace.write_kubeconfig()

    def scale() -> None:
        workspace.config_set("apps[0].replicas", "4")
        workspace.up()
        wait_until(lambda: ready_count(workspace, "pods", "app.kubernetes.io/name=nginx") >= 4)

    def roll_out() -> None:
        workspace.config_set("apps[0].image", APP_IMAGE_NEXT)
        workspace.up()

    def add_worker() -> None:
        workspace.config_set("workers", "1")
        workspace.up()
        wait_until(lambda: ready_count(workspace, "nodes") == 2)

    figures["scale 2->4"] = timed(scale)
    figures["roll out"] = timed(roll_out)
    figures["add a worker"] = timed(add_worker)
    figures["destroy"] = timed(lambda: workspace.pulumi("destroy", "--yes", "--skip-preview"))
    return figures


def kind_round(workspace: Workspace) -> dict[str, float]:
    def run(*args: str) -> None:
        workspace.run(["kind", *args], timeout=900)

    run("delete", "cluster", "--name", KIND_CLUSTER)
    create = ["create", "cluster", "--name", KIND_CLUSTER, "--image", node_image(), "--wait", "10m"]
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        config = E2E_DIR / "kind-cgroup-v1.yaml"
        config.write_text(KIND_CGROUP_V1_CONFIG)
        create += ["--config", str(config)]
    figures = {"bring-up": timed(lambda: run(*create))}
    figures["destroy"] = timed(lambda: run("delete", "cluster", "--name", KIND_CLUSTER))
    return figures


def table(results: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| tool | step | median (s) | rounds (s) |", "| --- | --- | --- | --- |"]
    for tool, rounds in results.items():
        for step in rounds[0]:
            values = [r[step] for r in rounds]
            lines.append(f"| {tool} | {step} | {statistics.median(values):.1f} | "
                         f"{', '.join(f'{v:.1f}' for v in values)} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    workspace = Workspace()
    workspace.check_tools()
    workspace.prepare()
    results: dict[str, list[dict[str, float]]] = {"this project (dev)": [], "kind": []}
    try:
        for number in range(1, args.rounds + 1):
            print(f"round {number}/{args.rounds}: this project", file=sys.stderr)
            results["this project (dev)"].append(project_round(workspace))
            print(f"round {number}/{args.rounds}: kind", file=sys.stderr)
            results["kind"].append(kind_round(workspace))
    except (E2EError, subprocess.SubprocessError, TimeoutError, OSError) as exc:
        print(f"error: benchmark round failed: {exc}", file=sys.stderr)
        return 1
    print(f"node image {node_image()}, {args.rounds} round(s), "
          f"{time.strftime('%Y-%m-%d')}\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
