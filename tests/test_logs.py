"""Log lines: JSON objects Cloud Logging, Heroku and Lightsail read, or readable text."""

import io
import json
import logging
import os
import re
import select
import sys
import warnings
from pathlib import Path

import pytest

from mlservice import logs


def record(message="%s happened", args=("it",), exc_info=None, **extra) -> logging.LogRecord:
    logger = logging.getLogger("some.module")
    made = logger.makeRecord("some.module", logging.WARNING, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


@pytest.fixture
def request_fields():
    """Pretend a request is running, as mlservice.telemetry does."""
    token = logs.REQUEST_FIELDS.set({"request_id": "r-1234567890abcdefghij", "extra": True})
    yield
    logs.REQUEST_FIELDS.reset(token)


def test_utc_times_are_rfc3339_with_microseconds():
    assert logs._utc(0) == "1970-01-01T00:00:00.000000Z"
    assert logs._utc(1_700_000_000.25) == "2023-11-14T22:13:20.250000Z"
    assert logs._utc(0.9999995) == "1970-01-01T00:00:00.999999Z"  # never a seventh digit
    assert logs._utc(1_700_000_001.5) == "2023-11-14T22:13:21.500000Z"  # the next second


def test_json_line_has_cloud_loggings_names():
    made = record(fields={"rows": 2}, json_fields={"status": 200})
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    assert json.loads(line) == {
        "time": logs._utc(made.created),
        "severity": "WARNING",
        "logger": "some.module",
        "pid": made.process,
        "message": "it happened",
        "rows": 2,
        "status": 200,
    }


def test_json_line_carries_the_request_fields(request_fields):
    entry = json.loads(logs.JsonFormatter().format(record()))
    assert entry["request_id"] == "r-1234567890abcdefghij"
    assert entry["extra"] is True


def test_json_line_writes_what_json_cannot_hold_as_text():
    entry = json.loads(logs.JsonFormatter().format(record(fields={"path": Path("/srv/a b")})))
    assert entry["path"] == "/srv/a b"


def raised() -> tuple:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        return sys.exc_info()


def test_a_traceback_stays_inside_its_json_line():
    line = logs.JsonFormatter().format(record(exc_info=raised()))
    assert line.count("\n") == 0
    entry = json.loads(line)
    assert entry["message"] == "it happened"
    assert entry["stack_trace"].startswith("Traceback (most recent call last):\n")
    assert entry["stack_trace"].endswith("ValueError: broken\nacross lines")


def test_a_stack_asked_for_goes_into_the_json_line_too():
    entry = json.loads(logs.JsonFormatter().format(record(stack_info="Stack (most recent...)")))
    assert entry["stack_trace"] == "Stack (most recent...)"


def test_text_line_reads_as_a_sentence_with_its_fields(request_fields):
    made = record(fields={"rows": 3, "labels": {"benign": 2, "malignant": 1}}, json_fields={"x": 1})
    line = logs.TextFormatter().format(made)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING some\.module: it happened "
        r"rows=3 labels=benign:2,malignant:1 request_id=r-1234567890abcdefghij",
        line,
    )


def test_text_line_outside_a_request_has_no_request_id():
    line = logs.TextFormatter().format(record())
    assert line.endswith(" WARNING some.module: it happened")


def test_text_traceback_follows_the_line():
    line = logs.TextFormatter().format(record(exc_info=raised()))
    first, rest = line.split("\n", 1)
    assert first.endswith("WARNING some.module: it happened")
    assert rest.startswith("Traceback (most recent call last):")


@pytest.fixture(autouse=True)
def _restore_logging_globals(monkeypatch):
    # configure() changes these for the whole process.
    monkeypatch.setattr(logging, "logThreads", logging.logThreads)
    monkeypatch.setattr(logging, "logMultiprocessing", logging.logMultiprocessing)
    monkeypatch.setattr(logging, "logProcesses", logging.logProcesses)
    yield
    logging.captureWarnings(False)


def bare_root(monkeypatch) -> logging.Logger:
    """The root logger without handlers (pytest adds its own as a test starts, so call this in
    the test); its handlers and level are restored afterwards."""
    logger = logging.getLogger()
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)
    return logger


