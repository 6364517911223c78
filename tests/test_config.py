import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from mlservice import config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    settings = config.from_environ({})
    assert settings == {
        **{k: v for k, v in settings.items() if k not in {"MODEL_PATH", "MAX_ROWS", "LOG_LEVEL"}},
        "MODEL_PATH": "models/model.skops",
        "MAX_ROWS": 10000,
        "MAX_CONTENT_LENGTH": 10_000 * 320,
        "LOG_LEVEL": "INFO",
    }


def test_environment_overrides():
    settings = config.from_environ(
        {
            "MODEL_PATH": "/srv/m.skops",
            "MAX_ROWS": "7",
            "MAX_BODY_BYTES": "2048",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings["MODEL_PATH"] == "/srv/m.skops"
    assert settings["MAX_ROWS"] == 7
    assert settings["MAX_CONTENT_LENGTH"] == 2048
    assert settings["LOG_LEVEL"] == "DEBUG"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MAX_ROWS": "many"}, "MAX_ROWS must be a whole number, got 'many'."),
        ({"MAX_ROWS": "0"}, "MAX_ROWS must be at least 1, got 0."),
        ({"MAX_BODY_BYTES": "1.5"}, "MAX_BODY_BYTES must be a whole number, got '1.5'."),
        (
            {"LOG_LEVEL": "LOUD"},
            "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'.",
        ),
        ({"MODEL_PATH": " "}, "MODEL_PATH is set but empty."),
    ],
)
def test_bad_settings_fail_with_one_clear_sentence(environ, message):
    with pytest.raises(config.ConfigError) as raised:
        config.from_environ(environ)
    assert str(raised.value) == message


def start_wsgi(**environ):
    env = {**os.environ, **environ}
    return subprocess.run(
        [sys.executable, "-c", "import mlservice.wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        (
            {"MODEL_PATH": "/nonexistent/model.skops"},
            "Model file /nonexistent/model.skops not found",
        ),
        ({"MAX_ROWS": "-5"}, "MAX_ROWS must be at least 1, got -5."),
    ],
)
def test_server_refuses_to_start_with_one_line(environ, reason):
    result = start_wsgi(**environ)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"mlservice cannot start: {reason}")


def read_gunicorn_conf(monkeypatch, **environ) -> dict:
    for name in ("PORT", "WEB_CONCURRENCY", "WEB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_binds_port_and_preloads(monkeypatch):
    conf = read_gunicorn_conf(monkeypatch, PORT="9123", WEB_CONCURRENCY="3", WEB_TIMEOUT="12")
    assert conf["bind"] == "0.0.0.0:9123"
    assert conf["workers"] == 3
    assert conf["timeout"] == 12
    assert conf["preload_app"] is True
    assert conf["wsgi_app"] == "mlservice.wsgi:app"
    assert conf["graceful_timeout"] < 10  # inside Docker's stop timeout


def test_gunicorn_defaults(monkeypatch):
    conf = read_gunicorn_conf(monkeypatch)
    assert conf["bind"] == "0.0.0.0:8000"
    assert conf["workers"] == (os.cpu_count() or 1) + 1
