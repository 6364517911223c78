"""deploy/lightsail, deploy/appengine and deploy/heroku end to end against stand-ins.

The stand-ins in tests/standins/bin (aws, gcloud, docker) come first on PATH; they record
every call and answer in the documented formats from a state file. tests/standins/heroku_api.py
stands in for the Heroku Platform API, tests/standins/lightsailctl_release.py for the
lightsailctl release downloads. Every aws call is checked against botocore's Lightsail model. The smoke test runs for real: against the real app
(gunicorn on 127.0.0.1) or against a port where nothing listens. Nothing leaves 127.0.0.1.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import botocore.session
import botocore.validate
import pytest

from scripts.live_server import running_server
from tests.standins.heroku_api import DOCKER_RELEASES, FakeHeroku
from tests.standins.lightsailctl_release import Release

ROOT = Path(__file__).resolve().parent.parent
STANDINS = ROOT / "tests" / "standins" / "bin"
IMAGE = "ghcr.io/owner/repo@sha256:" + "a" * 64
SECRET = "hk-" + uuid.uuid4().hex  # a made-up API key


@pytest.fixture(scope="module")
def live_url():
    with running_server(workers=1) as url:
        yield url + "/"


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as probe:  # a free port: nothing listens there once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class Cloud:
    """One test's stand-in world: state file, call log, environment, GitHub output files."""

    def __init__(self, tmp: Path, state: dict) -> None:
        self.tmp = tmp
        self.state_path = tmp / "state.json"
        self.log_path = tmp / "calls.jsonl"
        self.state_path.write_text(json.dumps(state))
        # The stand-ins start with `#!/usr/bin/env python3`: point that at this interpreter, not
        # at a version-manager shim that costs a tenth of a second a call.
        python_dir = tmp / "python"
        python_dir.mkdir()
        (python_dir / "python3").symlink_to(sys.executable)
        self.env = {
            "PATH": os.pathsep.join([str(python_dir), str(STANDINS), os.environ["PATH"]]),
            "HOME": str(tmp),
            "STANDIN_STATE": str(self.state_path),
            "STANDIN_LOG": str(self.log_path),
            "LIGHTSAILCTL_DIR": str(tmp / "tools"),
            "DEPLOY_POLL_SECONDS": "0.01",
            "DEPLOY_TIMEOUT": "20",
            "SMOKE_WAIT": "1",
            "GITHUB_OUTPUT": str(tmp / "github_output"),
            "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
        }

    def deploy(
        self, target: str, *extra: str, version: str = "v1.2.3", **env: str
    ) -> subprocess.CompletedProcess:
        argv = [sys.executable, str(ROOT / "deploy" / target), "--image", IMAGE]
        done = subprocess.run(
            [*argv, "--version", version, *extra],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        print(done.stdout, done.stderr)  # shown when a test fails
        return done

    def calls(self, tool: str | None = None) -> list[dict]:
        if not self.log_path.exists():
            return []
        calls = [json.loads(line) for line in self.log_path.read_text().splitlines()]
        return [c for c in calls if tool in (None, c["tool"])]

    def state(self) -> dict:
        return json.loads(self.state_path.read_text())

    def output(self) -> str:
        path = self.tmp / "github_output"
        return path.read_text() if path.exists() else ""


def one_line_error(done: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The script's own error is one line (the smoke test may have printed its reason before)."""
    assert done.returncode == code
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("deploy/")]
    for word in words:
        assert word in line
    return line


# -- Lightsail -----------------------------------------------------------------------------------

PREVIOUS_CONTAINERS = {
    "web": {
        "image": ":mlservice.v1-1-0.3",
        "environment": {"PORT": "8000"},
        "ports": {"8000": "HTTP"},
    }
}
PREVIOUS_ENDPOINT = {"containerName": "web", "containerPort": 8000, "healthCheck": {"path": "/"}}


OLD_IMAGE = {"image": ":mlservice.v1-1-0.3", "digest": "sha256:" + "3" * 64}


def install_lightsailctl(tmp_path) -> None:
    """lightsailctl already installed at the pinned version."""
    tool = tmp_path / "tools" / "lightsailctl"
    tool.parent.mkdir(exist_ok=True)
    tool.write_text("#!/bin/sh\necho v1.0.8\n")
    tool.chmod(0o755)


def lightsail(tmp_path, url: str, outcomes: list[str], installed: bool = True) -> Cloud:
    previous = {
        "version": 1,
        "state": "ACTIVE",
        "containers": PREVIOUS_CONTAINERS,
        "publicEndpoint": PREVIOUS_ENDPOINT,
        "createdAt": "2026-11-01T00:00:00+00:00",
    }
    cloud = Cloud(
        tmp_path,
        {
            "service": "mlservice",
            "url": url,
            "images": 3,
            "stored": [{**OLD_IMAGE, "createdAt": "2026-11-01T00:00:00+00:00"}],
            "current": 1,
            "deployments": [previous],
            "outcomes": outcomes,
            "activate_after": 2,
            "log": ["[boot] gunicorn starting", "[boot] mlservice cannot start: model missing"],
            "local_images": [],
        },
    )
    cloud.env |= {"LIGHTSAIL_SERVICE": "mlservice", "AWS_REGION": "eu-west-1"}
    if installed:
        install_lightsailctl(tmp_path)
    return cloud


def operations(cloud: Cloud) -> list[str]:
    return [next(a for a in c["argv"][5:] if not a.startswith("-")) for c in cloud.calls("aws")]


LIGHTSAIL_MODEL = botocore.session.get_session().get_service_model("lightsail")


def api_request(call: dict) -> tuple[str, dict]:
    """The Lightsail API operation and parameters an `aws lightsail` command line sends."""
    argv = call["argv"]
    (operation,) = [a for a in argv[5:] if not a.startswith("-")][:1]
    params, options = {}, argv[argv.index(operation) + 1 :]
    for flag, value in zip(options[::2], options[1::2], strict=True):
        name = "".join(w.capitalize() for w in flag[2:].split("-"))
        name = name[0].lower() + name[1:]
        params[name] = (
            json.loads(call["files"][value[7:]]) if value.startswith("file://") else value
        )
    if operation == "push-container-image":  # the CLI pushes, then calls RegisterContainerImage
        return "RegisterContainerImage", {
            "serviceName": params["serviceName"],
            "label": params["label"],
            "digest": "sha256:" + "0" * 64,
        }
    return "".join(w.capitalize() for w in operation.split("-")), params


def check_against_botocore(cloud: Cloud) -> None:
    """Every aws call is a valid request of the Lightsail API (names, types, required members)."""
    for call in cloud.calls("aws"):
        assert call["argv"][:1] == ["lightsail"]
        operation, params = api_request(call)
        shape = LIGHTSAIL_MODEL.operation_model(operation).input_shape
        report = botocore.validate.ParamValidator().validate(params, shape)
        assert not report.has_errors(), (operation, report.generate_report())


def created(cloud: Cloud) -> list[dict]:
    """The containers and public endpoint of each create-container-service-deployment call."""
    result = []
    for call in cloud.calls("aws"):
        if "create-container-service-deployment" in call["argv"]:
            files = {Path(p).name: json.loads(text) for p, text in call["files"].items()}
            result.append(files)
    return result


def test_lightsail_pushes_deploys_waits_for_the_new_version_and_smoke_tests(tmp_path, live_url):
    cloud = lightsail(tmp_path, live_url, ["active"], installed=False)
    with Release(tmp_path / "release") as release:
        done = cloud.deploy("lightsail", LIGHTSAILCTL_BASE_URL=release.url)
    assert done.returncode == 0
    # lightsailctl was missing: the pinned release was checked and installed before the push.
    assert release.requests[0] == "/v1.0.8/lightsailctl_1.0.8_checksums.txt"
    assert len(release.requests) == 2
    installed = subprocess.run(
        [tmp_path / "tools" / "lightsailctl", "--version"], capture_output=True, text=True
    )
    assert installed.stdout == "v1.0.8\n"
    check_against_botocore(cloud)
    assert ["pull", IMAGE] in [c["argv"] for c in cloud.calls("docker")]
    (push,) = [c["argv"] for c in cloud.calls("aws") if "push-container-image" in c["argv"]]
    assert push[push.index("--label") + 1] == "v1-2-3"
    assert push[push.index("--image") + 1] == IMAGE
    assert push[:3] == ["lightsail", "--region", "eu-west-1"]
    # The parsed reference went into the rendered containers.json; the endpoint is the file's.
    (deployment,) = created(cloud)
    assert deployment["containers.json"]["web"]["image"] == ":mlservice.v1-2-3.4"
    assert deployment["containers.json"]["web"]["environment"]["WEB_CONCURRENCY"] == "2"  # nano
    template = json.loads((ROOT / "public-endpoint.json").read_text())
    assert deployment["public-endpoint.json"] == template
    # It kept polling while the deployment was ACTIVATING and stopped once it was current.
    ops = operations(cloud)
    after = ops[ops.index("create-container-service-deployment") + 1 :]
    assert after.count("get-container-services") == 2
    assert cloud.state()["current"] == 2
    assert cloud.output() == f"url={live_url}\n"
    assert "v1.2.3" in (tmp_path / "summary.md").read_text()


def test_lightsail_failed_deployment_prints_the_log_and_fails(tmp_path, live_url):
    cloud = lightsail(tmp_path, live_url, ["failed"])
    done = cloud.deploy("lightsail")
    one_line_error(done, 1, "deployment 2 FAILED", "deployment 1 still serves")
    assert "install_lightsailctl.py" not in done.stdout  # the pinned version was there already
    assert "mlservice cannot start: model missing" in done.stdout
    assert "get-container-log" in operations(cloud)
    assert len(created(cloud)) == 1  # Lightsail keeps the old deployment: nothing to redeploy
    assert cloud.output() == ""


def test_lightsail_timeout_prints_the_log_and_fails(tmp_path, live_url):
    cloud = lightsail(tmp_path, live_url, ["stuck"])
    done = cloud.deploy("lightsail", DEPLOY_TIMEOUT="1", DEPLOY_POLL_SECONDS="0.2")
    one_line_error(done, 1, "timed out after 1 s", "deployment 2")
    assert "gunicorn starting" in done.stdout
    assert cloud.output() == ""


def test_lightsail_smoke_failure_redeploys_the_previous_version(tmp_path, dead_url):
    cloud = lightsail(tmp_path, dead_url, ["active", "active"])
    done = cloud.deploy("lightsail")
    one_line_error(done, 1, "smoke test failed", "rolled back to deployment 1")
    first, rollback = created(cloud)
    assert first["containers.json"]["web"]["image"] == ":mlservice.v1-2-3.4"
    assert rollback["containers.json"] == PREVIOUS_CONTAINERS
    assert rollback["public-endpoint.json"] == PREVIOUS_ENDPOINT
    assert cloud.state()["current"] == 3  # the rollback deployment was waited for
    assert "delete-container-image" not in operations(cloud)
    check_against_botocore(cloud)
    assert cloud.output() == ""


@pytest.mark.parametrize(("power", "workers"), [("micro", "4"), ("small", "8")])
def test_lightsail_sets_web_concurrency_for_the_power(tmp_path, live_url, power, workers):
    cloud = lightsail(tmp_path, live_url, ["active"])
    cloud.state_path.write_text(json.dumps({**cloud.state(), "power": power}))
    done = cloud.deploy("lightsail")
    assert done.returncode == 0
    (deployment,) = created(cloud)
    assert deployment["containers.json"]["web"]["environment"]["WEB_CONCURRENCY"] == workers


def test_lightsail_deletes_the_oldest_images_but_never_a_deployed_one(tmp_path, live_url):
    cloud = lightsail(tmp_path, live_url, ["active"])
    state = cloud.state()
    # The previous deployment runs the oldest image; eight newer ones are stored.
    state["stored"] += [
        {
            "image": f":mlservice.v1-0-{n}.{n + 10}",
            "digest": "sha256:" + f"{n}" * 64,
            "createdAt": f"2026-11-0{n}T00:00:00+00:00",
        }
        for n in range(2, 10)
    ]
    cloud.state_path.write_text(json.dumps(state))
    done = cloud.deploy("lightsail", LIGHTSAIL_KEEP_IMAGES="3")
    assert done.returncode == 0
    deleted = [c["argv"][-1] for c in cloud.calls("aws") if "delete-container-image" in c["argv"]]
    # Five at most per deployment, the oldest first; the rest go next time.
    assert deleted == [f":mlservice.v1-0-{n}.{n + 10}" for n in (2, 3, 4, 5, 6)]
    assert {i["image"] for i in cloud.state()["stored"]} == {
        ":mlservice.v1-2-3.4",  # the new deployment's
        ":mlservice.v1-0-9.19",
        ":mlservice.v1-0-8.18",
        ":mlservice.v1-0-7.17",  # beyond the three kept, left for the next deployment
        OLD_IMAGE["image"],  # the previous deployment's: the rollback needs it
    }
    check_against_botocore(cloud)


def run_installer(tmp_path, base_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, ROOT / "deploy" / "install_lightsailctl.py", "--dir", tmp_path / "bin"],
        env={"PATH": os.environ["PATH"], "LIGHTSAILCTL_BASE_URL": base_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_installer_installs_the_release_whose_checksum_matches(tmp_path):
    with Release(tmp_path / "release") as release:
        done = run_installer(tmp_path, release.url)
    assert done.returncode == 0, done.stderr
    installed = subprocess.run(
        [tmp_path / "bin" / "lightsailctl", "--version"], capture_output=True
    )
    assert installed.stdout == b"v1.0.8\n"
    assert [p.name for p in (tmp_path / "bin").iterdir()] == ["lightsailctl"]


def test_installer_refuses_an_archive_whose_checksum_differs(tmp_path):
    with Release(tmp_path / "release", tamper=True) as release:
        done = run_installer(tmp_path, release.url)
    assert done.returncode == 1
    assert "SHA-256" in done.stderr
    assert "not installed" in done.stderr
    assert not (tmp_path / "bin").exists()


def test_installer_fails_clearly_without_the_release(tmp_path):
    with Release(tmp_path / "release") as release:
        done = run_installer(tmp_path, release.url + "/missing")
    assert done.returncode == 1
    assert "answered 404" in done.stderr
    assert not (tmp_path / "bin").exists()


def test_lightsail_dry_run_prints_every_call_and_runs_none(tmp_path, live_url):
    cloud = lightsail(tmp_path, live_url, ["active"])
    done = cloud.deploy("lightsail", "--dry-run")
    assert done.returncode == 0
    assert cloud.calls() == []
    assert cloud.output() == ""
    for word in (
        "get-container-services",
        "deploy/install_lightsailctl.py --dir",
        "docker pull",
        "push-container-image",
        "create-container-service-deployment",
        '"image": ":mlservice.v1-2-3.<N>"',
        "mlservice smoke",
    ):
        assert word in done.stdout


def test_lightsail_without_a_service_is_one_clear_error(tmp_path, live_url):
    cloud = lightsail(tmp_path, live_url, [])
    done = cloud.deploy("lightsail", LIGHTSAIL_SERVICE="")
    one_line_error(done, 2, "LIGHTSAIL_SERVICE is not set")
    assert cloud.calls() == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--version", "1.2.3"], "not a release tag"),
        (["--image", ""], "--image (or DEPLOY_IMAGE) is not set"),
    ],
)
def test_bad_arguments_are_one_clear_error(tmp_path, live_url, args, words):
    cloud = lightsail(tmp_path, live_url, [])
    done = cloud.deploy("lightsail", *args)
    one_line_error(done, 2, words)
    assert cloud.calls() == []


