"""Release the tested image on Heroku through its container registry (docs/deploy/heroku.md).

    deploy/heroku --image IMAGE --version vX.Y.Z [--dry-run]

Settings: HEROKU_APP and HEROKU_API_KEY (required), HEROKU_REGISTRY (default registry.heroku.com),
HEROKU_API_URL (default https://api.heroku.com), HEROKU_REGISTRY_INSECURE=1 (plain http, local
tests only), DEPLOY_TIMEOUT, DEPLOY_POLL_SECONDS, SMOKE_WAIT, METRICS_TOKEN (set as a config var
when given; without it the app's config var is left as it is).

No Heroku CLI: docker pushes the image, the registry's manifest gives the image CONFIG digest,
and the Platform API releases it (formation PATCH). The script waits until the release leaves
`pending` (a `failed` release, e.g. its release phase failed, is not current: Heroku keeps the
one before) and the web dynos of the new release are `up` (or `idle`: a sleeping Eco dyno;
`crashed` fails), then smoke-tests the app.

It sets WEB_CONCURRENCY for the web dyno size (and METRICS_TOKEN) first (dynos report the host's CPUs, not their own
share); that is a release too, so from then on any failure rolls back to the release that was
current when the script started, and waits for it.
"""

import json
import re

from deploy import common

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
# A new app's first web dyno is Eco or Basic (both 512 MB) until it is resized.
NEW_APP_SIZE = "basic"
# Releases read to find the current one: failed releases after it (a release phase that
# failed) are listed before it.
CURRENT_AMONG = 10
SERVING = ("up", "idle")  # an Eco dyno with no traffic sleeps: `idle`, not a failure


class Heroku:
    """The Platform API and registry calls of one deployment to one app."""

    def __init__(self, d: common.Deployer, app: str, key: str, api_url: str) -> None:
        self.d, self.app, self.key, self.api_url = d, app, key, api_url

    def api(
        self, method: str, path: str, body: object = None, accept: str = API, **extra
    ) -> object:
        headers = {"Accept": accept, "Authorization": f"Bearer {self.key}", **extra}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.d.http(method, f"{self.api_url}/apps/{self.app}{path}", headers, body)

    def newest_releases(self, count: int) -> list[dict]:
        return self.api("GET", "/releases", Range=f"version ..; order=desc, max={count}") or []

    def current_release(self) -> dict | None:
        return next((r for r in self.newest_releases(CURRENT_AMONG) if r.get("current")), None)

    def configure(self, size: str, metrics_token: str | None) -> None:
        """WEB_CONCURRENCY for the web dyno size and, when the deploy job has it, METRICS_TOKEN;
        only those that differ are set (a change is a release).

        The one place the app's settings on Heroku are set."""
        wanted = {}
        memory = DYNO_MEMORY_MB.get(size.lower())
        if memory is None:
            print(
                f"::warning::deploy/heroku: unknown dyno size {size!r}: WEB_CONCURRENCY unchanged"
            )
        else:
            wanted["WEB_CONCURRENCY"] = str(common.workers_for(memory))
            self.d.say(f"{size} dynos ({memory} MB): WEB_CONCURRENCY={wanted['WEB_CONCURRENCY']}")
        if metrics_token:
            wanted["METRICS_TOKEN"] = metrics_token
        if not wanted:
            return
        config = self.api("GET", "/config-vars") or {}
        changed = {k: v for k, v in wanted.items() if self.d.dry_run or config.get(k) != v}
        if changed:
            self.d.say(f"config vars changed: {', '.join(changed)}")
            self.api("PATCH", "/config-vars", changed)

    def config_digest(self, registry_url: str) -> str:
        """The image CONFIG digest (what the Platform API releases) of <app>/web:latest."""
        url = f"{registry_url}/v2/{self.app}/web/manifests/latest"
        print(f"+ GET {url} (Accept: {MANIFEST_V2}, Authorization: Basic _:***)")
        self.d.charge(f"GET {url}, with the token exchange", 3 * common.HTTP_TIMEOUT)
        if self.d.dry_run:
            return "sha256:<config digest>"
        timeout = self.d.limit(common.HTTP_TIMEOUT)
        headers = {"Accept": MANIFEST_V2, "Authorization": common.basic_auth("_", self.key)}
        status, answer, raw = common.request("GET", url, headers, timeout=timeout)
        challenge = answer.get("Www-Authenticate") or answer.get("WWW-Authenticate") or ""
        if status == 401 and challenge.startswith("Bearer "):
            # registry.heroku.com uses token auth: trade the key for a pull token, then retry.
            fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            token_url = f"{fields['realm']}?service={fields['service']}&scope={fields['scope']}"
            basic = {"Authorization": headers["Authorization"]}
            token_status, _, token_raw = common.request("GET", token_url, basic, timeout=timeout)
            if token_status != 200:
                raise common.DeployError(f"registry token request answered {token_status}")
            token = json.loads(token_raw)
            headers["Authorization"] = f"Bearer {token.get('token') or token['access_token']}"
            status, answer, raw = common.request("GET", url, headers, timeout=timeout)
        if status != 200:
            raise common.DeployError(f"GET {url} answered {status}: {raw[:200]!r}")
        manifest = json.loads(raw)
        if manifest.get("mediaType") != MANIFEST_V2:
            raise common.DeployError(
                f"the registry holds a {manifest.get('mediaType')} manifest; Heroku needs a Docker v2 "
                "image manifest (build with provenance: false, sbom: false)"
            )
        return manifest["config"]["digest"]

    def serves(self, release_id: str) -> int | None:
        """The release's version once it succeeded and its web dynos serve; None while it is
        pending or its dynos start; DeployError if it failed or a web dyno crashed."""
        release = self.api("GET", f"/releases/{release_id}")
        version = release["version"]
        if release["status"] == "pending":
            self.d.say(f"release v{version} is pending (its release phase runs)")
            return None
        if release["status"] != "succeeded":
            raise common.DeployError(f"release v{version} {release['status']}")
        web = [x for x in self.api("GET", "/dynos") if x.get("type") == "web"]
        mine = [x for x in web if x["release"]["version"] == version]
        if any(x["state"] == "crashed" for x in mine):
            raise common.DeployError(f"a web dyno of release v{version} crashed")
        if web and len(mine) == len(web) and all(x["state"] in SERVING for x in mine):
            return version
        self.d.say(f"release v{version}: web dynos {[x['state'] for x in mine]}")
        return None

    def wait_for_release(self, newer_than: int) -> int | None:
        """Wait for the first release newer than `newer_than` to serve (see serves())."""
        if self.d.dry_run:
            self.d.say("then poll GET /releases/<id> until it is no longer pending, and GET /dynos")
            self.d.say("until the release's web dynos are up")
            return None
        found: list[str] = []

        def check() -> int | None:
            if not found:
                newest = self.newest_releases(1)
                if not newest or newest[0]["version"] <= newer_than:
                    return None
                found.append(newest[0]["id"])
            return self.serves(found[0])

        return self.d.poll(check, "the release's web dynos to serve")

    def restore(self, previous: dict) -> bool:
        """Release `previous` again (a rollback) unless it is still current; True if it was
        not. A release still pending is waited for first (its release phase may yet succeed),
        then the rollback like a deployment: one wait for both."""
        rollback: list[str] = []

        def check() -> str | None:
            if rollback:
                return "rolled back" if self.serves(rollback[0]) else None
            (newest,) = self.newest_releases(1)
            if newest["status"] == "pending":
                status = self.api("GET", f"/releases/{newest['id']}")["status"]
                self.d.say(f"release v{newest['version']} is {status}")
                if status == "pending":
                    return None
            current = self.current_release()
            if current is not None and current["id"] == previous["id"]:
                return "unchanged"
            rollback.append(self.api("POST", "/releases", {"release": previous["id"]})["id"])
            return None

        what = f"release v{previous['version']} to serve again"
        return self.d.poll(check, what, longest=True) == "rolled back"


