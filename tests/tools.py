"""Helpers for tests: the project's own command-line tools (.venv/bin), a local registry."""

import subprocess
from pathlib import Path

import pytest

from mlservice.probe import WaitTimeout, http, wait_until

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


def wait_for_registry(process, url: str, status: int, log: Path) -> None:
    """Wait until Debian's docker-registry at `url` answers `status`; fail with its log if not."""

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited: {log.read_text()}")
        return http("GET", url, timeout=2).status == status

    try:
        wait_until(up, timeout=20, interval=0.2, what="docker-registry", retry_on=(OSError,))
    except WaitTimeout as error:
        pytest.fail(f"{error}: {log.read_text()}")
