"""The real end-to-end run's workspace: the built tools, a Pulumi project, a file backend.

The e2e runs the program itself with the Pulumi CLI and plugins built by `toolchain/build.sh`,
in a project folder (`.e2e/project`) whose files are links to this checkout's program, plus a
copy of the shipped `Pulumi.dev.yaml` changed only where the locally built images must be
named (this machine reaches no registry). State lives in a file backend under `.e2e/state`.

Also a command line for people (`make e2e-env`, `make e2e-down`):

    python -m tests.e2e.project env     # shell lines: PATH, backend, kubeconfig, cd project
    python -m tests.e2e.project down    # pulumi destroy the e2e stack, if any
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(os.environ.get("KC_E2E_DIR", ROOT / ".e2e"))
BIN = E2E_DIR / "bin"
PROJECT = E2E_DIR / "project"
STATE = E2E_DIR / "state"
LOGS = E2E_DIR / "logs"
KUBECONFIG = E2E_DIR / "kubeconfig"
STACK = "dev"
# Only the file backend's secrets provider reads it; nothing secret of a user's is under it.
PASSPHRASE = "kubeadm-cluster-e2e"
PROGRAM_FILES = ("__main__.py", "components", "policy", "requirements.txt", "venv")
APP_IMAGE = "kubeadm-cluster/nginx:1.0"
APP_IMAGE_NEXT = "kubeadm-cluster/nginx:1.1"
PULUMI_TIMEOUT = 1800


class E2EError(Exception):
    """A step of the real run failed; the message names the command and its output's tail."""


def toolchain_versions() -> dict[str, str]:
    """KEY=value lines of toolchain/versions.sh."""
    text = (ROOT / "toolchain" / "versions.sh").read_text()
    return dict(re.findall(r"(?m)^([A-Z_]+)=(\S+)$", text))


def node_image() -> str:
    return f"kubeadm-cluster/node:{toolchain_versions()['KUBERNETES_VERSION']}"


def e2e_stack_file(shipped: str, image: str, app_image: str) -> str:
    """The shipped Pulumi.dev.yaml with the node image and the default app's image replaced."""
    text, nodes = re.subn(r"(?m)^(\s*kubeadm-cluster:nodeImage:\s*)\S+$", rf"\g<1>{image}", shipped)
    text, apps = re.subn(r"(?m)^(\s*image:\s*)\S+$", rf"\g<1>{app_image}", text)
    if nodes != 1 or apps != 1:
        raise E2EError(f"Pulumi.dev.yaml: expected one nodeImage line and one app image line, "
                       f"found {nodes} and {apps}")
    return text


def dev_stack_file() -> str:
    shipped = (ROOT / "Pulumi.dev.yaml").read_text()
    return e2e_stack_file(shipped, node_image(), APP_IMAGE)


