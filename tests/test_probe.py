"""The one poller and the one HTTP helper every tool uses (src/mlservice/probe.py)."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mlservice.probe import NotYet, WaitTimeout, http, wait_until


class FakeClock:
    """Time that passes only when the poller sleeps."""

    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def poll(check, clock, **options):
    settings = {"timeout": 5.0, "interval": 2.0, "what": "the thing"} | options
    return wait_until(check, clock=clock, sleep=clock.sleep, **settings)


def test_returns_the_first_truthy_result_without_waiting_more():
    clock = FakeClock()
    results = iter([None, 0, "ready", "later"])
    assert poll(lambda: next(results), clock) == "ready"
    assert clock.sleeps == [2.0, 2.0]


def test_gives_up_after_the_timeout_with_the_last_reason_and_a_last_look_at_the_deadline():
    clock = FakeClock()
    looks: list[float] = []

    def check():
        looks.append(clock.now)
        raise NotYet(f"status {503 + len(looks)}")

    with pytest.raises(WaitTimeout) as caught:
        poll(check, clock)
    # Pauses of 2 s, the last one cut to what is left; one look at the deadline, none after it.
    assert clock.sleeps == [2.0, 2.0, 1.0]
    assert looks == [100.0, 102.0, 104.0, 105.0]
    assert caught.value.reason == "status 507"
    assert str(caught.value) == "gave up waiting for the thing after 5 s (status 507)"


def test_other_errors_end_the_wait_at_once():
    clock = FakeClock()

    def check():
        raise OSError("connection refused")

    with pytest.raises(OSError, match="connection refused"):
        poll(check, clock)
    assert clock.sleeps == []
    # ...unless the caller says they only mean "not yet".
    with pytest.raises(WaitTimeout, match=r"after 5 s \(connection refused\)"):
        poll(check, clock, retry_on=(OSError,))


def test_a_zero_timeout_still_looks_once():
    clock = FakeClock()
    assert poll(lambda: True, clock, timeout=0) is True
    with pytest.raises(WaitTimeout):
        poll(lambda: False, clock, timeout=0)
    assert clock.sleeps == []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 418 if body == b"teapot" else 200
        self.send_response(status)
        self.send_header("X-Echo-Type", self.headers["Content-Type"])
        self.end_headers()
        self.wfile.write(b'{"got": "' + body + b'"}')

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server_url():
    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_http_returns_every_status_with_headers_and_body(server_url):
    reply = http("POST", server_url, body=b"hello", headers={"Content-Type": "text/plain"})
    assert (reply.status, reply.json()) == (200, {"got": "hello"})
    assert reply.headers["X-Echo-Type"] == "text/plain"
    error = http("POST", server_url, body=b"teapot", headers={"Content-Type": "text/plain"})
    assert (error.status, error.json()) == (418, {"got": "teapot"})


def test_http_refuses_other_schemes_and_raises_when_nothing_answers():
    with pytest.raises(ValueError, match="is not an http"):
        http("GET", "file:///etc/passwd")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError, match="refused"):
        http("GET", f"http://127.0.0.1:{port}/", timeout=2)
