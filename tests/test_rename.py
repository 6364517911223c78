"""scripts/rename: any repository name gives a renamed copy that works under the new name; the
rename checks everything first and changes all or nothing; it links the copy to its template.

Each test renames its own copy of the tree (a second or two). The hypothesis tests rename it for
generated repository names and check every file of the result. The README's steps, ending in the
copy's whole `make test`, take minutes per name: they run when RENAMED_SUITE names them
(`RENAMED_SUITE=all`; .ci/run runs one), see docs/template.md.
"""

import ast
import importlib.machinery
import json
import keyword
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import botocore.session
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scripts import rename_rules
from tests.test_release import git

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
OLD = "mlservice"
TEMPLATE_ONLY = (
    "scripts/rename",
    "scripts/rename_rules.py",
    "tests/test_rename.py",
    "tests/test_rename_rules.py",
    "tests/test_template_updates.py",
    "copier.yml",
    ".github/workflows/rename.yml",
)
# Three representative repository names: hyphens, a leading digit, long (cut to 48 characters).
REPRESENTATIVE = {
    "loan-default": "loan_default",
    "3d-pose.estimator": "app_3d_pose_estimator",
    "customer-churn-prediction-service-for-the-retail-analytics-team": (
        "customer_churn_prediction_service_for_the_retail"
    ),
}


def project_files(root):
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return [p for p in listed.split("\0") if p and (root / p).is_file()]


def copy_template(tmp: Path) -> Path:
    """The project's files (as git sees them) in a new repository with one commit, as a
    repository made with "Use this template" starts."""
    copy = tmp / "copy"
    for relative in project_files(ROOT):
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, copy / relative)
    git(copy.parent, "init", "--quiet", "--initial-branch=main", str(copy))
    git(copy, "add", "--all")
    git(copy, "commit", "--quiet", "--message", "Initial commit")
    return copy


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def local_env():
    """The environment of a local run (not GitHub Actions), the owner left to --owner."""
    drop = {"GITHUB_ACTIONS", "GITHUB_REPOSITORY_OWNER"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def without_ruff_env():
    """PATH without a ruff: the rename then leaves formatting to `make format`."""
    path = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "ruff").exists()]
    return local_env() | {"PATH": os.pathsep.join(path)}


def with_ruff_env():
    return local_env() | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def rename(copy: Path, *args, env=None):
    return subprocess.run(
        [sys.executable, str(copy / "scripts" / "rename"), *args],
        cwd=copy,
        env=env or without_ruff_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load_script(copy: Path) -> types.ModuleType:
    """The copy's scripts/rename as a module, to plant failures in it."""
    loader = importlib.machinery.SourceFileLoader("rename_script", str(copy / "scripts/rename"))
    module = types.ModuleType(loader.name)
    module.__file__ = loader.path
    path = sys.path.copy()
    loader.exec_module(module)
    sys.path[:] = path  # it put its own folder first, for its rules
    return module


# -- Refused before any change ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Loan_Default"], "'Loan_Default' is not a package name"),
        (["--repository", "my repo"], "'my repo' is not a GitHub repository name"),
        (["--repository", "json"], "'json' is a standard-library module"),
        (["--repository", "class"], "'class' is a Python keyword"),
        (["sklearn"], "'sklearn' is the import name of a dependency"),
        (["scikit_learn"], "'scikit_learn' is the import name of a dependency"),
        (["--repository", "PyYAML"], "'pyyaml' is the import name of a dependency"),
        (["copier"], "'copier' is the import name of a dependency"),  # a dev tool
        (["deploy"], "'deploy' is a folder of this repository"),
        (["tests"], "'tests' is a folder of this repository"),
        (["a" * 56], f"'{'a' * 56}' is 56 characters long: at most 55"),
        # The owner too is checked before anything changes.
        (["loan_default", "--owner", "not an owner!"], "'not an owner!' is not a GitHub user"),
        ([], "give the package name, or --repository"),
    ],
)
def test_a_bad_argument_is_refused_in_one_line_and_nothing_changes(tmp_path, args, message):
    copy = copy_template(tmp_path)
    before = snapshot(copy)
    done = rename(copy, *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"rename: {message}")
    assert len(done.stderr.splitlines()) == 1
    assert snapshot(copy) == before


