"""Deploy the tested image to an AWS Lightsail container service (docs/deploy/lightsail.md).

    deploy/lightsail --image IMAGE --version vX.Y.Z [--dry-run]

Settings: LIGHTSAIL_SERVICE (required), AWS_REGION (default us-east-1), LIGHTSAIL_KEEP_IMAGES
(default 10), DEPLOY_TIMEOUT, DEPLOY_POLL_SECONDS, SMOKE_WAIT, LIGHTSAILCTL_DIR, METRICS_TOKEN
(set in the containers' environment when given). AWS credentials
come from the environment (configure-aws-credentials with OIDC in the pipeline). Needs the AWS CLI
v2 (v1 has no push-container-image); deploy/install_lightsailctl.py installs lightsailctl.

Push the image, deploy it, wait until the NEW deployment is the ACTIVE current one (a FAILED one
leaves the old deployment serving and the service RUNNING, so RUNNING proves nothing), and
smoke-test the service URL. From the new deployment on, any failure restores the deployment that
served before: once no deployment is in flight (Lightsail runs one at a time, and one still
ACTIVATING when the wait ends may activate later), its containers are deployed again unless they
still serve, and waited for. After a good deployment, delete the oldest stored images beyond
LIGHTSAIL_KEEP_IMAGES (never one that the new or the previous deployment runs).
"""

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from deploy import common, install_lightsailctl

try:  # optional: validates the payload against the Lightsail API model before sending it
    import botocore.session
    import botocore.validate
except ImportError:
    botocore = None

LIGHTSAILCTL = install_lightsailctl.VERSION  # the plugin `aws lightsail push-container-image` runs
INSTALLER = install_lightsailctl.__file__
PLACEHOLDER = "IMAGE_SET_BY_DEPLOY_LIGHTSAIL"  # the image field of containers.json
REFERENCE = re.compile(r'Refer to this image as "(:[a-z0-9-]+\.[a-z0-9-]+\.\d+)"')
# Memory of each container service power in MB; WEB_CONCURRENCY follows from it.
POWER_MEMORY_MB = {
    "nano": 512,
    "micro": 1024,
    "small": 2048,
    "medium": 4096,
    "large": 8192,
    "xlarge": 16384,
}
DELETIONS_PER_DEPLOY = 5  # old images deleted per deployment, so pruning stays short


def render_containers(reference: str, power: str | None, metrics_token: str | None = None) -> dict:
    """containers.json with the pushed image and the app's environment for the service's power.

    The one place the app's settings on Lightsail are set: WEB_CONCURRENCY and, when the deploy
    job has it, METRICS_TOKEN here (containers.json holds the fixed ones, PORT among them)."""
    template = (common.ROOT / "containers.json").read_text()
    if template.count(PLACEHOLDER) != 1:
        raise common.ConfigError(f"containers.json must hold {PLACEHOLDER} once, as the image")
    containers = json.loads(template.replace(PLACEHOLDER, reference))
    memory = POWER_MEMORY_MB.get(power or "nano", POWER_MEMORY_MB["nano"])
    for container in containers.values():
        environment = container.setdefault("environment", {})
        environment["WEB_CONCURRENCY"] = str(common.workers_for(memory))
        if metrics_token:
            environment["METRICS_TOKEN"] = metrics_token
    return containers


def validate(containers: dict, endpoint: dict, service: str) -> None:
    """Check the payload against botocore's Lightsail model when botocore is installed."""
    if botocore is None:
        return
    model = botocore.session.get_session().get_service_model("lightsail")
    shape = model.operation_model("CreateContainerServiceDeployment").input_shape
    params = {"serviceName": service, "containers": containers, "publicEndpoint": endpoint}
    report = botocore.validate.ParamValidator().validate(params, shape)
    if report.has_errors():
        raise common.ConfigError(
            f"containers.json/public-endpoint.json: {report.generate_report()}"
        )


