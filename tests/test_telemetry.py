"""Every request gets an id, answered and logged, and one log line that tells what happened
without telling what was submitted."""

import io
import json
import logging
import re
import time
from types import SimpleNamespace

import pytest
from flask import Flask, abort, request
from werkzeug.test import EnvironBuilder

from mlservice import create_app, logs, telemetry
from mlservice.probe import NotYet, wait_until
from tests.conftest import ROOT
from tests.values import FIRST, LABELS, LAST, below, csv_table, marked_row, telltale, text

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
SUBMITTED = marked_row()
# The submitted values a log line could not hold by chance (every float feature's).
TELLTALE = [text(value) for value in SUBMITTED.values() if telltale(value)]
BAD_VALUE = "13.713713x"


@pytest.fixture
def lines():
    """Every log line written during the test, formatted as JSON when written (so the fields of
    the request running at that moment are in it), parsed back."""
    telemetry.write_all()  # the lines of requests made before, such as the fixtures'
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)

    def written() -> list[dict]:
        telemetry.write_all()  # the request lines queued so far
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield written
    root.removeHandler(handler)
    root.setLevel(level)


def request_lines(parsed: list[dict]) -> list[dict]:
    return [line for line in parsed if line["logger"] == "mlservice.requests"]


def test_every_answer_has_a_new_request_id(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/nowhere").headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(first)
    assert GENERATED_ID.fullmatch(second)
    assert first != second


@pytest.mark.parametrize(
    "sent",
    [
        "a" * 20,  # the shortest kept
        "b" * 200,  # the longest kept
        "0f6a3c2e-7b1d-4e9a-8c55-3d2b1a0f9e8d",  # Heroku's router sends UUIDs
        "AZaz09+/=-AZaz09+/=-",
    ],
)
def test_a_sane_request_id_is_kept(client, sent):
    assert client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent


@pytest.mark.parametrize(
    "sent",
    [
        "a" * 19,
        "b" * 201,
        "",
        "has spaces in it, twenty+",
        'quote"0123456789012345678',
        "line\\nbreak0123456789012345",
        "under_score_0123456789",
        "ümlaut-0123456789012345",
    ],
)
def test_another_request_id_is_replaced(client, sent):
    answered = client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(answered)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/nowhere", None, 404),
        ("PUT", "/api/v1/predict", None, 405),
        ("POST", "/api/v1/predict", json.dumps({FIRST.name: "x"}), 422),
        ("POST", "/api/v1/predict", "not json", 400),
        ("GET", "/api/v1/answers?question=none", None, 422),
    ],
)
def test_every_error_body_repeats_the_request_id(client, method, path, body, status):
    response = client.open(
        path, method=method, data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.get_json()["error"]["request_id"] == response.headers["X-Request-ID"]


def test_the_error_page_shows_the_request_id(client):
    response = client.get("/nowhere", headers={"Accept": "text/html"})
    assert response.status_code == 404
    rid = response.headers["X-Request-ID"]
    assert f"Request id: <code>{rid}</code>" in response.get_data(as_text=True)


def test_a_json_prediction_logs_one_line_with_counts_but_no_values(client, card, lines):
    batch = {"instances": [SUBMITTED, *card["examples"].values()]}
    response = client.post("/api/v1/predict", json=batch, headers={"X-Request-ID": "c" * 24})
    assert response.status_code == 200
    labels = [p["label"] for p in response.get_json()["predictions"]]
    [line] = request_lines(lines())
    assert line == {
        "time": line["time"],
        "severity": "INFO",
        "logger": "mlservice.requests",
        "pid": line["pid"],
        "message": f"POST /api/v1/predict 200 {line['duration_ms']:.1f} ms",
        "request_id": "c" * 24,
        "model_version": card["version"],
        "rows": 1 + len(card["examples"]),
        "labels": {label: labels.count(label) for label in LABELS if label in labels},
        "method": "POST",
        "path": "/api/v1/predict",
        "route": "/api/v1/predict",
        "status": 200,
        "duration_ms": line["duration_ms"],
    }
    assert 0 < line["duration_ms"] < 60_000


def test_a_csv_batch_counts_its_rows(client, card, lines):
    # The card's examples are rows the model predicts right, one per label.
    rows = list(card["examples"].values()) * 2
    response = client.post("/api/v1/predict", data=csv_table(rows), content_type="text/csv")
    assert response.status_code == 200
    [line] = request_lines(lines())
    assert (line["rows"], line["labels"]) == (len(rows), dict.fromkeys(card["examples"], 2))


@pytest.mark.parametrize("copies", [1, 2, 3])
def test_a_json_batch_counts_each_of_its_rows(client, example, lines, copies):
    label, row = example
    response = client.post("/api/v1/predict", json={"instances": [row] * copies})
    assert response.status_code == 200
    [line] = request_lines(lines())
    assert (line["rows"], line["labels"]) == (copies, {label: copies})


def test_a_page_prediction_is_counted_too(client, example, lines):
    label, row = example
    form = {name: text(value) for name, value in row.items()}
    assert client.post("/", data=form).status_code == 200
    [line] = request_lines(lines())
    assert (line["route"], line["rows"], line["labels"]) == ("/", 1, {label: 1})


def test_a_rejected_request_logs_its_error_code_and_no_counts(client, lines):
    response = client.post("/api/v1/predict", json={**SUBMITTED, FIRST.name: BAD_VALUE})
    assert response.status_code == 422
    [line] = request_lines(lines())
    assert line["error"] == "invalid_input"
    assert line["severity"] == "INFO"
    assert "rows" not in line
    assert "labels" not in line


def test_an_unmatched_path_is_logged_as_sent_with_no_route(client, lines):
    client.get("/no/such/page")
    [line] = request_lines(lines())
    assert (line["path"], line["route"], line["status"]) == ("/no/such/page", "(unmatched)", 404)
    assert line["error"] == "not_found"


def test_a_form_refused_without_an_error_body_is_named_by_its_status(client, lines):
    assert client.post("/", data={FIRST.name: "x"}).status_code == 400
    [line] = request_lines(lines())
    assert line["error"] == "http_400"


def test_the_query_string_is_never_logged(client, lines):
    # A weight with digits no duration or count on the line could happen to share.
    query = "question=what-makes-lantern-moss-glow&weight=0.37137137&k=5"
    response = client.get(f"/api/v1/answers?{query}")
    assert response.status_code == 200
    [line] = request_lines(lines())
    assert line["path"] == "/api/v1/answers"
    logged = json.dumps(line)
    assert "0.37137137" not in logged
    assert "weight" not in logged


def test_no_submitted_value_reaches_any_log_line(client, lines):
    assert TELLTALE, "no submitted value to look for"
    csv_text = csv_table([SUBMITTED])
    client.post("/api/v1/predict", json=SUBMITTED)
    client.post(
        "/api/v1/predict", json={"instances": [SUBMITTED, {**SUBMITTED, LAST.name: below(LAST)}]}
    )
    client.post("/api/v1/predict", data=csv_text, content_type="text/csv")
    client.post("/api/v1/predict", data=csv_text.rstrip("\n") + ",9\n")  # a cell too many
    client.post("/", data={name: text(value) for name, value in SUBMITTED.items()})
    written = json.dumps(lines())
    assert len(request_lines(lines())) == 5
    for value in TELLTALE:
        assert value not in written


@pytest.fixture
def failing_client(model_path):
    app = create_app(
        {
            "MODEL_PATH": str(model_path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "GOOGLE_CLOUD_PROJECT": "demo-project",
        }
    )

    @app.get("/boom")
    def boom():
        raise RuntimeError("the model fell over")

    return app.test_client()


def test_an_error_logs_its_traceback_in_one_line_with_the_request_id(failing_client, lines):
    response = failing_client.get("/boom")
    assert response.status_code == 500
    rid = response.headers["X-Request-ID"]
    traceback_line, request_line = lines()
    assert traceback_line["logger"] == "mlservice.errors"
    assert traceback_line["severity"] == "ERROR"
    assert traceback_line["request_id"] == rid
    assert traceback_line["stack_trace"].endswith("RuntimeError: the model fell over")
    assert (request_line["severity"], request_line["status"]) == ("ERROR", 500)
    assert request_line["request_id"] == rid


def test_on_cloud_logging_every_line_of_a_request_carries_its_trace(failing_client, lines):
    trace = "105445aa7843bc8bf206b12000100000"
    failing_client.get(
        "/boom",
        headers={"X-Cloud-Trace-Context": f"{trace}/1;o=1", "User-Agent": "probe/1.0"},
    )
    for line in lines():
        assert line["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{trace}"
        assert line["logging.googleapis.com/spanId"] == "0000000000000001"
        assert line["logging.googleapis.com/trace_sampled"] is True
    request_line = lines()[-1]
    http_request = request_line["httpRequest"]
    assert http_request == {
        "requestMethod": "GET",
        "requestUrl": "/boom",
        "status": 500,
        "latency": http_request["latency"],
        "protocol": "HTTP/1.1",
        "userAgent": "probe/1.0",
    }
    assert re.fullmatch(r"\d+\.\d{6}s", http_request["latency"])


def test_without_a_trace_header_lines_carry_no_trace(failing_client, lines):
    failing_client.get("/healthz")
    [line] = lines()
    assert not any(key.startswith("logging.googleapis.com/") for key in line)
    assert line["httpRequest"]["status"] == 200


def test_off_cloud_logging_there_is_no_http_request_field(client, lines):
    client.get("/healthz", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1"})
    [line] = lines()
    assert "httpRequest" not in line
    assert "logging.googleapis.com/trace" not in line


@pytest.mark.parametrize(
    ("header", "fields"),
    [
        (
            "105445AA7843BC8BF206B12000100000/4294967297;o=0",
            {
                "logging.googleapis.com/trace": "projects/p/traces/105445aa7843bc8bf206b12000100000",
                "logging.googleapis.com/spanId": "0000000100000001",
                "logging.googleapis.com/trace_sampled": False,
            },
        ),
        (
            "105445aa7843bc8bf206b12000100000",
            {"logging.googleapis.com/trace": "projects/p/traces/105445aa7843bc8bf206b12000100000"},
        ),
        (
            "105445aa7843bc8bf206b12000100000/18446744073709551616;o=1",  # 2**64: no span id
            {
                "logging.googleapis.com/trace": "projects/p/traces/105445aa7843bc8bf206b12000100000",
                "logging.googleapis.com/trace_sampled": True,
            },
        ),
        (
            "105445aa7843bc8bf206b12000100000/18446744073709551615",  # 2**64 - 1: the largest
            {
                "logging.googleapis.com/trace": "projects/p/traces/105445aa7843bc8bf206b12000100000",
                "logging.googleapis.com/spanId": "ffffffffffffffff",
            },
        ),
        ("105445aa7843bc8bf206b1200010000", {}),  # 31 digits
        ("105445aa7843bc8bf206b12000100000/1;o=2", {}),
        ("x05445aa7843bc8bf206b12000100000/1", {}),
        ("", {}),
        (None, {}),
    ],
)
def test_cloud_trace_context_header(header, fields):
    assert telemetry.cloud_trace(header, "p") == fields


@pytest.fixture
def clocked_client(app, monkeypatch):
    """The app with a clock that makes every request take exactly 12.3456 ms, and a route that
    predicts twice in one request."""
    ticks = iter([100.0, 100.0123456] * 10)
    monkeypatch.setattr(
        telemetry,
        "time",
        SimpleNamespace(perf_counter=lambda: next(ticks), time=time.time, sleep=time.sleep),
    )

    @app.get("/twice")
    def twice():
        # The first label, then the last twice and the first once.
        telemetry.predicted([LABELS[0]])
        telemetry.predicted([LABELS[-1], LABELS[-1], LABELS[0]])
        return "ok"

    return app.test_client()


def test_durations_are_logged_to_the_microsecond(clocked_client, lines):
    clocked_client.get("/healthz")
    [line] = request_lines(lines())
    assert line["duration_ms"] == 12.346
    assert line["message"] == "GET /healthz 200 12.3 ms"


@pytest.mark.parametrize(
    ("finished", "logged", "message"),
    [
        # 0.6496 ms is logged as 0.65; the message must say 0.7 as that field does, not 0.6.
        (100.0006496, 0.65, "0.7 ms"),
        (102.5, 2500.0, "2500.0 ms"),
    ],
)
def test_the_message_reads_the_logged_duration(app, monkeypatch, lines, finished, logged, message):
    ticks = iter([100.0, finished])
    monkeypatch.setattr(
        telemetry,
        "time",
        SimpleNamespace(perf_counter=lambda: next(ticks), time=time.time, sleep=time.sleep),
    )
    app.test_client().get("/healthz")
    [line] = request_lines(lines())
    assert line["duration_ms"] == logged
    assert line["message"] == f"GET /healthz 200 {message}"


def test_predictions_made_twice_in_one_request_are_all_counted(clocked_client, lines):
    clocked_client.get("/twice")
    [line] = request_lines(lines())
    assert line["rows"] == 4
    assert line["labels"] == {LABELS[0]: 2, LABELS[-1]: 2}


@pytest.mark.parametrize(
    ("raised", "answered"),
    [(RuntimeError, True), (SystemExit, False)],
    ids=["answered", "let through"],
)
def test_a_request_that_fails_before_the_hooks_is_logged_with_its_route(
    app, lines, raised, answered
):
    # A URL value preprocessor runs after Flask has matched the URL, before any request hook.
    @app.url_value_preprocessor
    def fail(endpoint, values):
        raise raised("before the hooks")

    environ = EnvironBuilder("/healthz", query_string="secret=1").get_environ()
    started = []
    if answered:  # Flask answers it with a 500 page
        app.wsgi_app(environ, lambda *args: started.append(args))
        [(status, headers, _)] = started
        assert status.startswith("500")
        assert ("X-Request-ID", lines()[-1]["request_id"]) in headers
    else:
        with pytest.raises(raised):
            app.wsgi_app(environ, lambda *args: started.append(args))
    [line] = request_lines(lines())
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 500)
    assert line["route"] == "/healthz"
    assert line["severity"] == "ERROR"


@pytest.mark.parametrize("raised", [RuntimeError, SystemExit])
def test_a_request_that_fails_before_flask_makes_its_request_is_logged_from_the_environ(
    lines, raised
):
    def inner(environ, start_response):
        raise raised("before Flask")

    middleware = telemetry.Telemetry(inner, SimpleNamespace(version="v1"), None)
    environ = EnvironBuilder("/healthz", query_string="secret=1").get_environ()
    with pytest.raises(raised):
        middleware(environ, lambda *args: None)
    [line] = request_lines(lines())
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 500)
    assert (line["route"], line["severity"]) == (telemetry.UNMATCHED, "ERROR")
    # Read from the environ without putting a request into it.
    assert "werkzeug.request" not in environ


def test_flasks_request_is_still_the_one_werkzeug_notes_in_its_environ(app):
    # The request class the telemetry gives the app still does what Werkzeug's does.
    @app.get("/noted")
    def noted():
        return {"noted": request.environ.get("werkzeug.request") is request._get_current_object()}

    assert app.test_client().get("/noted").get_json() == {"noted": True}


def test_the_request_is_kept_for_its_route_before_the_apps_own_hooks_run(lines):
    app = Flask("guarded")
    app.config["GOOGLE_CLOUD_PROJECT"] = None
    app.extensions["mlservice.model"] = SimpleNamespace(version="v1")

    @app.before_request
    def refuse():
        abort(403)

    @app.get("/guarded")
    def guarded():
        return "never"

    telemetry.init_app(app)
    assert app.test_client().get("/guarded").status_code == 403
    [line] = request_lines(lines())
    assert (line["route"], line["status"], line["model_version"]) == ("/guarded", 403, "v1")


def test_the_middleware_passes_start_response_on_with_the_request_id():
    # PEP 3333: an application reporting an error passes exc_info, which the server needs.
    error = (ValueError, ValueError("x"), None)
    calls = []

    def inner(environ, start_response):
        start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")], error)
        return [b"x"]

    middleware = telemetry.Telemetry(inner, SimpleNamespace(version="v1"), None)
    environ = EnvironBuilder("/x", headers={"X-Request-ID": "d" * 24}).get_environ()
    assert middleware(environ, lambda *args: calls.append(args)) == [b"x"]
    [(status, headers, exc_info)] = calls
    assert (status, exc_info) == ("500 INTERNAL SERVER ERROR", error)
    assert headers == [("Content-Type", "text/plain"), ("X-Request-ID", "d" * 24)]


def test_what_flask_lets_through_is_logged_and_counted_as_500(model_path, lines):
    from tests.test_metrics import TOKEN, scrape

    app = create_app(
        {
            "MODEL_PATH": str(model_path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "METRICS_TOKEN": TOKEN,
        }
    )

    @app.get("/through")
    def through():
        # As gunicorn's sync worker does in a request past its timeout (handle_abort).
        raise SystemExit(1)

    client = app.test_client()
    with pytest.raises(SystemExit):
        client.get("/through")
    [line] = request_lines(lines())
    assert (line["route"], line["status"], line["severity"]) == ("/through", 500, "ERROR")
    assert line["error"] == "http_500"
    with pytest.raises(LookupError):  # the request's context is gone with it
        telemetry.request_id()
    samples = scrape(client)
    labels = {"route": "/through", "method": "GET", "status": "500"}
    assert samples[("mlservice_http_requests_total", frozenset(labels.items()))] == 1
    assert samples[("mlservice_http_requests_in_progress", frozenset())] == 1  # the scrape


def test_the_request_id_header_is_answered_once(client):
    response = client.get("/healthz", headers={"X-Request-ID": "c" * 32})
    assert response.headers.getlist("X-Request-ID") == ["c" * 32]


def test_with_only_errors_logged_a_500_is_logged_and_a_200_is_not(model_path, lines, monkeypatch):
    app = create_app(
        {"MODEL_PATH": str(model_path), "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv")}
    )

    @app.get("/fails")
    def fails():
        return "no", 500

    @app.get("/fails-late")
    def fails_late():
        return "no", 501

    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/fails").status_code == 500
    assert client.get("/fails-late").status_code == 501
    written = request_lines(lines())
    assert [(line["path"], line["status"], line["severity"]) for line in written] == [
        ("/fails", 500, "ERROR"),
        ("/fails-late", 501, "ERROR"),
    ]


def test_each_process_writes_from_one_thread_of_its_own(monkeypatch, lines):
    recorder = telemetry.Recorder("v1")
    started = []
    thread_class = telemetry.threading.Thread

    def thread(*args, **kwargs):
        started.append(thread_class(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(telemetry.threading, "Thread", thread)
    # Process id 1, as a service running as a container's first process has.
    monkeypatch.setattr(telemetry.process, "pid", lambda: 1)
    for n in range(3):
        facts = telemetry.Facts(id=f"request-{n}".ljust(20, "-"), started=0.0, fields={})
        facts.done, facts.logged, facts.method, facts.path = True, True, "GET", f"/{n}"
        recorder.queue(facts)

        def written(n=n) -> bool:
            # Not write_all(): the thread writes, by itself.
            if f"/{n} " not in stream_text():
                raise NotYet("not written")
            return True

        wait_until(written, timeout=10, interval=0.005, what="the line")
    [writer] = started
    assert (writer.name, writer.daemon, writer.is_alive()) == ("telemetry", True, True)


def stream_text() -> str:
    return "".join(
        handler.stream.getvalue()
        for handler in logging.getLogger().handlers
        if isinstance(getattr(handler, "stream", None), io.StringIO)
    )


def test_a_batch_that_cannot_be_written_is_logged_and_the_next_one_is_written(caplog):
    class Metrics:
        def __init__(self):
            self.counted: list = []

        def count(self, batch, counts, in_progress):
            if not self.counted:
                self.counted.append(None)
                raise OSError("no space left on device")
            self.counted.extend(facts.path for facts in batch)

    metrics = Metrics()
    recorder = telemetry.Recorder("v1", metrics)

    def queue(path: str) -> None:
        facts = telemetry.Facts(id="r" * 20, started=0.0, fields={})
        facts.done, facts.method, facts.path = True, "GET", path
        recorder.queue(facts)

    queue("/lost")

    def failed() -> logging.LogRecord:
        for record in caplog.records:
            if record.name == "mlservice.telemetry":
                return record
        raise NotYet("no failure logged")

    record = wait_until(failed, timeout=10, interval=0.005, what="the failure")
    assert record.levelname == "ERROR"
    assert record.getMessage() == "The request lines and counts of a batch were not written"
    assert record.exc_info[0] is OSError
    queue("/written")

    def written() -> list:
        if "/written" not in metrics.counted:
            raise NotYet("not written")
        return metrics.counted

    # The thread is still there: it writes the next batch by itself.
    assert wait_until(written, timeout=10, interval=0.005, what="the next batch") == [
        None,
        "/written",
    ]
