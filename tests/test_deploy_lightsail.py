"""deploy/lightsail with the real AWS CLI against the Lightsail stand-in.

The AWS CLI (v1, the same botocore model as v2) sends every call to tests/standins/lightsail_api.py,
which checks it against botocore's Lightsail model, enum values included, and runs deployments
through their lifecycle. push-container-image (v2 only) is tests/standins/bin/aws handing the
request to the lightsailctl stand-in, which logs in to the service's registry, pushes with
`docker` (the stand-in in tests/standins/bin) and registers the image with Lightsail.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from deploy import common, lightsail
from tests.deploy_harness import IMAGE, METRICS_TOKEN, ROOT
from tests.standins.lightsail_api import FakeLightsail, model_errors
from tests.standins.lightsailctl_release import PLUGIN, Release

PREVIOUS = {
    "web": {
        "image": ":mlservice.v1-1-0.1",
        "environment": {"PORT": "8000"},
        "ports": {"8000": "HTTP"},
    }
}
ENDPOINT = {"containerName": "web", "containerPort": 8000, "healthCheck": {"path": "/healthz"}}


def install_plugin(directory) -> None:
    """lightsailctl (the stand-in) already installed at the pinned version."""
    directory.mkdir(exist_ok=True)
    shutil.copy(PLUGIN, directory / "lightsailctl")
    (directory / "lightsailctl").chmod(0o755)


@pytest.fixture
def cloud(harness, tmp_path, live_url):
    """A nano service whose deployment 1 serves image v1-1-0; new code answers at the live app."""
    with FakeLightsail(code_url=live_url, registry="registry.example:443") as fake:
        fake.add_image("v1-1-0")
        fake.add_deployment(PREVIOUS, ENDPOINT)
        (tmp_path / "docker.json").write_text(json.dumps({"local_images": []}))
        install_plugin(tmp_path / "tools")
        # aws-cli v2 prints timestamps in ISO 8601; v1, which runs here, as the API sent them
        # unless told to (its cli_timestamp_format setting).
        config = tmp_path / "aws-config"
        config.write_text("[default]\ncli_timestamp_format = iso8601\n")
        harness.set(
            **fake.environment(),
            AWS_CONFIG_FILE=str(config),
            LIGHTSAIL_SERVICE="mlservice",
            LIGHTSAILCTL_DIR=str(tmp_path / "tools"),
            STANDIN_STATE=str(tmp_path / "docker.json"),
            STANDIN_LOG=str(tmp_path / "docker.log"),
        )
        yield fake


def operations(fake: FakeLightsail) -> list[str]:
    return [r["operation"] for r in fake.requests]


def created(fake: FakeLightsail) -> list[dict]:
    return [
        r["params"] for r in fake.requests if r["operation"] == "CreateContainerServiceDeployment"
    ]


def current(fake: FakeLightsail) -> dict:
    return next(d for d in fake.deployments if d["version"] == fake.current)


def docker_calls(tmp_path) -> list[list[str]]:
    log = tmp_path / "docker.log"
    return (
        [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []
    )


def test_installs_lightsailctl_pushes_deploys_and_waits_for_the_new_version(
    harness, cloud, tmp_path, live_url
):
    shutil.rmtree(tmp_path / "tools")
    with Release(tmp_path / "release") as release:
        harness.set(LIGHTSAILCTL_BASE_URL=release.url)
        done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    # lightsailctl was missing: the pinned release was checked and installed before the push.
    assert release.requests[0] == "/v1.0.8/lightsailctl_1.0.8_checksums.txt"
    installed = subprocess.run(
        [tmp_path / "tools" / "lightsailctl", "--version"], capture_output=True, text=True
    )
    assert installed.stdout == "v1.0.8\n"
    # The image was pulled, pushed to the service's registry and registered under its label.
    calls = docker_calls(tmp_path)
    assert ["pull", IMAGE] in calls
    (push,) = [c for c in calls if c[0] == "push"]
    assert push[1].startswith("registry.example:443/sr:")
    (register,) = [
        r["params"] for r in cloud.requests if r["operation"] == "RegisterContainerImage"
    ]
    assert register["label"] == "v1-2-3"
    assert register["digest"] == "sha256:" + "d" * 64  # what docker push reported
    # The reference Lightsail gave the image went into containers.json; the endpoint is the file's.
    (deployment,) = created(cloud)
    assert deployment["containers"]["web"]["image"] == ":mlservice.v1-2-3.1"
    assert deployment["containers"]["web"]["environment"]["WEB_CONCURRENCY"] == "2"  # nano
    assert deployment["publicEndpoint"] == json.loads((ROOT / "public-endpoint.json").read_text())
    # It looked until the new deployment was the ACTIVE current one.
    assert current(cloud)["version"] == 2
    ops = operations(cloud)
    after = ops[ops.index("CreateContainerServiceDeployment") + 1 :]
    assert after.count("GetContainerServices") == cloud.settle_after
    assert harness.output() == f"url={live_url}\n"
    assert "v1.2.3" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(("power", "workers"), [("micro", "4"), ("small", "8")])
def test_sets_web_concurrency_for_the_power(harness, cloud, power, workers):
    cloud.power = power
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    (deployment,) = created(cloud)
    assert deployment["containers"]["web"]["environment"]["WEB_CONCURRENCY"] == workers


def test_deletes_the_oldest_images_but_never_a_deployed_one(harness, cloud):
    for n in range(2, 10):  # eight images newer than the one deployment 1 runs
        cloud.add_image(f"v1-0-{n}")
    harness.set(LIGHTSAIL_KEEP_IMAGES="3")
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    deleted = [
        r["params"]["image"] for r in cloud.requests if r["operation"] == "DeleteContainerImage"
    ]
    # Five at most per deployment, the oldest first; the rest go next time.
    assert deleted == [f":mlservice.v1-0-{n}.1" for n in (2, 3, 4, 5, 6)]
    assert {i["image"] for i in cloud.images} == {
        ":mlservice.v1-2-3.1",  # the new deployment's
        ":mlservice.v1-0-9.1",
        ":mlservice.v1-0-8.1",
        ":mlservice.v1-0-7.1",  # beyond the three kept, left for the next deployment
        ":mlservice.v1-1-0.1",  # the previous deployment's: the way back
    }


def test_a_deployment_that_fails_its_health_check_changes_nothing(harness, cloud):
    cloud.outcomes = ["failed"]
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "FAILED: deployment 2 FAILED; deployment 1 still serves;")
    assert "mlservice cannot start: model missing" in done.out  # the container log
    assert len(created(cloud)) == 1  # Lightsail kept deployment 1: nothing to deploy again
    assert current(cloud)["containers"] == PREVIOUS
    assert harness.output() == ""


def test_smoke_failure_deploys_the_previous_containers_again(harness, cloud, dead_url):
    cloud.code_url = dead_url
    done = harness.deploy(lightsail)
    done.failed(common.ROLLED_BACK, "smoke test failed", "deployment 1 serves again")
    first, rollback = created(cloud)
    assert first["containers"]["web"]["image"] == ":mlservice.v1-2-3.1"
    assert rollback["containers"] == PREVIOUS
    assert rollback["publicEndpoint"]["healthCheck"]["path"] == "/healthz"
    assert current(cloud)["version"] == 3  # the redeployment was waited for
    assert current(cloud)["containers"] == PREVIOUS
    assert "DeleteContainerImage" not in operations(cloud)


def test_a_deployment_still_activating_at_the_timeout_is_rolled_back_when_it_activates(
    harness, cloud
):
    """It activates late, after the script stopped waiting: the unsmoked version must not stay."""
    cloud.outcomes = ["late"]
    harness.set(DEPLOY_TIMEOUT="1")
    done = harness.deploy(lightsail)
    done.failed(common.ROLLED_BACK, "timed out after 1 s", "deployment 1 serves again")
    assert [d["state"] for d in cloud.deployments] == ["ACTIVE", "INACTIVE", "INACTIVE"]
    assert current(cloud)["containers"] == PREVIOUS
    assert "mlservice smoke" not in done.out


def test_a_deployment_that_never_settles_leaves_the_command_to_run_by_hand(
    harness, cloud, monkeypatch
):
    monkeypatch.setattr(common, "WAIT_LIMIT", 2)  # the restore's wait, instead of minutes
    cloud.outcomes = ["stuck"]
    harness.set(DEPLOY_TIMEOUT="1")
    done = harness.deploy(lightsail)
    assert done.code == common.NOT_RESTORED
    command = done.lines()[-1].removeprefix("deploy/lightsail: restore it by hand: ")
    assert command.startswith(
        "aws lightsail --region eu-west-1 --output json create-container-service-deployment"
    )
    # The command is exact: run as printed, once the stuck deployment has settled, it restores.
    cloud.deployments[0]["outcome"] = "failed"
    cloud.look()
    argv = shlex.split(command)
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    cloud.settle_after = 0
    cloud.look()
    assert current(cloud)["containers"] == PREVIOUS
    assert current(cloud)["version"] == 3


@pytest.mark.parametrize("outcome", ["active", "stuck"])
def test_first_deployment_that_fails_its_smoke_test_says_how_to_disable_it(
    harness, cloud, dead_url, outcome
):
    """It failed its smoke test, or is still activating when the wait ends: it serves, or may."""
    cloud.deployments.clear()
    cloud.current = None
    cloud.code_url = dead_url
    cloud.outcomes = [outcome]
    harness.set(DEPLOY_TIMEOUT="1")
    done = harness.deploy(lightsail)
    assert done.code == common.NOT_RESTORED
    assert done.lines()[-2].endswith(
        "restoring nothing (the first deployment) failed: "
        "no deployment served before this one, and this one serves"
    )
    assert done.lines()[-1].endswith(
        "aws lightsail --region eu-west-1 --output json update-container-service "
        "--service-name mlservice --is-disabled"
    )


def test_first_deployment_that_fails_changes_nothing(harness, cloud):
    cloud.deployments.clear()
    cloud.current = None
    cloud.outcomes = ["failed"]
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "deployment 1 FAILED")


def test_a_deployment_in_flight_stops_it_before_anything_is_pushed(harness, cloud):
    cloud.new_deployment(PREVIOUS, ENDPOINT, "stuck")
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "deployment 2 is in flight")
    assert operations(cloud) == ["GetContainerServices"]


def source_with(tmp_path, monkeypatch, containers: str) -> None:
    """A checkout whose containers.json is `containers`."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "public-endpoint.json", source)
    (source / "containers.json").write_text(containers)
    monkeypatch.setattr(common, "ROOT", source)


