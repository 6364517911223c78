"""Error answers: JSON for API clients, a page for browsers, never a traceback."""

import logging

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from mlservice import telemetry
from mlservice.responses import Error, ErrorDetail, json_response
from mlservice.validation import InputError, UnreadableInput

log = logging.getLogger(__name__)

# Machine-readable codes for the HTTP errors Flask and Werkzeug raise themselves.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: object = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def json_error(
    status: int, code: str, message: str, details: object = None, headers: dict | None = None
) -> Response:
    telemetry.rejected(code)
    body = Error(
        error=ErrorDetail(
            code=code, message=message, details=details, request_id=telemetry.request_id()
        )
    )
    return json_response(body, status, headers)


def _wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def handle_api_error(error: ApiError):
    return json_error(error.status, error.code, error.message, error.details)


# The status of each domain error, in one place: the code that raises them knows no HTTP.
INPUT_ERROR_STATUS = {UnreadableInput: 400, InputError: 422}


def handle_input_error(error: InputError):
    status = next(
        INPUT_ERROR_STATUS[kind] for kind in type(error).__mro__ if kind in INPUT_ERROR_STATUS
    )
    return json_error(status, error.code, error.message, error.errors or None)


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    # Keep the headers the error carries, such as Allow on a 405 (RFC 9110 requires it).
    headers = {name: value for name, value in error.get_headers() if name != "Content-Type"}
    code = HTTP_CODES.get(status, "http_error")
    if _wants_json():
        return json_error(status, code, error.description or error.name, headers=headers)
    telemetry.rejected(code)
    page = render_template("error.html", error=error, request_id=telemetry.request_id())
    return page, status, headers


def handle_unexpected(error: Exception):
    # Log the traceback for the operator; the client only learns that it failed.
    log.exception("Unhandled error on %s %s", request.method, request.path)
    return handle_http_exception(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(InputError, handle_input_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
