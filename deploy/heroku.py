#!/usr/bin/env python3
"""Release the tested image on Heroku through its container registry (docs/deploy/heroku.md).

    deploy/heroku --image IMAGE --version vX.Y.Z [--dry-run]

Settings: HEROKU_APP and HEROKU_API_KEY (required), HEROKU_REGISTRY (default registry.heroku.com),
HEROKU_API_URL (default https://api.heroku.com), HEROKU_REGISTRY_INSECURE=1 (plain http, local
tests only), DEPLOY_TIMEOUT, DEPLOY_POLL_SECONDS, SMOKE_WAIT.

No Heroku CLI: docker pushes the image, the registry's manifest gives the image CONFIG digest,
and the Platform API releases it (formation PATCH). The script waits until the release leaves
`pending` (a `failed` release fails the deploy; Heroku keeps the previous one) and the web dynos
of the new release are `up` (`crashed` fails), smoke-tests the app and, when anything after the
release fails, rolls back to the release that was current before, waits for that release the
same way, and fails.

Before pushing it checks that the app runs web dynos (formation quantity > 0) and sets
WEB_CONCURRENCY for the web dyno size (dynos report the host's CPUs, not their own share).
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

API = "application/vnd.heroku+json; version=3"
DOCKER_RELEASES = "application/vnd.heroku+json; version=3.docker-releases"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
# Memory of each dyno size in MB (Heroku's dyno types); WEB_CONCURRENCY follows from it.
DYNO_MEMORY_MB = {
    "eco": 512,
    "basic": 512,
    "standard-1x": 512,
    "standard-2x": 1024,
    "performance-m": 2560,
    "performance-l": 14336,
    "performance-l-ram": 30720,
    "performance-xl": 63488,
    "performance-2xl": 129024,
}


class ReleaseFailed(common.DeployError):
    """The release itself failed: Heroku keeps the previous release serving."""


def config_digest(d: common.Deployer, registry_url: str, app: str, key: str) -> str:
    """The image CONFIG digest (what the Platform API releases) of <app>/web:latest."""
    url = f"{registry_url}/v2/{app}/web/manifests/latest"
    print(f"+ GET {url} (Accept: {MANIFEST_V2}, Authorization: Basic _:***)")
    if d.dry_run:
        return "sha256:<config digest>"
    headers = {"Accept": MANIFEST_V2, "Authorization": common.basic_auth("_", key)}
    status, answer, raw = common.request("GET", url, headers)
    challenge = answer.get("Www-Authenticate") or answer.get("WWW-Authenticate") or ""
    if status == 401 and challenge.startswith("Bearer "):
        # registry.heroku.com uses token auth: trade the key for a pull token, then retry.
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        token_url = f"{fields['realm']}?service={fields['service']}&scope={fields['scope']}"
        basic = {"Authorization": headers["Authorization"]}
        token_status, _, token_raw = common.request("GET", token_url, basic)
        if token_status != 200:
            raise common.DeployError(f"registry token request answered {token_status}")
        token = json.loads(token_raw)
        headers["Authorization"] = f"Bearer {token.get('token') or token['access_token']}"
        status, answer, raw = common.request("GET", url, headers)
    if status != 200:
        raise common.DeployError(f"GET {url} answered {status}: {raw[:200]!r}")
    manifest = json.loads(raw)
    if manifest.get("mediaType") != MANIFEST_V2:
        raise common.DeployError(
            f"the registry holds a {manifest.get('mediaType')} manifest; Heroku needs a Docker v2 "
            "image manifest (build with provenance: false, sbom: false)"
        )
    return manifest["config"]["digest"]


def deploy(d: common.Deployer, args) -> None:
    app = common.setting("HEROKU_APP")
    key = d.secret(common.setting("HEROKU_API_KEY"))
    registry = common.setting("HEROKU_REGISTRY", "registry.heroku.com")
    api_url = common.setting("HEROKU_API_URL", "https://api.heroku.com").rstrip("/")
    insecure = common.setting("HEROKU_REGISTRY_INSECURE", "0") in ("1", "true")
    registry_url = f"{'http' if insecure else 'https'}://{registry}"

    def api(method: str, path: str, body: object = None, accept: str = API, **extra) -> object:
        headers = {"Accept": accept, "Authorization": f"Bearer {key}", **extra}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return d.http(method, f"{api_url}{path}", headers, body)

    def newest_releases() -> list[dict]:
        return api("GET", f"/apps/{app}/releases", Range="version ..; order=desc, max=10") or []

    web_url = (api("GET", f"/apps/{app}") or {}).get("web_url") or f"https://{app}.herokuapp.com/"
    formation = api("GET", f"/apps/{app}/formation")
    web = next((f for f in formation or [] if f.get("type") == "web"), None)
    if web is not None and web.get("quantity") == 0:
        raise common.ConfigError(
            f"HEROKU_APP={app} runs no web dynos (formation quantity 0): "
            "scale it up first (heroku ps:scale web=1)"
        )
    if web is not None:
        set_concurrency(d, api, app, web.get("size", ""))
    # Read after the config change (itself a release): the rollback keeps WEB_CONCURRENCY.
    previous = next((r for r in newest_releases() if r.get("current")), None)

    d.ensure_local_image(args.image)
    target = f"{registry}/{app}/web"
    login = ["docker", "login", registry, "--username", "_", "--password-stdin"]
    d.run(login, stdin=key)
    d.run(["docker", "tag", args.image, target])
    d.run(["docker", "push", target], echo=True, timeout=common.UPLOAD_TIMEOUT)
    digest = config_digest(d, registry_url, app, key)

    updates = {"updates": [{"type": "web", "docker_image": digest}]}
    api("PATCH", f"/apps/{app}/formation", updates, accept=DOCKER_RELEASES)
    try:
        release = wait_for_release(d, api, app, None, previous["version"] if previous else 0)
        if not d.smoke(web_url):
            raise common.DeployError(f"smoke test failed on {web_url} (release v{release})")
    except ReleaseFailed as error:
        still = f"release v{previous['version']} still serves" if previous else "nothing serves"
        raise common.DeployError(f"{error}; {still}") from None
    except common.DeployError as error:
        if previous is None:
            raise common.DeployError(f"{error}; no earlier release to roll back to") from None
        d.say(f"{error}: rolling back to release v{previous['version']}")
        try:
            rollback = api("POST", f"/apps/{app}/releases", {"release": previous["id"]})
            wait_for_release(d, api, app, rollback and rollback["id"], 0)
        except common.DeployError as failed:
            raise common.DeployError(f"{error}; the rollback failed too: {failed}") from None
        raise common.DeployError(
            f"{error}; rolled back to release v{previous['version']}"
        ) from None
    d.finish(web_url, args.version)


def set_concurrency(d: common.Deployer, api, app: str, size: str) -> None:
    """Set WEB_CONCURRENCY for the web dyno size, unless it is set so (a change is a release)."""
    memory = DYNO_MEMORY_MB.get(size.lower())
    if memory is None:
        print(f"::warning::deploy/heroku: unknown dyno size {size!r}: WEB_CONCURRENCY unchanged")
        return
    workers = str(common.workers_for(memory))
    config = api("GET", f"/apps/{app}/config-vars") or {}
    if d.dry_run or config.get("WEB_CONCURRENCY") != workers:
        d.say(f"{size} dynos ({memory} MB): WEB_CONCURRENCY={workers}")
        api("PATCH", f"/apps/{app}/config-vars", {"WEB_CONCURRENCY": workers})


def wait_for_release(
    d: common.Deployer, api, app: str, release_id: str | None, newer_than: int
) -> int | None:
    """Wait until the release (or, without an id, the first one newer than `newer_than`) is no
    longer pending and its web dynos are up; ReleaseFailed if it failed, DeployError on a crash.
    """
    if d.dry_run:
        d.say("then poll GET /releases/<id> until it is no longer pending, and GET /dynos until")
        d.say("the release's web dynos are up; on failure POST /releases with the previous id")
        return None
    found = {"id": release_id}

    def check() -> int | None:
        if found["id"] is None:
            newest = api("GET", f"/apps/{app}/releases", Range="version ..; order=desc, max=1")
            if not newest or newest[0]["version"] <= newer_than:
                return None
            found["id"] = newest[0]["id"]
        release = api("GET", f"/apps/{app}/releases/{found['id']}")
        version = release["version"]
        if release["status"] == "pending":
            d.say(f"release v{version} is pending")
            return None
        if release["status"] != "succeeded":
            raise ReleaseFailed(f"release v{version} {release['status']}")
        web = [x for x in api("GET", f"/apps/{app}/dynos") if x.get("type") == "web"]
        mine = [x for x in web if x["release"]["version"] == version]
        if any(x["state"] == "crashed" for x in mine):
            raise common.DeployError(f"a web dyno of release v{version} crashed")
        if web and len(mine) == len(web) and all(x["state"] == "up" for x in mine):
            return version
        d.say(f"release v{version}: web dynos {[x['state'] for x in mine]}")
        return None

    return d.poll(check, "the release's web dynos to be up")


if __name__ == "__main__":
    sys.exit(common.main("heroku", deploy))
