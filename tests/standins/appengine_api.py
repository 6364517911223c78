"""A stand-in for the App Engine Admin API (v1) and the Cloud Storage JSON API on 127.0.0.1.

The real `gcloud` talks to it when CLOUDSDK_API_ENDPOINT_OVERRIDES_APPENGINE and
CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE point here (`FakeAppEngine.environment`): `gcloud app
deploy` uploads each file to the app's staging bucket and creates the version from the manifest,
`versions list/describe/delete` and `services set-traffic` read and change what is here. The
rules it enforces are the vendor's, each cited where it is enforced (deploy-targets.md, section
"Verified against vendor sources, 2026-12", collects them).

Every new version serves at `code_url` (set it to a running app, or to a port where nothing
listens for an upload that does not start); `plant()` makes one kind of request fail in a
chosen way, for the tests that fail each step.
"""

import hashlib
import json
import os
import re
import signal
import uuid
from base64 import b64encode
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.standins.server import FakeServer

# The Admin API's version id rule, as gcloud checks it (googlecloudsdk/appengine/api/appinfo.py,
# MODULE_VERSION_ID_RE_STRING); ids starting with "ah-" (BUILTIN_NAME_PREFIX) are reserved, and
# "default" and "latest" name the serving and newest versions in URLs.
VERSION_ID = re.compile(r"(?!-)[a-z\d\-]{0,62}[a-z\d]")
RESERVED = ("default", "latest")
# "Warmup requests must be enabled ...": the Admin API's answer to a gradual migration towards a
# version without warmup (apps.services.patch, migrateTraffic; seen in dart-lang/pub-dev#531 and
# hashicorp/terraform-provider-google#6904).
WARMUP_REFUSED = (
    "Warmup requests must be enabled for all versions that will gain additional traffic as a "
    "result of the traffic migration."
)
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing answers HTTP there
# Requests answered with a long-running operation: for them a "hang" plant means the operation
# never ends, and "fail" that it ends with an error.
OPERATIONS = (
    "apps.services.patch",
    "apps.services.versions.create",
    "apps.services.versions.delete",
)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), which Cloud Storage reports for each object."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def multipart_content(body: bytes, content_type: str) -> bytes | None:
    """The data part of a multipart/related upload (JSON metadata first, then the bytes)."""
    match = re.search(r"boundary=['\"]?([^'\";]+)", content_type)
    parts = body.split(b"--" + match[1].encode()) if match else []
    if len(parts) < 4:
        return None
    _, _, content = parts[2].partition(b"\n\n")
    return content.removesuffix(b"\n")


def error(code: int, status: str, message: str) -> tuple[int, dict]:
    """Google's JSON error body (https://cloud.google.com/apis/design/errors)."""
    return code, {"error": {"code": code, "message": message, "status": status}}


