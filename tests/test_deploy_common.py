"""deploy/common.py's parts on their own: settings, ids, the Deployer's calls and its outcomes.

The three targets' tests run these through whole deployments; here each rule is asked directly,
with the commands it runs being small real processes (the test's own Python).
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler

import pytest

from deploy import common
from tests.standins.server import FakeServer

PYTHON = sys.executable


@pytest.fixture
def d(monkeypatch) -> common.Deployer:
    for name in ("DEPLOY_TIMEOUT", "DEPLOY_POLL_SECONDS", "SMOKE_WAIT"):
        monkeypatch.delenv(name, raising=False)
    return common.Deployer("test")


# -- settings ------------------------------------------------------------------------------------


def test_a_setting_is_read_stripped_and_a_missing_one_is_named(monkeypatch):
    monkeypatch.setenv("SOME_SETTING", "  value \n")
    assert common.setting("SOME_SETTING") == "value"
    monkeypatch.setenv("SOME_SETTING", "   ")
    assert common.setting("SOME_SETTING", "fallback") == "fallback"
    with pytest.raises(common.ConfigError) as missing:
        common.setting("SOME_SETTING")
    assert str(missing.value) == (
        "SOME_SETTING is not set (see docs/deploy/ for what each target needs)"
    )


def test_a_number_setting_is_within_its_bounds_inclusive(monkeypatch):
    assert common.number_setting("SOME_NUMBER", 7, 1, 10) == 7
    for raw, value in (("1", 1.0), ("10", 10.0), ("2.5", 2.5)):
        monkeypatch.setenv("SOME_NUMBER", raw)
        assert common.number_setting("SOME_NUMBER", 7, 1, 10) == value
    monkeypatch.setenv("SOME_NUMBER", "ten")
    with pytest.raises(common.ConfigError) as wrong:
        common.number_setting("SOME_NUMBER", 7, 1, 10)
    assert str(wrong.value) == "SOME_NUMBER='ten' is not a number"
    for raw in ("0.5", "10.5"):
        monkeypatch.setenv("SOME_NUMBER", raw)
        with pytest.raises(common.ConfigError) as outside:
            common.number_setting("SOME_NUMBER", 7, 1, 10.5 if raw == "0.5" else 10)
        bounds = "1..10.5" if raw == "0.5" else "1..10"
        assert str(outside.value) == f"SOME_NUMBER={raw} is outside {bounds}"


def test_wait_settings_default_to_their_limits(monkeypatch, d):
    assert common.wait_settings() == (common.WAIT_LIMIT, 10, common.SMOKE_LIMIT)
    monkeypatch.setenv("DEPLOY_TIMEOUT", "1")
    monkeypatch.setenv("DEPLOY_POLL_SECONDS", "0")
    monkeypatch.setenv("SMOKE_WAIT", "0")
    assert common.wait_settings() == (1, 0, 0)
    monkeypatch.setenv("DEPLOY_TIMEOUT", "0")  # a wait of nothing would never look
    with pytest.raises(common.ConfigError) as outside:
        common.wait_settings()
    assert str(outside.value) == "DEPLOY_TIMEOUT=0 is outside 1..400"


def test_version_ids_and_workers():
    assert common.version_id("v1.2.3-RC.1") == "v1-2-3-rc-1"
    assert common.version_id("main-1a2b3c4") == "main-1a2b3c4"
    # One worker per 256 MB, rounded half to even, 1 at least and 8 at most.
    sizes = {100: 1, 384: 2, 640: 2, 768: 3, 1024: 4, 2048: 8, 4096: 8}
    assert {mb: common.workers_for(mb) for mb in sizes} == sizes


@pytest.mark.parametrize(
    ("version", "suffix", "words"),
    [
        ("v1.2.3", "x_1", "'v1-2-3-x_1', which App Engine refuses"),  # not the id alphabet
        ("v1.2.3", "1-", "'v1-2-3-1-', which App Engine refuses"),  # ends with a hyphen
        ("ah-1a2b3c4", "1", "'ah-1a2b3c4-1', which App Engine refuses"),
        ("v1.2.3-dot.1", "1", "'v1-2-3-dot-1-1', which App Engine refuses"),
    ],
)
def test_app_engine_ids_it_refuses(version, suffix, words):
    with pytest.raises(common.ConfigError) as refused:
        common.appengine_version(version, suffix, "default", "demo")
    assert str(refused.value) == (
        f"--version {version} gives the App Engine version id {words} (lowercase letters, "
        "digits and hyphens, at most 63, not ending in a hyphen, no '-dot-')"
    )


def test_an_app_engine_id_whose_url_cannot_resolve_says_by_how_much():
    # v1-2-3-1 (8) + -dot- (5) + 51 = 64.
    with pytest.raises(common.ConfigError) as refused:
        common.appengine_version("v1.2.3", "1", "default", "p" * 51)
    assert str(refused.value) == (
        "--version v1.2.3 gives the App Engine version id 'v1-2-3-1', whose URL "
        f"v1-2-3-1-dot-{'p' * 51}.<region>.r.appspot.com cannot resolve: that host label has 64 "
        "characters, DNS allows 63 (shorten the tag, APPENGINE_SERVICE or the project id)"
    )
    assert common.appengine_version("v1.2.3", "1", "default", "p" * 50) == "v1-2-3-1"  # 63


def test_lightsail_labels():
    assert common.lightsail_label("v1.2.3-rc.1") == "v1-2-3-rc-1"
    with pytest.raises(common.ConfigError) as refused:
        common.lightsail_label("v1.2.3-")
    assert str(refused.value) == (
        "--version v1.2.3- gives the Lightsail image label 'v1-2-3-', which Lightsail refuses "
        "(lowercase letters, digits and hyphens, at most 53, starting and ending with a letter "
        "or digit)"
    )


# -- the command line ----------------------------------------------------------------------------


def test_arguments_come_from_the_command_line_or_the_environment(monkeypatch, d):
    monkeypatch.setenv("DEPLOY_IMAGE", "img@sha256:1")
    monkeypatch.setenv("DEPLOY_VERSION", "v1.2.3")
    args = common.parse_args("test", [])
    assert (args.image, args.version, args.dry_run) == ("img@sha256:1", "v1.2.3", False)
    args = common.parse_args("test", ["--image", "other", "--version", "main-1a2b3c4", "--dry-run"])
    assert (args.image, args.version, args.dry_run) == ("other", "main-1a2b3c4", True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--version", "v1.2.3"], "--image (or DEPLOY_IMAGE) is not set"),
        (["--image", "x"], "--version (or DEPLOY_VERSION) is not set"),
        (
            ["--image", "x", "--version", "1.2.3"],
            "--version '1.2.3' is not a release tag like v1.2.3 or a build like main-1a2b3c4",
        ),
        (
            ["--image", "x", "--version", "main-1a2b3c"],  # six hex digits: not a commit
            "--version 'main-1a2b3c' is not a release tag like v1.2.3 or a build like main-1a2b3c4",
        ),
    ],
)
def test_bad_arguments_are_one_line_each(monkeypatch, d, argv, message):
    monkeypatch.delenv("DEPLOY_IMAGE", raising=False)
    monkeypatch.delenv("DEPLOY_VERSION", raising=False)
    with pytest.raises(common.ConfigError) as wrong:
        common.parse_args("test", argv)
    assert str(wrong.value) == message


def test_the_usage_names_the_target(capsys):
    with pytest.raises(SystemExit):
        common.parse_args("heroku", ["--help"])
    usage = capsys.readouterr().out
    assert usage.startswith("usage: deploy/heroku [-h]")
    words = " ".join(usage.split())  # as argparse wraps it to the terminal's width
    assert "Deploy a tested release to heroku." in words
    assert "--image IMAGE the tested image reference (default: $DEPLOY_IMAGE)" in words
    assert (
        "--version VERSION the release tag (v1.2.3, v0.0.0-main.1a2b3c4) (default: "
        "$DEPLOY_VERSION)" in words
    )
    assert "--dry-run print every command and API call, run none" in words


def test_a_wrong_option_is_answered_with_the_targets_usage(capsys):
    d = common.Deployer("lightsail")
    with pytest.raises(SystemExit):
        common.execute(d, lambda d, args: pytest.fail("deployed"), ["--no-such-option"])
    assert capsys.readouterr().err.startswith("usage: deploy/lightsail [-h]")


# -- the Deployer's calls ----------------------------------------------------------------------


@pytest.fixture
def tool(tmp_path):
    """A command that runs Python `code` (argv: [python, script]), for the Deployer to run."""

    def make(code: str, name: str = "tool") -> list[str]:
        script = tmp_path / f"{name}.py"
        script.write_text("import sys, time\n" + code)
        return [PYTHON, str(script)]

    return make


def test_secrets_are_masked_in_everything_it_prints(d, tool, capsys):
    d.secret("hunter2")
    d.secret("s3cr3t")
    d.say("key hunter2 and s3cr3t")
    d.report("again hunter2")
    d.run([*tool("print(sys.argv[1])"), "hunter2"], echo=True)
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "deploy/test: key *** and ***"
    assert out.splitlines()[1].endswith("tool.py ***")  # the command line
    assert out.splitlines()[2] == "***"  # what it printed
    assert err == "deploy/test: again ***\n"


def test_a_command_is_printed_counted_and_its_output_captured(d, tool, capsys):
    argv = tool("print(sys.stdin.read().upper()); print('warn', file=sys.stderr)")
    done = d.run(argv, stdin="hello")
    assert (done.returncode, done.stdout, done.stderr) == (0, "HELLO\n", "warn\n")
    assert capsys.readouterr().out == f"+ {argv[0]} {argv[1]}\n"
    assert d.ledger == [(f"{argv[0]} {argv[1]}", common.COMMAND_TIMEOUT)]
    d.run([*argv, "a", "b", "c"], stdin="", timeout=5)
    assert d.ledger[1] == (f"{argv[0]} {argv[1]} a b", 5)  # the first four words name it


def test_echo_prints_what_the_command_printed(d, tool, capsys):
    d.run(tool("print('out'); print('err', file=sys.stderr)"), echo=True)
    assert capsys.readouterr().out.splitlines()[1:] == ["out", "err"]
    d.run(tool("pass"), echo=True)
    assert capsys.readouterr().out.count("\n") == 1  # the command line only
    d.run(tool("print('not shown')"))
    assert "not shown" not in capsys.readouterr().out


def test_a_failed_command_names_itself_and_its_last_line(d, tool):
    argv = tool("print('first\\nlast', file=sys.stderr); sys.exit(3)")
    with pytest.raises(common.DeployError) as failed:
        d.run([*argv, "--flag", "more"])
    assert str(failed.value) == f"`{argv[0]} {argv[1]} --flag ...` exited 3: last"
    with pytest.raises(common.DeployError) as failed:
        d.run(tool("print('from stdout'); sys.exit(4)"))
    assert str(failed.value).endswith("...` exited 4: from stdout")
    with pytest.raises(common.DeployError) as failed:
        d.run(tool("sys.exit(5)"))
    assert str(failed.value).endswith("...` exited 5: no output")
    assert d.run(tool("sys.exit(6)"), check=False).returncode == 6


def test_a_missing_command_is_a_configuration_error(d):
    with pytest.raises(common.ConfigError) as missing:
        d.run(["no-such-tool-here", "--version"])
    assert str(missing.value) == "no-such-tool-here is not installed or not on PATH"


def test_a_command_that_outlives_its_limit_is_stopped(d, tool):
    argv = [*tool("time.sleep(30)"), "one", "two"]
    with pytest.raises(common.DeployError) as slow:
        d.run(argv, timeout=0.5)
    assert str(slow.value) == f"`{argv[0]} {argv[1]} one ...` took longer than 0.5 s"
    assert d.ledger == [(" ".join(argv), 0.5)]


def test_json_commands(d, tool):
    assert d.run_json(tool("print('{\"a\": [1]}')")) == {"a": [1]}
    argv = tool("print('<html>')")
    with pytest.raises(common.DeployError) as garbage:
        d.run_json([*argv, "x", "y"])
    assert str(garbage.value) == f"`{argv[0]} {argv[1]} x ...` did not print JSON"
    d.run_json(tool("print(1)"), timeout=7)
    assert [limit for _, limit in d.ledger] == [common.COMMAND_TIMEOUT] * 2 + [7]


def test_a_dry_run_prints_and_runs_nothing(tmp_path, tool, capsys):
    d = common.Deployer("test", dry_run=True)
    marker = tmp_path / "ran"
    argv = tool(f"open({str(marker)!r}, 'w')")
    assert d.run(argv) is None
    assert d.run_json(argv) is None
    assert d.http("GET", "http://127.0.0.1:9/x", {"Accept": "a"}, {"k": 1}) is None
    assert not marker.exists()
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == '+ GET http://127.0.0.1:9/x (Accept: a) {"k": 1}'
    )
    assert [limit for _, limit in d.ledger] == [common.COMMAND_TIMEOUT] * 2 + [common.HTTP_TIMEOUT]


class Api(FakeServer):
    """Answers each request with the next of `answers` (status, body); records what it got."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self.answers, self.seen = answers, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                api.seen.append(
                    (self.command, self.path, dict(self.headers), self.rfile.read(length))
                )
                status, body = api.answers.pop(0)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _any

            def log_message(self, *args) -> None:
                pass

        super().__init__(Handler)