def environment() -> dict[str, str]:
    """The environment every e2e command runs in: the built tools first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PULUMI_CONFIG", "KUBECONFIG")}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        PULUMI_BACKEND_URL=f"file://{STATE}",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        PULUMI_HOME=str(E2E_DIR / "pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        # Plain text in logs: no colour codes, no interactive prompts.
        PULUMI_SUPPRESS_COPILOT_LINK="true",
        NO_COLOR="1",
    )
    return env


@dataclass
class Result:
    args: list[str]
    stdout: str
    stderr: str
    seconds: float
    returncode: int = 0


class Workspace:
    """The e2e project folder, one stack in it, and runners for `pulumi`, `kubectl`, `docker`.

    `stack_file` makes the stack's Pulumi.<stack>.yaml text (default: the dev stack's e2e copy);
    each stack has its own kubeconfig file.
    """

    def __init__(self, stack: str = STACK, stack_file: Callable[[], str] | None = None) -> None:
        self.env = environment()
        self.stack = stack
        self.stack_file = stack_file or dev_stack_file
        self.kubeconfig = KUBECONFIG if stack == STACK else E2E_DIR / f"kubeconfig-{stack}"
        self._count = 0

    # -- setup ------------------------------------------------------------------------------

    def check_tools(self) -> None:
        missing = [tool for tool in ("pulumi", "pulumi-language-python", "pulumi-resource-command",
                                     "pulumi-resource-docker", "pulumi-resource-kubernetes",
                                     "kubectl") if not (BIN / tool).exists()]
        if missing:
            raise E2EError(f"tools not built: {', '.join(missing)} missing in {BIN}; "
                           "run `make tools` (toolchain/build.sh)")

    def prepare(self) -> None:
        """Make the project folder; files are links, the stack file is the e2e copy."""
        PROJECT.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        STATE.mkdir(parents=True, exist_ok=True)
        for name in PROGRAM_FILES:
            link = PROJECT / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(ROOT / name)
        (PROJECT / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        self.reset_stack_file()

    def reset_stack_file(self) -> None:
        (PROJECT / f"Pulumi.{self.stack}.yaml").write_text(self.stack_file())

    def stack_exists(self) -> bool:
        result = self.run(["pulumi", "stack", "ls", "--json"], check=False)
        try:
            stacks = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            return False
        return any(s.get("name") == self.stack for s in stacks)

    def fresh_stack(self) -> None:
        """Destroy what an earlier run left, then start from an empty file backend.

        A run killed mid-way (a fresh checkout on the same Docker engine) leaves node
        containers and the network with no state naming them: those go by their label."""
        if self.stack_exists():
            self.pulumi("destroy", "--yes", "--skip-preview")
            self.pulumi("stack", "rm", "--yes", "--force")
        self.remove_orphans()
        self.pulumi("stack", "init", self.stack, "--secrets-provider", "passphrase", stack=False)
        # `stack rm` deletes the stack file, and an old run may have changed it: write it anew.
        self.reset_stack_file()

    def remove_orphans(self) -> None:
        """Remove the local target's containers (with their anonymous volumes) and network
        labelled with this stack's cluster name; the machines stack's go with the fleet."""
        # Imported here: `make e2e-env` runs this module with a Python that has no Pulumi SDK.
        from components.config import cluster_name_for
        from components.targets.local import LABEL_CLUSTER

        label = f"label={LABEL_CLUSTER}={cluster_name_for(self.stack)}"
        containers = docker_lines("ps", "-aq", "--filter", label)
        if containers:
            docker_lines("rm", "-f", "-v", *containers)
        networks = docker_lines("network", "ls", "-q", "--filter", label)
        if networks:
            docker_lines("network", "rm", *networks)

    # -- runners ----------------------------------------------------------------------------

    def run(self, args: list[str], check: bool = True, timeout: float = PULUMI_TIMEOUT,
            input: str | None = None) -> Result:
        self._count += 1
        words = f"{self.stack}-" + "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", a) for a in args[:4]
                         if not a.startswith("-") and "/" not in a)
        log = LOGS / f"{self._count:02d}-{words}.log"
        start = time.monotonic()
        try:
            proc = subprocess.run(args, cwd=PROJECT, env=self.env, capture_output=True, text=True,
                                  timeout=timeout, input=input, check=False)
        except subprocess.TimeoutExpired as exc:
            raise E2EError(f"`{shlex.join(args)}` did not finish within {timeout:.0f}s") from exc
        seconds = time.monotonic() - start
        log.write_text(f"$ {shlex.join(args)}\n# exit {proc.returncode} after {seconds:.1f}s\n"
                       f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n")
        if check and proc.returncode != 0:
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            # The engine prints a failed step's error early and a summary last: give both.
            errors = list(dict.fromkeys(line.strip() for line in lines if "error:" in line))[:8]
            tail = "\n".join(lines[-40:])
            raise E2EError(f"`{shlex.join(args)}` exited {proc.returncode} (log: {log}):\n"
                           + "".join(f"{line}\n" for line in errors) + f"...\n{tail}")
        return Result(args, proc.stdout, proc.stderr, seconds, proc.returncode)

    def pulumi(self, *args: str, stack: bool = True, check: bool = True) -> Result:
        extra = ["--stack", self.stack] if stack else []
        return self.run(["pulumi", *args, *extra, "--non-interactive"], check=check)

    def up(self) -> Result:
        return self.pulumi("up", "--yes", "--skip-preview", "--skip-plugin-pre-install")

    def preview_changes(self) -> list[tuple[str, str]]:
        """(operation, resource type) of every step a preview would take, sames left out."""
        result = self.pulumi("preview", "--json", "--skip-plugin-pre-install")
        steps = json.loads(result.stdout).get("steps", [])
        # A URN's type part is parent$child types: the last is the resource's own.
        return sorted((s["op"], s["urn"].split("::")[2].split("$")[-1]) for s in steps
                      if s["op"] != "same")

    def config_set(self, path: str, value: str) -> None:
        self.pulumi("config", "set", "--path", path, value)

    def outputs(self) -> dict[str, Any]:
        result = self.pulumi("stack", "output", "--json", "--show-secrets")
        outputs: dict[str, Any] = json.loads(result.stdout)
        return outputs

    def write_kubeconfig(self) -> Path:
        kubeconfig = self.outputs()["kubeconfig"]
        self.kubeconfig.touch(mode=0o600)
        self.kubeconfig.write_text(kubeconfig)
        return self.kubeconfig

    def kubectl(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        return self.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], check=check,
                        timeout=timeout).stdout

    def kubectl_refused(self, *args: str) -> str:
        """Runs a kubectl command that must fail; returns its output (stdout + stderr).

        Raises E2EError when it succeeds."""
        result = self.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], check=False)
        if result.returncode == 0:
            raise E2EError(f"`kubectl {shlex.join(args)}` succeeded; it should have failed")
        return result.stdout + result.stderr

    def docker(self, *args: str) -> str:
        return self.run(["docker", *args], timeout=120).stdout


def docker_lines(*args: str) -> list[str]:
    """The words `docker args` printed; E2EError naming the command when it fails."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        raise E2EError(f"`docker {shlex.join(args[:3])} ...` exited {done.returncode}: "
                       f"{done.stderr.strip()[-500:]}")
    return done.stdout.split()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 300,
             interval: float = 3) -> Any:
    """check()'s first truthy result, polled every `interval` s; AssertionError naming `what`
    and the last result after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not true within {timeout:.0f}s (last: {last!r})")


def shell_env() -> str:
    """Shell lines for `eval "$(make -s e2e-env)"`: the e2e's tools, backend and kubeconfig."""
    env = environment()
    names = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_HOME",
             "PULUMI_SKIP_UPDATE_CHECK", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION")
    lines = [f"export PATH={shlex.quote(str(BIN))}:\"$PATH\""]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in names]
    lines.append(f"export KUBECONFIG={shlex.quote(str(KUBECONFIG))}")
    lines.append(f"cd {shlex.quote(str(PROJECT))}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv == ["env"]:
        print(shell_env())
        return 0
    if argv == ["down"]:
        from tests.e2e.fleet import Fleet

        for stack in (STACK, "machines"):
            workspace = Workspace(stack, lambda: "")
            if PROJECT.exists() and workspace.stack_exists():
                workspace.pulumi("destroy", "--yes", "--skip-preview")
                workspace.pulumi("stack", "rm", "--yes", "--force")
                print(f"e2e-down: the {stack} stack is destroyed")
            else:
                print(f"e2e-down: no {stack} stack to destroy")
            workspace.remove_orphans()
        Fleet(E2E_DIR / "machines", [], "").remove_all()
        print("e2e-down: no machine container is left")
        return 0
    print("usage: python -m tests.e2e.project env|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except E2EError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
