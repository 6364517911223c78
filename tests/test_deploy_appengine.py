"""deploy/appengine with the real gcloud against the Admin API and storage stand-in.

gcloud uploads the files .gcloudignore lets through, creates the version from app.yaml (its own
parser checks it), waits for each operation and sets the traffic split, exactly as against
Google; tests/standins/appengine_api.py answers as the Admin API documents it and refuses what it
refuses (a migration towards a version without warmup requests among them). Without gcloud the
tests skip, and fail under CI=true.

Each test runs twice: with the real gcloud (slow: a second of CPU and one of waiting per call)
and with tests/standins/gcloud.py, which makes the same requests in the test process, for
`make mutation` (which leaves the slow ones out). test_the_double_prints_what_gcloud_prints
holds the double to the real one.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from deploy import appengine, common
from tests.deploy_harness import METRICS_TOKEN, ROOT
from tests.standins.appengine_api import FakeAppEngine
from tests.standins.gcloud import Gcloud
from tests.tools import require


def require_gcloud() -> str:
    return require("gcloud", "the Debian package google-cloud-cli; CI machines have it")


@pytest.fixture(params=["double", pytest.param("gcloud", marks=pytest.mark.slow)])
def cloud(request, harness, tmp_path, live_url):
    """An app whose default service has 22 versions, the oldest serving all traffic; a new
    version's code answers at the live app. `real` says whether the real gcloud runs."""
    with FakeAppEngine(project="demo", code_url=live_url) as fake:
        fake.real = request.param == "gcloud"
        if fake.real:
            require_gcloud()
        else:
            harness.commands.tools["gcloud"] = Gcloud(fake)
        for n in range(22):
            fake.add_version(f"v0-{n}-0", traffic=1.0 if n == 0 else 0.0)
        harness.set(
            **fake.environment(tmp_path / "gcloud"),
            GCP_PROJECT_ID="demo",
            APPENGINE_KEEP_VERSIONS="20",
            GITHUB_RUN_NUMBER="42",
            GITHUB_RUN_ATTEMPT="1",
        )
        yield fake


NEW = "v1-2-3-42-1"


def kinds(fake: FakeAppEngine) -> list[str]:
    return [request["kind"] for request in fake.requests]


def test_deploys_without_promoting_smoke_tests_then_migrates_and_prunes(harness, cloud, live_url):
    cloud.add_version("v0-1-0", service="api")  # another service's version with a pruned id
    cloud.add_version("v0-9-0", service="api", traffic=1.0)
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    created = cloud.services["default"]["versions"][NEW]
    if cloud.real:  # the double uploads nothing
        # gcloud uploaded what .gcloudignore lets through, the tested model included, no tests.
        files = created["deployment"]["files"]
        assert {"app.yaml", "requirements.txt", "models/model.skops", "src/mlservice/api.py"} <= (
            set(files)
        )
        assert not any(name.startswith(("tests/", "docs/", ".venv/")) for name in files)
    # app.yaml asks for warmup requests and automatic scaling: the migration needs both.
    assert created["inboundServices"] == ["INBOUND_SERVICE_WARMUP"]
    order = kinds(cloud)
    assert order.index("apps.services.versions.create") < order.index("apps.services.patch")
    (patch,) = [r for r in cloud.requests if r["kind"] == "apps.services.patch"]
    assert "migrateTraffic=True" in patch["query"]
    assert cloud.split() == {NEW: 1.0}
    # 22 older versions, keep 20 with the new one: the two oldest that served nothing go; the
    # one that served before stays (the way back).
    assert "v0-1-0" not in cloud.version_ids()
    assert "v0-2-0" not in cloud.version_ids()
    assert {"v0-0-0", "v0-3-0", NEW} <= set(cloud.version_ids())
    assert len(cloud.version_ids()) == 21
    assert set(cloud.services["api"]["versions"]) == {"v0-1-0", "v0-9-0"}  # only default's pruned
    assert harness.output() == f"url={live_url}\n"
    assert "v1.2.3" in (harness.tmp / "summary.md").read_text()


