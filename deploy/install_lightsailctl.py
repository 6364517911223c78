"""Install lightsailctl, the plugin `aws lightsail push-container-image` runs, from its release.

    python3 deploy/install_lightsailctl.py [--dir DIR]

deploy/lightsail runs it when lightsailctl is missing (a helper, not a deploy target).

Downloads lightsailctl_<version>_<os>_<arch>.tar.gz and lightsailctl_<version>_checksums.txt from
the GitHub release (the names its .goreleaser.yaml gives them), checks the archive's SHA-256
against the checksums file and only then puts the lightsailctl binary into DIR (default
$LIGHTSAILCTL_DIR or .tools/bin). A mismatch installs nothing and exits 1. No Go toolchain needed.

Settings: LIGHTSAILCTL_DIR, LIGHTSAILCTL_BASE_URL (default the GitHub releases download URL; a
local server in tests).
"""

import argparse
import hashlib
import io
import os
import platform
import sys
import tarfile
from pathlib import Path

# Run as a file (deploy/lightsail runs it so): the repository holds the `deploy` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from deploy import common

VERSION = "v1.0.8"
BASE_URL = "https://github.com/aws/lightsailctl/releases/download"
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def download(url: str) -> bytes:
    status, _, body = common.request("GET", url, {"User-Agent": "deploy/install_lightsailctl.py"})
    if status != 200:
        raise common.DeployError(f"GET {url} answered {status}")
    return body


def expected_sha256(checksums: str, name: str) -> str:
    """The digest the release's checksums file lists for `name` (`<sha256>  <name>` lines)."""
    for line in checksums.splitlines():
        digest, _, listed = line.strip().partition("  ")
        if listed == name:
            return digest.lower()
    raise common.DeployError(f"the release's checksums file does not list {name}")


def install(directory: Path) -> Path:
    arch = ARCHES.get(platform.machine().lower())
    if arch is None or sys.platform not in ("linux", "darwin"):
        raise common.ConfigError(f"no lightsailctl release for {sys.platform}/{platform.machine()}")
    number = VERSION.removeprefix("v")
    name = f"lightsailctl_{number}_{sys.platform}_{arch}.tar.gz"
    base = f"{common.setting('LIGHTSAILCTL_BASE_URL', BASE_URL).rstrip('/')}/{VERSION}"
    checksums = download(f"{base}/lightsailctl_{number}_checksums.txt").decode()
    archive = download(f"{base}/{name}")
    actual = hashlib.sha256(archive).hexdigest()
    if actual != expected_sha256(checksums, name):
        raise common.DeployError(f"{name} has SHA-256 {actual}, not the release's: not installed")
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile("lightsailctl")
        if member is None:
            raise common.DeployError(f"{name} holds no lightsailctl binary")
        binary = member.read()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "lightsailctl"
    partial = directory / ".lightsailctl.partial"
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, target)  # never a half-written binary on PATH
    return target


def main() -> int:
    parser = argparse.ArgumentParser(prog="deploy/install_lightsailctl.py", description=__doc__)
    default = os.environ.get("LIGHTSAILCTL_DIR") or str(common.ROOT / ".tools" / "bin")
    parser.add_argument("--dir", default=default, help="where to put lightsailctl")
    args = parser.parse_args()
    try:
        target = install(Path(args.dir))
    except common.ConfigError as error:
        print(f"deploy/install_lightsailctl.py: error: {error}", file=sys.stderr)
        return 2
    except (common.DeployError, tarfile.TarError, KeyError) as error:
        print(f"deploy/install_lightsailctl.py: FAILED: {error}", file=sys.stderr)
        return 1
    print(f"deploy/install_lightsailctl.py: installed lightsailctl {VERSION} as {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
