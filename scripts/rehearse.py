"""`make rehearse`: every deploy script, end to end, against the stand-ins, with the real image.

    make rehearse                      (builds $(IMAGE), then runs this)
    .venv/bin/python scripts/rehearse.py IMAGE

Runs the image the way the platforms do (docker, PORT set; on 127.0.0.1 only), then each
of deploy/lightsail, deploy/appengine and deploy/heroku as the pipeline runs them (not dry runs):
the real AWS CLI and gcloud against the fakes in tests/standins, real pushes of the image to a
local registry (Debian's docker-registry, behind Heroku's refusal of OCI manifests), and each
smoke test against the running container (with METRICS_TOKEN, which each deploy sets on its
platform: /metrics must answer with it, and no line may print it). Then one planted failure per
target shows the way back: a smoke test that fails on Lightsail and Heroku, the job cancelled (SIGTERM) during App
Engine's traffic migration. Prints a table: target, what happened, the steps the script took and
what their time limits add up to (the worst case of that path), seconds, and the result (exit
status). Exits 1 if any outcome is not the expected one.
Needs docker (with a running daemon), docker-registry and gcloud; the container, registry and
fakes are removed at the end.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import bcrypt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy import common  # noqa: E402
from mlservice.probe import http, wait_until  # noqa: E402
from tests.standins.appengine_api import FakeAppEngine  # noqa: E402
from tests.standins.heroku_api import FakeHeroku  # noqa: E402
from tests.standins.heroku_registry import HerokuRegistry  # noqa: E402
from tests.standins.lightsail_api import FakeLightsail  # noqa: E402
from tests.tools import running_registry  # noqa: E402

KEY = "hk-" + uuid.uuid4().hex  # the rehearsal's Heroku API key
# The environments' METRICS_TOKEN secret: each deploy sets it on the platform and its smoke test
# asks /metrics with it; the container runs with it, as the platforms then run the app.
METRICS_TOKEN = secrets.token_urlsafe(32)
RESULTS = {
    code: name
    for name, code in vars(common).items()
    if name in ("DEPLOYED", "UNCHANGED", "CONFIG", "ROLLED_BACK", "NOT_RESTORED")
}


def say(message: str) -> None:
    print(f"rehearse: {message}", flush=True)


def free_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


@contextmanager
def running_container(image: str):
    """The image, listening on a free loopback port of the host (its network: no bridge or
    published port needed, so it works with a daemon started with --iptables=false); its URL."""
    url = free_port_url()
    port = url.rsplit(":", 1)[1].strip("/")
    container = subprocess.run(
        ["docker", "run", "--detach", "--network", "host",
         "--env", "HOST=127.0.0.1", "--env", f"PORT={port}", "--env", "METRICS_TOKEN", image],
        env={**os.environ, "METRICS_TOKEN": METRICS_TOKEN},  # not on the command line
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    try:
        wait_until(lambda: http("GET", url + "readyz", timeout=2).status == 200,
                   timeout=90, interval=0.5, what="the container", retry_on=(OSError,))  # fmt: skip
        yield url
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


class Rehearsal:
    def __init__(self, image: str, tmp: Path) -> None:
        self.image, self.tmp = image, tmp
        self.rows: list[tuple[str, ...]] = []
        self.failures = 0
        bin_dir = tmp / "bin"  # aws-cli v2's push-container-image, and the real docker
        bin_dir.mkdir()
        (bin_dir / "aws").symlink_to(ROOT / "tests" / "standins" / "bin" / "aws")
        tools = tmp / "tools"
        tools.mkdir()
        shutil.copy(ROOT / "tests" / "standins" / "lightsailctl.py", tools / "lightsailctl")
        (tools / "lightsailctl").chmod(0o755)  # installed: nothing is downloaded
        self.base_env = {
            "PATH": os.pathsep.join(
                [str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]
            ),
            "HOME": str(tmp),
            "DOCKER_CONFIG": str(tmp / "docker"),  # the logins stay out of ~/.docker
            "LIGHTSAILCTL_DIR": str(tools),
            "DEPLOY_POLL_SECONDS": "0.2",
            "SMOKE_WAIT": "5",  # the container is up already
            "METRICS_TOKEN": METRICS_TOKEN,
        }

    def deploy(self, target: str, scenario: str, expected: int, env: dict, on_start=None) -> None:
        argv = [str(ROOT / "deploy" / target), "--image", self.image, "--version", "v1.2.3"]
        begin = time.monotonic()
        process = subprocess.Popen(
            argv,
            env={**self.base_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if on_start:
            on_start(process.pid)
        output, _ = process.communicate(timeout=900)
        seconds = time.monotonic() - begin
        counted = [line for line in output.splitlines() if " steps, whose time limits " in line]
        words = counted[-1].split() if counted else ["?"] * 10
        steps, limits = words[1], words[-2]  # "deploy/x: 14 steps, whose ... add up to 2450 s"
        result = RESULTS.get(process.returncode, str(process.returncode)).lower().replace("_", " ")
        ok = process.returncode == expected
        masked = METRICS_TOKEN not in output and KEY not in output
        self.failures += not (ok and masked)
        if not ok:
            print(output)
        result += "" if ok else " (UNEXPECTED)"
        result += "" if masked else " (A SECRET WAS PRINTED)"
        self.rows.append((target, scenario, steps, limits, f"{seconds:.1f}", result))

    def table(self) -> str:
        header = ("target", "scenario", "steps", "their limits (s)", "seconds", "result")
        widths = [max(len(row[n]) for row in [header, *self.rows]) for n in range(len(header))]
        lines = [
            " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            for row in [header, *self.rows]
        ]
        lines.insert(1, "-|-".join("-" * width for width in widths))
        return "\n".join(lines)


def main() -> int:
    image = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("IMAGE", "mlservice:local")
    for tool in ("docker", "docker-registry", "gcloud"):
        if shutil.which(tool) is None:
            say(f"{tool} is not installed (.ci/run installs what the rehearsal needs)")
            return 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rehearse-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        rehearsal = Rehearsal(image, tmp)
        app_url = stack.enter_context(running_container(image))
        say(f"the image {image} serves at {app_url}")
        # One registry for the pushes: Heroku's user `_` (the API key), Lightsail's login `AWS`.
        lightsail = stack.enter_context(FakeLightsail(code_url=app_url))
        users = {"_": KEY, "AWS": lightsail.registry_password}
        (tmp / "registry").mkdir()
        (tmp / "htpasswd").write_text("".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n" for user, password in users.items()
        ))  # fmt: skip
        address = stack.enter_context(
            running_registry("docker-registry", tmp / "registry", htpasswd=tmp / "htpasswd")
        )
        front = stack.enter_context(HerokuRegistry(address)).url.removeprefix("http://")
        lightsail.registry = front

        # Lightsail: a service whose deployment 1 serves; then one whose new code fails.
        lightsail.add_image("v1-1-0")
        previous = json.loads(
            (ROOT / "containers.json")
            .read_text()
            .replace("IMAGE_SET_BY_DEPLOY_LIGHTSAIL", ":mlservice.v1-1-0.1")
        )
        lightsail.add_deployment(previous, json.loads((ROOT / "public-endpoint.json").read_text()))
        aws = {**lightsail.environment(), "LIGHTSAIL_SERVICE": "mlservice"}
        rehearsal.deploy("lightsail", "deploy", common.DEPLOYED, aws)
        lightsail.code_url = free_port_url()
        rehearsal.deploy("lightsail", "smoke test fails", common.ROLLED_BACK, aws)

        # App Engine: the real gcloud uploads this tree; the new version's code is the container.
        appengine = stack.enter_context(FakeAppEngine(code_url=app_url))
        appengine.add_version("v1-1-0-1-1", traffic=1.0)
        gcloud = {
            **appengine.environment(tmp / "gcloud"),
            "GCP_PROJECT_ID": "demo",
            "GITHUB_RUN_NUMBER": "1",
        }
        rehearsal.deploy("appengine", "deploy", common.DEPLOYED, gcloud)
        appengine.plant("apps.services.patch.operation", "sigterm")

        def signal_to(pid: int) -> None:
            appengine.signal_pid = pid

        gcloud["GITHUB_RUN_NUMBER"] = "2"
        rehearsal.deploy(
            "appengine", "cancelled in the migration", common.ROLLED_BACK, gcloud, signal_to
        )

        # Heroku: push through the registry, release the config digest, wait for the dynos.
        heroku = stack.enter_context(FakeHeroku("demo", KEY, app_url))
        platform = {
            "HEROKU_APP": "demo",
            "HEROKU_API_KEY": KEY,
            "HEROKU_API_URL": heroku.url,
            "HEROKU_REGISTRY": front,
            "HEROKU_REGISTRY_INSECURE": "1",
        }
        rehearsal.deploy("heroku", "deploy", common.DEPLOYED, platform)
        heroku.web_url = free_port_url()
        rehearsal.deploy("heroku", "smoke test fails", common.ROLLED_BACK, platform)

    print()
    print(rehearsal.table())
    say(f"{time.monotonic() - started:.0f} s in all")
    return 1 if rehearsal.failures else 0


if __name__ == "__main__":
    sys.exit(main())
