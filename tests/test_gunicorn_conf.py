"""gunicorn.conf.py: the settings every production start uses, and refusing bad ones."""

import json
import os
import runpy
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from mlservice.probe import http, wait_until
from scripts.live_server import LISTENING, gunicorn_server

ROOT = Path(__file__).resolve().parent.parent
SERVER_VARIABLES = ("HOST", "PORT", "WEB_CONCURRENCY", "WEB_TIMEOUT", "WEB_GRACEFUL_TIMEOUT")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
TOKEN = "gunicorn-conf-test-token-0123456789abcdef"  # noqa: S105


def clean_environ(**environ: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES + THREAD_VARIABLES}
    return {**env, **environ}


def read_conf(monkeypatch, keep_metrics_dir: bool = False, **environ: str) -> dict:
    """Run gunicorn.conf.py here; what it sets in the environment is undone after the test, and
    the metrics directory it makes is removed unless kept (then on_exit removes it)."""
    names = (
        *SERVER_VARIABLES,
        *THREAD_VARIABLES,
        "PROMETHEUS_MULTIPROC_DIR",
        "LOG_FORMAT",
        "METRICS_TOKEN",
    )
    for name in names:
        if name not in environ:
            monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    if not keep_metrics_dir:
        conf["on_exit"](None)
    return conf


def test_settings_come_from_the_environment(monkeypatch):
    conf = read_conf(
        monkeypatch, HOST="127.0.0.1", PORT="9123", WEB_CONCURRENCY="3", WEB_TIMEOUT="12"
    )
    assert conf["bind"] == "127.0.0.1:9123"
    assert conf["workers"] == 3
    assert conf["timeout"] == 12
    assert conf["graceful_timeout"] < 10  # inside Docker's stop timeout
    assert conf["preload_app"] is True
    assert conf["wsgi_app"] == "mlservice.wsgi:app"


def test_image_and_platform_default_listens_on_every_interface(monkeypatch):
    conf = read_conf(monkeypatch, WEB_CONCURRENCY="2")
    assert conf["bind"] == "0.0.0.0:8000"


def test_each_server_start_gets_a_fresh_metrics_directory_kept_across_a_reload(monkeypatch):
    inherited = "/srv/mlservice-metrics-abcd-1"  # another server's, e.g. a parent process's
    conf = read_conf(
        monkeypatch, keep_metrics_dir=True, PROMETHEUS_MULTIPROC_DIR=inherited, METRICS_TOKEN=TOKEN
    )
    made = Path(conf["_metrics_dir"])
    try:
        assert made != Path(inherited)
        assert made.is_dir()
        assert list(made.iterdir()) == []
        assert made.name.startswith("mlservice-metrics-")
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(made)  # prometheus_client reads it
        # SIGHUP re-reads this file in the same master: the counts so far stay.
        again = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
        assert again["_metrics_dir"] == str(made)
    finally:
        conf["on_exit"](None)
    assert not made.exists()


def test_without_metrics_there_is_no_metrics_directory(monkeypatch):
    conf = read_conf(monkeypatch, keep_metrics_dir=True, PROMETHEUS_MULTIPROC_DIR="/srv/x")
    assert conf["_metrics_dir"] == ""
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == "/srv/x"  # untouched: prometheus_client
    conf["child_exit"](None, SimpleNamespace(pid=123))  # nothing to mark
    conf["on_exit"](None)


def test_no_place_for_the_metrics_stops_the_start_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as stopped:
        read_conf(monkeypatch, METRICS_TOKEN=TOKEN)
    assert str(stopped.value).startswith("mlservice cannot start: no directory for the metrics: ")


