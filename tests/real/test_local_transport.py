"""The local target's transport and systemd wait, run for real.

The `create`/`delete` command strings and the stdin text are taken from a Pulumi mocks run of
the program's own code (DockerExecTransport.run, LocalHosts' systemd wait), then executed with
`/bin/sh -c` (pulumi-command local's interpreter) against real containers under a real Docker
engine, with stdin fed the way pulumi-command feeds it (and replayed on delete).

Stand-in: the kind node image cannot be pulled here. The Debian bookworm machine image that the
tests/real harness builds from a debootstrap root filesystem (tests/real/machines.py) stands in
for it: it boots systemd as PID 1 like a kind node does. kubeadm is the harness's stand-in
(tests/real/standins/kubeadm), since Kubernetes packages cannot be fetched here either.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pulumi
import pytest

from components.targets.local import systemd_wait_command
from components.transport import DockerExecTransport, Step
from tests.conftest import ComponentRunner
from tests.real.machines import CAPS, STANDINS, Fleet, Machine, docker

pytestmark = pytest.mark.real

# An env value a careless preamble would break or execute: spaces, both quotes, $(...),
# backticks, shell operators, a backslash and a newline.
TRICKY = "1 h 'single' \"double\" $(touch /tmp/injected) `touch /tmp/injected` ;&| \\ \nline2"


@dataclass(frozen=True)
class Declared:
    """One command resource as the program declares it: the strings pulumi-command runs."""

    create: str
    stdin: str | None
    delete: str | None
    logging: str | None


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str
    seconds: float




def declare(run_components: ComponentRunner, container: str, step: Step) -> Declared:
    """The command resource DockerExecTransport declares for `step`, from a mocks run."""

    def program() -> None:
        DockerExecTransport(container).run("step", step, pulumi.ResourceOptions())

    values = run_components(program, stack="dev").named("step").inputs
    return Declared(
        values["create"], values.get("stdin"), values.get("delete"), values.get("logging")
    )


def sh(command: str, stdin: str | None = None, timeout: float = 120) -> Ran:
    """Run `command` as pulumi-command local does: `/bin/sh -c`, stdin piped when set."""
    start = time.monotonic()
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - start)


@pytest.fixture(scope="module")
def node(fleet: Fleet) -> Machine:
    """A systemd machine standing in for a kind node, with the kubeadm and kubectl stand-ins."""
    machine = fleet.start("local-node")
    for tool in ("kubeadm", "kubectl"):
        machine.put(STANDINS / tool, f"/usr/local/bin/{tool}")
        machine.sh(f"chmod 0755 /usr/local/bin/{tool}")
    machine.sh("mkdir -p /etc/standins && echo kube-system/kubeadm-config "
               ">> /etc/standins/configmaps")
    return machine


def standin_calls(machine: Machine) -> str:
    return machine.sh("cat /var/log/standins.log 2>/dev/null || true")


# -- the transport --------------------------------------------------------------------------


def test_script_step_prints_its_result_on_stdout(
    run_components: ComponentRunner, node: Machine
) -> None:
    declared = declare(
        run_components,
        node.name,
        Step(script="join-token.sh", env={"TOKEN_TTL": "15m"}, secret_output=True),
    )
    assert declared.create == f"docker exec -i {node.name} bash -s"
    assert declared.stdin is not None and declared.stdin.startswith("export TOKEN_TTL=15m\n")
    assert declared.logging == "none"
    node.sh("mkdir -p /etc/kubernetes && echo '# admin' > /etc/kubernetes/admin.conf")

    ran = sh(declared.create, declared.stdin)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count("\n") == 2  # the join command, then the cluster's release
    assert ran.stdout.startswith("kubeadm join ")
    assert "--discovery-token-ca-cert-hash sha256:" in ran.stdout
    assert '"--ttl", "15m"' in standin_calls(node)


def test_env_preamble_arrives_intact_and_a_failure_propagates(
    run_components: ComponentRunner, node: Machine
) -> None:
    declared = declare(
        run_components, node.name, Step(script="join-token.sh", env={"TOKEN_TTL": TRICKY})
    )

    ran = sh(declared.create, declared.stdin)

    assert ran.returncode == 1
    assert ran.stdout == ""
    # The script echoes the value back in its one error line: byte for byte what was exported.
    assert (
        f"error: join-token.sh: TOKEN_TTL must be a duration like 15m or 1h, not '{TRICKY}'"
        in ran.stderr
    )
    assert node.rc("test ! -e /tmp/injected") == 0, "an env value was executed"


def test_inline_step_exit_code_is_the_commands(
    run_components: ComponentRunner, node: Machine
) -> None:
    declared = declare(run_components, node.name, Step(inline='echo "it\'s $(hostname)"; exit 7'))
    assert declared.stdin is None

    ran = sh(declared.create)

    assert (ran.returncode, ran.stdout) == (7, "it's local-node\n")


def test_a_missing_container_fails_the_step(run_components: ComponentRunner) -> None:
    declared = declare(run_components, "kubeadm-real-no-such-node", Step(inline="true"))

    ran = sh(declared.create)

    assert ran.returncode != 0
    assert "No such container" in ran.stderr


def test_delete_runs_inline_without_the_replayed_stdin(
    run_components: ComponentRunner, node: Machine
) -> None:
    declared = declare(
        run_components,
        node.name,
        Step(
            script="join-token.sh",
            env={"TOKEN_TTL": "15m"},
            delete='cat; echo "delete ran, stdin was $(wc -c </dev/stdin) bytes"',
        ),
    )
    assert declared.delete is not None and declared.stdin is not None
    before = standin_calls(node)

    # pulumi-command runs delete with the same stdin as create.
    ran = sh(declared.delete, declared.stdin, timeout=30)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "delete ran, stdin was 0 bytes\n"
    assert standin_calls(node) == before, "the create script on stdin ran during delete"


# -- waiting for systemd --------------------------------------------------------------------


@pytest.fixture
def extra_containers(fleet: Fleet) -> Iterator[list[str]]:
    """Containers a test starts itself, removed afterwards (and by the harness's stale sweep)."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "-f", "-v", name, check=False, timeout=120)


def start_tty_machine(fleet: Fleet, name: str) -> None:
    """A systemd machine run with a TTY, as the program runs node containers (`tty=True`)."""
    argv = [
        "run", "-d", "--tty", "--name", name, "--hostname", name,
        *fleet.labels(),
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
        "--device-cgroup-rule=a *:* rwm", "--cgroupns=host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    ]  # fmt: skip
    for cap in CAPS:
        argv += ["--cap-add", cap]
    docker(*argv, fleet.image, "/sbin/init")


def test_systemd_wait_returns_once_a_tty_node_reaches_multi_user(
    fleet: Fleet, extra_containers: list[str]
) -> None:
    name = f"kubeadm-real-{fleet.session}-tty-node"
    extra_containers.append(name)
    start_tty_machine(fleet, name)

    ran = sh(systemd_wait_command(name), timeout=120)

    assert ran.returncode == 0, ran.stderr
    assert ran.seconds < 60
    state = docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
    assert state in ("running", "degraded", "starting"), state


def test_systemd_wait_needs_the_tty_the_program_gives_nodes(fleet: Fleet, node: Machine) -> None:
    """Without a TTY systemd prints nothing to `docker logs` (hence `tty=True`): no false pass."""
    assert docker("logs", node.name).stdout == ""

    ran = sh(systemd_wait_command(node.name, seconds=3), timeout=60)

    assert ran.returncode == 1


def test_systemd_wait_gives_up_after_its_bound_with_one_clear_line(fleet: Fleet) -> None:
    silent = fleet.start("silent", systemd=False)  # `sleep infinity`: never logs a thing

    ran = sh(systemd_wait_command(silent.name, seconds=3), timeout=60)

    assert ran.returncode == 1
    assert 3 <= ran.seconds < 20
    assert ran.stderr.strip().splitlines() == [
        f"error: node container {silent.name}: systemd did not reach the multi-user target "
        f"within 3s (see: docker logs {silent.name})"
    ]


def test_systemd_wait_fails_fast_when_the_container_is_not_running(
    fleet: Fleet, extra_containers: list[str]
) -> None:
    name = f"kubeadm-real-{fleet.session}-stopped"
    extra_containers.append(name)
    docker("create", "--name", name, *fleet.labels(), fleet.image, "true")

    ran = sh(systemd_wait_command(name), timeout=60)

    assert ran.returncode == 1
    assert ran.seconds < 15
    assert f"error: node container {name} is not running" in ran.stderr
