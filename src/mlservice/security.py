"""Security headers on every response: the page loads only its own files and cannot be framed.

The templates use no inline script, style or event handlers, so the policy needs no
'unsafe-inline'. JSON answers get the same headers; a policy on them costs nothing.

Added by a WSGI middleware around the app, as the response starts, rather than by an
after_request hook: the same headers, on every response Flask answers (errors included), at a
small part of the cost of setting them one by one on each Response object.
"""

from flask import Flask

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # frame-ancestors above, for browsers that predate it.
    "X-Frame-Options": "DENY",
}


# Lowered once: HTTP header names are compared without case.
_LOWERED = {name.lower(): (name, value) for name, value in HEADERS.items()}
_ALL = list(HEADERS.items())


def _missing(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Those of HEADERS that the response does not set itself."""
    for name, _ in headers:
        if name.lower() in _LOWERED:  # it sets one (rare): only the others are added
            present = {name.lower() for name, _ in headers}
            return [item for name, item in _LOWERED.items() if name not in present]
    return _ALL  # most responses: no set to build


class SecurityHeaders:
    """WSGI middleware: adds each of HEADERS that the response does not set itself."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, *_missing(headers)], exc_info)

        return self.wsgi_app(environ, start)


def init_app(app: Flask) -> None:
    app.wsgi_app = SecurityHeaders(app.wsgi_app)