def test_the_service_refuses_a_port_protocol_outside_the_models_enum(
    harness, cloud, tmp_path, monkeypatch
):
    text = (ROOT / "containers.json").read_text().replace('"HTTP"', '"http"')
    source_with(tmp_path, monkeypatch, text)
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "InvalidInputException", "'http' is not one of")
    assert current(cloud)["version"] == 1


def test_model_errors_are_what_botocore_leaves_unchecked():
    shape = lightsail.botocore.session.get_session().get_service_model("lightsail")
    shape = shape.operation_model("CreateContainerServiceDeployment").input_shape
    assert model_errors({"serviceName": "Bad_Name"}, shape) == [
        ".serviceName: 'Bad_Name' does not match ^[a-z0-9]{1,2}|[a-z0-9][a-z0-9-]+[a-z0-9]$"
    ]
    good = {"serviceName": "svc", "containers": {"web": {"image": "x", "ports": {"80": "HTTP"}}}}
    assert model_errors(good, shape) == []


def test_dry_run_calls_nothing_and_prints_the_way_back(harness, cloud):
    done = harness.deploy(lightsail, "--dry-run")
    assert done.code == common.DEPLOYED
    assert cloud.requests == []
    assert docker_calls(harness.tmp) == []
    for words in (
        "get-container-services",
        "docker pull",
        "push-container-image",
        "create-container-service-deployment",
        '"image": ":mlservice.v1-2-3.<N>"',
        "mlservice smoke",
    ):
        assert words in done.out


