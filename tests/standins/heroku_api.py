"""A stand-in for the Heroku Platform API (and, optionally, a token-auth registry) on 127.0.0.1.

It keeps releases, dynos, the formation and config vars like Heroku does, records every request
for the test to assert on, and answers 401/406/400 when the Authorization or Accept header or the
body is wrong, so a script that sends the wrong thing fails as it would against api.heroku.com.

As in the Platform API reference (deploy-targets.md, "Facts checked against vendor sources"):
- a new release is `pending` while its release phase runs, for `pending_looks` reads of GET
  /apps/APP/releases/ID, then `succeeded` (it becomes current) or `failed` (its release phase
  failed: the previous release stays current);
- the web dynos of a new current release are `starting` for `starting_looks` reads of GET
  /apps/APP/dynos, then `up`, `crashed`, or `idle` (an Eco dyno that sleeps);
- changing config vars creates a release; a rollback (POST /apps/APP/releases) is a new release
  with the image and config vars of the one rolled back to;
- a new container app has no `web` formation entry before its first release; that release
  creates one (quantity 1, the account's default size).
"""

import base64
import json
import os
import re
import signal
import uuid
from http.server import BaseHTTPRequestHandler

from tests.standins.server import FakeServer

API = "application/vnd.heroku+json; version=3"
DOCKER_RELEASES = API + ".docker-releases"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


