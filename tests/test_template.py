"""The files a new repository meets first: issue forms, PR template, CODEOWNERS, dev container,
the one-time rename workflow and CONTRIBUTING.md. Checked against GitHub's published schemas and
the invariants the pipeline's workflow keeps too."""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.tools import run_tool

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / ".github"
BIN = ROOT / ".venv" / "bin"
RENAME_PATH = GITHUB / "workflows" / "rename.yml"
PIPELINE_PATH = GITHUB / "workflows" / "pipeline.yml"
MAKE_TARGETS = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))

# The rename workflow removes itself (and scripts/rename) from a renamed project.
template_only = pytest.mark.skipif(not RENAME_PATH.exists(), reason="renamed: no rename workflow")


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.github-issue-forms", "ISSUE_TEMPLATE/bug.yml"),
        ("vendor.github-issue-forms", "ISSUE_TEMPLATE/feature.yml"),
        ("vendor.github-issue-config", "ISSUE_TEMPLATE/config.yml"),
        pytest.param("vendor.github-workflows", "workflows/rename.yml", marks=template_only),
    ],
)
def test_files_match_githubs_published_schemas(schema, path):
    done = run_tool("check-jsonschema", "--builtin-schema", schema, str(GITHUB / path))
    assert done.returncode == 0, done.stdout + done.stderr


@template_only
def test_rename_workflow_passes_actionlint():
    done = run_tool("actionlint", f"-shellcheck={BIN / 'shellcheck'}", str(RENAME_PATH))
    assert done.returncode == 0, done.stdout + done.stderr


def test_issue_forms_ask_for_what_a_report_needs():
    bug = yaml.safe_load((GITHUB / "ISSUE_TEMPLATE" / "bug.yml").read_text())
    required = [f["id"] for f in bug["body"] if f.get("validations", {}).get("required")]
    assert {"what-happened", "reproduce", "version"} <= set(required)
    config = yaml.safe_load((GITHUB / "ISSUE_TEMPLATE" / "config.yml").read_text())
    assert config["blank_issues_enabled"] is False


def test_pull_request_template_asks_for_make_test():
    text = (GITHUB / "pull_request_template.md").read_text()
    assert "- [ ] `make test` passes locally" in text


def test_codeowners_has_a_default_owner_for_rename_to_replace():
    lines = [line for line in (GITHUB / "CODEOWNERS").read_text().splitlines() if line[:1] == "*"]
    assert len(lines) == 1
    assert re.fullmatch(r"\* @[\w-]+", lines[0])


def test_devcontainer_runs_the_same_make_targets():
    text = (ROOT / ".devcontainer" / "devcontainer.json").read_text()
    config = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))  # JSON with comments
    assert config["image"].startswith("mcr.microsoft.com/devcontainers/python:3.")
    assert config["postCreateCommand"] == "make env model"
    assert 8000 in config["forwardPorts"]
    assert {"env", "model"} <= MAKE_TARGETS


# -- The one-time rename workflow -------------------------------------------------------------

RENAME = yaml.safe_load(RENAME_PATH.read_text()) if RENAME_PATH.exists() else {}


@template_only
def test_rename_runs_once_outside_the_template_on_push_or_by_hand():
    triggers = RENAME[True]  # YAML 1.1 reads `on` as a boolean
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["workflow_dispatch"]["inputs"]["name"]["required"] is False
    (job,) = RENAME["jobs"].values()
    # Never in the template, never in a fork; always on the default branch, whatever the ref.
    condition = "${{ !github.event.repository.is_template && !github.event.repository.fork }}"
    assert job["if"] == condition
    (checkout,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    # The whole history: the first commit says which template commit the copy started from.
    assert checkout["with"]["fetch-depth"] == 0
    run = "\n".join(step.get("run", "") for step in job["steps"])
    # The workflow passes the repository name; scripts/rename derives the package name.
    assert 'args=(--repository "$REPOSITORY_NAME")' in run
    assert 'args+=(--template "$template")' in run
    assert 'scripts/rename "${args[@]}"' in run
    assert "git add --all" in run  # includes the deletion of this workflow by scripts/rename
    assert RENAME["concurrency"]["cancel-in-progress"] is False


@template_only
def test_rename_holds_write_access_only_in_its_job_and_never_in_git_config():
    assert RENAME["permissions"] == {}
    (job,) = RENAME["jobs"].values()
    assert job["permissions"] == {"contents": "write"}
    checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert [s["with"]["persist-credentials"] for s in checkouts] == [False]
    (push,) = [s for s in job["steps"] if "git push" in s.get("run", "")]
    assert push["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"  # noqa: S105
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert not [run for run in runs if "${{" in run]


@template_only
def test_rename_pins_the_same_action_versions_as_the_pipeline():
    def pins(path):
        return dict(re.findall(r"uses: ([\w./-]+)@([0-9a-f]{40}) # v[\d.]+", path.read_text()))

    rename_pins = pins(RENAME_PATH)
    assert rename_pins
    assert rename_pins.items() <= pins(PIPELINE_PATH).items()


# -- CONTRIBUTING.md --------------------------------------------------------------------------


def test_contributing_covers_the_workflow_and_names_real_targets():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    for heading in (
        "## Set up",
        "## Run every check",
        "## Branches and pull requests",
        "### Commit messages",
        "## Cut a release",
        "## Add a deploy target",
        "## Replace the example model with your own",
    ):
        assert heading in text
    used = set(re.findall(r"`make ([a-z][a-z-]*)", text))
    assert {"test", "release", "env", "model", "container-test"} <= used
    assert used <= MAKE_TARGETS
