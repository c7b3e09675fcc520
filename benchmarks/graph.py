"""The longest dependency chain and a bounded-parallelism schedule of a resource graph.

The Pulumi engine starts a resource's create as soon as every resource it depends on has been
created; with enough parallelism the bring-up time is therefore the longest chain of durations
through the dependency graph (the critical path). With `pulumi up --parallel P` at most P
operations run at once: `schedule` simulates that (ready steps start in registration order).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One resource operation: how long it takes and what must finish before it starts."""

    key: str
    seconds: float
    deps: tuple[str, ...] = ()
    # Component resources and providers do no work of their own and take no engine slot.
    occupies_slot: bool = True


@dataclass(frozen=True)
class CriticalPath:
    seconds: float
    chain: tuple[str, ...]  # first step to last
    finish: Mapping[str, float]  # earliest finish of every task


def topological_order(tasks: Sequence[Task]) -> list[Task]:
    """Tasks ordered so that each comes after its dependencies; raises on a cycle.

    Dependencies on keys that are not tasks are ignored (the stack, say).
    """
    by_key = {task.key: task for task in tasks}
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    order: list[Task] = []
    for root in tasks:
        if root.key in state:
            continue
        stack: list[tuple[str, int]] = [(root.key, 0)]
        state[root.key] = 1
        while stack:
            key, index = stack.pop()
            deps = [d for d in by_key[key].deps if d in by_key]
            if index < len(deps):
                stack.append((key, index + 1))
                dep = deps[index]
                if state.get(dep) == 1:
                    raise ValueError(f"dependency cycle through {dep!r}")
                if dep not in state:
                    state[dep] = 1
                    stack.append((dep, 0))
            else:
                state[key] = 2
                order.append(by_key[key])
    return order


def critical_path(tasks: Sequence[Task]) -> CriticalPath:
    """Earliest finish of every task with unbounded parallelism, and the longest chain."""
    if not tasks:
        return CriticalPath(0.0, (), {})
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for task in topological_order(tasks):
        before: str | None = None
        for dep in task.deps:
            if dep in finish and (before is None or finish[dep] > finish[before]):
                before = dep
        start = finish[before] if before is not None else 0.0
        finish[task.key] = start + task.seconds
        via[task.key] = before
    # Ties go to the task registered last (the one further down the program).
    end = max(reversed([t.key for t in tasks]), key=lambda key: finish[key])
    chain: list[str] = []
    cursor: str | None = end
    while cursor is not None:
        chain.append(cursor)
        cursor = via[cursor]
    return CriticalPath(finish[end], tuple(reversed(chain)), finish)


def schedule(tasks: Sequence[Task], parallel: int) -> float:
    """Makespan when at most `parallel` slot-taking tasks run at once (list scheduling).

    A task becomes ready when its dependencies finish; ready tasks start in registration
    order as slots free up, which is how the engine's step executor hands out its workers.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    order = {task.key: index for index, task in enumerate(tasks)}
    by_key = {task.key: task for task in tasks}
    topological_order(tasks)  # reject cycles up front
    waiting = {t.key: {d for d in t.deps if d in by_key} for t in tasks}
    dependents: dict[str, list[str]] = {key: [] for key in by_key}
    for key, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(key)
    ready: list[tuple[int, str]] = [(order[k], k) for k, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    running: list[tuple[float, int, str]] = []  # (finish time, order, key)
    now, busy, done = 0.0, 0, 0
    while done < len(tasks):
        # Start whatever may start now.
        deferred: list[tuple[int, str]] = []
        while ready:
            index, key = heapq.heappop(ready)
            task = by_key[key]
            if task.occupies_slot and busy >= parallel:
                deferred.append((index, key))
                continue
            busy += task.occupies_slot
            heapq.heappush(running, (now + task.seconds, index, key))
        for item in deferred:
            heapq.heappush(ready, item)
        # Advance to the next completion.
        now, _, key = heapq.heappop(running)
        done += 1
        busy -= by_key[key].occupies_slot
        for dependent in dependents[key]:
            waiting[dependent].discard(key)
            if not waiting[dependent]:
                heapq.heappush(ready, (order[dependent], dependent))
    return now
