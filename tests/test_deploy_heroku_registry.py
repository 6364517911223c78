"""deploy/heroku against a real registry: Debian's docker-registry on 127.0.0.1 with htpasswd auth.

The script pushes a real image with the real docker, reads the image config digest back from the
registry, and releases it through a local stand-in of the Platform API that checks the method,
path, Accept header, Authorization and body; the smoke test runs against the real app.
Needs docker and docker-registry: skipped locally without them, a failure under CI=true.
"""

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

import bcrypt
import pytest

from scripts.live_server import running_server
from tests.deploy_heroku import run_deploy_heroku
from tests.standins.heroku_api import API, DOCKER_RELEASES, MANIFEST_V2, FakeHeroku
from tests.standins.heroku_registry import OCI_TYPES, HerokuRegistry
from tests.tools import require as require_tool
from tests.tools import running_registry, unavailable


def require(tool: str) -> str:
    return require_tool(tool, "apt-get install docker.io docker-registry")


KEY = "hk-" + uuid.uuid4().hex  # a made-up API key


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """A docker-registry on 127.0.0.1 where only user `_` with KEY may push, behind Heroku's
    refusal of OCI manifests."""
    binary = require("docker-registry")
    require("docker")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        unavailable("no docker daemon answers (.ci/ensure-docker starts one)")
    tmp = tmp_path_factory.mktemp("registry")
    hashed = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt()).decode()
    (tmp / "htpasswd").write_text(f"_:{hashed}\n")
    with (
        running_registry(binary, tmp, htpasswd=tmp / "htpasswd") as address,
        HerokuRegistry(address) as heroku_registry,
    ):
        yield heroku_registry


@pytest.fixture(scope="module")
def registry(front) -> str:
    return front.url.removeprefix("http://")


@pytest.fixture(scope="module")
def tiny_image(registry, tmp_path_factory):
    """A one-file image built offline (FROM scratch); removed afterwards."""
    context = tmp_path_factory.mktemp("image")
    (context / "hello.txt").write_text(uuid.uuid4().hex)  # unique: a fresh config digest
    (context / "Dockerfile").write_text('FROM scratch\nCOPY hello.txt /\nCMD ["/hello.txt"]\n')
    tag = f"mlservice-deploy-test:{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["docker", "build", "--quiet", "--network", "host", "-t", tag, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        check=True,
        capture_output=True,
    )
    yield tag
    pushed = f"{registry}/demo/web"
    subprocess.run(["docker", "rmi", "--force", tag, pushed], capture_output=True, check=False)


@pytest.mark.slow
def test_heroku_pushes_to_a_real_registry_and_releases_its_config_digest(
    tmp_path, registry, tiny_image
):
    local_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tiny_image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with running_server(workers=1) as app_url, FakeHeroku("demo", KEY, app_url + "/") as fake:
        done = run_deploy_heroku(
            tiny_image,
            app="demo",
            key=KEY,
            registry=registry,
            api_url=fake.url,
            home=tmp_path,
            env={"PATH": os.environ["PATH"]},
        )
        print(done.stdout, done.stderr)
        assert done.returncode == 0
        requests = fake.requests
        released = fake.current()

    # The registry holds the image, and its config digest is the local image's id.
    manifest_request = urllib.request.Request(
        f"http://{registry}/v2/demo/web/manifests/latest",
        headers={"Accept": MANIFEST_V2, "Authorization": basic("_", KEY)},
    )
    with urllib.request.urlopen(manifest_request, timeout=10) as answer:
        manifest = json.load(answer)
    assert manifest["config"]["digest"] == local_id

    (patch,) = [
        r for r in requests if (r["method"], r["path"]) == ("PATCH", "/apps/demo/formation")
    ]
    assert patch["path"] == "/apps/demo/formation"
    assert patch["headers"]["Accept"] == DOCKER_RELEASES
    assert patch["headers"]["Authorization"] == f"Bearer {KEY}"
    assert patch["headers"]["Content-Type"] == "application/json"
    assert patch["body"] == {"updates": [{"type": "web", "docker_image": local_id}]}
    assert released["image"] == local_id
    assert all(r["headers"]["Accept"].startswith(API) for r in requests)
    assert "POST" not in [r["method"] for r in requests]  # no rollback
    assert (tmp_path / "deploy-output").read_text() == f"url={app_url}/\n"
    assert KEY not in done.stdout + done.stderr


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("media_type", OCI_TYPES)
def test_the_registry_refuses_oci_manifests_as_herokus_does(front, registry, media_type):
    manifest = json.dumps({"schemaVersion": 2, "mediaType": media_type}).encode()
    request = urllib.request.Request(
        f"http://{registry}/v2/demo/web/manifests/latest",
        data=manifest,
        method="PUT",
        headers={"Content-Type": media_type, "Authorization": basic("_", KEY)},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 405
    assert front.refused[-1] == media_type
