"""Running a deploy script in the test process against the stand-ins (tests/test_deploy_*.py).

The deployment runs in this process (so `make mutation` sees which test runs which line); what
it runs is real: the real gcloud and aws CLIs against the fake APIs in tests/standins, the
stand-ins in tests/standins/bin for what cannot run here (docker's daemon calls, lightsailctl,
aws-cli v2's push-container-image), and the real smoke test against the real app. Every run is
held to the deploy job's time budget: the limits of the calls it made must fit in it.

The AWS CLI runs in this process (`InProcess`): the same code as the `aws` command, without a
new interpreter loading botocore's models for each call, which made each call cost half a second
of CPU. gcloud cannot (it brings its own Python): tests/standins/gcloud.py stands in for it in
the fast runs, and the slow ones run the real one (tests/test_deploy_appengine.py).
"""

import atexit
import contextlib
import io
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import awscli
import pytest
import yaml

from deploy import common
from scripts.live_server import running_server

ROOT = Path(__file__).resolve().parent.parent
STANDINS = ROOT / "tests" / "standins" / "bin"
IMAGE = "ghcr.io/owner/repo@sha256:" + "a" * 64
# Checkout, setup-python, credentials, the model download and `make env` before the deploy step.
SETUP_MINUTES = 3
PIPELINE = yaml.safe_load((ROOT / ".github" / "workflows" / "pipeline.yml").read_text())
JOB_BUDGET = (PIPELINE["jobs"]["deploy"]["timeout-minutes"] - SETUP_MINUTES) * 60
# Settings of the outer environment that must not leak into a test's deployment.
OWN_SETTINGS = re.compile(
    r"(DEPLOY|SMOKE|GITHUB|AWS|CLOUDSDK|GCP|APPENGINE|LIGHTSAIL|HEROKU)_.*|STANDIN_.*|METRICS_TOKEN"
)
# The deploy job's METRICS_TOKEN secret in the tests: the platform must pass it to the app.
METRICS_TOKEN = "metrics-" + "7" * 32


class LiveApp:
    """The real app under gunicorn, one per test process, started by the first test that needs
    it and stopped when that process exits. `make mutation` runs each mutant's tests in a process
    forked from the one that ran them all first: they share its app instead of starting one each.
    """

    url: str | None = None

    @classmethod
    def start(cls) -> str:
        if cls.url is None:
            stack = contextlib.ExitStack()
            cls.url = stack.enter_context(running_server(workers=1)) + "/"
            owner = os.getpid()
            atexit.register(lambda: os.getpid() == owner and stack.close())
        return cls.url


@pytest.fixture
def live_url() -> str:
    return LiveApp.start()


@pytest.fixture(scope="module")
def metered_url():
    """The app as the platform runs it once METRICS_TOKEN reached it: /metrics on, behind it."""
    with running_server(env={"METRICS_TOKEN": METRICS_TOKEN}, workers=1) as url:
        yield url + "/"


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as probe:  # a free port: nothing listens there once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    deployer: common.Deployer

    def lines(self) -> list[str]:
        """The script's own report on stderr (the smoke test or gcloud may print before)."""
        return [line for line in self.err.splitlines() if line.startswith("deploy/")]

    def failed(self, code: int, *words: str) -> str:
        """Exit status `code`, and all of `words` in the script's report."""
        assert self.code == code, (self.code, self.lines())
        report = "\n".join(self.lines())
        for word in words:
            assert word in report, (word, report)
        return report


# A command run in this process: (argv, stdin, timeout) -> (exit status, stdout, stderr), or
# None to run it as a process after all.
Tool = Callable[[list[str], str | None, float | None], tuple[int, str, str] | None]


class InProcess:
    """`subprocess` as deploy/common sees it: the commands named in `tools` run in this process,
    any other as a process. `run` keeps subprocess.run's contract for what the scripts use
    (captured or not, text or bytes, the exit status checked or not)."""

    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}

    def __getattr__(self, name: str):  # TimeoutExpired, CompletedProcess, ...
        return getattr(subprocess, name)

    def run(
        self,
        argv: Sequence[str],
        *,
        input=None,
        capture_output=False,
        text=False,
        check=False,
        timeout=None,
        **options,
    ) -> subprocess.CompletedProcess:
        tool = self.tools.get(argv[0])
        done = tool(list(argv), input, timeout) if tool else None
        if done is None:
            return subprocess.run(
                argv,
                input=input,
                capture_output=capture_output,
                text=text,
                check=check,
                timeout=timeout,
                **options,
            )
        code, out, err = done
        if not capture_output:
            sys.stdout.write(out)
            sys.stderr.write(err)
            out = err = None
        elif not text:
            out, err = out.encode(), err.encode()
        if check and code:
            raise subprocess.CalledProcessError(code, argv, out, err)
        return subprocess.CompletedProcess(list(argv), code, out, err)


