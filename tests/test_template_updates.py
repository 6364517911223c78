"""Copies keep receiving the template's fixes: copier renders the template under the copy's name
(scripts/rename as copier's task), and the weekly template-update workflow brings each new
template release as one pull request (scripts/template-update), keeping the copy's own changes.

Everything runs against local git repositories: a template tagged v1.0.0 and then v1.1.0, a
copy made from v1.0.0 and changed by its owner, a bare repository standing in for GitHub, and
a stand-in for gh that checks what `gh pr create` requires.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.test_release import GIT_ENV, git
from tests.test_rename import BIN, ROOT, copy_template, local_env, snapshot

WORKFLOW = ROOT / ".github" / "workflows" / "template-update.yml"
OLD_PIN = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
NEW_PIN = "actions/checkout@0000000000000000000000000000000000000000 # v7.0.2"
# gh pr create's flags (cli.github.com/manual/gh_pr_create); without a terminal it needs a title
# and a body, and the head branch must have been pushed.
FAKE_GH = r"""#!/usr/bin/env python3
import json, os, subprocess, sys
args = sys.argv[1:]
if args[:2] != ["pr", "create"]:
    sys.exit(f"gh: unknown command {args[:2]}")
flags = {"--base": 1, "--head": 1, "--title": 1, "--body-file": 1, "--draft": 0}
options, rest = {}, args[2:]
while rest:
    flag = rest.pop(0)
    if flag not in flags:
        sys.exit(f"unknown flag: {flag}")
    options[flag] = rest.pop(0) if flags[flag] else True
if not {"--base", "--head", "--title", "--body-file"} <= set(options):
    sys.exit("must provide --title and --body (or --body-file) when not running interactively")
if not os.environ.get("GH_TOKEN"):
    sys.exit("gh: To use GitHub CLI in automation, set the GH_TOKEN environment variable")
pushed = subprocess.run(["git", "ls-remote", "--exit-code", "--heads", os.environ["PUSH_URL"],
                         options["--head"]], capture_output=True)
if pushed.returncode:
    sys.exit(f"pull request create failed: head branch {options['--head']} was not pushed")
options["body"] = open(options.pop("--body-file")).read()
with open(os.environ["GH_LOG"], "a") as log:
    log.write(json.dumps(options) + "\n")
