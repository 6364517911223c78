"""What deploy/lightsail, deploy/appengine and deploy/heroku share.

The command line, settings from the environment, secret masking, --dry-run (print every command
and API call, run none of them), bounded polling, the smoke test and the GitHub outputs; the
limits of every step (their worst case must fit the deploy job's timeout-minutes) and each
platform's rules for version ids.
Standard library only: the scripts run with the project's Python and nothing else.
"""

import argparse
import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The service's own poller and HTTP helper (standard library only), from the source tree, so
# they work before `make env` as well as after it.
sys.path.insert(0, str(ROOT / "src"))
from mlservice.probe import WaitTimeout, http, wait_until  # noqa: E402

# Release tags (v1.2.3, v1.2.3-rc.1, staging builds v0.0.0-main.1a2b3c4) or branch builds
# (main-1a2b3c4).
VERSION = re.compile(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?|[a-z][a-z0-9-]*-[0-9a-f]{7,40}")
MASK = "***"

# The longest each step may take, in seconds. Waits are settings whose maximum is the limit here,
# so no configuration can make a deployment outlive the deploy job (45 minutes): a job killed
# half-way through a rollback would leave production broken. WORST_CASE adds them up per target.
HTTP_TIMEOUT = 30  # one Platform API, registry or download request
COMMAND_TIMEOUT = 60  # one quick CLI call: describe, list, create, login, tag, delete
UPLOAD_TIMEOUT = 420  # docker pull, docker push, aws lightsail push-container-image
BUILD_TIMEOUT = 900  # gcloud app deploy: upload, Cloud Build, start the version
TRAFFIC_TIMEOUT = 420  # gcloud set-traffic --migrate and versions delete wait for operations
WAIT_LIMIT = 400  # DEPLOY_TIMEOUT: default and maximum of one wait for a deployment
POLL_LIMIT = 30  # DEPLOY_POLL_SECONDS: maximum pause between two looks
SMOKE_LIMIT = 120  # SMOKE_WAIT: default and maximum wait for the app to answer
SMOKE_TIMEOUT = SMOKE_LIMIT + 30  # the smoke test process, its own requests included


def wait_worst(calls_per_look: int, call: int) -> int:
    """One bounded wait: its deadline, one last pause, and the calls of the look in progress."""
    return WAIT_LIMIT + POLL_LIMIT + calls_per_look * call


# The longest path through each script: the failure path (deploy, smoke test fails, roll back).
# Pruning old versions or images happens only on success, instead of the rollback, and takes less.
WORST_CASE = {
    "lightsail": {
        "install lightsailctl": 2 * HTTP_TIMEOUT,  # checksums file, archive
        "get-container-services": COMMAND_TIMEOUT,
        "docker image inspect": COMMAND_TIMEOUT,
        "docker pull": UPLOAD_TIMEOUT,
        "push-container-image": UPLOAD_TIMEOUT,
        "create-container-service-deployment": COMMAND_TIMEOUT,
        "wait until ACTIVE": wait_worst(2, COMMAND_TIMEOUT),
        "smoke test": SMOKE_TIMEOUT,
        "rollback deployment": COMMAND_TIMEOUT,
        "wait until the rollback is ACTIVE": wait_worst(2, COMMAND_TIMEOUT),
        "container log": COMMAND_TIMEOUT,
    },
    "appengine": {
        "services describe": COMMAND_TIMEOUT,
        "versions list": COMMAND_TIMEOUT,
        "gcloud app deploy": BUILD_TIMEOUT,
        "versions describe": COMMAND_TIMEOUT,
        "smoke test": SMOKE_TIMEOUT,
        "set-traffic --migrate": TRAFFIC_TIMEOUT,
        "versions list (prune)": COMMAND_TIMEOUT,
        "versions delete (prune)": TRAFFIC_TIMEOUT,
    },
    "heroku": {
        "app, formation, config vars, releases": 4 * HTTP_TIMEOUT,
        "set WEB_CONCURRENCY": HTTP_TIMEOUT,
        "docker image inspect, login, tag": 3 * COMMAND_TIMEOUT,
        "docker pull": UPLOAD_TIMEOUT,
        "docker push": UPLOAD_TIMEOUT,
        "manifest (with the token exchange)": 3 * HTTP_TIMEOUT,
        "release (formation PATCH)": HTTP_TIMEOUT,
        "wait for the release and its dynos": wait_worst(3, HTTP_TIMEOUT),
        "smoke test": SMOKE_TIMEOUT,
        "rollback release": HTTP_TIMEOUT,
        "wait for the rollback and its dynos": wait_worst(2, HTTP_TIMEOUT),
    },
}


class ConfigError(Exception):
    """Missing or invalid configuration; nothing was changed (exit 2)."""


class DeployError(Exception):
    """The deployment failed (exit 1)."""


def setting(name: str, default: str | None = None) -> str:
    """An environment setting; a missing one without a default is a ConfigError naming it."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"{name} is not set (see docs/deploy/ for what each target needs)")
    return default


def number_setting(name: str, default: float, low: float, high: float) -> float:
    raw = setting(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw} is outside {low:g}..{high:g}")
    return value


def version_id(version: str) -> str:
    """v1.2.3 -> v1-2-3: lowercase letters, digits and hyphens, as the platforms' ids need."""
    return re.sub(r"[^a-z0-9-]", "-", version.lower())


def workers_for(memory_mb: int) -> int:
    """WEB_CONCURRENCY for a machine: one gunicorn worker per 256 MB, rounded, 1 to 8.

    A worker with the model loaded uses about 150 MB; the rest is for the master and spikes.
    Predictions are CPU-bound, so more than 8 workers buy nothing on these machines.
    """
    return max(1, min(8, round(memory_mb / 256)))


# gcloud's rule for App Engine version ids; "ah-" ids and the two names below are reserved.
APPENGINE_VERSION = re.compile(r"(?!-)[a-z\d\-]{0,62}[a-z\d]")
APPENGINE_RESERVED = ("default", "latest")
# botocore's ContainerLabel: what push-container-image --label accepts.
LIGHTSAIL_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?")


def appengine_version(version: str, suffix: str) -> str:
    """A new, unique App Engine version id for `version`: v1.2.3 -> v1-2-3-<suffix>.

    Deploying an id that exists replaces that version in place and, if it serves traffic, the
    new code serves at once: every deployment gets its own id so it can be tested first.
    """
    candidate = f"{version_id(version)}-{suffix}"
    if (
        not APPENGINE_VERSION.fullmatch(candidate)
        or candidate.startswith("ah-")
        or candidate in APPENGINE_RESERVED
    ):
        raise ConfigError(
            f"--version {version} gives the App Engine version id {candidate!r}, which App Engine "
            "refuses (lowercase letters, digits and hyphens, at most 63, not ending in a hyphen)"
        )
    return candidate


def lightsail_label(version: str) -> str:
    label = version_id(version)
    if not LIGHTSAIL_LABEL.fullmatch(label):
        raise ConfigError(
            f"--version {version} gives the Lightsail image label {label!r}, which Lightsail "
            "refuses (lowercase letters, digits and hyphens, at most 53, starting and ending "
            "with a letter or digit)"
        )
    return label


def wait_settings() -> tuple[float, float, float]:
    """DEPLOY_TIMEOUT, DEPLOY_POLL_SECONDS and SMOKE_WAIT, each within its limit above."""
    return (
        number_setting("DEPLOY_TIMEOUT", WAIT_LIMIT, 1, WAIT_LIMIT),
        number_setting("DEPLOY_POLL_SECONDS", 10, 0, POLL_LIMIT),
        number_setting("SMOKE_WAIT", SMOKE_LIMIT, 0, SMOKE_LIMIT),
    )


def parse_args(target: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"deploy/{target}", description=f"Deploy a tested release to {target}."
    )
    parser.add_argument(
        "--image",
        default=os.environ.get("DEPLOY_IMAGE"),
        help="the tested image reference (default: $DEPLOY_IMAGE)",
    )
    parser.add_argument(
        "--version",
        default=os.environ.get("DEPLOY_VERSION"),
        help="the release tag (v1.2.3, v0.0.0-main.1a2b3c4) (default: $DEPLOY_VERSION)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print every command and API call, run none"
    )
    args = parser.parse_args(argv)
    if not args.image:
        raise ConfigError("--image (or DEPLOY_IMAGE) is not set")
    if not args.version:
        raise ConfigError("--version (or DEPLOY_VERSION) is not set")
    wait_settings()  # a bad one stops the deployment before anything is pushed
    if not VERSION.fullmatch(args.version):
        raise ConfigError(
            f"--version {args.version!r} is not a release tag like v1.2.3 or a build like main-1a2b3c4"
        )
    return args


class Deployer:
    """Runs (or, in a dry run, only prints) the commands and API calls of one deployment."""

    def __init__(self, target: str, dry_run: bool) -> None:
        self.target = target
        self.dry_run = dry_run
        self.secrets: list[str] = []

    def secret(self, value: str) -> str:
        """Register a value that must never be printed."""
        self.secrets.append(value)
        return value

    def mask(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, MASK)
        return text

    def say(self, message: str) -> None:
        print(f"deploy/{self.target}: {self.mask(message)}", flush=True)

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        echo: bool = False,
        check=True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess | None:
        """Run a command and capture its output; a dry run prints it and returns None."""
        print(self.mask("+ " + shlex.join(argv)), flush=True)
        if self.dry_run:
            return None
        try:
            done = subprocess.run(  # noqa: S603 (argv is built by the deploy scripts)
                argv, input=stdin, capture_output=True, text=True, check=False, timeout=timeout
            )
        except FileNotFoundError:
            raise ConfigError(f"{argv[0]} is not installed or not on PATH") from None
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"`{shlex.join(argv[:3])} ...` took longer than {timeout:g} s"
            ) from None
        if echo and (done.stdout or done.stderr):
            print(self.mask(done.stdout + done.stderr).rstrip(), flush=True)
        if check and done.returncode:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise DeployError(
                self.mask(f"`{shlex.join(argv[:3])} ...` exited {done.returncode}: {last}")
            )
        return done

    def run_json(self, argv: Sequence[str]) -> object:
        done = self.run(argv)
        if done is None:
            return None
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise DeployError(f"`{shlex.join(argv[:3])} ...` did not print JSON") from None

    def http(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: object = None,
        expect: Sequence[int] = (200, 201, 206),
    ) -> object:
        """One JSON API call; a dry run prints it and returns None."""
        shown = ", ".join(f"{name}: {value}" for name, value in headers.items())
        data = None if body is None else json.dumps(body).encode()
        print(self.mask(f"+ {method} {url} ({shown})" + (f" {data.decode()}" if data else "")))
        if self.dry_run:
            return None
        status, _, raw = request(method, url, headers, data)
        if status not in expect:
            raise DeployError(self.mask(f"{method} {url} answered {status}: {raw[:300]!r}"))
        return json.loads(raw) if raw else None

    def poll(self, check: Callable[[], object], what: str) -> object:
        """Call check() until it returns something truthy; DeployError after DEPLOY_TIMEOUT s."""
        timeout, interval, _ = wait_settings()
        try:
            return wait_until(check, timeout=timeout, interval=interval, what=what)
        except WaitTimeout:
            raise DeployError(f"timed out after {timeout:g} s waiting for {what}") from None

    def smoke(self, url: str) -> bool:
        """The project's one smoke test, `mlservice smoke URL --wait N`, against the deployment."""
        beside = Path(sys.executable).with_name("mlservice")
        command = str(beside) if beside.exists() else shutil.which("mlservice")
        if command is None:
            raise ConfigError("mlservice is not installed: run with the project's .venv/bin/python")
        wait = wait_settings()[2]
        argv = [command, "smoke", url, "--wait", f"{wait:g}"]
        print("+ " + shlex.join(argv), flush=True)
        if self.dry_run:
            return True
        try:
            done = subprocess.run(argv, check=False, timeout=SMOKE_TIMEOUT)  # noqa: S603
        except subprocess.TimeoutExpired:
            print(f"smoke test took longer than {SMOKE_TIMEOUT} s", flush=True)
            return False
        return done.returncode == 0

    def ensure_local_image(self, image: str) -> None:
        """Pushing needs the image in the local Docker daemon: pull it unless it is there."""
        if self.dry_run:
            self.run(["docker", "pull", image])  # only printed; skipped when already present
            return
        inspect = ["docker", "image", "inspect", "--format", "{{.Id}}", image]
        if self.run(inspect, check=False).returncode:
            self.run(["docker", "pull", image], timeout=UPLOAD_TIMEOUT)

    def finish(self, url: str, version: str) -> None:
        """Report the deployed URL: $GITHUB_OUTPUT `url=...` and a job summary line."""
        if self.dry_run:
            self.say(
                f"dry run complete: would deploy {version} and write url=<URL> to GITHUB_OUTPUT"
            )
            return
        for name, line in (
            ("GITHUB_OUTPUT", f"url={url}"),
            ("GITHUB_STEP_SUMMARY", f"- **{self.target}**: deployed {version} to <{url}>"),
        ):
            if os.environ.get(name):
                with open(os.environ[name], "a", encoding="utf-8") as out:
                    out.write(line + "\n")
        self.say(f"deployed {version}: {url}")