# -- App Engine ----------------------------------------------------------------------------------


def appengine(tmp_path, new_version_url: str) -> Cloud:
    # 22 versions; the oldest serves all traffic until the new one takes over.
    versions = [
        {
            "id": f"v0-{n}-0",
            "createTime": f"2026-0{1 + n // 10}-{1 + n % 10:02d}T00:00:00Z",
            "versionUrl": f"https://v0-{n}-0-dot-demo.ew.r.appspot.com",
        }
        for n in range(22)
    ]
    cloud = Cloud(
        tmp_path,
        {
            "project": "demo",
            "service": "default",
            "versions": versions,
            "allocations": {"v0-0-0": 1.0},
            "new_version_url": new_version_url,
        },
    )
    cloud.env |= {
        "GCP_PROJECT_ID": "demo",
        "APPENGINE_KEEP_VERSIONS": "20",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
    }
    return cloud


def gcloud_commands(cloud: Cloud) -> list[str]:
    return [" ".join(c["argv"][:3]) for c in cloud.calls("gcloud")]


def test_appengine_deploys_without_promoting_smoke_tests_then_migrates_and_prunes(
    tmp_path, live_url
):
    cloud = appengine(tmp_path, live_url)
    done = cloud.deploy("appengine")
    assert done.returncode == 0
    (deploy,) = [c["argv"] for c in cloud.calls("gcloud") if c["argv"][:2] == ["app", "deploy"]]
    assert deploy[2] == str(ROOT / "app.yaml")
    assert deploy[deploy.index("--version") + 1] == "v1-2-3-4242-1"
    assert {"--no-promote", "--quiet"} <= set(deploy)
    assert deploy[deploy.index("--project") + 1] == "demo"
    commands = gcloud_commands(cloud)
    assert commands.index("app versions describe") < commands.index("app services set-traffic")
    (traffic,) = [c["argv"] for c in cloud.calls("gcloud") if "set-traffic" in c["argv"]]
    assert "--splits=v1-2-3-4242-1=1" in traffic
    assert "--migrate" in traffic
    # 23 versions, keep 20: the three oldest go (the old serving one too, once it serves nothing).
    (delete,) = [c["argv"] for c in cloud.calls("gcloud") if "delete" in c["argv"]]
    assert delete[3 : delete.index("--service")] == ["v0-2-0", "v0-1-0", "v0-0-0"]
    state = cloud.state()
    assert state["allocations"] == {"v1-2-3-4242-1": 1.0}
    assert len(state["versions"]) == 20
    assert cloud.output() == f"url={live_url}\n"


