"""MachineHosts under Pulumi mocks, wired to KubeadmCluster as __main__.py wires them, and the
machines section of the config (stack machines, as shipped in Pulumi.machines.yaml)."""

from __future__ import annotations

import itertools
import shlex
from typing import Any

import pytest
import yaml

from components.config import ConfigError, ConfigErrors, parse_stack_config
from components.scripts import script_text
from components.targets.machines import (
    ControlPlaneGrowthRefused,
    MachineHosts,
    MachineHostsArgs,
    reset_command,
)
from tests.conftest import (
    FAKE_PRIVATE_KEY,
    ComponentRunner,
    ProgramMocks,
    ProgramRun,
    ProgramRunner,
    Registration,
    config_values,
)
from tests.program import REPO, WiredCluster, exported_env, run_cluster_on

CLUSTER = "kubeadm-machines"
MASTER = f"{CLUSTER}-master"
COMMAND = "command:remote:Command"
SHIPPED = yaml.safe_load((REPO / "Pulumi.machines.yaml").read_text())["config"]
CONTROL_PLANE: dict[str, Any] = SHIPPED["kubeadm-cluster:controlPlaneHosts"][0]
WORKERS: list[dict[str, Any]] = SHIPPED["kubeadm-cluster:workerHosts"]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5ld01hY2hpbmVOZXdNYWNoaW5lTmV3TWFjaGluZTA"

Wired = WiredCluster[MachineHosts]


def worker(index: int) -> str:
    return f"{CLUSTER}-worker-{index}"


def host(index: int, **extra: Any) -> dict[str, Any]:
    return {"address": f"192.0.2.{20 + index}", "hostKey": f"{KEY[:-2]}{index:02d}", **extra}


def run_machines(run_components: ComponentRunner, **overrides: Any) -> tuple[ProgramRun, Wired]:
    return run_cluster_on(
        run_components,
        lambda config: MachineHosts(config.cluster_name, MachineHostsArgs(config)),
        "machines", **overrides,
    )


def steps_on(run: ProgramRun, address: str) -> list[Registration]:
    return [r for r in run.of_type(COMMAND) if r.inputs["connection"]["host"] == address]


# -- the target -----------------------------------------------------------------------------


def test_every_step_dials_its_machine_with_the_pinned_host_key(
    run_components: ComponentRunner,
) -> None:
    run, wired = run_machines(run_components)
    expected = {CONTROL_PLANE["address"]: CONTROL_PLANE, **{w["address"]: w for w in WORKERS}}
    commands = run.of_type(COMMAND)
    assert commands
    for r in commands:
        connection = r.inputs["connection"]
        machine = expected[connection["host"]]
        assert connection["hostKey"] == machine["hostKey"], r.name
        assert connection["port"] == 22 and connection["user"] == "ubuntu"
        assert "privateKey" not in connection  # no sshPrivateKey: the SSH agent
    assert {r.type for r in run.resources} <= {
        COMMAND, "kubeadm-cluster:machines:MachineHosts", "kubeadm-cluster:kubeadm:KubeadmCluster",
        "pulumi:index:Stash",  # the endpoint record, in the state only
    }  # nothing is created but what runs on the machines
    assert wired.cluster.node_names == [MASTER, worker(0), worker(1)]
    assert wired.cluster.node_private_ips == {
        MASTER: CONTROL_PLANE["privateIp"], worker(0): WORKERS[0]["privateIp"],
        worker(1): WORKERS[1]["privateIp"],
    }


def test_port_user_and_key_come_from_each_host(run_components: ComponentRunner) -> None:
    run, wired = run_machines(
        run_components,
        controlPlaneHosts=[host(0, port=2222, user="admin")],
        workerHosts=[host(1, name="rack2-node7", privateIp="10.1.0.7")],
        sshPrivateKey=FAKE_PRIVATE_KEY,
    )
    master = run.named(f"{MASTER}-init").inputs["connection"]
    assert (master["port"], master["user"]) == (2222, "admin")
    assert master["privateKey"] == FAKE_PRIVATE_KEY
    join = run.named("rack2-node7-join")
    assert join.inputs["connection"]["host"] == "192.0.2.21"
    assert wired.cluster.node_private_ips["rack2-node7"] == "10.1.0.7"
    assert "privateKey" in join.secret_inputs or "connection" in join.secret_inputs
    assert wired.hosts.ssh_commands[MASTER].startswith(
        f"ssh -o UserKnownHostsFile={CLUSTER}-known_hosts -o StrictHostKeyChecking=yes "
        f"-o HostKeyAlias={MASTER} -p 2222 admin@192.0.2.20"
    )
    assert wired.hosts.ssh_known_hosts == (
        f"{MASTER} {host(0)['hostKey']}\nrack2-node7 {host(1)['hostKey']}\n"
    )


