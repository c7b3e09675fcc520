"""The Docker engine host's needs for kind-style nodes (components/targets/docker_host.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.targets.docker_host import (
    INOTIFY_INSTANCES,
    INOTIFY_WATCHES,
    DockerHost,
    DockerHostError,
    _docker_info,
    check_docker_host,
    host_problems,
    inotify_need,
    inspect_docker_host,
)
from tests.conftest import ProgramRunner

CONTAINER = "docker:index/container:Container"
DEV_MAPPER = {"hostPath": "/dev/mapper", "containerPath": "/dev/mapper"}


def info(driver: str, backing: str | None = None) -> str:
    status = [["Backing Filesystem", backing]] if backing else []
    return json.dumps({"Driver": driver, "DriverStatus": [*status, ["Supports d_type", "true"]]})


def proc_sys(tmp_path: Path, instances: int, watches: int) -> Path:
    inotify = tmp_path / "fs" / "inotify"
    inotify.mkdir(parents=True)
    (inotify / "max_user_instances").write_text(f"{instances}\n")
    (inotify / "max_user_watches").write_text(f"{watches}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("driver", "backing", "needed"),
    [
        ("btrfs", None, True),
        ("zfs", None, True),
        ("devicemapper", "xfs", True),
        ("overlay2", "btrfs", True),
        ("overlay2", "xfs", True),
        ("overlay2", "zfs", True),
        ("overlay2", "extfs", False),
        ("overlayfs", None, False),  # the containerd image store reports no backing filesystem
    ],
)
def test_dev_mapper_is_needed_where_kind_mounts_it(
    driver: str, backing: str | None, needed: bool
) -> None:
    host = inspect_docker_host(lambda _: info(driver, backing), env={}, proc_sys=Path("/none"))
    assert host.needs_dev_mapper is needed


def test_a_local_engine_reports_the_inotify_limits(tmp_path: Path) -> None:
    host = inspect_docker_host(lambda _: info("overlay2", "extfs"), env={},
                               proc_sys=proc_sys(tmp_path, 128, 65536))
    assert host == DockerHost("overlay2", "extfs", {INOTIFY_INSTANCES: 128,
                                                   INOTIFY_WATCHES: 65536})
    unix = inspect_docker_host(lambda _: info("overlay2"), env={"DOCKER_HOST": "unix:///x.sock"},
                               proc_sys=tmp_path)
    assert unix.sysctls[INOTIFY_INSTANCES] == 128


@pytest.mark.parametrize(
    ("env", "provider_host"),
    [({"DOCKER_HOST": "tcp://10.0.0.5:2376"}, None), ({}, "ssh://builder@10.0.0.5")],
)
def test_a_remote_engines_limits_are_not_read_from_this_machine(
    tmp_path: Path, env: dict[str, str], provider_host: str | None
) -> None:
    host = inspect_docker_host(lambda _: info("overlay2"), env=env, provider_host=provider_host,
                               proc_sys=proc_sys(tmp_path, 1, 1))
    assert host.sysctls == {}
    assert host_problems(host, 50) == []


def test_limits_too_low_for_the_nodes_are_one_line_each_naming_setting_and_fix() -> None:
    need = inotify_need(8)
    host = DockerHost("overlay2", "extfs", {INOTIFY_INSTANCES: need[INOTIFY_INSTANCES] - 1,
                                            INOTIFY_WATCHES: need[INOTIFY_WATCHES] - 1})
    with pytest.raises(DockerHostError) as raised:
        check_docker_host(host, 8)
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"the Docker host's fs.inotify.max_user_instances is {need[INOTIFY_INSTANCES] - 1}; "
        f"8 node container(s) need about {need[INOTIFY_INSTANCES]}: raise it with "
        "`sudo sysctl -w fs.inotify.max_user_instances=512`")
    assert "fs.inotify.max_user_watches=524288" in lines[1]
    check_docker_host(DockerHost("overlay2", "extfs", dict(need)), 8)  # exactly enough


def test_the_need_grows_with_the_nodes() -> None:
    assert inotify_need(1)[INOTIFY_INSTANCES] < inotify_need(2)[INOTIFY_INSTANCES]
    # A default Debian/Ubuntu host (128 instances) runs a 1+2 cluster and refuses 1+8.
    assert host_problems(DockerHost("overlay2", "", {INOTIFY_INSTANCES: 128}), 3) == []
    assert host_problems(DockerHost("overlay2", "", {INOTIFY_INSTANCES: 128}), 9) != []


def test_a_failing_docker_info_is_one_clear_error() -> None:
    with pytest.raises(DockerHostError, match=r"needs the Docker engine: `docker info` failed"):
        _docker_info(["sh", "-c", "echo 'Cannot connect to the Docker daemon' >&2; exit 1"])
    with pytest.raises(DockerHostError, match="needs the Docker engine"):
        _docker_info(["/nonexistent/docker", "info"])


def test_the_program_mounts_dev_mapper_on_a_btrfs_engine(run_program: ProgramRunner) -> None:
    plain = run_program("dev", workers=1)
    assert all(DEV_MAPPER not in c.inputs.get("volumes", [])
               for c in plain.of_type(CONTAINER))
    btrfs = run_program("dev", workers=1, docker_host=DockerHost("btrfs"))
    containers = [c for c in btrfs.of_type(CONTAINER) if "volumes" in c.inputs]  # the nodes
    assert len(containers) == 2
    assert all(DEV_MAPPER in c.inputs["volumes"] for c in containers)


def test_the_program_stops_before_declaring_anything_on_a_host_too_small(
    run_program: ProgramRunner,
) -> None:
    host = DockerHost("overlay2", "extfs", {INOTIFY_INSTANCES: 128, INOTIFY_WATCHES: 8192})
    run = run_program("dev", expect_error=True, workers=20, docker_host=host)
    assert isinstance(run.error, DockerHostError)
    assert "fs.inotify.max_user_instances is 128; 21 node container(s)" in str(run.error)
    assert run.resources == []