def test_smoke_failure_leaves_traffic_where_it_was(harness, cloud, dead_url):
    cloud.code_url = dead_url
    done = harness.deploy(appengine)
    done.failed(common.UNCHANGED, "smoke test failed", "traffic stays", "nothing was changed")
    assert "apps.services.patch" not in kinds(cloud)
    assert "apps.services.versions.delete" not in kinds(cloud)
    assert cloud.split() == {"v0-0-0": 1.0}
    assert harness.output() == ""


def test_redeploying_the_serving_tag_never_replaces_the_serving_version(harness, cloud, dead_url):
    cloud.add_version("v1-2-3", traffic=1.0)  # v1.2.3 serves under the id v1-2-3 already
    cloud.services["default"]["split"]["allocations"].pop("v0-0-0")
    cloud.code_url = dead_url  # and the new upload is broken
    done = harness.deploy(appengine)
    done.failed(common.UNCHANGED, "smoke test failed")
    assert not cloud.untested_code_served
    assert cloud.split() == {"v1-2-3": 1.0}
    assert NEW in cloud.version_ids()


def test_refuses_an_id_that_exists_before_uploading(harness, cloud):
    cloud.add_version(NEW)
    done = harness.deploy(appengine)
    done.failed(common.CONFIG, f"{NEW} exists")
    assert "apps.services.versions.create" not in kinds(cloud)
    assert cloud.objects == {}


def test_outside_actions_the_utc_time_makes_the_id_unique(harness, cloud, monkeypatch):
    monkeypatch.delenv("GITHUB_RUN_NUMBER")
    done = harness.deploy(appengine, version="v1.2.3-rc.1")
    assert done.code == common.DEPLOYED
    (new,) = set(cloud.version_ids()) - {f"v0-{n}-0" for n in range(22)}
    assert re.fullmatch(r"v1-2-3-rc-1-20\d{6}t\d{6}", new)


@pytest.mark.parametrize(
    ("version", "settings", "words"),
    [
        ("v1.2.3-" + "a" * 52, {}, "at most 63"),  # 64 characters with -42-1
        ("v1.2.3-dot.1", {}, "no '-dot-'"),
        ("ah-1a2b3c4", {}, "refuses"),
        # Short enough as an id, but VERSION-dot-PROJECT would be a 64-character DNS label.
        ("v1.2.3-" + "a" * 43, {}, "cannot resolve"),
        # A staging build's id (24) with a 35-character domain-scoped project id.
        ("v0.0.0-main.1a2b3c4", {"GCP_PROJECT_ID": "example.com:" + "p" * 35}, "cannot resolve"),
    ],
)
def test_an_id_app_engine_cannot_serve_stops_before_anything_runs(
    harness, cloud, version, settings, words
):
    harness.set(**settings)
    done = harness.deploy(appengine, version=version)
    done.failed(common.CONFIG, words, version)
    assert cloud.requests == []


def test_a_staging_build_fits_a_thirty_character_project(harness, cloud):
    cloud.project = "p" * 30
    harness.set(GCP_PROJECT_ID="p" * 30)
    done = harness.deploy(appengine, "--dry-run", version="v0.0.0-main.1a2b3c4")
    assert done.code == common.DEPLOYED
    assert "--version v0-0-0-main-1a2b3c4-42-1 --no-promote" in done.out


@pytest.mark.parametrize(
    ("service", "project", "label"),
    [
        ("default", "demo", "v1-dot-demo"),  # the default service is left out of the host
        ("api", "demo", "v1-dot-api-dot-demo"),
        ("api", "example.com:demo", "v1-dot-api-dot-demo"),
    ],
)
def test_host_label(service, project, label):
    assert common.appengine_host_label("v1", service, project) == label


def test_a_staging_id_with_a_service_and_a_long_project_is_refused():
    # 24 + 5 + 3 + 5 + 30 = 67 characters.
    with pytest.raises(common.ConfigError, match="has 67 characters, DNS allows 63"):
        common.appengine_version("v0.0.0-main.1a2b3c4", "42-1", "api", "p" * 30)
    assert common.appengine_version("v0.0.0-main.1a2b3c4", "42-1", "api", "p" * 26)