def request(
    method: str, url: str, headers: dict[str, str], data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """An HTTP call that returns error statuses instead of raising; no retries, HTTP_TIMEOUT."""
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"{url!r} is not an http(s) URL")
    try:
        reply = http(method, url, body=data, headers=headers, timeout=HTTP_TIMEOUT)
        return reply.status, reply.headers, reply.body
    except OSError as error:
        raise DeployError(f"{method} {url} failed: {error}") from None


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def use_project_python() -> None:
    """Re-run this script with the project's .venv python when another python runs it.

    The smoke test is the project's own (`mlservice smoke`, installed in .venv by `make env`), so
    `deploy/<target>` run by the system python3 works as well as `.venv/bin/python deploy/<target>`.
    """
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.exists() and Path(sys.prefix).resolve() != venv.parent.parent.resolve():
        os.execv(venv, [str(venv), sys.argv[0], *sys.argv[1:]])  # noqa: S606


def main(target: str, deploy: Callable[[Deployer, argparse.Namespace], None], argv=None) -> int:
    """Run one deployment; one clear line and exit 2 on bad configuration, 1 on failure."""
    use_project_python()
    deployer = Deployer(target, dry_run=False)
    try:
        args = parse_args(target, argv)
        deployer.dry_run = args.dry_run
        deploy(deployer, args)
    except ConfigError as error:
        print(f"deploy/{target}: error: {deployer.mask(str(error))}", file=sys.stderr)
        return 2
    except DeployError as error:
        print(f"deploy/{target}: FAILED: {deployer.mask(str(error))}", file=sys.stderr)
        return 1
    return 0
