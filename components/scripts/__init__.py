"""The node scripts, as the exact text the program feeds to a host's shell on stdin.

Each script sources `common.sh` when run from a file; over stdin there is no file to source, so
the program sends `common.sh` followed by the script, and the script's guard sees the functions
already defined. Several scripts can share one stdin: each runs its `main` as it is read, in
order, and the first failure stops the rest (`set -e`).
"""

from collections.abc import Sequence
from functools import cache
from pathlib import Path

SCRIPTS_DIR = Path(__file__).parent
COMMON = "common.sh"


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
    return "\n\n".join([read_script(COMMON).rstrip("\n"), *(read_script(n) for n in ordered)])
