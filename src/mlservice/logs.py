"""Log lines: one JSON object a line on the platforms, readable text locally.

Every line goes through one formatter, whoever writes it: the service, the libraries it uses, and
gunicorn (gunicorn.conf.py hands its handlers the same formatter). LOG_FORMAT picks the shape
(config.py). JSON lines use the names Cloud Logging reads (`time`, `severity`, `message`,
`stack_trace`, `httpRequest`, `logging.googleapis.com/trace`); Heroku and Lightsail show them as
they are, one line each. docs/observability.md shows both shapes and how to read them.

A line written while a request runs carries that request's fields (its request id, and its trace
on App Engine), set by mlservice.telemetry in REQUEST_FIELDS. A record may add its own in `fields`
(shown in both shapes) and `json_fields` (JSON only: what the text's message already says).
log_lines() writes the lines of requests that have ended (mlservice.telemetry), without records
when the service's JSON handler would be their only writer, as in production: the line every
request writes then costs a fraction of a record's.
"""

import logging
import select
import sys
import time
from contextvars import ContextVar
from typing import NamedTuple

import orjson

from mlservice import process

# The fields every line written during the current request carries; None outside requests.
REQUEST_FIELDS: ContextVar[dict | None] = ContextVar("mlservice_request_fields", default=None)


# The last whole second formatted and its text, replaced as one tuple: many lines share a second.
_last_second = [(-1, "")]


def _utc(timestamp: float) -> str:
    """RFC 3339 in UTC with microseconds, as Cloud Logging reads `time`."""
    second = int(timestamp)
    cached, text = _last_second[0]
    if second != cached:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second[0] = (second, text)
    return "%s.%06dZ" % (text, (timestamp - second) * 1e6)  # noqa: UP031 (faster than format)


def _encode(entry: dict) -> bytes:
    # orjson: the standard library's json took a third of a request line's cost (docs/
    # performance.md). What JSON has no type for (a path, an exception) is written as its str().
    return orjson.dumps(entry, default=str)


def _entry(
    created: float,
    severity: str,
    logger: str,
    message: str,
    request: dict | None,
    fields: dict,
    json_fields: dict,
) -> dict:
    """A JSON line's fields: these, then its request's (None outside requests), then its own."""
    return {
        "time": _utc(created),
        "severity": severity,  # Python's level names are Cloud Logging's severities
        "logger": logger,
        "pid": process.pid(),  # this process's: the record's is not looked up (configure)
        "message": message,
        **(request or {}),
        **fields,
        **json_fields,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a traceback goes into `stack_trace`, never onto lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _entry(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            REQUEST_FIELDS.get(),
            getattr(record, "fields", {}),
            getattr(record, "json_fields", {}),
        )
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack_trace"] = self.formatStack(record.stack_info)
        return _encode(entry).decode()


def _text(value: object) -> str:
    if isinstance(value, dict):
        return ",".join(f"{key}:{count}" for key, count in value.items())
    return str(value)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...`, the request id last; tracebacks below."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = {**getattr(record, "fields", {})}
        if request := REQUEST_FIELDS.get():
            fields["request_id"] = request["request_id"]
        pairs = "".join(f" {key}={_text(value)}" for key, value in fields.items())
        return super().formatMessage(record) + pairs


FORMATTERS = {"json": JsonFormatter, "text": TextFormatter}


class ServiceHandler(logging.StreamHandler):
    """The root logger's handler that configure() installs (and finds again)."""

    def write_lines(self, lines: list[bytes]) -> None:
        """Write whole JSON lines (newline included) in as few writes as keep each line whole:
        a write of PIPE_BUF bytes or fewer reaches a pipe, such as a container's stderr, in one
        piece, never mixed with another process's."""
        chunks, chunk, size = [], [], 0
        for line in lines:
            if chunk and size + len(line) > select.PIPE_BUF:
                chunks.append(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            chunks.append(b"".join(chunk))
        with self.lock:
            try:
                for text in chunks:
                    self.stream.write(text.decode())
                self.stream.flush()
            except Exception:  # as emit(): a log line never fails the service
                self.handleError(logging.makeLogRecord({"msg": b"".join(lines).decode()}))


def _sole_json_handler(logger: logging.Logger, level: int) -> ServiceHandler | None:
    """The service's JSON handler, when it alone would write this logger's line at this level.

    So when the logger has no filters, nothing between it and the root logger has handlers of
    its own or keeps lines from the root (a logger between, such as Flask's app.logger
    "mlservice", passes them on), and the root's one handler is the service's, in JSON, taking
    this level, with no filters.
    """
    if logger.filters or logger.disabled:
        return None
    node = logger
    while node.parent is not None:
        if node.handlers or not node.propagate:
            return None
        node = node.parent
    if node is not logging.root or len(node.handlers) != 1:
        return None
    handler = node.handlers[0]
    if (
        isinstance(handler, ServiceHandler)
        and isinstance(handler.formatter, JsonFormatter)
        and not handler.filters
        and level >= handler.level
    ):
        return handler
    return None


class Line(NamedTuple):
    """A line to log after the fact, for a request that has ended (mlservice.telemetry)."""

    created: float  # time.time() of what it tells
    level: int
    message: str
    fields: dict  # shown in both formats
    json_fields: dict  # JSON only: what the text's message already says
    request: dict  # its request's fields, as REQUEST_FIELDS held them


def log_lines(logger: logging.Logger, lines: list[Line]) -> None:
    """Log these lines, each with the time and the request fields it carries.

    In production the service's JSON handler is the only one (configure): the lines are then
    written straight to it, the same lines LogRecords would give at a fraction of the cost, for
    the line every request writes (mlservice.telemetry; `make bench`). Otherwise, as when another
    handler was added, each goes through logging as a record.
    """
    if not lines:
        return
    handler = _sole_json_handler(logger, min(line.level for line in lines))
    if handler is not None:
        handler.write_lines(
            [
                _encode(
                    _entry(
                        line.created,
                        logging.getLevelName(line.level),
                        logger.name,
                        line.message,
                        line.request,
                        line.fields,
                        line.json_fields,
                    )
                )
                + b"\n"
                for line in lines
            ]
        )
        return
    for line in lines:
        record = logging.makeLogRecord(
            {
                "created": line.created,
                "msecs": int((line.created - int(line.created)) * 1000) + 0.0,
                "name": logger.name,
                "levelno": line.level,
                "levelname": logging.getLevelName(line.level),
                "msg": line.message,
                "fields": line.fields,
                "json_fields": line.json_fields,
            }
        )
        token = REQUEST_FIELDS.set(line.request)
        try:
            logger.handle(record)
        finally:
            REQUEST_FIELDS.reset(token)


def configure(level: str, log_format: str) -> None:
    """Send every logger's lines to stderr in this format, at this level and above.

    Leaves the handlers alone when someone else configured the root logger first (pytest, an
    application that embeds this one); sets the level either way. Calling it again (each
    create_app does) replaces the formatter rather than adding a handler. Python's warnings
    become log lines too, so that no plain-text line slips between the JSON ones.
    """
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if isinstance(h, ServiceHandler)), None)
    if handler is None:
        if root.handlers:
            return
        handler = ServiceHandler(sys.stderr)
        root.addHandler(handler)
        logging.captureWarnings(True)
        # Neither format shows the thread or the multiprocessing process name, and JSON takes the
        # process id from mlservice.process: skip finding them for every record (the logging
        # HOWTO's "Optimization"; the id is a system call).
        logging.logThreads = logging.logMultiprocessing = logging.logProcesses = False
    handler.setFormatter(FORMATTERS[log_format]())


def adopt(loggers: list[logging.Logger], log_format: str) -> None:
    """Give these loggers' own handlers (gunicorn's) the service's formatter."""
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(FORMATTERS[log_format]())
