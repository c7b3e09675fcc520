"""The AWS nodes' pinned SSH host keys, with real cloud-init and a real sshd on a Debian machine.

The program gives each EC2 node user data from `host_key_cloud_config` and pins the public half
in every SSH connection and in the `sshKnownHosts` output. Here Debian's own cloud-init
validates that user data against its schema and runs its `ssh` module on it, then a real sshd
must present exactly the pinned key, and a real `ssh` client, run as `sshCommands` prints it,
must accept that key and refuse any other.

pulumi-command's own check is x/crypto/ssh's FixedHostKey with only the pinned key's
algorithm offered; `fixtures/pinned-ssh` (Go, built here from Debian's golang.org/x/crypto)
dials the same way with the exact `hostKey` string the program sets. What this is not: Ubuntu
24.04's cloud-init booting on EC2 (Debian bookworm's 22.4 runs here, with no cloud datasource),
or the pulumi-command binary itself (it cannot be downloaded here).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.targets.aws import host_key_cloud_config
from components.targets.ssh import SshLogin, known_hosts_line
from tests.real.machines import Fleet, Machine

pytestmark = pytest.mark.real

FIXTURES = Path(__file__).parent / "fixtures"
KNOWN_HOSTS_FILE = "kubeadm-aws-known_hosts"
LOGIN_KEY_FILE = "kubeadm-aws-ssh.key"
MASTER = "kubeadm-aws-master"
WORKER = "kubeadm-aws-worker-0"


def new_ed25519_key(machine: Machine, path: str) -> tuple[str, str]:
    """(private, public) in pulumi-tls's formats: OpenSSH private key, `ssh-ed25519 <b64>\\n`."""
    machine.sh(f"rm -f {path} {path}.pub && ssh-keygen -q -t ed25519 -N '' -f {path}")
    public = " ".join(machine.sh(f"cat {path}.pub").split()[:2]) + "\n"
    return machine.sh(f"cat {path}"), public


@pytest.fixture(scope="module")
def node(fleet: Fleet) -> Iterator[Machine]:
    machine = fleet.start("host-key", systemd=False)
    machine.sh(
        "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        "--no-install-recommends cloud-init openssh-server openssh-client "
        "golang-go golang-golang-x-crypto-dev >/dev/null",
        timeout=600,
    )
    machine.sh("mkdir -p /root/pinned-ssh")
    machine.put(FIXTURES / "pinned-ssh" / "main.go", "/root/pinned-ssh/main.go")
    machine.sh(
        "cd /root/pinned-ssh && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=/root/.gocache "
        "go build -o /usr/local/bin/pinned-ssh .",
        timeout=300,
    )
    # No cloud here: cloud-init's "None" datasource, so its modules run from files alone.
    machine.sh("echo 'datasource_list: [ None ]' > /etc/cloud/cloud.cfg.d/90-none.cfg")
    machine.sh("cloud-init init --local >/dev/null 2>&1")
    yield machine


@pytest.fixture(scope="module")
def pinned_key(node: Machine) -> str:
    """Boot the node the way EC2 would, with the program's user data; the public key pinned."""
    private, public = new_ed25519_key(node, "/root/pinned")
    node.put_text(host_key_cloud_config(private, public), "/root/user-data")
    schema = node.sh("cloud-init schema --config-file /root/user-data 2>&1")
    assert "Valid cloud-config" in schema, schema
    node.sh("cloud-init --file /root/user-data single --name cc_ssh --frequency always 2>&1")
    node.sh("mkdir -p /run/sshd && /usr/sbin/sshd")
    return public.strip()


def test_cloud_init_installs_the_pinned_key_as_the_only_host_key(
    node: Machine, pinned_key: str
) -> None:
    assert node.sh("ls /etc/ssh | grep '^ssh_host_' | sort").split() == [
        "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub",
    ]
    assert node.sh("cmp /etc/ssh/ssh_host_ed25519_key /root/pinned && echo same").strip() == "same"
    # What any client is shown, for every key type it could ask for.
    scanned = node.sh("ssh-keyscan 127.0.0.1 2>/dev/null").splitlines()
    assert scanned == [f"127.0.0.1 {pinned_key}"]


def login(node: Machine, known_hosts: str, command: str) -> tuple[int, str]:
    """Run an `sshCommands` command as a user would, with `true` as the remote command."""
    node.put_text(known_hosts, f"/root/{KNOWN_HOSTS_FILE}")
    done = node.rc(f"cd /root && {command} -o BatchMode=yes true 2>/root/ssh.err")
    return done, node.sh("cat /root/ssh.err")


USER = SshLogin("root", LOGIN_KEY_FILE, KNOWN_HOSTS_FILE)


@pytest.fixture(scope="module")
def authorized(node: Machine) -> None:
    _, public = new_ed25519_key(node, f"/root/{LOGIN_KEY_FILE}")
    node.sh(f"mkdir -p -m 700 /root/.ssh && echo {shlex.quote(public.strip())} "
            "> /root/.ssh/authorized_keys")


def test_ssh_command_logs_in_with_the_exported_known_hosts(
    node: Machine, pinned_key: str, authorized: None
) -> None:
    known_hosts = known_hosts_line(MASTER, pinned_key) + "\n"
    rc, err = login(node, known_hosts, USER.command(MASTER, "127.0.0.1"))
    assert rc == 0, err


def test_jumped_ssh_command_checks_both_hops(
    node: Machine, pinned_key: str, authorized: None
) -> None:
    """The private-worker command: ProxyCommand through the master, each hop its own alias
    (here both hops reach this one sshd)."""
    jumped = USER.command(WORKER, "127.0.0.1", jump_name=MASTER, jump_host="127.0.0.1")
    both = known_hosts_line(MASTER, pinned_key) + "\n" + known_hosts_line(WORKER, pinned_key)
    rc, err = login(node, both + "\n", jumped)
    assert rc == 0, err

    _, other = new_ed25519_key(node, "/root/other-jump")
    wrong_master = known_hosts_line(MASTER, other.strip()) + "\n"
    rc, err = login(node, wrong_master + known_hosts_line(WORKER, pinned_key) + "\n", jumped)
    assert rc != 0
    assert "Host key verification failed" in err, err


def test_ssh_command_refuses_a_host_with_another_key(
    node: Machine, pinned_key: str, authorized: None
) -> None:
    _, other = new_ed25519_key(node, "/root/other")
    known_hosts = known_hosts_line(MASTER, other.strip()) + "\n"
    rc, err = login(node, known_hosts, USER.command(MASTER, "127.0.0.1"))
    assert rc != 0
    assert "Host key verification failed" in err, err


def pulumi_command_dial(node: Machine, host_key: str) -> tuple[int, str]:
    """Dial as pulumi-command does with `connection.hostKey = host_key`."""
    done = node.rc(
        f"pinned-ssh 127.0.0.1:22 root /root/{LOGIN_KEY_FILE} {shlex.quote(host_key)} true "
        "2>/root/go.err"
    )
    return done, node.sh("cat /root/go.err")


def test_pulumi_commands_check_accepts_the_pinned_key_as_the_program_passes_it(
    node: Machine, pinned_key: str, authorized: None
) -> None:
    rc, err = pulumi_command_dial(node, pinned_key)  # HostKey.public_key: stripped, no comment
    assert rc == 0, err


def test_pulumi_commands_check_refuses_another_key(
    node: Machine, pinned_key: str, authorized: None
) -> None:
    _, other = new_ed25519_key(node, "/root/other-go")
    rc, err = pulumi_command_dial(node, other.strip())
    assert rc == 1
    assert "host key mismatch" in err, err