@pytest.mark.parametrize(
    ("settings", "version", "words"),
    [
        ({"LIGHTSAIL_SERVICE": ""}, "v1.2.3", "LIGHTSAIL_SERVICE is not set"),
        ({}, "1.2.3", "not a release tag"),
        ({}, "v1.2.3-" + "a" * 47, "Lightsail image label"),  # 54 characters
        ({}, "v1.2.3-rc.", "Lightsail image label"),  # would end with a hyphen
        ({"DEPLOY_TIMEOUT": "3600"}, "v1.2.3", "outside"),
        ({"SMOKE_WAIT": "900"}, "v1.2.3", "outside"),
        ({"DEPLOY_POLL_SECONDS": "120"}, "v1.2.3", "outside"),
    ],
)
def test_bad_settings_stop_it_before_anything_runs(harness, cloud, settings, version, words):
    harness.set(**settings)
    done = harness.deploy(lightsail, version=version)
    done.failed(common.CONFIG, words)
    assert cloud.requests == []


# -- Each failure at each step ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "what"),
    [
        ("GetContainerServices", "garbage"),
        ("CreateContainerServiceRegistryLogin", "error"),  # lightsailctl cannot push
        ("RegisterContainerImage", "error"),
        ("CreateContainerServiceDeployment", "error"),  # refused: nothing was created
    ],
)
def test_a_failure_before_a_deployment_exists_changes_nothing(harness, cloud, operation, what):
    cloud.plant(operation, what)
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "nothing was changed")
    assert current(cloud)["version"] == 1
    assert harness.output() == ""


