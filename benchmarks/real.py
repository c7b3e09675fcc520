"""Real bring-up, measured: the dev stack with the real Pulumi engine, next to `kind create
cluster` on the same locally built node image, in the same run.

    make tools && venv/bin/python -m benchmarks.real            # 3 rounds (about 15 minutes)
    venv/bin/python -m benchmarks.real --rounds 1 --json out.json
    venv/bin/python -m benchmarks.real --rounds 1 --ha           # 3 control planes + 1 worker

Each round, on this machine (not part of CI):
- this project: from a fresh stack, `pulumi up` start to the default app answering HTTP 200 at
  its exported URL; then the cost of each later step: scale the app 2 -> 4 (until 4 pods are
  Ready), roll out a new image tag, add a worker (until it is Ready), and `pulumi destroy`;
- kind: `kind create cluster --image <the same node image> --wait 10m` (kind's CLI built from
  its Go module), until its node is Ready, then `kind delete cluster`.
With --ha each round instead brings up 1 control-plane node + 1 worker and 3 control-plane
nodes + 1 worker with this project (controlPlaneNodes 3, workers 1, until the app answers and
every node is Ready), and kind's 1 + 1 (a config with a control-plane node and a worker,
`--wait 10m`), then destroys each. kind's several-control-plane clusters put its external load
balancer, docker.io/envoyproxy/envoy (KIND_HA_SHAPES), in front; that image cannot be built
here (Envoy is C++ built with Bazel, no Go module) and no registry is reachable, so kind's
3 + 1 runs only where it can be pulled: --kind-ha.
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
# kind's several-control-plane shape; its load balancer is kind v0.33's Envoy image.
KIND_HA_SHAPES = ((3, 1),)
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


def project_ha_round(workspace: Workspace) -> dict[str, float]:
    figures: dict[str, float] = {}
    for planes in (1, 3):
        workspace.reset_stack_file()
        workspace.fresh_stack()
        workspace.config_set("workers", "1")
        workspace.config_set("controlPlaneNodes", str(planes))
        start = time.monotonic()
        workspace.up()
        url = next(iter(workspace.outputs()["apps"].values()))["url"]
        workspace.write_kubeconfig()
        nodes = planes + 1
        wait_until(lambda url=url, nodes=nodes: answers(url)  # type: ignore[misc]
                   and ready_count(workspace, "nodes") == nodes)
        figures[f"bring-up, {planes} control plane + 1 worker"] = time.monotonic() - start
        workspace.pulumi("destroy", "--yes", "--skip-preview")
    return figures


def kind_config(control_planes: int = 1, workers: int = 0) -> str:
    """kind's cluster config: the nodes, and on a cgroup v1 host failCgroupV1: false."""
    text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n"
    text += "  - role: control-plane\n" * control_planes + "  - role: worker\n" * workers
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        text += KIND_CGROUP_V1_CONFIG.split("\n", 2)[2]
    return text


def kind_round(workspace: Workspace, shapes: tuple[tuple[int, int], ...] = ((1, 0),)
               ) -> dict[str, float]:
    """`kind create cluster` for each (control planes, workers) shape, then its deletion."""
    def run(*args: str) -> None:
        workspace.run(["kind", *args], timeout=900)

    figures = {}
    for control_planes, workers in shapes:
        run("delete", "cluster", "--name", KIND_CLUSTER)
        config = E2E_DIR / "kind-config.yaml"
        config.write_text(kind_config(control_planes, workers))
        create = ["create", "cluster", "--name", KIND_CLUSTER, "--image", node_image(),
                  "--wait", "10m", "--config", str(config)]
        label = "bring-up" if (control_planes, workers) == (1, 0) else (
            f"bring-up, {control_planes} control plane + {workers} worker")
        figures[label] = timed(lambda create=create: run(*create))  # type: ignore[misc]
        figures["destroy" if label == "bring-up" else f"destroy, {control_planes} control "
                f"plane + {workers} worker"] = timed(
            lambda: run("delete", "cluster", "--name", KIND_CLUSTER))
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
    parser.add_argument("--ha", action="store_true",
                        help="1 vs 3 control-plane nodes (+ 1 worker)")
    parser.add_argument("--kind-ha", action="store_true",
                        help="with --ha, kind's 3 + 1 too (needs kind's Envoy image)")
    args = parser.parse_args(argv)

    workspace = Workspace()
    workspace.check_tools()
    workspace.prepare()
    results: dict[str, list[dict[str, float]]] = {"this project (dev)": [], "kind": []}
    try:
        for number in range(1, args.rounds + 1):
            print(f"round {number}/{args.rounds}: this project", file=sys.stderr)
            results["this project (dev)"].append(
                project_ha_round(workspace) if args.ha else project_round(workspace))
            print(f"round {number}/{args.rounds}: kind", file=sys.stderr)
            shapes: tuple[tuple[int, int], ...] = ((1, 0),)
            if args.ha:
                shapes = ((1, 1), *KIND_HA_SHAPES) if args.kind_ha else ((1, 1),)
            results["kind"].append(kind_round(workspace, shapes))
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
