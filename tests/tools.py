"""Running the project's own command-line tools (.venv/bin) from tests."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def run_tool(*args: str) -> subprocess.CompletedProcess:
    """Run .venv/bin/<args[0]> in the repository root; the caller checks the result."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
