"""How a step reaches a host: a script on stdin, over SSH or through `docker exec -i`.

A step's inputs travel as `export KEY='value'` lines at the top of the stdin text, never on a
command line, so secrets stay out of process lists and out of the command strings Pulumi shows.
Delete logic is an inline command: pulumi-command replays the create stdin on delete, so a
delete must never depend on stdin (the delete commands below do not attach it).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
import pulumi_command as command

from components.scripts import script_text

SHELL_ON_STDIN = "bash -s"


@dataclass(frozen=True)
class Step:
    """One unit of work on a host.

    `script` names a file in components/scripts (or several, run in order) sent on stdin with
    `env` exported first;
    `inline` is a short command used instead of a script. `delete` is an inline command run
    when the step is destroyed. `secret_output` marks stdout secret and turns logging off.
    `on_create` False: nothing runs (and nothing is dialled) when the step is created; the
    command runs only when its inputs change (pulumi-command's `update`, with `create` unset).
    """

    script: str | tuple[str, ...] | None = None
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    inline: str | None = None
    delete: str | None = None
    secret_output: bool = False
    triggers: Sequence[pulumi.Input[Any]] = ()
    on_create: bool = True

    def __post_init__(self) -> None:
        if (self.script is None) == (self.inline is None):
            raise ValueError("a Step needs exactly one of script or inline")


def env_preamble(env: Mapping[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))


def render_stdin(script: str | Sequence[str], env: Mapping[str, str]) -> str:
    """The exact text a host's shell reads: the exported inputs, then the script."""
    return env_preamble(env) + script_text(script)


def stdin_text(
    script: str | Sequence[str], env: Mapping[str, pulumi.Input[str]]
) -> pulumi.Output[str]:
    """`render_stdin` once every input is known."""
    keys = sorted(env)
    return pulumi.Output.all(*(env[key] for key in keys)).apply(
        lambda values: render_stdin(script, dict(zip(keys, values, strict=True)))
    )


# What running a step declares: a command resource with the step's stdout.
CommandResource = command.local.Command | command.remote.Command


class Transport(Protocol):
    """Runs steps on one host."""

    def run(self, name: str, step: Step, opts: pulumi.ResourceOptions) -> CommandResource: ...


def create_and_update(step: Step, command: str) -> tuple[str | None, str | None]:
    """The (create, update) commands of a step: `command` on create, or only on update."""
    return (command, None) if step.on_create else (None, command)


def command_options(step: Step, opts: pulumi.ResourceOptions) -> pulumi.ResourceOptions:
    extra = pulumi.ResourceOptions(
        # A step's delete (a drain) must finish before its replacement runs, or it would
        # act on the replacement's node of the same name.
        delete_before_replace=True if step.delete else None,
        additional_secret_outputs=["stdout", "stderr"] if step.secret_output else None,
    )
    return pulumi.ResourceOptions.merge(opts, extra)


@dataclass(frozen=True)
class DockerExecTransport:
    """A node container on the local Docker engine, reached with `docker exec`."""

    container_name: str

    def create_command(self, step: Step) -> str:
        if step.script is not None:
            return f"docker exec -i {shlex.quote(self.container_name)} {SHELL_ON_STDIN}"
        return self.inline_command(step.inline or "")

    def inline_command(self, inline: str) -> str:
        return f"docker exec {shlex.quote(self.container_name)} sh -c {shlex.quote(inline)}"

    def delete_command(self, inline: str) -> str:
        """`inline_command`, except that a container already removed has nothing left to act
        on: a destroy after the node containers were deleted by hand still completes. Any
        other failure (a stopped container, an engine that does not answer) is an error."""
        name = shlex.quote(self.container_name)
        return (
            f"if ! state=$(docker container inspect -f '{{{{.State.Status}}}}' {name} 2>&1); "
            f'then case "$state" in *"No such"*) '
            f'echo "{self.container_name} is gone: nothing to do on delete" >&2; exit 0;; '
            f'*) echo "$state" >&2; exit 1;; esac; fi; '
            + self.inline_command(inline)
        )

    def run(self, name: str, step: Step, opts: pulumi.ResourceOptions) -> command.local.Command:
        create, update = create_and_update(step, self.create_command(step))
        return command.local.Command(
            name,
            create=create,
            update=update,
            delete=self.delete_command(step.delete) if step.delete else None,
            stdin=stdin_text(step.script, step.env) if step.script else None,
            triggers=list(step.triggers) or None,
            logging=command.local.Logging.NONE if step.secret_output else None,
            opts=command_options(step, opts),
        )


@dataclass(frozen=True)
class PulumiHostTransport:
    """The machine running Pulumi itself: a script on stdin of `bash -s`, as the user running
    Pulumi (for checks made from where Pulumi dials, such as wait-for-ssh.sh)."""

    def run(self, name: str, step: Step, opts: pulumi.ResourceOptions) -> command.local.Command:
        if step.script is None:
            raise ValueError("PulumiHostTransport runs scripts only")
        create, update = create_and_update(step, SHELL_ON_STDIN)
        return command.local.Command(
            name,
            create=create,
            update=update,
            stdin=stdin_text(step.script, step.env),
            triggers=list(step.triggers) or None,
            opts=command_options(step, opts),
        )


# After a node's sshd has answered (its wait-for-ssh step), transient dial failures are retried
# 40 times, each dial bounded by 15 s (pulumi-command's dialErrorLimit and perDialTimeout).
DIAL_ERROR_LIMIT = 40
PER_DIAL_TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class SshTransport:
    """A machine reached over SSH as a sudo-capable user."""

    host: pulumi.Input[str]
    user: str
    # None: 22, the provider's default.
    port: int | None = None
    # None: pulumi-command authenticates with the user's SSH agent (SSH_AUTH_SOCK).
    private_key: pulumi.Input[str] | None = None
    # "ssh-ed25519 AAAA...": the only key the host may present (None: any key is accepted).
    host_key: pulumi.Input[str] | None = None
    # The host this one is reached through (its own user, key and pinned host key).
    jump: SshTransport | None = None

    def connection(self) -> command.remote.ConnectionArgs:
        return command.remote.ConnectionArgs(
            host=self.host,
            port=self.port,
            user=self.user,
            private_key=self.private_key,
            host_key=self.host_key,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT_SECONDS,
            proxy=self.jump.proxy_connection() if self.jump else None,
        )

    def proxy_connection(self) -> command.remote.ProxyConnectionArgs:
        return command.remote.ProxyConnectionArgs(
            host=self.host,
            port=self.port,
            user=self.user,
            private_key=self.private_key,
            host_key=self.host_key,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT_SECONDS,
        )

    def create_command(self, step: Step) -> str:
        if step.script is not None:
            return f"sudo -n {SHELL_ON_STDIN}"
        return self.inline_command(step.inline or "")

    @staticmethod
    def inline_command(inline: str) -> str:
        return f"sudo -n sh -c {shlex.quote(inline)} </dev/null"

    def run(self, name: str, step: Step, opts: pulumi.ResourceOptions) -> command.remote.Command:
        create, update = create_and_update(step, self.create_command(step))
        return command.remote.Command(
            name,
            connection=self.connection(),
            create=create,
            update=update,
            delete=self.inline_command(step.delete) if step.delete else None,
            stdin=stdin_text(step.script, step.env) if step.script else None,
            triggers=list(step.triggers) or None,
            logging=command.remote.Logging.NONE if step.secret_output else None,
            opts=command_options(step, opts),
        )
