"""Start the real production server (gunicorn with gunicorn.conf.py) on a free loopback port.

For tests and scripts that need HTTP over a socket: the browser, fault, SIGTERM and soak checks
and the benchmark. Usage:

    from scripts.live_server import running_server   # tests; scripts beside it: `import live_server`

    with running_server(env={"MAX_ROWS": "5"}, workers=2) as base_url:
        http("GET", f"{base_url}/healthz")

`gunicorn_server(...)` yields a `Server` instead, for callers that need the master's pid, its
workers or the log. The server's output goes to a file (a pipe nobody reads would fill up and
stall it under load); it is stopped with SIGTERM, then SIGKILL, when the block ends.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlservice.metrics import child_pids
from mlservice.probe import NotYet, WaitTimeout, http, wait_until

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60  # seconds; importing scikit-learn and pandas on a busy CI runner is slow
LISTENING = re.compile(r"Listening at: http://([\d.]+:\d+)")


class ServerError(Exception):
    """The server did not start; the message ends with its log."""


@dataclass
class Server:
    process: subprocess.Popen
    log_path: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        return child_pids(self.pid)


def rss_kib(pid: int) -> int:
    """Resident memory of one process in KiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ProcessLookupError(pid)


def _ready(server: Server) -> bool:
    if server.process.poll() is not None:
        raise ServerError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
    if not server.url and (match := LISTENING.search(server.log())):
        server.url = f"http://{match.group(1)}"
    if not server.url:
        raise NotYet("no listening address in the log yet")
    return http("GET", f"{server.url}/readyz", timeout=2).status == 200


def _wait_until_ready(server: Server) -> None:
    try:
        wait_until(
            lambda: _ready(server),
            timeout=START_TIMEOUT,
            interval=0.1,
            what="gunicorn to be ready",
            retry_on=(NotYet, OSError),
        )
    except WaitTimeout as error:
        raise ServerError(f"{error}:\n{server.log()}") from None


def stop(server: Server, timeout: float = 15) -> int:
    """SIGTERM (gunicorn's graceful stop), SIGKILL if it outlasts `timeout`; return the code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)
    return server.process.returncode


@contextmanager
def gunicorn_server(
    env: dict[str, str] | None = None,
    workers: int | None = 2,
    wait: bool = True,
    app: str | None = None,
    options: tuple[str, ...] = (),
) -> Iterator[Server]:
    """Run `gunicorn -c gunicorn.conf.py` on 127.0.0.1 with a port the kernel picks.

    `env` adds to (or overrides) this process's environment; workers=None keeps the config's
    (WEB_CONCURRENCY); `app` serves another WSGI app ("module:name") with the same settings, and
    it must answer /readyz; `options` are more gunicorn command-line settings. With wait=False the block starts as soon as the process does, for
    callers that expect start-up to fail.
    """
    with tempfile.TemporaryDirectory(prefix="mlservice-server-") as tmp:
        log_path = Path(tmp) / "gunicorn.log"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            # Command-line settings win over the config file: loopback only, port 0, and the
            # info level that prints the "Listening at" line this launcher reads the port from.
            "--bind",
            "127.0.0.1:0",
            "--log-level",
            "info",
            *(["--workers", str(workers)] if workers is not None else []),
            *options,
            *([app] if app else []),
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(process=process, log_path=log_path)
        try:
            if wait:
                _wait_until_ready(server)
            yield server
        finally:
            stop(server)


@contextmanager
def running_server(env: dict[str, str] | None = None, workers: int = 2) -> Iterator[str]:
    """Run the production server; yield its base URL, e.g. http://127.0.0.1:41234."""
    with gunicorn_server(env=env, workers=workers) as server:
        yield server.url
