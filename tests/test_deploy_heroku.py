"""deploy/heroku against the Platform API stand-in (and its token-auth registry stand-in).

docker is the stand-in in tests/standins/bin; tests/test_deploy_heroku_registry.py pushes for real
to a real registry. The smoke test runs against the real app, or a port where nothing listens.
"""

import base64
import json
import uuid

import pytest

from deploy import common, heroku
from tests.deploy_harness import IMAGE, METRICS_TOKEN
from tests.standins.heroku_api import DOCKER_RELEASES, FakeHeroku

KEY = "hk-" + uuid.uuid4().hex  # a made-up API key
DIGEST = "sha256:" + "e" * 64


@pytest.fixture
def setup(harness, tmp_path):
    """Connects a FakeHeroku to the harness: settings, docker stand-in, registry manifest."""

    def connect(fake: FakeHeroku, concurrency: str | None = "2") -> FakeHeroku:
        (tmp_path / "docker.json").write_text(json.dumps({"local_images": [], "fail": []}))
        harness.set(
            HEROKU_APP="demo",
            HEROKU_API_KEY=KEY,
            HEROKU_API_URL=fake.url,
            HEROKU_REGISTRY=fake.url.removeprefix("http://"),
            HEROKU_REGISTRY_INSECURE="1",
            STANDIN_STATE=str(tmp_path / "docker.json"),
            STANDIN_LOG=str(tmp_path / "docker.log"),
        )
        if concurrency:
            fake.config["WEB_CONCURRENCY"] = concurrency  # what basic dynos get: no config release
            fake.current()["config"] = dict(fake.config)
        fake.manifest = {
            "schemaVersion": 2,
            "mediaType": heroku.MANIFEST_V2,
            "config": {"digest": DIGEST},
        }
        return fake

    return connect


def docker_calls(tmp_path) -> list[dict]:
    log = tmp_path / "docker.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def requests(fake: FakeHeroku, method: str) -> list[dict]:
    return [r for r in fake.requests if r["method"] == method]


def assert_traced(done, fake: FakeHeroku) -> None:
    """The script's trace shows each Platform API call the fake received, method first, in order:
    what a reader of the job's log sees is what was sent."""
    api = f"{fake.url}/apps/"
    shown = [
        line.split(" (Accept: ")[0]
        for line in done.out.splitlines()
        if line.startswith("+ ") and f" {api}" in line
    ]
    sent = [
        f"+ {r['method']} {fake.url}{r['path']}"
        for r in fake.requests
        if r["path"].startswith("/apps/")
    ]
    assert shown == sent


def test_releases_the_config_digest_waits_for_pending_and_starting(
    harness, setup, live_url, tmp_path
):
    with setup(FakeHeroku("demo", KEY, live_url, pending_looks=3, starting_looks=3)) as fake:
        done = harness.deploy(heroku)
        new = fake.current()
    assert done.code == common.DEPLOYED
    (patch,) = [r for r in requests(fake, "PATCH") if r["path"].endswith("/formation")]
    assert patch["body"] == {"updates": [{"type": "web", "docker_image": DIGEST}]}
    assert patch["headers"]["Accept"] == DOCKER_RELEASES
    assert (new["version"], new["image"]) == (8, DIGEST)
    gets = [r["path"] for r in requests(fake, "GET")]
    assert gets.count(f"/apps/demo/releases/{new['id']}") >= 3
    assert gets.count("/apps/demo/dynos") >= 4  # three answers of `starting`, then `up`
    assert requests(fake, "POST") == []
    assert_traced(done, fake)
    # docker: logged in as _ with the key on stdin, never in argv; tagged and pushed.
    calls = docker_calls(tmp_path)
    (login,) = [c for c in calls if c["argv"][0] == "login"]
    assert login["stdin"] == KEY
    assert all(KEY not in " ".join(c["argv"]) for c in calls)
    assert KEY not in done.out + done.err
    assert harness.output() == f"url={live_url}\n"