def test_configure_installs_one_handler_and_later_calls_replace_its_format(monkeypatch):
    root = bare_root(monkeypatch)
    logs.configure("WARNING", "text")
    logs.configure("ERROR", "json")
    [handler] = root.handlers
    assert isinstance(handler, logs.ServiceHandler)
    assert isinstance(handler.formatter, logs.JsonFormatter)
    assert root.level == logging.ERROR
    stream = io.StringIO()
    handler.setStream(stream)
    logging.getLogger("some.module").error("kept")
    logging.getLogger("some.module").warning("dropped")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["kept"]


def test_configure_writes_to_stderr_and_warnings_become_lines(monkeypatch, capsys):
    bare_root(monkeypatch)
    logs.configure("INFO", "json")
    logging.getLogger("some.module").info("hello")
    warnings.showwarning(UserWarning("careful"), UserWarning, "lib.py", 7)
    first, second = map(json.loads, capsys.readouterr().err.splitlines())
    assert first["message"] == "hello"
    assert (second["logger"], second["severity"]) == ("py.warnings", "WARNING")
    assert "lib.py:7: UserWarning: careful" in second["message"]


def test_configure_spares_records_the_names_no_format_shows(monkeypatch):
    bare_root(monkeypatch)
    logs.configure("INFO", "json")
    made = record()
    assert made.threadName is None
    assert made.processName is None
    assert made.process is None  # a system call: the JSON line's pid comes from mlservice.process
    assert json.loads(logs.JsonFormatter().format(made))["pid"] == os.getpid()


def test_configure_leaves_a_root_logger_configured_elsewhere_alone(monkeypatch):
    root = bare_root(monkeypatch)
    theirs = logging.NullHandler()
    root.addHandler(theirs)
    logs.configure("DEBUG", "json")
    assert root.handlers == [theirs]
    assert root.level == logging.DEBUG


def test_adopt_gives_other_loggers_handlers_the_format():
    logger = logging.getLogger("gunicorn.like")
    handlers = [logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        logs.adopt([logger, logging.getLogger("no.handlers")], "json")
        assert all(isinstance(h.formatter, logs.JsonFormatter) for h in handlers)
        logs.adopt([logger], "text")
        assert all(isinstance(h.formatter, logs.TextFormatter) for h in handlers)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)


REQUESTS = logging.getLogger("mlservice.requests")


def service_handler(monkeypatch, log_format="json") -> tuple[logs.ServiceHandler, io.StringIO]:
    """The root logger as configure() leaves it in production, writing to a string."""
    bare_root(monkeypatch)
    logs.configure("INFO", log_format)
    [handler] = logging.getLogger().handlers
    stream = io.StringIO()
    handler.setStream(stream)
    return handler, stream


def records_through(monkeypatch, logger: logging.Logger) -> list[logging.LogRecord]:
    """The records the logger handles from now on (passed on to its handle())."""
    seen: list[logging.LogRecord] = []
    handle = logger.handle
    monkeypatch.setattr(logger, "handle", lambda record: seen.append(record) or handle(record))
    return seen


WHEN = 1_700_000_000.25  # 2023-11-14T22:13:20.25Z
REQUEST = {"request_id": "r-1234567890abcdefghij", "extra": True}


def line(message="hello", level=logging.INFO, fields=None, json_fields=None, request=REQUEST):
    return logs.Line(WHEN, level, message, fields or {}, json_fields or {}, request)


def test_a_line_for_the_service_handler_alone_is_written_as_a_record_would_be(monkeypatch):
    _, stream = service_handler(monkeypatch)
    fields, json_fields = {"rows": 2, "labels": {"a": 2}}, {"status": 200, "path": "/p%s"}
    written = line("GET /p%s 200", fields=fields, json_fields=json_fields)
    logs.log_lines(REQUESTS, [written])
    # Another handler: the same line now goes through logging as a record, to both.
    theirs = io.StringIO()
    other = logging.StreamHandler(theirs)
    other.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(other)
    logs.log_lines(REQUESTS, [written])
    direct, as_record = map(json.loads, stream.getvalue().splitlines())
    assert json.loads(theirs.getvalue()) == as_record
    assert (
        direct
        == as_record
        == {
            "time": "2023-11-14T22:13:20.250000Z",  # the line's, not when it was written
            "severity": "INFO",
            "logger": "mlservice.requests",
            "pid": os.getpid(),
            "message": "GET /p%s 200",
            "request_id": "r-1234567890abcdefghij",
            "extra": True,
            "rows": 2,
            "labels": {"a": 2},
            "status": 200,
            "path": "/p%s",
        }
    )