def test_each_machine_is_reset_after_every_step_on_it(run_components: ComponentRunner) -> None:
    """On destroy and scale-in Pulumi deletes dependents first: every kubeadm step on a machine
    (and a worker's drain, run on the master) depends on that machine's step, whose delete
    resets the machine; so the drain comes before the reset."""
    run, _ = run_machines(run_components)
    for name, address in [(MASTER, CONTROL_PLANE["address"]),
                          *((worker(i), w["address"]) for i, w in enumerate(WORKERS))]:
        machine = run.named(f"{name}-machine")
        assert machine.inputs["delete"].endswith(
            f"sh -c {shlex.quote(reset_command())} </dev/null"
        )
        assert machine.delete_before_replace
        for step in steps_on(run, address):
            if step is not machine:
                assert run.depends_on(step, machine), step.name
    for i in range(len(WORKERS)):
        assert run.depends_on(run.named(f"{worker(i)}-drain"), run.named(f"{worker(i)}-machine"))


def test_reset_runs_reset_node_sh_inline_so_that_it_reads_no_stdin() -> None:
    """The delete is the whole reset-node.sh text (common.sh and reset.sh first), given as an
    argument: pulumi-command replays the create stdin on delete. tests/real proves what it
    removes and keeps."""
    assert shlex.split(reset_command()) == ["bash", "-c", script_text("reset-node.sh")]
    text = script_text("reset-node.sh")
    assert text.index("reset_node()") < text.index('reset_node "${CRI_SOCKET')


def test_adding_a_worker_leaves_existing_steps_unchanged(run_components: ComponentRunner) -> None:
    before, _ = run_machines(run_components)
    third = {"address": "192.0.2.13", "privateIp": "10.0.1.13", "hostKey": KEY}
    after, wired = run_machines(run_components, workerHosts=[*WORKERS, third])
    old = {r.name: r.inputs for r in before.of_type(COMMAND)}
    new = {r.name: r.inputs for r in after.of_type(COMMAND)}
    changed = {name for name in old if name in new and old[name] != new[name]}
    assert changed == {f"{CLUSTER}-ready"}  # it waits for the new node too
    assert set(new) - set(old) == {
        f"{worker(2)}-{step}"
        for step in ("machine", "install", "drain", "join-token", "join", "kubernetes")
    }
    assert wired.cluster.node_names[-1] == worker(2)


def test_api_endpoint_defaults_to_the_control_plane_address_and_can_be_set(
    run_components: ComponentRunner,
) -> None:
    _, default = run_machines(run_components)
    assert default.hosts.cluster_hosts.api_endpoint == f"{CONTROL_PLANE['address']}:6443"
    run, wired = run_machines(run_components, apiEndpoint="k8s.example.com")
    assert wired.hosts.cluster_hosts.api_endpoint == "k8s.example.com:6443"
    init_env = run.named(f"{MASTER}-init").inputs["stdin"]
    assert "export CERT_SANS=k8s.example.com,192.0.2.10\n" in init_env


def env_of(step: Registration) -> dict[str, str]:
    """The `export KEY=value` lines of a step's stdin."""
    return exported_env(step.inputs["stdin"])