def test_a_release_not_listed_yet_is_waited_for_not_taken_for_the_one_before(
    harness, setup, live_url
):
    with setup(FakeHeroku("demo", KEY, live_url, unlisted_looks=2)) as fake:
        done = harness.deploy(heroku)
        new = fake.current()
    assert done.code == common.DEPLOYED
    assert (new["version"], new["image"]) == (8, DIGEST)
    listings = [r for r in requests(fake, "GET") if r["path"] == "/apps/demo/releases"]
    assert len(listings) >= 3  # twice without v8, then with it


def test_smoke_failure_rolls_back_to_the_release_before(harness, setup, dead_url):
    with setup(FakeHeroku("demo", KEY, dead_url)) as fake:
        previous = fake.current()
        done = harness.deploy(heroku)
    done.failed(common.ROLLED_BACK, "smoke test failed", "release v7 serves again")
    (rollback,) = requests(fake, "POST")
    assert rollback["path"] == "/apps/demo/releases"
    assert rollback["body"] == {"release": previous["id"]}
    assert fake.current()["description"] == "Rollback to v7"
    assert fake.current()["image"] == previous["image"]
    assert harness.output() == ""
    assert_traced(done, fake)


def test_crashed_dynos_roll_back_without_a_smoke_test(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url, dynos="crashed")) as fake:
        done = harness.deploy(heroku)
    done.failed(common.ROLLED_BACK, "crashed", "release v7 serves again")
    assert len(requests(fake, "POST")) == 1
    assert "mlservice smoke" not in done.out


def test_a_failed_release_phase_changes_nothing(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url, release="failed")) as fake:
        done = harness.deploy(heroku)
        serving = fake.current()
    done.failed(common.UNCHANGED, "release v8 failed", "release v7 still serves")
    assert serving["version"] == 7
    assert requests(fake, "POST") == []  # Heroku kept release v7: nothing to roll back
    assert "mlservice smoke" not in done.out


def test_a_failed_release_after_the_config_change_rolls_the_config_back_too(
    harness, setup, live_url
):
    with setup(FakeHeroku("demo", KEY, live_url, release="failed"), concurrency=None) as fake:
        done = harness.deploy(heroku)
        config = dict(fake.config)
    done.failed(common.ROLLED_BACK, "release v9 failed", "release v7 serves again")
    assert fake.current()["description"] == "Rollback to v7"
    assert "WEB_CONCURRENCY" not in config  # as it was when the script started


def test_a_failed_rollback_prints_the_command_to_run_by_hand(harness, setup, dead_url):
    with setup(FakeHeroku("demo", KEY, dead_url, rollback="failed")):
        done = harness.deploy(heroku)
    assert done.code == common.NOT_RESTORED
    assert "release v9 failed" in done.lines()[0]
    assert done.lines()[-1] == "deploy/heroku: restore it by hand: heroku rollback v7 -a demo"


def test_an_app_without_web_dynos_is_one_clear_error(harness, setup, live_url, tmp_path):
    with setup(FakeHeroku("demo", KEY, live_url, quantity=0)) as fake:
        done = harness.deploy(heroku)
    done.failed(
        common.CONFIG,
        "HEROKU_APP=demo runs no web dynos (formation quantity 0): "
        "scale it up first (heroku ps:scale web=1)",
    )
    assert docker_calls(tmp_path) == []
    assert requests(fake, "PATCH") == []


@pytest.mark.parametrize(
    ("size", "workers"),
    [("basic", "2"), ("Standard-1X", "2"), ("standard-2x", "4"), ("performance-m", "8")],
)
def test_sets_web_concurrency_for_the_dyno_size_before_the_release(
    harness, setup, live_url, size, workers
):
    with setup(FakeHeroku("demo", KEY, live_url, size=size), concurrency=None) as fake:
        done = harness.deploy(heroku)
        config = dict(fake.config)
    assert done.code == common.DEPLOYED
    (change,) = [r for r in requests(fake, "PATCH") if r["path"].endswith("/config-vars")]
    assert change["body"] == {"WEB_CONCURRENCY": workers}
    assert config["WEB_CONCURRENCY"] == workers
    methods = [(r["method"], r["path"]) for r in fake.requests]
    assert methods.index(("PATCH", "/apps/demo/config-vars")) < methods.index(
        ("PATCH", "/apps/demo/formation")
    )


