"""The pipeline's invariants, read from .github/workflows/pipeline.yml.

No GitHub runner is reachable from here, so the workflow is checked statically: its job graph,
permissions, pins and conditions (evaluated for each kind of event), plus the same schema,
actionlint and zizmor checks CI runs.
"""

import os
import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.tools import run_tool

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PATH = ROOT / ".github" / "workflows" / "pipeline.yml"
DEPENDABOT_PATH = ROOT / ".github" / "dependabot.yml"
BIN = ROOT / ".venv" / "bin"

WORKFLOW = yaml.safe_load(WORKFLOW_PATH.read_text())
JOBS = WORKFLOW["jobs"]
TRIGGERS = WORKFLOW[True]  # YAML 1.1 reads the key `on` as a boolean

OIDC_ACTIONS = {"aws-actions/configure-aws-credentials", "google-github-actions/auth"}
PUSH_ACTIONS = {"docker/build-push-action"}


def plan_target_names():
    """The targets scripts/plan-deploys can emit (it has no .py suffix: run it as a file)."""
    return runpy.run_path(str(ROOT / "scripts" / "plan-deploys"))["TARGET_NAMES"]


def action(step):
    """`owner/repo` of a step's `uses:`, or None for a `run:` step."""
    uses = step.get("uses")
    return uses.split("@")[0] if uses else None


def steps_using(job, name):
    return [step for step in JOBS[job]["steps"] if action(step) == name]


# -- A small evaluator for the workflow's `if:` and concurrency expressions -----------------


def context(event, ref, targets="[]", run_id=1):
    """The parts of the GitHub expression context the conditions read, for one kind of run."""
    return {
        "github": SimpleNamespace(event_name=event, ref=ref, workflow="pipeline", run_id=run_id),
        "needs": SimpleNamespace(plan=SimpleNamespace(outputs=SimpleNamespace(targets=targets))),
        "startsWith": lambda text, prefix: text.startswith(prefix),
        "always": lambda: True,
        "cancelled": lambda: False,
    }


def evaluate(expression, ctx):
    """Evaluate a GitHub Actions expression (the subset this workflow uses) in `ctx`."""
    text = str(expression).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    text = re.sub(r"!(?!=)", " not ", text).replace("&&", " and ").replace("||", " or ")
    # Our own workflow file, evaluated with no builtins: not untrusted input.
    return eval(" ".join(text.split()), {"__builtins__": {}}, ctx)  # noqa: S307


def render(template, ctx):
    """Substitute every ${{ }} in a string, as the runner does for `concurrency.group`."""
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), ctx)), template)


TAG = ("push", "refs/tags/v1.2.3")
MAIN = ("push", "refs/heads/main")
PULL_REQUEST = ("pull_request", "refs/pull/7/merge")
DISPATCH = ("workflow_dispatch", "refs/heads/main")
NON_RELEASE_TAG = ("push", "refs/tags/nightly")


# -- Triggers and the job graph ---------------------------------------------------------------


def test_triggers():
    assert TRIGGERS["push"]["tags"] == ["v*"]
    assert TRIGGERS["push"]["branches"] == ["**"]  # every branch push, not only main
    assert "pull_request" in TRIGGERS
    inputs = TRIGGERS["workflow_dispatch"]["inputs"]
    assert inputs["tag"]["required"] is True
    assert inputs["targets"]["required"] is False


def test_job_graph():
    needs = {name: set(job.get("needs", [])) for name, job in JOBS.items()}
    assert needs["lint"] == needs["test"] == needs["plan"] == set()
    assert needs["image"] == {"lint", "test"}
    assert needs["deploy"] == {"image", "plan"}
    assert needs["release"] == {"image", "plan", "deploy"}
    assert needs["ci-ok"] == set(JOBS) - {"ci-ok"}  # the gate waits for every job


@pytest.mark.parametrize(
    ("run", "targets", "deploys"),
    [
        (TAG, '["heroku"]', True),
        (DISPATCH, '["lightsail","appengine"]', True),
        (TAG, "[]", False),  # a fresh copy: nothing configured, deploy is skipped, run is green
        (MAIN, '["heroku"]', False),
        (PULL_REQUEST, '["heroku"]', False),
        (NON_RELEASE_TAG, '["heroku"]', False),
    ],
)
def test_deploy_runs_only_for_v_tags_and_dispatch(run, targets, deploys):
    assert evaluate(JOBS["deploy"]["if"], context(*run, targets=targets)) is deploys


