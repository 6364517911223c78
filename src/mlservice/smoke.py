"""The smoke test every deployment runs against its URL: `mlservice smoke URL`.

Standard library only (and prometheus_client's parser, for /metrics), so it runs anywhere the
package is installed, the image included, without loading Flask or numpy.
"""

import csv
import io
import json
import math
from collections.abc import Callable
from urllib.parse import urlsplit

from mlservice.probe import NotYet, WaitTimeout, http, wait_until


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


def _request(
    url: str,
    body: bytes | None = None,
    content_type: str | None = None,
    headers: dict | None = None,
):
    headers = {"Accept": "application/json", **(headers or {})}
    if content_type:
        headers["Content-Type"] = content_type
    reply = http("POST" if body is not None else "GET", url, body=body, headers=headers)
    return reply.status, reply.body


def _json(url: str, body: object = None, expect: int = 200) -> dict:
    data = None if body is None else json.dumps(body).encode()
    status, raw = _request(url, data, "application/json" if data is not None else None)
    if status != expect:
        raise SmokeFailure(f"{url} answered {status}, expected {expect}: {raw[:200]!r}")
    try:
        return json.loads(raw)
    except ValueError:
        raise SmokeFailure(f"{url} did not answer JSON: {raw[:200]!r}") from None


def check_probabilities(label: str, probabilities: dict, labels: list, where: str) -> None:
    """One probability per label, each from 0 to 1, summing to 1, the label the most probable."""
    if sorted(probabilities) != sorted(labels):
        raise SmokeFailure(f"{where}: probabilities for {sorted(probabilities)}, not {labels}")
    for name, value in probabilities.items():
        if not (isinstance(value, float | int) and 0 <= value <= 1):
            raise SmokeFailure(f"{where}: the probability of {name} is {value!r}")
    if not math.isclose(sum(probabilities.values()), 1, abs_tol=1e-6):
        raise SmokeFailure(f"{where}: the probabilities sum to {sum(probabilities.values())}")
    if label not in probabilities or probabilities[label] < max(probabilities.values()):
        raise SmokeFailure(f"{where}: the label {label} is not the most probable class")


def least_row(card: dict) -> dict:
    """A valid row of any model: each feature's least value seen in training."""
    return {feature["name"]: feature["training_min"] for feature in card["features"]}


def predict_csv(base: str, card: dict) -> list[str]:
    """Score the examples, and a row of the least values seen in training, as one CSV table."""
    names = [feature["name"] for feature in card["features"]]
    rows = [*card["examples"].values(), least_row(card)]
    table = "\n".join([",".join(names), *(",".join(repr(r[n]) for n in names) for r in rows)])
    status, raw = _request(f"{base}/api/v1/predict", table.encode() + b"\n", "text/csv")
    if status != 200:
        raise SmokeFailure(f"the CSV batch answered {status}, expected 200: {raw[:200]!r}")
    header, *scored = csv.reader(io.StringIO(raw.decode("utf-8")))
    columns = [card["csv_columns"][label] for label in card["labels"]]
    if header != [*names, "label", *columns]:
        raise SmokeFailure(
            f"the CSV answer's header is {header}, not the features, label, {columns}"
        )
    if len(scored) != len(rows):
        raise SmokeFailure(f"the CSV answer has {len(scored)} rows for the {len(rows)} sent")
    predicted = []
    for number, (cells, expected) in enumerate(
        zip(scored, [*card["examples"], None], strict=True), start=1
    ):
        label, values = cells[len(names)], map(float, cells[len(names) + 1 :])
        probabilities = dict(zip(card["labels"], values, strict=True))
        check_probabilities(label, probabilities, card["labels"], f"CSV row {number}")
        if expected is not None and label != expected:
            raise SmokeFailure(f"CSV row {number}, the {expected} example, was predicted {label}")
        predicted.append(label)
    return predicted


def wait_until_ready(base: str, timeout: float) -> None:
    def ready() -> bool:
        status, _ = _request(f"{base}/readyz")
        if status != 200:
            raise NotYet(f"status {status}")
        return True

    try:
        wait_until(
            ready, timeout=timeout, interval=1, what=f"{base}/readyz", retry_on=(NotYet, OSError)
        )
    except WaitTimeout as error:
        raise SmokeFailure(
            f"{base}/readyz not ready after {timeout:.0f} s ({error.reason or 'no answer'})"
        ) from None


def check_metrics(base: str, token: str | None, model_version: str) -> str:
    """/metrics is never public: with the token it answers and reports the served model, without
    it 401; with no token to test with, it must refuse (401) or be off (404). Returns what held."""
    if not token:
        status, _ = _request(f"{base}/metrics")
        if status not in (401, 404):
            raise SmokeFailure(
                f"/metrics answered {status} without a token, expected 404 (off) or 401"
            )
        return f"/metrics is not public ({status}); set METRICS_TOKEN to check that it answers"
    status, raw = _request(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
    if status != 200:
        hint = ": is METRICS_TOKEN set on the service?" if status == 404 else ""
        raise SmokeFailure(f"/metrics answered {status} with the token, expected 200{hint}")
    from prometheus_client.parser import text_string_to_metric_families

    try:
        versions = {
            sample.labels.get("version")
            for family in text_string_to_metric_families(raw.decode())
            if family.name == "mlservice_model_info"
            for sample in family.samples
        }
    except (ValueError, UnicodeDecodeError) as error:
        raise SmokeFailure(f"/metrics is not in Prometheus text format: {error}") from None
    if model_version not in versions:
        raise SmokeFailure(f"/metrics does not report the served model {model_version}")
    status, _ = _request(f"{base}/metrics")
    if status != 401:
        raise SmokeFailure(f"/metrics answered {status} without the token, expected 401")
    return "/metrics answers with the token, refuses without it (401)"


def run(
    base: str, wait: float = 0, say: Callable[[str], None] = print, metrics_token: str | None = None
) -> str:
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
    labels = card["labels"]
    for expected, row in card["examples"].items():
        [prediction] = _json(f"{base}/api/v1/predict", row)["predictions"]
        label = prediction["label"]
        check_probabilities(label, prediction["probabilities"], labels, f"the {expected} example")
        if label != expected:
            raise SmokeFailure(f"the {expected} example was predicted {label}")
        say(f"ok   predict {expected} example -> {label}")
    predicted = predict_csv(base, card)
    say(f"ok   predict CSV of {len(predicted)} rows -> {', '.join(predicted)}")

    row = least_row(card)
    row[next(iter(row))] = "not a number"
    status, raw = _request(f"{base}/api/v1/predict", json.dumps(row).encode(), "application/json")
    try:
        code = json.loads(raw)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if not 400 <= status < 500 or code is None:
        raise SmokeFailure(f"bad input answered {status} {raw[:200]!r}, expected a 4xx JSON error")
    say(f"ok   bad input -> {status} {code}")
    say(f"ok   {check_metrics(base, metrics_token, ready['model_version'])}")
    return ready["model_version"]
