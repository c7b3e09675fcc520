"""components/transport.py and components/scripts: the exact text and commands a host receives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pulumi_command as command
import pytest

from components.scripts import SCRIPTS_DIR, script_path, script_text
from components.transport import (
    DockerExecTransport,
    SshTransport,
    Step,
    env_preamble,
    render_stdin,
)

NODE_SCRIPTS = sorted(p.name for p in SCRIPTS_DIR.glob("*.sh") if p.name != "common.sh")


def test_every_node_script_is_shipped() -> None:
    assert set(NODE_SCRIPTS) >= {
        "preflight.sh", "install-runtime.sh", "install-kubeadm.sh", "kubeadm-init.sh",
        "join-token.sh", "kubeadm-join.sh", "wait-ready.sh",
    }


@pytest.mark.parametrize("name", NODE_SCRIPTS)
def test_script_text_is_common_then_script(name: str) -> None:
    text = script_text(name)
    common = (SCRIPTS_DIR / "common.sh").read_text()
    assert text.startswith(common.rstrip("\n"))
    assert text.endswith(script_path(name).read_text())
    head = script_path(name).read_text().splitlines()[:3]
    assert head[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in script_path(name).read_text()


def test_unknown_script_is_refused() -> None:
    with pytest.raises(FileNotFoundError, match=r"no node script named 'nope\.sh'"):
        script_path("nope.sh")


def test_env_preamble_round_trips_through_a_shell() -> None:
    env = {"PLAIN": "a", "SPACES": "a b  c", "QUOTES": "it's \"q\" $HOME `x`", "EMPTY": ""}
    preamble = env_preamble(env)
    assert preamble.splitlines()[0].startswith("export EMPTY=")  # sorted, stable
    shown = subprocess.run(
        ["bash", "-s"], input=preamble + 'printf "%s|" "$PLAIN" "$SPACES" "$QUOTES" "$EMPTY"',
        capture_output=True, text=True, check=True,
    ).stdout
    assert shown == "a|a b  c|it's \"q\" $HOME `x`||"


def test_step_needs_one_body() -> None:
    with pytest.raises(ValueError, match="exactly one of script or inline"):
        Step()
    with pytest.raises(ValueError, match="exactly one of script or inline"):
        Step(script="preflight.sh", inline="true")


def test_docker_exec_command_strings() -> None:
    transport = DockerExecTransport("kubeadm-dev-master")
    assert transport.create_command(Step(script="preflight.sh")) == \
        "docker exec -i kubeadm-dev-master bash -s"
    assert transport.create_command(Step(inline="cat /etc/kubernetes/admin.conf")) == \
        "docker exec kubeadm-dev-master sh -c 'cat /etc/kubernetes/admin.conf'"
    # The delete form never attaches stdin (no -i): the provider replays create's stdin.
    assert transport.inline_command("kubectl drain x") == \
        "docker exec kubeadm-dev-master sh -c 'kubectl drain x'"


def test_ssh_command_strings() -> None:
    transport = SshTransport(host="203.0.113.10", user="ubuntu", private_key="k")
    assert transport.create_command(Step(script="preflight.sh")) == "sudo -n bash -s"
    assert transport.inline_command("kubectl drain x") == \
        "sudo -n sh -c 'kubectl drain x' </dev/null"
    assert transport.connection().dial_error_limit == 40
    assert transport.connection().proxy is None


def test_a_jump_host_is_its_own_transport_with_the_same_dial_settings() -> None:
    jump = SshTransport(host="203.0.113.10", user="ubuntu", private_key="k",
                        host_key="ssh-ed25519 J")
    worker = SshTransport(host="10.0.2.11", user="ubuntu", private_key="k",
                          host_key="ssh-ed25519 W", jump=jump)
    connection = worker.connection()
    assert (connection.host, connection.host_key) == ("10.0.2.11", "ssh-ed25519 W")
    proxy = connection.proxy
    assert isinstance(proxy, command.remote.ProxyConnectionArgs)
    assert (proxy.host, proxy.user, proxy.private_key, proxy.host_key) == (
        "203.0.113.10", "ubuntu", "k", "ssh-ed25519 J")
    assert (proxy.dial_error_limit, proxy.per_dial_timeout) == (
        connection.dial_error_limit, connection.per_dial_timeout)


def test_several_scripts_share_one_stdin_in_order() -> None:
    text = script_text(("preflight.sh", "install-runtime.sh", "install-kubeadm.sh"))
    common = (SCRIPTS_DIR / "common.sh").read_text().rstrip("\n")
    assert text.startswith(common) and text.count(common) == 1
    positions = [text.index(script_path(n).read_text())
                 for n in ("preflight.sh", "install-runtime.sh", "install-kubeadm.sh")]
    assert positions == sorted(positions)
    with pytest.raises(ValueError, match="at least one script"):
        script_text(())


def test_scripts_run_in_order_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    """Two real scripts on one stdin: each runs its main as it is read; a failure stops it."""
    failing = render_stdin(("join-token.sh", "wait-ready.sh"), {"TOKEN_TTL": "0"})
    done = subprocess.run(["bash", "-s"], input=failing, capture_output=True, text=True,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode != 0
    assert "join-token.sh" in done.stderr and "wait-ready.sh" not in done.stderr


def test_docker_delete_is_a_no_op_only_for_a_removed_container(tmp_path: Path) -> None:
    """The delete form runs under /bin/sh as pulumi-command local does; `docker` is a stub."""
    stub = tmp_path / "docker"
    stub.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = container ]; then\n'
        '  case "$STUB_STATE" in gone) echo "Error: No such container: m" >&2; exit 1;;\n'
        '  down) echo "Cannot connect to the Docker daemon" >&2; exit 1;; esac\n'
        '  echo running; exit 0\nfi\n'
        'echo "exec $*"\n'
    )
    stub.chmod(0o755)
    command = DockerExecTransport("m").delete_command("kubectl drain x")

    def run(state: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin", "STUB_STATE": state})

    assert run("running").stdout == "exec exec m sh -c kubectl drain x\n"
    gone = run("gone")
    assert gone.returncode == 0 and "m is gone: nothing to do on delete" in gone.stderr
    down = run("down")
    assert down.returncode == 1 and "Cannot connect" in down.stderr and down.stdout == ""