def test_an_unclosed_template_only_section_is_refused_before_any_change(tmp_path):
    copy = copy_template(tmp_path)
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- template-only:start -->\nnever closed\n")
    before = snapshot(copy)
    done = rename(copy, "loan_default")
    assert done.returncode == 2
    assert done.stderr == "rename: README.md: template-only section without its end marker\n"
    assert snapshot(copy) == before


# -- All or nothing --------------------------------------------------------------------------


def changes_planned(copy: Path) -> int:
    """How many files a rename of this copy writes and removes (from a rename of a twin)."""
    twin = copy.parent / "twin"
    shutil.copytree(copy, twin)
    done = rename(twin, "loan_default")
    assert done.returncode == 0, done.stderr
    return len(git(twin, "status", "--porcelain", "--untracked-files=all").splitlines())


@pytest.mark.parametrize("failing", ["first write", "a middle write", "a removal"])
def test_a_failure_part_way_leaves_the_tree_as_it_was(tmp_path, monkeypatch, failing):
    copy = copy_template(tmp_path)
    (copy / "src" / OLD / "__pycache__").mkdir()
    (copy / "src" / OLD / "__pycache__" / "api.cpython-311.pyc").write_bytes(b"cache")
    before = snapshot(copy)
    module = load_script(copy)
    operations = []

    def planted(original):
        def step(journal, relative, *args):
            operations.append(original.__name__)
            if len(operations) == stop:
                raise OSError(f"planted failure at {relative}")
            return original(journal, relative, *args)

        return step

    stop = {"first write": 1, "a middle write": 40}.get(failing, 0)
    if failing == "a removal":
        stop = changes_planned(copy) - 5  # after every write, among the removals
    monkeypatch.setattr(module.Journal, "write", planted(module.Journal.write))
    monkeypatch.setattr(module.Journal, "remove", planted(module.Journal.remove))
    monkeypatch.setattr(module, "find_ruff", lambda root: None)
    with pytest.raises(OSError, match="planted failure"):
        module.rename(copy, "loan_default", "")
    assert operations[-1] == ("remove" if failing == "a removal" else "write")
    assert snapshot(copy) == before
    assert not (copy / "src" / "loan_default").exists()


def test_a_failing_formatter_leaves_the_tree_as_it_was(tmp_path):
    copy = copy_template(tmp_path)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ruff").write_text("#!/bin/sh\necho 'ruff: cannot read' >&2\nexit 2\n")
    (tools / "ruff").chmod(0o755)
    before = snapshot(copy)
    done = rename(copy, "loan_default", env=local_env() | {"PATH": f"{tools}:{os.environ['PATH']}"})
    assert done.returncode == 2
    assert done.stderr == "rename: ruff check failed: ruff: cannot read\n"
    assert snapshot(copy) == before


