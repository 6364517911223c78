"""The pipeline's invariants, read from .github/workflows/pipeline.yml.

No GitHub runner is reachable from here, so the workflow is checked statically: its job graph,
permissions, pins and conditions (evaluated for each kind of event), plus the same schema,
actionlint and zizmor checks CI runs.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from scripts.plan_deploys import TARGET_NAMES
from tests.tools import run_tool

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PATH = ROOT / ".github" / "workflows" / "pipeline.yml"
DEPENDABOT_PATH = ROOT / ".github" / "dependabot.yml"
BIN = ROOT / ".venv" / "bin"

WORKFLOW = yaml.safe_load(WORKFLOW_PATH.read_text())
JOBS = WORKFLOW["jobs"]
TRIGGERS = WORKFLOW[True]  # YAML 1.1 reads the key `on` as a boolean

OIDC_ACTIONS = {"aws-actions/configure-aws-credentials", "google-github-actions/auth"}


def action(step):
    """`owner/repo` of a step's `uses:`, or None for a `run:` step."""
    uses = step.get("uses")
    return uses.split("@")[0] if uses else None


def steps_using(job, name):
    return [step for step in JOBS[job]["steps"] if action(step) == name]


# -- A small evaluator for the workflow's expressions ------------------------------------------


def ns(**fields):
    return SimpleNamespace(**fields)


def context(event, ref, *, run_id=1, private=False, needs=None, steps=None, matrix=None):
    """The parts of the GitHub expression context the workflow reads, for one kind of run."""
    return {
        "github": ns(
            event_name=event,
            ref=ref,
            ref_name=ref.split("/", 2)[-1],
            workflow="pipeline",
            run_id=run_id,
            event=ns(repository=ns(default_branch="main", private=private)),
        ),
        "needs": needs or ns(),
        "steps": steps or ns(),
        "matrix": matrix or ns(),
        "env": ns(PUSHES=None),
        "startsWith": lambda text, prefix: text.startswith(prefix),
        "contains": lambda text, part: part in text,
        "format": lambda template, *args: template.format(*args),
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
    """Substitute every ${{ }} in a string, as the runner does."""
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), ctx)), template)


def truthy(value):
    """A job output or env value as the runner renders it ("true"/"false")."""
    return str(value).lower() == "true"


MAIN = ("push", "refs/heads/main")
BRANCH = ("push", "refs/heads/feature/x")
PULL_REQUEST = ("pull_request", "refs/pull/7/merge")
TAG = ("push", "refs/tags/v1.2.3")
RC_TAG = ("push", "refs/tags/v1.2.3-rc.1")
DISPATCH = ("workflow_dispatch", "refs/heads/main")
NON_RELEASE_TAG = ("push", "refs/tags/nightly")
SHA = "0123456789abcdef0123456789abcdef01234567"
EVERY_ENVIRONMENT = (
    "lightsail-staging lightsail-production appengine-staging appengine-production"
    " heroku-staging heroku-production"
)


