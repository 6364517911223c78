"""Deploy the tested release to Google App Engine standard (docs/deploy/appengine.md).

    deploy/appengine --image IMAGE --version vX.Y.Z [--dry-run]

Settings: GCP_PROJECT_ID (required), APPENGINE_SERVICE (default "default"),
APPENGINE_KEEP_VERSIONS (default 20), SMOKE_WAIT, METRICS_TOKEN (added to app.yaml's
env_variables in a copy deployed in its place, which .gcloudignore keeps out of the upload). Credentials come from the environment
(google-github-actions/auth with Workload Identity Federation in the pipeline).

App Engine standard builds from source, not from an image: upload the code, requirements.txt and
the tested model as a NEW version without promoting it, smoke-test that version's own URL, then
migrate all traffic to it (`set-traffic --migrate`: gradual, with the warmup requests app.yaml
enables). Until then nothing serves differently; after it, any failure sets the traffic back to
the split before, at once (no --migrate, which also works for versions deployed without warmup).
Finally delete the oldest versions that serve no traffic, beyond APPENGINE_KEEP_VERSIONS (App
Engine allows 210).

Each deployment gets its own version id, v1-2-3-<run number>-<attempt> in GitHub Actions (else
v1-2-3-<UTC time>): deploying an id that exists replaces that version in place, and if it serves
traffic the untested code serves at once. An id that exists already is refused, and so is one
whose URL cannot resolve (VERSION-dot-SERVICE-dot-PROJECT is one DNS label of at most 63).
"""

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy import common

UPLOADED = ("app.yaml", "requirements.txt", "models/model.skops", "models/model.json")
# app.yaml with the settings from the deploy job, deployed in its place: gcloud reads the service's
# configuration from it, and the source is the folder it is in, so it is written beside app.yaml
# (and removed after); .gcloudignore uploads only app.yaml, so the secret is in no uploaded file.
WITH_SETTINGS = "app.deploy.yaml"
ENV_VARIABLES = re.compile(r"^env_variables:[ \t]*\n([ \t]+)?", re.MULTILINE)


def with_env_variables(app_yaml: str, settings: dict[str, str]) -> str:
    """app.yaml with more env_variables, each value a JSON string (a YAML double-quoted one)."""
    for name in settings:
        if re.search(rf"^[ \t]+{name}:", app_yaml, re.MULTILINE):
            raise common.ConfigError(f"app.yaml sets {name}: the deploy job's setting goes there")
    found = ENV_VARIABLES.search(app_yaml)
    indent = (found.group(1) if found else None) or "  "
    lines = "".join(f"{indent}{name}: {json.dumps(value)}\n" for name, value in settings.items())
    if found is None:
        return f"{app_yaml.rstrip()}\nenv_variables:\n{lines}"
    at = found.end(0) - len(found.group(1) or "")
    return app_yaml[:at] + lines + app_yaml[at:]


@contextmanager
def descriptor(d: common.Deployer, token: str | None) -> Iterator[Path]:
    """The app.yaml to deploy: app.yaml itself, or a copy with METRICS_TOKEN while it is used."""
    app_yaml = common.ROOT / "app.yaml"
    if token is None:
        yield app_yaml
        return
    d.say(f"METRICS_TOKEN: set in env_variables (deploying {WITH_SETTINGS})")
    path = common.ROOT / WITH_SETTINGS
    path.write_text(with_env_variables(app_yaml.read_text(), {"METRICS_TOKEN": token}))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def served_files() -> list[str]:
    """UPLOADED, and the ONNX compile the model card says the service runs, when it has one."""
    try:
        card = json.loads((common.ROOT / "models" / "model.json").read_text())
        compiled = card["serving"]["file"]
    except (OSError, ValueError, TypeError, KeyError):  # no card (reported missing), no compile
        return list(UPLOADED)
    return [*UPLOADED, f"models/{compiled}"]


def check_source(d: common.Deployer, service: str) -> None:
    for name in served_files():
        if (common.ROOT / name).is_file():
            continue
        missing = f"{name} is missing (the deploy job brings the tested model; locally: make model)"
        if not d.dry_run:
            raise common.ConfigError(missing)
        d.say(f"note: {missing}")
    declared = re.search(r"^service:\s*(\S+)", (common.ROOT / "app.yaml").read_text(), re.M)
    if (declared.group(1) if declared else "default") != service:
        raise common.ConfigError(
            f"APPENGINE_SERVICE={service} but app.yaml deploys another service"
        )


def unique_suffix() -> str:
    """The run number and attempt in GitHub Actions (a re-run gets a new attempt), else the UTC
    time: short, so that the version's host label leaves room for the service and project."""
    run, attempt = (
        os.environ.get("GITHUB_RUN_NUMBER", ""),
        os.environ.get("GITHUB_RUN_ATTEMPT", "1"),
    )
    if run.isdigit() and attempt.isdigit():
        return f"{run}-{attempt}"
    return time.strftime("%Y%m%dt%H%M%S", time.gmtime())