# -- A renamed copy --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renamed(tmp_path_factory):
    """The template renamed after the repository loan-default, with ruff on PATH (as the rename
    workflow runs it, after make env)."""
    copy = copy_template(tmp_path_factory.mktemp("rename"))
    (copy / "src" / OLD / "__pycache__").mkdir()
    done = rename(copy, "--repository", "loan-default", "--owner", "octo-org", env=with_ruff_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return copy, done


def text_files(root: Path):
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def test_no_trace_of_the_old_name_or_the_template_machinery_is_left(renamed):
    copy, done = renamed
    left = [
        f"{path.relative_to(copy)}: {line.strip()}"
        for path, text in text_files(copy)
        for line in text.splitlines()
        if OLD in line.lower() or "template-only" in line
    ]
    assert left == []
    assert not (copy / "src" / OLD).exists()  # its __pycache__ went with it
    assert sorted(p.name for p in (copy / "src").iterdir()) == ["loan_default"]
    for gone in TEMPLATE_ONLY:
        assert not (copy / gone).exists(), gone
    assert not (copy / ".copier-answers.yml").exists()  # no --template: no link
    assert (copy / ".github" / "workflows" / "template-update.yml").is_file()
    assert (copy / "scripts" / "template-update").is_file()
    assert done.stdout.endswith(
        "rename: mlservice → loan_default (console script, image and services: loan-default);"
        f" {len(git(copy, 'status', '--porcelain', '--untracked-files=all').splitlines())} files"
        " changed. Next: make test\n"
    )


def test_each_place_spells_the_name_as_it_needs(renamed):
    copy, _ = renamed
    project = tomllib.loads((copy / "pyproject.toml").read_text())
    assert project["project"]["name"] == "loan-default"
    assert project["project"]["scripts"] == {
        "loan-default": "loan_default.cli:main",
        "loan-default-server": "loan_default.server:main",
    }
    assert project["tool"]["ruff"]["lint"]["isort"]["known-first-party"][0] == "loan_default"
    assert project["tool"]["coverage"]["run"]["source"] == ["loan_default"]
    # make mutation: the package's modules and deploy/, none of the template's rename rules.
    assert project["tool"]["mutmut"]["source_paths"] == ["src/loan_default", "deploy", "scripts"]
    assert "scripts/rename_rules.py" not in project["tool"]["mutmut"]["only_mutate"]
    makefile = (copy / "Makefile").read_text()
    assert "$(BIN)/loan-default train" in makefile
    assert "src/loan_default/training.py" in makefile
    assert "IMAGE ?= loan-default:local" in makefile
    # make mutation's modules: the template's own (rename_rules) is gone with its line.
    assert "MODULES ?= config " in makefile
    assert "rename_rules" not in makefile
    assert 'wsgi_app = "loan_default.wsgi:app"' in (copy / "gunicorn.conf.py").read_text()
    dockerfile = (copy / "Dockerfile").read_text()
    assert "import loan_default.api" in dockerfile
    assert 'image.title="loan-default"' in dockerfile
    assert (copy / "README.md").read_text().startswith("# loan-default\n")
    assert '\nname = "loan-default"\n' in (copy / "uv.lock").read_text()
    # A shell variable and an environment variable: the underscore form, in capitals for the latter.
    summary = (copy / "scripts" / "model-summary").read_text()
    assert "loan_default=${LOAN_DEFAULT:-.venv/bin/loan-default}" in summary
    assert '"$loan_default" compare-cards' in summary
    # mutmut names modules by their import name; Lightsail services allow no underscores.
    mutation = (copy / "scripts" / "mutation.py").read_text()
    assert '"config": "loan_default.config",' in mutation
    assert "rename_rules" not in mutation
    assert ':loan-default.v1-2-3.7"' in (copy / "tests" / "test_deploy_manifests.py").read_text()
    codeowners = (copy / ".github" / "CODEOWNERS").read_text()
    assert re.search(r"^\* @octo-org$", codeowners, flags=re.MULTILINE)


def test_docs_and_license_describe_the_new_project_not_the_template(renamed):
    copy, _ = renamed
    readme = (copy / "README.md").read_text()
    contributing = (copy / "CONTRIBUTING.md").read_text()
    for text in (readme, contributing):
        assert "scripts/rename" not in text
        assert "Use this template" not in text
        assert "\n\n\n" not in text  # a dropped section leaves no gap
        assert not text.endswith("\n\n")
    assert "## Use this template" in (ROOT / "README.md").read_text()
    assert "## Make it yours" in readme
    assert readme.startswith("# loan-default\n\nA Flask machine-learning service")
    assert "## Cut a release" in contributing
    # Template updates stay documented: a copy needs them.
    assert "template-update" in (copy / "docs" / "template.md").read_text()
    license_text = (copy / "LICENSE").read_text()
    new_holder, template_holder = re.findall(r"^Copyright \(c\) .*$", license_text, re.M)
    assert re.fullmatch(r"Copyright \(c\) 20\d\d The loan-default authors", new_holder)
    # MIT: the notice of the work it was copied from stays.
    assert template_holder == "Copyright (c) 2026 The ML service template authors"


def test_workflow_files_are_never_rewritten(renamed):
    copy, _ = renamed
    # The workflow token may delete a workflow file but not change one, so rename.yml goes and
    # every other workflow stays byte for byte.
    workflows = ROOT / ".github" / "workflows"
    before = {p.name: p.read_bytes() for p in workflows.iterdir() if p.name != "rename.yml"}
    after = {p.name: p.read_bytes() for p in (copy / ".github" / "workflows").iterdir()}
    assert before
    assert after == before


def test_the_renamed_copy_is_lint_clean(renamed):
    copy, _ = renamed
    folders = ("scripts", "deploy", ".ci")
    scripts = [str(p) for folder in folders for p in copy.glob(f"{folder}/*") if p.is_file()]
    python = [p for p in scripts if re.match(r"#!.*python", Path(p).read_text().split("\n")[0])]
    shell = [p for p in scripts if re.match(r"#!.*\b(ba)?sh$", Path(p).read_text().split("\n")[0])]
    for command in (
        [BIN / "ruff", "check", "--no-cache", ".", *python],
        [BIN / "ruff", "format", "--check", "--no-cache", ".", *python],
        [BIN / "shellcheck", *shell],
    ):
        done = subprocess.run(
            command, cwd=copy, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def find_uv():
    local = ROOT / ".tools" / "bin" / "uv"
    uv = shutil.which("uv") or (str(local) if os.access(local, os.X_OK) else None)
    if not uv:
        if os.environ.get("CI") == "true":
            pytest.fail("uv is missing (make env bootstraps it)")
        pytest.skip("uv is missing")
    return uv


def test_the_lock_and_requirements_are_what_uv_writes_under_the_new_name(renamed):
    """uv.lock and requirements.txt are renamed in place, no index needed: uv agrees the lock
    is current, and exports requirements.txt byte for byte (its `# via` lists re-sorted)."""
    copy, _ = renamed
    uv = find_uv()
    renamed_requirements = (copy / "requirements.txt").read_text()
    env = os.environ | {"UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    for args in (["lock", "--check"], ["export", "--frozen", "--no-dev", "--group", "skops",
                 "--no-hashes", "--no-editable", "--quiet", "--output-file", "requirements.txt"]):  # fmt: skip
        done = subprocess.run(
            [uv, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    assert (copy / "requirements.txt").read_text() == renamed_requirements
    assert "loan-default" in renamed_requirements


def test_a_renamed_copy_is_refused_and_the_same_name_is_a_no_op(renamed, tmp_path):
    copy, _ = renamed
    # The script removed itself from the copy: run the template's against a copy of the copy.
    again = tmp_path / "again"
    shutil.copytree(copy, again, ignore=shutil.ignore_patterns(".git"))
    for name in ("rename", "rename_rules.py"):
        shutil.copy2(ROOT / "scripts" / name, again / "scripts" / name)
    other = rename(again, "other_name")
    assert other.returncode == 2
    assert other.stderr == (
        "rename: this copy is already renamed (src/loan_default/); rename it by hand or start"
        " again from the template\n"
    )
    before = snapshot(again)
    same = rename(again, "loan_default")
    assert same.returncode == 0
    assert same.stdout == "rename: the package is already called loan_default; nothing to do\n"
    assert snapshot(again) == before


def test_lists_lines_made_too_long_and_workflows_that_name_the_old_package(tmp_path):
    copy = copy_template(tmp_path)
    long_name = "a_rather_long_model_name"  # 15 characters longer than mlservice
    source = (
        "from mlservice import features\n\n"
        f"# {'x' * 95} mlservice, already too long\n"
        f"# {'y' * 80} mlservice\n"  # 92 characters: 107 after the rename
        "print(features)\n"
    )
    (copy / "tests" / "long_lines.py").write_text(source)
    workflow = copy / ".github" / "workflows" / "extra.yml"
    workflow.write_text("name: extra  # runs mlservice\n")
    done = rename(copy, long_name, env=with_ruff_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rename: tests/long_lines.py:4: 107 characters; shorten it\n" in done.stdout
    assert "tests/long_lines.py:3" not in done.stdout
    # A workflow is not rewritten, only named, even when it holds the old name.
    assert workflow.read_text() == "name: extra  # runs mlservice\n"
    assert "rename: .github/workflows/extra.yml still names mlservice" in done.stdout


def test_without_ruff_it_says_to_run_make_format(tmp_path):
    copy = copy_template(tmp_path)
    done = rename(copy, "loan_default")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "rename: ruff not found: run `make format` to re-sort imports and re-wrap lines" in lines
    assert lines[-1].endswith("Next: make format test")


# -- The link to the template ----------------------------------------------------------------


@pytest.fixture
def template_and_copy(tmp_path):
    """A template repository tagged v1.0.0, with a commit after the tag; and a copy."""
    copy = copy_template(tmp_path)
    template = tmp_path / "template"
    git(tmp_path, "clone", "--quiet", str(copy), str(template))
    git(template, "tag", "-a", "v1.0.0", "-m", "v1.0.0")
    (template / "NOTES.md").write_text("after the release\n")
    git(template, "add", "NOTES.md")
    git(template, "commit", "--quiet", "-m", "After v1.0.0")
    return template, copy


def answers(copy):
    return yaml.safe_load((copy / ".copier-answers.yml").read_text())


def test_the_copy_is_linked_to_the_template_commit_it_started_from(template_and_copy):
    template, copy = template_and_copy
    done = rename(copy, "--repository", "loan-default", "--template", str(template))
    assert done.returncode == 0, done.stderr
    assert answers(copy) == {
        "_commit": "v1.0.0",
        "_src_path": str(template),
        "owner": "",
        "package_name": "loan_default",
    }
    assert f"; linked to {template} at v1.0.0." in done.stdout


def test_a_copy_of_an_untagged_commit_is_linked_as_copier_names_it(template_and_copy, tmp_path):
    template, _ = template_and_copy
    head = git(template, "rev-parse", "HEAD")
    copy = tmp_path / "later"  # "Use this template" on the commit after v1.0.0: its files
    git(tmp_path, "init", "--quiet", str(copy))
    git(template, "archive", "--output", str(tmp_path / "files.tar"), "HEAD")
    shutil.unpack_archive(tmp_path / "files.tar", copy)
    git(copy, "add", "--all")
    git(copy, "commit", "--quiet", "-m", "Initial commit")
    done = rename(copy, "loan_default", "--owner", "octo-org", "--template", str(template))
    assert done.returncode == 0, done.stderr
    assert answers(copy)["_commit"] == f"v1.0.0-1-g{head[:7]}"
    assert answers(copy)["owner"] == "octo-org"


def test_without_a_matching_template_commit_it_renames_and_says_why_there_is_no_link(
    template_and_copy,
):
    template, copy = template_and_copy
    (copy / "README.md").write_text("changed before the rename\n")
    git(copy, "commit", "--quiet", "--amend", "--all", "--no-edit")  # a first commit of its own
    done = rename(copy, "loan_default", "--template", str(template))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "rename: not linked to the template, so no template updates: --template: no commit of"
        f" {template} has the files of this repository's start\n"
    )
    assert not (copy / ".copier-answers.yml").exists()
    assert (copy / "src" / "loan_default").is_dir()
    unreachable = copy_template(template.parent / "other")
    missing = str(template.parent / "missing")
    gone = rename(unreachable, "loan_default", "--template", missing, env=actions_env())
    assert gone.returncode == 0
    # Run by the rename workflow: a warning annotation on the run.
    assert gone.stdout.startswith(
        "::warning::not linked to the template, so no template updates: git fetch failed:"
    )


def actions_env():
    return without_ruff_env() | {"GITHUB_ACTIONS": "true"}


def test_an_answers_file_is_never_rewritten(template_and_copy):
    template, copy = template_and_copy
    (copy / ".copier-answers.yml").write_text("_src_path: elsewhere # mlservice\n")
    done = rename(copy, "loan_default", "--template", str(template))
    assert done.returncode == 0, done.stderr
    assert "rename: .copier-answers.yml exists already; it is never rewritten\n" in done.stdout
    assert (copy / ".copier-answers.yml").read_text() == "_src_path: elsewhere # mlservice\n"


def rename_workflow_step():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "rename.yml").read_text())
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("name") == "Rename after the repository"]
    return step


