import json
import os
import signal
import threading
from pathlib import Path

import pytest

from mlservice import create_app, telemetry

ROOT = Path(__file__).resolve().parent.parent
# The deploy tests' fixtures: harness, live_url, metered_url, dead_url.
pytest_plugins = ["tests.deploy_harness"]
MODEL_PATH = ROOT / "models" / "model.skops"
# make mutation: a test fails after this many seconds under a mutant (the slowest test takes
# about 9 s unmutated). A mutant that keeps a wait going, such as a restore that never sees its
# state, is then killed within a minute rather than when the wait gives up (WAIT_LIMIT, 400 s).
MUTANT_TEST_LIMIT = 60

# The machinery tests (tests/*.py) read every feature, label and number from the contract
# (src/mlservice/model.toml) and the model card, so they pass unchanged for any valid model.
# The example model's own tests live in tests/example/.


def pytest_collection_modifyitems(items):
    # pytest-xdist hands tests out in this order: a slow test left for last would keep one core
    # busy after the others are done.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    # make mutation: a mutant's tests run fastest first (their times from mutmut's first run,
    # in mutants/), so most mutants die in a fraction of a second, not after whole deployments.
    stats = ROOT / "mutmut-stats.json"
    if os.environ.get("MUTANT_UNDER_TEST") and stats.is_file():
        seconds = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: seconds.get(item.nodeid, 0.0))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if (
        not os.environ.get("MUTANT_UNDER_TEST")
        or threading.current_thread() is not threading.main_thread()
    ):
        return (yield)

    def too_long(signum, frame):
        pytest.fail(f"over {MUTANT_TEST_LIMIT} s under a mutant: a wait that does not end")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(MUTANT_TEST_LIMIT)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _request_lines_stay_in_their_test():
    """Write the request lines a test's apps queued before the next test starts, so that none
    reaches the next test's log handlers (mlservice.telemetry's Recorder writes them later)."""
    yield
    telemetry.write_all()


@pytest.fixture(scope="session")
def model_path() -> Path:
    # The tests exercise the artifact that ships, so `make test` trains it first.
    if not MODEL_PATH.is_file():
        pytest.fail("models/model.skops is missing; run `make model` (make test does).")
    return MODEL_PATH


@pytest.fixture(scope="session")
def card(model_path) -> dict:
    return json.loads(model_path.with_suffix(".json").read_text())


@pytest.fixture
def app(model_path):
    return create_app(
        {
            "TESTING": True,
            "MODEL_PATH": str(model_path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "MAX_ROWS": 50,
            # Off whatever the environment says: tests that want them set them.
            "METRICS_TOKEN": None,
            "GOOGLE_CLOUD_PROJECT": None,
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def example(card) -> tuple[str, dict]:
    """A held-out row the model predicts right, with its label: the card's first example."""
    label, row = next(iter(card["examples"].items()))
    return label, dict(row)


@pytest.fixture
def row(example) -> dict:
    """A valid row (a fresh copy a test may change)."""
    return dict(example[1])