@pytest.mark.parametrize(
    ("operation", "what", "after"),
    [
        # Created, but the answer is not what the script reads: a KeyError after the change.
        ("CreateContainerServiceDeployment", "empty", 0),
        # The job is cancelled as the deployment starts, and while the script waits for it.
        ("CreateContainerServiceDeployment", "sigterm", 0),
        ("GetContainerServices", "sigterm", 1),
        ("GetContainerServices", "error", 1),
    ],
)
def test_a_failure_after_the_deployment_started_restores_the_previous_one(
    harness, cloud, operation, what, after
):
    cloud.settle_after = 1  # a restore after a signal has seconds, not minutes
    cloud.plant(operation, what, after=after)
    done = harness.deploy(lightsail)
    done.failed(common.ROLLED_BACK, "deployment 1 serves again")
    assert current(cloud)["containers"] == PREVIOUS
    assert harness.output() == ""


# -- deploy/install_lightsailctl.py ----------------------------------------------------------------


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


def test_the_metrics_token_reaches_the_containers_and_the_smoke_test_asks_metrics_with_it(
    harness, cloud, metered_url
):
    cloud.code_url = metered_url  # the app as it runs with METRICS_TOKEN set
    harness.set(METRICS_TOKEN=METRICS_TOKEN)
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    (deployment,) = created(cloud)
    environment = deployment["containers"]["web"]["environment"]
    assert (environment["METRICS_TOKEN"], environment["WEB_CONCURRENCY"]) == (METRICS_TOKEN, "2")
    assert "ok   /metrics answers with the token, refuses without it (401)" in done.out
    assert METRICS_TOKEN not in done.out + done.err


def test_without_a_metrics_token_the_containers_get_none_and_metrics_must_be_off(harness, cloud):
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    (deployment,) = created(cloud)
    assert "METRICS_TOKEN" not in deployment["containers"]["web"]["environment"]
    assert "ok   /metrics is not public (404)" in done.out


def test_a_service_without_the_token_fails_the_smoke_test_and_is_rolled_back(
    harness, cloud, live_url
):
    # The deploy job has the token, the app that answers does not (404 on /metrics).
    harness.set(METRICS_TOKEN=METRICS_TOKEN)
    done = harness.deploy(lightsail)
    done.failed(common.ROLLED_BACK, "smoke test failed")
    assert "is METRICS_TOKEN set on the service?" in done.out + done.err
    assert current(cloud)["containers"] == PREVIOUS