class Lightsail:
    """The aws lightsail commands of one deployment to one container service."""

    def __init__(self, d: common.Deployer, service: str, region: str) -> None:
        self.d, self.service, self.region = d, service, region
        self.aws = ["aws", "lightsail", "--region", region, "--output", "json"]

    def call(self, operation: str, *options: str) -> dict:
        found = self.d.run_json([*self.aws, operation, "--service-name", self.service, *options])
        return found or {}

    def get(self) -> dict:
        found = self.call("get-container-services")
        return found["containerServices"][0] if found else {}

    def state_of(self, version: int) -> str:
        listed = self.call("get-container-service-deployments")["deployments"]
        return next((x["state"] for x in listed if x["version"] == version), "not listed")

    def create(self, containers: dict, endpoint: dict) -> int | None:
        """Start a deployment; its version (None in a dry run)."""
        with tempfile.TemporaryDirectory() as tmp:
            files = {"containers": containers, "public-endpoint": endpoint}
            options = []
            for name, payload in files.items():
                Path(tmp, f"{name}.json").write_text(json.dumps(payload, indent=2))
                options += [f"--{name}", f"file://{tmp}/{name}.json"]
                if self.d.dry_run:
                    print(self.d.mask(f"  {name}.json: {json.dumps(payload)}"))
            created = self.call("create-container-service-deployment", *options)
        return created["containerService"]["nextDeployment"]["version"] if created else None

    def settled(self, version: int, found: dict) -> bool:
        """True once `version` is the ACTIVE current deployment; DeployError if it FAILED."""
        current = found.get("currentDeployment") or {}
        if current.get("version") == version and current.get("state") == "ACTIVE":
            return True
        flight = found.get("nextDeployment") or {}
        state = flight.get("state") if flight.get("version") == version else self.state_of(version)
        if state == "FAILED":
            raise common.DeployError(
                f"deployment {version} FAILED; deployment {current.get('version')} still serves"
            )
        self.d.say(f"deployment {version} is {state}")
        return False

    def wait_active(self, version: int | None) -> str:
        """The service URL once `version` is the ACTIVE current deployment."""
        if self.d.dry_run:
            self.d.say("then poll get-container-services until the new version is ACTIVE")
            return f"https://{self.service}.<id>.{self.region}.cs.amazonlightsail.com/"

        def check() -> str | None:
            found = self.get()
            return found["url"] if self.settled(version, found) else None

        return self.d.poll(check, f"deployment {version} to become ACTIVE")

    def restore(self, previous: dict) -> bool:
        """`previous`'s containers as the ACTIVE current deployment again; True if they had to
        be deployed again. A deployment in flight is waited for first: it may still activate."""
        redeployed: list[int | None] = []

        def check() -> str | None:
            found = self.get()
            flight = found.get("nextDeployment")
            if flight and not redeployed:
                self.d.say(f"deployment {flight['version']} is {flight['state']}: waiting for it")
                return None
            if not redeployed:
                current = found.get("currentDeployment") or {}
                if current.get("version") == previous["version"]:
                    return "unchanged"
                redeployed.append(self.create(previous["containers"], previous["publicEndpoint"]))
                return None
            return "redeployed" if self.settled(redeployed[0], found) else None

        what = f"deployment {previous['version']}'s containers to serve again"
        return self.d.poll(check, what, longest=True) == "redeployed"

    def by_hand(self, previous: dict) -> str:
        """The command that deploys `previous`'s containers again."""
        containers, endpoint = (
            json.dumps(previous[key], separators=(",", ":"))
            for key in ("containers", "publicEndpoint")
        )
        create = ["create-container-service-deployment", "--service-name", self.service]
        return shlex.join(
            [*self.aws, *create, "--containers", containers, "--public-endpoint", endpoint]
        )

    def show_log(self, container: str) -> None:
        """The last lines of the container's log (a failure's cause); never fails itself."""
        try:
            events = self.call("get-container-log", "--container-name", container)["logEvents"]
        except (common.DeployError, KeyError, TypeError):
            events = []
        print(f"--- last {len(events[-50:])} lines of the {container} container log ---")
        for event in events[-50:]:
            print(f"{event.get('createdAt', '')} {event.get('message', '')}")

    def prune(self, keep: int, keep_images: set[str]) -> None:
        """Delete the oldest images beyond `keep`, never one in `keep_images`; failures warn."""
        try:
            images = self.call("get-container-images").get("containerImages", [])
            newest_first = sorted(images, key=lambda i: i.get("createdAt", ""), reverse=True)
            stale = [i["image"] for i in newest_first[keep:] if i["image"] not in keep_images]
            delete = ["delete-container-image", "--service-name", self.service]
            for image in stale[::-1][:DELETIONS_PER_DEPLOY]:  # the oldest first
                self.d.run([*self.aws, *delete, "--image", image])  # it prints nothing
        except Exception as error:
            print(f"::warning::deploy/lightsail: deleting old images failed: {error}")