def test_appengine_smoke_failure_leaves_traffic_where_it_was(tmp_path, dead_url):
    cloud = appengine(tmp_path, dead_url)
    done = cloud.deploy("appengine")
    one_line_error(done, 1, "smoke test failed", "traffic stays", "v0-0-0")
    commands = gcloud_commands(cloud)
    assert "app services set-traffic" not in commands
    assert "app versions delete" not in commands
    assert cloud.state()["allocations"] == {"v0-0-0": 1.0}
    assert cloud.output() == ""


def serving_same_tag(cloud: Cloud, url: str) -> None:
    """v1.2.3 serves already under the id v1-2-3 (as deployed before unique ids)."""
    state = cloud.state()
    same = {"id": "v1-2-3", "createTime": "2026-11-01T00:00:00Z", "versionUrl": url}
    state["versions"].append(same)
    state["allocations"] = {"v1-2-3": 1.0}
    cloud.state_path.write_text(json.dumps(state))


def test_appengine_redeploying_the_serving_tag_never_replaces_the_serving_version(
    tmp_path, live_url, dead_url
):
    cloud = appengine(tmp_path, dead_url)  # the new upload is broken
    serving_same_tag(cloud, live_url)
    done = cloud.deploy("appengine")
    one_line_error(done, 1, "smoke test failed", "traffic stays", "v1-2-3")
    state = cloud.state()
    assert "untested_code_served" not in state
    assert state["allocations"] == {"v1-2-3": 1.0}
    (serving,) = [v for v in state["versions"] if v["id"] == "v1-2-3"]
    assert serving["versionUrl"] == live_url  # still the code that was serving
    assert "v1-2-3-4242-1" in [v["id"] for v in state["versions"]]


