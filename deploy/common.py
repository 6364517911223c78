"""What deploy/lightsail, deploy/appengine and deploy/heroku share.

The command line, settings from the environment, secret masking, --dry-run (print every command
and API call, run none of them), bounded calls and polling, the smoke test, the GitHub outputs,
each platform's rules for version ids, and the rollback.

Once a deployment is about to change what serves, it says how to put it back (`changing`). From
then on any failure restores the previous state: a failed step or smoke test, an unexpected
answer (a KeyError or ValueError on an API or CLI reply), any other exception, a wait that times
out, and SIGINT/SIGTERM from a cancelled or timed-out job. The exit status says what happened:

    0  deployed
    1  failed; nothing was changed: what served before still serves
    2  bad configuration or arguments; nothing was changed
    3  failed; rolled back: what served before serves again
    4  failed, and the previous state could not be restored: the last line is the command to
       run by hand

Every call has a time limit, and the Deployer adds up the limits of the calls a run makes (its
`ledger`), so the worst case of each path through a script comes from the calls it makes: a new
call or wait counts without anyone updating a table. tests/test_deploy_budget.py holds each path
to the deploy job's timeout-minutes.
Standard library only: the scripts run with the project's Python and nothing else.
"""

import argparse
import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The service's own poller and HTTP helper (standard library only), from the source tree, so
# they work before `make env` as well as after it.
sys.path.insert(0, str(ROOT / "src"))
from mlservice.probe import WaitTimeout, http, wait_until  # noqa: E402

DEPLOYED, UNCHANGED, CONFIG, ROLLED_BACK, NOT_RESTORED = 0, 1, 2, 3, 4

