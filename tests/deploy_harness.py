"""Running a deploy script in the test process against the stand-ins (tests/test_deploy_*.py).

The deployment runs in this process (so `make mutation` sees which test runs which line); what
it runs is real: the real gcloud and aws CLIs against the fake APIs in tests/standins, the
stand-ins in tests/standins/bin for what cannot run here (docker's daemon calls, lightsailctl,
aws-cli v2's push-container-image), and the real smoke test against the real app. Every run is
held to the deploy job's time budget: the limits of the calls it made must fit in it.
"""

import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

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


@pytest.fixture(scope="module")
def live_url():
    with running_server(workers=1) as url:
        yield url + "/"


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


class Harness:
    """One test's environment: settings, PATH with the stand-ins, GitHub's output files."""

    def __init__(self, tmp_path: Path, monkeypatch, capfd) -> None:
        self.tmp, self.monkeypatch, self.capfd = tmp_path, monkeypatch, capfd
        for name in [n for n in os.environ if OWN_SETTINGS.fullmatch(n)]:
            monkeypatch.delenv(name)
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
            SMOKE_WAIT="1",
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