def test_a_dry_run_never_prints_the_metrics_token(harness, cloud):
    harness.set(METRICS_TOKEN=METRICS_TOKEN)
    done = harness.deploy(lightsail, "--dry-run")
    assert done.code == common.DEPLOYED
    assert '"METRICS_TOKEN": "***"' in done.out  # the containers.json it would send
    assert METRICS_TOKEN not in done.out + done.err


@pytest.mark.parametrize("token", ["short", "t" * 31 + "!"])
def test_a_bad_metrics_token_stops_before_anything_changes_without_showing_it(
    harness, cloud, token
):
    harness.set(METRICS_TOKEN=token)
    done = harness.deploy(lightsail)
    done.failed(common.CONFIG, "METRICS_TOKEN")
    assert token not in done.out + done.err
    assert cloud.requests == []


def test_main_runs_the_lightsail_deployment(harness, cloud):
    """`deploy/lightsail` itself: main() with the command line."""
    code = lightsail.main(["--image", IMAGE, "--version", "v1.2.3", "--dry-run"])
    out = harness.capfd.readouterr().out
    assert code == common.DEPLOYED
    assert "deploy/lightsail: dry run complete: would deploy v1.2.3" in out
    assert "create-container-service-deployment" in out


def test_a_dry_run_shows_the_defaults_and_each_file_it_would_send(harness, cloud, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("LIGHTSAILCTL_DIR")
    done = harness.deploy(lightsail, "--dry-run")
    assert done.code == common.DEPLOYED
    out = done.out.splitlines()
    assert "aws lightsail --region us-east-1 --output json get-container-services" in done.out
    assert f"--dir {ROOT / '.tools' / 'bin'}" in done.out  # installs lightsailctl there
    assert "deploy/lightsail: power <the service power>: WEB_CONCURRENCY=2" in out
    (sent,) = [line for line in out if line.startswith("  containers.json: ")]
    containers = json.loads(sent.removeprefix("  containers.json: "))
    assert containers["web"]["image"] == ":mlservice.v1-2-3.<N>"
    endpoint = (ROOT / "public-endpoint.json").read_text()
    assert f"  public-endpoint.json: {json.dumps(json.loads(endpoint))}" in out
    assert (
        "deploy/lightsail: then poll get-container-services until the new version is ACTIVE" in out
    )
    assert "smoke 'https://mlservice.<id>.us-east-1.cs.amazonlightsail.com/' " in done.out
    assert (
        "deploy/lightsail: on a failure from here: restore deployment <current> (" not in done.out
    )


def test_a_deployment_says_how_it_goes(harness, cloud):
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    out = done.out.splitlines()
    assert "deploy/lightsail: power nano: WEB_CONCURRENCY=2" in out
    assert "deploy/lightsail: deployment 2 is ACTIVATING" in out
    # Its state while in flight is the service's nextDeployment: no listing of deployments.
    assert "GetContainerServiceDeployments" not in operations(cloud)
    assert 'Refer to this image as ":mlservice.v1-2-3.1"' in done.out  # the push, echoed
    assert "  containers.json: " not in done.out  # only a dry run prints what it sends
    # lightsailctl was there at the pinned version: not installed again.
    assert "install_lightsailctl" not in done.out
    limits = dict(done.deployer.ledger)
    assert limits[f"{harness.tmp / 'tools' / 'lightsailctl'} --version"] == 10
    uploads = [limit for _, limit in done.deployer.ledger if limit == common.UPLOAD_TIMEOUT]
    assert len(uploads) == 2  # docker pull, push-container-image


@pytest.mark.parametrize("found", ["echo v1.0.7", "exit 1"])
def test_an_older_or_broken_lightsailctl_is_replaced_by_the_pinned_release(
    harness, cloud, tmp_path, found
):
    old = tmp_path / "tools" / "lightsailctl"
    old.write_text(f"#!/bin/sh\n{found}\n")
    with Release(tmp_path / "release") as release:
        harness.set(LIGHTSAILCTL_BASE_URL=release.url)
        done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    installed = subprocess.run([old, "--version"], capture_output=True, text=True)
    assert installed.stdout == "v1.0.8\n"
    (install,) = [limit for call, limit in done.deployer.ledger if "install_lightsailctl" in call]
    assert install == 2 * common.HTTP_TIMEOUT  # the checksums file, then the archive
    assert "deploy/install_lightsailctl.py: installed lightsailctl v1.0.8 as " in done.out


@pytest.mark.parametrize("images", [0, 2])
def test_containers_json_must_name_the_image_placeholder_once(
    harness, cloud, tmp_path, monkeypatch, images
):
    containers = json.loads((ROOT / "containers.json").read_text())
    containers["web"]["image"] = "ghcr.io/owner/repo:latest"
    for n in range(images):
        containers[f"c{n}"] = {"image": lightsail.PLACEHOLDER}
    source_with(tmp_path, monkeypatch, json.dumps(containers))
    done = harness.deploy(lightsail)
    done.failed(
        common.CONFIG, "containers.json must hold IMAGE_SET_BY_DEPLOY_LIGHTSAIL once, as the image"
    )
    assert cloud.requests == []


def test_containers_json_that_the_api_model_refuses_stops_before_anything_runs(
    harness, cloud, tmp_path, monkeypatch
):
    text = (ROOT / "containers.json").read_text().replace('"PORT": "8000"', '"PORT": 8000')
    source_with(tmp_path, monkeypatch, text)
    done = harness.deploy(lightsail)
    done.failed(
        common.CONFIG,
        "containers.json/public-endpoint.json: Invalid type for parameter "
        "containers.web.environment.PORT",
    )
    assert cloud.requests == []


@pytest.mark.parametrize("power", [None, "unknown"])
def test_containers_without_an_environment_get_one_sized_for_a_nano_service(
    tmp_path, monkeypatch, power
):
    """A service whose power is not known is taken for the smallest."""
    (tmp_path / "containers.json").write_text(json.dumps({"web": {"image": lightsail.PLACEHOLDER}}))
    monkeypatch.setattr(common, "ROOT", tmp_path)
    rendered = lightsail.render_containers(":svc.v1.1", power)
    assert rendered == {"web": {"image": ":svc.v1.1", "environment": {"WEB_CONCURRENCY": "2"}}}


def test_a_restore_waits_as_long_as_a_wait_may(harness, cloud, monkeypatch):
    monkeypatch.setattr(common, "WAIT_LIMIT", 2)
    cloud.outcomes = ["stuck"]
    harness.set(DEPLOY_TIMEOUT="1")
    done = harness.deploy(lightsail)
    done.failed(
        common.NOT_RESTORED,
        "timed out after 1 s waiting for deployment 2 to become ACTIVE",
        "timed out after 2 s waiting for deployment 1's containers to serve again",
    )
    # The restore waited for the deployment in flight: it may still activate.
    assert "deploy/lightsail: deployment 2 is ACTIVATING: waiting for it" in done.out


def test_the_message_when_a_deployment_is_in_flight(harness, cloud):
    cloud.new_deployment(PREVIOUS, ENDPOINT, "stuck")
    done = harness.deploy(lightsail)
    done.failed(
        common.UNCHANGED, "deployment 2 is in flight: try again once the service is RUNNING"
    )


def test_the_container_log_shows_its_last_fifty_lines(harness, cloud):
    cloud.outcomes = ["failed"]
    cloud.log = [f"line {n}" for n in range(60)]
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "deployment 2 FAILED")
    out = done.out.splitlines()
    start = out.index("--- last 50 lines of the web container log ---")
    shown = out[start + 1 : start + 51]
    assert [line.split(" ", 1)[1] for line in shown] == [f"line {n}" for n in range(10, 60)]
    assert all(line.split(" ", 1)[0] for line in shown)  # each with its time


