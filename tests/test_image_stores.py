"""The image job's push and the Heroku push with each of Docker's image stores (docs/testing.md).

scripts/push-tested-image and deploy/heroku run for real against Debian's docker-registry on
127.0.0.1, once with a daemon on the classic store and once on the containerd image store (a
second dockerd when the machine's is not; tests/docker_daemons.py). Images for the containerd
store are built the way docker/build-push-action loads them there: buildx's OCI exporter, then
`docker load` (docker/buildx build/opt.go), so the media types are the build's own.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import bcrypt
import pytest

from scripts.live_server import running_server
from tests.deploy_heroku import run_deploy_heroku
from tests.docker_daemons import (
    STORES,
    docker,
    docker_with_store,
    store_of,
    unavailable,
    with_buildx,
)
from tests.standins.heroku_api import FakeHeroku
from tests.tools import running_registry

ROOT = Path(__file__).resolve().parents[1]
PUSH = ROOT / "scripts" / "push-tested-image"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT_ANY = ", ".join(
    (
        MANIFEST_V2,
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
BUILT: set[str] = set()  # ids of the images built here, removed with their daemon's fixture
KEY = "hk-" + uuid.uuid4().hex  # the made-up Heroku API key

pytestmark = pytest.mark.slow


def registry_binary() -> str:
    found = shutil.which("docker-registry")
    if found is None:
        unavailable("docker-registry is not installed (apt-get install docker-registry)")
    return found


@pytest.fixture(scope="module", params=STORES)
def store(request):
    """(store name, environment of a daemon using it)."""
    with docker_with_store(request.param) as env:
        yield request.param, env
        # The machine's daemon may be this store's: remove the images built here, every tag.
        if BUILT:
            docker(env, "rmi", "--force", *BUILT)
            BUILT.clear()


@pytest.fixture(scope="module")
def ghcr(tmp_path_factory):
    """An open registry standing in for ghcr.io."""
    with running_registry(registry_binary(), tmp_path_factory.mktemp("ghcr")) as address:
        yield address


@pytest.fixture(scope="module")
def heroku_registry(tmp_path_factory):
    """A registry where only user `_` with KEY may push, like registry.heroku.com."""
    tmp = tmp_path_factory.mktemp("heroku-registry")
    (tmp / "htpasswd").write_text(f"_:{bcrypt.hashpw(KEY.encode(), bcrypt.gensalt()).decode()}\n")
    with running_registry(registry_binary(), tmp, htpasswd=tmp / "htpasswd") as address:
        yield address


def build(tmp_path, store, oci_mediatypes=False):
    """A one-file image (FROM scratch, unique) in the store's daemon: (tag, id as Docker reports)."""
    name, env = store
    context = tmp_path / uuid.uuid4().hex
    context.mkdir()
    (context / "hello.txt").write_text(uuid.uuid4().hex)
    (context / "Dockerfile").write_text('FROM scratch\nCOPY hello.txt /\nCMD ["/hello.txt"]\n')
    tag = f"mlservice-store-test:{uuid.uuid4().hex[:12]}"
    if name == "classic":
        docker(
            {**env, "DOCKER_BUILDKIT": "0"},
            "build",
            "-q",
            "--network=host",
            "-t",
            tag,
            str(context),
        )
    else:
        tar = context / "image.tar"
        types = "true" if oci_mediatypes else "false"
        buildx = with_buildx(env, tmp_path / "buildx")
        docker(
            buildx,
            *("buildx", "build", "--provenance=false", "--sbom=false", "--network=host"),
            *("--tag", tag, "--output", f"type=oci,oci-mediatypes={types},dest={tar}"),
            str(context),
        )
        docker(env, "load", "--input", str(tar))
    image_id = docker(env, "image", "inspect", "--format", "{{.Id}}", tag)
    BUILT.add(image_id)
    return tag, image_id


def push_tested(tmp_path, env, *args):
    return subprocess.run(
        [sys.executable, str(PUSH), *args],
        env={**env, "GITHUB_OUTPUT": str(tmp_path / "output")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def outputs(tmp_path):
    return dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())


def manifest(registry, name, reference, auth=None):
    """(digest, content type, manifest) the registry serves, whatever its media type."""
    headers = {"Accept": ACCEPT_ANY} | ({"Authorization": auth} if auth else {})
    request = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{reference}", headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return (
            answer.headers["Docker-Content-Digest"],
            answer.headers["Content-Type"],
            json.load(answer),
        )


