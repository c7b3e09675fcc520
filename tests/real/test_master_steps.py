"""The inline steps the program runs on the master: drain-on-delete and control-plane scheduling.

Each test runs the exact command string the program generates (kubeadm.drain_command wrapped
by DockerExecTransport.delete_command, kubeadm.control_plane_scheduling_command wrapped by
inline_command) with /bin/sh -c on this host, as pulumi_command.local does, against a plain
machine container.
Kubernetes packages cannot be fetched here, so the stand-in kubectl from tests/real/standins/
is on the machine's PATH; it logs every call and keeps node state in /etc/standins/nodes.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import pytest

from components.kubeadm import control_plane_scheduling_command, drain_command
from components.transport import DockerExecTransport
from tests.real.machines import STANDINS, Fleet, Machine

pytestmark = pytest.mark.real

KUBECONFIG = "--kubeconfig=/etc/kubernetes/admin.conf"
TAINT = "node-role.kubernetes.io/control-plane"
GET_W1 = ["kubectl", KUBECONFIG, "get", "node", "w1", "--ignore-not-found", "-o", "name"]
DRAIN_W1 = [
    "kubectl", KUBECONFIG, "drain", "w1",
    "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=300s",
]  # fmt: skip
DELETE_W1 = ["kubectl", KUBECONFIG, "delete", "node", "w1", "--ignore-not-found"]
GET_TAINTS = ["kubectl", KUBECONFIG, "get", "node", "cp1", "-o", "jsonpath={.spec.taints[*].key}"]
UNTAINT = ["kubectl", KUBECONFIG, "taint", "nodes", "cp1", f"{TAINT}:NoSchedule-"]
RETAINT = ["kubectl", KUBECONFIG, "taint", "nodes", "cp1", f"{TAINT}=:NoSchedule", "--overwrite"]


@dataclass(frozen=True)
class StepRun:
    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"`{self.command}` exited {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run_step(command: str, stdin: str | None = None) -> StepRun:
    """Run a generated command as pulumi_command.local does: `/bin/sh -c COMMAND` on this host."""
    start = time.monotonic()
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return StepRun(command, done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def drain_step(machine: Machine, node: str = "w1") -> str:
    return DockerExecTransport(machine.name).delete_command(drain_command(node))


def scheduling_step(machine: Machine, has_workers: bool) -> str:
    return DockerExecTransport(machine.name).inline_command(
        control_plane_scheduling_command(["cp1"], has_workers)
    )


@pytest.fixture(scope="module")
def master(fleet: Fleet) -> Machine:
    machine = fleet.start("master-steps", systemd=False)
    machine.put(STANDINS / "kubectl", "/usr/local/bin/kubectl")
    machine.sh("mkdir -p /etc/kubernetes && echo stand-in > /etc/kubernetes/admin.conf")
    return machine


def reset(machine: Machine, nodes: str) -> None:
    machine.reset_standins(nodes, "/tmp/from-stdin")


def node_state(machine: Machine) -> str:
    return machine.sh("cat /etc/standins/nodes")


# ---------------------------------------------------------------------------------------------
# Scale-in: drain, then delete the Node object


def test_drain_step_drains_before_deleting_with_the_admin_kubeconfig(master: Machine) -> None:
    reset(master, f"cp1 True {TAINT}\nw1 True\n")
    run = run_step(drain_step(master))
    assert run.returncode == 0, run.describe()
    recorded = master.standin_calls()
    assert recorded == [GET_W1, DRAIN_W1, DELETE_W1]
    assert recorded.index(DRAIN_W1) < recorded.index(DELETE_W1)
    assert all(call[1] == KUBECONFIG for call in recorded)
    assert node_state(master) == f"cp1 True {TAINT}\n"


@pytest.mark.parametrize("nodes", ["cp1 True\n", ""], ids=["other-nodes", "no-nodes"])
def test_drain_step_for_a_node_already_gone_does_nothing(master: Machine, nodes: str) -> None:
    reset(master, nodes)
    for _ in range(2):
        run = run_step(drain_step(master))
        assert run.returncode == 0, run.describe()
        assert run.stderr == "", run.describe()
    assert master.standin_calls() == [GET_W1, GET_W1]
    assert node_state(master) == nodes


def test_drain_step_second_run_after_a_delete_does_nothing(master: Machine) -> None:
    reset(master, "cp1 True\nw1 True\n")
    first, second = run_step(drain_step(master)), run_step(drain_step(master))
    assert first.returncode == 0, first.describe()
    assert second.returncode == 0, second.describe()
    assert master.standin_calls() == [GET_W1, DRAIN_W1, DELETE_W1, GET_W1]
    assert node_state(master) == "cp1 True\n"


def test_a_blocked_drain_fails_the_step_and_keeps_the_node(master: Machine) -> None:
    reset(master, "cp1 True\nw1 True !drain-blocked\n")
    run = run_step(drain_step(master))
    assert run.returncode != 0, run.describe()
    assert 'unable to drain node "w1"' in run.stderr, run.describe()
    assert master.standin_calls() == [GET_W1, DRAIN_W1]
    assert node_state(master) == "cp1 True\nw1 True !drain-blocked !cordoned\n"


def test_an_unreachable_api_server_fails_the_step_without_deleting(master: Machine) -> None:
    reset(master, "cp1 True\nw1 True\n")
    master.sh("touch /etc/standins/api-down")
    run = run_step(drain_step(master))
    assert run.returncode != 0, run.describe()
    assert "connection to the server" in run.stderr, run.describe()
    assert master.standin_calls() == [GET_W1]
    assert node_state(master) == "cp1 True\nw1 True\n"


def test_drain_step_does_not_read_stdin(master: Machine) -> None:
    """pulumi_command gives the delete no stdin; text offered anyway never reaches a shell."""
    probe = "touch /tmp/from-stdin\nkubectl --kubeconfig=/etc/kubernetes/admin.conf get nodes\n"
    reset(master, "cp1 True\n")
    run = run_step(drain_step(master), stdin=probe)
    assert run.returncode == 0, run.describe()
    assert master.standin_calls() == [GET_W1]
    assert master.rc("test -e /tmp/from-stdin") != 0
    # The probe does run when a shell is attached to stdin, so its absence above means something.
    attached = run_step(f"docker exec -i {master.name} sh", stdin=probe)
    assert attached.returncode == 0, attached.describe()
    assert master.rc("test -e /tmp/from-stdin") == 0


# ---------------------------------------------------------------------------------------------
# Whether apps may run on the control-plane node


@pytest.mark.parametrize(
    ("has_workers", "nodes", "first_calls", "second_calls", "end_state"),
    [
        (False, f"cp1 True {TAINT}\n", [GET_TAINTS, UNTAINT], [GET_TAINTS], "cp1 True\n"),
        (False, "cp1 True\n", [GET_TAINTS], [GET_TAINTS], "cp1 True\n"),
        (False, "cp1 True other/key\n", [GET_TAINTS], [GET_TAINTS], "cp1 True other/key\n"),
        (True, "cp1 True\n", [RETAINT], [RETAINT], f"cp1 True {TAINT}\n"),
        (True, f"cp1 True {TAINT}\n", [RETAINT], [RETAINT], f"cp1 True {TAINT}\n"),
    ],
    ids=[
        "alone-tainted", "alone-untainted", "alone-other-taint",
        "workers-untainted", "workers-tainted",
    ],
)  # fmt: skip
def test_scheduling_step_converges_and_is_idempotent(
    master: Machine,
    has_workers: bool,
    nodes: str,
    first_calls: list[list[str]],
    second_calls: list[list[str]],
    end_state: str,
) -> None:
    reset(master, nodes)
    command = scheduling_step(master, has_workers)
    first = run_step(command)
    assert first.returncode == 0, first.describe()
    assert master.standin_calls() == first_calls
    assert node_state(master) == end_state
    master.sh("rm -f /var/log/standins.log")
    second = run_step(command)
    assert second.returncode == 0, second.describe()
    assert master.standin_calls() == second_calls
    assert node_state(master) == end_state


def test_scheduling_step_with_workers_fails_when_the_api_is_unreachable(master: Machine) -> None:
    reset(master, "cp1 True\n")
    master.sh("touch /etc/standins/api-down")
    run = run_step(scheduling_step(master, has_workers=True))
    assert run.returncode != 0, run.describe()
    assert master.standin_calls() == [RETAINT]
    assert node_state(master) == "cp1 True\n"


def test_scheduling_step_alone_fails_when_the_api_is_unreachable(master: Machine) -> None:
    reset(master, f"cp1 True {TAINT}\n")
    master.sh("touch /etc/standins/api-down")
    run = run_step(scheduling_step(master, has_workers=False))
    assert master.standin_calls() == [GET_TAINTS]
    assert run.returncode != 0, run.describe()