def test_a_container_log_that_cannot_be_read_is_left_out(harness, cloud):
    cloud.outcomes = ["failed"]
    cloud.plant("GetContainerLog", "error")
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "deployment 2 FAILED")
    assert "--- last 0 lines of the web container log ---" in done.out


def test_images_beyond_ten_are_pruned_by_default(harness, cloud):
    for n in range(2, 14):
        cloud.add_image(f"v1-0-{n}")
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    deleted = [
        r["params"]["image"] for r in cloud.requests if r["operation"] == "DeleteContainerImage"
    ]
    assert deleted == [f":mlservice.v1-0-{n}.1" for n in (2, 3, 4)]


@pytest.mark.parametrize("keep", ["0", "101"])
def test_keep_images_outside_its_range_stops_before_anything_runs(harness, cloud, keep):
    harness.set(LIGHTSAIL_KEEP_IMAGES=keep)
    done = harness.deploy(lightsail)
    done.failed(common.CONFIG, f"LIGHTSAIL_KEEP_IMAGES={keep} is outside 1..100")
    assert cloud.requests == []


def test_a_failed_prune_only_warns_and_the_deployment_stands(harness, cloud, live_url):
    for n in range(2, 6):
        cloud.add_image(f"v1-0-{n}")
    harness.set(LIGHTSAIL_KEEP_IMAGES="1")
    cloud.plant("DeleteContainerImage", "error")
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    (warning,) = [line for line in done.out.splitlines() if line.startswith("::warning::")]
    assert warning.startswith("::warning::deploy/lightsail: deleting old images failed: `aws ")
    assert harness.output() == f"url={live_url}\n"