def ensure_lightsailctl(d: common.Deployer) -> None:
    """Put lightsailctl LIGHTSAILCTL on PATH, installing its checked release when missing."""
    tools = Path(common.setting("LIGHTSAILCTL_DIR", str(common.ROOT / ".tools" / "bin")))
    os.environ["PATH"] = f"{tools}{os.pathsep}{os.environ['PATH']}"
    found = shutil.which("lightsailctl")
    if found and not d.dry_run:
        version = d.run([found, "--version"], check=False, timeout=10)
        if version.stdout.strip() == LIGHTSAILCTL:
            return
    install = [sys.executable, INSTALLER, "--dir", str(tools)]
    d.run(install, echo=True, timeout=2 * common.HTTP_TIMEOUT)  # checksums file, archive


def deploy(d: common.Deployer, args) -> None:
    service = common.setting("LIGHTSAIL_SERVICE")
    region = common.setting("AWS_REGION", "us-east-1")
    label = common.lightsail_label(args.version)
    keep = int(common.number_setting("LIGHTSAIL_KEEP_IMAGES", 10, 1, 100))
    token = common.metrics_token(d)
    endpoint = json.loads((common.ROOT / "public-endpoint.json").read_text())
    container = endpoint["containerName"]
    validate(render_containers(f":{service}.{label}.1", "nano", token), endpoint, service)
    ls = Lightsail(d, service, region)

    found = ls.get()
    if found.get("nextDeployment"):
        raise common.DeployError(
            f"deployment {found['nextDeployment']['version']} is in flight: "
            "try again once the service is RUNNING"
        )
    previous = found.get("currentDeployment") or {}
    ensure_lightsailctl(d)
    d.ensure_local_image(args.image)
    push = ["push-container-image", "--service-name", service, "--label", label]
    pushed = d.run(
        [*ls.aws, *push, "--image", args.image], echo=True, timeout=common.UPLOAD_TIMEOUT
    )
    if pushed is None:
        reference = f":{service}.{label}.<N>"
    elif match := REFERENCE.search(pushed.stdout):
        reference = match.group(1)
    else:
        raise common.DeployError("push-container-image printed no 'Refer to this image as' line")

    containers = render_containers(reference, found.get("power"), token)
    workers = containers[container]["environment"]["WEB_CONCURRENCY"]
    d.say(f"power {found.get('power') or '<the service power>'}: WEB_CONCURRENCY={workers}")
    if previous:
        d.changing(
            f"deployment {previous['version']}", lambda: ls.restore(previous), ls.by_hand(previous)
        )
    else:
        disable = shlex.join(
            [*ls.aws, "update-container-service", "--service-name", service, "--is-disabled"]
        )
        d.changing("nothing (the first deployment)", lambda: nothing_served(ls), disable)
    try:
        url = ls.wait_active(ls.create(containers, endpoint))
    except common.DeployError:
        ls.show_log(container)
        raise
    if not d.smoke(url):
        raise common.DeployError(f"smoke test failed on {url}")
    d.finish(url, args.version)
    running = {c.get("image") for c in (previous.get("containers") or {}).values()}
    ls.prune(keep, {reference, *running})


def nothing_served(ls: Lightsail) -> bool:
    """Before the first deployment nothing served: False while that holds; a deployment that
    serves (or may still) cannot be taken back, only disabled by hand."""
    found = ls.get()
    if found.get("currentDeployment") or found.get("nextDeployment"):
        raise common.DeployError("no deployment served before this one, and this one serves")
    return False


def main(argv=None) -> int:
    return common.main("lightsail", deploy, argv)