def test_appengine_redeploy_of_a_good_build_moves_traffic_to_the_new_version(tmp_path, live_url):
    cloud = appengine(tmp_path, live_url)
    serving_same_tag(cloud, live_url)
    done = cloud.deploy("appengine")
    assert done.returncode == 0
    state = cloud.state()
    assert "untested_code_served" not in state
    assert state["allocations"] == {"v1-2-3-4242-1": 1.0}


def test_appengine_refuses_an_id_that_exists(tmp_path, live_url):
    cloud = appengine(tmp_path, live_url)
    state = cloud.state()
    state["versions"].append(
        {"id": "v1-2-3-4242-1", "createTime": "2026-11-02T00:00:00Z", "versionUrl": live_url}
    )
    cloud.state_path.write_text(json.dumps(state))
    done = cloud.deploy("appengine")
    one_line_error(done, 2, "v1-2-3-4242-1 exists")
    assert "app deploy" not in gcloud_commands(cloud)


def test_appengine_outside_actions_uses_the_time_as_the_unique_part(tmp_path, live_url):
    cloud = appengine(tmp_path, live_url)
    del cloud.env["GITHUB_RUN_ID"]
    done = cloud.deploy("appengine", version="v1.2.3-rc.1")
    assert done.returncode == 0
    (deploy,) = [c["argv"] for c in cloud.calls("gcloud") if c["argv"][:2] == ["app", "deploy"]]
    assert re.fullmatch(r"v1-2-3-rc-1-20\d{6}t\d{6}", deploy[deploy.index("--version") + 1])


