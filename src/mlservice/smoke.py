"""The smoke test every deployment runs against its URL: `mlservice smoke URL`.

Standard library only, so it runs anywhere the package is installed, the image included.
"""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit


class SmokeFailure(Exception):
    pass


def base_url(url: str) -> str:
    """The service's base URL; http:// when none is given (localhost:8000)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number up to 65535
        valid = False
    valid = valid and url.isprintable() and " " not in url  # urllib refuses these later
    if not valid:
        raise ValueError(f"{url!r} is not an http(s) URL; give one like http://localhost:8000")
    return parts.geturl().rstrip("/")


def _request(url: str, body: bytes | None = None, content_type: str | None = None):
    method = "POST" if body is not None else "GET"
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 (operator's URL)
    if content_type:
        request.add_header("Content-Type", content_type)
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (URL is the operator's)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _json(url: str, body: object = None, expect: int = 200) -> dict:
    data = None if body is None else json.dumps(body).encode()
    status, raw = _request(url, data, "application/json" if data is not None else None)
    if status != expect:
        raise SmokeFailure(f"{url} answered {status}, expected {expect}: {raw[:200]!r}")
    try:
        return json.loads(raw)
    except ValueError:
        raise SmokeFailure(f"{url} did not answer JSON: {raw[:200]!r}") from None


def wait_until_ready(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = _request(f"{base}/readyz")
            if status == 200:
                return
            reason = f"status {status}"
        except OSError as error:
            reason = str(error)
        if time.monotonic() >= deadline:
            raise SmokeFailure(f"{base}/readyz not ready after {timeout:.0f} s ({reason})")
        time.sleep(1)


def run(base: str, wait: float = 0, say: Callable[[str], None] = print) -> str:
    """Check a running service end to end; return its model version or raise SmokeFailure."""
    base = base.rstrip("/")
    if wait:
        wait_until_ready(base, wait)
    _json(f"{base}/healthz")
    say("ok   /healthz")
    ready = _json(f"{base}/readyz")
    say(f"ok   /readyz (model {ready['model_version']})")

    card = _json(f"{base}/api/v1/model")
    if card.get("version") != ready["model_version"]:
        raise SmokeFailure("/api/v1/model and /readyz disagree on the model version")
    for expected, row in card["examples"].items():
        answer = _json(f"{base}/api/v1/predict", row)
        label = answer["predictions"][0]["label"]
        if label != expected:
            raise SmokeFailure(f"the {expected} example was predicted {label}")
        say(f"ok   predict {expected} example -> {label}")

    row = dict(next(iter(card["examples"].values())))
    row[next(iter(row))] = "not a number"
    status, raw = _request(f"{base}/api/v1/predict", json.dumps(row).encode(), "application/json")
    try:
        code = json.loads(raw)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if not 400 <= status < 500 or code is None:
        raise SmokeFailure(f"bad input answered {status} {raw[:200]!r}, expected a 4xx JSON error")
    say(f"ok   bad input -> {status} {code}")
    return ready["model_version"]
