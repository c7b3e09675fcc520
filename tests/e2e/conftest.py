"""The real end-to-end suite (`make e2e`): needs the tools `make tools` builds.

A missing tool is an error, not a skip: CI must never pass without this suite running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.project import Workspace


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def workspace() -> Iterator[Workspace]:
    workspace = Workspace()
    workspace.check_tools()
    workspace.prepare()
    workspace.fresh_stack()
    yield workspace
    if os.environ.get("KEEP") != "1":
        # After a failure, leave no cluster behind (the destroy test did it on success).
        workspace.pulumi("destroy", "--yes", "--skip-preview", check=False)
