"""Docker daemons of each image store, for the tests that push images (docs/testing.md).

Docker's two image stores disagree on what an image id is and on what `docker push` sends:
  classic (overlay2; Docker 28's default)        id = config digest; a push writes a Docker v2
                                                 manifest whatever the image came with
  containerd (Docker 29's default; on 25-28 the  id = manifest digest; a push sends the stored
  "containerd-snapshotter" feature)              manifest as it is (OCI types stay OCI)
A test asks for a store and gets the machine's daemon when that is its store, else a second dockerd
started here: its own --data-root, --exec-root, --pidfile, unix socket and containerd namespace
under a temporary directory, its own bridge and no iptables rules, so the machine's daemon (which
the other tests and builds use) is never touched. It is stopped by its pid afterwards.
.ci/install-docker-stores provides the dockerd (25+) and buildx (0.15+) where the machine's
are older. Without them, or without root (or `sudo -n`), the tests skip; under CI=true they fail.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlservice.probe import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools" / "docker"  # .ci/install-docker-stores
STORES = ("classic", "containerd")
CONTAINERD_DRIVER = "io.containerd.snapshotter.v1"  # `docker info`'s driver-type of that store
HOW = ".ci/install-docker-stores; .ci/ensure-docker"


def unavailable(message: str) -> None:
    """Skip on a laptop; under CI=true (whose .ci/run installs all of it) fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def docker(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run the docker CLI with `env`; its stdout, stripped."""
    done = subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def store_of(env: dict[str, str]) -> str | None:
    """The image store of the daemon `env` points at, or None if none answers."""
    done = subprocess.run(
        ["docker", "info", "--format", "{{json .DriverStatus}}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode:
        return None
    status = dict(json.loads(done.stdout or "null") or [])
    return "containerd" if status.get("driver-type") == CONTAINERD_DRIVER else "classic"


def with_buildx(env: dict[str, str], directory: Path) -> dict[str, str]:
    """`env` with a DOCKER_CONFIG in `directory` that has a buildx plugin (0.15+), or
    unavailable()."""
    plugin = TOOLS / "usr" / "libexec" / "docker" / "cli-plugins" / "docker-buildx"
    plugins = directory / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if plugin.exists() and not (plugins / "docker-buildx").exists():
        (plugins / "docker-buildx").symlink_to(plugin)
    env = {**env, "DOCKER_CONFIG": str(directory)}
    words = subprocess.run(
        ["docker", "buildx", "version"], env=env, capture_output=True, text=True, check=False
    ).stdout.split()  # "github.com/docker/buildx v0.29.1 <commit>"
    version = tuple(int(part) for part in re.findall(r"\d+", words[1])[:2]) if words[1:] else ()
    if version < (0, 15):
        unavailable(f"docker buildx 0.15 or newer is not installed ({HOW})")
    return env


def dockerd() -> tuple[str, str]:
    """(dockerd, PATH for its containerd): the one of install-docker-stores, else the machine's
    when it can run the containerd store (25+)."""
    if (TOOLS / "usr" / "sbin" / "dockerd").exists():
        path = f"{TOOLS / 'usr' / 'bin'}:{TOOLS / 'usr' / 'sbin'}:{os.environ['PATH']}"
        return str(TOOLS / "usr" / "sbin" / "dockerd"), path
    found = shutil.which("dockerd")
    if found:
        version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
        if int(version.split()[2].split(".")[0]) >= 25:
            return found, os.environ["PATH"]
    unavailable(f"no dockerd 25 or newer for the containerd image store ({HOW})")
    raise AssertionError("unreachable")


def as_root() -> list[str]:
    """The prefix that runs a command as root: none for root, `sudo -n` where allowed."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], check=False).returncode == 0:
        return ["sudo", "-n"]
    unavailable("starting a second dockerd needs root or passwordless sudo")
    raise AssertionError("unreachable")


@contextmanager
def docker_with_store(store: str) -> Iterator[dict[str, str]]:
    """The environment (DOCKER_HOST) of a daemon whose image store is `store`."""
    if store_of(dict(os.environ)) is None:
        unavailable("no docker daemon answers (.ci/ensure-docker starts one)")
    if store_of(dict(os.environ)) == store:
        yield dict(os.environ)
        return
    binary, path = dockerd()
    root = as_root()
    if shutil.which("ip") is None:
        unavailable("the second dockerd's bridge needs `ip` (apt-get install iproute2)")
    # Short: a unix socket path has at most 107 characters, an interface name 15.
    home = Path(tempfile.mkdtemp(prefix="mlsd-", dir="/tmp"))
    # A bridge of its own: `--bridge=none` would make it delete the host's docker0, which the
    # machine's daemon needs to run containers (moby daemon/daemon_unix.go, configureNetworking
    # calls removeDefaultBridgeInterface when the bridge is disabled).
    bridge = home.name
    subprocess.run([*root, "ip", "link", "add", bridge, "type", "bridge"], check=True)
    # containerd refuses a namespace with two separators in a row ("mlsd-_x": its identifiers
    # match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$), and mkdtemp's names may have an "_".
    namespace = "mlservice-test-" + re.sub(r"[^A-Za-z0-9]", "", home.name)
    (home / "daemon.json").write_text(
        json.dumps({"features": {"containerd-snapshotter": store == "containerd"}})
    )
    socket = home / "docker.sock"
    command = [
        *root,
        "env",
        f"PATH={path}",
        binary,
        f"--config-file={home / 'daemon.json'}",
        f"--data-root={home / 'data'}",
        f"--exec-root={home / 'exec'}",
        f"--pidfile={home / 'dockerd.pid'}",
        f"--host=unix://{socket}",
        f"--group={os.getgid()}",  # the socket is ours to use when sudo started it
        f"--containerd-namespace={namespace}",
        f"--containerd-plugins-namespace={namespace}-plugins",
        f"--bridge={bridge}",
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
    ]
    log = home / "dockerd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket}"}

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the second dockerd exited: {log.read_text()[-2000:]}")
        return store_of(env) == store

    try:
        try:
            wait_until(up, timeout=60, interval=0.5, what="the second dockerd")
        except WaitTimeout as error:
            pytest.fail(f"{error}: {log.read_text()[-2000:]}")
        yield env
    finally:
        stop(process, home, root)
        subprocess.run([*root, "ip", "link", "delete", bridge], check=False)


def stop(process: subprocess.Popen, home: Path, root: list[str]) -> None:
    """Stop the daemon by its pid (from its pidfile) and remove its directory."""
    pidfile = home / "dockerd.pid"
    if pidfile.exists():
        pid = pidfile.read_text().strip()
        subprocess.run([*root, "kill", "-TERM", pid], check=False)
    elif process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        subprocess.run([*root, "kill", "-KILL", pidfile.read_text().strip()], check=False)
        process.wait(timeout=30)
    subprocess.run([*root, "rm", "-rf", str(home)], check=False)