def plan(run, environments=EVERY_ENVIRONMENT, tier="staging", tag="v1.2.3", image=""):
    """scripts/plan-deploys' outputs for `run`, with the env the plan step gives it; `image`
    is what the release step outputs (a released tag's recorded image, else nothing)."""
    (step,) = [s for s in JOBS["plan"]["steps"] if s.get("id") == "plan"]
    ctx = context(*run)
    ctx["vars"] = ns(DEPLOY_ENVIRONMENTS=environments)
    ctx["inputs"] = (
        ns(tag=tag, tier=tier, targets="")
        if run[0] == "workflow_dispatch"
        else ns(tag="", tier="", targets="")
    )
    env = {name: render(value, ctx) for name, value in step["env"].items()}
    github = ctx["github"]
    env |= {
        "GITHUB_EVENT_NAME": github.event_name,
        "GITHUB_REF": github.ref,
        "GITHUB_REF_NAME": github.ref_name,
        "GITHUB_SHA": SHA,
        "PATH": os.environ["PATH"],
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plan-deploys")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = proc.stdout.split("## Deploy plan")[0].splitlines()
    outputs = dict(line.split("=", 1) for line in lines if "=" in line and "::" not in line)
    return ns(
        deploys=outputs["deploys"],
        tier=outputs["tier"],
        version=outputs["version"],
        image=image,
        attested="true" if image else "",
    )


def image_job(run):
    """What the image job does for `run`: (pushes?, the tags metadata-action computes)."""
    ctx = context(*run)
    pushes = truthy(evaluate(JOBS["image"]["env"]["PUSHES"], ctx))
    (meta,) = steps_using("image", "docker/metadata-action")
    github = ctx["github"]
    is_default_branch = github.ref == "refs/heads/main"
    version = github.ref_name[1:] if github.ref.startswith("refs/tags/v") else None
    tags = []
    for line in meta["with"]["tags"].splitlines():
        # type=...,key=value,... where a value may hold commas inside ${{ }}.
        kind, *parts = re.split(r",(?=[a-z-]+=)", line)
        options = dict(part.split("=", 1) for part in parts)
        enable = options.pop("enable", "true")
        enable = {"{{is_default_branch}}": str(is_default_branch)}.get(enable, enable)
        if not truthy(render(enable, ctx)):
            continue
        # What each type yields for the event, per metadata-action's README.
        if kind == "type=sha":
            tags.append(f"sha-{SHA[:7]}")
        elif (
            kind == "type=ref"
            and options["event"] == "branch"
            and github.ref.startswith("refs/heads/")
        ):
            tags.append(github.ref_name)
        elif kind == "type=semver" and version:
            major, minor, _ = version.split("-")[0].split(".")
            pattern = options["pattern"]
            tags.append(
                pattern.replace("{{version}}", version)
                .replace("{{major}}", major)
                .replace("{{minor}}", minor)
            )
    (latest,) = [line for line in meta["with"]["flavor"].splitlines() if line.startswith("latest=")]
    if truthy(render(latest.removeprefix("latest="), ctx)):
        tags.append("latest")
    return pushes, tags


def runs(job, run, **needs):
    """Whether `job` runs for `run`, given the results/outputs of the jobs it needs."""
    condition = JOBS[job].get("if")
    if condition is None:
        return True
    return evaluate(condition, context(*run, needs=ns(**needs))) is True


# -- Triggers and the job graph ---------------------------------------------------------------


def test_triggers():
    assert TRIGGERS["push"]["tags"] == ["v*"]
    assert TRIGGERS["push"]["branches"] == ["**"]  # every branch is built and tested
    assert "pull_request" in TRIGGERS
    inputs = TRIGGERS["workflow_dispatch"]["inputs"]
    assert inputs["tag"]["required"] is True
    assert inputs["tier"]["options"] == ["staging", "production"]
    assert inputs["targets"]["required"] is False


def test_job_graph():
    needs = {name: set(job.get("needs", [])) for name, job in JOBS.items()}
    assert needs["lint"] == needs["test"] == needs["plan"] == set()
    assert needs["image"] == {"lint", "test", "plan"}
    assert needs["deploy"] == {"image", "plan"}
    assert needs["release"] == {"image", "plan", "deploy"}
    assert needs["tags"] == {"image", "plan", "release"}
    assert needs["ci-ok"] == set(JOBS) - {"ci-ok"}  # the gate waits for every job


# -- Every event: which jobs run, which tier, which tags --------------------------------------

OK = ns(result="success")
NOT_RELEASED = ns(result="success", outputs=ns(image="", attested=""))


@pytest.mark.parametrize(
    ("run", "pushes", "tags", "tier", "environments", "releases"),
    [
        (MAIN, True, ["sha-0123456", "main"], "staging", ["lightsail-staging"], False),
        (BRANCH, False, [], "", [], False),
        (PULL_REQUEST, False, [], "", [], False),
        # 1.2 and latest move in the tags job, after production took the release.
        (TAG, True, ["1.2.3"], "production", ["lightsail-production"], True),
        (RC_TAG, True, ["1.2.3-rc.1"], "staging", ["lightsail-staging"], True),
    ],
    ids=["main", "other-branch", "pull-request", "release-tag", "pre-release-tag"],
)
def test_each_push_or_pull_request(run, pushes, tags, tier, environments, releases):
    assert runs("lint", run)
    assert runs("test", run)
    assert image_job(run) == (pushes, tags)
    planned = plan(run, environments="lightsail-staging lightsail-production")
    assert runs("image", run, plan=ns(result="success", outputs=planned))
    assert planned.tier == tier
    deploys = json.loads(planned.deploys)
    assert [d["environment"] for d in deploys] == environments
    image = ns(result="success", outputs=ns(image="i", attested="true"))
    deploys_run = runs("deploy", run, image=image, plan=ns(result="success", outputs=planned))
    assert deploys_run is bool(environments)
    deploy = ns(result="success" if environments else "skipped")
    released = runs("release", run, image=image, plan=NOT_RELEASED, deploy=deploy)
    assert released is releases


def test_a_dispatch_redeploys_without_building():
    for job in ("lint", "test"):
        assert not runs(job, DISPATCH)
    planned = plan(DISPATCH, tier="production", tag="v1.2.3")
    assert [d["environment"] for d in json.loads(planned.deploys)] == [
        "lightsail-production",
        "appengine-production",
        "heroku-production",
    ]
    skipped = ns(result="skipped", outputs=ns(image="", attested=""))
    recorded = plan(DISPATCH, tier="production", image="ghcr.io/o/r@sha256:old")
    assert not runs("image", DISPATCH, plan=ns(result="success", outputs=recorded))
    assert runs("deploy", DISPATCH, image=skipped, plan=ns(result="success", outputs=recorded))
    # A push whose image job was skipped (lint or tests failed) deploys nothing.
    assert not runs("deploy", MAIN, image=skipped, plan=ns(result="success", outputs=planned))
    assert not runs("release", DISPATCH, image=skipped, plan=OK, deploy=OK)


def test_a_fresh_copy_deploys_nothing_and_still_releases():
    image = ns(result="success", outputs=ns(image="i", attested="true"))
    for run in (MAIN, TAG, RC_TAG):
        planned = plan(run, environments="")
        assert planned.deploys == "[]"
        assert not runs("deploy", run, image=image, plan=ns(result="success", outputs=planned))
    skipped = ns(result="skipped")
    assert runs("release", TAG, image=image, plan=NOT_RELEASED, deploy=skipped)


@pytest.mark.parametrize(
    ("results", "releases"),
    [
        ({"deploy": "success"}, True),
        ({"deploy": "failure"}, False),  # rolled back: no release announces it
        ({"deploy": "cancelled"}, False),  # superseded by a newer pending deploy
        ({"image": "failure"}, False),
        ({"image": "skipped"}, False),  # lint or test failed
        ({"plan": "failure"}, False),
    ],
)
def test_release_waits_for_the_image_and_the_deploys(results, releases):
    needs = {name: ns(result=results.get(name, "success")) for name in ("image", "plan", "deploy")}
    needs["plan"].outputs = NOT_RELEASED.outputs
    assert runs("release", TAG, **needs) is releases
    assert not runs("release", NON_RELEASE_TAG, image=OK, plan=NOT_RELEASED, deploy=OK)


def test_deploy_matrix_and_environments_match_the_plan():
    deploy = JOBS["deploy"]
    assert deploy["strategy"]["fail-fast"] is False
    assert deploy["strategy"]["matrix"] == {
        "include": "${{ fromJSON(needs.plan.outputs.deploys) }}"
    }
    assert JOBS["plan"]["outputs"]["deploys"] == "${{ steps.plan.outputs.deploys }}"
    groups = set()
    for run in (MAIN, TAG):
        for entry in json.loads(plan(run).deploys):
            ctx = context(*run, matrix=ns(**entry))
            # The job runs in the environment plan-deploys named, queued per target and tier.
            assert render(deploy["environment"]["name"], ctx) == entry["environment"]
            groups.add(render(deploy["concurrency"]["group"], ctx))
    assert len(groups) == 6
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy["timeout-minutes"] == 45


def test_plan_reads_one_repository_variable_and_the_dispatch_inputs():
    (step,) = [s for s in JOBS["plan"]["steps"] if s.get("id") == "plan"]
    assert step["env"] == {
        "DEPLOY_ENVIRONMENTS": "${{ vars.DEPLOY_ENVIRONMENTS }}",
        "DEFAULT_BRANCH": "${{ github.event.repository.default_branch }}",
        "DEPLOY_TAG": "${{ inputs.tag }}",
        "DEPLOY_TIER": "${{ inputs.tier }}",
        "REQUESTED_TARGETS": "${{ inputs.targets }}",
    }


def test_matrix_targets_match_the_deploy_scripts():
    names = TARGET_NAMES
    scripts = sorted(
        p.name for p in (ROOT / "deploy").iterdir() if p.is_file() and os.access(p, os.X_OK)
    )
    assert sorted(names) == scripts
    # Every target the workflow special-cases is one the plan can emit.
    named = set(re.findall(r"matrix\.target [!=]= '([a-z-]+)'", WORKFLOW_PATH.read_text()))
    assert named <= set(names)
    assert named


def test_deploy_calls_the_target_script_with_values_from_env():
    (step,) = [s for s in JOBS["deploy"]["steps"] if s.get("id") == "deploy"]
    # exec: the runner's SIGINT/SIGTERM (cancel, timeout) reach the script, which restores.
    assert 'exec "deploy/$TARGET" --image "$IMAGE" --version "$VERSION"' in step["run"]
    assert step["env"]["TARGET"] == "${{ matrix.target }}"
    assert step["env"]["DEPLOY_TIER"] == "${{ matrix.tier }}"
    assert step["env"]["VERSION"] == "${{ needs.plan.outputs.version }}"
    image = JOBS["deploy"]["env"]["IMAGE"]
    # A push deploys the image its own run pushed; a dispatch, the one the release recorded.
    built = ns(outputs=ns(image="ghcr.io/o/r@sha256:new"))
    none = ns(outputs=ns(image=""))
    assert evaluate(image, context(*MAIN, needs=ns(image=built, plan=none))) == (
        "ghcr.io/o/r@sha256:new"
    )
    released = ns(outputs=ns(image="ghcr.io/o/r@sha256:old"))
    assert evaluate(image, context(*DISPATCH, needs=ns(image=none, plan=released))) == (
        "ghcr.io/o/r@sha256:old"
    )
    assert JOBS["image"]["outputs"]["image"] == "${{ steps.push.outputs.image }}"


def test_every_deploy_verifies_the_attestation_before_deploying(tmp_path):
    steps = JOBS["deploy"]["steps"]
    (verify,) = [s for s in steps if "gh attestation verify" in s.get("run", "")]
    assert 'gh attestation verify "oci://$IMAGE" --repo "$REPOSITORY"' in verify["run"]
    assert "if" not in verify  # on every leg
    deploy = next(i for i, s in enumerate(steps) if s.get("id") == "deploy")
    assert steps.index(verify) < deploy
    # Verified unless the repository is private and the image job could not attest.
    script = verify["run"]
    for attested, private, verifies in [
        ("true", "false", True),
        ("false", "false", True),  # a public repository always attests: never skip
        ("true", "true", True),
        ("false", "true", False),
    ]:
        proc = subprocess.run(
            ["bash", "-c", script],
            env={
                "PATH": f"{fake_gh(tmp_path)}:{os.environ['PATH']}",
                "ATTESTED": attested,
                "PRIVATE": private,
                "IMAGE": "ghcr.io/o/r@sha256:abc",
                "REPOSITORY": "O/R",
            },
            capture_output=True,
            text=True,
            check=True,
        )
        assert ("gh attestation verify oci://ghcr.io/o/r@sha256:abc --repo O/R" in proc.stdout) is (
            verifies
        )
        assert ("::notice" in proc.stdout) is (not verifies)


def fake_gh(directory):
    """`directory`, holding a `gh` that prints its command line."""
    path = directory / "gh"
    path.write_text('#!/bin/sh\necho "gh $*"\n')
    path.chmod(0o755)
    return path.parent


def test_attestation_is_made_for_the_pushed_digest_and_kept_out_of_the_registry():
    (attest,) = steps_using("image", "actions/attest-build-provenance")
    assert attest["with"] == {
        "subject-name": "${{ steps.push.outputs.name }}",
        "subject-digest": "${{ steps.push.outputs.digest }}",
        "push-to-registry": False,
    }
    # Only a private repository may go on without one (no GitHub Enterprise Cloud).
    assert attest["continue-on-error"] == "${{ github.event.repository.private }}"
    assert JOBS["image"]["outputs"]["attested"] == "${{ steps.attest.outcome == 'success' }}"


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


def test_app_engine_ships_the_files_of_the_tested_image():
    (step,) = [s for s in JOBS["deploy"]["steps"] if "docker create" in s.get("run", "")]
    assert step["if"] == "matrix.target == 'appengine'"
    assert 'docker cp "$container:/app/." .' in step["run"]
    assert not steps_using("deploy", "actions/download-artifact")  # not a second copy


def test_only_the_heroku_legs_see_the_heroku_key():
    for step in JOBS["deploy"]["steps"]:
        key = step.get("env", {}).get("HEROKU_API_KEY")
        if key:
            assert key.startswith("${{ matrix.target == 'heroku' && secrets.HEROKU_API_KEY")


def test_only_the_deploy_step_gets_the_metrics_token_of_its_environment():
    given = [s for s in JOBS["deploy"]["steps"] if "METRICS_TOKEN" in str(s)]
    assert [step.get("id") for step in given] == ["deploy"]
    assert given[0]["env"]["METRICS_TOKEN"] == "${{ secrets.METRICS_TOKEN }}"  # noqa: S105
    assert "METRICS_TOKEN" not in given[0]["run"]  # the scripts read it from the environment


def test_ci_ok_is_a_gate_that_fails_on_failure_or_cancellation():
    gate = JOBS["ci-ok"]
    assert gate["if"] == "always()"
    (step,) = gate["steps"]
    assert action(step) == "re-actors/alls-green"
    assert step["with"]["jobs"] == "${{ toJSON(needs) }}"
    skips = step["with"]["allowed-skips"]
    built = ns(plan=NOT_RELEASED)
    assert evaluate(skips, context(*MAIN, needs=built)) == "deploy, release, tags"
    assert evaluate(skips, context(*DISPATCH, needs=built)) == (
        "lint, test, image, deploy, release, tags"
    )
    recorded = ns(plan=ns(outputs=ns(image="ghcr.io/o/r@sha256:old")))
    assert evaluate(skips, context(*TAG, needs=recorded)) == "image, deploy, release, tags"
    assert "allowed-failures" not in step["with"]


def test_release_records_the_image_digest_for_redeploys():
    step = JOBS["release"]["steps"][0]
    assert (
        'gh release create "$TAG" "$RUNNER_TEMP/image.json" --verify-tag --generate-notes'
        in (step["run"])
    )
    assert '[[ "$TAG" == *-* ]]' in step["run"]  # pre-release
    assert step["env"]["TAG"] == "${{ github.ref_name }}"
    assert step["env"]["IMAGE"] == "${{ needs.image.outputs.image || needs.plan.outputs.image }}"
    assert step["env"]["GH_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"  # noqa: S105
    assert 'gh release view "$TAG"' in step["run"]  # a re-run does not fail on the release
    (read,) = [s for s in JOBS["plan"]["steps"] if s.get("id") == "released"]
    assert 'gh release download "$TAG" --pattern image.json' in read["run"]


# -- Concurrency ------------------------------------------------------------------------------


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


def test_the_tested_image_is_the_pushed_image():
    steps = JOBS["image"]["steps"]
    (build,) = steps_using("image", "docker/build-push-action")  # built once
    assert build["with"]["load"] is True
    assert "push" not in build["with"]
    assert build["with"]["platforms"] == "linux/amd64"
    assert build["with"]["provenance"] is False  # plain v2 manifest for Heroku and Lightsail
    assert build["with"]["sbom"] is False
    smoke = next(s for s in steps if "make container-test" in s.get("run", ""))
    assert smoke["env"]["IMAGE"] == "${{ steps.build.outputs.imageid }}"
    push = next(s for s in steps if s.get("id") == "push")
    assert 'scripts/push-tested-image "$TESTED" "${tags[@]}"' in push["run"]
    assert push["env"]["TESTED"] == "${{ steps.build.outputs.imageid }}"
    (attest,) = steps_using("image", "actions/attest-build-provenance")
    assert steps.index(build) < steps.index(smoke) < steps.index(push) < steps.index(attest)
    for step in (push, attest, *steps_using("image", "docker/login-action")):
        assert step["if"] == "env.PUSHES == 'true'"


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
    runs_ = "\n".join(s.get("run", "") for s in test["steps"])
    assert "make test" in runs_
    assert "coverage report --format=markdown" in runs_
    assert '>> "$GITHUB_STEP_SUMMARY"' in runs_
    assert 'CHROMIUM_PATH=$chromium_path" >> "$GITHUB_ENV"' in runs_  # read by the browser tests
    uploads = [s["with"]["path"] for s in steps_using("test", "actions/upload-artifact")]
    assert "coverage.xml" in uploads


def test_every_job_runs_make_targets_that_exist():
    makefile = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    used = set()
    for name in ("lint", "test", "image", "deploy"):
        for step in JOBS[name]["steps"]:
            used |= set(re.findall(r"\bmake ([a-z-]+)", step.get("run", "")))
    assert used == {"lint", "audit", "test", "env", "container-test", "curves"}
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
    assert len(checkouts) == 6
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
    if steps_using(name, "actions/attest-build-provenance"):
        used |= {"id-token": "write", "attestations": "write"}
    if any("gh attestation verify" in s.get("run", "") for s in steps):
        used["attestations"] = "read"
    logins = [
        s for s in steps_using(name, "docker/login-action") if s["with"]["registry"] == "ghcr.io"
    ]
    pushes = [s for s in steps if "scripts/push-tested-image" in s.get("run", "")]
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
    assert JOBS["image"]["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    assert JOBS["deploy"]["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "packages": "read",
        "attestations": "read",
    }
    assert JOBS["ci-ok"]["permissions"] == {}
    assert JOBS["release"]["permissions"] == {"contents": "write"}  # the only write to the repo


def test_secrets_only_reach_the_jobs_that_need_them():
    for name, job in JOBS.items():
        secrets = set(re.findall(r"secrets\.(\w+)", str(job)))
        expected = {
            "image": {"GITHUB_TOKEN"},
            "plan": {"GITHUB_TOKEN"},  # reads a release's image.json
            "deploy": {"GITHUB_TOKEN", "HEROKU_API_KEY", "METRICS_TOKEN"},
            "release": {"GITHUB_TOKEN"},
            "tags": {"GITHUB_TOKEN"},
        }.get(name, set())
        assert secrets == expected, name


def test_the_heroku_key_lives_only_in_the_heroku_environments():
    # Only the deploy job names an environment, so only it can read environment secrets.
    assert [name for name, job in JOBS.items() if "environment" in job] == ["deploy"]
    assert "secrets-outside-env" not in WORKFLOW_PATH.read_text()


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


# -- The model quality gate (docs/model.md) ---------------------------------------------------


def model_gate_step():
    (step,) = [
        s for s in JOBS["test"]["steps"] if s.get("name") == "Model summary and quality gate"
    ]
    return step


def gate_context(run, labels=(), accepted_tag=""):
    ctx = context(*run)
    github = ctx["github"]
    github.ref_type = "tag" if github.ref.startswith("refs/tags/") else "branch"
    # `labels.*.name` (an object filter) as the list of names it yields.
    github.event.pull_request = ns(label_names=list(labels))
    ctx["vars"] = ns(MODEL_TOLERANCE="", ACCEPT_MODEL_REGRESSION_TAG=accepted_tag)
    return ctx


def gate_value(expression, ctx):
    return evaluate(str(expression).replace("labels.*.name", "label_names"), ctx)


@pytest.mark.parametrize(
    ("run", "gated"),
    [(PULL_REQUEST, True), (TAG, True), (RC_TAG, True), (MAIN, False), (BRANCH, False)],
)
def test_the_model_gate_fails_pull_requests_and_tags_and_only_reports_on_branches(run, gated):
    step = model_gate_step()
    assert step["run"] == "scripts/model-summary models/model.json"
    assert gate_value(step["continue-on-error"], gate_context(run)) is not gated


@pytest.mark.parametrize(
    ("run", "labels", "accepted_tag", "accepted"),
    [
        (PULL_REQUEST, ["accept-model-regression"], "", True),
        (PULL_REQUEST, ["documentation"], "", False),
        (PULL_REQUEST, [], "v1.2.3", False),  # the tag variable never accepts a pull request
        (TAG, [], "v1.2.3", True),
        (TAG, [], "v1.2.2", False),
        (RC_TAG, [], "v1.2.3", False),
        (MAIN, [], "", False),
    ],
)
def test_a_model_regression_is_accepted_only_by_label_or_for_the_named_tag(
    run, labels, accepted_tag, accepted
):
    ctx = gate_context(run, labels, accepted_tag)
    assert gate_value(model_gate_step()["env"]["ACCEPT_MODEL_REGRESSION"], ctx) is accepted


def test_labelling_a_pull_request_starts_a_run_the_label_reaches():
    assert {"labeled", "unlabeled"} <= set(TRIGGERS["pull_request"]["types"])


def test_the_release_carries_the_model_card_the_next_comparison_reads():
    steps = JOBS["release"]["steps"]
    (download,) = steps_using("release", "actions/download-artifact")
    assert download["with"] == {"name": "model", "path": "models"}
    (attach,) = [
        s for s in steps if "gh release upload" in s.get("run", "") and "models/" in s["run"]
    ]
    assert steps.index(download) < steps.index(attach)
    assert "models/model.json" in attach["run"].split()
    # scripts/model-summary downloads exactly this asset name from the latest release.
    assert "--pattern model.json" in (ROOT / "scripts" / "model-summary").read_text()


# -- Released tags: the recorded image, never a rebuild; moving tags after production ----------

DIGEST = "sha256:" + "b" * 64
RELEASED_IMAGE = f"ghcr.io/owner/repo@{DIGEST}"


def scripted_gh(tmp_path, release="missing", assets=(), releases=()):
    """A `gh` that answers like GitHub's for one release (`missing`, `error`, or present with
    `assets`) and the published `releases`, logging each call; (directory for PATH, log)."""
    (tmp_path / "recorded.json").write_text(json.dumps({"image": RELEASED_IMAGE, "attested": True}))
    log = tmp_path / "gh.log"
    listing = json.dumps([{"tagName": name} for name in releases])
    gh = tmp_path / "bin" / "gh"
    gh.parent.mkdir(exist_ok=True)
    gh.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {log}\n'
        'case "$1 $2" in\n'
        '  "release view")\n'
        f"    case {release} in\n"
        '      missing) echo "release not found" >&2; exit 1 ;;\n'
        '      error) echo "HTTP 502: Bad Gateway" >&2; exit 1 ;;\n'
        "    esac\n"
        f"    printf '%s\\n' {' '.join(assets)} ;;\n"
        '  "release download") dir="${@: -2:1}"; '
        f'[[ "${{@: -2:1}}" == --clobber ]] && dir="${{@: -3:1}}"; cp {tmp_path}/recorded.json "$dir/image.json" ;;\n'
        f"  \"release list\") echo '{listing}' ;;\n"
        "esac\n"
    )
    gh.chmod(0o755)
    return gh.parent, log


def run_step(step, tmp_path, bin_dir, env, cwd=ROOT):
    """Run a step's script with bash as the runner does; (exit code, outputs, stdout+stderr)."""
    output = tmp_path / "github-output"
    output.write_text("")
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return proc.returncode, outputs, proc.stdout + proc.stderr


def released_step():
    (step,) = [s for s in JOBS["plan"]["steps"] if s.get("id") == "released"]
    return step


@pytest.mark.parametrize("run", [TAG, RC_TAG, DISPATCH])
def test_a_released_tag_yields_the_image_its_release_recorded(tmp_path, run):
    step = released_step()
    assert evaluate(step["if"], context(*run))
    bin_dir, log = scripted_gh(tmp_path, release="present", assets=("image.json", "model.json"))
    env = {"TAG": "v1.2.3", "EVENT": run[0], "REPOSITORY": "Owner/Repo"}
    code, outputs, printed = run_step(step, tmp_path, bin_dir, env)
    assert code == 0, printed
    assert outputs == {"image": RELEASED_IMAGE, "attested": "true"}  # name lowercased to match
    assert "download v1.2.3 --pattern image.json" in log.read_text()
    # With that output the run builds nothing and deploys, releases and tags that image.
    planned = plan(run, tier="production", image=outputs["image"])
    done = ns(result="success", outputs=planned)
    assert not runs("image", run, plan=done)
    skipped = ns(result="skipped", outputs=ns(image="", attested=""))
    assert runs("deploy", run, image=skipped, plan=done)
    assert evaluate(
        JOBS["deploy"]["env"]["IMAGE"], context(*run, needs=ns(image=skipped, plan=done))
    ) == (RELEASED_IMAGE)
    assert runs("release", run, image=skipped, plan=done, deploy=OK) is (run[0] == "push")


@pytest.mark.parametrize(
    ("release", "assets", "run", "code", "message"),
    [
        ("missing", (), TAG, 0, "v1.2.3 has no release: this run builds"),
        ("present", ("model.json",), TAG, 0, "has no image.json (was it made by this pipeline?)"),
        (
            "missing",
            (),
            DISPATCH,
            1,
            "::error::v1.2.3 has no release: a dispatch redeploys a release",
        ),
        ("present", ("notes.txt",), DISPATCH, 1, "::error::release v1.2.3 has no image.json"),
        ("error", (), TAG, 1, "HTTP 502"),  # never a rebuild because GitHub did not answer
    ],
    ids=["new-tag", "release-made-by-hand", "dispatch-unreleased", "dispatch-foreign", "api-error"],
)
def test_a_tag_without_a_recorded_image_builds_and_a_dispatch_of_one_fails(
    tmp_path, release, assets, run, code, message
):
    bin_dir, _ = scripted_gh(tmp_path, release=release, assets=assets)
    env = {"TAG": "v1.2.3", "EVENT": run[0], "REPOSITORY": "owner/repo"}
    done, outputs, printed = run_step(released_step(), tmp_path, bin_dir, env)
    assert (done, outputs) == (code, {})
    assert message in printed


def release_step():
    return JOBS["release"]["steps"][0]


@pytest.mark.parametrize(
    ("release", "assets", "calls"),
    [
        ("missing", (), ["release create v1.2.3"]),
        ("present", ("model.json",), ["release upload v1.2.3"]),  # made by hand: gets image.json
        ("present", ("image.json", "model.json"), []),  # a re-run: left as it is
    ],
)
def test_the_release_records_the_image_once(tmp_path, release, assets, calls):
    bin_dir, log = scripted_gh(tmp_path, release=release, assets=assets)
    env = {
        "TAG": "v1.2.3",
        "IMAGE": RELEASED_IMAGE,
        "ATTESTED": "true",
        "TIER": "production",
        "DEPLOYS": '[{"environment": "heroku-production"}]',
    }
    code, _, printed = run_step(release_step(), tmp_path, bin_dir, env)
    assert code == 0, printed
    writes = [c for c in log.read_text().splitlines() if c.split()[1] in ("create", "upload")]
    assert [" ".join(c.split()[:3]) for c in writes] == calls
    recorded = json.loads((tmp_path / "runner-temp" / "image.json").read_text())
    assert recorded == {"image": RELEASED_IMAGE, "attested": True}


@pytest.mark.parametrize(
    ("release", "tags_run"),
    [("success", True), ("failure", False), ("skipped", False), ("cancelled", False)],
)
def test_x_y_and_latest_move_only_once_the_release_is_published(release, tags_run):
    needs = {"image": OK, "plan": NOT_RELEASED, "release": ns(result=release)}
    assert runs("tags", TAG, **needs) is tags_run
    assert not runs("tags", RC_TAG, image=OK, plan=NOT_RELEASED, release=OK)  # a pre-release


@pytest.mark.parametrize(
    ("tag", "published", "moved"),
    [
        ("v1.2.3", ["v1.2.2", "v1.1.9"], "1.2 latest"),
        ("v1.2.4", ["v1.3.0", "v1.2.3"], "1.2"),  # a patch of an older line
        ("v1.2.3", ["v1.2.4", "v1.3.0"], ""),  # a re-run of an older release
    ],
)
def test_the_tags_step_moves_what_the_newest_release_owns(tmp_path, tag, published, moved):
    (step,) = [s for s in JOBS["tags"]["steps"] if "--move" in s.get("run", "")]
    # The step's scripts/ in a scratch checkout: the real plan-deploys, a push-tested-image
    # that records its arguments.
    scripts = tmp_path / "checkout" / "scripts"
    scripts.mkdir(parents=True)
    for name in ("plan-deploys", "plan_deploys.py"):
        (scripts / name).symlink_to(ROOT / "scripts" / name)
    recorded = tmp_path / "moved"
    (scripts / "push-tested-image").write_text(f'#!/bin/sh\necho "$*" > {recorded}\n')
    (scripts / "push-tested-image").chmod(0o755)
    bin_dir, log = scripted_gh(tmp_path, releases=published)
    env = {"TAG": tag, "IMAGE": RELEASED_IMAGE}
    code, _, printed = run_step(step, tmp_path, bin_dir, env, cwd=tmp_path / "checkout")
    assert code == 0, printed
    assert "release list --exclude-drafts --exclude-pre-releases" in log.read_text()
    if moved:
        assert recorded.read_text().split() == ["--move", RELEASED_IMAGE, *moved.split()]
    else:
        assert not recorded.exists()
        assert "moves neither" in printed
