"""Settings, read from the environment in one place.

Every setting has a default that works for `make run`; deployments override them with
environment variables (see the README's configuration table).
"""

import logging
import os
from collections.abc import Mapping


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
    "LOG_LEVEL": "INFO",
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _positive_int(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name, DEFAULTS[name]).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}.")
    return value


def _path(environ: Mapping[str, str], name: str) -> str:
    path = environ.get(name, DEFAULTS[name]).strip()
    if not path:
        raise ConfigError(f"{name} is set but empty.")
    return path


def from_environ(environ: Mapping[str, str] = os.environ) -> dict:
    """Return the Flask config for these environment variables, or raise ConfigError."""
    log_level = environ.get("LOG_LEVEL", DEFAULTS["LOG_LEVEL"]).strip().upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}.")
    return {
        "MODEL_PATH": _path(environ, "MODEL_PATH"),
        "ANSWERS_PATH": _path(environ, "ANSWERS_PATH"),
        "MAX_ROWS": _positive_int(environ, "MAX_ROWS"),
        # Flask and Werkzeug enforce this one themselves and answer 413.
        "MAX_CONTENT_LENGTH": _positive_int(environ, "MAX_BODY_BYTES"),
        "LOG_LEVEL": log_level,
    }


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger().setLevel(level)
