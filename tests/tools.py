"""Helpers for tests: the project's own command-line tools (.venv/bin), a local registry, and
Prometheus samples read with prometheus_client's own parser."""

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlservice.probe import WaitTimeout, http, wait_until

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def unavailable(message: str) -> None:
    """Skip on a laptop; under CI=true (which installs every tool the tests drive) fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require(tool: str, how: str) -> str:
    """The path of `tool`, or unavailable() saying `how` to get it."""
    found = shutil.which(tool)
    if found is None:
        unavailable(f"{tool} is not installed ({how})")
    return found


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


@contextmanager
def running_registry(binary: str, tmp: Path, htpasswd: Path | None = None) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port (basic auth if htpasswd is given);
    yields its host:port, stops it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "registry", "path": str(htpasswd)}}
    (tmp / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log_path = tmp / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(tmp / "config.yml")], stdout=log, stderr=log
        )

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited: {log_path.read_text()}")
        # With auth, it is up when it asks for credentials.
        return http("GET", f"http://127.0.0.1:{port}/v2/", timeout=2).status == (
            401 if htpasswd else 200
        )

    try:
        try:
            wait_until(up, timeout=20, interval=0.2, what="docker-registry", retry_on=(OSError,))
        except WaitTimeout as error:
            pytest.fail(f"{error}: {log_path.read_text()}")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


Samples = dict[tuple[str, frozenset], float]


def metric_samples(text: str) -> Samples:
    """Every sample of a /metrics answer by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (nothing counted yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_total(samples: Samples, route: str, method: str, status: str) -> float:
    return sample(
        samples, "mlservice_http_requests_total", route=route, method=method, status=status
    )
