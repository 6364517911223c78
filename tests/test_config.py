import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlservice import config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    assert config.from_environ({}) == {
        "MODEL_PATH": "models/model.skops",
        "ANSWERS_PATH": "data/sample_answers.csv",
        "MAX_ROWS": 10000,
        "MAX_CONTENT_LENGTH": 3_200_000,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "text",
        "METRICS_TOKEN": None,
        "GOOGLE_CLOUD_PROJECT": None,
    }


@pytest.mark.parametrize(
    ("environ", "log_format"),
    [
        ({"GAE_ENV": "standard"}, "json"),  # App Engine
        ({"GAE_SERVICE": "default"}, "json"),
        ({"DYNO": "web.1"}, "json"),  # Heroku
        ({"DYNO": "web.1", "LOG_FORMAT": "text"}, "text"),  # a choice beats the platform's default
        ({"LOG_FORMAT": " JSON "}, "json"),
        ({"HOSTNAME": "laptop"}, "text"),
    ],
)
def test_log_format_defaults_to_json_on_the_platforms(environ, log_format):
    assert config.from_environ(environ)["LOG_FORMAT"] == log_format


TOKEN = "0123456789abcdefABCDEF-._~+/xyz0"  # noqa: S105 (32 characters, every kind allowed)


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("", None),  # a pipeline's secret that does not exist arrives empty: /metrics is off
        ("   ", None),
        (TOKEN, TOKEN),
        (f" {TOKEN}\n", TOKEN),
        (TOKEN + "==", TOKEN + "=="),  # base64 padding
    ],
)
def test_metrics_token(value, token):
    assert config.from_environ({"METRICS_TOKEN": value})["METRICS_TOKEN"] == token


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (TOKEN[:31], "METRICS_TOKEN must be at least 32 characters, got 31."),
        ("secret", "METRICS_TOKEN must be at least 32 characters, got 6."),
        (TOKEN[:31] + " ", "METRICS_TOKEN must be at least 32 characters, got 31."),
        (TOKEN[:16] + " " + TOKEN[16:], "METRICS_TOKEN may hold only letters, digits and"),
        (TOKEN + "=x", "METRICS_TOKEN may hold only letters, digits and"),
        ("=" + TOKEN, "METRICS_TOKEN may hold only letters, digits and"),
        (TOKEN[:31] + "é", "METRICS_TOKEN may hold only letters, digits and"),
    ],
)
def test_a_bad_metrics_token_is_refused_without_showing_it(value, message):
    with pytest.raises(config.ConfigError) as raised:
        config.from_environ({"METRICS_TOKEN": value})
    assert str(raised.value).startswith(message)
    assert str(raised.value).count("\n") == 0
    assert value.strip() not in str(raised.value)


def test_google_cloud_project_is_read_when_set():
    assert config.from_environ({"GOOGLE_CLOUD_PROJECT": " demo-123 "})["GOOGLE_CLOUD_PROJECT"] == (
        "demo-123"
    )
    assert config.from_environ({"GOOGLE_CLOUD_PROJECT": ""})["GOOGLE_CLOUD_PROJECT"] is None


@pytest.mark.parametrize(
    ("environ", "setting", "value"),
    [
        ({"MAX_ROWS": "1"}, "MAX_ROWS", 1),  # the smallest allowed
        ({"MAX_ROWS": " 12 "}, "MAX_ROWS", 12),
        ({"ANSWERS_PATH": " /srv/a.csv "}, "ANSWERS_PATH", "/srv/a.csv"),
    ],
)
def test_settings_at_the_edge_are_accepted(environ, setting, value):
    assert config.from_environ(environ)[setting] == value


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
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json, got 'xml'."),
        ({"LOG_FORMAT": "JSONL"}, "LOG_FORMAT must be one of text, json, got 'jsonl'."),
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


@pytest.mark.parametrize(
    ("cpus", "workers"),
    [(1, 2), (2, 3), (4, 5), (7, 8), (8, 8), (64, 8)],
)
def test_default_workers_one_per_cpu_plus_one_at_most_eight(cpus, workers):
    assert config.default_workers(cpus) == workers