@pytest.mark.parametrize("requested", ["", "my_model"])
def test_the_rename_workflow_links_the_template_github_names(template_and_copy, requested):
    """The workflow's step, run as the runner would: the repository name (or the name asked
    for) goes to scripts/rename, with the template GitHub's API names for this repository."""
    template, copy = template_and_copy
    tools = copy.parent / "bin"
    tools.mkdir()
    # gh api answers the repository's template_repository (docs.github.com/rest/repos/repos).
    (tools / "gh").write_text(
        "#!/bin/sh\n"
        '[ "$*" = "api repos/octo-org/loan-default --jq .template_repository.clone_url // \\"\\"" ]'
        f' && [ -n "$GH_TOKEN" ] && echo "{template}"\n'
    )
    (tools / "gh").chmod(0o755)
    step = rename_workflow_step()
    env = without_ruff_env() | {
        "PATH": f"{tools}:{without_ruff_env()['PATH']}",
        "GITHUB_REPOSITORY": "octo-org/loan-default",
        "GITHUB_REPOSITORY_OWNER": "octo-org",
        "REQUESTED_NAME": requested,
        "REPOSITORY_NAME": "loan-default",
        "GH_TOKEN": "token",
    }
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=copy, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    package = requested or "loan_default"
    assert (copy / "src" / package / "__init__.py").is_file()
    assert answers(copy) == {
        "_commit": "v1.0.0",
        "_src_path": str(template),
        "owner": "octo-org",
        "package_name": package,
    }
    assert not (copy / ".github" / "workflows" / "rename.yml").exists()


