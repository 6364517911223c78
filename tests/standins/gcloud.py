"""gcloud in the test process, for the commands deploy/appengine runs, against FakeAppEngine.

The real gcloud (tests/test_deploy_appengine.py's slow runs) costs a second of CPU and a second
of waiting per call, too slow for `make mutation`, which runs the deploy tests for each of
hundreds of changed scripts. This double does what gcloud 528 does for these five commands and
nothing else: it makes the same Admin API requests to the fake (in this process, so the fake's
rules and planted failures apply as they do to gcloud), prints what gcloud prints where the
script reads it, and exits as gcloud does. Every test of tests/test_deploy_appengine.py runs
with it and with the real gcloud, and test_the_double_prints_what_gcloud_prints compares their
output; what it leaves out (gcloud's upload of the source) only the real one is asked about.

    gcloud app versions list [--service S] --format=json
    gcloud app versions describe VERSION --service S --format=json
    gcloud app versions delete VERSION... --service S
    gcloud app deploy APP_YAML --version V --no-promote
    gcloud app services set-traffic SERVICE --splits=V=SHARE,... [--migrate]

each with --project P and --quiet. Any other word, flag or missing argument fails as gcloud's
parser does (exit 2).
"""

import argparse
import contextlib
import io
import json
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import yaml

from tests.standins.appengine_api import FakeAppEngine


class Failed(Exception):
    """gcloud's `ERROR: (gcloud.app.<command>) <message>`, exit status 1."""


def parser() -> argparse.ArgumentParser:
    def command(group, name: str, *, service: bool = False) -> argparse.ArgumentParser:
        found = group.add_parser(name, exit_on_error=False)
        found.add_argument("--project")
        found.add_argument("--quiet", action="store_true")
        if service:
            found.add_argument("--service")
        return found

    top = argparse.ArgumentParser(prog="gcloud", exit_on_error=False)
    app = top.add_subparsers(dest="group", required=True).add_parser("app")
    groups = app.add_subparsers(dest="command", required=True)
    deploy = command(groups, "deploy")
    deploy.add_argument("deployables", nargs="+")
    deploy.add_argument("--version", required=True)
    deploy.add_argument("--no-promote", dest="promote", action="store_false", required=True)
    versions = groups.add_parser("versions").add_subparsers(dest="verb", required=True)
    listing = command(versions, "list", service=True)
    listing.add_argument("--format", choices=["json"], required=True)
    describe = command(versions, "describe", service=True)
    describe.add_argument("version")
    describe.add_argument("--format", choices=["json"], required=True)
    delete = command(versions, "delete", service=True)
    delete.add_argument("versions", nargs="+")
    services = groups.add_parser("services").add_subparsers(dest="verb", required=True)
    traffic = command(services, "set-traffic")
    traffic.add_argument("services", nargs=1)
    traffic.add_argument("--splits", required=True)
    traffic.add_argument("--migrate", action="store_true")
    return top


def printed(value: object) -> object:
    """A resource as gcloud prints it: its API client (apitools) drops empty repeated fields."""
    if isinstance(value, dict):
        return {key: printed(item) for key, item in value.items() if item != []}
    if isinstance(value, list):
        return [printed(item) for item in value]
    return value


def listing(project: str, service: str, share: float, version: dict) -> dict:
    """One version as `gcloud app versions list --format=json` prints it (api_lib/app/
    version_util.Version: a datetime prints as its parts)."""
    created = datetime.fromisoformat(version["createTime"])
    parts = ("day", "fold", "hour", "microsecond", "minute", "month", "second", "year")
    return {
        "environment": {"name": "STANDARD", "value": 1},
        "id": version["id"],
        "last_deployed_time": {"datetime": str(created)} | {p: getattr(created, p) for p in parts},
        "project": project,
        "service": service,
        "service_account": None,
        "traffic_split": share,
        "version": printed(version),
    }


