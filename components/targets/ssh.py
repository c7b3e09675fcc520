"""What SSH targets (aws, machines) share: how a user logs in to a node, and its known_hosts line.

Both are exported (`sshCommands`, `sshKnownHosts`) so a user reaches a node with the same pinned
host key the program used, never trusting on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def known_hosts_line(node_name: str, host_key: str) -> str:
    """Keyed by node name, which `ssh -o HostKeyAlias` matches: a worker's public IP changes
    on stop/start, its name does not."""
    return f"{node_name} {host_key}"


@dataclass(frozen=True)
class SshLogin:
    """How a user logs in to a node: the login user, the key file (None: the user's own keys
    or agent) and the known_hosts file written from the `sshKnownHosts` output, whose lines are
    keyed by node name (HostKeyAlias)."""

    user: str
    key_file: str | None
    known_hosts_file: str

    def options(self, node_name: str) -> str:
        identity = f"-i {self.key_file} " if self.key_file else ""
        return (
            f"{identity}-o UserKnownHostsFile={self.known_hosts_file} "
            f"-o StrictHostKeyChecking=yes -o HostKeyAlias={node_name} "
        )

    def command(
        self, node_name: str, host: str, jump_name: str | None = None,
        jump_host: str | None = None, port: int = 22, user: str | None = None,
    ) -> str:
        # ProxyCommand rather than -J: -J would not pass -i or the known_hosts file to the jump.
        jump = ""
        if jump_name is not None and jump_host is not None:
            jump = (
                f"-o ProxyCommand='ssh {self.options(jump_name)}-W %h:%p "
                f"{self.user}@{jump_host}' "
            )
        port_option = f"-p {port} " if port != 22 else ""
        return f"ssh {self.options(node_name)}{port_option}{jump}{user or self.user}@{host}"

    def to(
        self, node_name: str, host: str | None = None, jump_name: str | None = None
    ) -> Callable[[str], str]:
        """For Output.apply: the login command given the one address still unknown, which is
        the node's own (`host` None) or its jump host's."""
        if host is None:
            return lambda address: self.command(node_name, address)
        return lambda jump_host: self.command(node_name, host, jump_name, jump_host)
