"""Pytest fixtures around tests/program.py: a fresh event loop and a fresh program per test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest

from tests.program import (
    FAKE_ADMIN_CONF,
    FAKE_CA_HASH,
    FAKE_EIP,
    FAKE_JOIN_COMMAND,
    FAKE_PRIVATE_KEY,
    FAKE_PUBLIC_KEY,
    MAIN,
    REPO,
    ComponentRunner,
    ProgramMocks,
    ProgramRun,
    ProgramRunner,
    RecordingMonitor,
    Registration,
    config_values,
    engine_value,
    run_program_with,
    stack_config,
)

__all__ = [
    "FAKE_ADMIN_CONF",
    "FAKE_CA_HASH",
    "FAKE_EIP",
    "FAKE_JOIN_COMMAND",
    "FAKE_PRIVATE_KEY",
    "FAKE_PUBLIC_KEY",
    "MAIN",
    "REPO",
    "ComponentRunner",
    "ProgramMocks",
    "ProgramRun",
    "ProgramRunner",
    "RecordingMonitor",
    "Registration",
    "config_values",
    "engine_value",
    "run_program_with",
    "stack_config",
]


@pytest.fixture(autouse=True)
def no_config_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """The program also reads PULUMI_CONFIG: a value set in the shell must not leak into tests."""
    for name in list(os.environ):
        if name == "PULUMI_CONFIG" or name.startswith("PULUMI_CONFIG_"):
            monkeypatch.delenv(name)


@pytest.fixture
def invokes(monkeypatch: pytest.MonkeyPatch) -> list[pulumi.runtime.MockCallArgs]:
    """Every invoke (data lookup) the program makes, in order."""
    calls: list[pulumi.runtime.MockCallArgs] = []
    original_call = ProgramMocks.call

    def call(self: ProgramMocks, args: pulumi.runtime.MockCallArgs) -> Any:
        calls.append(args)
        return original_call(self, args)

    monkeypatch.setattr(ProgramMocks, "call", call)
    return calls


@pytest.fixture
def event_loop_for_test() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def run_program(event_loop_for_test: asyncio.AbstractEventLoop) -> ProgramRunner:
    """Run the whole program for a shipped stack: run_program("aws", workers=5)."""

    def run(stack: str = "dev", preview: bool = False, expect_error: bool = False,
            **overrides: Any) -> ProgramRun:
        return run_program_with(event_loop_for_test, stack, preview, expect_error=expect_error,
                                **overrides)

    return run



@pytest.fixture
def run_components(event_loop_for_test: asyncio.AbstractEventLoop) -> ComponentRunner:
    """Run any function as the program, e.g. to test one component on its own:
    run_components(lambda: LocalHosts(...), stack="dev", workers=2)."""

    def run(program: Callable[[], Any], stack: str = "dev", preview: bool = False,
            **overrides: Any) -> ProgramRun:
        def as_program() -> None:
            program()

        return run_program_with(event_loop_for_test, stack, preview, program=as_program,
                                **overrides)

    return run


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """With FAIL_ON_SKIP=1 (as .ci/run sets), any skipped test fails the run."""
    if os.environ.get("FAIL_ON_SKIP") != "1":
        return
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.write_line(
            f"FAIL_ON_SKIP: {len(skipped)} test(s) skipped; every suite must run here", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and session.exitstatus == 0:
        session.exitstatus = 1