# -- Any repository name (hypothesis) --------------------------------------------------------

SEPARATORS = st.sampled_from(["-", "_", ".", "--", "._", "-.-", ""])
WORDS = st.lists(
    st.text(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=14
    ),
    min_size=1,
    max_size=9,
)


@st.composite
def repository_names(draw):
    words = draw(WORDS)
    name = draw(SEPARATORS) + "".join(w + draw(SEPARATORS) for w in words[:-1]) + words[-1]
    return (name + draw(SEPARATORS))[:100]


# Validators of each context, from each format's own rule (not from the rename's).
PEP_508_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# OCI distribution spec: a repository path component.
OCI_COMPONENT = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*")
# gcloud's App Engine service id (googlecloudsdk/appengine/api/appinfo.py, MODULE_ID_RE_STRING).
APPENGINE_SERVICE = re.compile(r"^(?!-)[a-z\d\-]{0,62}[a-z\d]$")
LIGHTSAIL_SERVICE = botocore.session.get_session().get_service_model("lightsail")
LIGHTSAIL_SERVICE = LIGHTSAIL_SERVICE.shape_for("ContainerServiceName").metadata


def valid_lightsail_service(name):
    rule = LIGHTSAIL_SERVICE
    return rule["min"] <= len(name) <= rule["max"] and re.fullmatch(rule["pattern"], name)