class FakeHeroku(FakeServer):
    def __init__(
        self,
        app: str,
        key: str,
        web_url: str,
        dynos: str = "up",
        release: str = "succeeded",
        size: str | None = "basic",
        quantity: int = 1,
        pending_looks: int = 2,
        starting_looks: int = 2,
        rollback: str = "succeeded",
        new_app_size: str = "Basic",
        unlisted_looks: int = 0,
    ) -> None:
        self.rollback_outcome = rollback
        self.app, self.key, self.web_url, self.dynos = app, key, web_url, dynos
        self.outcome, self.pending_looks, self.starting_looks = (
            release,
            pending_looks,
            starting_looks,
        )
        self.new_app_size = new_app_size
        # Reads of the release list that do not show a formation change's release yet: the
        # reference does not promise it is listed by the time the PATCH answers, so the script
        # must not take the newest listed release for its own.
        self.unlisted_looks = unlisted_looks
        self.formation = [{"type": "web", "quantity": quantity, "size": size}] if size else []
        self.config = {"LOG_LEVEL": "info"}
        self.requests: list[dict] = []
        self.plants: dict[tuple[str, str], list[str | None]] = {}
        self.releases = [
            {
                "id": str(uuid.uuid4()),
                "version": v,
                "status": "succeeded",
                "current": v == 7,
                "description": f"Deployed web (v{v})" if size else "Enable Logplex",
                "image": f"sha256:{v:064x}" if size else "",
                "config": dict(self.config),
            }
            for v in (6, 7)
        ]
        self.dyno_looks = 0
        self.manifest: dict | None = None  # set to serve a registry at /v2/ (token auth)
        # How the registry spells the challenge header: Go's net/http (the registry's server)
        # canonicalises it to Www-Authenticate; RFC 9110 field names are case-insensitive.
        self.challenge_header = "Www-Authenticate"
        # The token answer's field: "token", or OAuth 2's "access_token", which the Docker
        # token specification (distribution/docs/spec/auth/token.md) lets a server send instead.
        self.token_field = "token"  # noqa: S105 (a field name)
        self.token_auth = True  # False: a registry that takes the Basic credentials directly
        super().__init__(self._handler())

    def current(self) -> dict:
        return next(r for r in self.releases if r["current"])

    def plant(self, method: str, path: str, what: str, times: int = 1, after: int = 0) -> None:
        """Make `times` requests `method path` (path after /apps/APP), after the next `after`,
        go wrong: "error" (503, nothing done), "long error" (the same with a 300-character
        message), "garbage" (not JSON), "sigterm" (SIGTERM to this process, then the normal
        answer) or "hang" (no answer)."""
        self.plants.setdefault((method, path), []).extend([None] * after + [what] * times)

    def release(
        self, image: str, description: str, outcome: str = "succeeded", config=None
    ) -> dict:
        new = {
            "id": str(uuid.uuid4()),
            "version": self.releases[-1]["version"] + 1,
            "status": "pending",
            "current": False,
            "description": description,
            "image": image,
            "config": dict(self.config if config is None else config),
            "outcome": outcome,
            "looks": 0,
        }
        self.releases.append(new)
        return new

    def look(self, release: dict) -> None:
        """One read of a pending release: its release phase ends after pending_looks reads."""
        if release["status"] != "pending":
            return
        release["looks"] += 1
        if release["looks"] >= self.pending_looks:
            release["status"] = release["outcome"]
            if release["status"] == "succeeded":
                for old in self.releases:
                    old["current"] = old is release
                self.config = dict(release["config"])
                self.dyno_looks = 0
                if release["image"] and not self.formation:  # a new app's first release
                    self.formation = [{"type": "web", "quantity": 1, "size": self.new_app_size}]

    @staticmethod
    def public(release: dict) -> dict:
        hidden = ("outcome", "looks", "image", "config", "unlisted")
        return {k: v for k, v in release.items() if k not in hidden}

    def answer(self, method: str, path: str, headers, body) -> tuple[int, object]:
        if path.startswith("/v2/") or path.startswith("/token"):
            return self.registry(path, headers)
        if headers.get("Authorization") != f"Bearer {self.key}":
            return 401, {"id": "unauthorized", "message": "Invalid credentials provided."}
        accept = headers.get("Accept", "")
        if not accept.startswith(API):
            return 406, {"id": "not_acceptable", "message": "Accept: version=3 is required"}
        app = f"/apps/{self.app}"
        if path.startswith("//"):
            return 404, {"id": "not_found", "message": f"{method} {path}"}
        if (method, path) == ("GET", app):
            return 200, {"name": self.app, "web_url": self.web_url, "stack": {"name": "container"}}
        if (method, path) == ("GET", f"{app}/releases"):
            match = re.fullmatch(r"version \.\.; order=desc, max=(\d+)", headers.get("Range", ""))
            listable = [r for r in self.releases if not r.get("unlisted")]
            for release in self.releases:
                release["unlisted"] = max(release.get("unlisted", 0) - 1, 0)
            newest = sorted(listable, key=lambda r: -r["version"])
            listed = newest[: int(match.group(1))] if match else listable
            return 206, [self.public(r) for r in listed]
        if method == "GET" and path.startswith(f"{app}/releases/"):
            wanted = path.rsplit("/", 1)[1]
            found = next((r for r in self.releases if r["id"] == wanted), None)
            if found is None:
                return 404, {"id": "not_found", "message": "Couldn't find that release."}
            self.look(found)
            return 200, self.public(found)
        if (method, path) == ("GET", f"{app}/formation"):
            return 200, self.formation
        if (method, path) == ("GET", f"{app}/config-vars"):
            return 200, self.config
        if (method, path) == ("PATCH", f"{app}/config-vars"):
            if headers.get("Content-Type") != "application/json" or not isinstance(body, dict):
                return 400, {"id": "invalid_params", "message": "a JSON object is required"}
            # A config change is a release too; with no new image it succeeds at once.
            changed = self.release(
                self.current()["image"], "Set config vars", config={**self.config, **body}
            )
            changed["looks"] = self.pending_looks
            self.look(changed)
            return 200, self.config
        if (method, path) == ("PATCH", f"{app}/formation"):
            if accept != DOCKER_RELEASES or headers.get("Content-Type") != "application/json":
                return 406, {"id": "not_acceptable", "message": "docker-releases variant needed"}
            (update,) = body["updates"]
            if update["type"] != "web" or not re.fullmatch(
                r"sha256:[0-9a-f]{64}", update["docker_image"]
            ):
                return 400, {"id": "invalid_params", "message": "bad update"}
            made = self.release(update["docker_image"], "Deployed web", self.outcome)
            made["unlisted"] = self.unlisted_looks
            return 200, self.formation
        if (method, path) == ("GET", f"{app}/dynos"):
            now = self.current()
            self.dyno_looks += 1
            if self.dyno_looks <= self.starting_looks:
                state = "starting"
            else:
                state = self.dynos if now.get("description") == "Deployed web" else "up"
            quantity = self.formation[0]["quantity"] if self.formation else 0
            return 200, [
                {
                    "type": "web",
                    "name": f"web.{n}",
                    "state": state,
                    "release": {"id": now["id"], "version": now["version"]},
                }
                for n in range(1, quantity + 1)
            ]
        if (method, path) == ("POST", f"{app}/releases"):
            target = next((r for r in self.releases if r["id"] == body["release"]), None)
            if target is None:
                return 404, {"id": "not_found", "message": "Couldn't find that release."}
            made = self.release(
                target["image"],
                f"Rollback to v{target['version']}",
                self.rollback_outcome,
                config=target["config"],
            )
            return 201, self.public(made)
        return 404, {"id": "not_found", "message": f"{method} {path}"}

    def registry(self, path: str, headers) -> tuple[int, object]:
        """registry.heroku.com's token dance: 401 + Bearer challenge, /token, then the manifest."""
        if path.startswith("/token"):
            # The token server wants the challenge's service and scope, and the API key.
            wanted = f"/token?service=registry&scope=repository:{self.app}/web:pull"
            basic = "Basic " + base64.b64encode(f"_:{self.key}".encode()).decode()
            if path != wanted or headers.get("Authorization") != basic:
                return 401, {"errors": [{"code": "UNAUTHORIZED"}]}
            return 200, {self.token_field: "registry-token"}
        basic = "Basic " + base64.b64encode(f"_:{self.key}".encode()).decode()
        granted = "Bearer registry-token" if self.token_auth else basic
        if headers.get("Authorization") != granted or self.manifest is None:
            return 401, {"errors": [{"code": "UNAUTHORIZED"}]}
        if (
            MANIFEST_V2 not in headers.get("Accept", "")
            and self.manifest["mediaType"] == MANIFEST_V2
        ):
            # A client that does not name the schema 2 type in Accept gets the manifest rewritten
            # into schema 1 (distribution/docs/spec/manifest-v2-2.md, "Backward compatibility").
            return 200, {"schemaVersion": 1, "mediaType": MANIFEST_V1, "name": f"{self.app}/web"}
        return 200, self.manifest

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                # As sent: http.server folds leading slashes ("//apps" to "/apps"), the API not.
                path = self.requestline.split(" ")[1]
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                key = (self.command, path.split("?")[0].removeprefix(f"/apps/{fake.app}"))
                waiting = fake.plants.get(key)
                planted = waiting.pop(0) if waiting else None
                if planted == "hang":
                    fake.unblock.wait()
                    return
                if planted in ("error", "long error"):
                    message = "planted" if planted == "error" else "x" * 300
                    status, answer = 503, {"id": "unavailable", "message": message}
                else:
                    route = path if path.startswith("/token") else path.split("?")[0]
                    status, answer = fake.answer(self.command, route, self.headers, body)
                if planted == "sigterm":
                    os.kill(os.getpid(), signal.SIGTERM)
                data = b"<html>" if planted == "garbage" else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 401 and path.startswith("/v2/") and fake.token_auth:
                    scope = f"repository:{fake.app}/web:pull"
                    challenge = (
                        f'Bearer realm="{fake.url}/token",service="registry",scope="{scope}"'
                    )
                    self.send_header(fake.challenge_header, challenge)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_POST = _any

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        return Handler