def test_three_control_plane_hosts_join_in_turn_behind_the_given_endpoint(
    run_components: ComponentRunner,
) -> None:
    planes = [f"{CLUSTER}-control-plane-1", f"{CLUSTER}-control-plane-2"]
    run, wired = run_machines(run_components, controlPlaneHosts=[host(0), host(1), host(2)],
                              workerHosts=[host(3)], apiEndpoint="k8s.example.com")
    assert wired.cluster.node_names == [MASTER, *planes, worker(0)]
    init = env_of(run.named(f"{MASTER}-init"))
    assert init["CONTROL_PLANE_ENDPOINT"] == "k8s.example.com:6443"
    assert init["CERT_SANS"] == "k8s.example.com,192.0.2.20,192.0.2.21,192.0.2.22"
    for index, name in enumerate(planes, start=1):
        join = run.named(f"{name}-join")
        assert join.inputs["connection"]["host"] == f"192.0.2.{20 + index}"
        env = env_of(join)
        assert (env["CONTROL_PLANE"], env["ADVERTISE_ADDRESS"]) == (
            "true", f"192.0.2.{20 + index}")
        assert env_of(run.named(f"{name}-join-token"))["CONTROL_PLANE"] == "true"
        assert "remove-etcd-member.sh" in run.named(f"{name}-drain").inputs["delete"]
    assert run.depends_on(run.named(f"{planes[1]}-join-token"), run.named(f"{planes[0]}-join"))
    # Upgrades go master, then the other control-plane nodes, then the workers, one at a time.
    roles = {name: env_of(run.named(f"{name}-kubernetes"))["ROLE"]
             for name in (MASTER, *planes, worker(0))}
    assert roles == {MASTER: "control-plane", planes[0]: "additional-control-plane",
                     planes[1]: "additional-control-plane", worker(0): "worker"}
    chain = [MASTER, *planes, worker(0)]
    for before, after in itertools.pairwise(chain):
        assert run.depends_on(run.named(f"{after}-kubernetes"), run.named(f"{before}-kubernetes"))
    assert "ADMIN_KUBECONFIG" not in env_of(run.named(f"{planes[0]}-kubernetes"))


HA_HOSTS = {"controlPlaneHosts": [host(0), host(1), host(2)], "workerHosts": [host(3)],
            "apiEndpoint": "k8s.example.com"}