print("https://github.com/octo-org/loan-default/pull/1")
"""


def commit_all(repository: Path, message: str) -> None:
    git(repository, "add", "--all")
    git(repository, "commit", "--quiet", "--message", message)


def copier(cwd, *args, env):
    done = subprocess.run(
        [BIN / "copier", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def world(tmp_path):
    """The template at v1.0.0, GitHub (a bare repository), gh, and the environment to run in."""
    template = copy_template(tmp_path / "t")
    git(template, "tag", "-a", "v1.0.0", "-m", "Template release 1.0.0")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "gh").write_text(FAKE_GH)
    (tools / "gh").chmod(0o755)
    github = tmp_path / "github.git"
    env = local_env() | GIT_ENV
    env |= {
        # The project's pinned ruff and copier, as scripts/template-update finds them in .venv.
        "PATH": os.pathsep.join([str(tools), str(BIN), env["PATH"]]),
        "PUSH_URL": str(github),
        "GH_TOKEN": "token",
        "GH_LOG": str(tmp_path / "gh.log"),
    }
    return template, github, env


def use_this_template(template: Path, github: Path, tmp_path: Path, env) -> Path:
    """What "Use this template" and the rename workflow do: a repository whose first commit has
    the template's files, renamed after the repository and linked to the template."""
    copy = tmp_path / "loan-default"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(copy))
    git(template, "archive", "--output", str(tmp_path / "files.tar"), "HEAD")
    shutil.unpack_archive(tmp_path / "files.tar", copy)
    commit_all(copy, "Initial commit")
    done = subprocess.run(
        ["scripts/rename", "--repository", "loan-default", "--owner", "octo-org",
         "--template", str(template)],
        cwd=copy, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    commit_all(copy, "Rename the template to loan_default")
    git(tmp_path, "init", "--quiet", "--bare", str(github))
    git(copy, "remote", "add", "origin", str(github))
    git(copy, "push", "--quiet", "origin", "main")
    return copy


@pytest.mark.slow
def test_copier_makes_the_same_project_as_the_rename(world, tmp_path):
    template, _, env = world
    made = tmp_path / "made" / "loan-default"
    copier(tmp_path, "copy", "--trust", "--defaults", "--data", "owner=octo-org",
           str(template), str(made), env=env)  # fmt: skip
    renamed = copy_template(tmp_path / "renamed")
    done = subprocess.run(
        ["scripts/rename", "--repository", "loan-default", "--owner", "octo-org"],
        cwd=renamed, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    by_copier = snapshot(made)
    answers = by_copier.pop(".copier-answers.yml")[0].decode()
    assert by_copier == snapshot(renamed)
    # The package name came from the folder's name; every value is a quoted string.
    assert yaml.safe_load(answers) == {
        "_commit": "v1.0.0",
        "_src_path": str(template),
        "owner": "octo-org",
        "package_name": "loan_default",
    }
    assert 'owner: "octo-org"' in answers.splitlines()


def test_copier_refuses_a_bad_package_name_and_leaves_nothing(world, tmp_path):
    template, _, env = world
    done = subprocess.run(
        [BIN / "copier", "copy", "--trust", "--defaults", "--data", "package_name=pandas",
         str(template), str(tmp_path / "new")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "rename: 'pandas' is the import name of a dependency" in done.stderr
    assert not (tmp_path / "new").exists()


def release_v2(template: Path) -> None:
    """Template v1.1.0: an action pin bump, a change to the API module (one line the copy changed
    too, one it did not), a new module and a deleted file."""
    pipeline = template / ".github" / "workflows" / "pipeline.yml"
    assert OLD_PIN in pipeline.read_text()
    pipeline.write_text(pipeline.read_text().replace(OLD_PIN, NEW_PIN))
    api = template / "src" / "mlservice" / "api.py"
    text = api.read_text()
    assert text.count('CARD = "mlservice.api.card"\n') == 1
    text = text.replace('CARD = "mlservice.api.card"\n', 'CARD = "mlservice.api.model_card"\n')
    api.write_text(text.replace('bp = Blueprint("api"', '# The JSON API.\nbp = Blueprint("api"', 1))
    (template / "src" / "mlservice" / "extra.py").write_text(
        '"""A module new in 1.1.0."""\n\nfrom mlservice.config import ConfigError\n\n'
        '__all__ = ["ConfigError"]\n'
    )
    (template / "docs" / "answers.md").unlink()
    commit_all(template, "Template changes for 1.1.0")
    git(template, "tag", "-a", "v1.1.0", "-m", "Template release 1.1.0")


def own_changes(copy: Path) -> None:
    api = copy / "src" / "loan_default" / "api.py"
    api.write_text(
        api.read_text().replace('CARD = "loan_default.api.card"\n', 'CARD = "loan_default.card"\n')
    )
    (copy / "src" / "loan_default" / "mine.py").write_text('"""The owner\'s own module."""\n')
    readme = copy / "README.md"
    readme.write_text(readme.read_text().replace("## Make it yours", "## Make it ours"))
    commit_all(copy, "Our own changes")
    git(copy, "push", "--quiet", "origin", "main")


def update(copy: Path, env) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["scripts/template-update"], cwd=copy, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_a_template_release_arrives_renamed_as_one_pull_request(world, tmp_path):
    template, github, env = world
    assert "api.py" in {p.name for p in (template / "src" / "mlservice").iterdir()}
    copy = use_this_template(template, github, tmp_path, env)
    assert yaml.safe_load((copy / ".copier-answers.yml").read_text())["_commit"] == "v1.0.0"
    own_changes(copy)
    release_v2(template)

    done = update(copy, env)
    # The branch with the update, as pushed.
    branch = "template/v1.1.0"
    assert git(github, "branch", "--list", branch).strip() == branch
    pushed = tmp_path / "pushed"
    git(tmp_path, "clone", "--quiet", "--branch", branch, str(github), str(pushed))
    assert git(pushed, "log", "-1", "--format=%s") == "Update to template 1.1.0"
    # The template's changes, under this project's name.
    assert NEW_PIN in (pushed / ".github" / "workflows" / "pipeline.yml").read_text()
    extra = (pushed / "src" / "loan_default" / "extra.py").read_text()
    assert "from loan_default.config import ConfigError" in extra
    assert not (pushed / "docs" / "answers.md").exists()
    assert not (pushed / "src" / "mlservice").exists()
    api = (pushed / "src" / "loan_default" / "api.py").read_text()
    assert '# The JSON API.\nbp = Blueprint("api"' in api  # a line only the template changed
    # Where both changed a line: both versions, marked.
    conflict = re.search(
        r"<<<<<<< before updating\n(.*)\n=======\n(.*)\n>>>>>>> after updating\n", api
    )
    assert conflict
    assert conflict.groups() == (
        'CARD = "loan_default.card"',
        'CARD = "loan_default.api.model_card"',
    )
    # The owner's own changes stay.
    assert (pushed / "src" / "loan_default" / "mine.py").is_file()
    assert "## Make it ours" in (pushed / "README.md").read_text()
    answers = yaml.safe_load((pushed / ".copier-answers.yml").read_text())
    assert answers == {
        "_commit": "v1.1.0",
        "_src_path": str(template),
        "owner": "octo-org",
        "package_name": "loan_default",
    }
    # One pull request, a draft because of the conflict, listing the file to resolve.
    (request,) = [json.loads(line) for line in Path(env["GH_LOG"]).read_text().splitlines()]
    assert {k: v for k, v in request.items() if k != "body"} == {
        "--base": "main",
        "--head": branch,
        "--title": "Template 1.1.0",
        "--draft": True,
    }
    assert "- `src/loan_default/api.py`\n" in request["body"]
    assert "this project was at 1.0.0" in request["body"]
    assert "::notice" not in done.stdout

    # The next run finds the branch: no second pull request for the same version.
    git(copy, "switch", "--quiet", "main")
    again = update(copy, env)
    assert again.stdout == (
        "::notice title=Template update::The pull request for template 1.1.0 was opened already"
        f" (branch {branch}).\n"
    )
    assert len(Path(env["GH_LOG"]).read_text().splitlines()) == 1

    # Merged (the conflict resolved), the copy is up to date: another update changes nothing.
    git(copy, "merge", "--quiet", "--ff-only", branch)
    api_path = copy / "src" / "loan_default" / "api.py"
    api_path.write_text(re.sub(r"<<<<<<< before updating\n.*\n=======\n(.*)\n>>>>>>> after "
                               r"updating\n", r"\1\n", api_path.read_text()))  # fmt: skip
    commit_all(copy, "Resolve the template update")
    before = snapshot(copy)
    head = git(copy, "rev-parse", "HEAD")
    copier(copy, "update", "--trust", "--defaults", "--conflict", "inline", env=env)
    assert snapshot(copy) == before
    assert git(copy, "status", "--porcelain") == ""
    assert git(copy, "rev-parse", "HEAD") == head
    assert update(copy, env).stdout == (
        "::notice title=Template update::Up to date with the template (1.1.0).\n"
    )


@pytest.mark.slow
def test_a_clean_update_is_a_ready_pull_request(world, tmp_path):
    template, github, env = world
    copy = use_this_template(template, github, tmp_path, env)
    release_v2(template)
    update(copy, env)
    (request,) = [json.loads(line) for line in Path(env["GH_LOG"]).read_text().splitlines()]
    assert "--draft" not in request
    assert "No conflicts" in request["body"]
    pushed = git(github, "show", "template/v1.1.0:src/loan_default/api.py")
    assert 'CARD = "loan_default.api.model_card"' in pushed
    assert "<<<<<<<" not in pushed


def test_without_a_link_the_update_says_so_and_succeeds(tmp_path):
    copy = copy_template(tmp_path)
    done = subprocess.run(
        [copy / "scripts" / "template-update"], cwd=copy, env=local_env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "::notice title=Template update::No .copier-answers.yml: this repository is not linked to"
        " a template (docs/template.md).\n"
    )


# -- The workflow ----------------------------------------------------------------------------

UPDATE = yaml.safe_load(WORKFLOW.read_text())
(JOB,) = UPDATE["jobs"].values()


def test_the_workflow_runs_weekly_and_by_hand_with_least_privilege():
    triggers = UPDATE[True]  # YAML 1.1 reads `on` as a boolean
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert len(triggers["schedule"]) == 1
    assert UPDATE["permissions"] == {}
    assert JOB["permissions"] == {"contents": "read"}
    # The token's secrets are the environment's: no other job can read them.
    assert JOB["environment"] == {"name": "template-update", "deployment": False}
    assert UPDATE["concurrency"]["cancel-in-progress"] is False
    assert JOB["timeout-minutes"] <= 30


def test_the_workflow_pins_actions_and_keeps_expressions_out_of_scripts():
    pipeline = (ROOT / ".github" / "workflows" / "pipeline.yml").read_text()
    pins = dict(re.findall(r"uses: ([\w./-]+)@([0-9a-f]{40}) # v[\d.]+", pipeline))
    uses = [step["uses"] for step in JOB["steps"] if "uses" in step]
    assert len(uses) == 3
    for use in uses:
        action, sha = use.split("@")
        assert re.fullmatch(r"[0-9a-f]{40}", sha)
        assert pins.get(action, sha) == sha  # the pipeline's pin where it uses the action too
    assert "actions/create-github-app-token@1b10c78c7865c340bc4f6099eb2f838309f1e8c3 # v3.1.1" in (
        WORKFLOW.read_text()
    )
    checkout = next(s for s in JOB["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    assert not [s for s in JOB["steps"] if "${{" in s.get("run", "")]


def run_step(step, env, tmp_path):
    output = tmp_path / "output"
    output.touch()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, output.read_text()


@pytest.mark.parametrize(
    ("env", "source"),
    [
        ({"APP_CLIENT_ID": "", "PERSONAL_TOKEN": ""}, ""),
        ({"APP_CLIENT_ID": "", "PERSONAL_TOKEN": "github_pat_x"}, "source=personal\n"),
        ({"APP_CLIENT_ID": "Iv23x", "PERSONAL_TOKEN": ""}, "source=app\n"),
    ],
)
def test_without_a_token_the_run_gives_a_notice_and_does_nothing_else(env, source, tmp_path):
    find, *later = JOB["steps"]
    assert set(find["env"]) == {"APP_CLIENT_ID", "PERSONAL_TOKEN"}
    stdout, output = run_step(find, env, tmp_path)
    assert output == source
    assert ("::notice title=Template update::No token" in stdout) == (not source)
    # Every later step needs a token.
    assert all(step["if"].startswith(f"steps.{find['id']}.outputs.source") for step in later)
    (update_step,) = [s for s in later if "scripts/template-update" in s.get("run", "")]
    assert update_step["env"]["TOKEN"] == (
        "${{ steps.app.outputs.token || secrets.TEMPLATE_UPDATE_TOKEN }}"  # noqa: S105
    )
