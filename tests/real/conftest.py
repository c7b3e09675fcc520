"""Fixtures for the real tests: a Docker engine, the machine image, and one network of machines.

These tests run whenever a Docker engine can be used or started (as root). They skip, with the
reason, only when that is impossible; CI treats a skip as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.real import machines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/real/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def machine_image() -> str:
    try:
        machines.ensure_engine()
        return machines.build_image()
    except machines.EngineUnavailable as exc:
        pytest.skip(f"real tests need a Docker engine: {exc}")


@pytest.fixture(scope="session")
def fleet(machine_image: str) -> Iterator[machines.Fleet]:
    fleet = machines.Fleet(machine_image)
    fleet.create_network()
    try:
        yield fleet
    finally:
        fleet.remove()