def python_name(name):
    return name.isidentifier() and not keyword.iskeyword(name)


VALID = {
    "import": python_name,
    "identifier": python_name,
    "shell variable": lambda n: re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n),  # POSIX "name"
    "constant": lambda n: python_name(n) and n.isupper(),
    "environment variable": lambda n: re.fullmatch(r"[A-Z_][A-Z0-9_]*", n),  # POSIX, portable
    "class": lambda n: python_name(n) and n[0].isupper(),
    "distribution": lambda n: PEP_508_NAME.match(n) and re.sub(r"[-_.]+", "-", n).lower() == n,
    "console script": lambda n: PEP_508_NAME.match(n) and "/" not in n,
    "image": OCI_COMPONENT.fullmatch,
    "service": lambda n: (
        valid_lightsail_service(n)
        and valid_lightsail_service(f"{n}-staging")  # the staging service in the docs
        and APPENGINE_SERVICE.match(n)
    ),
    "title": lambda n: n and not re.search(r"\s", n),
}


def refusal(function, *args):
    """(what function returns, None), or (None, the message of the RenameError it raised)."""
    try:
        return function(*args), None
    except rename_rules.RenameError as refused:
        return None, str(refused)


@settings(max_examples=300, deadline=None)
@given(st.one_of(repository_names(), st.text(max_size=120)))
def test_any_repository_name_gives_a_valid_package_name_or_one_line_why_not(repository):
    package, refused = refusal(rename_rules.package_from_repository, repository)
    if refused:
        assert refused.startswith(repr(repository))
        assert "\n" not in refused
        return
    _, refused = refusal(rename_rules.check_package, package, {"pandas", "sklearn"}, {"docs"})
    if refused:
        assert refused.startswith(repr(package))
        assert "\n" not in refused
        return
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", package)
    assert len(package) <= 55
    for context in rename_rules.CONTEXTS:
        spelled = rename_rules.spell(package, context)
        assert VALID[context](spelled), (context, spelled)
    # The repository's letters and digits, lowercased and in order, begin with the package's.
    letters = re.sub(r"[^a-z0-9]", "", repository.lower())
    kept = re.sub(r"[^a-z0-9]", "", package)
    assert letters.startswith(kept.removeprefix("app") if letters[0].isdigit() else kept)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return copy_template(tmp_path_factory.mktemp("template"))


