"""The HTTP server under each fake cloud API (heroku_api, appengine_api, lightsail_api).

It listens on a free loopback port in a thread, and says nothing when a client goes away in the
middle of a request: the tests stop gcloud or aws half-way on purpose (a timeout, a signal).
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a fake's own bug still shows
            super().handle_error(request, client_address)


class FakeServer:
    """Serves `handler` on 127.0.0.1 from `with` to the end of the block; `url` is its base."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = QuietServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.unblock = threading.Event()  # lets requests made to hang go when the block ends
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.unblock.set()
        self.server.shutdown()
        self.server.server_close()