class AwsCli:
    """`aws` in this process: the AWS CLI's own driver (awscli.clidriver). Building it (its
    command table) is most of a call's cost, so one is kept for the process while the settings
    it holds on to stay the same; the endpoint (AWS_ENDPOINT_URL_LIGHTSAIL) is read at each call.
    push-container-image, which v1 lacks, runs as a process (tests/standins/bin/aws)."""

    def __init__(self) -> None:
        self.driver, self.settings = None, None

    def __call__(self, argv: list[str], stdin: str | None, timeout: float | None):
        if "push-container-image" in argv:
            return None
        from awscli.clidriver import create_clidriver

        settings = sorted(
            (k, v) for k, v in os.environ.items() if re.fullmatch(r"AWS_(?!ENDPOINT_URL).*", k)
        )
        if self.driver is None or settings != self.settings:
            self.driver, self.settings = create_clidriver(), settings
        out, err = io.StringIO(), io.StringIO()
        quiet = {name: logging.getLogger(name) for name in ("awscli", "botocore", "urllib3")}
        levels = {name: logger.level for name, logger in quiet.items()}
        try:
            # As in its own process, where nothing asks for its debug records.
            for logger in quiet.values():
                logger.setLevel(logging.WARNING)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = self.driver.main(argv[1:])
        except SystemExit as exit:  # its argument parser's usage errors
            code = exit.code
        except BaseException:
            self.driver = None  # a call cut short (a signal) may leave a connection half-used
            raise
        finally:
            for name, logger in quiet.items():
                logger.setLevel(levels[name])
        return code, out.getvalue(), err.getvalue()


AWS = AwsCli()


class Harness:
    """One test's environment: settings, PATH with the stand-ins, GitHub's output files, and
    the commands that run in this process."""

    def __init__(self, tmp_path: Path, monkeypatch, capfd) -> None:
        self.tmp, self.monkeypatch, self.capfd = tmp_path, monkeypatch, capfd
        self.commands = InProcess()
        self.commands.tools["aws"] = AWS
        monkeypatch.setattr(common, "subprocess", self.commands)
        for name in [n for n in os.environ if OWN_SETTINGS.fullmatch(n)]:
            monkeypatch.delenv(name)
        # What importing awscli sets for its own data (it is imported once per process).
        monkeypatch.setenv("AWS_DATA_PATH", str(Path(awscli.__file__).with_name("data")))
        # A restore after a signal gets the runner's seconds in the pipeline; here, on a loaded
        # machine, it gets enough to show what it does (tests/test_deploy_budget.py checks the
        # deadline itself).
        monkeypatch.setattr(common, "GRACE", 120.0)
        path = [str(STANDINS), str(Path(sys.executable).parent), os.environ["PATH"]]
        self.set(
            PATH=os.pathsep.join(path),
            HOME=str(tmp_path),
            DEPLOY_POLL_SECONDS="0.01",
            DEPLOY_TIMEOUT="20",
            SMOKE_WAIT="0",  # one look: the live app is up, a dead one fails at once
            GITHUB_OUTPUT=str(tmp_path / "github_output"),
            GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
        )

    def set(self, **settings: str) -> None:
        for name, value in settings.items():
            self.monkeypatch.setenv(name, value)

    def deploy(self, module, *extra: str, version: str = "v1.2.3", image: str = IMAGE) -> Outcome:
        d = common.Deployer(module.__name__.rpartition(".")[2])
        code = common.execute(d, module.deploy, ["--image", image, "--version", version, *extra])
        out, err = self.capfd.readouterr()
        sys.stdout.write(out + err)  # shown when the test fails
        assert d.worst_case() <= JOB_BUDGET, (d.worst_case(), d.ledger)
        return Outcome(code, out, err, d)

    def output(self) -> str:
        path = self.tmp / "github_output"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def harness(tmp_path, monkeypatch, capfd) -> Harness:
    return Harness(tmp_path, monkeypatch, capfd)
