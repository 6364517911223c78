"""scripts/plan-deploys: which environments (target + tier) a run deploys to, and what it asks for.

The tests call its main() in-process, as the workflow's steps call the script (environment,
arguments, standard input), so that mutation testing sees them; one runs the script itself.
"""

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

from scripts import plan_deploys

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plan-deploys"

EVERY_ENVIRONMENT = (
    "lightsail-staging lightsail-production appengine-staging appengine-production"
    " heroku-staging heroku-production"
)
ONLY_PRODUCTION = "lightsail-production,appengine-production,heroku-production"
ONLY_STAGING = "heroku-staging, lightsail-staging"

MAIN_PUSH = {
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REF_NAME": "main",
    "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    "DEFAULT_BRANCH": "main",
}
OTHER_BRANCH = {**MAIN_PUSH, "GITHUB_REF": "refs/heads/feature", "GITHUB_REF_NAME": "feature"}
TAG = {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.2.3", "GITHUB_REF_NAME": "v1.2.3"}
RC_TAG = {**TAG, "GITHUB_REF": "refs/tags/v1.2.3-rc.1", "GITHUB_REF_NAME": "v1.2.3-rc.1"}
PULL_REQUEST = {
    "GITHUB_EVENT_NAME": "pull_request",
    "GITHUB_REF": "refs/pull/7/merge",
    "GITHUB_REF_NAME": "7/merge",
    "DEFAULT_BRANCH": "main",
}


def dispatch(tier="production", tag="v2.0.0", targets=""):
    return {
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "DEFAULT_BRANCH": "main",
        "DEPLOY_TAG": tag,
        "DEPLOY_TIER": tier,
        "REQUESTED_TARGETS": targets,
    }


def call(env, *args, stdin=""):
    """main(args) with exactly `env` as the environment; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env, clear=True),
        mock.patch("sys.stdin", io.StringIO(stdin)),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        code = plan_deploys.main(list(args))
    return code, out.getvalue(), err.getvalue()


def run(tmp_path, env, *args):
    """Run the plan as the workflow does; return (exit code, outputs, summary, stdout, stderr)."""
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("earlier=kept\n")
    summary.unlink(missing_ok=True)
    files = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    code, stdout, stderr = call({**files, **env}, *args)
    lines = output.read_text().splitlines()
    assert lines[0] == "earlier=kept"  # appends, like every step writing $GITHUB_OUTPUT
    outputs = dict(line.split("=", 1) for line in lines[1:])
    text = summary.read_text() if summary.exists() else ""
    return code, outputs, text, stdout, stderr


def environments(outputs):
    deploys = json.loads(outputs["deploys"])
    for deploy in deploys:
        assert deploy["environment"] == f"{deploy['target']}-{deploy['tier']}"
    return [d["environment"] for d in deploys]


def row(summary, environment):
    (line,) = [line for line in summary.splitlines() if line.startswith(f"| {environment} |")]
    return line


# -- Which tier each event deploys to ---------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "tier", "version", "expected"),
    [
        (MAIN_PUSH, "staging", "v0.0.0-main.0123456", ["lightsail-staging", "heroku-staging"]),
        (TAG, "production", "v1.2.3", ["lightsail-production", "heroku-production"]),
        (RC_TAG, "staging", "v1.2.3-rc.1", ["lightsail-staging", "heroku-staging"]),
        (OTHER_BRANCH, "", "", []),
        (PULL_REQUEST, "", "", []),
    ],
    ids=["main", "tag", "pre-release-tag", "other-branch", "pull-request"],
)
def test_each_event_deploys_to_its_tier(tmp_path, event, tier, version, expected):
    env = {
        **event,
        "DEPLOY_ENVIRONMENTS": "heroku-staging lightsail-staging heroku-production "
        "lightsail-production",
    }
    code, outputs, _, _, stderr = run(tmp_path, env)
    assert (code, stderr) == (0, "")
    assert environments(outputs) == expected  # pipeline order, whatever the variable's order
    assert outputs["tier"] == tier
    assert outputs["version"] == version


def test_the_default_branch_is_the_repositorys_not_always_main(tmp_path):
    env = {
        **MAIN_PUSH,
        "GITHUB_REF": "refs/heads/trunk",
        "DEFAULT_BRANCH": "trunk",
        "DEPLOY_ENVIRONMENTS": "heroku-staging",
    }
    _, outputs, _, _, _ = run(tmp_path, env)
    assert environments(outputs) == ["heroku-staging"]
    _, outputs, _, _, _ = run(tmp_path, {**env, "DEFAULT_BRANCH": "develop"})
    assert environments(outputs) == []


# -- Configurations: fresh copy, only production, only staging --------------------------------


@pytest.mark.parametrize("event", [MAIN_PUSH, TAG, RC_TAG, PULL_REQUEST])
def test_a_fresh_copy_deploys_nothing_stays_green_and_says_what_to_set(tmp_path, event):
    code, outputs, summary, stdout, stderr = run(tmp_path, event)
    assert (code, stderr) == (0, "")
    assert environments(outputs) == []
    (notice,) = [line for line in stdout.splitlines() if line.startswith("::notice")]
    assert "DEPLOY_ENVIRONMENTS" in notice
    for name in ("lightsail-staging", "heroku-production", "appengine-production"):
        assert "| off |" in row(summary, name)
        assert f"add `{name}` to the repository variable `DEPLOY_ENVIRONMENTS`" in row(
            summary, name
        )
    heroku = row(summary, "heroku-staging")
    assert "variable `HEROKU_APP`" in heroku
    assert "secret `HEROKU_API_KEY`" in heroku
    lightsail = row(summary, "lightsail-production")
    assert "`AWS_ROLE_ARN`, `LIGHTSAIL_SERVICE`" in lightsail
    assert "`AWS_REGION`" in lightsail  # optional, still named
    assert "`GCP_WORKLOAD_IDENTITY_PROVIDER`" in row(summary, "appengine-staging")


def test_only_production_configured_main_deploys_nothing_but_a_tag_deploys(tmp_path):
    code, outputs, summary, stdout, _ = run(
        tmp_path, {**MAIN_PUSH, "DEPLOY_ENVIRONMENTS": ONLY_PRODUCTION}
    )
    assert code == 0
    assert environments(outputs) == []
    assert "| off |" in row(summary, "heroku-staging")
    assert "| enabled |" in row(summary, "heroku-production")
    assert "no staging environment is enabled" in stdout
    _, outputs, _, _, _ = run(tmp_path, {**TAG, "DEPLOY_ENVIRONMENTS": ONLY_PRODUCTION})
    assert environments(outputs) == [
        "lightsail-production",
        "appengine-production",
        "heroku-production",
    ]


def test_only_staging_configured_a_release_tag_deploys_nothing(tmp_path):
    code, outputs, summary, _, _ = run(tmp_path, {**TAG, "DEPLOY_ENVIRONMENTS": ONLY_STAGING})
    assert code == 0
    assert environments(outputs) == []
    assert outputs["version"] == "v1.2.3"  # the release is still made
    assert "| enabled |" in row(summary, "lightsail-staging")
    _, outputs, summary, _, _ = run(tmp_path, {**MAIN_PUSH, "DEPLOY_ENVIRONMENTS": ONLY_STAGING})
    assert environments(outputs) == ["lightsail-staging", "heroku-staging"]
    assert "| deploying | nothing |" in row(summary, "heroku-staging")


# -- What the run's summary page and log say --------------------------------------------------

TAG_SUMMARY = """\
## Deploy plan

Deploying `v1.2.3` to the production tier: heroku-production.

| Environment | Status | To switch it on |
|---|---|---|
| lightsail-staging | enabled | nothing |
| lightsail-production | off | environment `lightsail-production` with variables `AWS_ROLE_ARN`, \
`LIGHTSAIL_SERVICE` (optional: `AWS_REGION` (default us-east-1)); then add `lightsail-production` \
to the repository variable `DEPLOY_ENVIRONMENTS` |
| appengine-staging | off | environment `appengine-staging` with variables \
`GCP_WORKLOAD_IDENTITY_PROVIDER`, `GCP_SERVICE_ACCOUNT`, `GCP_PROJECT_ID` (optional: \
`APPENGINE_SERVICE` (default `default`), `APPENGINE_KEEP_VERSIONS` (default 20)); then add \
`appengine-staging` to the repository variable `DEPLOY_ENVIRONMENTS` |
| appengine-production | off | environment `appengine-production` with variables \
`GCP_WORKLOAD_IDENTITY_PROVIDER`, `GCP_SERVICE_ACCOUNT`, `GCP_PROJECT_ID` (optional: \
`APPENGINE_SERVICE` (default `default`), `APPENGINE_KEEP_VERSIONS` (default 20)); then add \
`appengine-production` to the repository variable `DEPLOY_ENVIRONMENTS` |
| heroku-staging | off | environment `heroku-staging` with variable `HEROKU_APP`; secret \
`HEROKU_API_KEY`; then add `heroku-staging` to the repository variable `DEPLOY_ENVIRONMENTS` |
| heroku-production | deploying | nothing |

Environments live under Settings → Environments; DEPLOY_ENVIRONMENTS under Settings → Secrets \
and variables → Actions → Variables. docs/pipeline.md explains each setting.
"""


def test_the_summary_says_what_deploys_and_how_to_switch_on_each_environment(tmp_path):
    env = {**TAG, "DEPLOY_ENVIRONMENTS": "heroku-production lightsail-staging"}
    code, outputs, summary, stdout, _ = run(tmp_path, env)
    assert code == 0
    assert summary == TAG_SUMMARY
    assert stdout == ""  # nothing to notice: it deploys
    # One line each, as GitHub reads $GITHUB_OUTPUT; the deploy matrix parses the JSON.
    assert outputs == {
        "deploys": '[{"target":"heroku","tier":"production","environment":"heroku-production"}]',
        "tier": "production",
        "version": "v1.2.3",
    }


NOT_DEPLOYING = (
    "This run does not deploy: a push to the default branch deploys to staging, a `v*` tag to"
    " production (a pre-release tag to staging). Enabled now: "
)


@pytest.mark.parametrize(
    ("env", "head"),
    [
        (PULL_REQUEST, NOT_DEPLOYING + "none."),
        (
            {**PULL_REQUEST, "DEPLOY_ENVIRONMENTS": "heroku-production heroku-staging"},
            NOT_DEPLOYING + "heroku-staging, heroku-production.",
        ),
        (
            {**MAIN_PUSH, "DEPLOY_ENVIRONMENTS": ONLY_PRODUCTION},
            "Deploying `v0.0.0-main.0123456` to the staging tier: no environment.",
        ),
        (
            {**TAG, "DEPLOY_ENVIRONMENTS": EVERY_ENVIRONMENT},
            "Deploying `v1.2.3` to the production tier: lightsail-production,"
            " appengine-production, heroku-production.",
        ),
    ],
    ids=["fresh-copy", "not-deploying", "nothing-for-the-tier", "deploying"],
)
def test_the_summary_opens_with_what_this_run_does(tmp_path, env, head):
    _, _, summary, _, _ = run(tmp_path, env)
    assert summary.splitlines()[:4] == ["## Deploy plan", "", head, ""]


@pytest.mark.parametrize(
    ("env", "notice"),
    [
        (
            MAIN_PUSH,
            "::notice title=No deploy environment is enabled::deploys are skipped. Create the"
            " environments (lightsail-staging, heroku-production, ...) with their settings and"
            " name them in the repository variable DEPLOY_ENVIRONMENTS. See docs/pipeline.md.\n",
        ),
        (
            {**MAIN_PUSH, "DEPLOY_ENVIRONMENTS": ONLY_PRODUCTION},
            "::notice title=Nothing to deploy::no staging environment is enabled in"
            " DEPLOY_ENVIRONMENTS\n",
        ),
        ({**PULL_REQUEST, "DEPLOY_ENVIRONMENTS": ONLY_PRODUCTION}, ""),  # not a deploying event
        ({**MAIN_PUSH, "DEPLOY_ENVIRONMENTS": ONLY_STAGING}, ""),
    ],
    ids=["fresh-copy", "tier-not-enabled", "no-deploy-event", "deploying"],
)
def test_the_log_notices_only_a_run_that_could_deploy_but_does_not(tmp_path, env, notice):
    code, _, _, stdout, _ = run(tmp_path, env)
    assert (code, stdout) == (0, notice)


# -- Variables the run leaves unset -------------------------------------------------------------


def test_without_any_variable_nothing_deploys(tmp_path):
    code, outputs, summary, stdout, stderr = run(tmp_path, {})
    assert (code, stderr) == (0, "")
    assert outputs == {"deploys": "[]", "tier": "", "version": ""}
    assert NOT_DEPLOYING + "none." in summary
    assert "No deploy environment is enabled" in stdout


@pytest.mark.parametrize(
    ("unset", "tier", "version", "expected"),
    [
        # A push of the default branch names its commit; without one the version still parses.
        ("GITHUB_SHA", "staging", "v0.0.0-main.unknown", ["heroku-staging"]),
        ("DEFAULT_BRANCH", "staging", "v0.0.0-main.0123456", ["heroku-staging"]),  # main
        ("GITHUB_REF", "", "", []),
    ],
)
def test_a_push_of_main_with_a_variable_unset(tmp_path, unset, tier, version, expected):
    env = {**MAIN_PUSH, "DEPLOY_ENVIRONMENTS": "heroku-staging"}
    del env[unset]
    code, outputs, _, _, stderr = run(tmp_path, env)
    assert (code, stderr) == (0, "")
    assert (outputs["tier"], outputs["version"]) == (tier, version)
    assert environments(outputs) == expected


def test_without_default_branch_only_main_deploys(tmp_path):
    env = {**MAIN_PUSH, "GITHUB_REF": "refs/heads/master", "DEPLOY_ENVIRONMENTS": "heroku-staging"}
    del env["DEFAULT_BRANCH"]
    _, outputs, _, _, _ = run(tmp_path, env)
    assert outputs["tier"] == ""
    _, outputs, _, _, _ = run(tmp_path, {**env, "DEFAULT_BRANCH": " master "})
    assert outputs["tier"] == "staging"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {k: v for k, v in TAG.items() if k != "GITHUB_REF_NAME"},
            "tag '' is not a release tag like v1.2.3",
        ),
        (
            {k: v for k, v in dispatch().items() if k != "DEPLOY_TIER"},
            "tier '' is not one of staging, production",
        ),
        (
            {k: v for k, v in dispatch().items() if k != "DEPLOY_TAG"},
            "tag '' is not a release tag like v1.2.3",
        ),
    ],
    ids=["tag-push-without-its-name", "dispatch-without-tier", "dispatch-without-tag"],
)
def test_a_deploying_event_without_its_tier_or_tag_is_refused(tmp_path, env, message):
    code, outputs, _, _, stderr = run(tmp_path, {**env, "DEPLOY_ENVIRONMENTS": EVERY_ENVIRONMENT})
    assert (code, outputs) == (2, {})
    assert stderr == f"plan-deploys: {message}\n"


def test_a_dispatch_without_requested_targets_deploys_every_enabled_one(tmp_path):
    env = {**dispatch("staging"), "DEPLOY_ENVIRONMENTS": EVERY_ENVIRONMENT}
    del env["REQUESTED_TARGETS"]
    _, outputs, _, _, _ = run(tmp_path, env)
    assert environments(outputs) == ["lightsail-staging", "appengine-staging", "heroku-staging"]


def test_a_push_ignores_requested_targets(tmp_path):
    # Only a dispatch asks for targets; a push deploys every environment enabled for its tier.
    env = {**TAG, "DEPLOY_ENVIRONMENTS": EVERY_ENVIRONMENT, "REQUESTED_TARGETS": "heroku"}
    _, outputs, _, _, _ = run(tmp_path, env)
    assert environments(outputs) == [
        "lightsail-production",
        "appengine-production",
        "heroku-production",
    ]


# -- Dispatch: redeploy a release to a tier ---------------------------------------------------


def test_dispatch_redeploys_a_release_to_the_chosen_tier_and_targets(tmp_path):
    env = {
        **dispatch("staging", "v2.0.0", " Heroku,lightsail "),
        "DEPLOY_ENVIRONMENTS": EVERY_ENVIRONMENT,
    }
    code, outputs, _, _, _ = run(tmp_path, env)
    assert code == 0
    assert environments(outputs) == ["lightsail-staging", "heroku-staging"]
    assert (outputs["tier"], outputs["version"]) == ("staging", "v2.0.0")


def test_dispatch_without_targets_redeploys_every_target_enabled_for_the_tier(tmp_path):
    env = {**dispatch("production", "v2.0.1"), "DEPLOY_ENVIRONMENTS": ONLY_PRODUCTION}
    _, outputs, _, _, _ = run(tmp_path, env)
    assert environments(outputs) == [
        "lightsail-production",
        "appengine-production",
        "heroku-production",
    ]


KNOWN_ENVIRONMENTS = (
    "lightsail-staging, lightsail-production, appengine-staging, appengine-production,"
    " heroku-staging, heroku-production"
)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {**dispatch(targets="azure,heroku fly"), "DEPLOY_ENVIRONMENTS": EVERY_ENVIRONMENT},
            "unknown target(s) azure, fly; known: lightsail, appengine, heroku",
        ),
        (
            {**dispatch(targets="heroku, lightsail"), "DEPLOY_ENVIRONMENTS": ONLY_STAGING},
            "requested target(s) not enabled for production: heroku, lightsail"
            " (add heroku-production, lightsail-production to DEPLOY_ENVIRONMENTS)",
        ),
        (
            {**dispatch("qa"), "DEPLOY_ENVIRONMENTS": EVERY_ENVIRONMENT},
            "tier 'qa' is not one of staging, production",
        ),
        ({**dispatch(tag="main")}, "tag 'main' is not a release tag like v1.2.3"),
        ({**dispatch(tag="")}, "tag '' is not a release tag like v1.2.3"),
        (
            {**TAG, "GITHUB_REF": "refs/tags/vnext", "GITHUB_REF_NAME": "vnext"},
            "tag 'vnext' is not a release tag like v1.2.3",
        ),
        (
            {**MAIN_PUSH, "DEPLOY_ENVIRONMENTS": "heroku-staging heroku-prod, aws-staging"},
            "DEPLOY_ENVIRONMENTS names unknown environment(s) aws-staging, heroku-prod;"
            f" known: {KNOWN_ENVIRONMENTS}",
        ),
    ],
    ids=[
        "unknown",
        "unconfigured",
        "bad-tier",
        "branch-as-tag",
        "empty-tag",
        "bad-pushed-tag",
        "typo-in-variable",
    ],
)
def test_bad_requests_fail_with_one_line_and_no_outputs(tmp_path, env, message):
    code, outputs, summary, stdout, stderr = run(tmp_path, env)
    assert code == 2
    assert (outputs, summary, stdout) == ({}, "", "")
    assert stderr == f"plan-deploys: {message}\n"


# -- The deploy job's own check, and the command line -----------------------------------------


def test_check_names_the_missing_setting_of_the_environment(tmp_path):
    env = {"DEPLOY_ENVIRONMENT": "heroku-production", "HEROKU_APP": "ml-app"}
    code, _, _, _, stderr = run(tmp_path, env, "--check", "heroku")
    assert code == 2
    assert stderr == (
        "plan-deploys: HEROKU_API_KEY is not set: add the secret to the environment"
        " heroku-production (or remove heroku-production from DEPLOY_ENVIRONMENTS)\n"
    )
    code, _, _, _, stderr = run(tmp_path, {**env, "HEROKU_API_KEY": "k"}, "--check", "heroku")
    assert (code, stderr) == (0, "")


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}, "LIGHTSAIL_SERVICE"),
        ({"AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "LIGHTSAIL_SERVICE": "  "}, "LIGHTSAIL_SERVICE"),
        ({"LIGHTSAIL_SERVICE": "ml"}, "AWS_ROLE_ARN"),
    ],
)
def test_check_names_a_missing_variable_as_a_variable(env, missing):
    environment = {"DEPLOY_ENVIRONMENT": "lightsail-staging"}
    code, stdout, stderr = call({**environment, **env}, "--check", "lightsail")
    assert (code, stdout) == (2, "")
    assert stderr == (
        f"plan-deploys: {missing} is not set: add the variable to the environment"
        " lightsail-staging (or remove lightsail-staging from DEPLOY_ENVIRONMENTS)\n"
    )


def test_check_without_deploy_environment_names_the_target():
    code, _, stderr = call({"HEROKU_API_KEY": "k"}, "--check", "heroku")
    assert code == 2
    assert stderr == (
        "plan-deploys: HEROKU_APP is not set: add the variable to the environment"
        " heroku (or remove heroku from DEPLOY_ENVIRONMENTS)\n"
    )


def test_check_refuses_an_unknown_target():
    assert call({}, "--check", "azure") == (2, "", "plan-deploys: unknown target 'azure'\n")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_help_and_plans_nothing(tmp_path, flag):
    code, outputs, summary, stdout, stderr = run(tmp_path, TAG, flag)
    assert (code, outputs, summary, stderr) == (0, {}, "", "")
    assert stdout.startswith("plan-deploys: decide which deploy environments")


@pytest.mark.parametrize(
    "args",
    [
        ["--plan"],
        ["--help", "--check"],
        ["--check"],
        ["--plan", "x"],  # two words, as --moving-tags takes
        ["--check", "heroku", "x"],  # three, as --released takes
        ["--moving-tags", "v1.2.3", "x"],
    ],
)
def test_unexpected_arguments_fail_with_one_line(tmp_path, args):
    code, outputs, summary, stdout, stderr = run(tmp_path, TAG, *args)
    assert (code, outputs, summary, stdout) == (2, {}, "", "")
    assert stderr == f"plan-deploys: unexpected argument(s) {' '.join(args)} (see --help)\n"


def test_without_github_files_it_prints_outputs_then_the_summary():
    code, stdout, stderr = call({**TAG, "DEPLOY_ENVIRONMENTS": "heroku-production"})
    assert (code, stderr) == (0, "")
    assert stdout.startswith(
        'deploys=[{"target":"heroku","tier":"production","environment":"heroku-production"}]\n'
        "tier=production\nversion=v1.2.3\n## Deploy plan\n"
    )
    assert stdout.endswith("docs/pipeline.md explains each setting.\n")


def test_the_script_runs_the_module():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**TAG, "DEPLOY_ENVIRONMENTS": "heroku-production"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "tier=production" in proc.stdout.splitlines()


# -- A release's recorded image, and the moving tags -----------------------------------------

NAME = "ghcr.io/owner/repo"
IMAGE = f"{NAME}@sha256:{'c' * 64}"


@pytest.mark.parametrize("attested", [True, False])
def test_released_reads_the_image_a_release_recorded(tmp_path, attested):
    (tmp_path / "image.json").write_text(json.dumps({"image": IMAGE, "attested": attested}))
    code, stdout, stderr = call({}, "--released", str(tmp_path / "image.json"), NAME)
    assert (code, stderr) == (0, "")
    assert stdout == f"image={IMAGE}\nattested={str(attested).lower()}\n"


@pytest.mark.parametrize(
    ("recorded", "message"),
    [
        ({"image": f"{NAME}:1.2.3", "attested": True}, f"names '{NAME}:1.2.3', not {NAME}@sha256"),
        ({"image": f"{NAME}@sha256:{'c' * 63}", "attested": True}, "not ghcr.io/owner/repo@sha256"),
        ({"image": f"ghcr.io/other/repo@sha256:{'c' * 64}", "attested": True}, "not ghcr.io/owner"),
        ({"image": f"x{IMAGE}", "attested": True}, "not ghcr.io/owner/repo@sha256:<digest>"),
        ({"image": f"{IMAGE}\nx", "attested": True}, "not ghcr.io/owner/repo@sha256:<digest>"),
        ({"image": 7, "attested": True}, "names 7, not"),
        ({"image": IMAGE, "attested": "yes"}, "attested is 'yes', not true or false"),
        ({"image": IMAGE}, 'image.json is not {"image": ..., "attested": ...}: \'attested\''),
        (["not", "an", "object"], "image.json is not {"),
        ("{", "image.json is not {"),
    ],
)
def test_released_refuses_an_image_json_that_does_not_name_this_image(tmp_path, recorded, message):
    text = recorded if isinstance(recorded, str) else json.dumps(recorded)
    (tmp_path / "image.json").write_text(text)
    code, stdout, stderr = call({}, "--released", str(tmp_path / "image.json"), NAME)
    assert (code, stdout) == (2, "")
    assert stderr.startswith("plan-deploys: ")
    assert message in stderr
    assert len(stderr.splitlines()) == 1


def test_released_names_a_missing_file(tmp_path):
    code, _, stderr = call({}, "--released", str(tmp_path / "absent.json"), NAME)
    assert code == 2
    assert "absent.json" in stderr


def releases(*tags):
    return json.dumps([{"tagName": tag} for tag in tags])


@pytest.mark.parametrize(
    ("version", "published", "moved"),
    [
        ("v1.2.3", [], "1.2 latest"),  # the first release
        ("v1.2.3", ["v1.2.3", "v1.2.2", "v1.1.0"], "1.2 latest"),  # its own release is listed
        ("v2.0.0", ["v1.10.0", "v1.9.9"], "2.0 latest"),  # compared as numbers, not text
        ("v1.10.0", ["v1.9.0", "v1.10.0"], "1.10 latest"),
        ("v1.2.4", ["v1.3.0", "v1.2.3"], "1.2"),  # a patch of an older line
        ("v1.2.3", ["v1.2.4", "v1.3.0"], ""),  # a re-run of an older release
        ("v1.2.3", ["v1.2.4"], ""),
        ("v1.3.0", ["v1.2.9", "v2.0.0"], "1.3"),
        ("v1.2.3", ["v1.3.0-rc.1", "nightly", "v1.3"], "1.2 latest"),  # not releases
        ("v1.2.3-rc.1", [], ""),  # a pre-release moves nothing
        ("v1.2", [], ""),
    ],
)
def test_moving_tags_go_to_the_newest_release_of_the_line_and_overall(version, published, moved):
    code, stdout, stderr = call({}, "--moving-tags", version, stdin=releases(*published))
    assert (code, stderr) == (0, "")
    assert stdout == f"tags={moved}\n"


@pytest.mark.parametrize("answer", ["", "gh: Not Found (HTTP 404)"])
def test_moving_tags_refuses_what_is_not_the_list_of_releases(answer):
    code, stdout, stderr = call({}, "--moving-tags", "v1.2.3", stdin=answer)
    assert (code, stdout) == (2, "")
    assert stderr.startswith("plan-deploys: the releases are not the JSON of gh release list: ")
    assert len(stderr.splitlines()) == 1


def test_moving_tags_compares_the_whole_version(monkeypatch):
    # 1.2.3 against 1.3.2 and 2.1.1: neither the minor nor the patch alone decides.
    assert plan_deploys.moving_tags("v1.3.2", [{"tagName": "v1.2.9"}]) == ["1.3", "latest"]
    assert plan_deploys.moving_tags("v1.2.9", [{"tagName": "v1.3.2"}]) == ["1.2"]
    assert plan_deploys.moving_tags("v2.1.1", [{"tagName": "v1.9.9"}]) == ["2.1", "latest"]
    assert plan_deploys.moving_tags("v1.2.3", [{"tagName": "v2.2.3"}]) == ["1.2"]
