"""registry.heroku.com's manifest rule in front of a real registry (Debian's docker-registry).

Heroku's registry takes Docker image manifests v2 schema 2 only: an OCI manifest or index, which
buildx pushes by default with the containerd image store, is refused with 405 (deploy-targets.md,
"Heroku container registry"). Every other request goes to the registry behind it unchanged, so
docker pushes, logs in and reads back exactly as against a registry.
"""

import http.client
import json
import re
from http.server import BaseHTTPRequestHandler

from tests.standins.server import FakeServer

OCI_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length"}


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with Content-Length or chunked (docker pushes chunked)."""
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    chunks = []
    while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()
    handler.rfile.readline()  # the empty line after the last chunk
    return b"".join(chunks)


class HerokuRegistry(FakeServer):
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream  # host:port of the real registry
        self.refused: list[str] = []
        super().__init__(self._handler())

    def _handler(self):
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = read_body(self)
                manifest = re.fullmatch(r"/v2/.+/manifests/[^/]+", self.path.split("?")[0])
                media_type = self.headers.get("Content-Type", "").split(";")[0]
                if self.command == "PUT" and manifest and media_type in OCI_TYPES:
                    front.refused.append(media_type)
                    error = {"code": "UNSUPPORTED", "message": f"{media_type} is not supported"}
                    self.answer(405, {}, json.dumps({"errors": [error]}).encode())
                    return
                upstream = http.client.HTTPConnection(front.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                reply = upstream.getresponse()
                data = reply.read()
                kept = {k: v for k, v in reply.getheaders() if k.lower() not in HOP_BY_HOP}
                upstream.close()
                if self.command == "HEAD":  # no body, but the size of what GET would send
                    kept["Content-Length"] = reply.getheader("Content-Length", "0")
                self.answer(reply.status, kept, data)

            def answer(self, status: int, headers: dict, data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Type" not in headers and data:
                    self.send_header("Content-Type", "application/json")
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args) -> None:
                pass

        return Handler