def test_a_version_whose_host_label_is_too_long_cannot_be_reached():
    """The fake's side of the 63-character rule, which the script checks before uploading."""
    with FakeAppEngine(project="p" * 30, code_url="http://127.0.0.1:1234/") as fake:
        fits = fake.version_resource("default", "v" * 28, {}, warmup=True)
        too_long = fake.version_resource("default", "v" * 29, {}, warmup=True)
    assert fits["versionUrl"] == "http://127.0.0.1:1234/"
    assert too_long["versionUrl"] != "http://127.0.0.1:1234/"


def test_a_migration_towards_a_version_without_warmup_is_refused_and_nothing_changes(
    harness, cloud, tmp_path, monkeypatch
):
    """What every real deployment did before app.yaml enabled warmup requests."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("app.yaml", ".gcloudignore", "requirements.txt", "pyproject.toml", "models"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    app_yaml = source / "app.yaml"
    app_yaml.write_text(app_yaml.read_text().replace("inbound_services:\n  - warmup\n", ""))
    monkeypatch.setattr(common, "ROOT", source)
    done = harness.deploy(appengine)
    done.failed(common.UNCHANGED, "Warmup requests must be enabled", "nothing was changed")
    assert cloud.split() == {"v0-0-0": 1.0}


def test_dry_run_calls_nothing_and_prints_the_way_back(harness, cloud):
    done = harness.deploy(appengine, "--dry-run")
    assert done.code == common.DEPLOYED
    assert cloud.requests == []
    for words in (
        "gcloud app deploy",
        "--no-promote",
        "set-traffic default --splits=v1-2-3-42-1=1 --migrate",
        "on a failure from here: restore the traffic split",
    ):
        assert words in done.out
    harness.set(GCP_PROJECT_ID="")
    done = harness.deploy(appengine, "--dry-run")
    done.failed(common.CONFIG, "GCP_PROJECT_ID is not set")


# -- Each failure at each step ------------------------------------------------------------------
# Before the traffic moves nothing serves differently (exit 1); after, the split is set back.


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("apps.services.versions.list", "garbage"),
        ("apps.services.versions.create", "error"),  # refused (gcloud retries uploads itself)
        ("apps.services.versions.create", "fail"),  # the build fails
        ("apps.services.versions.create", "sigterm"),
        ("apps.services.versions.get", "empty"),  # no versionUrl: a KeyError in the script
    ],
)
def test_a_failure_before_the_traffic_moves_changes_nothing(harness, cloud, kind, what):
    cloud.plant(kind, what)
    done = harness.deploy(appengine)
    done.failed(common.UNCHANGED, "nothing was changed")
    assert "apps.services.patch" not in kinds(cloud)
    assert cloud.split() == {"v0-0-0": 1.0}
    assert harness.output() == ""


@pytest.mark.parametrize(
    ("kind", "what", "code"),
    [
        # The migration's operation fails: the split never moved.
        ("apps.services.patch", "fail", common.UNCHANGED),
        # The job is cancelled while the migration runs: set back at once.
        ("apps.services.patch", "sigterm", common.ROLLED_BACK),
        # The migration ended, but the job was cancelled before gcloud said so.
        ("apps.services.patch.operation", "sigterm", common.ROLLED_BACK),
    ],
)
def test_a_failure_while_the_traffic_moves_sets_it_back(harness, cloud, kind, what, code):
    cloud.plant(kind, what)
    done = harness.deploy(appengine)
    done.failed(code, "the traffic split v0-0-0=1")
    assert cloud.split() == {"v0-0-0": 1.0}
    patches = [r for r in cloud.requests if r["kind"] == "apps.services.patch"]
    assert "migrateTraffic=False" in patches[-1]["query"]  # the way back is immediate
    assert harness.output() == ""


def test_a_migration_that_never_ends_times_out_and_is_set_back(harness, cloud, monkeypatch):
    # Instead of minutes: enough for the way back (the real gcloud's, on a loaded machine).
    limit = 15 if cloud.real else 1
    monkeypatch.setattr(common, "TRAFFIC_TIMEOUT", limit)
    cloud.plant("apps.services.patch", "hang")
    done = harness.deploy(appengine)
    done.failed(common.UNCHANGED, f"took longer than {limit} s", "v0-0-0=1 still serves")
    assert cloud.split() == {"v0-0-0": 1.0}


def test_a_failed_way_back_prints_the_command_to_run_by_hand(harness, cloud):
    cloud.plant("apps.services.patch.operation", "sigterm")
    cloud.plant("apps.services.versions.list", "error", after=1)  # the restore cannot read
    done = harness.deploy(appengine)
    assert done.code == common.NOT_RESTORED
    assert done.lines()[-1] == (
        "deploy/appengine: restore it by hand: "
        "gcloud app services set-traffic default --splits=v0-0-0=1 --project demo"
    )
    assert cloud.split() == {NEW: 1.0}  # what the command would put right


def test_a_second_signal_does_not_stop_the_way_back(harness, cloud):
    """The runner's SIGTERM comes 7.5 s after its SIGINT, while the script restores."""
    cloud.plant("apps.services.patch.operation", "sigterm")
    cloud.plant("apps.services.versions.list", "sigterm", after=1)  # in the restore's read
    done = harness.deploy(appengine)
    done.failed(common.ROLLED_BACK, "SIGTERM", "v0-0-0=1 serves again")
    assert "SIGTERM again: still restoring" in done.out
    assert cloud.split() == {"v0-0-0": 1.0}