def test_control_plane_hosts_added_to_a_cluster_made_without_an_endpoint_are_refused(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kubeadm cannot make a cluster initialised without controlPlaneEndpoint highly
    available: the record of a first run without apiEndpoint refuses new control-plane hosts
    at preview, with one line, before any step on them is declared."""
    monkeypatch.setattr(ProgramMocks, "stashed", {f"{CLUSTER}-api-endpoint": {"endpoint": None}})
    run = run_program("machines", expect_error=True, **HA_HOSTS)
    assert isinstance(run.error, ControlPlaneGrowthRefused)
    assert "was initialised without apiEndpoint" in str(run.error)
    assert "\n" not in str(run.error)
    assert not [r for r in run.of_type(COMMAND) if "-control-plane-" in r.name]
    # A cluster recorded with an endpoint takes them; so does a new stack.
    monkeypatch.setattr(ProgramMocks, "stashed",
                        {f"{CLUSTER}-api-endpoint": {"endpoint": "k8s.example.com:6443"}})
    run = run_program("machines", **HA_HOSTS)
    assert run.named(f"{CLUSTER}-control-plane-2-join")
    monkeypatch.setattr(ProgramMocks, "stashed", {})
    record = run_program("machines", **HA_HOSTS).named(f"{CLUSTER}-api-endpoint")
    assert record.inputs["input"] == {"endpoint": "k8s.example.com:6443"}


def test_one_control_plane_host_gets_an_endpoint_only_when_one_is_given(
    run_components: ComponentRunner,
) -> None:
    run, _ = run_machines(run_components)
    assert "CONTROL_PLANE_ENDPOINT" not in env_of(run.named(f"{MASTER}-init"))
    run, _ = run_machines(run_components, apiEndpoint="k8s.example.com")
    assert env_of(run.named(f"{MASTER}-init"))["CONTROL_PLANE_ENDPOINT"] == "k8s.example.com:6443"


def test_the_whole_program_exports_ssh_access_for_machines(run_program: ProgramRunner) -> None:
    run = run_program("machines")
    assert run.outputs["target"] == "machines"
    assert set(run.outputs["sshCommands"]) == {MASTER, worker(0), worker(1)}
    assert run.outputs["sshKnownHosts"].count("\n") == 3
    assert "sshPrivateKey" not in run.outputs  # the user's own key is never exported


def test_allow_cgroup_v1_reaches_preflight_init_and_join_only_when_set(
    run_components: ComponentRunner,
) -> None:
    plain, _ = run_machines(run_components)
    assert not any(
        "export ALLOW_CGROUP_V1" in r.inputs.get("stdin", "") for r in plain.of_type(COMMAND)
    )
    run, _ = run_machines(run_components, allowCgroupV1=True)
    for name in (f"{MASTER}-install", f"{MASTER}-init", f"{worker(0)}-install",
                 f"{worker(0)}-join"):
        assert "export ALLOW_CGROUP_V1=true\n" in run.named(name).inputs["stdin"], name


# -- config ---------------------------------------------------------------------------------


def test_every_bad_host_key_is_named_at_once() -> None:
    values = config_values(
        "machines",
        workers=2,
        controlPlaneHosts=[{"address": "192.0.2.10"}],
        workerHosts=[
            {"address": "bad host", "hostKey": "nope", "port": 0, "colour": "red"},
            {"address": "node.example.com", "hostKey": KEY},
            {"address": "192.0.2.10", "hostKey": KEY, "privateIp": "10.244.0.5"},
        ],
    )
    with pytest.raises(ConfigErrors) as caught:
        parse_stack_config(values, "machines")
    keys = [error.key for error in caught.value.errors]
    assert keys == [
        "workers",
        "controlPlaneHosts[0].hostKey",
        "workerHosts[0].colour",
        "workerHosts[0].address",
        "workerHosts[0].port",
        "workerHosts[0].hostKey",
        "workerHosts[1].privateIp",
        "workerHosts[2].privateIp",
    ]
    text = str(caught.value)
    assert text.startswith("invalid config (8 problems):\n  - invalid config 'workers'")
    assert "ssh-keyscan" in text and "no host is trusted on first use" in text


def test_duplicate_machines_are_refused() -> None:
    values = config_values(
        "machines",
        controlPlaneHosts=[host(0)],
        workerHosts=[
            host(1), {**host(1), "hostKey": KEY}, {**host(3), "name": f"{CLUSTER}-master"},
        ],
    )
    with pytest.raises(ConfigErrors) as caught:
        parse_stack_config(values, "machines")
    assert [(e.key, e.expected) for e in caught.value.errors] == [
        ("workerHosts[1].privateIp", "a privateIp not used by workerHosts[0]"),
        ("workerHosts[1].address", "a address not used by workerHosts[0]"),
        ("workerHosts[2].name", "a name not used by controlPlaneHosts[0]"),
    ]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"controlPlaneHosts": []}, "controlPlaneHosts"),
        ({"controlPlaneHosts": [host(0), host(1)]}, "controlPlaneHosts"),
        ({"controlPlaneHosts": [host(0), host(1), host(2)]}, "apiEndpoint"),
        ({"controlPlaneHosts": [host(0), host(1), host(2)], "apiEndpoint": "192.0.2.21"},
         "apiEndpoint"),
        ({"controlPlaneNodes": "3"}, "controlPlaneNodes"),
        ({"apiEndpoint": "https://k8s.example.com"}, "apiEndpoint"),
        ({"sshPrivateKey": "not a key"}, "sshPrivateKey"),
        ({"sshPublicKey": KEY}, "sshPublicKey"),
        ({"allowCgroupV1": "sometimes"}, "allowCgroupV1"),
    ],
)
def test_bad_machines_settings(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(config_values("machines", **overrides), "machines")
    assert caught.value.key == key
    assert "not a key" not in str(caught.value)  # a private key is never echoed


@pytest.mark.parametrize("stack", ["dev", "aws"])
def test_machines_keys_are_refused_on_other_targets(stack: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(config_values(stack, workerHosts=[host(1)]), stack)
    assert caught.value.key == "workerHosts"


def test_the_shipped_stack_is_valid() -> None:
    config = parse_stack_config(config_values("machines"), "machines")
    assert config.machines is not None
    assert config.workers == 2 and config.machines.package_source == "docker"
    assert config.machines.api_endpoint == "192.0.2.10:6443"