@pytest.mark.parametrize(
    ("target", "version", "words"),
    [
        # 63 characters at most for App Engine, with the unique part.
        ("appengine", "v1.2.3-" + "a" * 50, "App Engine version id"),
        ("lightsail", "v1.2.3-" + "a" * 47, "Lightsail image label"),
        ("lightsail", "v1.2.3-rc.", "Lightsail image label"),  # would end with a hyphen
    ],
)
def test_a_tag_that_maps_to_no_valid_id_stops_before_anything_runs(
    tmp_path, live_url, target, version, words
):
    cloud = (
        appengine(tmp_path, live_url)
        if target == "appengine"
        else lightsail(tmp_path, live_url, ["active"])
    )
    done = cloud.deploy(target, version=version)
    one_line_error(done, 2, words, version)
    assert cloud.calls() == []


def test_appengine_failed_upload_fails_with_gclouds_message(tmp_path, live_url):
    cloud = appengine(tmp_path, live_url)
    cloud.state_path.write_text(json.dumps({**cloud.state(), "deploy_fails": True}))
    done = cloud.deploy("appengine")
    one_line_error(done, 1, "Cloud build failed")
    assert "app services set-traffic" not in gcloud_commands(cloud)


def test_appengine_dry_run_and_missing_project(tmp_path, live_url):
    cloud = appengine(tmp_path, live_url)
    done = cloud.deploy("appengine", "--dry-run")
    assert done.returncode == 0
    assert cloud.calls() == []
    for word in ("gcloud app deploy", "--no-promote", "set-traffic", "versions list"):
        assert word in done.stdout
    done = cloud.deploy("appengine", GCP_PROJECT_ID="")
    one_line_error(done, 2, "GCP_PROJECT_ID is not set")
    assert cloud.calls() == []