def test_a_line_carries_its_own_request_fields_not_the_current_ones(monkeypatch, request_fields):
    _, stream = service_handler(monkeypatch, "text")
    logs.log_lines(REQUESTS, [line(request={"request_id": "the-request-it-is-about"})])
    assert stream.getvalue().startswith("2023-11-14 22:13:20,250 INFO mlservice.requests: hello")
    assert stream.getvalue().endswith(" request_id=the-request-it-is-about\n")
    assert logs.REQUEST_FIELDS.get()["request_id"] == "r-1234567890abcdefghij"  # left as it was


def test_the_service_handler_alone_gets_the_lines_without_records(monkeypatch):
    _, stream = service_handler(monkeypatch)
    records = records_through(monkeypatch, REQUESTS)
    logs.log_lines(REQUESTS, [line("boom", logging.ERROR, json_fields={"status": 500}), line()])
    assert records == []
    first, second = map(json.loads, stream.getvalue().splitlines())
    assert (first["severity"], first["message"], first["status"]) == ("ERROR", "boom", 500)
    assert (second["severity"], second["message"]) == ("INFO", "hello")


class Writes(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def write(self, text):
        self.writes.append(text)
        return super().write(text)


def test_many_lines_are_written_in_whole_lines_of_at_most_pipe_buf_bytes(monkeypatch):
    handler, _ = service_handler(monkeypatch)
    handler.setStream(stream := Writes())
    lines = [line(f"line {n} " + "é" * (n * 37 % 300)) for n in range(200)]
    logs.log_lines(REQUESTS, lines)
    writes = stream.writes
    assert 1 < len(writes) < 200
    for text in writes:
        assert len(text.encode()) <= select.PIPE_BUF
        assert text.endswith("\n")
    messages = [json.loads(one)["message"] for one in "".join(writes).splitlines()]
    assert messages == [one.message for one in lines]
    # Full chunks: the next line would not have fitted.
    sizes = [len(text.encode()) for text in writes]
    first_lines = [len(text.split("\n")[0].encode()) + 1 for text in writes[1:]]
    assert all(size + nxt > select.PIPE_BUF for size, nxt in zip(sizes, first_lines, strict=False))


def test_a_line_longer_than_pipe_buf_is_written_alone(monkeypatch):
    handler, _ = service_handler(monkeypatch)
    handler.setStream(stream := Writes())
    long = line("x" * (select.PIPE_BUF + 10))
    logs.log_lines(REQUESTS, [line("a"), long, line("b")])
    assert [
        [json.loads(one)["message"] for one in text.splitlines()] for text in stream.writes
    ] == [
        ["a"],
        [long.message],
        ["b"],
    ]


def test_no_lines_write_nothing(monkeypatch):
    handler, stream = service_handler(monkeypatch)
    monkeypatch.setattr(handler, "write_lines", lambda lines: pytest.fail("written"))
    logs.log_lines(REQUESTS, [])
    assert stream.getvalue() == ""


def test_a_parent_logger_between_that_passes_lines_on_keeps_the_shortcut(monkeypatch):
    # As in production: Flask's app.logger is "mlservice", between "mlservice.requests" and the
    # root, with no handler of its own.
    _, stream = service_handler(monkeypatch)
    logger = logging.getLogger("some.package.requests")
    logging.getLogger("some.package")  # now a logger, no longer a placeholder
    records = records_through(monkeypatch, logger)
    logs.log_lines(logger, [line(fields={"rows": 1})])
    assert records == []
    [written] = map(json.loads, stream.getvalue().splitlines())
    assert (written["logger"], written["message"], written["rows"]) == (
        "some.package.requests",
        "hello",
        1,
    )


@pytest.mark.parametrize(
    "change",
    [
        "another root handler",
        "a handler of the logger's own",
        "a parent logger with a handler",
        "a parent logger that keeps its lines",
        "the logger disabled",
        "a filter on the logger",
        "a filter on the handler",
        "a handler level above the line's",
        "the text format",
        "another kind of handler",
    ],
)
def test_any_other_set_up_gets_the_line_through_logging(monkeypatch, change):
    handler, stream = service_handler(
        monkeypatch, "text" if change == "the text format" else "json"
    )
    logger, theirs = logging.getLogger("some.package.requests"), io.StringIO()
    parent = logging.getLogger("some.package")
    if change == "another root handler":
        logging.getLogger().addHandler(logging.StreamHandler(theirs))
    elif change == "a handler of the logger's own":
        monkeypatch.setattr(logger, "handlers", [logging.StreamHandler(theirs)])
    elif change == "a parent logger with a handler":
        monkeypatch.setattr(parent, "handlers", [logging.StreamHandler(theirs)])
    elif change == "a parent logger that keeps its lines":
        monkeypatch.setattr(parent, "propagate", False)
    elif change == "the logger disabled":
        monkeypatch.setattr(logger, "disabled", True)
    elif change == "a filter on the logger":
        monkeypatch.setattr(logger, "filters", [lambda record: True])
    elif change == "a filter on the handler":
        monkeypatch.setattr(handler, "filters", [lambda record: True])
    elif change == "a handler level above the line's":
        monkeypatch.setattr(handler, "level", logging.WARNING)
    elif change == "another kind of handler":
        swapped = logging.StreamHandler(stream)
        swapped.setFormatter(handler.formatter)
        monkeypatch.setattr(logging.getLogger(), "handlers", [swapped])
    records = records_through(monkeypatch, logger)
    logs.log_lines(logger, [line(fields={"rows": 1})])
    [record] = records
    assert (record.name, record.levelname, record.getMessage()) == (logger.name, "INFO", "hello")
    assert (record.fields, record.created) == ({"rows": 1}, WHEN)
    if change in (
        "a parent logger that keeps its lines",
        "a handler level above the line's",
        "the logger disabled",
    ):
        assert "hello" not in stream.getvalue()  # as logging decides: the root's handler drops it
    else:
        assert "hello" in stream.getvalue()


def test_lines_the_stream_refuses_do_not_fail_the_caller(monkeypatch):
    handler, _ = service_handler(monkeypatch)

    class Closed(io.StringIO):
        def write(self, text):
            raise OSError("the pipe is closed")

    handler.setStream(Closed())
    refused = []
    monkeypatch.setattr(handler, "handleError", refused.append)
    logs.log_lines(REQUESTS, [line("lost"), line("too")])
    [record] = refused
    assert [json.loads(one)["message"] for one in record.msg.splitlines()] == ["lost", "too"]


def sized(size: int, handler: logs.ServiceHandler) -> logs.Line:
    """A line that is exactly `size` bytes once written, newline included."""
    probe = Writes()
    handler.setStream(probe)
    logs.log_lines(REQUESTS, [line("")])
    return line("x" * (size - len(probe.getvalue().encode())))


def test_lines_that_fill_pipe_buf_exactly_go_in_one_write(monkeypatch):
    handler, _ = service_handler(monkeypatch)
    first, second = sized(2000, handler), sized(select.PIPE_BUF - 2000, handler)
    whole = sized(select.PIPE_BUF, handler)
    handler.setStream(stream := Writes())
    logs.log_lines(REQUESTS, [first, second, whole, first, second])
    assert [len(text.encode()) for text in stream.writes] == [select.PIPE_BUF] * 3
    assert [text.count("\n") for text in stream.writes] == [2, 1, 2]


def test_a_handler_at_the_line_s_own_level_keeps_the_shortcut(monkeypatch):
    handler, stream = service_handler(monkeypatch)
    monkeypatch.setattr(handler, "level", logging.INFO)
    records = records_through(monkeypatch, REQUESTS)
    logs.log_lines(REQUESTS, [line()])
    assert records == []
    assert json.loads(stream.getvalue())["message"] == "hello"


def test_a_value_json_has_no_type_for_is_written_as_its_text(monkeypatch):
    _, stream = service_handler(monkeypatch)
    logs.log_lines(REQUESTS, [line(fields={"where": Path("/srv/model.skops")})])
    assert json.loads(stream.getvalue())["where"] == "/srv/model.skops"


def test_a_text_line_shows_the_milliseconds_of_its_own_time(monkeypatch):
    _, stream = service_handler(monkeypatch, "text")
    late = logs.Line(1_700_000_000.9995, logging.INFO, "late", {}, {}, REQUEST)
    logs.log_lines(REQUESTS, [late])
    assert stream.getvalue().startswith("2023-11-14 22:13:20,999 INFO mlservice.requests: late")
