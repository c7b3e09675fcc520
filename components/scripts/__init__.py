"""The node scripts, as the exact text the program feeds to a host's shell on stdin.

Each script sources `common.sh` when run from a file; over stdin there is no file to source, so
the program sends `common.sh` followed by the script, and the script's guard sees the functions
already defined.
"""

from pathlib import Path

SCRIPTS_DIR = Path(__file__).parent
COMMON = "common.sh"


def script_path(name: str) -> Path:
    path = SCRIPTS_DIR / name
    if path.suffix != ".sh" or not path.is_file():
        raise FileNotFoundError(f"no node script named {name!r} in {SCRIPTS_DIR}")
    return path


def script_text(name: str) -> str:
    """The text sent on stdin for script `name` (for example "preflight.sh")."""
    common = (SCRIPTS_DIR / COMMON).read_text()
    return common.rstrip("\n") + "\n\n" + script_path(name).read_text()