IMPORT_ALL = """
import importlib, importlib.machinery, pathlib, sys
tree = pathlib.Path(sys.argv[1])
sys.path[:0] = [str(tree / "src"), str(tree)]
sys.path.append(str(tree / "scripts"))  # scripts/bench.py imports its neighbour wrk.py
failed = []
for path in sorted(tree.rglob("*.py")):
    relative = path.relative_to(tree)
    parts = list(relative.with_suffix("").parts)
    if parts[0] == "src":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    name = ".".join(parts) if parts[0] in {"scripts", "tests"} or relative.parts[0] == "src" else None
    try:
        if name:
            importlib.import_module(name)
        else:  # deploy/common.py, gunicorn.conf.py: files, not modules of a package
            loader = importlib.machinery.SourceFileLoader(f"file_{len(failed)}", str(path))
            loader.load_module()
    except BaseException as error:
        if type(error).__name__ != "Skipped":  # a test module that pytest.skip()s at import
            failed.append(f"{relative}: {type(error).__name__}: {error}")
for path in sys.argv[2:]:  # scripts without an extension that run only as __main__
    loader = importlib.machinery.SourceFileLoader("script", path)
    try:
        loader.load_module()
    except BaseException as error:
        failed.append(f"{path}: {type(error).__name__}: {error}")
print("\\n".join(failed))
"""