def deploy(d: common.Deployer, args) -> None:
    app = common.setting("HEROKU_APP")
    key = d.secret(common.setting("HEROKU_API_KEY"))
    registry = common.setting("HEROKU_REGISTRY", "registry.heroku.com")
    api_url = common.setting("HEROKU_API_URL", "https://api.heroku.com").rstrip("/")
    insecure = common.setting("HEROKU_REGISTRY_INSECURE", "0") in ("1", "true")
    token = common.metrics_token(d)
    registry_url = f"{'http' if insecure else 'https'}://{registry}"
    heroku = Heroku(d, app, key, api_url)

    web_url = (heroku.api("GET", "") or {}).get("web_url") or f"https://{app}.herokuapp.com/"
    formation = heroku.api("GET", "/formation")
    web = next((f for f in formation or [] if f.get("type") == "web"), None)
    if web is not None and web.get("quantity") == 0:
        raise common.ConfigError(
            f"HEROKU_APP={app} runs no web dynos (formation quantity 0): "
            "scale it up first (heroku ps:scale web=1)"
        )
    previous = heroku.current_release()
    released: list[str] = []  # the image digest, once its release is asked for
    if web is None:  # a new app: nothing served before, and its first web dyno is 512 MB
        scale_down = f"heroku ps:scale web=0 -a {app}"
        d.changing(
            "nothing (the app's first release)", lambda: nothing_served(released), scale_down
        )
    elif previous is None:
        raise common.DeployError(
            f"none of the newest {CURRENT_AMONG} releases of {app} is current, so a failure could "
            f"not be rolled back: release or roll back by hand first (heroku releases -a {app})"
        )
    else:
        rollback = f"heroku rollback v{previous['version']} -a {app}"
        d.changing(f"release v{previous['version']}", lambda: heroku.restore(previous), rollback)
    heroku.configure(web["size"] if web else NEW_APP_SIZE, token)

    d.ensure_local_image(args.image)
    target = f"{registry}/{app}/web"
    d.run(["docker", "login", registry, "--username", "_", "--password-stdin"], stdin=key)
    d.run(["docker", "tag", args.image, target])
    d.run(["docker", "push", target], echo=True, timeout=common.UPLOAD_TIMEOUT)
    digest = heroku.config_digest(registry_url)

    newest = heroku.newest_releases(1)
    released.append(digest)
    updates = {"updates": [{"type": "web", "docker_image": digest}]}
    heroku.api("PATCH", "/formation", updates, accept=DOCKER_RELEASES)
    release = heroku.wait_for_release(newest[0]["version"] if newest else 0)
    if not d.smoke(web_url):
        raise common.DeployError(f"smoke test failed on {web_url} (release v{release})")
    d.finish(web_url, args.version)


def nothing_served(released: list[str]) -> bool:
    """A new app served nothing before: fine while its image was not released."""
    if released:
        raise common.DeployError("the app served nothing before its first release, which stays")
    return False


def main(argv=None) -> int:
    return common.main("heroku", deploy, argv)