# Slow, so make mutation leaves it out: the script runs in a copy, with a python that has none of
# the project's packages, which cannot import make mutation's mutated deploy/common.py.
@pytest.mark.slow
def test_runs_from_a_fresh_clone_started_by_a_python_without_the_project(tmp_path, cloud):
    """`deploy/appengine` in a fresh clone after `make env` (no model yet), started by a python3
    that cannot import the project: it runs itself again with the project's .venv python."""
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
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}
    script = [
        clone / "deploy" / "appengine",
        "--image",
        "x@sha256:" + "a" * 64,
        "--version",
        "v1.2.3",
    ]
    done = subprocess.run(
        [*script, "--dry-run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == common.DEPLOYED, done.stderr
    assert "note: models/model.skops is missing" in done.stdout
    assert "mlservice smoke" in done.stdout
    # Without --dry-run the missing model stops the deployment before anything runs.
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == common.CONFIG
    assert "models/model.skops is missing" in done.stderr
    assert cloud.requests == []


# -- The double against the real gcloud ----------------------------------------------------------

# The commands deploy/appengine runs, and their failures: refused by the API (no warmup), by
# gcloud itself (a serving version), not found, and a flag gcloud does not know.
CONTRACT = [
    ["versions", "list", "--format=json"],
    ["versions", "describe", "v0-1-0", "--service", "default", "--format=json"],
    ["services", "set-traffic", "default", "--splits=v0-2-0=1", "--migrate"],
    ["services", "set-traffic", "default", "--splits=v0-1-0=1", "--migrate"],
    ["versions", "delete", "v0-1-0", "--service", "default"],
    ["versions", "delete", "v0-0-0", "v0-2-0", "--service", "default"],
    ["services", "set-traffic", "default", "--splits=v0-0-0=1"],
    ["versions", "list", "--format=json"],
    ["versions", "describe", "v9-9-9", "--service", "default", "--format=json"],
    ["versions", "list", "--service", "other", "--format=json"],
    ["services", "set-traffic", "default", "--splits=v0-1-0=1", "--migrate", "--bogus"],
    ["versions", "delete", "v0-3-0"],  # without --service: the id in every service
    ["versions", "list", "--format=json"],
    ["deploy", str(ROOT / "app.yaml"), "--version", "v1-0-0", "--no-promote"],
]


def contract_run(fake: FakeAppEngine, run, tmp_path) -> list[tuple]:
    """(exit status, printed JSON, the Admin API requests) of each CONTRACT command."""
    fake.add_version("v0-0-0", traffic=1.0)
    fake.add_version("v0-1-0")
    fake.add_version("v0-2-0", warmup=False)
    fake.add_version("v0-3-0")
    fake.add_version("v0-3-0", service="api")
    fake.add_version("v0-9-0", service="api", traffic=1.0)
    env = fake.environment(tmp_path)
    seen = []
    for words in CONTRACT:
        before = len(fake.requests)
        code, out = run(["gcloud", "app", *words, "--project", "demo", "--quiet"], env)
        kinds = [r["kind"] for r in fake.requests[before:] if not r["kind"].startswith("storage")]
        seen.append((words, code, json.loads(out) if out.strip() else None, kinds))
    return seen


@pytest.mark.slow
def test_the_double_prints_what_gcloud_prints(tmp_path, monkeypatch):
    """For each command deploy/appengine runs, tests/standins/gcloud.py exits as the real gcloud
    does, prints the same JSON and makes the same Admin API requests (but the upload)."""
    gcloud = require_gcloud()

    def real(argv, env):
        done = subprocess.run(
            [gcloud, *argv[1:]], env={**os.environ, **env}, capture_output=True, text=True
        )
        return done.returncode, done.stdout

    def double(fake):
        def run(argv, env):
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            code, out, _ = Gcloud(fake)(argv, None, 60)
            return code, out

        return run

    with FakeAppEngine(code_url="http://127.0.0.1:9/") as fake:
        expected = contract_run(fake, real, tmp_path / "real")
    with FakeAppEngine(code_url="http://127.0.0.1:9/") as fake:
        seen = contract_run(fake, double(fake), tmp_path / "double")
    assert [code for _, code, _, _ in expected] == [0, 0, 1, 0, 1, 0, 1, 0, 1, 1, 2, 0, 0, 0]
    remaining = {(v["service"], v["id"]) for v in expected[-2][2]}
    assert ("api", "v0-3-0") not in remaining
    assert ("default", "v0-3-0") not in remaining
    assert ("api", "v0-9-0") in remaining
    assert seen == expected


def test_keep_versions_is_the_setting(harness, cloud, live_url):
    harness.set(APPENGINE_KEEP_VERSIONS="5")
    assert harness.deploy(appengine).code == common.DEPLOYED
    # 22 older ones, 5 kept with the new one: the four newest stay, and the one that served.
    kept = {"v0-0-0", "v0-18-0", "v0-19-0", "v0-20-0", "v0-21-0", NEW}
    assert set(cloud.version_ids()) == kept


def test_a_service_app_yaml_does_not_deploy_is_refused(harness, cloud):
    harness.set(APPENGINE_SERVICE="api")
    done = harness.deploy(appengine)
    done.failed(common.CONFIG, "APPENGINE_SERVICE=api but app.yaml deploys another service")
    assert cloud.requests == []


@pytest.mark.parametrize("name", appengine.UPLOADED)
def test_each_uploaded_file_must_be_there(harness, cloud, tmp_path, monkeypatch, name):
    clone = tmp_path / "clone"
    for present in appengine.UPLOADED:
        if present != name:
            (clone / present).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / present, clone / present)
    monkeypatch.setattr(common, "ROOT", clone)
    done = harness.deploy(appengine)
    done.failed(common.CONFIG, f"{name} is missing")
    assert cloud.requests == []


def test_the_compiled_model_the_card_names_must_be_there(harness, cloud, tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    for present in appengine.UPLOADED:
        (clone / present).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / present, clone / present)
    card = json.loads((clone / "models" / "model.json").read_text())
    card["serving"] = {**card.get("serving", {}), "file": "compiled.onnx"}
    (clone / "models" / "model.json").write_text(json.dumps(card))
    monkeypatch.setattr(common, "ROOT", clone)
    done = harness.deploy(appengine)
    done.failed(common.CONFIG, "models/compiled.onnx is missing")
    assert cloud.requests == []


def test_the_metrics_token_reaches_env_variables_but_no_uploaded_file(harness, cloud, metered_url):
    cloud.code_url = metered_url  # the app as it runs with METRICS_TOKEN set
    harness.set(METRICS_TOKEN=METRICS_TOKEN)
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    created = cloud.services["default"]["versions"][NEW]
    # gcloud read the service's settings from the copy of app.yaml, WEB_CONCURRENCY kept.
    assert created["envVariables"] == {"WEB_CONCURRENCY": "2", "METRICS_TOKEN": METRICS_TOKEN}
    assert created["inboundServices"] == ["INBOUND_SERVICE_WARMUP"]
    if cloud.real:  # the double uploads nothing
        assert "app.yaml" in created["deployment"]["files"]
        assert appengine.WITH_SETTINGS not in created["deployment"]["files"]
        assert not any(METRICS_TOKEN.encode() in content for content in cloud.objects.values())
    assert not (ROOT / appengine.WITH_SETTINGS).exists()
    assert "METRICS_TOKEN: set in env_variables (deploying app.deploy.yaml)" in done.out
    assert f"deploy {ROOT / 'app.deploy.yaml'} --version" in done.out
    assert "ok   /metrics answers with the token, refuses without it (401)" in done.out
    assert METRICS_TOKEN not in done.out + done.err


def test_without_a_metrics_token_app_yaml_is_deployed_as_it_is(harness, cloud):
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    assert cloud.services["default"]["versions"][NEW]["envVariables"] == {"WEB_CONCURRENCY": "2"}
    assert f"deploy {ROOT / 'app.yaml'} --version" in done.out


@pytest.mark.parametrize(
    ("app_yaml", "expected"),
    [
        (
            'runtime: python313\nenv_variables:\n    A: "1"\nhandlers: []\n',
            'runtime: python313\nenv_variables:\n    T: "x/y="\n    A: "1"\nhandlers: []\n',
        ),
        (
            "runtime: python313\nenv_variables:\nhandlers: []\n",
            'runtime: python313\nenv_variables:\n  T: "x/y="\nhandlers: []\n',
        ),
        ("runtime: python313\n\n", 'runtime: python313\nenv_variables:\n  T: "x/y="\n'),
    ],
)
def test_settings_join_app_yamls_env_variables(app_yaml, expected):
    assert appengine.with_env_variables(app_yaml, {"T": "x/y="}) == expected
    assert yaml.safe_load(expected)["env_variables"]["T"] == "x/y="


def test_app_yaml_that_sets_the_token_itself_is_refused():
    with pytest.raises(common.ConfigError, match=r"app\.yaml sets T: the deploy job's"):
        appengine.with_env_variables('env_variables:\n  T: "1"\n', {"T": "2"})


def test_keep_versions_defaults_to_twenty(harness, cloud, monkeypatch):
    monkeypatch.delenv("APPENGINE_KEEP_VERSIONS")
    assert harness.deploy(appengine).code == common.DEPLOYED
    # As with 20 set: the two oldest that served nothing go.
    assert "v0-1-0" not in cloud.version_ids()
    assert "v0-2-0" not in cloud.version_ids()
    assert len(cloud.version_ids()) == 21


def test_keep_versions_up_to_two_hundred_prunes_nothing_and_says_so(harness, cloud):
    harness.set(APPENGINE_KEEP_VERSIONS="200")
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    assert "apps.services.versions.delete" not in kinds(cloud)
    assert len(cloud.version_ids()) == 23
    assert "deploy/appengine: 23 versions, keeping up to 200: nothing to prune\n" in done.out


@pytest.mark.parametrize("keep", ["0", "201"])
def test_keep_versions_outside_its_range_stops_before_anything_runs(harness, cloud, keep):
    harness.set(APPENGINE_KEEP_VERSIONS=keep)
    done = harness.deploy(appengine)
    done.failed(common.CONFIG, f"APPENGINE_KEEP_VERSIONS={keep} is outside 1..200")
    assert cloud.requests == []


def test_a_failed_prune_only_warns_and_the_deployment_stands(harness, cloud, live_url):
    cloud.plant("apps.services.versions.delete", "error")
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    (warning,) = [line for line in done.out.splitlines() if line.startswith("::warning::")]
    assert warning.startswith(
        "::warning::deploy/appengine: pruning old versions failed: "
        "`gcloud app versions ...` exited 1: "
    )
    assert harness.output() == f"url={live_url}\n"


def test_a_failure_after_a_first_deployment_moved_traffic_cannot_be_taken_back(harness, cloud):
    """No version served before: nothing to set the traffic back to, only to look at by hand."""
    cloud.services["default"]["split"]["allocations"].clear()
    cloud.plant("apps.services.patch.operation", "sigterm")
    done = harness.deploy(appengine)
    assert done.code == common.NOT_RESTORED
    assert "the traffic split no traffic (first deployment)" in done.out
    assert done.lines()[-2].endswith(
        "restoring the traffic split no traffic (first deployment) failed: "
        "no version served traffic before this deployment"
    )
    assert done.lines()[-1] == (
        "deploy/appengine: restore it by hand: gcloud app services describe default --project demo"
    )


def test_a_split_over_two_versions_is_set_back_as_it_was(harness, cloud):
    allocations = cloud.services["default"]["split"]["allocations"]
    allocations.update({"v0-0-0": 0.5, "v0-3-0": 0.5})
    cloud.plant("apps.services.patch.operation", "sigterm")
    done = harness.deploy(appengine)
    done.failed(common.ROLLED_BACK, "the traffic split v0-0-0=0.5,v0-3-0=0.5 serves again")
    assert cloud.split() == {"v0-0-0": 0.5, "v0-3-0": 0.5}


def test_a_failed_way_back_to_a_split_over_two_versions_prints_it_whole(harness, cloud):
    cloud.services["default"]["split"]["allocations"].update({"v0-0-0": 0.5, "v0-3-0": 0.5})
    cloud.plant("apps.services.patch.operation", "sigterm")
    cloud.plant("apps.services.versions.list", "error", after=1)
    done = harness.deploy(appengine)
    assert done.code == common.NOT_RESTORED
    assert done.lines()[-1] == (
        "deploy/appengine: restore it by hand: gcloud app services set-traffic default "
        "--splits=v0-0-0=0.5,v0-3-0=0.5 --project demo"
    )


def test_only_the_upload_prints_what_gcloud_says(harness, cloud):
    """gcloud app deploy's progress goes to the job log; the other calls print only the command."""
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    assert "Deployed service [default]" in done.out
    assert "Setting traffic split" not in done.out + done.err
    assert "Deleting [" not in done.out + done.err
    image = "ghcr.io/owner/repo@sha256:" + "a" * 64
    assert (
        f"deploy/appengine: deploying the source (the image {image} holds the same code and model)"
        in done.out
    )


def test_a_dry_run_smoke_tests_the_new_versions_own_url(harness, cloud):
    done = harness.deploy(appengine, "--dry-run")
    assert "smoke https://v1-2-3-42-1-dot-demo.appspot.com " in done.out
    assert "nothing to prune" not in done.out


@pytest.mark.parametrize(
    ("run", "attempt", "suffix"),
    [
        ("42", "2", "42-2"),  # a re-run
        ("42", None, "42-1"),  # no attempt: the first
        ("42", "x", None),
        ("", "1", None),
        (None, "1", None),
    ],
)
def test_the_unique_suffix_is_the_run_and_attempt_else_the_utc_time(
    monkeypatch, run, attempt, suffix
):
    for name, value in (("GITHUB_RUN_NUMBER", run), ("GITHUB_RUN_ATTEMPT", attempt)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    found = appengine.unique_suffix()
    if suffix is None:
        assert re.fullmatch(r"20\d{6}t\d{6}", found)
    else:
        assert found == suffix


def app_yaml_source(tmp_path, monkeypatch, app_yaml: str):
    """A checkout whose app.yaml is `app_yaml`, with the files the upload needs."""
    clone = tmp_path / "clone"
    for name in appengine.served_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, clone / name)
    (clone / "app.yaml").write_text(app_yaml)
    monkeypatch.setattr(common, "ROOT", clone)


@pytest.mark.parametrize(
    ("app_yaml", "service"),
    [
        ("runtime: python313\nservice: api\n", "api"),  # declared on a later line
        ("service:   api\nruntime: python313\n", "api"),
        ("runtime: python313\n", "default"),  # not declared: the default service
        ("runtime: python313\n# service: api\n", "default"),
    ],
)
def test_the_service_app_yaml_deploys_must_be_the_setting(tmp_path, monkeypatch, app_yaml, service):
    app_yaml_source(tmp_path, monkeypatch, app_yaml)
    d = common.Deployer("appengine")
    appengine.check_source(d, service)
    other = "default" if service == "api" else "api"
    with pytest.raises(common.ConfigError, match=f"APPENGINE_SERVICE={other} but app.yaml"):
        appengine.check_source(d, other)


def test_main_runs_the_app_engine_deployment(harness, cloud):
    """`deploy/appengine` itself: main() with the command line."""
    code = appengine.main(["--image", "x@sha256:" + "a" * 64, "--version", "v1.2.3", "--dry-run"])
    out = harness.capfd.readouterr().out
    assert code == common.DEPLOYED
    assert "deploy/appengine: dry run complete: would deploy v1.2.3" in out
    assert "gcloud app deploy" in out


def test_the_upload_and_the_prune_get_their_time_limits(harness, cloud):
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    limits = {call: limit for call, limit in done.deployer.ledger}
    assert limits["gcloud app deploy " + str(ROOT / "app.yaml")] == common.BUILD_TIMEOUT
    assert limits["gcloud app versions delete"] == common.TRAFFIC_TIMEOUT


def test_settings_join_app_yamls_env_variables_in_their_order():
    app_yaml = 'env_variables:\n  A: "1"\n'
    joined = appengine.with_env_variables(app_yaml, {"T": "x", "U": "y"})
    assert joined == 'env_variables:\n  T: "x"\n  U: "y"\n  A: "1"\n'


@pytest.fixture
def far_from_utc(monkeypatch):
    """The local time 14 hours ahead of UTC (Kiribati's)."""
    monkeypatch.setenv("TZ", "KIR-14")  # POSIX form: needs no time zone data
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_time_suffix_is_utc_whatever_the_local_time(monkeypatch, far_from_utc):
    monkeypatch.delenv("GITHUB_RUN_NUMBER", raising=False)
    stamp = datetime.strptime(appengine.unique_suffix(), "%Y%m%dt%H%M%S")
    now = datetime.now(UTC).replace(tzinfo=None)
    assert abs(stamp - now) < timedelta(hours=1)


def test_the_url_of_a_version_of_another_service_holds_that_service(
    harness, cloud, tmp_path, monkeypatch
):
    # v1-2-3-aaa…-42-1 (52) fits the default service's host label, not api's (69 characters).
    app_yaml_source(tmp_path, monkeypatch, "runtime: python313\nservice: api\n")
    harness.set(APPENGINE_SERVICE="api")
    done = harness.deploy(appengine, version="v1.2.3-" + "a" * 40)
    done.failed(common.CONFIG, "-dot-api-dot-demo.<region>.r.appspot.com cannot resolve")
    assert cloud.requests == []


def test_a_dry_run_without_the_model_notes_it_and_goes_on(harness, cloud, tmp_path, monkeypatch):
    app_yaml_source(tmp_path, monkeypatch, (ROOT / "app.yaml").read_text())
    (common.ROOT / "models" / "model.skops").unlink()
    done = harness.deploy(appengine, "--dry-run")
    assert done.code == common.DEPLOYED
    assert (
        "deploy/appengine: note: models/model.skops is missing (the deploy job brings the tested "
        "model; locally: make model)\n" in done.out
    )


def test_the_service_url_is_reported_not_the_versions(harness, cloud, monkeypatch):
    """App Engine gives the version's own URL; once it has all the traffic, the service's is
    the one to report."""
    cloud.code_url = "https://v1-2-3-42-1-dot-demo.ew.r.appspot.com/"  # as Google answers
    smoked = []
    monkeypatch.setattr(common.Deployer, "smoke", lambda d, url: smoked.append(url) or True)
    done = harness.deploy(appengine)
    assert done.code == common.DEPLOYED
    assert smoked == ["https://v1-2-3-42-1-dot-demo.ew.r.appspot.com/"]
    assert harness.output() == "url=https://demo.ew.r.appspot.com/\n"
    assert done.lines() == []