def fake_cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("affinity", "files", "cpus"),
    [
        (64, {}, 64),  # no cgroup files: the affinity decides
        (64, {"cpu.max": "max 100000\n"}, 64),  # cgroup v2 without a quota
        (64, {"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs of quota keep two workers busy
        (64, {"cpu.max": "100000 100000\n"}, 1),
        (64, {"cpu.max": "50000 100000\n"}, 1),  # never below one
        (64, {"cpu.max": "1 100000\n"}, 1),  # the smallest quota still allows one CPU
        (64, {"cpu.max": "2 1\n"}, 2),
        (64, {"cpu.max": "0 100000\n"}, 64),  # a zero quota or period is no quota
        (64, {"cpu.max": "100000 0\n"}, 64),
        (2, {"cpu.max": "400000 100000\n"}, 2),  # a quota above the affinity does not add CPUs
        (64, {"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
        (64, {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 64),
        (3, {"cpu.max": "garbage\n"}, 3),
    ],
)
def test_usable_cpus_follow_affinity_and_container_quota(
    monkeypatch, tmp_path, affinity, files, cpus
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    assert config.usable_cpus(fake_cgroup(tmp_path, files)) == cpus


def test_server_settings_defaults():
    assert config.server_from_environ({}, cpus=2) == {
        "bind": "0.0.0.0:8000",
        "workers": 3,
        "timeout": 30,
        "graceful_timeout": 8,
        "loglevel": "info",
    }


def test_server_settings_from_environment():
    settings = config.server_from_environ(
        {
            "HOST": "127.0.0.1",
            "PORT": "9123",
            "WEB_CONCURRENCY": "12",
            "WEB_TIMEOUT": "12",
            "WEB_GRACEFUL_TIMEOUT": "5",
            "LOG_LEVEL": "warning",
        },
        cpus=64,
    )
    assert settings == {
        "bind": "127.0.0.1:9123",
        "workers": 12,  # an explicit count may exceed the default's cap of 8
        "timeout": 12,
        "graceful_timeout": 5,
        "loglevel": "warning",
    }


def test_ipv6_host_is_bracketed():
    assert config.server_from_environ({"HOST": "::1", "PORT": "80"}, cpus=1)["bind"] == "[::1]:80"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "99999"}, "PORT must be at most 65535, got 99999."),
        ({"PORT": "0"}, "PORT must be at least 1, got 0."),
        ({"PORT": "http"}, "PORT must be a whole number, got 'http'."),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1, got 0."),
        ({"WEB_CONCURRENCY": "33"}, "WEB_CONCURRENCY must be at most 32, got 33."),
        ({"WEB_TIMEOUT": "0"}, "WEB_TIMEOUT must be at least 1, got 0."),
        (
            {"WEB_GRACEFUL_TIMEOUT": "2.5"},
            "WEB_GRACEFUL_TIMEOUT must be a whole number, got '2.5'.",
        ),
        ({"HOST": "  "}, "HOST is set but empty."),
        (
            {"LOG_LEVEL": "chatty"},
            "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'CHATTY'.",
        ),
    ],
)
def test_bad_server_settings_fail_with_one_clear_sentence(environ, message):
    with pytest.raises(config.ConfigError) as raised:
        config.server_from_environ(environ, cpus=2)
    assert str(raised.value) == message


def test_usable_cpus_without_affinity_fall_back_to_the_cpu_count(monkeypatch, tmp_path):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert config.usable_cpus(tmp_path) == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: assume one
    assert config.usable_cpus(tmp_path) == 1


def test_server_settings_count_the_usable_cpus(monkeypatch):
    monkeypatch.setattr(config, "usable_cpus", lambda: 5)
    assert config.server_from_environ({})["workers"] == 6


@pytest.mark.parametrize(
    ("environ", "bind"),
    [
        ({"HOST": "[::1]", "PORT": "80"}, "[::1]:80"),  # already bracketed
        ({"HOST": " 10.0.0.1 ", "PORT": "1"}, "10.0.0.1:1"),
        ({"PORT": "65535"}, "0.0.0.0:65535"),  # the highest port
    ],
)
def test_server_bind_address(environ, bind):
    assert config.server_from_environ(environ, cpus=1)["bind"] == bind


def test_explicit_worker_count_may_reach_the_maximum():
    assert config.server_from_environ({"WEB_CONCURRENCY": "32"}, cpus=1)["workers"] == 32


def test_the_lightsail_container_logs_json_and_passes_the_settings_check():
    # Lightsail sets no variable of its own to recognise it by; containers.json says json.
    environment = json.loads((ROOT / "containers.json").read_text())["web"]["environment"]
    assert config.from_environ(environment)["LOG_FORMAT"] == "json"