# -- Heroku (the Platform API and the registry's token auth stood in for) ----------------------


def heroku(tmp_path, fake: FakeHeroku) -> Cloud:
    cloud = Cloud(tmp_path, {"local_images": [IMAGE]})
    cloud.env |= {
        "HEROKU_APP": "demo",
        "HEROKU_API_KEY": SECRET,
        "HEROKU_API_URL": fake.url,
        "HEROKU_REGISTRY": fake.url.removeprefix("http://"),
        "HEROKU_REGISTRY_INSECURE": "1",
    }
    fake.config["WEB_CONCURRENCY"] = "2"  # what basic dynos get: no config release
    fake.manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": "sha256:" + "e" * 64},
    }
    return cloud


def test_heroku_smoke_failure_rolls_back_to_the_previous_release(tmp_path, dead_url):
    with FakeHeroku("demo", SECRET, dead_url) as fake:
        cloud = heroku(tmp_path, fake)
        previous = fake.current()
        done = cloud.deploy("heroku")
    one_line_error(done, 1, "smoke test failed", f"rolled back to release v{previous['version']}")
    # The image config digest came through the registry's token flow into the release call.
    (patch,) = [r for r in fake.requests if r["method"] == "PATCH"]
    assert patch["body"] == {"updates": [{"type": "web", "docker_image": "sha256:" + "e" * 64}]}
    assert patch["headers"]["Accept"] == DOCKER_RELEASES
    (rollback,) = [r for r in fake.requests if r["method"] == "POST"]
    assert rollback["path"] == "/apps/demo/releases"
    assert rollback["body"] == {"release": previous["id"]}
    assert fake.current()["description"] == f"Rollback to v{previous['version']}"
    # docker: logged in as _ with the key on stdin, never in argv.
    (login,) = [c for c in cloud.calls("docker") if c["argv"][0] == "login"]
    assert login["stdin"] == SECRET
    assert all(SECRET not in " ".join(c["argv"]) for c in cloud.calls())
    assert SECRET not in done.stdout + done.stderr
    assert cloud.output() == ""


