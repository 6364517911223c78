"""Settings, read from the environment in one place.

Every setting has a default that works for `make run`; deployments override them with
environment variables (see the README's configuration table).
"""

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path


class ConfigError(Exception):
    """A setting in the environment is present but unusable."""


DEFAULTS = {
    "MODEL_PATH": "models/model.skops",  # the model card sits next to it as model.json
    "ANSWERS_PATH": "data/sample_answers.csv",  # the ranked-answers example's table
    "MAX_ROWS": "10000",  # rows accepted in one prediction request (JSON or CSV)
    # Larger bodies are refused with 413. What MAX_ROWS rows need: a JSON row pretty-printed with
    # indent=2 and CRLF is at most 308 bytes (six lines of 6 spaces, the quoted name, ": ", a
    # value of at most 24 characters, "," and CRLF: 216 bytes plus the names' 72; its braces' two
    # lines 15 more), so 320 bytes a row; a CSV row is about half that.
    "MAX_BODY_BYTES": str(10_000 * 320),
    "LOG_LEVEL": "INFO",  # LOG_FORMAT: json on the platforms (PLATFORM_VARIABLES), else text
    # gunicorn (gunicorn.conf.py); WEB_CONCURRENCY's default is default_workers().
    # Containers and platforms (Procfile, app.yaml) must listen on every interface; `make run`
    # sets 127.0.0.1.
    "HOST": "0.0.0.0",  # noqa: S104
    "PORT": "8000",  # Heroku and App Engine set $PORT
    "WEB_TIMEOUT": "30",  # seconds before a stuck worker is killed and replaced
    "WEB_GRACEFUL_TIMEOUT": "8",  # seconds to finish requests on SIGTERM (Docker waits 10)
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
# Set by the platforms themselves: App Engine (GAE_ENV, GAE_SERVICE) and Heroku (DYNO). Lightsail
# sets none of its own, so containers.json sets LOG_FORMAT=json.
PLATFORM_VARIABLES = ("GAE_ENV", "GAE_SERVICE", "DYNO")
# /metrics answers only with this bearer token (RFC 6750: its b64token characters); long enough
# that guessing it over HTTP is hopeless.
METRICS_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/-]+=*")
METRICS_TOKEN_MIN_LENGTH = 32

# Each worker holds its own copy of the libraries, about 150 MB: 8 workers already need 1.2 GB,
# and with one request at a time per core more workers than cores + 1 only queue for the CPU.
MAX_DEFAULT_WORKERS = 8
MAX_WORKERS = 32  # an explicit WEB_CONCURRENCY above this is a typo, not a plan


def _positive_int(
    environ: Mapping[str, str], name: str, default: str | None = None, maximum: int | None = None
) -> int:
    raw = environ.get(name, DEFAULTS[name] if default is None else default).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}.")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}.")
    return value


def _path(environ: Mapping[str, str], name: str) -> str:
    path = environ.get(name, DEFAULTS[name]).strip()
    if not path:
        raise ConfigError(f"{name} is set but empty.")
    return path


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def metrics_token(environ: Mapping[str, str]) -> str | None:
    """The token /metrics asks for; None (no /metrics) when unset or empty.

    Empty counts as unset: a pipeline passes an empty string for a secret that does not exist.
    The messages never show the value: it is a secret.
    """
    token = environ.get("METRICS_TOKEN", "").strip()
    if not token:
        return None
    if len(token) < METRICS_TOKEN_MIN_LENGTH:
        raise ConfigError(
            f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters, "
            f"got {len(token)}."
        )
    if not METRICS_TOKEN_CHARACTERS.fullmatch(token):
        raise ConfigError(
            "METRICS_TOKEN may hold only letters, digits and - . _ ~ + / (then = at the end)."
        )
    return token


def from_environ(environ: Mapping[str, str] = os.environ) -> dict:
    """Return the Flask config for these environment variables, or raise ConfigError."""
    log_level = environ.get("LOG_LEVEL", DEFAULTS["LOG_LEVEL"]).strip().upper()
    on_platform = any(name in environ for name in PLATFORM_VARIABLES)
    log_format = environ.get("LOG_FORMAT", "json" if on_platform else "text").strip().lower()
    return {
        "MODEL_PATH": _path(environ, "MODEL_PATH"),
        "ANSWERS_PATH": _path(environ, "ANSWERS_PATH"),
        "MAX_ROWS": _positive_int(environ, "MAX_ROWS"),
        # Flask and Werkzeug enforce this one themselves and answer 413.
        "MAX_CONTENT_LENGTH": _positive_int(environ, "MAX_BODY_BYTES"),
        "LOG_LEVEL": _one_of("LOG_LEVEL", log_level, LOG_LEVELS),
        "LOG_FORMAT": _one_of("LOG_FORMAT", log_format, LOG_FORMATS),
        "METRICS_TOKEN": metrics_token(environ),
        # App Engine sets it; log lines then carry the trace Cloud Logging links them by.
        "GOOGLE_CLOUD_PROJECT": environ.get("GOOGLE_CLOUD_PROJECT", "").strip() or None,
    }


def _quota_cpus(cgroup_root: Path) -> float | None:
    """CPUs the container's CPU quota allows (cgroup v2 or v1), or None when there is none."""
    try:  # cgroup v2: "max 100000" or "150000 100000"
        quota, period = (cgroup_root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:  # cgroup v1: quota -1 means none
            quota = (cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup_root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max"
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity, lowered by a container's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity
        cpus = os.cpu_count() or 1
    quota = _quota_cpus(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))  # a 1.5-CPU quota is spread over 2 CPUs
    return max(cpus, 1)


def default_workers(cpus: int) -> int:
    """Requests are short and CPU-bound: one worker per CPU plus one to cover I/O waits."""
    return min(cpus + 1, MAX_DEFAULT_WORKERS)


def server_from_environ(environ: Mapping[str, str] = os.environ, cpus: int | None = None) -> dict:
    """gunicorn's settings for these environment variables, or raise ConfigError."""
    host = environ.get("HOST", DEFAULTS["HOST"]).strip()
    if not host:
        raise ConfigError("HOST is set but empty.")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    port = _positive_int(environ, "PORT", maximum=65535)
    if cpus is None:
        cpus = usable_cpus()
    return {
        "bind": f"{host}:{port}",
        "workers": _positive_int(
            environ, "WEB_CONCURRENCY", default=str(default_workers(cpus)), maximum=MAX_WORKERS
        ),
        "timeout": _positive_int(environ, "WEB_TIMEOUT"),
        "graceful_timeout": _positive_int(environ, "WEB_GRACEFUL_TIMEOUT"),
        "loglevel": from_environ(environ)["LOG_LEVEL"].lower(),
    }
