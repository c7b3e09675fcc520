"""The node scripts, as the exact text the program feeds to a host's shell on stdin.

Each script sources `common.sh` (and the libraries it needs, LIBRARIES) when run from a file;
over stdin there is no file to source, so the program sends `common.sh`, then each library a
script needs (once, before the first script that needs it), then the script, and the script's
guard sees the functions already defined. Several scripts can share one stdin: each runs its
`main` as it is read, in order, and the first failure stops the rest (`set -e`).
"""

import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

SCRIPTS_DIR = Path(__file__).parent
COMMON = "common.sh"
# Scripts that define functions only, and the scripts that source them.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "install-kubeadm.sh": ("packages.sh",),
    "upgrade-node.sh": ("packages.sh",),
    "kubeadm-init.sh": ("reset.sh",),
    "kubeadm-join.sh": ("reset.sh",),
    "reset-node.sh": ("reset.sh",),
}


def script_path(name: str) -> Path:
    path = SCRIPTS_DIR / name
    if path.suffix != ".sh" or not path.is_file():
        raise FileNotFoundError(f"no node script named {name!r} in {SCRIPTS_DIR}")
    return path


@cache
def read_script(name: str) -> str:
    return script_path(name).read_text()


def script_text(names: str | Sequence[str]) -> str:
    """The text sent on stdin for one script ("preflight.sh") or several in order."""
    ordered = [names] if isinstance(names, str) else list(names)
    if not ordered:
        raise ValueError("script_text needs at least one script name")
    parts = [read_script(COMMON).rstrip("\n")]
    sent: set[str] = set()
    for name in ordered:
        for library in LIBRARIES.get(name, ()):
            if library not in sent:
                sent.add(library)
                parts.append(read_script(library).rstrip("\n"))
        parts.append(read_script(name))
    return "\n\n".join(parts)


def script_command(name: str, env: Mapping[str, str] | None = None) -> str:
    """One script (with common.sh and its libraries) as a single shell command, for a step's
    delete, which must not read stdin (components/transport.py): `env K=V bash -c TEXT`."""
    assignments = "".join(f"{key}={shlex.quote(value)} " for key, value in sorted(
        (env or {}).items()))
    prefix = f"env {assignments}" if assignments else ""
    return f"{prefix}bash -c {shlex.quote(script_text(name))}"