def test_heroku_crashed_dynos_roll_back(tmp_path, live_url):
    with FakeHeroku("demo", SECRET, live_url, dynos="crashed") as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku")
    one_line_error(done, 1, "crashed", "rolled back to release v7")
    assert [r["method"] for r in fake.requests].count("POST") == 1
    assert "mlservice smoke" not in done.stdout  # no smoke test against a crashed release


def paths(fake: FakeHeroku, method: str = "GET") -> list[str]:
    return [r["path"] for r in fake.requests if r["method"] == method]


def test_heroku_waits_for_the_pending_release_and_starting_dynos(tmp_path, live_url):
    with FakeHeroku("demo", SECRET, live_url, pending_looks=3, starting_looks=3) as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku")
        new = fake.current()
    assert done.returncode == 0
    assert new["version"] == 8
    assert new["description"] == "Deployed web"
    gets = paths(fake)
    assert gets.count(f"/apps/demo/releases/{new['id']}") >= 3
    assert gets.count("/apps/demo/dynos") >= 4  # three answers of `starting`, then `up`
    assert "POST" not in [r["method"] for r in fake.requests]
    assert cloud.output() == f"url={live_url}\n"


def test_heroku_failed_release_fails_without_a_smoke_test(tmp_path, live_url):
    with FakeHeroku("demo", SECRET, live_url, release="failed") as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku")
        serving = fake.current()
    one_line_error(done, 1, "release v8 failed", "release v7 still serves")
    assert serving["version"] == 7
    assert "mlservice smoke" not in done.stdout
    assert paths(fake, "POST") == []  # Heroku kept release v7: nothing to roll back
    assert cloud.output() == ""


def test_heroku_rollback_is_awaited_and_its_failure_reported(tmp_path, dead_url):
    with FakeHeroku("demo", SECRET, dead_url, rollback="failed") as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku")
        rollback = fake.releases[-1]
    one_line_error(done, 1, "smoke test failed", "the rollback failed too", "release v9 failed")
    assert rollback["description"] == "Rollback to v7"
    assert f"/apps/demo/releases/{rollback['id']}" in paths(fake)


def test_heroku_app_without_web_dynos_is_one_clear_error(tmp_path, live_url):
    with FakeHeroku("demo", SECRET, live_url, quantity=0) as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku")
    one_line_error(done, 2, "no web dynos", "quantity 0", "ps:scale web=1")
    assert cloud.calls("docker") == []
    assert paths(fake, "PATCH") == []


@pytest.mark.parametrize(
    ("size", "workers"),
    [("basic", "2"), ("standard-1x", "2"), ("standard-2x", "4"), ("performance-m", "8")],
)
def test_heroku_sets_web_concurrency_for_the_dyno_size(tmp_path, live_url, size, workers):
    with FakeHeroku("demo", SECRET, live_url, size=size) as fake:
        cloud = heroku(tmp_path, fake)
        del fake.config["WEB_CONCURRENCY"]
        done = cloud.deploy("heroku")
        config = dict(fake.config)
    assert done.returncode == 0
    (change,) = [r for r in fake.requests if r["path"] == "/apps/demo/config-vars" and r["body"]]
    assert change["body"] == {"WEB_CONCURRENCY": workers}
    assert config["WEB_CONCURRENCY"] == workers
    # The config change came before the image: the new release carries both.
    methods = [(r["method"], r["path"]) for r in fake.requests]
    assert methods.index(("PATCH", "/apps/demo/config-vars")) < methods.index(
        ("PATCH", "/apps/demo/formation")
    )


def test_heroku_leaves_web_concurrency_alone_when_it_is_right(tmp_path, live_url):
    with FakeHeroku("demo", SECRET, live_url, size="basic") as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku")
    assert done.returncode == 0
    assert "/apps/demo/config-vars" not in paths(fake, "PATCH")