def test_an_api_call_sends_json_and_reads_json(d, capsys):
    with Api([(201, b'{"id": 1}'), (200, b""), (206, b"[]"), (202, b"{}")]) as api:
        assert d.http("POST", f"{api.url}/things", {"X-Key": "k", "X-B": "b"}, {"a": 1}) == {
            "id": 1
        }
        assert d.http("GET", f"{api.url}/empty", {}) is None
        assert d.http("GET", f"{api.url}/range", {}) == []
        assert d.http("GET", f"{api.url}/accepted", {}, expect=(202,)) == {}
    method, path, headers, body = api.seen[0]
    assert (method, path, headers["X-Key"], json.loads(body)) == ("POST", "/things", "k", {"a": 1})
    assert api.seen[1][3] == b""  # no body
    assert capsys.readouterr().out.splitlines()[:2] == [
        f'+ POST {api.url}/things (X-Key: k, X-B: b) {{"a": 1}}',
        f"+ GET {api.url}/empty ()",
    ]
    assert d.ledger[0] == (f"POST {api.url}/things", common.HTTP_TIMEOUT)


def test_an_api_error_or_garbage_is_a_deploy_error_with_the_secret_masked(d):
    d.secret("k3y")
    with Api([(404, b"no k3y " + b"x" * 400), (200, b"<html>k3y" + b"y" * 400)]) as api:
        with pytest.raises(common.DeployError) as refused:
            d.http("GET", f"{api.url}/k3y", {})
        with pytest.raises(common.DeployError) as garbage:
            d.http("GET", f"{api.url}/k3y", {})
    # The first 300 bytes of the answer, then masked.
    assert str(refused.value) == f"GET {api.url}/*** answered 404: {b'no *** ' + b'x' * 293!r}"
    assert (
        str(garbage.value) == f"GET {api.url}/*** answered {b'<html>***' + b'y' * 291!r}, not JSON"
    )