def test_leaves_web_concurrency_alone_when_it_is_right(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    assert not [r for r in requests(fake, "PATCH") if r["path"].endswith("/config-vars")]


def test_a_new_app_without_a_web_formation_gets_web_concurrency_and_its_first_release(
    harness, setup, live_url
):
    with setup(FakeHeroku("demo", KEY, live_url, size=None), concurrency=None) as fake:
        done = harness.deploy(heroku)
        config, formation = dict(fake.config), list(fake.formation)
    assert done.code == common.DEPLOYED
    assert config["WEB_CONCURRENCY"] == "2"  # its first web dyno is Basic (or Eco): 512 MB
    assert formation == [{"type": "web", "quantity": 1, "size": "Basic"}]


def test_a_new_app_whose_first_release_fails_its_smoke_test_says_how_to_stop_it(
    harness, setup, dead_url
):
    with setup(FakeHeroku("demo", KEY, dead_url, size=None), concurrency=None):
        done = harness.deploy(heroku)
    assert done.code == common.NOT_RESTORED
    assert done.lines()[-1] == "deploy/heroku: restore it by hand: heroku ps:scale web=0 -a demo"


def test_a_sleeping_eco_dyno_counts_as_serving(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url, size="eco", dynos="idle")):
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED


def test_an_oci_manifest_in_the_registry_stops_it_before_the_release(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        done = harness.deploy(heroku)
    done.failed(
        common.UNCHANGED,
        "the registry holds a application/vnd.oci.image.manifest.v1+json manifest; Heroku needs "
        "a Docker v2 image manifest (build with provenance: false, sbom: false)",
        "release v7 still serves",
    )
    assert not [r for r in requests(fake, "PATCH") if r["path"].endswith("/formation")]


def test_dry_run_masks_the_key_and_calls_nothing(harness, setup, live_url, tmp_path):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        done = harness.deploy(heroku, "--dry-run")
    assert done.code == common.DEPLOYED
    assert fake.requests == []
    assert docker_calls(tmp_path) == []
    assert KEY not in done.out + done.err
    assert "Authorization: Bearer ***" in done.out
    for words in ("docker login", "docker push", "PATCH", "/formation", DOCKER_RELEASES):
        assert words in done.out


@pytest.mark.parametrize("missing", ["HEROKU_APP", "HEROKU_API_KEY"])
def test_a_missing_setting_is_one_clear_error(harness, setup, live_url, missing):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        harness.set(**{missing: ""})
        done = harness.deploy(heroku)
    done.failed(common.CONFIG, f"{missing} is not set")
    assert fake.requests == []


# -- Each failure at each step ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "what"),
    [
        ("GET", "", "error"),
        ("GET", "/formation", "garbage"),  # not JSON: an unexpected answer
        ("GET", "/releases", "sigterm"),
        ("PATCH", "/formation", "error"),
        ("PATCH", "/formation", "sigterm"),  # the release was asked for: it is rolled back
        ("GET", "/dynos", "garbage"),
        ("GET", "/dynos", "sigterm"),
    ],
)
def test_a_failure_at_any_step_leaves_release_v7_serving(
    harness, setup, live_url, method, path, what
):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.plant(method, path, what, after=1 if (method, path) == ("GET", "/releases") else 0)
        done = harness.deploy(heroku)
        serving = fake.current()
    assert done.code in (common.UNCHANGED, common.ROLLED_BACK)
    assert serving["image"] == f"sha256:{7:064x}"  # release v7's image serves
    assert harness.output() == ""