# Release tags (v1.2.3, v1.2.3-rc.1, staging builds v0.0.0-main.1a2b3c4) or branch builds
# (main-1a2b3c4).
VERSION = re.compile(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?|[a-z][a-z0-9-]*-[0-9a-f]{7,40}")
MASK = "***"

# The longest each call may take, in seconds. Waits are settings whose maximum is the limit here,
# so no configuration can make a deployment outlive the deploy job: a job killed half-way through
# a rollback would leave production broken.
HTTP_TIMEOUT = 20  # one Platform API, registry or download request
COMMAND_TIMEOUT = 60  # one quick CLI call: describe, list, create, login, tag, delete
UPLOAD_TIMEOUT = 420  # docker pull, docker push, aws lightsail push-container-image
BUILD_TIMEOUT = 900  # gcloud app deploy: upload, Cloud Build, start the version
TRAFFIC_TIMEOUT = 420  # gcloud set-traffic and versions delete wait for their operations
WAIT_LIMIT = 400  # DEPLOY_TIMEOUT: default and maximum of one wait for a deployment
POLL_LIMIT = 30  # DEPLOY_POLL_SECONDS: maximum pause between two looks
SMOKE_LIMIT = 120  # SMOKE_WAIT: default and maximum wait for the app to answer
SMOKE_TIMEOUT = SMOKE_LIMIT + 30  # the smoke test process, its own requests included
# A cancelled (or timed-out) job's step gets SIGINT, SIGTERM 7.5 s later and SIGKILL 2.5 s after
# that (GitHub's workflow-cancellation reference): the restore must be done within this.
GRACE = 9.0


class ConfigError(Exception):
    """Missing or invalid configuration (exit 2 when nothing was changed yet)."""


class DeployError(Exception):
    """A step failed."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM: the job was cancelled or ran out of time (not an Exception, so no
    `except Exception` on the way swallows it)."""


@dataclass
class Restore:
    """How to put back what a deployment is about to change."""

    what: str  # what served before, e.g. "release v7"
    undo: Callable[[], bool]  # True: it changed something back; False: nothing needed to
    by_hand: str  # the command that does the same, for when `undo` fails


def setting(name: str, default: str | None = None) -> str:
    """An environment setting; a missing one without a default is a ConfigError naming it."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"{name} is not set (see docs/deploy/ for what each target needs)")
    return default


def metrics_token(d: "Deployer") -> str | None:
    """METRICS_TOKEN when the deploy job has it, checked as the service checks it; else None.

    Each target sets it on the platform beside WEB_CONCURRENCY, and the smoke test, which runs
    with this environment, asks /metrics with it (docs/observability.md). It is a secret: never
    printed.
    """
    if not os.environ.get("METRICS_TOKEN", "").strip():
        return None
    # The service's own rule, imported only when there is a token to check: a deploy without one
    # needs nothing from mlservice but the probe (make mutation's copy of config.py needs mutmut,
    # which the python a fresh clone starts with lacks).
    from mlservice import config

    try:
        token = config.metrics_token(os.environ)
    except config.ConfigError as error:
        raise ConfigError(str(error)) from None
    return d.secret(token)  # not empty: that was looked at first


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


# gcloud's rule for App Engine version ids (googlecloudsdk/appengine/api/appinfo.py); "ah-" ids,
# ids holding "-dot-" (the URL separator) and the two names below are refused.
APPENGINE_VERSION = re.compile(r"(?!-)[a-z\d\-]{0,62}[a-z\d]")
APPENGINE_RESERVED = ("default", "latest")
DNS_LABEL = 63  # RFC 1035: VERSION-dot-SERVICE-dot-PROJECT is one label of the version's host
# botocore's ContainerLabel: what push-container-image --label accepts.
LIGHTSAIL_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?")


def appengine_host_label(version: str, service: str, project: str) -> str:
    """The version's host label, VERSION-dot-SERVICE-dot-PROJECT (no SERVICE for "default")."""
    parts = [version, "" if service == "default" else service, project.rpartition(":")[2]]
    return "-dot-".join(part for part in parts if part)


def appengine_version(version: str, suffix: str, service: str, project: str) -> str:
    """A new, unique App Engine version id for `version`: v1.2.3 -> v1-2-3-<suffix>.

    Deploying an id that exists replaces that version in place and, if it serves traffic, the
    new code serves at once: every deployment gets its own id so it can be tested first. The
    version's URL must resolve: its host label holds the service and project too.
    """
    candidate = f"{version_id(version)}-{suffix}"
    if (
        not APPENGINE_VERSION.fullmatch(candidate)
        or candidate.startswith("ah-")
        or "-dot-" in candidate
        or candidate in APPENGINE_RESERVED
    ):
        raise ConfigError(
            f"--version {version} gives the App Engine version id {candidate!r}, which App Engine "
            "refuses (lowercase letters, digits and hyphens, at most 63, not ending in a hyphen, "
            "no '-dot-')"
        )
    label = appengine_host_label(candidate, service, project)
    if len(label) > DNS_LABEL:
        raise ConfigError(
            f"--version {version} gives the App Engine version id {candidate!r}, whose URL "
            f"{label}.<region>.r.appspot.com cannot resolve: that host label has {len(label)} "
            f"characters, DNS allows {DNS_LABEL} (shorten the tag, APPENGINE_SERVICE or the "
            "project id)"
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
    """Runs (or, in a dry run, only prints) the commands and API calls of one deployment, keeps
    the limits of the calls it made, and restores the previous state when it fails."""

    def __init__(self, target: str, dry_run: bool = False) -> None:
        self.target = target
        self.dry_run = dry_run
        self.secrets: list[str] = []
        self.restore: Restore | None = None
        self.ledger: list[tuple[str, float]] = []  # (call, its limit in seconds)
        self.look: list[float] | None = None  # the limits of the calls of a poll's current look
        self.deadline: float | None = None  # time.monotonic() by which all must end (signalled)
        self.finished = False  # deployed and reported: later steps (pruning) only tidy up

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

    def report(self, message: str) -> None:
        print(f"deploy/{self.target}: {self.mask(message)}", file=sys.stderr, flush=True)

    # -- time --------------------------------------------------------------------------------

    def charge(self, call: str, seconds: float) -> None:
        """Count a call's limit: in the ledger, or in the look of the poll in progress."""
        if self.look is not None:
            self.look.append(seconds)
        else:
            self.ledger.append((call, seconds))

    def worst_case(self) -> float:
        """The seconds the calls of this run may take at most, by their limits."""
        return sum(seconds for _, seconds in self.ledger)

    def limit(self, seconds: float) -> float:
        """A call's timeout: its limit, or less when a signal set a deadline."""
        if self.deadline is None:
            return seconds
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeployError("no time left after the job was cancelled")
        return min(seconds, left)

    # -- calls -------------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        echo: bool = False,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess | None:
        """Run a command and capture its output; a dry run prints it and returns None."""
        print(self.mask("+ " + shlex.join(argv)), flush=True)
        self.charge(shlex.join(argv[:4]), timeout)
        if self.dry_run:
            return None
        timeout = self.limit(timeout)
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

    def run_json(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> object:
        done = self.run(argv, timeout=timeout)
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
        self.charge(f"{method} {url}", HTTP_TIMEOUT)
        if self.dry_run:
            return None
        status, _, raw = request(method, url, headers, data, timeout=self.limit(HTTP_TIMEOUT))
        if status not in expect:
            raise DeployError(self.mask(f"{method} {url} answered {status}: {raw[:300]!r}"))
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise DeployError(
                self.mask(f"{method} {url} answered {raw[:300]!r}, not JSON")
            ) from None

    def poll(self, check: Callable[[], object], what: str, longest: bool = False) -> object:
        """Call check() until it returns something truthy; DeployError after DEPLOY_TIMEOUT s
        (or WAIT_LIMIT, the longest allowed, when `longest`: a restore gets all it may).

        Counted at its limits: the longest wait, one more pause, and the calls of the slowest
        look (a look in progress at the deadline finishes).
        """
        timeout, interval, _ = wait_settings()
        if longest:
            timeout = WAIT_LIMIT
        looks: list[float] = []

        def look() -> object:
            self.look = []
            try:
                return check()
            finally:
                looks.append(sum(self.look))
                self.look = None

        try:
            if self.deadline is not None:
                timeout = self.limit(timeout)
            return wait_until(look, timeout=timeout, interval=interval, what=what)
        except WaitTimeout:
            raise DeployError(f"timed out after {timeout:g} s waiting for {what}") from None
        finally:
            self.charge(f"wait for {what}", WAIT_LIMIT + POLL_LIMIT + max(looks, default=0))

    def smoke(self, url: str) -> bool:
        """The project's one smoke test, `mlservice smoke URL --wait N`, against the deployment."""
        beside = Path(sys.executable).with_name("mlservice")
        command = str(beside) if beside.exists() else shutil.which("mlservice")
        if command is None:
            raise ConfigError("mlservice is not installed: run with the project's .venv/bin/python")
        wait = wait_settings()[2]
        argv = [command, "smoke", url, "--wait", f"{wait:g}"]
        print("+ " + shlex.join(argv), flush=True)
        self.charge("mlservice smoke", SMOKE_TIMEOUT)
        if self.dry_run:
            return True
        try:
            done = subprocess.run(argv, check=False, timeout=self.limit(SMOKE_TIMEOUT))  # noqa: S603
        except subprocess.TimeoutExpired:
            print(f"smoke test took longer than {SMOKE_TIMEOUT} s", flush=True)
            return False
        return done.returncode == 0

    def ensure_local_image(self, image: str) -> None:
        """Pushing needs the image in the local Docker daemon: pull it unless it is there."""
        if self.dry_run:
            self.run(["docker", "pull", image], timeout=UPLOAD_TIMEOUT)  # printed; skipped if there
            return
        inspect = ["docker", "image", "inspect", "--format", "{{.Id}}", image]
        if self.run(inspect, check=False).returncode:
            self.run(["docker", "pull", image], timeout=UPLOAD_TIMEOUT)

    # -- the outcome -------------------------------------------------------------------------

    def changing(self, what: str, undo: Callable[[], bool], by_hand: str) -> None:
        """From here on, a failure restores `what` with undo() (or asks for `by_hand`)."""
        self.restore = Restore(what, undo, by_hand)
        if self.dry_run:
            self.say(f"on a failure from here: restore {what} ({by_hand})")

    def explain(self, error: BaseException) -> str:
        """One line for a failure; an unexpected exception's traceback goes to stderr too."""
        if isinstance(error, (DeployError, ConfigError)):
            return str(error)
        if isinstance(error, Interrupted):
            return f"interrupted by {error} (the job was cancelled or timed out)"
        lines = traceback.format_exception(error)
        print(self.mask("".join(lines)).rstrip(), file=sys.stderr, flush=True)
        return f"unexpected {type(error).__name__}: {error}"

    def fail(self, error: BaseException) -> int:
        """Report a failure, restoring the previous state if anything was changed."""
        reason = self.explain(error)
        restore, self.restore = self.restore, None
        if self.finished:
            self.report(f"{reason} after deploying: the deployment stands")
            return DEPLOYED
        if restore is None:
            self.report(f"FAILED: {reason}; nothing was changed")
            return UNCHANGED
        self.say(f"{reason}: restoring {restore.what}")
        try:
            changed = restore.undo()
        except (Exception, Interrupted) as failed:
            self.report(
                f"FAILED: {reason}; restoring {restore.what} failed: {self.explain(failed)}"
            )
            self.report(f"restore it by hand: {restore.by_hand}")
            return NOT_RESTORED
        if changed:
            self.report(f"FAILED: {reason}; rolled back: {restore.what} serves again")
            return ROLLED_BACK
        self.report(f"FAILED: {reason}; nothing was changed: {restore.what} still serves")
        return UNCHANGED

    def finish(self, url: str, version: str) -> None:
        """Report the deployed URL: $GITHUB_OUTPUT `url=...` and a job summary line. The new
        version serves and passed its smoke test: nothing after this undoes it."""
        self.restore, self.finished = None, True
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
    method: str,
    url: str,
    headers: dict[str, str],
    data: bytes | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> tuple[int, dict[str, str], bytes]:
    """An HTTP call that returns error statuses instead of raising; no retries."""
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"{url!r} is not an http(s) URL")
    try:
        reply = http(method, url, body=data, headers=headers, timeout=timeout)
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


@contextmanager
def interruptible(d: Deployer) -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted once, and leave GRACE seconds to restore; a second
    signal (the runner's SIGTERM after its SIGINT) must not stop the restore half-way."""

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if d.deadline is not None:
            d.say(f"{name} again: still restoring")
            return
        d.deadline = time.monotonic() + GRACE
        raise Interrupted(name)

    previous = {
        number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, earlier in previous.items():
            signal.signal(number, earlier)


def execute(d: Deployer, deploy: Callable[[Deployer, argparse.Namespace], None], argv=None) -> int:
    """Run one deployment with `d`; the exit status as in this module's docstring."""
    with interruptible(d):
        try:
            args = parse_args(d.target, argv)
            d.dry_run = args.dry_run
            deploy(d, args)
            code = DEPLOYED
        except (Exception, Interrupted) as error:
            if isinstance(error, ConfigError) and d.restore is None:
                d.report(f"error: {error}")
                return CONFIG
            code = d.fail(error)
    steps = f"{len(d.ledger)} steps, whose time limits add up to {d.worst_case():g} s"
    print(f"deploy/{d.target}: {steps}", flush=True)
    return code


def main(target: str, deploy: Callable[[Deployer, argparse.Namespace], None], argv=None) -> int:
    use_project_python()
    return execute(Deployer(target), deploy, argv)
