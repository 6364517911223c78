"""What every request leaves behind: a request id, one log line, and its metrics.

The request id is the caller's X-Request-ID when it is sane (Heroku's router sets one on every
request), else 32 random hex digits. It is answered in the X-Request-ID header and in every error
body, and every log line written while the request runs carries it (mlservice.logs). The line per
request says what an operator needs and never what was submitted: method, path without the query
string, route, status, duration, and for predictions the rows, the count of each label and the
model version. Views report their predictions with predicted(); error answers their code with
rejected().

This runs on every request, so it is kept cheap (`make bench` measures it). A request only notes
its facts (Facts) in a queue as it ends; a thread in each process (Recorder) writes the queued
requests' log lines and adds them to the metrics every WRITE_INTERVAL, many at a time, which costs
a fraction of doing it inside each request (docs/observability.md, "What it costs"). A line keeps
the time its request was answered. A scrape of /metrics first has every process's queue written.
"""

import atexit
import logging
import random
import re
import threading
import time
import weakref
from collections import Counter as TallyCounter
from collections import deque
from contextvars import ContextVar

from flask import Flask, Request

from mlservice import logs, process
from mlservice.contract import CONTRACT

HEADER = "X-Request-ID"
# Kept as sent when it follows the rule Heroku's router applies to an incoming X-Request-ID
# (20 to 200 letters, digits, +, =, / or -), so ids look alike on every platform and no id can
# break a log line or fill it.
SANE_ID = re.compile(r"[A-Za-z0-9+=/-]{20,200}")
# App Engine's X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS, the span id in decimal.
CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?")
EXTENSION = "mlservice.telemetry"  # the app's Recorder
UNMATCHED = "(unmatched)"  # the route of a request no URL rule matched (404, 405)
# Seconds a request's line and counts may wait in its process before the Recorder writes them;
# a scrape of /metrics waits a few of these for the other workers' (metrics.scrape). Each batch
# written evicts the request path from the CPU's caches, a cost per batch: at full load 0.1 s
# (about 200 requests a batch) costs half as much CPU a request as 0.025 s did
# (docs/performance.md), for lines written at most a tenth of a second late.
WRITE_INTERVAL = 0.1

log = logging.getLogger("mlservice.requests")
failures = logging.getLogger(__name__)


class Facts:
    """What is known about a request: while it runs, then as queued for the Recorder.

    The defaults are the class's: a request sets only what it learns (a dataclass would set
    every field in each request's __init__).
    """

    status: int = 0  # the answer's, once it has started
    request: Request | None = None  # Flask's, with the URL rule it matched, while it runs
    labels: list[str] | None = None  # of the predictions answered, as predicted()
    error_code: str | None = None
    # Set as the request ends:
    seconds: float = 0.0  # in the app
    answered: float = 0.0  # time.time() of the answer: the log line's time
    method: str = ""
    path: str = ""
    route: str = ""
    logged: bool = False  # whether its line is logged (the level, at the time)
    done: bool = False  # set last, as the request ends
    http: tuple[str | None, str] | None = None  # protocol and user agent, on App Engine

    def __init__(self, id: str, started: float, fields: dict):
        self.id = id
        self.started = started
        self.fields = fields  # the request's fields on every log line (logs.REQUEST_FIELDS)


_FACTS: ContextVar[Facts] = ContextVar("mlservice_request_facts")


class KeptRequest(Request):
    """Flask's request, which its request's Facts keep: the line and the metrics need the URL rule
    Flask matched, and Flask lets go of its request before the middleware has the answer. Kept as
    Flask makes it rather than in a request hook, which costs more on every request."""

    def __init__(self, environ: dict, populate_request: bool = True, shallow: bool = False):
        super().__init__(environ, populate_request, shallow)
        facts = _FACTS.get(None)
        if facts is not None:
            facts.request = self


def request_id() -> str:
    """The current request's id."""
    return _FACTS.get().id