@pytest.mark.parametrize("command", ["pull", "login", "push"])
def test_a_docker_failure_after_the_config_change_rolls_it_back(
    harness, setup, live_url, tmp_path, command
):
    with setup(FakeHeroku("demo", KEY, live_url), concurrency=None) as fake:
        (tmp_path / "docker.json").write_text(json.dumps({"local_images": [], "fail": [command]}))
        done = harness.deploy(heroku)
    done.failed(common.ROLLED_BACK, f"{command} failed", "release v7 serves again")
    assert "WEB_CONCURRENCY" not in fake.config


def test_a_release_pending_at_a_signal_is_waited_for_before_anything_is_rolled_back(
    harness, setup, live_url
):
    """Its release phase fails after the signal: Heroku keeps v7, and nothing is rolled back."""
    with setup(FakeHeroku("demo", KEY, live_url, release="failed")) as fake:
        fake.plant("PATCH", "/formation", "sigterm")
        done = harness.deploy(heroku)
    done.failed(common.UNCHANGED, "SIGTERM", "release v7 still serves")
    assert fake.releases[-1]["status"] == "failed"
    assert requests(fake, "POST") == []
    out = done.out.splitlines()
    assert "deploy/heroku: release v8 is pending" in out  # waited for, then
    assert "deploy/heroku: release v8 is failed" in out
    assert_traced(done, fake)


def test_the_metrics_token_becomes_a_config_var_once_and_the_smoke_test_asks_metrics_with_it(
    harness, setup, metered_url
):
    with setup(FakeHeroku("demo", KEY, metered_url)) as fake:
        harness.set(METRICS_TOKEN=METRICS_TOKEN)
        first = harness.deploy(heroku)
        again = harness.deploy(heroku, version="v1.2.4")
        config = dict(fake.config)
    assert (first.code, again.code) == (common.DEPLOYED, common.DEPLOYED)
    # WEB_CONCURRENCY was right already: only the token changed, and only the first time.
    (change,) = [r for r in requests(fake, "PATCH") if r["path"].endswith("/config-vars")]
    assert change["body"] == {"METRICS_TOKEN": METRICS_TOKEN}
    assert config["METRICS_TOKEN"] == METRICS_TOKEN
    for done in (first, again):
        assert "ok   /metrics answers with the token, refuses without it (401)" in done.out
        assert METRICS_TOKEN not in done.out + done.err
    assert "config vars changed: METRICS_TOKEN" in first.out


