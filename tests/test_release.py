"""The release path outside the workflow file.

`make release VERSION=X.Y.Z` tags a clean tree, refuses everything else, never pushes (each test
runs the project's Makefile in a fresh git repository under tmp_path). scripts/push-tested-image
is tested in tests/test_push_tested_image.py and, with real registries and both of Docker's image
stores, in tests/test_image_stores.py.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Release Test",
    "GIT_AUTHOR_EMAIL": "release@example.invalid",
    "GIT_COMMITTER_NAME": "Release Test",
    "GIT_COMMITTER_EMAIL": "release@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,  # none of the machine's settings (signing, hooks, …)
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo, *args):
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        env=os.environ | GIT_ENV,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository on main with one commit holding the Makefile and a README."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(ROOT / "Makefile", repo / "Makefile")
    (repo / "README.md").write_text("first\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "Makefile", "README.md")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def release(repo, version):
    return subprocess.run(
        ["make", "--no-print-directory", "release", f"VERSION={version}"],
        cwd=repo,
        env=os.environ | GIT_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tags(repo):
    return git(repo, "tag", "--list").split()


def test_tags_a_clean_tree_and_prints_the_push_command(repo):
    done = release(repo, "1.2.3")
    assert done.returncode == 0, done.stderr
    assert tags(repo) == ["v1.2.3"]
    assert git(repo, "cat-file", "-t", "v1.2.3") == "tag"  # annotated
    assert git(repo, "rev-parse", "v1.2.3^{commit}") == git(repo, "rev-parse", "HEAD")
    assert "Release v1.2.3" in git(repo, "tag", "-n1", "v1.2.3")
    assert "git push origin v1.2.3" in done.stdout
    assert "warning" not in done.stderr


@pytest.mark.parametrize("version", ["", "v1.2.3", "1.2", "1.2.3-rc.1", "1.2.x", "01.2.3 x"])
def test_refuses_a_version_that_is_not_x_y_z(repo, version):
    done = release(repo, version)
    assert done.returncode != 0
    assert "VERSION=X.Y.Z" in done.stderr
    assert tags(repo) == []


def test_refuses_uncommitted_changes_and_names_them(repo):
    (repo / "README.md").write_text("changed\n")
    git(repo, "add", "README.md")
    (repo / "Makefile").write_text((repo / "Makefile").read_text() + "# edited\n")
    done = release(repo, "1.0.0")
    assert done.returncode != 0
    assert "uncommitted changes" in done.stderr
    assert "M  README.md" in done.stderr  # staged
    assert " M Makefile" in done.stderr  # not staged
    assert tags(repo) == []


def test_refuses_untracked_files_and_names_them(repo):
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "drafts").mkdir()
    (repo / "drafts" / "a.txt").write_text("untracked\n")
    (repo / ".gitignore").write_text("*.log\n.gitignore\n")
    (repo / "run.log").write_text("ignored\n")
    done = release(repo, "1.0.0")
    assert done.returncode != 0
    first, *rest = done.stderr.splitlines()
    assert "untracked files" in first
    assert "uncommitted" not in done.stderr
    # Listed one per line, indented; the ignored run.log is not among them.
    assert sorted(line.strip() for line in rest if line.startswith("  ")) == [
        "drafts/",
        "notes.txt",
    ]
    assert tags(repo) == []


def test_refuses_an_existing_tag(repo):
    assert release(repo, "1.0.0").returncode == 0
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-q", "-m", "later")
    done = release(repo, "1.0.0")
    assert done.returncode != 0
    assert "tag v1.0.0 exists already" in done.stderr
    # The tag still names the first commit.
    assert git(repo, "rev-parse", "v1.0.0^{commit}") == git(repo, "rev-parse", "HEAD~1")


def test_warns_but_tags_off_main(repo):
    git(repo, "switch", "-q", "-c", "hotfix")
    done = release(repo, "1.0.1")
    assert done.returncode == 0, done.stderr
    assert "warning: tagging hotfix, not main" in done.stderr
    assert tags(repo) == ["v1.0.1"]
