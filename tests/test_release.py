"""The release path outside the workflow file.

`make release VERSION=X.Y.Z` tags a clean tree, refuses everything else, never pushes (each test
runs the project's Makefile in a fresh git repository under tmp_path). scripts/push-tested-image
pushes exactly the tested image to a real registry (Debian's docker-registry on 127.0.0.1) and
fails when the registry holds anything else.
"""

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.test_deploy_heroku_registry import require, unavailable
from tests.tools import running_registry

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


# -- scripts/push-tested-image against a real registry ----------------------------------------

PUSH = ROOT / "scripts" / "push-tested-image"


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory):
    """A docker-registry on 127.0.0.1 without auth (GHCR's login is not what is tested here)."""
    binary = require("docker-registry")
    require("docker")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        unavailable("no docker daemon answers (scripts/ensure-docker starts one)")
    with running_registry(binary, tmp_path_factory.mktemp("open-registry")) as address:
        yield address


@pytest.fixture
def images(tmp_path):
    """Two different one-file images built offline (FROM scratch): (tag, id) each; removed after."""
    built = []
    for _ in range(2):
        context = tmp_path / uuid.uuid4().hex
        context.mkdir()
        (context / "hello.txt").write_text(uuid.uuid4().hex)  # unique: a fresh image id
        (context / "Dockerfile").write_text('FROM scratch\nCOPY hello.txt /\nCMD ["/hello.txt"]\n')
        tag = f"mlservice-push-test:{uuid.uuid4().hex[:12]}"
        subprocess.run(
            ["docker", "build", "--quiet", "--network", "host", "-t", tag, str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            check=True,
            capture_output=True,
        )
        image_id = docker("image", "inspect", "-f", "{{.Id}}", tag)
        built.append((tag, image_id))
    yield built
    subprocess.run(["docker", "rmi", "--force", *(t for t, _ in built)], capture_output=True)


def docker(*args):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


def push_tested(tmp_path, *args, **env):
    return subprocess.run(
        [str(PUSH), *args],
        env={**os.environ, "GITHUB_OUTPUT": str(tmp_path / "output"), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def registry_manifest(registry, name, reference):
    request = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{reference}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.headers["Docker-Content-Digest"], json.load(answer)


def test_pushes_the_tested_image_under_every_tag_and_reports_its_digest(
    tmp_path, open_registry, images
):
    (tested, tested_id), _ = images
    name = f"{open_registry}/owner/repo"
    refs = [f"{name}:1.2.3", f"{name}:1.2"]
    for ref in refs:
        docker("tag", tested, ref)
    done = push_tested(tmp_path, tested_id, *refs)
    assert done.returncode == 0, done.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
    # What the registry serves under each tag is the tested image, under the reported digest.
    for tag in ("1.2.3", "1.2"):
        digest, manifest = registry_manifest(open_registry, "owner/repo", tag)
        assert manifest["config"]["digest"] == tested_id
        assert digest == outputs["digest"]
    assert outputs["image"] == f"{name}@{outputs['digest']}"
    docker("rmi", *refs)


def test_refuses_a_tag_that_names_another_image_locally(tmp_path, open_registry, images):
    (_, tested_id), (other, _) = images
    ref = f"{open_registry}/owner/repo:sha-abc"
    docker("tag", other, ref)
    done = push_tested(tmp_path, tested_id, ref)
    assert done.returncode == 1
    assert f"{ref} is sha256:" in done.stderr
    assert f"not the tested {tested_id}" in done.stderr
    with pytest.raises(urllib.error.HTTPError):  # nothing was pushed
        registry_manifest(open_registry, "owner/repo", "sha-abc")
    docker("rmi", ref)


def test_fails_when_the_registry_holds_another_image_after_the_push(
    tmp_path, open_registry, images
):
    # Another push of the same tag lands between ours and the read-back (a race, or a registry
    # that rewrites images): the registry's manifest no longer has the tested config.
    (tested, tested_id), (other, other_id) = images
    ref = f"{open_registry}/owner/repo:latest"
    docker("tag", tested, ref)
    racing = tmp_path / "docker"
    racing.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == push ]]; then\n'
        '  docker "$@" || exit\n'
        f"  docker tag {other} {ref} && docker push --quiet {ref} >/dev/null\n"
        f"  docker tag {tested} {ref}\n"
        "  exit\n"
        "fi\n"
        'exec docker "$@"\n'
    )
    racing.chmod(0o755)
    done = push_tested(tmp_path, tested_id, ref, DOCKER=str(racing))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"push-tested-image: {ref} in the registry has config digest {other_id},"
        f" not the tested image {tested_id}"
    )
    assert not (tmp_path / "output").exists()  # no digest for a deploy to use
    docker("rmi", ref)


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "usage:"), (["latest", "x:y"], "is not an image id like sha256:")],
)
def test_bad_arguments_fail_with_one_line(tmp_path, args, message):
    done = push_tested(tmp_path, *args)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert message in done.stderr