def test_a_request_needs_an_http_url_and_an_answer():
    with pytest.raises(common.ConfigError) as wrong:
        common.request("GET", "ftp://x", {})
    assert str(wrong.value) == "'ftp://x' is not an http(s) URL"
    with pytest.raises(common.DeployError) as unanswered:
        common.request("GET", "http://127.0.0.1:9/", {})
    assert str(unanswered.value).startswith("GET http://127.0.0.1:9/ failed: <urlopen error")
    assert common.basic_auth("_", "key") == "Basic XzprZXk="


def test_a_request_goes_to_https_with_its_time_limit(monkeypatch):
    calls = []

    def http(method, url, body, headers, timeout):
        calls.append((method, url, body, headers, timeout))
        return type("Reply", (), {"status": 204, "headers": {"A": "b"}, "body": b""})

    monkeypatch.setattr(common, "http", http)
    assert common.request("PUT", "https://x/y", {"H": "1"}, b"{}", timeout=7) == (
        204,
        {"A": "b"},
        b"",
    )
    assert common.request("GET", "http://x/", {}) == (204, {"A": "b"}, b"")
    assert calls == [
        ("PUT", "https://x/y", b"{}", {"H": "1"}, 7),
        ("GET", "http://x/", None, {}, common.HTTP_TIMEOUT),
    ]