class FakeAppEngine(FakeServer):
    def __init__(self, project: str = "demo", code_url: str = UNREACHABLE) -> None:
        self.project = project
        self.code_url = code_url
        self.token = "ya29." + uuid.uuid4().hex  # the access token gcloud must present
        self.bucket = f"staging.{project}.appspot.com"
        self.objects: dict[str, bytes] = {}  # the staging bucket: SHA-1 name -> content
        self.services: dict[str, dict] = {}  # id -> {"split": {...}, "versions": {id: resource}}
        self.operations: dict[str, dict] = {}
        self.finishers: dict[str, tuple] = {}  # operation -> (the request kind, what it does)
        self.requests: list[dict] = []
        self.plants: dict[str, list[str]] = {}  # request kind -> what goes wrong, in turn
        self.signal_pid = os.getpid()  # who gets the SIGTERM of a "sigterm" plant
        self.untested_code_served = False
        self.clock = 0
        super().__init__(self._handler())

    def environment(self, config_dir: Path) -> dict[str, str]:
        """What gcloud needs to talk to this fake only, offline, with its own configuration."""
        config_dir.mkdir(parents=True, exist_ok=True)
        token = config_dir / "access-token"
        token.write_text(self.token)
        return {
            "CLOUDSDK_CONFIG": str(config_dir),
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token),
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_APPENGINE": f"{self.url}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"{self.url}/storage/v1/",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        }

    # -- the app's state ---------------------------------------------------------------------

    def add_version(
        self, version: str, service: str = "default", traffic: float = 0.0, warmup: bool = True
    ) -> dict:
        """A version deployed before the test (serving at code_url), optionally with traffic."""
        resource = self.version_resource(service, version, {"runtime": "python313"}, warmup)
        self.services.setdefault(service, {"split": {"allocations": {}}, "versions": {}})
        self.services[service]["versions"][version] = resource
        if traffic:
            self.services[service]["split"]["allocations"][version] = traffic
        return resource

    def split(self, service: str = "default") -> dict[str, float]:
        return dict(self.services[service]["split"]["allocations"])

    def version_ids(self, service: str = "default") -> list[str]:
        return list(self.services.get(service, {}).get("versions", {}))

    def plant(self, kind: str, what: str, times: int = 1, after: int = 0) -> None:
        """Make `times` requests of `kind` (e.g. "apps.services.patch"), after the next `after`
        ones, go wrong: "error" (403, nothing done), "garbage" (not JSON), "empty" (200 with
        {}), "hang" (no answer; an operation that never ends), "fail" (its operation ends with
        an error) or "sigterm" (SIGTERM to signal_pid, then the normal answer). The looks at an
        operation are kinds of their own: "apps.services.patch.operation"."""
        self.plants.setdefault(kind, []).extend([None] * after + [what] * times)

    def planted(self, kind: str) -> str | None:
        """What goes wrong with this request of `kind`, if anything (used up)."""
        waiting = self.plants.get(kind)
        return waiting.pop(0) if waiting else None

    def host_label(self, service: str, version: str) -> str:
        parts = [version, "" if service == "default" else service, self.project]
        return "-dot-".join(part for part in parts if part)

    def version_resource(self, service: str, version: str, body: dict, warmup: bool) -> dict:
        self.clock += 1
        # A version serves at VERSION-dot-SERVICE-dot-PROJECT.REGION.r.appspot.com, one DNS label
        # of at most 63 characters (RFC 1035; gcloud's GetAppHostname falls back to a host whose
        # certificate is invalid beyond that): such a version cannot be reached.
        reachable = len(self.host_label(service, version)) <= 63
        inbound = body.get("inboundServices") or (["INBOUND_SERVICE_WARMUP"] if warmup else [])
        return {
            **body,
            "name": f"apps/{self.project}/services/{service}/versions/{version}",
            "id": version,
            "env": "standard",
            "servingStatus": "SERVING",
            "createTime": f"2026-12-01T00:{self.clock // 60:02d}:{self.clock % 60:02d}Z",
            "createdBy": "deployer@demo.iam.gserviceaccount.com",
            "inboundServices": inbound,
            "automaticScaling": body.get("automaticScaling", {"maxConcurrentRequests": 10}),
            "versionUrl": self.code_url if reachable else UNREACHABLE,
        }

    # -- the API -----------------------------------------------------------------------------

    def operation(self, kind: str, method: str, target: str, finish) -> tuple[int, dict]:
        """A long-running operation: `done: false` at first, finished by the next look
        (google.longrunning.Operation; gcloud polls apps.operations.get)."""
        name = f"apps/{self.project}/operations/{uuid.uuid4()}"
        metadata = {
            "@type": "type.googleapis.com/google.appengine.v1.OperationMetadataV1",
            "method": method,
            "target": target,
            "insertTime": "2026-12-01T00:00:00Z",
        }
        self.operations[name] = {"name": name, "metadata": metadata, "done": False}
        self.finishers[name] = (kind, finish, None)  # a planted "hang" or "fail" sets the fate
        return 200, {"name": name, "metadata": metadata, "done": False}

    def settle(self) -> None:
        """Operations go on without anyone looking: each has ended by the next request."""
        for name, found in self.operations.items():
            _, finish, fate = self.finishers[name]
            if found["done"] or fate in ("hang", "dropped"):
                continue
            found["done"] = True
            if fate == "fail":
                found["error"] = {"code": 13, "message": "An internal error occurred (planted)."}
            else:
                found["response"] = finish()

    def look_at_operation(self, name: str) -> tuple[str, int, dict]:
        found = self.operations.get(name)
        if found is None:
            return "apps.operations.get", *error(404, "NOT_FOUND", f"Operation {name} not found.")
        return f"{self.finishers[name][0]}.operation", 200, found

    def route(
        self, method: str, path: str, query: dict, body: bytes, content_type: str
    ) -> tuple[str, int, object]:
        """(request kind, status, answer) for one request."""
        self.settle()
        app = f"/v1/apps/{self.project}"
        if method == "GET" and path == app:
            return "apps.get", 200, self.application()
        if method == "GET" and path == f"{app}/services":
            listed = [self.service_resource(s) for s in sorted(self.services)]
            return "apps.services.list", 200, {"services": listed}
        if match := re.fullmatch(rf"{app}/services/([^/]+)", path):
            return self.service_call(method, match[1], query, body)
        if match := re.fullmatch(rf"{app}/services/([^/]+)/versions(?:/([^/]+))?", path):
            return self.version_call(method, match[1], match[2], body)
        if method == "GET" and path.startswith(f"{app}/operations/"):
            return self.look_at_operation(path.removeprefix("/v1/"))
        if path.startswith(("/storage/", "/upload/storage/")):
            return self.storage_call(method, path, query, body, content_type)
        return "unknown", *error(404, "NOT_FOUND", f"{method} {path} is not part of this fake")

    def application(self) -> dict:
        return {
            "name": f"apps/{self.project}",
            "id": self.project,
            "locationId": "europe-west",
            "servingStatus": "SERVING",
            "defaultHostname": f"{self.project}.ew.r.appspot.com",
            "codeBucket": self.bucket,
            "defaultBucket": f"{self.project}.appspot.com",
            "gcrDomain": "eu.gcr.io",
            "databaseType": "CLOUD_FIRESTORE",
        }

    def service_resource(self, service: str) -> dict:
        split = self.services[service]["split"]
        return {
            "name": f"apps/{self.project}/services/{service}",
            "id": service,
            "split": {"shardBy": split.get("shardBy", "IP"), "allocations": split["allocations"]},
        }

    def service_call(self, method: str, service: str, query: dict, body: bytes):
        if service not in self.services:
            return "apps.services." + method.lower(), *error(
                404, "NOT_FOUND", f"Unable to find service [{service}]."
            )
        if method == "GET":
            return "apps.services.get", 200, self.service_resource(service)
        if method != "PATCH":
            return "unknown", *error(405, "UNIMPLEMENTED", f"{method} on a service")
        kind = "apps.services.patch"
        if "split" not in query.get("updateMask", [""])[0].split(","):
            return kind, *error(400, "INVALID_ARGUMENT", "updateMask must name the split.")
        split = json.loads(body).get("split", {})
        allocations = split.get("allocations") or {}
        versions = self.services[service]["versions"]
        missing = sorted(set(allocations) - set(versions))
        if missing:
            return kind, *error(400, "INVALID_ARGUMENT", f"Version [{missing[0]}] not found.")
        # Allocations are weights that add up to 1 (TrafficSplit reference).
        if abs(sum(allocations.values()) - 1) > 1e-3:
            return kind, *error(400, "INVALID_ARGUMENT", "Traffic allocations must sum to 1.")
        if query.get("migrateTraffic", [""])[0].lower() == "true":
            # "For gradual traffic migration, the target versions must be located within
            # instances that are configured for both warmup requests and automatic scaling."
            # (Admin API reference, apps.services.patch, migrateTraffic).
            now = self.services[service]["split"]["allocations"]
            gaining = [v for v, share in allocations.items() if share > now.get(v, 0)]
            for version in gaining:
                resource = versions[version]
                warm = "INBOUND_SERVICE_WARMUP" in resource.get("inboundServices", [])
                if not warm or "automaticScaling" not in resource:
                    return kind, *error(400, "INVALID_ARGUMENT", WARMUP_REFUSED)

        def finish() -> dict:
            self.services[service]["split"] = {
                "shardBy": split.get("shardBy", "IP"),
                "allocations": allocations,
            }
            return {
                "@type": "type.googleapis.com/google.appengine.v1.Service",
                **self.service_resource(service),
            }

        target = f"apps/{self.project}/services/{service}"
        method = "google.appengine.v1.Services.UpdateService"
        return kind, *self.operation(kind, method, target, finish)

    def version_call(self, method: str, service: str, version: str | None, body: bytes):
        versions = self.services.get(service, {}).get("versions", {})
        if method == "GET" and version is None:
            listed = [versions[v] for v in versions]
            return "apps.services.versions.list", 200, {"versions": listed}
        if method == "GET":
            if version not in versions:
                return "apps.services.versions.get", *error(
                    404, "NOT_FOUND", f"Version [{version}] not found."
                )
            return "apps.services.versions.get", 200, versions[version]
        if method == "POST" and version is None:
            return self.create_version(service, json.loads(body))
        if method == "DELETE" and version is not None:
            return self.delete_version(service, version)
        return "unknown", *error(405, "UNIMPLEMENTED", f"{method} on versions")

    def create_version(self, service: str, body: dict):
        kind = "apps.services.versions.create"
        version = body.get("id", "")
        if (
            not VERSION_ID.fullmatch(version)
            or version.startswith("ah-")
            or version in RESERVED
            # "-dot-" separates the parts of a version's host name (appinfo.py,
            # ALTERNATE_HOSTNAME_SEPARATOR; gcloud refuses it in app.yaml versions).
            or "-dot-" in version
        ):
            return kind, *error(400, "INVALID_ARGUMENT", f"Invalid version id [{version}].")
        # The manifest names each file's SHA-1 in the staging bucket (Version.deployment.files):
        # App Engine fetches them from there, so each must have been uploaded with that content.
        for path, entry in body.get("deployment", {}).get("files", {}).items():
            content = self.objects.get(entry.get("sha1Sum", ""))
            if content is None or hashlib.sha1(content).hexdigest() != entry["sha1Sum"]:  # noqa: S324
                return kind, *error(400, "INVALID_ARGUMENT", f"File {path} was not uploaded.")

        def finish() -> dict:
            self.services.setdefault(service, {"split": {"allocations": {}}, "versions": {}})
            existing = self.services[service]
            # "Deploying a new version with the same name as an existing version causes an
            # immediate traffic migration" (App Engine docs): the version is replaced in place,
            # and if it serves, the new code serves at once.
            if existing["split"]["allocations"].get(version):
                self.untested_code_served = True
            resource = self.version_resource(service, version, body, warmup=False)
            existing["versions"][version] = resource
            return {"@type": "type.googleapis.com/google.appengine.v1.Version", **resource}

        target = f"apps/{self.project}/services/{service}/versions/{version}"
        method = "google.appengine.v1.Versions.CreateVersion"
        return kind, *self.operation(kind, method, target, finish)

    def delete_version(self, service: str, version: str):
        kind = "apps.services.versions.delete"
        versions = self.services.get(service, {}).get("versions", {})
        if version not in versions:
            return kind, *error(404, "NOT_FOUND", f"Version [{version}] not found.")
        # "You cannot delete a version of a service that is currently receiving traffic."
        # (gcloud app versions delete; the Admin API refuses it as well).
        if self.services[service]["split"]["allocations"].get(version):
            return kind, *error(
                400, "FAILED_PRECONDITION", f"Version [{version}] receives traffic."
            )

        def finish() -> dict:
            versions.pop(version, None)
            return {"@type": "type.googleapis.com/google.protobuf.Empty"}

        target = f"apps/{self.project}/services/{service}/versions/{version}"
        method = "google.appengine.v1.Versions.DeleteVersion"
        return kind, *self.operation(kind, method, target, finish)

    def storage_call(self, method: str, path: str, query: dict, body: bytes, content_type: str):
        bucket_path = f"/storage/v1/b/{self.bucket}"
        if method == "GET" and path == bucket_path:
            return "storage.buckets.get", 200, {"kind": "storage#bucket", "name": self.bucket}
        if method == "GET" and path == f"{bucket_path}/o":
            items = [self.object_resource(name) for name in sorted(self.objects)]
            return "storage.objects.list", 200, {"kind": "storage#objects", "items": items}
        if method == "POST" and path == f"/upload{bucket_path}/o":
            name = query.get("name", [""])[0]
            content = multipart_content(body, content_type)
            if content is None:
                return "storage.objects.insert", *error(
                    400, "INVALID_ARGUMENT", "Expected a multipart/related upload."
                )
            self.objects[name] = content
            return "storage.objects.insert", 200, self.object_resource(name)
        return "storage.unknown", *error(404, "NOT_FOUND", f"No such object: {path}")

    def object_resource(self, name: str) -> dict:
        """What Cloud Storage answers for an object: gcloud compares the size with its file."""
        content = self.objects[name]
        return {
            "kind": "storage#object",
            "bucket": self.bucket,
            "name": name,
            "size": str(len(content)),
            "md5Hash": b64encode(hashlib.md5(content).digest()).decode(),  # noqa: S324
            "crc32c": b64encode(crc32c(content).to_bytes(4, "big")).decode(),
        }

    # -- HTTP --------------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                record = {"method": self.command, "path": parts.path, "query": parts.query}
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    kind, (status, answer) = (
                        "auth",
                        error(
                            401,
                            "UNAUTHENTICATED",
                            "Request had invalid authentication credentials.",
                        ),
                    )
                else:
                    kind, status, answer = fake.route(
                        self.command,
                        parts.path,
                        parse_qs(parts.query),
                        body,
                        self.headers.get("Content-Type", ""),
                    )
                record["kind"] = kind
                fake.requests.append(record)
                planted = fake.planted(kind)
                if kind in OPERATIONS and planted in ("hang", "fail", "error") and status == 200:
                    operation_kind, finish, _ = fake.finishers[answer["name"]]
                    fate = "dropped" if planted == "error" else planted
                    fake.finishers[answer["name"]] = (operation_kind, finish, fate)
                    planted = None if planted != "error" else planted
                if planted == "sigterm":
                    os.kill(fake.signal_pid, signal.SIGTERM)
                elif planted == "hang":
                    fake.unblock.wait()
                    return
                elif planted == "error":
                    # A refusal gcloud does not retry (it retries 5xx answers for a while).
                    status, answer = error(
                        403, "PERMISSION_DENIED", "The caller does not have permission (planted)."
                    )
                elif planted == "empty":
                    status, answer = 200, {}
                data = (
                    b"<html>Bad gateway</html>"
                    if planted == "garbage"
                    else json.dumps(answer).encode()
                )
                self.send_response(200 if planted == "garbage" else status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        return Handler
