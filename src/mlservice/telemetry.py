"""What every request leaves behind: a request id, one log line, and its metrics.

The request id is the caller's X-Request-ID when it is sane (Heroku's router sets one on every
request), else 32 random hex digits. It is answered in the X-Request-ID header and in every error
body, and every log line written while the request runs carries it (mlservice.logs). The line per
request says what an operator needs and never what was submitted: method, path without the query
string, route, status, duration, and for predictions the rows, the count of each label and the
model version. Views report their predictions with predicted(); error answers their code with
rejected().

This runs on every request, so it is kept cheap (`make bench` measures it): the request's facts
live in a context variable rather than behind Flask's `g` proxy, and the metrics' label sets are
made once.
"""

import logging
import random
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
from flask import Flask, Request, request

from mlservice import logs
from mlservice.contract import CONTRACT

HEADER = "X-Request-ID"
# Kept as sent when it follows the rule Heroku's router applies to an incoming X-Request-ID
# (20 to 200 letters, digits, +, =, / or -), so ids look alike on every platform and no id can
# break a log line or fill it.
SANE_ID = re.compile(r"[A-Za-z0-9+=/-]{20,200}")
# App Engine's X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS, the span id in decimal.
CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?")
UNMATCHED = "(unmatched)"  # the route of a request no URL rule matched (404, 405)

log = logging.getLogger("mlservice.requests")


@dataclass
class Facts:
    """What is known about the request in flight."""

    id: str
    started: float
    status: int = 0  # the answer's, once it has started
    request: Request | None = None  # Flask's, with the URL rule it matched
    probabilities: list[np.ndarray] | None = None  # of the predictions made, as predicted()
    error_code: str | None = None


_FACTS: ContextVar[Facts] = ContextVar("mlservice_request_facts")


def request_id() -> str:
    """The current request's id."""
    return _FACTS.get().id


def predicted(proba: np.ndarray) -> None:
    """Note predictions made for this request: one row of probabilities per instance.

    Only kept here; they are counted when the request ends, and only if telemetry is on.
    """
    facts = _FACTS.get()
    facts.probabilities = [*(facts.probabilities or []), proba]


def rejected(code: str) -> None:
    """Note the error code this request is answered with."""
    _FACTS.get().error_code = code


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


class Telemetry:
    """WSGI middleware around the Flask app: a request id, the request's fields for every log
    line, and the line and metrics once the app has answered.

    Around the app rather than in its request hooks: one call per request instead of three
    dispatches of Flask hooks, and the id and fields are set before Flask makes its request
    context, so every line the app writes, from any hook or error handler, carries them.
    """

    def __init__(self, wsgi_app, model, cloud_project: str | None, metrics=None):
        self.wsgi_app = wsgi_app
        self.model_version: str = model.version
        self.labels: list[str] = list(CONTRACT.labels)
        self.cloud_project = cloud_project
        self.metrics = metrics  # mlservice.metrics.Metrics when /metrics is on

    def __call__(self, environ, start_response):
        sent = environ.get("HTTP_X_REQUEST_ID", "")
        # 128 random bits, as a UUID4 has, from the random module rather than os.urandom (a
        # system call per request): an id needs to be unique, not secret, and the random module
        # reseeds itself in each forked worker.
        rid = sent if SANE_ID.fullmatch(sent) else f"{random.getrandbits(128):032x}"
        fields = {"request_id": rid}
        if self.cloud_project:
            trace = environ.get("HTTP_X_CLOUD_TRACE_CONTEXT")
            fields.update(cloud_trace(trace, self.cloud_project))
        facts = Facts(id=rid, started=time.perf_counter())
        facts_token, fields_token = _FACTS.set(facts), logs.REQUEST_FIELDS.set(fields)

        def start(status: str, headers: list, exc_info=None):
            facts.status = int(status[:3])  # "200 OK"
            return start_response(status, [*headers, (HEADER, rid)], exc_info)

        if self.metrics:
            self.metrics.started()
        try:
            answer = self.wsgi_app(environ, start)
        except BaseException:
            # Flask answers every Exception (errors.py); what gets through is a BaseException,
            # such as the SystemExit gunicorn raises in a request past its timeout.
            self._answered(environ, facts, 500)
            raise
        else:
            self._answered(environ, facts, facts.status)
            return answer
        finally:
            if self.metrics:
                self.metrics.finished()
            logs.REQUEST_FIELDS.reset(fields_token)
            _FACTS.reset(facts_token)

    def _answered(self, environ: dict, facts: Facts, status: int) -> None:
        """Log and count the request, whose answer has started with this status."""
        seconds = time.perf_counter() - facts.started
        level = logging.ERROR if status >= 500 else logging.INFO
        logged = log.isEnabledFor(level)
        if not (self.metrics or logged):
            return
        req = facts.request
        if req is None:  # Flask failed before its request hooks: what the environ says
            req = Request(environ, populate_request=False)
        route = req.url_rule.rule if req.url_rule else UNMATCHED
        error_code = (facts.error_code or f"http_{status}") if status >= 400 else None
        counts = None
        if facts.probabilities is not None:
            chosen = facts.probabilities[0].argmax(axis=1).tolist()
            for proba in facts.probabilities[1:]:
                chosen += proba.argmax(axis=1).tolist()
            counts = [chosen.count(index) for index in range(len(self.labels))]
        if self.metrics:
            self.metrics.answered(route, req.method, status, seconds, error_code, counts)
        if logged:
            self._log_line(req, level, route, status, seconds, error_code, counts)

    def _log_line(self, req, level, route, status, seconds, error_code, counts) -> None:
        # The path without its query string: a query may carry submitted values.
        method, path = req.method, req.path
        fields: dict = {"model_version": self.model_version}
        if counts is not None:
            fields["rows"] = sum(counts)
            fields["labels"] = {label: n for label, n in zip(self.labels, counts, strict=True) if n}
        if error_code:
            fields["error"] = error_code
        # One rounding for the field and the message, so the two always read the same.
        milliseconds = round(seconds * 1000, 3)
        json_fields = {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": milliseconds,
        }
        if self.cloud_project:
            # The request as Cloud Logging structures it (LogEntry.httpRequest).
            json_fields["httpRequest"] = {
                "requestMethod": method,
                "requestUrl": path,
                "status": status,
                "latency": f"{seconds:.6f}s",
                "protocol": req.environ.get("SERVER_PROTOCOL"),
                "userAgent": req.user_agent.string,
            }
        message = f"{method} {path} {status} {milliseconds:.1f} ms"
        logs.log_line(log, level, message, fields, json_fields)


def _keep_request() -> None:
    # The one request hook: the line and the metrics need the URL rule Flask matched, and Flask
    # lets go of its request before the middleware has the answer.
    _FACTS.get().request = request._get_current_object()


def init_app(app: Flask, metrics=None) -> None:
    """Wrap the app's WSGI callable; call it last, so the telemetry is around everything else."""
    model = app.extensions["mlservice.model"]
    app.wsgi_app = Telemetry(app.wsgi_app, model, app.config["GOOGLE_CLOUD_PROJECT"], metrics)
    app.before_request_funcs.setdefault(None, []).insert(0, _keep_request)