@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("RENAME_EXAMPLES", "5")),
    deadline=None,
)
@given(repository=repository_names())
def test_the_tree_renamed_for_any_name_is_valid_everywhere(template, tmp_path_factory, repository):
    """Every shell script passes bash -n and shellcheck, every Python file compiles and imports,
    every TOML, YAML and JSON file parses, the old name is gone, and each occurrence was
    replaced by a spelling valid in its context."""
    try:
        package = rename_rules.package_from_repository(repository)
    except rename_rules.RenameError:
        assume(False)
    assume(OLD not in package)
    model = ROOT / "models" / "model.skops"
    if not model.exists():  # the app, imported below, loads it
        if os.environ.get("CI") == "true":
            pytest.fail("models/model.skops is missing (make test trains it)")
        pytest.skip("models/model.skops is missing; run `make model`")
    module = load_script(template)
    module.find_ruff = lambda root: None  # formatting is make format's; validity is checked here
    tree = tmp_path_factory.mktemp("renamed")
    try:
        module.rename(template, package, "octo-org", into=tree)
    except module.RenameError:  # a keyword, a dependency, a folder: refusals are tested above
        assume(False)
    files = {p.relative_to(tree).as_posix(): p for p in tree.rglob("*") if p.is_file()}
    assert f"src/{package}/__init__.py" in files
    texts = {}
    for relative, path in files.items():
        try:
            texts[relative] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    # The old name is gone, and no template machinery is left.
    assert [r for r, text in texts.items() if OLD in text.lower() or OLD in r] == []
    assert not set(TEMPLATE_ONLY) & set(files)
    # Each occurrence in the template got a spelling valid in its context, and it is there.
    entries = rename_rules.package_entries(template / "src" / OLD)
    for relative in project_files(template):
        if relative in TEMPLATE_ONLY or relative.startswith(".github/workflows/"):
            continue
        try:
            text = (template / relative).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        text = rename_rules.drop_template_only(text, relative)
        kind = rename_rules.kind_of(relative, text)
        new_path = rename_rules.rename_path(relative, package, entries)
        for _, _, context in rename_rules.occurrences(text, kind, entries):
            spelled = rename_rules.spell(package, context)
            assert VALID[context](spelled), (relative, context, spelled)
            assert spelled in texts[new_path], (relative, context, spelled)
    # Each file parses as what it is.
    first_lines = {r: t.split("\n", 1)[0] for r, t in texts.items()}
    shell = [r for r, f in first_lines.items() if re.match(r"#!.*\b(ba)?sh\b", f)]
    scripts = [r for r, f in first_lines.items() if re.match(r"#!.*python", f) and "." not in r]
    assert "scripts/model-summary" in shell
    for relative in shell:
        syntax = subprocess.run(["bash", "-n", files[relative]], capture_output=True, text=True)
        assert syntax.returncode == 0, (relative, syntax.stderr)
    for linter in ([BIN / "shellcheck", *shell], [BIN / "hadolint", "Dockerfile"]):
        lint = subprocess.run(linter, cwd=tree, capture_output=True, text=True, timeout=120)
        assert lint.returncode == 0, lint.stdout
    for relative, text in texts.items():
        if relative.endswith(".py") or relative in scripts:
            ast.parse(text, relative)
        elif relative.endswith((".toml", ".lock")):
            tomllib.loads(text)
        elif relative.endswith((".yml", ".yaml")):
            yaml.safe_load(text)
        elif relative.endswith(".json"):
            json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))  # JSON with comments
    shutil.copytree(ROOT / "models", tree / "models")
    main_only = [files[s] for s in scripts if 'if __name__ == "__main__":' in texts[s]]
    imported = subprocess.run(
        [BIN / "python", "-c", IMPORT_ALL, tree, *main_only],
        cwd=tree,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"CI": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == ""


# -- The README's steps, then the copy's whole test suite ------------------------------------


def readme_steps() -> list[str]:
    """The commands of the README's `Use this template` section, in its order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use this template", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```sh\n(.*?)^```", section, flags=re.M | re.S)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_steps_rename_then_end_in_make_test():
    steps = readme_steps()
    assert shlex.split(steps[0])[:3] == ["scripts/rename", "--repository", "loan-default"]
    assert shlex.split(steps[-1])[0] == "make"
    assert shlex.split(steps[-1])[-1] == "test"


SELECTED = os.environ.get("RENAMED_SUITE", "")


@pytest.mark.slow
@pytest.mark.parametrize("repository", REPRESENTATIVE)
def test_the_readme_steps_end_in_a_green_make_test(tmp_path, repository):
    if SELECTED != "all" and repository not in SELECTED.split(","):
        pytest.skip("minutes per name: RENAMED_SUITE=all or a name runs it (docs/template.md)")
    find_uv()
    copy = copy_template(tmp_path)
    # The copy's own environment, from uv's cache (this project's make env filled it).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH"} and not k.startswith(("PYTEST_", "COV_"))
    }
    uv = Path(find_uv()).parent
    env |= {"PATH": f"{uv}:{env['PATH']}", "UV_OFFLINE": "1", "GITHUB_REPOSITORY_OWNER": "octo"}
    # The copy's own .ci/run would install the image-store tools (.ci/install-docker-stores);
    # this checkout's, when installed, stand in for that download.
    if (ROOT / ".tools" / "docker").is_dir():
        (copy / ".tools").mkdir(exist_ok=True)
        (copy / ".tools" / "docker").symlink_to(ROOT / ".tools" / "docker")
    for step in readme_steps():
        step = step.replace("loan-default", repository, 1)
        done = subprocess.run(
            ["bash", "-c", step], cwd=copy, env=env, capture_output=True, text=True, timeout=1800
        )
        assert done.returncode == 0, f"{step}:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    package = REPRESENTATIVE[repository]
    assert (copy / "src" / package / "__init__.py").is_file()
    assert (copy / ".venv" / "bin" / rename_rules.spell(package, "console script")).is_file()
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed
    assert int(passed[1]) >= 500
    assert " failed" not in done.stdout