def test_a_dead_workers_live_gauges_leave_the_sums(monkeypatch):
    conf = read_conf(monkeypatch, keep_metrics_dir=True, METRICS_TOKEN=TOKEN)
    folder = Path(conf["_metrics_dir"])
    try:
        for name in ("gauge_livesum_123.db", "gauge_livesum_456.db", "counter_123.db"):
            (folder / name).write_bytes(b"")
        conf["child_exit"](None, SimpleNamespace(pid=123))
        # Its counters stay: what it counted before dying still happened.
        assert sorted(p.name for p in folder.iterdir()) == [
            "counter_123.db",
            "gauge_livesum_456.db",
        ]
    finally:
        conf["on_exit"](None)


def test_the_app_logs_each_request_so_gunicorn_writes_no_access_log(monkeypatch):
    conf = read_conf(monkeypatch, WEB_CONCURRENCY="2")
    assert conf["accesslog"] is None
    assert conf["errorlog"] == "-"


@pytest.mark.parametrize(
    ("log_format", "formatter"), [("json", "JsonFormatter"), ("text", "TextFormatter")]
)
def test_gunicorns_own_lines_take_the_service_format(monkeypatch, log_format, formatter):
    conf = read_conf(monkeypatch, LOG_FORMAT=log_format)
    logger = conf["logger_class"](Config())
    handlers = logger.error_log.handlers
    assert handlers
    assert all(type(handler.formatter).__name__ == formatter for handler in handlers)


def test_native_thread_pools_default_to_one_but_keep_a_set_value(monkeypatch):
    read_conf(monkeypatch, OPENBLAS_NUM_THREADS="4")
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({"PORT": "99999"}, "PORT must be at most 65535, got 99999."),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1, got 0."),
        ({"WEB_TIMEOUT": "soon"}, "WEB_TIMEOUT must be a whole number, got 'soon'."),
        ({"WEB_GRACEFUL_TIMEOUT": "-3"}, "WEB_GRACEFUL_TIMEOUT must be at least 1, got -3."),
        ({"HOST": ""}, "HOST is set but empty."),
    ],
)
def test_gunicorn_refuses_a_bad_setting_with_one_line(environ, line):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=clean_environ(**environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"mlservice cannot start: {line}\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY must be a whole number, got 'abc'."),
        ({"PORT": "99999"}, "PORT must be at most 65535, got 99999."),
    ],
)
def test_the_server_command_refuses_a_bad_setting_with_one_line(environ, line):
    # gunicorn itself parses WEB_CONCURRENCY on import, before reading gunicorn.conf.py.
    result = subprocess.run(
        [Path(sys.executable).parent / "mlservice-server"],
        cwd=ROOT,
        env=clean_environ(**environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"mlservice cannot start: {line}\n"


def test_the_server_command_runs_gunicorn_with_the_config(tmp_path):
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [Path(sys.executable).parent / "mlservice-server", "--bind", "127.0.0.1:0"],
            cwd=ROOT,
            env=clean_environ(WEB_CONCURRENCY="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def listening():
            assert server.poll() is None, log_path.read_text()
            return LISTENING.search(log_path.read_text())

        match = wait_until(listening, timeout=60, interval=0.1, what="gunicorn's address")
        assert http("GET", f"http://{match.group(1)}/readyz").json()["status"] == "ready"
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0


def served_thread_pools(env: dict[str, str]) -> list[tuple[str, int]]:
    """Thread counts of numpy's and scipy's native pools, asked from inside a worker."""
    with (
        gunicorn_server(env=env, workers=1, app="tests.threadpool_app:app") as server,
        urllib.request.urlopen(f"{server.url}/threads", timeout=10) as response,
    ):
        pools = json.load(response)
    assert pools, "no native thread pool loaded: nothing was measured"
    return [(api, threads) for api, threads in pools]


def test_a_worker_runs_numeric_libraries_with_one_thread():
    pools = served_thread_pools(clean_environ())
    assert {threads for _, threads in pools} == {1}


def test_a_thread_count_set_by_the_operator_is_kept():
    # 2: OpenBLAS never uses more threads than the machine has CPUs (2 is the smallest CI runner).
    pools = served_thread_pools(clean_environ(OPENBLAS_NUM_THREADS="2"))
    assert {threads for api, threads in pools if api == "openblas"} == {2}
