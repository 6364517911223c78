"""scripts/plan-deploys: which targets the deploy job runs for, and what the summary asks for."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plan-deploys"

# What enables each target, as agreed with the deploy scripts (docs/pipeline.md).
LIGHTSAIL = {"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/deploy", "LIGHTSAIL_SERVICE": "ml"}
APPENGINE = {
    "GCP_WORKLOAD_IDENTITY_PROVIDER": (
        "projects/1/locations/global/workloadIdentityPools/ci/providers/github"
    ),
    "GCP_SERVICE_ACCOUNT": "deployer@proj.iam.gserviceaccount.com",
    "GCP_PROJECT_ID": "proj",
}
HEROKU = {"HEROKU_APP": "ml-app", "HEROKU_API_KEY_SET": "true"}
TARGETS = ("lightsail", "appengine", "heroku")
EVERYTHING = {**LIGHTSAIL, **APPENGINE, **HEROKU}

TAG_PUSH = {
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REF": "refs/tags/v1.2.3",
    "GITHUB_REF_NAME": "v1.2.3",
}
MAIN_PUSH = {
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REF_NAME": "main",
}
PULL_REQUEST = {
    "GITHUB_EVENT_NAME": "pull_request",
    "GITHUB_REF": "refs/pull/7/merge",
    "GITHUB_REF_NAME": "7/merge",
}


def dispatch(tag="v2.0.0", targets=""):
    return {
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "DEPLOY_TAG": tag,
        "REQUESTED_TARGETS": targets,
    }


def run(tmp_path, env):
    """Run the script as the workflow does; return (exit code, outputs, summary, stdout, stderr)."""
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("earlier=kept\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = output.read_text().splitlines()
    assert lines[0] == "earlier=kept"  # appends, like every step writing $GITHUB_OUTPUT
    outputs = dict(line.split("=", 1) for line in lines[1:])
    text = summary.read_text() if summary.exists() else ""
    return proc.returncode, outputs, text, proc.stdout, proc.stderr


def targets(outputs):
    return json.loads(outputs["targets"])


def row(summary, target):
    (line,) = [line for line in summary.splitlines() if line.startswith(f"| {target} |")]
    return line


def test_a_fresh_copy_deploys_nothing_and_says_what_to_set(tmp_path):
    code, outputs, summary, _, _ = run(tmp_path, TAG_PUSH)
    assert code == 0
    assert targets(outputs) == []
    assert outputs["version"] == "v1.2.3"
    for target, names in [
        ("lightsail", ["AWS_ROLE_ARN", "LIGHTSAIL_SERVICE", "AWS_REGION"]),
        ("appengine", ["GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT", "GCP_PROJECT_ID"]),
        ("heroku", ["HEROKU_APP"]),
    ]:
        line = row(summary, target)
        assert "| off |" in line
        assert all(f"`{name}`" in line for name in names)
    assert "secret `HEROKU_API_KEY`" in row(summary, "heroku")
    assert "variable `HEROKU_APP`" in row(summary, "heroku")


@pytest.mark.parametrize(
    "event", [MAIN_PUSH, PULL_REQUEST, TAG_PUSH], ids=["main", "pull_request", "tag"]
)
def test_a_fresh_copy_is_green_with_a_notice_naming_every_variable(tmp_path, event):
    # The first run of a repository made from the template: no variable, no secret.
    code, outputs, _, stdout, stderr = run(tmp_path, event)
    assert code == 0
    assert targets(outputs) == []
    assert stderr == ""
    (notice,) = [line for line in stdout.splitlines() if line.startswith("::notice")]
    assert "deploys are skipped" in notice
    for target in TARGETS:
        assert target in notice
    for name in [*LIGHTSAIL, *APPENGINE, "HEROKU_APP", "HEROKU_API_KEY"]:
        assert f"`{name}`" in notice
    assert "::warning" not in stdout  # nothing half-configured to warn about


def test_no_notice_once_a_target_is_configured(tmp_path):
    _, _, _, stdout, _ = run(tmp_path, {**MAIN_PUSH, **HEROKU})
    assert "::notice" not in stdout


def test_a_tag_deploys_every_configured_target(tmp_path):
    code, outputs, summary, _, _ = run(tmp_path, {**TAG_PUSH, **EVERYTHING})
    assert code == 0
    assert targets(outputs) == ["lightsail", "appengine", "heroku"]
    assert all("| deploying | nothing |" in row(summary, t) for t in targets(outputs))


def test_only_complete_targets_are_deployed(tmp_path):
    env = {**TAG_PUSH, **APPENGINE, "AWS_ROLE_ARN": LIGHTSAIL["AWS_ROLE_ARN"]}
    code, outputs, summary, stdout, _ = run(tmp_path, env)
    assert code == 0
    assert targets(outputs) == ["appengine"]
    lightsail = row(summary, "lightsail")
    assert "| incomplete |" in lightsail
    assert "`LIGHTSAIL_SERVICE`" in lightsail
    assert "`AWS_ROLE_ARN`" not in lightsail  # it is set: only what is missing is asked for
    assert "::warning::lightsail" in stdout  # a half-done setup is flagged on the run page


@pytest.mark.parametrize("flag", ["false", ""])
def test_heroku_needs_its_secret(tmp_path, flag):
    env = {**TAG_PUSH, "HEROKU_APP": "ml-app", "HEROKU_API_KEY_SET": flag}
    _, outputs, summary, _, _ = run(tmp_path, env)
    assert targets(outputs) == []
    line = row(summary, "heroku")
    assert "secret `HEROKU_API_KEY`" in line
    assert "HEROKU_APP" not in line


def test_a_secret_value_in_the_environment_counts_as_set(tmp_path):
    # Running the script by hand with the key exported, as the deploy scripts expect it.
    env = {**TAG_PUSH, "HEROKU_APP": "ml-app", "HEROKU_API_KEY": "k"}
    _, outputs, _, _, _ = run(tmp_path, env)
    assert targets(outputs) == ["heroku"]


@pytest.mark.parametrize("event", [MAIN_PUSH, PULL_REQUEST], ids=["main", "pull_request"])
def test_branch_and_pull_request_runs_never_deploy(tmp_path, event):
    code, outputs, summary, _, _ = run(tmp_path, {**event, **EVERYTHING})
    assert code == 0
    assert targets(outputs) == []
    assert outputs["version"] == ""
    assert "does not deploy" in summary
    assert "lightsail, appengine, heroku" in summary  # still reports what is configured


def test_dispatch_deploys_the_requested_tag_to_the_requested_targets(tmp_path):
    env = {**dispatch("v2.0.0", " Heroku,lightsail "), **EVERYTHING}
    code, outputs, summary, _, _ = run(tmp_path, env)
    assert code == 0
    assert targets(outputs) == ["lightsail", "heroku"]  # pipeline order, any request order
    assert outputs["version"] == "v2.0.0"
    assert "| configured |" in row(summary, "appengine")


def test_dispatch_without_a_target_list_redeploys_everything_configured(tmp_path):
    _, outputs, _, _, _ = run(tmp_path, {**dispatch("v2.0.1-rc.1"), **HEROKU, **APPENGINE})
    assert targets(outputs) == ["appengine", "heroku"]
    assert outputs["version"] == "v2.0.1-rc.1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**dispatch(targets="heroku,azure"), **EVERYTHING}, "unknown target(s) azure"),
        ({**dispatch(targets="lightsail"), **HEROKU}, "not configured: lightsail"),
        ({**dispatch(tag="main"), **EVERYTHING}, "'main' is not a release tag"),
        ({**dispatch(tag=""), **EVERYTHING}, "'' is not a release tag"),
        (
            {**TAG_PUSH, "GITHUB_REF": "refs/tags/vnext", "GITHUB_REF_NAME": "vnext"},
            "'vnext' is not a release tag",
        ),
    ],
    ids=["unknown", "unconfigured", "branch-as-tag", "empty-tag", "bad-pushed-tag"],
)
def test_bad_requests_fail_with_one_line_and_no_outputs(tmp_path, env, message):
    code, outputs, _, _, stderr = run(tmp_path, env)
    assert code == 2
    assert outputs == {}
    assert len(stderr.splitlines()) == 1
    assert message in stderr


def test_without_github_files_it_prints_to_stdout():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**TAG_PUSH, **HEROKU},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert 'targets=["heroku"]' in proc.stdout.splitlines()
    assert "## Deploy plan" in proc.stdout