class Gcloud:
    """`gcloud` for InProcess (tests/deploy_harness.py): (argv, stdin, timeout) -> (status,
    stdout, stderr), or subprocess.TimeoutExpired when an operation outlives `timeout`."""

    def __init__(self, fake: FakeAppEngine) -> None:
        self.fake = fake

    def __call__(self, argv: list[str], stdin: str | None, timeout: float):
        out, err = io.StringIO(), io.StringIO()
        self.deadline = time.monotonic() + timeout  # deploy/common gives every call a limit
        self.argv, self.timeout = argv, timeout
        try:
            with contextlib.redirect_stderr(err):
                args = parser().parse_args(argv[1:])
        except (argparse.ArgumentError, SystemExit) as wrong:
            return 2, "", f"ERROR: (gcloud) {wrong}\n{err.getvalue()}"
        name = " ".join(word for word in (args.command, getattr(args, "verb", None)) if word)
        try:
            if not args.project:
                raise Failed("The required property [project] is not currently set.")
            self.project = args.project
            self.command(args, out, err)
        except Failed as failed:
            err.write(f"ERROR: (gcloud.app.{name.replace(' ', '.')}) {failed}\n")
            return 1, out.getvalue(), err.getvalue()
        return 0, out.getvalue(), err.getvalue()

    def command(self, args, out: io.StringIO, err: io.StringIO) -> None:
        if args.command == "deploy":
            self.deploy(args, err)
        elif args.verb == "list":
            out.write(json.dumps(self.versions(args.service), indent=2, sort_keys=True) + "\n")
        elif args.verb == "describe":
            path = f"services/{args.service or 'default'}/versions/{args.version}?view=FULL"
            found = printed(self.call("GET", path))
            out.write(json.dumps(found, indent=2, sort_keys=True) + "\n")
        elif args.verb == "delete":
            self.delete(args.service, args.versions, err)
        else:
            self.set_traffic(args.services[0], args.splits, args.migrate, err)

    # -- the Admin API, as gcloud's client calls it --------------------------------------------

    def call(self, method: str, path: str, body: object = None) -> dict:
        """One Admin API request; Failed with the API's message on an error answer."""
        token = Path(os.environ["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]).read_text().strip()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        target = f"/v1/apps/{self.project}" + (f"/{path}" if path else "")
        data = b"" if body is None else json.dumps(body).encode()
        answer = self.fake.serve(method, target, data, headers)
        if answer is None:  # no answer: gcloud waits until the caller gives up
            time.sleep(self.deadline - time.monotonic())
            raise subprocess.TimeoutExpired(self.argv, self.timeout)
        status, raw = answer
        try:
            found = json.loads(raw)
        except ValueError:
            raise Failed(f"crashed (InvalidDataFromServerError): Error decoding {raw!r}") from None
        if status >= 400:
            problem = found["error"]
            raise Failed(f"{problem['status']}: {problem['message']}")
        return found

    def wait(self, operation: dict) -> None:
        """Poll a long-running operation until it is done (gcloud: operations_util)."""
        while not operation.get("done"):
            if time.monotonic() > self.deadline:
                raise subprocess.TimeoutExpired(self.argv, self.timeout)
            time.sleep(0.01)
            operation = self.call("GET", operation["name"].removeprefix(f"apps/{self.project}/"))
        if "error" in operation:
            problem = operation["error"]
            raise Failed(f"Error Response: [{problem['code']}] {problem['message']}")

    def versions(self, only: str | None) -> list[dict]:
        """`versions list --format=json`: gcloud's Version objects, each with its resource."""
        services = self.call("GET", "services?pageSize=100").get("services", [])
        if only and only not in {s["id"] for s in services}:
            raise Failed(f"Service [{only}] not found.")
        listed = []
        for service in services:
            if only and service["id"] != only:
                continue
            shares = service.get("split", {}).get("allocations", {})
            path = f"services/{service['id']}/versions?pageSize=100"
            for version in self.call("GET", path).get("versions", []):
                share = float(shares.get(version["id"], 0.0))
                listed.append(listing(self.project, service["id"], share, version))
        return listed

    # -- the commands that change something ----------------------------------------------------

    def deploy(self, args, err: io.StringIO) -> None:
        """Create the version from app.yaml without promoting it. gcloud uploads the source
        first; this double uploads nothing (an empty manifest), and sends what the fake's rules
        read from app.yaml: warmup requests, automatic scaling and the environment variables
        (gcloud sends app.yaml's env_variables as the version's envVariables)."""
        (app_yaml,) = args.deployables
        config = yaml.safe_load(Path(app_yaml).read_text())
        service = config.get("service", "default")
        body = {"id": args.version, "runtime": config["runtime"], "deployment": {"files": {}}}
        if "warmup" in config.get("inbound_services", []):
            body["inboundServices"] = ["INBOUND_SERVICE_WARMUP"]
        if "automatic_scaling" in config:
            body["automaticScaling"] = {"maxConcurrentRequests": 10}
        if config.get("env_variables"):
            body["envVariables"] = {k: str(v) for k, v in config["env_variables"].items()}
        self.call("GET", "")
        self.call("GET", "services?pageSize=100")
        err.write(
            f"Beginning deployment of service [{service}]...\nUpdating service [{service}]...\n"
        )
        self.wait(self.call("POST", f"services/{service}/versions", body))
        host = f"{args.version}-dot-{self.project}.ew.r.appspot.com"
        err.write(f"Deployed service [{service}] to [https://{host}]\n")

    def set_traffic(self, service: str, splits: str, migrate: bool, err: io.StringIO) -> None:
        shares = {}
        for split in splits.split(","):
            version, _, share = split.partition("=")
            shares[version] = float(share)
        total = sum(shares.values())
        allocations = {version: round(share / total, 2) for version, share in shares.items()}
        self.call("GET", "services?pageSize=100")
        err.write("Setting traffic split for service [" + service + "]...\n")
        query = f"migrateTraffic={migrate}&updateMask=split"
        body = {"split": {"allocations": allocations, "shardBy": "IP"}}
        try:
            self.wait(self.call("PATCH", f"services/{service}?{query}", body))
        except Failed as failed:
            raise Failed(f"Issue setting traffic on service(s): {service}\n\n{failed}") from None

    def delete(self, service: str | None, versions: list[str], err: io.StringIO) -> None:
        # Without --service the ids match in every service (surface/app/versions/delete.py,
        # version_util.GetMatchingVersions).
        found = sorted(
            (v for v in self.versions(service) if v["id"] in versions),
            key=lambda v: f"{v['service']}/{v['id']}",
        )
        for version in found:
            if version["traffic_split"]:
                raise Failed(
                    f"Version [{version['id']}] is currently serving "
                    f"{version['traffic_split'] * 100:.2f}% of traffic for service "
                    f"[{version['service']}]."
                )
        for version in found:
            where = f"{version['service']}/{version['id']}"
            err.write(f"Deleting [{where}]...\n")
            try:
                self.wait(self.call("DELETE", f"services/{where.replace('/', '/versions/')}"))
            except Failed as failed:
                raise Failed(f"Issue deleting version: [{where}]\n\n{failed}") from None
