"""Drive a URL with wrk and scripts/wrk.lua; shared by `make bench` and `make soak`."""

import os
import re
import shutil
import subprocess
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk.lua"
RESULT = re.compile(r"^RESULT (.*)$", re.MULTILINE)
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


def run(
    url: str,
    seconds: int,
    connections: int,
    threads: int = 2,
    method: str = "POST",
    body: str = "",
    cpus: set[int] | None = None,
) -> dict[str, int]:
    """wrk's totals: requests, duration_us, non_2xx, socket error counts and p50/p99/max in µs.

    `cpus`: the CPUs wrk runs on (Linux), when it must not take CPU from the server measured."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(LUA), url]
    command += ["--", method, *([body] if body else [])]
    finished = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    match = RESULT.search(finished.stdout)
    if finished.returncode != 0 or not match:
        raise SystemExit(
            f"wrk failed ({finished.returncode}): {finished.stderr or finished.stdout}"
        )
    return {key: int(value) for key, value in (pair.split("=") for pair in match[1].split())}