def test_deploy_is_a_matrix_over_the_plan_with_one_environment_and_queue_per_target():
    deploy = JOBS["deploy"]
    assert deploy["strategy"]["fail-fast"] is False
    assert deploy["strategy"]["matrix"]["target"] == "${{ fromJSON(needs.plan.outputs.targets) }}"
    assert JOBS["plan"]["outputs"]["targets"] == "${{ steps.plan.outputs.targets }}"
    assert deploy["environment"] == {
        "name": "${{ matrix.target }}",
        "url": "${{ steps.deploy.outputs.url }}",
    }
    assert "matrix.target" in deploy["concurrency"]["group"]
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_matrix_targets_match_the_deploy_scripts():
    names = plan_target_names()
    scripts = sorted(
        p.name for p in (ROOT / "deploy").iterdir() if p.is_file() and os.access(p, os.X_OK)
    )
    assert sorted(names) == scripts
    # Every target the workflow special-cases is one the plan can emit.
    named = set(re.findall(r"matrix\.target [!=]= '([a-z-]+)'", WORKFLOW_PATH.read_text()))
    assert named <= set(names)


def test_deploy_calls_the_target_script_with_values_from_env():
    (step,) = [s for s in JOBS["deploy"]["steps"] if s.get("id") == "deploy"]
    assert '"deploy/$TARGET" --image "$IMAGE" --version "$VERSION"' in step["run"]
    assert step["env"]["TARGET"] == "${{ matrix.target }}"
    assert step["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    assert step["env"]["VERSION"] == "${{ needs.plan.outputs.version }}"
    assert JOBS["image"]["outputs"]["image"] == "${{ steps.ref.outputs.image }}"


@pytest.mark.parametrize(
    ("target", "oidc_action"),
    [
        ("lightsail", "aws-actions/configure-aws-credentials"),
        ("appengine", "google-github-actions/auth"),
    ],
)
def test_each_cloud_authenticates_only_on_its_own_leg(target, oidc_action):
    (step,) = steps_using("deploy", oidc_action)
    assert step["if"] == f"matrix.target == '{target}'"
    assert "secrets." not in str(step)  # OIDC: no long-lived cloud keys


def test_only_the_heroku_leg_sees_the_heroku_key():
    (step,) = [s for s in JOBS["deploy"]["steps"] if s.get("id") == "deploy"]
    key = step["env"]["HEROKU_API_KEY"]
    assert key.startswith("${{ matrix.target == 'heroku' && secrets.HEROKU_API_KEY")


def test_ci_ok_is_a_gate_that_fails_on_failure_or_cancellation():
    gate = JOBS["ci-ok"]
    assert gate["if"] == "always()"
    (step,) = gate["steps"]
    assert action(step) == "re-actors/alls-green"
    assert step["with"]["jobs"] == "${{ toJSON(needs) }}"
    # The only jobs allowed to be skipped: neither runs on a branch push or a pull request.
    assert step["with"]["allowed-skips"] == "deploy, release"
    assert "allowed-failures" not in step["with"]


def release_context(run, image="success", plan="success", deploy="skipped"):
    ctx = context(*run)
    ctx["needs"] = SimpleNamespace(
        image=SimpleNamespace(result=image),
        plan=SimpleNamespace(result=plan),
        deploy=SimpleNamespace(result=deploy),
    )
    return ctx


@pytest.mark.parametrize(
    ("run", "results", "releases"),
    [
        (TAG, {}, True),  # a fresh copy: nothing to deploy, the release is still made
        (TAG, {"deploy": "success"}, True),
        (TAG, {"deploy": "failure"}, False),  # rolled back: no release announces it
        (TAG, {"image": "failure"}, False),
        (TAG, {"image": "skipped"}, False),  # lint or test failed
        (TAG, {"plan": "failure"}, False),  # deploy is skipped then too
        (MAIN, {}, False),
        (PULL_REQUEST, {}, False),
        (DISPATCH, {"deploy": "success"}, False),  # a redeploy of an existing release
        (NON_RELEASE_TAG, {}, False),
    ],
)
def test_release_runs_for_a_v_tag_once_built_and_deployed(run, results, releases):
    assert evaluate(JOBS["release"]["if"], release_context(run, **results)) is releases


def test_release_creates_a_github_release_with_generated_notes_for_the_pushed_tag():
    (step,) = JOBS["release"]["steps"]
    assert 'gh release create "$TAG" --verify-tag --generate-notes' in step["run"]
    assert step["env"]["TAG"] == "${{ github.ref_name }}"
    assert step["env"]["GH_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"  # noqa: S105
    assert step["env"]["GH_REPO"] == "${{ github.repository }}"  # no checkout needed
    assert 'gh release view "$TAG"' in step["run"]  # a re-run does not fail on the release


# -- Pull requests never push or deploy -------------------------------------------------------


def test_pull_requests_never_push_the_image():
    pushing = [
        s
        for s in JOBS["image"]["steps"]
        if s.get("with", {}).get("push") or action(s) == "docker/login-action"
    ]
    assert len(pushing) == 2  # the login and the push
    for step in pushing:
        assert evaluate(step["if"], context(*PULL_REQUEST)) is False
        assert evaluate(step["if"], context(*MAIN)) is True


def test_concurrency_cancels_superseded_pull_request_runs_only():
    group = WORKFLOW["concurrency"]["group"]
    cancel = WORKFLOW["concurrency"]["cancel-in-progress"]
    pr_runs = [context(*PULL_REQUEST, run_id=n) for n in (1, 2)]
    assert render(group, pr_runs[0]) == render(group, pr_runs[1])
    assert evaluate(cancel, pr_runs[1]) is True
    for run in (TAG, MAIN, DISPATCH):
        first, second = context(*run, run_id=1), context(*run, run_id=2)
        assert render(group, first) != render(group, second)  # never queued behind or cancelled
        assert evaluate(cancel, second) is False


# -- The image job ----------------------------------------------------------------------------


def test_image_is_built_once_smoke_tested_then_pushed_without_attestations():
    steps = JOBS["image"]["steps"]
    builds = [s for s in steps if action(s) == "docker/build-push-action"]
    assert [bool(b["with"].get("load")) for b in builds] == [True, False]
    assert [bool(b["with"].get("push")) for b in builds] == [False, True]
    for build in builds:
        assert build["with"]["platforms"] == "linux/amd64"
        assert build["with"]["provenance"] is False  # plain v2 manifest for Heroku and Lightsail
        assert build["with"]["sbom"] is False
        assert build["with"]["cache-from"] == "type=gha"
        assert build["with"]["tags"] == "${{ steps.meta.outputs.tags }}"
    smoke = next(i for i, s in enumerate(steps) if "make container-test" in s.get("run", ""))
    assert steps.index(builds[0]) < smoke < steps.index(builds[1])
    assert 'IMAGE="$IMAGE"' in steps[smoke]["run"]
    assert JOBS["image"]["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"


def test_image_tags_follow_the_metadata_scheme():
    (meta,) = steps_using("image", "docker/metadata-action")
    assert meta["with"]["images"] == "ghcr.io/${{ github.repository }}"
    tags = [re.sub(r",(enable|value)=.*", "", line) for line in meta["with"]["tags"].splitlines()]
    assert tags == [
        "type=sha",
        "type=ref,event=branch",
        "type=ref,event=pr",
        "type=semver,pattern={{version}}",
        "type=semver,pattern={{major}}.{{minor}}",
    ]
    # A dispatch builds the requested tag, so its version comes from the input.
    assert meta["with"]["tags"].count("value=${{ inputs.tag }}") == 2


def test_the_image_ships_the_model_the_tests_ran_against():
    (upload,) = [
        s for s in steps_using("test", "actions/upload-artifact") if s["with"]["name"] == "model"
    ]
    (download,) = steps_using("image", "actions/download-artifact")
    assert download["with"] == {"name": "model", "path": "models"}
    assert upload["with"]["path"] == "models/"
    assert "IMAGE_PYTHON" in upload["if"]
    assert WORKFLOW["env"]["IMAGE_PYTHON"] == "3.13"


def test_test_job_runs_every_supported_python_and_reports_coverage():
    test = JOBS["test"]
    assert test["strategy"]["matrix"]["python-version"] == ["3.11", "3.12", "3.13"]
    runs = "\n".join(s.get("run", "") for s in test["steps"])
    assert "make test" in runs
    assert "coverage report --format=markdown" in runs
    assert '>> "$GITHUB_STEP_SUMMARY"' in runs
    assert 'CHROMIUM_PATH=$chromium_path" >> "$GITHUB_ENV"' in runs  # read by the browser tests
    uploads = [s["with"]["path"] for s in steps_using("test", "actions/upload-artifact")]
    assert "coverage.xml" in uploads


def test_every_job_runs_make_targets_that_exist():
    makefile = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    used = set()
    for name in ("lint", "test", "image", "deploy"):
        for step in JOBS[name]["steps"]:
            used |= set(re.findall(r"\bmake ([a-z-]+)", step.get("run", "")))
    assert used == {"lint", "audit", "test", "env", "container-test"}
    assert used <= defined


# -- Hygiene ----------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_version():
    lines = [line.strip() for line in WORKFLOW_PATH.read_text().splitlines()]
    uses = [line for line in lines if re.match(r"(- )?uses:", line)]
    assert len(uses) >= 10
    for line in uses:
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+){2}", line), (
            line
        )


def test_checkout_never_persists_credentials():
    checkouts = [s for job in JOBS for s in steps_using(job, "actions/checkout")]
    assert len(checkouts) == 5
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_no_expression_inside_a_run_script():
    runs = [s["run"] for job in JOBS.values() for s in job.get("steps", []) if "run" in s]
    assert runs
    assert not [run for run in runs if "${{" in run]


def used_permissions(name):
    """The permissions a job's steps need, derived from what they do."""
    steps = JOBS[name]["steps"]
    used = {}
    if steps_using(name, "actions/checkout"):
        used["contents"] = "read"
    if any(action(s) in OIDC_ACTIONS for s in steps):
        used["id-token"] = "write"
    logins = [
        s for s in steps_using(name, "docker/login-action") if s["with"]["registry"] == "ghcr.io"
    ]
    pushes = [s for s in steps if action(s) in PUSH_ACTIONS and s["with"].get("push")]
    if logins:
        used["packages"] = "write" if pushes else "read"
    if any("gh release create" in s.get("run", "") for s in steps):
        used["contents"] = "write"
    return used


def test_no_job_holds_a_permission_it_does_not_use():
    assert WORKFLOW["permissions"] == {}
    for name, job in JOBS.items():
        assert job["permissions"] == used_permissions(name), name
    # The derivation above is not vacuous: the expected grants, spelled out.
    assert JOBS["image"]["permissions"] == {"contents": "read", "packages": "write"}
    assert JOBS["deploy"]["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "packages": "read",
    }
    assert JOBS["ci-ok"]["permissions"] == {}
    assert JOBS["release"]["permissions"] == {"contents": "write"}  # the only write to the repo


def test_secrets_only_reach_the_jobs_that_need_them():
    for name, job in JOBS.items():
        secrets = set(re.findall(r"secrets\.(\w+)", str(job)))
        expected = {
            "image": {"GITHUB_TOKEN"},
            "plan": {"HEROKU_API_KEY"},  # as a boolean: is it set?
            "deploy": {"GITHUB_TOKEN", "HEROKU_API_KEY"},
            "release": {"GITHUB_TOKEN"},
        }.get(name, set())
        assert secrets == expected, name


def test_every_job_has_a_timeout():
    assert all(0 < job["timeout-minutes"] <= 45 for job in JOBS.values())


def test_dependabot_updates_python_actions_and_docker_weekly_in_groups():
    config = yaml.safe_load(DEPENDABOT_PATH.read_text())
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"uv", "github-actions", "docker"}
    for update in updates.values():
        assert update["schedule"]["interval"] == "weekly"
        assert update["groups"]
        assert update["cooldown"]["default-days"] >= 1


# -- The same tools CI runs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-workflows", WORKFLOW_PATH), ("vendor.dependabot", DEPENDABOT_PATH)],
)
def test_files_match_their_published_schemas(schema, path):
    proc = run_tool("check-jsonschema", "--builtin-schema", schema, str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_reports_nothing():
    proc = run_tool("actionlint", f"-shellcheck={BIN / 'shellcheck'}", str(WORKFLOW_PATH))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_reports_nothing():
    proc = run_tool("zizmor", "--offline", "--format=plain", ".github")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout
