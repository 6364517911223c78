"""scripts/rename: a renamed copy of the template is a working project under the new name.

The expensive part (one copy, `make env model` and the copy's own tests) runs once per module.
The copy installs from uv's cache (UV_OFFLINE=1), filled by this project's own `make env`.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEW = "my_model"
# Not copied: environments, caches and the trained model (the copy trains its own).
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".tools", "models", "__pycache__", "*.pyc", ".*_cache", ".hypothesis",
    ".schemathesis", "coverage.xml", ".coverage", "mutants",
)  # fmt: skip
# The copy's own tests of the service itself: config, model, API, page and console script.
COPY_TESTS = ["test_config.py", "test_model.py", "test_api.py", "test_web.py", "test_cli.py"]


def find_uv():
    local = ROOT / ".tools" / "bin" / "uv"
    return shutil.which("uv") or (str(local) if os.access(local, os.X_OK) else None)


def copy_template(tmp: Path) -> Path:
    copy = tmp / "copy"
    shutil.copytree(ROOT, copy, ignore=IGNORED, symlinks=True)
    # A repository, as in the rename workflow: the script asks git which files are the project's.
    subprocess.run(["git", "init", "-q", str(copy)], check=True, timeout=30)
    return copy


def rename(copy: Path, *args, env=None):
    return subprocess.run(
        [sys.executable, str(copy / "scripts" / "rename"), *args],
        cwd=copy,
        env=env or os.environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_env():
    """Environment for commands in the copy: offline uv, none of this project's venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    uv = find_uv()
    if uv:
        env["PATH"] = f"{Path(uv).parent}{os.pathsep}{env['PATH']}"
    return env | {"UV_OFFLINE": "1", "GITHUB_REPOSITORY_OWNER": "octo-org"}


@pytest.fixture(scope="module")
def renamed(tmp_path_factory):
    copy = copy_template(tmp_path_factory.mktemp("rename"))
    done = rename(copy, NEW, env=copy_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return copy, done


def text_files(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and not {".git", ".venv"} & set(path.relative_to(root).parts):
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("My_Model", "lowercase letters, digits and underscores"),
        ("my-model", "lowercase letters, digits and underscores"),
        ("2fast", "starting with a letter"),
        ("class", "keyword"),
        ("json", "standard-library module"),
        ("pandas", "dependency of this project"),
        ("my__model", "single underscores"),
        ("tests", "folder of this repository"),
    ],
)
def test_refuses_names_that_are_not_valid_new_packages(tmp_path, name, reason):
    copy = copy_template(tmp_path)
    before = (copy / "pyproject.toml").read_text()
    done = rename(copy, name)
    assert done.returncode == 2
    assert done.stderr.startswith(f"rename: {name!r}")
    assert reason in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert (copy / "src" / "mlservice").is_dir()  # nothing was touched
    assert (copy / "pyproject.toml").read_text() == before


def test_no_mlservice_is_left(renamed):
    copy, _ = renamed
    left = [
        f"{path.relative_to(copy)}: {line.strip()}"
        for path, text in text_files(copy)
        for line in text.splitlines()
        if "mlservice" in line.lower()
    ]
    assert left == []
    assert not (copy / "src" / "mlservice").exists()
    assert (copy / "src" / NEW / "__init__.py").is_file()
    # The template-only machinery leaves with the old name.
    for gone in ("scripts/rename", "tests/test_rename.py", ".github/workflows/rename.yml"):
        assert not (copy / gone).exists(), gone
    assert (copy / ".github" / "workflows" / "pipeline.yml").is_file()


def test_imports_use_the_package_name_and_everything_else_the_dash_form(renamed):
    copy, _ = renamed
    project = tomllib.loads((copy / "pyproject.toml").read_text())
    assert project["project"]["name"] == "my-model"
    assert project["project"]["scripts"] == {
        "my-model": "my_model.cli:main",
        "my-model-server": "my_model.server:main",
    }
    assert project["tool"]["ruff"]["lint"]["isort"]["known-first-party"][0] == NEW
    assert project["tool"]["coverage"]["run"]["source"] == [NEW]
    makefile = (copy / "Makefile").read_text()
    assert "$(BIN)/my-model train" in makefile
    assert "src/my_model/training.py" in makefile
    assert "IMAGE ?= my-model:local" in makefile
    assert 'wsgi_app = "my_model.wsgi:app"' in (copy / "gunicorn.conf.py").read_text()
    dockerfile = (copy / "Dockerfile").read_text()
    assert "import my_model.api" in dockerfile
    assert 'image.title="my-model"' in dockerfile
    assert (copy / "README.md").read_text().startswith("# my-model\n")
    assert '\nname = "my-model"\n' in (copy / "uv.lock").read_text()
    # Lightsail service names allow no underscores: ":service.label.N" images use the dash form.
    assert ':my-model.v1-2-3.7"' in (copy / "tests" / "test_deploy_manifests.py").read_text()
    codeowners = (copy / ".github" / "CODEOWNERS").read_text()
    assert re.search(r"^\* @octo-org$", codeowners, flags=re.MULTILINE)


def test_docs_and_license_describe_the_new_project_not_the_template(renamed):
    copy, _ = renamed
    readme = (copy / "README.md").read_text()
    contributing = (copy / "CONTRIBUTING.md").read_text()
    for text in (readme, contributing):
        assert "template-only" not in text
        assert "scripts/rename" not in text
        assert "Use this template" not in text
        assert "\n\n\n" not in text  # a dropped section leaves no gap
        assert not text.endswith("\n\n")
    assert "## Use this template" in (ROOT / "README.md").read_text()
    assert "## Make it yours" in readme
    assert readme.startswith("# my-model\n\nA Flask machine-learning service")
    assert "## Template-only: renaming" not in contributing
    assert "## Cut a release" in contributing
    license_text = (copy / "LICENSE").read_text()
    new_holder, template_holder = re.findall(r"^Copyright \(c\) .*$", license_text, re.M)
    assert re.fullmatch(r"Copyright \(c\) 20\d\d The my-model authors", new_holder)
    # MIT: the notice of the work it was copied from stays.
    assert template_holder == "Copyright (c) 2026 The ML service template authors"
    assert "Permission is hereby granted" in license_text


def test_workflow_files_are_never_rewritten(renamed):
    copy, _ = renamed
    # The workflow token may delete a workflow file but not change one, so rename.yml goes and
    # every other workflow stays byte for byte.
    workflows = ROOT / ".github" / "workflows"
    before = {p.name: p.read_bytes() for p in workflows.iterdir() if p.name != "rename.yml"}
    after = {p.name: p.read_bytes() for p in (copy / ".github" / "workflows").iterdir()}
    assert before
    assert after == before


def test_lists_only_the_lines_the_new_name_made_too_long(tmp_path):
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
    tools = tmp_path / "bin"  # ruff on PATH, as in a checkout without .venv
    tools.mkdir()
    (tools / "ruff").symlink_to(ROOT / ".venv" / "bin" / "ruff")
    env = copy_env()
    done = rename(copy, long_name, "--no-lock", env=env | {"PATH": f"{tools}:{env['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    listed = done.stdout.split("the new name made them too long:\n", 1)[1].splitlines()
    reported = [line for line in listed if line.startswith("tests/long_lines.py:")]
    assert reported == ["tests/long_lines.py:4: 107 characters"]
    # A workflow is not rewritten, only named, even when it holds the old name.
    assert workflow.read_text() == "name: extra  # runs mlservice\n"
    assert "rename: .github/workflows/extra.yml still names mlservice" in done.stdout


def test_an_unclosed_template_only_section_stops_the_rename_before_any_change(tmp_path):
    copy = copy_template(tmp_path)
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- template-only:start -->\nnever closed\n")
    before = (copy / "pyproject.toml").read_text()
    done = rename(copy, NEW, "--no-lock")
    assert done.returncode == 2
    assert (
        done.stderr
        == "rename: README.md: template-only section without <!-- template-only:end -->\n"
    )
    assert (copy / "src" / "mlservice").is_dir()
    assert (copy / "pyproject.toml").read_text() == before


def test_a_renamed_copy_is_refused_and_the_same_name_is_a_no_op(renamed, tmp_path):
    copy, _ = renamed
    # The script removed itself from the copy: run the template's against a copy of the copy.
    again = tmp_path / "again"
    shutil.copytree(copy, again, ignore=IGNORED)
    shutil.copy2(ROOT / "scripts" / "rename", again / "scripts" / "rename")
    other = rename(again, "other_name")
    assert other.returncode == 2
    assert "already renamed (src/my_model/)" in other.stderr
    same = rename(again, NEW)
    assert same.returncode == 0
    assert "already called my_model" in same.stdout


def test_the_renamed_copy_is_lint_clean(renamed):
    copy, _ = renamed
    ruff = str(ROOT / ".venv" / "bin" / "ruff")
    scripts = [str(p) for p in (copy / "scripts").iterdir() if p.name == "container-test"]
    # Imports re-sorted and lines re-wrapped by the script; no undefined name after the rename.
    check = subprocess.run(
        [ruff, "check", "--quiet", ".", *scripts],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [ruff, "format", "--check", "--quiet", "."],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.slow
def test_the_renamed_copy_installs_trains_and_passes_its_own_tests(renamed):
    copy, _ = renamed
    if not find_uv():
        if os.environ.get("CI") == "true":
            pytest.fail("uv is missing (make env bootstraps it)")
        pytest.skip("uv is missing")
    env = copy_env()

    def run(*command, timeout):
        done = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    # The renamed lock is what `make env` (uv sync --frozen) installs, and uv agrees it is current.
    run("make", "env", "model", timeout=600)
    run(find_uv(), "lock", "--check", "--offline", timeout=120)
    assert (copy / ".venv" / "bin" / "my-model").is_file()
    assert not (copy / ".venv" / "bin" / "mlservice").exists()
    assert (copy / "models" / "model.skops").is_file()  # trained by `.venv/bin/my-model train`
    tests = [f"tests/{name}" for name in COPY_TESTS]
    done = run(".venv/bin/pytest", *tests, "-q", "-p", "no:cacheprovider", timeout=600)
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed
    assert int(passed[1]) >= 50
    assert "failed" not in done.stdout
