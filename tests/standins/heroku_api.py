"""A stand-in for the Heroku Platform API (and, optionally, a token-auth registry) on 127.0.0.1.

It keeps releases and dynos like Heroku does, records every request for the test to assert on,
and answers 401/406/400 when the Authorization or Accept header or the body is wrong, so a script
that sends the wrong thing fails as it would against api.heroku.com.
"""

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "application/vnd.heroku+json; version=3"
DOCKER_RELEASES = API + ".docker-releases"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


class FakeHeroku:
    def __init__(self, app: str, key: str, web_url: str, dynos: str = "up") -> None:
        self.app, self.key, self.web_url, self.dynos = app, key, web_url, dynos
        self.requests: list[dict] = []
        self.releases = [
            {"id": str(uuid.uuid4()), "version": v, "status": "succeeded", "current": v == 7}
            for v in (6, 7)
        ]
        self.manifest: dict | None = None  # set to serve a registry at /v2/ (token auth)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHeroku":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def current(self) -> dict:
        return next(r for r in self.releases if r["current"])

    def release(self, image: str, description: str) -> dict:
        new = {
            "id": str(uuid.uuid4()),
            "version": self.releases[-1]["version"] + 1,
            "status": "succeeded",
            "current": True,
            "description": description,
            "image": image,
        }
        for old in self.releases:
            old["current"] = False
        self.releases.append(new)
        return new

    def answer(self, method: str, path: str, headers, body) -> tuple[int, object]:
        if path.startswith("/v2/") or path.startswith("/token"):
            return self.registry(path, headers)
        if headers.get("Authorization") != f"Bearer {self.key}":
            return 401, {"id": "unauthorized", "message": "Invalid credentials provided."}
        accept = headers.get("Accept", "")
        if not accept.startswith(API):
            return 406, {"id": "not_acceptable", "message": "Accept: version=3 is required"}
        app = f"/apps/{self.app}"
        if (method, path) == ("GET", app):
            return 200, {"name": self.app, "web_url": self.web_url, "stack": {"name": "container"}}
        if (method, path) == ("GET", f"{app}/releases"):
            match = re.fullmatch(r"version \.\.; order=desc, max=(\d+)", headers.get("Range", ""))
            newest = sorted(self.releases, key=lambda r: -r["version"])
            return 206, newest[: int(match.group(1))] if match else self.releases
        if (method, path) == ("PATCH", f"{app}/formation"):
            if accept != DOCKER_RELEASES or headers.get("Content-Type") != "application/json":
                return 406, {"id": "not_acceptable", "message": "docker-releases variant needed"}
            (update,) = body["updates"]
            if update["type"] != "web" or not re.fullmatch(
                r"sha256:[0-9a-f]{64}", update["docker_image"]
            ):
                return 400, {"id": "invalid_params", "message": "bad update"}
            self.release(update["docker_image"], "Deployed web")
            return 200, [{"type": "web", "quantity": 1, "size": "basic"}]
        if (method, path) == ("GET", f"{app}/dynos"):
            now = self.current()
            state = self.dynos if now["description"] == "Deployed web" else "up"
            return 200, [
                {
                    "type": "web",
                    "state": state,
                    "release": {"id": now["id"], "version": now["version"]},
                }
            ]
        if (method, path) == ("POST", f"{app}/releases"):
            target = next(r for r in self.releases if r["id"] == body["release"])
            return 201, self.release(target.get("image", ""), f"Rollback to v{target['version']}")
        return 404, {"id": "not_found", "message": f"{method} {path}"}

    def registry(self, path: str, headers) -> tuple[int, object]:
        """registry.heroku.com's token dance: 401 + Bearer challenge, /token, then the manifest."""
        if path.startswith("/token"):
            return 200, {"token": "registry-token"}
        if headers.get("Authorization") != "Bearer registry-token" or self.manifest is None:
            return 401, {"errors": [{"code": "UNAUTHORIZED"}]}
        return 200, self.manifest

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                status, answer = fake.answer(self.command, path.split("?")[0], self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 401 and path.startswith("/v2/"):
                    scope = f"repository:{fake.app}/web:pull"
                    challenge = (
                        f'Bearer realm="{fake.url}/token",service="registry",scope="{scope}"'
                    )
                    self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_POST = _any

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        return Handler