def test_a_second_daemon_leaves_the_machines_bridge_alone():
    # dockerd --bridge=none deletes the host's docker0 (moby's configureNetworking), after which
    # the machine's daemon cannot start a container: `make container-test` after `make test`.
    def interfaces():
        return {path.name for path in Path("/sys/class/net").iterdir()}

    if "docker0" not in interfaces():
        unavailable("the machine's daemon has no docker0 bridge (.ci/ensure-docker)")
    other = next(store for store in STORES if store != store_of(dict(os.environ)))
    with docker_with_store(other) as env:
        assert store_of(env) == other
        assert "docker0" in interfaces()
    assert "docker0" in interfaces()


def test_install_docker_stores_fails_with_one_line_when_debian_cannot_be_reached(tmp_path):
    # In a copy of the tree, with a machine whose Docker is too old (dockerd 20.10, no buildx):
    # it must fetch, the archive refuses, and nothing is left half-installed.
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        unavailable(".ci/install-docker-stores needs apt-get and dpkg-deb")
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "install-docker-stores", tmp_path / ".ci")
    old = tmp_path / "old-docker"
    old.mkdir()
    (old / "dockerd").write_text("#!/bin/sh\necho 'Docker version 20.10.24+dfsg1, build 5d6db84'\n")
    (old / "docker").write_text("#!/bin/sh\nexit 1\n")  # no buildx plugin
    for tool in old.iterdir():
        tool.chmod(0o755)
    (tmp_path / "apt.conf").write_text('Acquire::Retries "0";\n')  # refused is refused
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [tmp_path / ".ci" / "install-docker-stores"],
        env={
            **os.environ,
            "PATH": f"{old}:{os.environ['PATH']}",
            "DEBIAN_ARCHIVE": f"http://127.0.0.1:{port}/debian",
            "APT_CONFIG": str(tmp_path / "apt.conf"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    *_, last = done.stderr.splitlines()
    assert last.startswith(
        f"install-docker-stores: cannot read Debian trixie's package list from"
        f" http://127.0.0.1:{port}/debian: W: Failed to fetch http://127.0.0.1:{port}/debian/"
    )
    assert not (tmp_path / ".tools").exists()


# -- scripts/push-tested-image ----------------------------------------------------------------


def test_pushes_the_tested_image_under_every_tag_as_a_docker_v2_manifest(tmp_path, store, ghcr):
    name, env = store
    tag, tested = build(tmp_path, store)
    repository = f"owner/{name}-{uuid.uuid4().hex[:8]}"
    refs = [f"{ghcr}/{repository}:1.2.3", f"{ghcr}/{repository}:sha-abc"]
    for ref in refs:
        docker(env, "tag", tag, ref)
    done = push_tested(tmp_path, env, tested, *refs)
    assert done.returncode == 0, done.stderr
    reported = outputs(tmp_path)
    for reference in ("1.2.3", "sha-abc"):
        digest, media_type, held = manifest(ghcr, repository, reference)
        assert media_type == held["mediaType"] == MANIFEST_V2  # what Heroku and Lightsail take
        assert digest == reported["digest"]
        # The tested id is the config digest (classic) or the manifest digest (containerd).
        assert tested == (held["config"]["digest"] if name == "classic" else digest)
    assert reported["image"] == f"{ghcr}/{repository}@{reported['digest']}"


def test_refuses_a_tag_that_names_another_image_locally(tmp_path, store, ghcr):
    _, env = store
    (_, tested), (other, _) = build(tmp_path, store), build(tmp_path, store)
    ref = f"{ghcr}/owner/mixed:sha-abc"
    docker(env, "tag", other, ref)
    done = push_tested(tmp_path, env, tested, ref)
    assert done.returncode == 1
    assert f"not the tested {tested}" in done.stderr
    with pytest.raises(urllib.error.HTTPError):  # nothing was pushed
        manifest(ghcr, "owner/mixed", "sha-abc")


def test_fails_when_the_registry_holds_another_image_after_the_push(tmp_path, store, ghcr):
    # Another push of the same tag lands between ours and the read-back (a race, or a registry
    # that rewrites images): the registry no longer holds the tested image under the tag.
    name, env = store
    (tested, tested_id), (other, other_id) = build(tmp_path, store), build(tmp_path, store)
    ref = f"{ghcr}/owner/race-{name}:latest"
    docker(env, "tag", tested, ref)
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
    done = push_tested(tmp_path, {**env, "DOCKER": str(racing)}, tested_id, ref)
    assert done.returncode == 1
    # Either way the registry names the other image by what the store's ids are.
    expected = {
        "classic": f"has config digest {other_id}, not the tested image {tested_id}",
        "containerd": f"is manifest {other_id}, not the tested image {tested_id}"
        " (containerd image store: the image id is the manifest digest)",
    }[name]
    assert done.stderr.splitlines()[-1] == f"push-tested-image: {ref} in the registry {expected}"
    assert not (tmp_path / "output").exists()  # no digest for a deploy to use


@pytest.mark.parametrize("store", ["containerd"], indirect=True)
def test_an_oci_build_on_the_containerd_store_is_refused_before_any_deploy(tmp_path, store, ghcr):
    # buildx's default with the containerd store: OCI media types, which Heroku refuses.
    _, env = store
    tag, tested = build(tmp_path, store, oci_mediatypes=True)
    ref = f"{ghcr}/owner/oci:1.0.0"
    docker(env, "tag", tag, ref)
    done = push_tested(tmp_path, env, tested, ref)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"push-tested-image: {ref} was pushed as {OCI_MANIFEST}; Heroku and Lightsail take"
        " Docker v2 schema 2 image manifests only (build with oci-mediatypes=false,"
        " provenance: false, sbom: false, one platform)"
    )
    assert not (tmp_path / "output").exists()


def test_move_points_tags_at_the_released_digest_without_a_new_manifest(tmp_path, store, ghcr):
    _, env = store
    tag, tested = build(tmp_path, store)
    repository = f"owner/move-{uuid.uuid4().hex[:8]}"
    released = f"{ghcr}/{repository}:1.2.3"
    docker(env, "tag", tag, released)
    assert push_tested(tmp_path, env, tested, released).returncode == 0
    image = outputs(tmp_path)["image"]
    buildx = with_buildx(env, tmp_path / "buildx")
    done = push_tested(tmp_path, buildx, "--move", image, "1.2", "latest")
    assert done.returncode == 0, done.stderr
    digest = image.split("@")[1]
    for reference in ("1.2", "latest"):
        moved, media_type, _ = manifest(ghcr, repository, reference)
        assert (moved, media_type) == (digest, MANIFEST_V2)  # a copy, not an index around it


# -- deploy/heroku's push ---------------------------------------------------------------------


def test_heroku_releases_the_pulled_image_on_either_store(tmp_path, store, ghcr, heroku_registry):
    # As in the pipeline: the image job pushes the tested image, the deploy job's fresh daemon
    # pulls it by digest and deploy/heroku pushes it to Heroku's registry and releases it.
    name, env = store
    tag, tested = build(tmp_path, store)
    pushed_ref = f"{ghcr}/owner/heroku-{name}:1.2.3"
    docker(env, "tag", tag, pushed_ref)
    assert push_tested(tmp_path, env, tested, pushed_ref).returncode == 0
    image = outputs(tmp_path)["image"]
    docker(env, "rmi", tag, pushed_ref)  # the deploy job starts without it
    app = f"app-{name}"
    with running_server(workers=1) as app_url, FakeHeroku(app, KEY, app_url + "/") as fake:
        done = run_deploy_heroku(
            image,
            app=app,
            key=KEY,
            registry=heroku_registry,
            api_url=fake.url,
            home=tmp_path,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        (patch,) = [r for r in fake.requests if r["method"] == "PATCH" and "formation" in r["path"]]
    auth = "Basic " + base64.b64encode(f"_:{KEY}".encode()).decode()
    digest, media_type, held = manifest(heroku_registry, f"{app}/web", "latest", auth)
    assert media_type == MANIFEST_V2  # registry.heroku.com takes nothing else
    assert patch["body"] == {"updates": [{"type": "web", "docker_image": held["config"]["digest"]}]}
    ghcr_digest, _, ghcr_manifest = manifest(ghcr, f"owner/heroku-{name}", "1.2.3")
    assert held["config"] == ghcr_manifest["config"]  # the very image the image job pushed
    if name == "containerd":
        assert digest == ghcr_digest == tested  # pushed as pulled, byte for byte
