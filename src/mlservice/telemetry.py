"""What every request leaves behind: a request id, one log line, and its metrics.

The request id is the caller's X-Request-ID when it is sane (Heroku's router sets one on every
request), else 32 random hex digits. It is answered in the X-Request-ID header and in every error body, and
every log line written while the request runs carries it (mlservice.logs). The one line per
request says what an operator needs and never what was submitted: method, path without the query
string, route, status, duration, and for predictions the rows, the count of each label and the
model version. Views report their predictions with predicted(); error answers their code with
rejected().
"""

import logging
import os
import re
import time
from dataclasses import dataclass

import numpy as np
from flask import Flask, Response, current_app, g, request

from mlservice import logs

HEADER = "X-Request-ID"
# Kept as sent when it follows the rule Heroku's router applies to an incoming X-Request-ID
# (20 to 200 letters, digits, +, =, / or -), so ids look alike on every platform and no id can
# break a log line or fill it.
SANE_ID = re.compile(r"[A-Za-z0-9+=/-]{20,200}")
# App Engine's X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS, the span id in decimal.
CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?")
UNMATCHED = "(unmatched)"  # the route of a request no URL rule matched (404, 405)
EXTENSION = "mlservice.telemetry"

log = logging.getLogger("mlservice.requests")


@dataclass
class Telemetry:
    """What does not change between requests: looked up once per app."""

    model_version: str
    labels: list[str]
    cloud_project: str | None
    metrics: object = None  # mlservice.metrics.Metrics when /metrics is on


@dataclass
class Facts:
    """What is known about the request in flight (kept in flask.g)."""

    id: str
    started: float
    token: object  # to restore logs.REQUEST_FIELDS when the request ends
    state: Telemetry
    counts: np.ndarray | None = None  # predictions per label, in the model's label order
    error_code: str | None = None


def request_id() -> str:
    """The current request's id."""
    return g.telemetry.id


def predicted(proba: np.ndarray) -> None:
    """Note predictions made for this request: one row of probabilities per instance."""
    counts = np.bincount(proba.argmax(axis=1), minlength=proba.shape[1])
    facts = g.telemetry
    facts.counts = counts if facts.counts is None else facts.counts + counts


def rejected(code: str) -> None:
    """Note the error code this request is answered with."""
    g.telemetry.error_code = code


def cloud_trace(header: str | None, project: str) -> dict:
    """The fields that tie a log line to its request's trace in Cloud Logging."""
    match = CLOUD_TRACE.fullmatch(header or "")
    if not match:
        return {}
    trace, span, sampled = match.groups()
    fields = {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace.lower()}"}
    if span is not None and int(span) < 2**64:
        fields["logging.googleapis.com/spanId"] = f"{int(span):016x}"
    if sampled is not None:
        fields["logging.googleapis.com/trace_sampled"] = sampled == "1"
    return fields


def _start() -> None:
    state: Telemetry = current_app.extensions[EXTENSION]
    headers = request.headers
    sent = headers.get(HEADER, "")
    # A UUID4's randomness, without the cost of building a UUID object on every request.
    rid = sent if SANE_ID.fullmatch(sent) else os.urandom(16).hex()
    fields = {"request_id": rid}
    if state.cloud_project:
        fields.update(cloud_trace(headers.get("X-Cloud-Trace-Context"), state.cloud_project))
    token = logs.REQUEST_FIELDS.set(fields)
    g.telemetry = Facts(id=rid, started=time.perf_counter(), token=token, state=state)
    if state.metrics:
        state.metrics.started()


def _finish(response: Response) -> Response:
    facts: Facts = g.telemetry
    seconds = time.perf_counter() - facts.started
    response.headers[HEADER] = facts.id
    req = request._get_current_object()
    route = req.url_rule.rule if req.url_rule else UNMATCHED
    status = response.status_code
    error_code = (facts.error_code or f"http_{status}") if status >= 400 else None
    counts = None if facts.counts is None else facts.counts.tolist()
    state = facts.state
    if state.metrics:
        state.metrics.answered(route, req.method, status, seconds, error_code, counts)
    level = logging.ERROR if status >= 500 else logging.INFO
    if log.isEnabledFor(level):
        log.handle(_request_line(req, state, level, route, status, seconds, error_code, counts))
    return response


def _request_line(req, state, level, route, status, seconds, error_code, counts):
    """The request's log record. Made here rather than by log.info(), which would walk the stack
    to find its caller on every request; the line always comes from here."""
    # The path without its query string: a query may carry submitted values.
    method, path = req.method, req.path
    fields: dict = {"model_version": state.model_version}
    if counts is not None:
        fields["rows"] = sum(counts)
        fields["labels"] = {label: n for label, n in zip(state.labels, counts, strict=True) if n}
    if error_code:
        fields["error"] = error_code
    json_fields = {
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }
    if state.cloud_project:
        # The request as Cloud Logging structures it (LogEntry.httpRequest).
        json_fields["httpRequest"] = {
            "requestMethod": method,
            "requestUrl": path,
            "status": status,
            "latency": f"{seconds:.6f}s",
            "protocol": req.environ.get("SERVER_PROTOCOL"),
            "userAgent": req.user_agent.string,
        }
    message, args = "%s %s %s %.1f ms", (method, path, status, seconds * 1000)
    extra = {"fields": fields, "json_fields": json_fields}
    return log.makeRecord(log.name, level, __file__, 0, message, args, None, extra=extra)


def _end(_error: BaseException | None) -> None:
    facts: Facts | None = g.pop("telemetry", None)
    if facts is None:
        return
    logs.REQUEST_FIELDS.reset(facts.token)
    if facts.state.metrics:
        facts.state.metrics.finished()


def init_app(app: Flask, metrics: object = None) -> None:
    """Call before registering other hooks: every other hook and view then runs inside these."""
    model = app.extensions["mlservice.model"]
    app.extensions[EXTENSION] = Telemetry(
        model_version=model.version,
        labels=list(model.card["labels"]),
        cloud_project=app.config["GOOGLE_CLOUD_PROJECT"],
        metrics=metrics,
    )
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_end)
