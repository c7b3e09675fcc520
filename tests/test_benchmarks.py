"""The bring-up benchmark's model and script (benchmarks/): correctness only, nothing timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bringup
from benchmarks.durations import STEP_KINDS, modelled_seconds, step_kind
from benchmarks.graph import Task, critical_path, schedule, topological_order


def diamond() -> list[Task]:
    #      a(2)
    #     /    \
    #   b(5)   c(1)
    #     \    /
    #      d(3)      e(4) stands alone
    return [
        Task("a", 2),
        Task("b", 5, ("a",)),
        Task("c", 1, ("a",)),
        Task("d", 3, ("b", "c")),
        Task("e", 4),
    ]


def test_critical_path_is_the_longest_chain() -> None:
    path = critical_path(diamond())
    assert path.seconds == 10
    assert path.chain == ("a", "b", "d")
    assert path.finish == {"a": 2, "b": 7, "c": 3, "d": 10, "e": 4}


def test_critical_path_ignores_dependencies_outside_the_graph_and_handles_empty() -> None:
    assert critical_path([Task("x", 1, ("the-stack",))]).chain == ("x",)
    assert critical_path([]).seconds == 0


def test_independent_workers_do_not_lengthen_the_path_but_a_serial_chain_does() -> None:
    def cluster(workers: int, serial: bool) -> list[Task]:
        tasks = [Task("init", 60)]
        for i in range(workers):
            after = ("init", f"join-{i - 1}") if serial and i else ("init",)
            tasks.append(Task(f"join-{i}", 20, after))
        tasks.append(Task("ready", 45, ("init", *(f"join-{i}" for i in range(workers)))))
        return tasks

    assert critical_path(cluster(1, False)).seconds == critical_path(cluster(100, False)).seconds
    assert critical_path(cluster(100, True)).seconds == 60 + 100 * 20 + 45


def test_topological_order_rejects_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order([Task("a", 1, ("b",)), Task("b", 1, ("a",))])


def test_schedule_with_enough_slots_equals_the_critical_path() -> None:
    assert schedule(diamond(), parallel=100) == 10


def test_schedule_with_one_slot_runs_everything_in_turn() -> None:
    assert schedule(diamond(), parallel=1) == 2 + 5 + 1 + 3 + 4


def test_schedule_with_bounded_slots_grows_with_width() -> None:
    wide = [Task(f"w{i}", 10) for i in range(8)]
    assert schedule(wide, parallel=8) == 10
    assert schedule(wide, parallel=4) == 20
    # A task that takes no slot (a component, a provider) never waits for one; a task that
    # does queues behind the ones registered before it.
    free = [*wide, Task("component", 0, occupies_slot=False), Task("after", 1, ("component",))]
    assert schedule(free, parallel=4) == 21
    assert schedule(free[:-1], parallel=4) == 20


def test_step_kinds_match_by_type_and_longest_suffix() -> None:
    token = step_kind("command:remote:Command", "kubeadm-aws-worker-0-join-token")
    join = step_kind("command:remote:Command", "kubeadm-aws-worker-0-join")
    assert token is not None and token.suffix == "-join-token"
    assert join is not None and join.suffix == "-join"
    rule = step_kind("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "x-ssh")
    assert rule is not None and rule.label == "security group rule"
    assert step_kind("command:remote:Command", "something-new") is None


def test_a_step_with_no_create_costs_nothing_when_created() -> None:
    """A worker's kubernetes step dials nobody at bring-up; the master's installs packages."""
    worker, kind = modelled_seconds("command:remote:Command", "kubeadm-aws-worker-3-kubernetes")
    assert worker == 0.0 and kind is not None and not kind.dials
    master, kind = modelled_seconds("command:remote:Command", "kubeadm-aws-master-kubernetes")
    assert kind is not None and kind.suffix == "-master-kubernetes" and master > 20


def test_every_row_has_a_source_and_components_cost_nothing() -> None:
    assert all(kind.source and kind.seconds >= 0 for kind in STEP_KINDS)
    assert modelled_seconds("kubeadm-cluster:kubeadm:KubeadmCluster", "c") == (0.0, None)


def test_the_script_runs_end_to_end_and_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    timings = tmp_path / "real-timings.json"
    timings.write_text(json.dumps({
        "first_run_seconds": {"install-runtime.sh": 20.0},
        "second_run_seconds": {"install-runtime.sh": 0.5},
        "first_run_total_seconds": 20.0,
        "second_run_total_seconds": 0.5,
        bringup.INSTALL_STEP_KEY: {"first_run_seconds": 16.0, "second_run_seconds": 0.4},
    }))
    monkeypatch.setattr(bringup, "TIMINGS_FILE", timings)
    out_json = tmp_path / "bench.json"

    code = bringup.main(["--stacks", "dev", "--workers", "0", "1", "--repeat", "1",
                         "--parallel", "8", "--json", str(out_json)])

    assert code == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0]
    for column in ("stack", "workers", "resources", "bring-up model (s)", "vs 1 worker",
                   "bring-up -p 8 (s)", "eval wall (s)", "eval CPU (s)", "peak RSS (MiB)",
                   "import (s)"):
        assert f"| {column} |" in header
    rows = [line for line in text.splitlines() if line.startswith("| dev |")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "1"]
    assert "| re-run install-runtime.sh < 5% of first run | 0.50 s / 20.00 s = 2.5% | met |" in text
    assert "| re-run of the install step < 5% of first run | 0.40 s / 16.00 s = 2.5% | met |" \
        in text
    assert "Critical path, dev, 1 workers" in text
    assert "kubeadm-dev-master-init" in text
    assert "edges from one worker's steps to another worker's: 0" in text
    cases = json.loads(out_json.read_text())["cases"]
    assert [case["workers"] for case in cases] == [0, 1]
    assert all(case["unmodelled"] == [] for case in cases)


def test_a_missing_timings_file_is_reported_not_invented(tmp_path: Path) -> None:
    case = bringup.Case("dev", 1, 21, 76.0, 76.0, [], [], 0, 4, 1.0, 0.2, 0.2, 0.0, 100.0, 0)
    text, met = bringup.report([case], 8, tmp_path / "absent.json")
    assert "no measurement" in text and "| n/a |" in text
    assert met


def test_the_machines_benchmark_table_lists_every_round_in_order() -> None:
    from benchmarks import machines

    text = machines.table([
        {"workers": 1, "bring_up": 70.31, "destroy": 15.44},
        {"workers": 4, "bring_up": 113.8, "destroy": 17.4},
    ])
    assert text.splitlines()[2:] == ["| 1 + 1 | 70.3 s | 15.4 s |", "| 1 + 4 | 113.8 s | 17.4 s |"]
