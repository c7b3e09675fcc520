"""The e2e workspace's own logic (tests/e2e/project.py), without building or running anything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.config import DEFAULT_LOAD_BALANCER_IMAGE
from tests.e2e.project import (
    APP_IMAGE,
    BIN,
    KUBECONFIG,
    PROJECT,
    ROOT,
    E2EError,
    e2e_stack_file,
    node_image,
    shell_env,
    toolchain_versions,
)


def test_the_e2e_stack_file_differs_from_the_shipped_one_only_in_the_images() -> None:
    shipped = (ROOT / "Pulumi.dev.yaml").read_text()
    e2e = e2e_stack_file(shipped, "kubeadm-cluster/node:v1.37.2", APP_IMAGE)
    changed = [(a, b) for a, b in zip(shipped.splitlines(), e2e.splitlines(), strict=True)
               if a != b]
    assert [b.strip() for _, b in changed] == [
        "kubeadm-cluster:nodeImage: kubeadm-cluster/node:v1.37.2",
        f"image: {APP_IMAGE}",
    ]


def test_a_stack_file_without_the_expected_lines_is_refused() -> None:
    with pytest.raises(E2EError, match="one nodeImage line"):
        e2e_stack_file("config:\n  kubeadm-cluster:workers: 0\n", "x:1", APP_IMAGE)


def test_the_node_image_follows_the_toolchain_and_the_default_minor() -> None:
    version = toolchain_versions()["KUBERNETES_VERSION"]
    assert node_image() == f"kubeadm-cluster/node:{version}"
    shipped = (ROOT / "Pulumi.dev.yaml").read_text()
    minor = re.search(r'kubernetesVersion: "(1\.\d+)"', shipped)
    assert minor and version.startswith(f"v{minor.group(1)}.")


def test_shell_env_puts_the_built_tools_first_and_enters_the_project() -> None:
    lines = shell_env().splitlines()
    assert lines[0] == f'export PATH={BIN}:"$PATH"'
    assert f"export KUBECONFIG={KUBECONFIG}" in lines
    assert any(line.startswith("export PULUMI_BACKEND_URL=file://") for line in lines)
    assert lines[-1] == f"cd {PROJECT}"


def test_the_toolchain_tags_its_load_balancer_as_the_programs_default() -> None:
    """The dev stack runs here without a registry only if images.sh tags the HAProxy image it
    builds with exactly the name components/config.py uses by default."""
    text = (Path(__file__).parent.parent / "toolchain" / "images.sh").read_text()
    assert f"LOAD_BALANCER_IMAGE={DEFAULT_LOAD_BALANCER_IMAGE}\n" in text