def predicted(labels: list[str]) -> None:
    """Note the labels this request answered, one a prediction.

    Only kept here; they are counted when the request's facts are written, if telemetry is on.
    """
    facts = _FACTS.get()
    facts.labels = labels if facts.labels is None else [*facts.labels, *labels]


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
    line, and its facts queued for the Recorder once the app has answered.

    Around the app rather than in its request hooks: one call per request instead of three
    dispatches of Flask hooks, and the id and fields are set before Flask makes its request
    context, so every line the app writes, from any hook or error handler, carries them. Flask's
    request, for its URL rule, is kept by the app's request class (KeptRequest).
    """

    def __init__(self, wsgi_app, model, cloud_project: str | None, metrics=None):
        self.wsgi_app = wsgi_app
        self.cloud_project = cloud_project
        self.metrics = metrics  # mlservice.metrics.Metrics when /metrics is on
        self.recorder = Recorder(model.version, metrics)

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
        facts = Facts(id=rid, started=time.perf_counter(), fields=fields)
        facts_token, fields_token = _FACTS.set(facts), logs.REQUEST_FIELDS.set(fields)

        def start(status: str, headers: list, exc_info=None):
            facts.status = int(status[:3])  # "200 OK"
            return start_response(status, [*headers, (HEADER, rid)], exc_info)

        # Queued as it starts: in progress for the metrics until it is done.
        queued = bool(self.metrics) or log.isEnabledFor(logging.INFO)
        if queued:
            self.recorder.queue(facts)
        try:
            answer = self.wsgi_app(environ, start)
        except BaseException:
            # Flask answers every Exception (errors.py); what gets through is a BaseException,
            # such as the SystemExit gunicorn raises in a request past its timeout.
            self._answered(environ, facts, 500, queued)
            raise
        else:
            self._answered(environ, facts, facts.status, queued)
            return answer
        finally:
            facts.done = True  # last: the Recorder takes the facts as they are now
            logs.REQUEST_FIELDS.reset(fields_token)
            _FACTS.reset(facts_token)

    def _answered(self, environ: dict, facts: Facts, status: int, queued: bool) -> None:
        """Note what the Recorder needs of the request, whose answer started with this status."""
        seconds = time.perf_counter() - facts.started
        logged = log.isEnabledFor(logging.ERROR if status >= 500 else logging.INFO)
        if not (queued or logged):
            return
        facts.seconds, facts.answered = seconds, time.time()
        facts.status, facts.logged = status, logged
        req = facts.request
        if req is None:  # failed before Flask made its request: what the environ says
            req = Request(environ, populate_request=False)
        # What the line and the metrics need of Flask's request, taken now: it is not kept.
        facts.method, facts.path, facts.request = req.method, req.path, None
        facts.route = req.url_rule.rule if req.url_rule else UNMATCHED
        if self.cloud_project:
            facts.http = (req.environ.get("SERVER_PROTOCOL"), req.user_agent.string)
        if not queued:  # an error line while only errors are logged
            self.recorder.queue(facts)


# Every Recorder of this process, for write_all().
_RECORDERS: weakref.WeakSet = weakref.WeakSet()


def write_all() -> None:
    """Write what every Recorder of this process has queued (at exit; in tests, before reading
    the log)."""
    for recorder in list(_RECORDERS):
        recorder.write()


atexit.register(write_all)  # a worker that exits (gunicorn's graceful stop, its timeout)


class Recorder:
    """Writes the log lines and the counts of requests that have ended, from a thread of each
    process.

    Requests are queued as they start, in a deque: requests append and the thread empties it
    without a lock. The thread waits until something is queued, lets a few more requests gather
    (WRITE_INTERVAL), then writes those that are done and keeps the others, the requests in
    progress, for its next pass. Threads do not survive a fork: each process starts its own with
    its first request.
    """

    def __init__(self, model_version: str, metrics=None):
        self.model_version = model_version
        self.labels: list[str] = list(CONTRACT.labels)
        # A request with one prediction (most requests): its counts, by its label, and their
        # fields on its line, made once. Shared by the lines and the metrics, which only read them.
        self._one = {
            label: tuple(int(other == label) for other in self.labels) for label in self.labels
        }
        self._one_fields = {counts: self._count_fields(counts) for counts in self._one.values()}
        self.metrics = metrics
        self._queue: deque[Facts] = deque()
        self._in_progress: list[Facts] = []  # taken from the queue before they were done
        self._due = threading.Event()  # set when there is something to write
        self._writing = threading.Lock()  # one write at a time: the thread's or a scrape's
        self._writer_pid = 0  # the process whose thread runs
        _RECORDERS.add(self)

    def queue(self, facts: Facts) -> None:
        self._queue.append(facts)
        if not self._due.is_set():
            if self._writer_pid != process.pid():
                self._writer_pid = process.pid()
                thread = threading.Thread(target=self._write_continually, name="telemetry")
                thread.daemon = True
                thread.start()
            self._due.set()

    def _write_continually(self) -> None:
        while True:
            self._due.wait()
            time.sleep(WRITE_INTERVAL)  # let a few more requests gather
            self._due.clear()
            try:
                in_progress = self.write()
            except Exception:
                # That batch is lost, not the thread: without it, every later request would
                # queue up with nothing to write it.
                failures.exception("The request lines and counts of a batch were not written")
                continue
            if in_progress:
                self._due.set()  # look again

    def write(self) -> bool:
        """Write the lines and the counts of the requests queued and done so far; return
        whether some are still in progress."""
        with self._writing:
            taken = self._in_progress + [self._queue.popleft() for _ in range(len(self._queue))]
            batch = [facts for facts in taken if facts.done]
            self._in_progress = [facts for facts in taken if not facts.done]
            counts = self._label_counts(batch)
            logs.log_lines(
                log,
                [
                    self._line(facts, counted)
                    for facts, counted in zip(batch, counts, strict=True)
                    if facts.logged
                ],
            )
            if self.metrics:
                self.metrics.count(batch, counts, in_progress=len(self._in_progress))
            return bool(self._in_progress)

    def _label_counts(self, batch: list[Facts]) -> list[tuple[int, ...] | None]:
        """For each request, how many of its predictions got each label (None: it made none)."""
        counts: list[tuple[int, ...] | None] = []
        for facts in batch:
            if facts.labels is None:
                counts.append(None)
            elif len(facts.labels) == 1:  # most requests: one of the ready-made counts
                counts.append(self._one[facts.labels[0]])
            else:
                tally = TallyCounter(facts.labels)
                counts.append(tuple(tally[label] for label in self.labels))
        return counts

    def _count_fields(self, counts: tuple[int, ...]) -> dict:
        """A line's fields for these label counts: the rows, and how many got each label."""
        labels = {label: n for label, n in zip(self.labels, counts, strict=True) if n}
        return {"rows": sum(counts), "labels": labels}

    def _line(self, facts: Facts, counts: tuple[int, ...] | None) -> logs.Line:
        status, seconds = facts.status, facts.seconds
        # The path without its query string: a query may carry submitted values.
        method, path = facts.method, facts.path
        fields: dict = {"model_version": self.model_version}
        if counts is not None:
            fields.update(self._one_fields.get(counts) or self._count_fields(counts))
        if status >= 400:
            fields["error"] = facts.error_code or f"http_{status}"
        # Whole microseconds, rounded half up (a third of round()'s cost), once for the field and
        # the message, so the two always read the same.
        milliseconds = int(seconds * 1_000_000 + 0.5) / 1000
        json_fields = {
            "method": method,
            "path": path,
            "route": facts.route,
            "status": status,
            "duration_ms": milliseconds,
        }
        if facts.http is not None:
            # The request as Cloud Logging structures it (LogEntry.httpRequest).
            protocol, user_agent = facts.http
            json_fields["httpRequest"] = {
                "requestMethod": method,
                "requestUrl": path,
                "status": status,
                "latency": f"{seconds:.6f}s",
                "protocol": protocol,
                "userAgent": user_agent,
            }
        return logs.Line(
            facts.answered,  # created
            logging.ERROR if status >= 500 else logging.INFO,
            f"{method} {path} {status} {milliseconds:.1f} ms",
            fields,
            json_fields,
            facts.fields,  # request
        )


def init_app(app: Flask, metrics=None) -> None:
    """Wrap the app's WSGI callable; call it last, so the telemetry is around everything else."""
    model = app.extensions["mlservice.model"]
    middleware = Telemetry(app.wsgi_app, model, app.config["GOOGLE_CLOUD_PROJECT"], metrics)
    app.wsgi_app = middleware
    app.extensions[EXTENSION] = middleware.recorder
    app.request_class = KeptRequest