# -- waiting, the smoke test, the local image ---------------------------------------------------


def test_a_poll_returns_the_first_answer_that_holds_and_counts_its_slowest_look(d, monkeypatch):
    monkeypatch.setenv("DEPLOY_POLL_SECONDS", "0")
    answers = iter([None, "", "done"])

    def check():
        d.charge("look", 3)
        d.charge("look again", 4)
        return next(answers)

    assert d.poll(check, "it") == "done"
    assert d.ledger == [("wait for it", common.WAIT_LIMIT + common.POLL_LIMIT + 7)]
    assert d.look is None


def test_a_poll_that_never_holds_times_out_after_the_setting(d, monkeypatch):
    monkeypatch.setenv("DEPLOY_TIMEOUT", "1")
    monkeypatch.setenv("DEPLOY_POLL_SECONDS", "0.2")
    looks = []
    with pytest.raises(common.DeployError) as timed_out:
        d.poll(lambda: looks.append(1), "nothing")
    assert str(timed_out.value) == "timed out after 1 s waiting for nothing"
    assert 3 <= len(looks) <= 7  # every 0.2 s for a second (a busy machine looks less often)
    assert d.ledger == [("wait for nothing", common.WAIT_LIMIT + common.POLL_LIMIT)]


def test_the_longest_poll_ignores_the_setting_and_a_signal_shortens_it(d, monkeypatch):
    monkeypatch.setenv("DEPLOY_TIMEOUT", "1")
    monkeypatch.setattr(common, "WAIT_LIMIT", 2)
    seen = {}

    def wait_until(check, *, timeout, interval, what):
        seen.update(timeout=timeout, interval=interval, what=what)
        return check()

    monkeypatch.setattr(common, "wait_until", wait_until)
    assert d.poll(lambda: "yes", "a restore", longest=True) == "yes"
    assert seen == {"timeout": 2, "interval": 10, "what": "a restore"}
    d.deadline = common.time.monotonic() + 0.5  # a signal came: less than the longest wait
    d.poll(lambda: "yes", "the rest", longest=True)
    assert 0 < seen["timeout"] <= 0.5


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    """An `mlservice` beside the running Python that records its arguments and exits with the
    status in `status`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    status = tmp_path / "status"
    status.write_text("0")
    log = tmp_path / "argv"
    command = bin_dir / "mlservice"
    command.write_text(
        f"#!{PYTHON}\nimport sys, time\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"time.sleep(float(sys.argv[-1]) / 1000)\nsys.exit(int(open({str(status)!r}).read()))\n"
    )
    command.chmod(0o755)
    monkeypatch.setattr(common.sys, "executable", str(bin_dir / "python"))
    return status, log


def test_the_smoke_test_is_the_projects_own_command_beside_python(d, smoke, monkeypatch, capsys):
    status, log = smoke
    monkeypatch.setenv("SMOKE_WAIT", "2")
    assert d.smoke("https://app.example/") is True
    assert log.read_text() == "smoke https://app.example/ --wait 2\n"
    status.write_text("1")
    assert d.smoke("https://app.example/") is False
    assert (
        capsys.readouterr()
        .out.splitlines()[0]
        .endswith("bin/mlservice smoke https://app.example/ --wait 2")
    )
    assert d.ledger == [("mlservice smoke", common.SMOKE_TIMEOUT)] * 2


def test_a_smoke_test_that_hangs_fails(d, smoke, monkeypatch, capsys):
    monkeypatch.setenv("SMOKE_WAIT", "100")  # the recording command sleeps 0.1 s
    monkeypatch.setattr(common, "SMOKE_TIMEOUT", 0.05)
    assert d.smoke("https://app.example/") is False
    assert capsys.readouterr().out.splitlines()[-1] == "smoke test took longer than 0.05 s"


def test_the_smoke_test_falls_back_to_path_and_needs_the_project(d, tmp_path, monkeypatch):
    monkeypatch.setattr(common.sys, "executable", str(tmp_path / "python"))  # nothing beside it
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "mlservice").write_text("#!/bin/sh\nexit 0\n")
    (on_path / "mlservice").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert d.smoke("https://app.example/") is True
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(common.ConfigError) as missing:
        d.smoke("https://app.example/")
    assert str(missing.value) == (
        "mlservice is not installed: run with the project's .venv/bin/python"
    )


def test_a_dry_run_smoke_test_passes_without_running(smoke, monkeypatch, capsys):
    status, log = smoke
    status.write_text("1")
    d = common.Deployer("test", dry_run=True)
    assert d.smoke("https://app.example/") is True
    assert not log.exists()


def test_the_image_is_pulled_only_when_missing(d, tmp_path, monkeypatch, capsys):
    docker = tmp_path / "docker"
    docker.write_text(
        f"#!{PYTHON}\nimport sys\nopen({str(tmp_path / 'calls')!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "sys.exit(1 if sys.argv[-1] == 'missing' and sys.argv[1] == 'image' else 0)\n"
    )
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    d.ensure_local_image("here")
    d.ensure_local_image("missing")
    assert (tmp_path / "calls").read_text().splitlines() == [
        "image inspect --format {{.Id}} here",
        "image inspect --format {{.Id}} missing",
        "pull missing",
    ]
    assert d.ledger[-1] == ("docker pull missing", common.UPLOAD_TIMEOUT)
    dry = common.Deployer("test", dry_run=True)
    dry.ensure_local_image("any")
    assert dry.ledger == [("docker pull any", common.UPLOAD_TIMEOUT)]
    assert capsys.readouterr().out.splitlines()[-1] == "+ docker pull any"


# -- outcomes --------------------------------------------------------------------------------------


def test_a_failure_before_any_change_changes_nothing(d, capsys):
    assert d.fail(common.DeployError("it broke")) == common.UNCHANGED
    assert capsys.readouterr().err == "deploy/test: FAILED: it broke; nothing was changed\n"


def test_a_failure_after_a_change_restores_it(d, capsys):
    undone = []
    d.changing("release v7", lambda: undone.append(1) or True, "heroku rollback v7")
    assert d.fail(common.DeployError("smoke test failed")) == common.ROLLED_BACK
    out, err = capsys.readouterr()
    assert out == "deploy/test: smoke test failed: restoring release v7\n"
    assert err == "deploy/test: FAILED: smoke test failed; rolled back: release v7 serves again\n"
    assert undone == [1]
    assert d.restore is None


def test_a_restore_that_found_nothing_changed(d, capsys):
    d.changing("release v7", lambda: False, "heroku rollback v7")
    assert d.fail(common.ConfigError("bad answer")) == common.UNCHANGED
    assert capsys.readouterr().err == (
        "deploy/test: FAILED: bad answer; nothing was changed: release v7 still serves\n"
    )


@pytest.mark.parametrize("failure", [common.DeployError("no"), common.Interrupted("SIGTERM")])
def test_a_restore_that_fails_asks_for_the_command_by_hand(d, capsys, failure):
    def undo():
        raise failure

    d.changing("release v7", undo, "heroku rollback v7 -a demo")
    assert d.fail(common.DeployError("smoke test failed")) == common.NOT_RESTORED
    reason = (
        "no"
        if isinstance(failure, common.DeployError)
        else ("interrupted by SIGTERM (the job was cancelled or timed out)")
    )
    assert capsys.readouterr().err.splitlines() == [
        f"deploy/test: FAILED: smoke test failed; restoring release v7 failed: {reason}",
        "deploy/test: restore it by hand: heroku rollback v7 -a demo",
    ]


def test_an_unexpected_error_is_explained_with_its_traceback_masked(d, capsys):
    d.secret("k3y")
    try:
        {}["k3y"]
    except KeyError as error:
        reason = d.explain(error)
    assert reason == "unexpected KeyError: 'k3y'"  # masked where it is printed
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith('  File "')
    assert lines[1].endswith(", in test_an_unexpected_error_is_explained_with_its_traceback_masked")
    assert lines[2] == '    {}["***"]'
    assert lines[-1] == "KeyError: '***'"
    assert err.endswith("'***'\n")
    assert "k3y" not in err
    assert d.explain(common.ConfigError("plain")) == "plain"
    assert capsys.readouterr().err == ""


def test_a_failure_after_deploying_leaves_the_deployment(d, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    (tmp_path / "output").write_text("earlier=1\n")
    d.changing("release v7", lambda: pytest.fail("nothing to undo"), "heroku rollback v7")
    d.finish("https://app.example/", "v1.2.3")
    assert (tmp_path / "output").read_text() == "earlier=1\nurl=https://app.example/\n"
    assert (tmp_path / "summary").read_text() == (
        "- **test**: deployed v1.2.3 to <https://app.example/>\n"
    )
    assert capsys.readouterr().out == "deploy/test: deployed v1.2.3: https://app.example/\n"
    assert d.fail(common.DeployError("pruning failed")) == common.DEPLOYED
    assert capsys.readouterr().err == (
        "deploy/test: pruning failed after deploying: the deployment stands\n"
    )


def test_outside_actions_nothing_is_written_and_a_dry_run_says_what_it_would(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "")
    monkeypatch.chdir(tmp_path)
    common.Deployer("test").finish("https://app.example/", "v1.2.3")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    dry = common.Deployer("test", dry_run=True)
    dry.changing("release v7", lambda: True, "heroku rollback v7")
    dry.finish("https://app.example/", "v1.2.3")
    assert not (tmp_path / "output").exists()
    assert capsys.readouterr().out.splitlines()[1:] == [
        "deploy/test: on a failure from here: restore release v7 (heroku rollback v7)",
        "deploy/test: dry run complete: would deploy v1.2.3 and write url=<URL> to GITHUB_OUTPUT",
    ]


# -- a whole run -----------------------------------------------------------------------------------

ARGS = ["--image", "x@sha256:1", "--version", "v1.2.3"]


def test_a_run_reports_its_steps_and_returns_the_outcome(d, capsys):
    def deploy(d, args):
        assert (args.image, args.version, d.dry_run) == ("x@sha256:1", "v1.2.3", True)
        d.run(["true"])
        d.charge("a wait", 400)

    assert common.execute(d, deploy, [*ARGS, "--dry-run"]) == common.DEPLOYED
    assert capsys.readouterr().out.splitlines()[-1] == (
        "deploy/test: 2 steps, whose time limits add up to 460 s"
    )


def test_bad_configuration_before_a_change_is_exit_2_and_after_it_a_restore(d, capsys):
    def early(d, args):
        raise common.ConfigError("HEROKU_APP is not set")

    assert common.execute(d, early, ARGS) == common.CONFIG
    assert capsys.readouterr().err == "deploy/test: error: HEROKU_APP is not set\n"

    def late(d, args):
        d.changing("release v7", lambda: True, "heroku rollback v7")
        raise common.ConfigError("mlservice is not installed")

    assert common.execute(common.Deployer("test"), late, ARGS) == common.ROLLED_BACK
    assert capsys.readouterr().err == (
        "deploy/test: FAILED: mlservice is not installed; rolled back: release v7 serves again\n"
    )


def test_any_exception_or_signal_after_a_change_restores(d, capsys):
    def crash(d, args):
        d.changing("release v7", lambda: True, "heroku rollback v7")
        raise ZeroDivisionError("planted")

    assert common.execute(d, crash, ARGS) == common.ROLLED_BACK
    assert "unexpected ZeroDivisionError: planted" in capsys.readouterr().err

    def signalled(d, args):
        d.changing("release v7", lambda: True, "heroku rollback v7")
        signal.raise_signal(signal.SIGINT)

    assert common.execute(common.Deployer("test"), signalled, ARGS) == common.ROLLED_BACK
    assert capsys.readouterr().err == (
        "deploy/test: FAILED: interrupted by SIGINT (the job was cancelled or timed out); "
        "rolled back: release v7 serves again\n"
    )


def test_a_signal_leaves_the_grace_period_to_the_restore(monkeypatch, capsys):
    clock = iter([1000.0, 1003.0])
    monkeypatch.setattr(common.time, "monotonic", lambda: next(clock))
    d = common.Deployer("test")
    with common.interruptible(d):
        with pytest.raises(common.Interrupted) as first:
            signal.raise_signal(signal.SIGTERM)
        assert str(first.value) == "SIGTERM"
        assert d.deadline == 1000.0 + common.GRACE
        signal.raise_signal(signal.SIGINT)  # noted, not raised
        assert d.limit(60) == common.GRACE - 3
    assert capsys.readouterr().out == "deploy/test: SIGINT again: still restoring\n"


def test_the_scripts_run_with_the_projects_python(monkeypatch, tmp_path):
    runs = []
    monkeypatch.setattr(common.os, "execv", lambda path, argv: runs.append((path, argv)))
    monkeypatch.setattr(common.sys, "argv", ["deploy/heroku", "--dry-run"])
    monkeypatch.setattr(common, "ROOT", tmp_path / "clone")
    python = tmp_path / "clone" / ".venv" / "bin" / "python"
    monkeypatch.setattr(common.sys, "prefix", str(tmp_path / "other"))
    common.use_project_python()
    assert runs == []  # a clone without .venv: nothing to switch to
    python.parent.mkdir(parents=True)
    python.touch()
    monkeypatch.setattr(common.sys, "prefix", str(python.parent.parent))
    common.use_project_python()
    assert runs == []  # already the project's
    monkeypatch.setattr(common.sys, "prefix", str(tmp_path / "other"))
    common.use_project_python()
    assert runs == [(python, [str(python), "deploy/heroku", "--dry-run"])]


def test_main_runs_the_deployment_with_a_deployer_for_the_target(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(common, "use_project_python", lambda: seen.append("project python"))
    assert common.main("lightsail", lambda d, args: seen.append(d.target), ARGS) == 0
    assert seen == ["project python", "lightsail"]


def test_the_job_log_reads_in_the_order_things_happened(tmp_path, monkeypatch):
    """In the job's log stdout and stderr share one pipe, block-buffered: each line is flushed
    as it is said, so the log reads in the order things happened (the smoke test's own output,
    written to the same file descriptor, included)."""
    for folder, command in (("bin", "echo smoke output"), ("slow", "exec sleep 30")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mlservice").write_text(f"#!/bin/sh\n{command}\n")
        (tmp_path / folder / "mlservice").chmod(0o755)
    monkeypatch.setenv("SMOKE_WAIT", "1")
    log = tmp_path / "log"
    shared = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # the job's one pipe
    saved = os.dup(1), sys.stdout, sys.stderr
    os.dup2(shared, 1)  # where the smoke test's own output goes
    sys.stdout = open(os.dup(shared), "w")  # noqa: SIM115 (block-buffered, as on a pipe)
    sys.stderr = open(os.dup(shared), "w")  # noqa: SIM115
    try:
        d = common.Deployer("test")
        d.run([PYTHON, "-c", "print('ran')"], echo=True)
        d.report("reported")  # on stderr: after the command's output, on stdout
        d.run([PYTHON, "-c", "pass"])
        d.say("said")
        d.report("reported again")
        monkeypatch.setattr(common.sys, "executable", str(tmp_path / "bin" / "python"))
        d.smoke("https://app.example/")
        common.execute(d, lambda d, args: d.say("deploying"), ARGS)
        d.report("deployed")
        monkeypatch.setattr(common, "SMOKE_TIMEOUT", 0.1)
        monkeypatch.setattr(common.sys, "executable", str(tmp_path / "slow" / "python"))
        d.smoke("https://app.example/")
        d.report("after the smoke test")
        d.changing("release v7", lambda: True, "by hand")
        d.fail(KeyError("k"))  # its traceback (here one line) first
    finally:
        sys.stdout.close()
        sys.stderr.close()
        os.dup2(saved[0], 1)
        os.close(saved[0])
        os.close(shared)
        sys.stdout, sys.stderr = saved[1:]
    assert [
        line.split(" ", 1)[0] if line.startswith("+") else line
        for line in log.read_text().splitlines()
    ] == [
        "+",
        "ran",
        "deploy/test: reported",
        "+",
        "deploy/test: said",
        "deploy/test: reported again",
        "+",
        "smoke output",
        "deploy/test: deploying",
        "deploy/test: 3 steps, whose time limits add up to 270 s",  # commands 60, smoke 150
        "deploy/test: deployed",
        "+",
        "smoke test took longer than 0.1 s",
        "deploy/test: after the smoke test",
        "KeyError: 'k'",
        "deploy/test: unexpected KeyError: 'k': restoring release v7",
        "deploy/test: FAILED: unexpected KeyError: 'k'; rolled back: release v7 serves again",
    ]


def test_an_api_call_has_its_time_limit_or_what_is_left_after_a_signal(d, monkeypatch):
    limits = []

    def request(method, url, headers, data, timeout):
        limits.append(timeout)
        return 200, {}, b""

    monkeypatch.setattr(common, "request", request)
    d.http("GET", "http://x/", {})
    d.deadline = common.time.monotonic() + 5
    d.http("GET", "http://x/", {})
    assert limits[0] == common.HTTP_TIMEOUT
    assert 0 < limits[1] <= 5


def test_no_time_is_left_at_the_deadline_itself(d, monkeypatch):
    monkeypatch.setattr(common.time, "monotonic", lambda: 100.0)
    d.deadline = 100.0
    with pytest.raises(common.DeployError) as late:
        d.limit(common.HTTP_TIMEOUT)
    assert str(late.value) == "no time left after the job was cancelled"


def test_a_poll_with_no_time_left_never_looks_and_counts_its_wait(d):
    d.deadline = common.time.monotonic() - 1  # signalled, and the grace is spent
    with pytest.raises(common.DeployError, match="no time left"):
        d.poll(lambda: pytest.fail("looked"), "the deployment")
    assert d.ledger == [("wait for the deployment", common.WAIT_LIMIT + common.POLL_LIMIT)]