def test_heroku_dry_run_masks_the_key_and_calls_nothing(tmp_path, live_url):
    with FakeHeroku("demo", SECRET, live_url) as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku", "--dry-run")
    assert done.returncode == 0
    assert fake.requests == []
    assert cloud.calls() == []
    assert SECRET not in done.stdout + done.stderr
    assert "Authorization: Bearer ***" in done.stdout
    for word in ("docker login", "docker push", "PATCH", "/formation", DOCKER_RELEASES):
        assert word in done.stdout


@pytest.mark.parametrize("missing", ["HEROKU_APP", "HEROKU_API_KEY"])
def test_heroku_missing_setting_is_one_clear_error(tmp_path, live_url, missing):
    with FakeHeroku("demo", SECRET, live_url) as fake:
        cloud = heroku(tmp_path, fake)
        done = cloud.deploy("heroku", **{missing: ""})
    one_line_error(done, 2, f"{missing} is not set")
    assert fake.requests == []
    assert cloud.calls() == []


# -- All targets ---------------------------------------------------------------------------------


def test_dry_run_works_with_a_python_without_the_project(tmp_path, live_url):
    """`deploy/appengine --dry-run` in a fresh clone after `make env` (no model yet), started by
    a python3 that cannot import the project."""
    bare = Path(sys.base_prefix) / "bin" / "python3"
    lacks = subprocess.run([bare, "-c", "import mlservice"], capture_output=True, check=False)
    assert lacks.returncode != 0  # the premise: this python cannot import the project
    clone = tmp_path / "clone"
    for folder in ("deploy", "src"):
        shutil.copytree(ROOT / folder, clone / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("app.yaml", "requirements.txt"):
        shutil.copy(ROOT / name, clone / name)
    (clone / ".venv").symlink_to(ROOT / ".venv")  # what `make env` made
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(bare)
    cloud = appengine(tmp_path, live_url)
    done = subprocess.run(
        [clone / "deploy" / "appengine", "--image", IMAGE, "--version", "v1.2.3", "--dry-run"],
        env={**cloud.env, "PATH": f"{bin_dir}{os.pathsep}{STANDINS}{os.pathsep}/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "note: models/model.skops is missing" in done.stdout
    assert "mlservice smoke" in done.stdout
    assert cloud.calls() == []
    # Without --dry-run the missing model stops the deployment before anything runs.
    done = subprocess.run(
        [clone / "deploy" / "appengine", "--image", IMAGE, "--version", "v1.2.3"],
        env={**cloud.env, "PATH": f"{bin_dir}{os.pathsep}{STANDINS}{os.pathsep}/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    one_line_error(done, 2, "models/model.skops is missing")
    assert cloud.calls() == []


@pytest.mark.parametrize(
    ("version", "appengine_id", "label"),
    [
        ("main-1a2b3c4", "main-1a2b3c4-4242-1", "main-1a2b3c4"),
        ("v0.0.0-main.1a2b3c4", "v0-0-0-main-1a2b3c4-4242-1", "v0-0-0-main-1a2b3c4"),
    ],
)
def test_a_staging_build_version_deploys(tmp_path, live_url, version, appengine_id, label):
    for target in ("appengine", "lightsail"):
        (tmp_path / target).mkdir()
    cloud = appengine(tmp_path / "appengine", live_url)
    done = cloud.deploy("appengine", version=version)
    assert done.returncode == 0
    (deploy,) = [c["argv"] for c in cloud.calls("gcloud") if c["argv"][:2] == ["app", "deploy"]]
    assert deploy[deploy.index("--version") + 1] == appengine_id
    cloud = lightsail(tmp_path / "lightsail", live_url, ["active"])
    done = cloud.deploy("lightsail", version=version)
    assert done.returncode == 0
    (push,) = [c["argv"] for c in cloud.calls("aws") if "push-container-image" in c["argv"]]
    assert push[push.index("--label") + 1] == label


@pytest.mark.parametrize(
    ("setting", "value"),
    [("DEPLOY_TIMEOUT", "3600"), ("SMOKE_WAIT", "900"), ("DEPLOY_POLL_SECONDS", "120")],
)
def test_a_wait_longer_than_the_job_allows_is_refused(tmp_path, live_url, setting, value):
    cloud = lightsail(tmp_path, live_url, ["active"])
    done = cloud.deploy("lightsail", **{setting: value})
    one_line_error(done, 2, setting, "outside")
    assert "create-container-service-deployment" not in operations(cloud)
