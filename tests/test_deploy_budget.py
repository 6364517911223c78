"""The deploy scripts' worst case, from the calls they make, against the deploy job's timeout.

Every run in tests/test_deploy_*.py is held to the budget by the harness (the limits of the calls
that run made must fit in the deploy job's timeout-minutes, less its set-up). This file checks
that the count itself cannot miss a wait: every call a script makes goes through the Deployer,
which counts it, and a new call or wait raises the count.
"""

import ast

import pytest

from deploy import common
from tests.deploy_harness import JOB_BUDGET, PIPELINE, ROOT, SETUP_MINUTES

TARGETS = ("lightsail", "appengine", "heroku")


def run(deploy) -> common.Deployer:
    d = common.Deployer("test", dry_run=False)
    assert (
        common.execute(d, deploy, ["--image", "x@sha256:" + "a" * 64, "--version", "v1.2.3"]) == 0
    )
    return d


def test_the_budget_is_the_deploy_jobs_timeout_less_its_set_up():
    assert (PIPELINE["jobs"]["deploy"]["timeout-minutes"] - SETUP_MINUTES) * 60 == JOB_BUDGET


def test_a_new_command_adds_its_limit(capfd):
    def one(d, args):
        d.run(["true"])

    def two(d, args):
        d.run(["true"])
        d.run(["true"], timeout=common.UPLOAD_TIMEOUT)

    assert run(two).worst_case() - run(one).worst_case() == common.UPLOAD_TIMEOUT


def test_a_new_wait_adds_its_longest_wait_a_pause_and_its_slowest_look(capfd, monkeypatch):
    monkeypatch.setenv("DEPLOY_TIMEOUT", "1")
    looks = iter([False, True])

    def waits(d, args):
        def check():
            d.run(["true"])
            if next(looks):
                d.run(["true"], timeout=common.HTTP_TIMEOUT)  # this look makes two calls
                return True
            return False

        d.poll(check, "something")

    d = run(waits)
    # Not the configured second: the limits, so no setting can make the count too small.
    slowest = common.COMMAND_TIMEOUT + common.HTTP_TIMEOUT
    assert d.ledger == [("wait for something", common.WAIT_LIMIT + common.POLL_LIMIT + slowest)]


def test_a_smoke_test_and_an_api_call_count_too(capfd):
    d = common.Deployer("test", dry_run=True)
    d.http("GET", "http://127.0.0.1:9/", {})
    d.smoke("http://127.0.0.1:9/")
    assert d.ledger == [
        ("GET http://127.0.0.1:9/", common.HTTP_TIMEOUT),
        ("mlservice smoke", common.SMOKE_TIMEOUT),
    ]


@pytest.mark.parametrize("target", TARGETS)
def test_the_scripts_make_no_call_that_is_not_counted(target):
    """No subprocess, sleep or HTTP call of their own: only through the Deployer, or, for a
    request the Deployer cannot make (the registry's token exchange), counted by hand."""
    tree = ast.parse((ROOT / "deploy" / f"{target}.py").read_text())
    modules = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert not modules & {"subprocess", "urllib", "http", "socket", "requests"}
    assert "sleep(" not in ast.unparse(tree)
    for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        source = ast.unparse(function)
        if "common.request(" in source:
            assert ".charge(" in source, function.name


def test_after_a_signal_each_call_gets_at_most_the_time_left(monkeypatch):
    clock = iter([103.0, 110.0])
    monkeypatch.setattr(common.time, "monotonic", lambda: next(clock))
    d = common.Deployer("test")
    assert d.limit(common.UPLOAD_TIMEOUT) == common.UPLOAD_TIMEOUT  # no signal: the full limit
    d.deadline = 100.0 + common.GRACE
    assert d.limit(common.UPLOAD_TIMEOUT) == common.GRACE - 3
    with pytest.raises(common.DeployError, match="no time left"):
        d.limit(1)


def test_a_signal_sets_the_deadline_once_and_a_second_one_is_only_noted(capfd):
    import os
    import signal

    def deploy(d, args):
        with pytest.raises(common.Interrupted, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
        first = d.deadline
        os.kill(os.getpid(), signal.SIGINT)  # the runner's second signal: no exception
        assert d.deadline == first
        assert first - common.time.monotonic() <= common.GRACE

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    d = common.Deployer("test")
    assert common.execute(d, deploy, ["--image", "x", "--version", "v1.2.3"]) == common.DEPLOYED
    assert "SIGINT again: still restoring" in capfd.readouterr().out
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