def splits(allocations: dict[str, float]) -> str:
    """gcloud's --splits value: v1=0.5,v2=0.5."""
    return ",".join(f"{version}={share:g}" for version, share in sorted(allocations.items()))


class AppEngine:
    """The gcloud commands of one deployment to one service."""

    def __init__(self, d: common.Deployer, project: str, service: str) -> None:
        self.d, self.project, self.service = d, project, service
        self.scope = ["--project", project, "--quiet"]

    def gcloud(self, *words: str, timeout: float = common.COMMAND_TIMEOUT, echo: bool = False):
        return self.d.run(["gcloud", "app", *words, *self.scope], timeout=timeout, echo=echo)

    def versions(self) -> list[dict]:
        """This service's versions, each with its traffic_split (none before its first deploy)."""
        listed = self.d.run_json(
            ["gcloud", "app", "versions", "list", *self.scope, "--format=json"]
        )
        return [v for v in listed or [] if v["service"] == self.service]

    def allocations(self) -> dict[str, float]:
        return {v["id"]: v["traffic_split"] for v in self.versions() if v["traffic_split"]}

    def set_traffic(self, allocations: dict[str, float], *migrate: str) -> None:
        split = f"--splits={splits(allocations)}"
        self.gcloud(
            "services", "set-traffic", self.service, split, *migrate, timeout=common.TRAFFIC_TIMEOUT
        )

    def restore(self, before: dict[str, float]) -> bool:
        """Traffic back to `before`, at once; True when it had moved. Set again even when it
        reads the same, so that a migration still under way ends there."""
        if not before:
            raise common.DeployError("no version served traffic before this deployment")
        moved = self.allocations() != before
        self.set_traffic(before)
        return moved

    def by_hand(self, allocations: dict[str, float]) -> str:
        """The command that sets `allocations` again; with none (a first deployment), the
        command that shows the split to put right."""
        if not allocations:
            return f"gcloud app services describe {self.service} --project {self.project}"
        split = f"--splits={splits(allocations)}"
        return f"gcloud app services set-traffic {self.service} {split} --project {self.project}"


def deploy(d: common.Deployer, args) -> None:
    project = common.setting("GCP_PROJECT_ID")
    service = common.setting("APPENGINE_SERVICE", "default")
    keep = int(common.number_setting("APPENGINE_KEEP_VERSIONS", 20, 1, 200))
    token = common.metrics_token(d)
    check_source(d, service)
    version = common.appengine_version(args.version, unique_suffix(), service, project)
    app = AppEngine(d, project, service)
    d.say(f"deploying the source (the image {args.image} holds the same code and model)")

    # Read-only: the versions there are (an existing id is never replaced) and the traffic split.
    existing = app.versions()
    if any(v["id"] == version for v in existing):
        raise common.ConfigError(f"App Engine version {version} exists: not replacing it")
    before = {v["id"]: v["traffic_split"] for v in existing if v["traffic_split"]}

    with descriptor(d, token) as app_yaml:
        upload = ["deploy", str(app_yaml), "--version", version, "--no-promote"]
        app.gcloud(*upload, timeout=common.BUILD_TIMEOUT, echo=True)
    describe = ["gcloud", "app", "versions", "describe", version, "--service", service]
    described = d.run_json([*describe, *app.scope, "--format=json"])
    url = described["versionUrl"] if described else f"https://{version}-dot-{project}.appspot.com"
    if not d.smoke(url):
        raise common.DeployError(f"smoke test failed on {url}; traffic stays where it was")

    shown = splits(before) or "no traffic (first deployment)"
    d.changing(f"the traffic split {shown}", lambda: app.restore(before), app.by_hand(before))
    app.set_traffic({version: 1}, "--migrate")
    d.finish(url.replace(f"//{version}-dot-", "//", 1), args.version)
    prune(d, app, existing, keep - 1)


def prune(d: common.Deployer, app: AppEngine, older: list[dict], keep: int) -> None:
    """Delete the oldest of `older` beyond `keep` that served no traffic before the deployment
    (the one that did is the way back); a failure only warns."""
    try:
        newest_first = sorted(older, key=lambda v: v["version"]["createTime"], reverse=True)
        stale = [v["id"] for v in newest_first[keep:] if not v["traffic_split"]]
        if stale:
            app.gcloud(
                "versions",
                "delete",
                *stale,
                "--service",
                app.service,
                timeout=common.TRAFFIC_TIMEOUT,
            )
        elif not d.dry_run:
            d.say(f"{len(older) + 1} versions, keeping up to {keep + 1}: nothing to prune")
    except Exception as error:
        print(f"::warning::deploy/appengine: pruning old versions failed: {d.mask(str(error))}")


def main(argv=None) -> int:
    return common.main("appengine", deploy, argv)