def test_a_first_deployment_that_passes_is_reported_and_nothing_else(harness, cloud, live_url):
    cloud.deployments.clear()
    cloud.current = None
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    assert done.lines() == []
    assert harness.output() == f"url={live_url}\n"


def test_a_smoke_failure_names_the_url(harness, cloud, dead_url):
    cloud.code_url = dead_url
    done = harness.deploy(lightsail)
    done.failed(common.ROLLED_BACK, f"FAILED: smoke test failed on {dead_url}; rolled back")


def test_a_push_that_names_no_image_stops_before_the_deployment(harness, cloud, tmp_path):
    plugin = tmp_path / "tools" / "lightsailctl"
    plugin.write_text('#!/bin/sh\n[ "$1" = --version ] && echo v1.0.8\nexit 0\n')
    done = harness.deploy(lightsail)
    done.failed(
        common.UNCHANGED,
        "FAILED: push-container-image printed no 'Refer to this image as' line; nothing",
    )
    assert created(cloud) == []


def test_a_deployment_lightsail_does_not_list_is_reported_so(harness, cloud):
    d = common.Deployer("lightsail")
    ls = lightsail.Lightsail(d, "mlservice", cloud.region)
    assert ls.settled(5, ls.get()) is False
    assert "deploy/lightsail: deployment 5 is not listed" in harness.capfd.readouterr().out


def test_an_image_listed_without_its_time_counts_as_the_oldest(harness, cloud):
    """createdAt is not a required member of a ContainerImage in the API model."""
    del cloud.add_image("v1-0-2")["createdAt"]
    cloud.add_image("v1-0-3")
    harness.set(LIGHTSAIL_KEEP_IMAGES="2")
    done = harness.deploy(lightsail)
    assert done.code == common.DEPLOYED
    assert "::warning::" not in done.out
    deleted = [
        r["params"]["image"] for r in cloud.requests if r["operation"] == "DeleteContainerImage"
    ]
    assert deleted == [":mlservice.v1-0-2.1"]


def test_log_events_without_a_time_or_a_message_print_without_it(harness, cloud):
    cloud.outcomes = ["failed"]
    cloud.log = [{"message": "no time"}, {"createdAt": 1_764_000_000}]
    done = harness.deploy(lightsail)
    done.failed(common.UNCHANGED, "deployment 2 FAILED")
    out = done.out.splitlines()
    start = out.index("--- last 2 lines of the web container log ---")
    assert out[start + 1] == " no time"
    assert re.fullmatch(r"2025-11-24T\S+ ", out[start + 2])