def test_without_a_metrics_token_the_config_var_is_left_as_it_is(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.config["METRICS_TOKEN"] = "set-by-hand-" + "x" * 32
        done = harness.deploy(heroku)
        config = dict(fake.config)
    assert done.code == common.DEPLOYED
    assert not [r for r in requests(fake, "PATCH") if r["path"].endswith("/config-vars")]
    assert config["METRICS_TOKEN"] == "set-by-hand-" + "x" * 32


def test_an_unknown_dyno_size_still_gets_the_metrics_token(harness, setup, metered_url):
    with setup(FakeHeroku("demo", KEY, metered_url, size="Fir-1X")) as fake:
        harness.set(METRICS_TOKEN=METRICS_TOKEN)
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    (change,) = [r for r in requests(fake, "PATCH") if r["path"].endswith("/config-vars")]
    assert change["body"] == {"METRICS_TOKEN": METRICS_TOKEN}
    assert "unknown dyno size 'Fir-1X': WEB_CONCURRENCY unchanged" in done.out


def test_a_dry_run_masks_the_metrics_token(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        harness.set(METRICS_TOKEN=METRICS_TOKEN)
        done = harness.deploy(heroku, "--dry-run")
    assert done.code == common.DEPLOYED
    assert fake.requests == []
    assert '"METRICS_TOKEN": "***"' in done.out  # the config-vars PATCH it would send
    assert METRICS_TOKEN not in done.out + done.err


def test_main_runs_the_heroku_deployment(harness, setup, live_url):
    """`deploy/heroku` itself: main() with the command line."""
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        image = "x@sha256:" + "a" * 64
        code = heroku.main(["--image", image, "--version", "v1.2.3", "--dry-run"])
    out = harness.capfd.readouterr().out
    assert code == common.DEPLOYED
    assert "deploy/heroku: dry run complete: would deploy v1.2.3" in out
    assert fake.requests == []


def test_a_dry_run_shows_the_defaults_and_what_it_would_release(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)):
        for name in ("HEROKU_API_URL", "HEROKU_REGISTRY", "HEROKU_REGISTRY_INSECURE"):
            harness.monkeypatch.delenv(name)
        done = harness.deploy(heroku, "--dry-run")
    assert done.code == common.DEPLOYED
    out = done.out.splitlines()
    assert "+ GET https://api.heroku.com/apps/demo (Accept: " + heroku.API + ", " in done.out
    assert (
        "+ GET https://registry.heroku.com/v2/demo/web/manifests/latest "
        f"(Accept: {heroku.MANIFEST_V2}, Authorization: Basic _:***)"
    ) in out
    assert "docker tag x@sha256:" not in done.out  # the image is the harness's
    assert '"docker_image": "sha256:<config digest>"' in done.out
    # Nothing was read: the app is taken for a new one, whose first release cannot be undone.
    assert (
        "deploy/heroku: on a failure from here: restore nothing (the app's first release) "
        "(heroku ps:scale web=0 -a demo)"
    ) in out
    assert (
        "deploy/heroku: then poll GET /releases/<id> until it is no longer pending, and GET /dynos"
    ) in out
    assert "deploy/heroku: until the release's web dynos are up" in out
    assert "smoke https://demo.herokuapp.com/ " in done.out
    assert "deploy/heroku: basic dynos (512 MB): WEB_CONCURRENCY=2" in out
    assert "deploy/heroku: config vars changed: WEB_CONCURRENCY" in out  # shown, not read


def test_an_api_url_with_a_trailing_slash_and_insecure_true(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        harness.set(HEROKU_API_URL=fake.url + "/", HEROKU_REGISTRY_INSECURE="true")
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    assert not [r for r in fake.requests if "//apps" in r["path"]]


def test_the_registry_token_limits_and_pushes(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)):
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    limits = [limit for _, limit in done.deployer.ledger]
    (manifest,) = [limit for call, limit in done.deployer.ledger if "manifests/latest" in call]
    assert manifest == 3 * common.HTTP_TIMEOUT  # the manifest, with the token exchange
    assert limits.count(common.UPLOAD_TIMEOUT) == 2  # docker pull, docker push
    assert f"latest: digest: sha256:{'d' * 64} size: 528" in done.out  # the push, echoed


@pytest.mark.parametrize(
    ("header", "field"),
    [("WWW-Authenticate", "token"), ("Www-Authenticate", "access_token")],
)
def test_the_registry_challenge_and_token_in_either_spelling(
    harness, setup, live_url, header, field
):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.challenge_header, fake.token_field = header, field
        done = harness.deploy(heroku)
        new = fake.current()
    assert done.code == common.DEPLOYED
    assert new["image"] == DIGEST


def test_a_refused_registry_token_stops_it_before_the_release(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.plant("GET", "/token", "error")
        done = harness.deploy(heroku)
    done.failed(common.UNCHANGED, "registry token request answered 503", "release v7 still")
    assert not [r for r in requests(fake, "PATCH") if r["path"].endswith("/formation")]


def test_a_registry_without_the_image_stops_it_before_the_release(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.plant("GET", "/v2/demo/web/manifests/latest", "error", after=1)
        done = harness.deploy(heroku)
    done.failed(
        common.UNCHANGED,
        f"GET {fake.url}/v2/demo/web/manifests/latest answered 503: "
        + repr(b'{"id": "unavailable", "message": "planted"}'),
    )


@pytest.mark.parametrize(
    ("path", "after"),
    [
        ("/v2/demo/web/manifests/latest", 0),  # the first ask
        ("/token", 0),  # the token exchange
        ("/v2/demo/web/manifests/latest", 1),  # the ask with the token
    ],
)
def test_a_registry_that_does_not_answer_stops_it_before_the_release(
    harness, setup, live_url, monkeypatch, path, after
):
    monkeypatch.setattr(common, "HTTP_TIMEOUT", 1)  # each call's limit, instead of a minute
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.plant("GET", path, "hang", after=after)
        done = harness.deploy(heroku)
    done.failed(common.UNCHANGED, f"GET {fake.url}{path}", "timed out", "release v7 still serves")
    assert not [r for r in requests(fake, "PATCH") if r["path"].endswith("/formation")]


def test_each_registry_request_has_the_calls_time_limit(harness, setup, live_url, monkeypatch):
    limits = []
    request = common.request

    def timed(method, url, headers, data=None, timeout="none given"):
        if "/apps/" not in url:
            limits.append(timeout)
        return request(method, url, headers, data, timeout)

    monkeypatch.setattr(common, "request", timed)
    with setup(FakeHeroku("demo", KEY, live_url)):
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    assert limits == [common.HTTP_TIMEOUT] * 3  # the manifest, the token, the manifest again


def test_a_registry_that_refuses_without_a_bearer_challenge_is_named(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.token_auth, fake.manifest = False, None  # a 401 with no challenge to answer
        done = harness.deploy(heroku)
    done.failed(
        common.UNCHANGED, f"GET {fake.url}/v2/demo/web/manifests/latest answered 401", "v7 still"
    )


def test_a_long_registry_error_is_cut_to_200_bytes(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.plant("GET", "/v2/demo/web/manifests/latest", "long error", after=1)
        done = harness.deploy(heroku)
    raw = json.dumps({"id": "unavailable", "message": "x" * 300}).encode()
    done.failed(common.UNCHANGED, f"answered 503: {raw[:200]!r}")
    assert f"{raw[:201]!r}" not in done.err


def test_releases_failed_since_the_current_one_stop_it_before_any_change(
    harness, setup, live_url, tmp_path
):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        for _ in range(heroku.CURRENT_AMONG):  # v8 to v17, their release phases failed
            fake.release(fake.current()["image"], "Deployed web")["status"] = "failed"
        done = harness.deploy(heroku)
    done.failed(
        common.UNCHANGED,
        f"none of the newest {heroku.CURRENT_AMONG} releases of demo is current",
        "(heroku releases -a demo)",
    )
    assert [r["method"] for r in fake.requests] == ["GET"] * len(fake.requests)
    assert docker_calls(tmp_path) == []


def test_the_current_release_is_found_behind_failed_ones(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        for _ in range(heroku.CURRENT_AMONG - 1):  # v8 to v16: v7 is the tenth newest
            fake.release(fake.current()["image"], "Deployed web")["status"] = "failed"
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    assert fake.current()["version"] == 17


def test_a_registry_asked_without_the_schema_2_type_would_answer_schema_1(setup, live_url):
    """The stand-in's rule that keeps the script's Accept header honest."""
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        basic = {"Authorization": "Basic " + base64.b64encode(f"_:{KEY}".encode()).decode()}
        fake.token_auth = False
        url = f"{fake.url}/v2/demo/web/manifests/latest"
        v1 = json.loads(common.request("GET", url, basic)[2])
        v2 = json.loads(common.request("GET", url, {**basic, "Accept": heroku.MANIFEST_V2})[2])
    assert v1["mediaType"] == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    assert v2["config"] == {"digest": DIGEST}


def test_a_deployment_says_how_its_release_goes(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url, pending_looks=2, starting_looks=2)):
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    out = done.out.splitlines()
    assert "deploy/heroku: release v8 is pending (its release phase runs)" in out
    assert "deploy/heroku: release v8: web dynos ['starting']" in out
    assert "deploy/heroku: basic dynos (512 MB): WEB_CONCURRENCY=2" in out


def test_both_config_vars_changed_are_named(harness, setup, metered_url):
    with setup(FakeHeroku("demo", KEY, metered_url), concurrency=None):
        harness.set(METRICS_TOKEN=METRICS_TOKEN)
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    assert "deploy/heroku: config vars changed: WEB_CONCURRENCY, METRICS_TOKEN" in done.out


def test_an_unknown_dyno_size_without_a_token_reads_no_config_vars(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url, size="Fir-1X")) as fake:
        done = harness.deploy(heroku)
    assert done.code == common.DEPLOYED
    assert (
        "::warning::deploy/heroku: unknown dyno size 'Fir-1X': WEB_CONCURRENCY unchanged"
        in done.out.splitlines()
    )
    assert not [r for r in fake.requests if r["path"].endswith("/config-vars")]


def test_a_smoke_failure_names_the_url_and_release(harness, setup, dead_url):
    with setup(FakeHeroku("demo", KEY, dead_url)):
        done = harness.deploy(heroku)
    done.failed(common.ROLLED_BACK, f"FAILED: smoke test failed on {dead_url} (release v8);")


def test_a_crashed_dyno_names_its_release(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url, dynos="crashed")):
        done = harness.deploy(heroku)
    done.failed(common.ROLLED_BACK, "FAILED: a web dyno of release v8 crashed;")


def test_a_new_app_whose_first_release_serves_cannot_be_taken_back(harness, setup, dead_url):
    with setup(FakeHeroku("demo", KEY, dead_url, size=None), concurrency=None):
        done = harness.deploy(heroku)
    assert done.code == common.NOT_RESTORED
    assert done.lines()[-2].endswith(
        "restoring nothing (the app's first release) failed: "
        "the app served nothing before its first release, which stays"
    )


def test_a_new_app_stopped_before_its_first_release_is_left_as_it_was(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url, size=None), concurrency=None) as fake:
        fake.manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        done = harness.deploy(heroku)
    done.failed(common.UNCHANGED, "nothing was changed: nothing (the app's first release) still")
    assert not [r for r in requests(fake, "PATCH") if r["path"].endswith("/formation")]


def test_a_registry_that_takes_the_key_directly_needs_no_token(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        fake.token_auth = False
        done = harness.deploy(heroku)
        new = fake.current()
    assert done.code == common.DEPLOYED
    assert new["image"] == DIGEST
    assert not [r for r in fake.requests if r["path"].startswith("/token")]


def test_docker_logs_in_as_heroku_says_tags_and_pushes_the_apps_web_image(
    harness, setup, live_url, tmp_path
):
    with setup(FakeHeroku("demo", KEY, live_url)) as fake:
        done = harness.deploy(heroku)
        registry = fake.url.removeprefix("http://")
    assert done.code == common.DEPLOYED
    calls = [c["argv"] for c in docker_calls(tmp_path) if c["argv"][0] in ("login", "tag", "push")]
    assert calls == [
        ["login", registry, "--username", "_", "--password-stdin"],  # Heroku's user name: _
        ["tag", IMAGE, f"{registry}/demo/web"],
        ["push", f"{registry}/demo/web"],
    ]


def test_a_dry_run_shows_each_api_calls_headers(harness, setup, live_url):
    with setup(FakeHeroku("demo", KEY, live_url)):
        done = harness.deploy(heroku, "--dry-run")
    assert (
        f"/formation (Accept: {DOCKER_RELEASES}, Authorization: Bearer ***, "
        'Content-Type: application/json) {"updates": [{"type": "web", '
    ) in done.out


def test_a_release_that_stays_pending_times_out_and_its_wait_is_named(
    harness, setup, live_url, monkeypatch
):
    monkeypatch.setattr(common, "WAIT_LIMIT", 2)  # the restore's wait, instead of minutes
    with setup(FakeHeroku("demo", KEY, live_url, pending_looks=10**6)):
        harness.set(DEPLOY_TIMEOUT="1")
        done = harness.deploy(heroku)
    done.failed(
        common.NOT_RESTORED,
        "timed out after 1 s waiting for the release's web dynos to serve;",
        "timed out after 2 s waiting for release v7 to serve again",
    )
