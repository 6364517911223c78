"""push-tested-image: push the image the container test passed, and prove the registry holds it.

    scripts/push-tested-image IMAGE_ID REF [REF...]
    scripts/push-tested-image --move NAME@DIGEST TAG [TAG...]

IMAGE_ID is the tested image's id as Docker reports it (`docker image inspect -f '{{.Id}}'`, the
`imageid` of docker/build-push-action). What that id is depends on the daemon's image store:
  classic store (Docker 28's default)        the image CONFIG digest; `docker push` writes a
                                             Docker v2 manifest for it
  containerd image store (Docker 29's)       the image MANIFEST digest; `docker push` sends that
                                             manifest as it is
Every REF (registry/name:tag) must name that image locally. Each is pushed, then its manifest is
read back from the registry (`docker manifest inspect`). It must be one Docker v2 schema 2 image
manifest, the only kind Heroku's registry takes (and Lightsail's): with the containerd store that
needs a build with oci-mediatypes=false. It must be the tested image: its config digest (classic)
or its own digest (containerd) is IMAGE_ID. And every REF must resolve to the same manifest.
Writes `digest=sha256:...`, `name=<name>` and `image=<name>@<digest>` (the name of the first REF)
to $GITHUB_OUTPUT (stdout when unset).

--move points more tags of NAME at an image the registry already holds, without pulling or
pushing it: `docker buildx imagetools create --prefer-index=false` (buildx 0.15 or newer) copies
its manifest as it is; each NAME:TAG is then read back the same way and must be DIGEST.

Exits 1 with one line naming the REF that does not match, 2 for bad arguments. DOCKER overrides
the docker command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONTAINERD = "io.containerd.snapshotter.v1"  # `docker info`'s driver-type of the containerd store
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
HINT = (
    "Heroku and Lightsail take Docker v2 schema 2 image manifests only (build with"
    " oci-mediatypes=false, provenance: false, sbom: false, one platform)"
)


class Mismatch(Exception):
    """The registry does not hold what was tested (exit 1)."""


@dataclass(frozen=True)
class Pushed:
    """What the registry serves under a REF."""

    digest: str  # of the manifest
    media_type: str
    config: str  # the image config digest


def docker(*args: str) -> str:
    """Run docker (or $DOCKER); its stdout. Mismatch with docker's last line when it fails."""
    command = [*shlex.split(os.environ.get("DOCKER", "docker")), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise Mismatch(f"docker {' '.join(args[:2])} failed: {last}")
    return done.stdout


def say(text: str) -> None:
    print(f"push-tested-image: {text}", file=sys.stderr)


def containerd_store() -> bool:
    """Whether the daemon keeps images in the containerd image store."""
    status = json.loads(docker("info", "--format", "{{json .DriverStatus}}") or "null")
    return dict(status or []).get("driver-type") == CONTAINERD


def local_id(ref: str) -> str:
    try:
        return docker("image", "inspect", "--format", "{{.Id}}", ref).strip()
    except Mismatch:
        raise Mismatch(f"{ref} is not a local image") from None


def pushed(ref: str) -> Pushed:
    """Read REF's manifest back from the registry (127.0.0.1 and localhost speak plain http)."""
    insecure = ["--insecure"] if ref.startswith(("127.0.0.1:", "localhost:")) else []
    try:
        answer = json.loads(docker("manifest", "inspect", "--verbose", *insecure, ref))
    except Mismatch:
        raise Mismatch(f"reading the manifest of {ref} back from the registry failed") from None
    if isinstance(answer, list):  # an index: one entry per manifest it lists
        raise Mismatch(f"{ref} in the registry is an image index, not one image manifest; {HINT}")
    manifest = answer.get("SchemaV2Manifest") or answer.get("OCIManifest") or {}
    descriptor = answer["Descriptor"]
    return Pushed(descriptor["digest"], descriptor["mediaType"], manifest["config"]["digest"])


def check(ref: str, held: Pushed, tested: str, by_manifest: bool) -> None:
    """Mismatch unless the registry holds the tested image under REF as a Docker v2 manifest."""
    if held.media_type != MANIFEST_V2:
        raise Mismatch(f"{ref} was pushed as {held.media_type}; {HINT}")
    if by_manifest and held.digest != tested:
        raise Mismatch(
            f"{ref} in the registry is manifest {held.digest}, not the tested image {tested}"
            " (containerd image store: the image id is the manifest digest)"
        )
    if not by_manifest and held.config != tested:
        raise Mismatch(
            f"{ref} in the registry has config digest {held.config}, not the tested image {tested}"
        )


def name_of(ref: str) -> str:
    """registry[:port]/name of a REF, without its tag."""
    name, colon, tag = ref.rpartition(":")
    return name if colon and "/" not in tag else ref


def push(tested: str, refs: list[str]) -> str:
    """Push every REF of the tested image; the manifest digest they all resolve to."""
    for ref in refs:
        found = local_id(ref)
        if found != tested:
            raise Mismatch(f"{ref} is {found} locally, not the tested {tested}")
    by_manifest = containerd_store()
    digest = ""
    for ref in refs:
        say(f"pushing {ref}")
        docker("push", "--quiet", ref)
        held = pushed(ref)
        check(ref, held, tested, by_manifest)
        if digest and held.digest != digest:
            raise Mismatch(
                f"{ref} resolves to manifest {held.digest}, but the first tag to {digest}"
            )
        digest = held.digest
        say(f"{ref} is the tested image (manifest {digest})")
    return digest


def move(image: str, tags: list[str]) -> str:
    """Point NAME:TAG for each tag at NAME@DIGEST, a copy of its manifest; DIGEST."""
    name, _, digest = image.partition("@")
    refs = [f"{name}:{tag}" for tag in tags]
    flags = [f"--tag={ref}" for ref in refs]
    docker("buildx", "imagetools", "create", "--prefer-index=false", *flags, image)
    for ref in refs:
        held = pushed(ref)
        if held.media_type != MANIFEST_V2 or held.digest != digest:
            raise Mismatch(f"{ref} in the registry is {held.media_type} {held.digest}, not {image}")
        say(f"{ref} is {image}")
    return digest


def arguments(argv: list[str]) -> tuple[str, str, list[str]]:
    """(mode, IMAGE_ID or NAME@DIGEST, the rest); ValueError saying what is wrong."""
    mode = "move" if argv[:1] == ["--move"] else "push"
    args = argv[1:] if mode == "move" else argv
    if len(args) < 2:
        raise ValueError("usage: scripts/push-tested-image IMAGE_ID REF [REF...] (see --help)")
    image, rest = args[0], args[1:]
    if mode == "push" and not DIGEST_RE.fullmatch(image):
        raise ValueError(f"IMAGE_ID {image!r} is not an image id like sha256:<64 hex>")
    if mode == "move" and not re.fullmatch(r"[^@\s]+@" + DIGEST_RE.pattern, image):
        raise ValueError(f"{image!r} is not an image by digest like NAME@sha256:<64 hex>")
    return mode, image, rest


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    try:
        mode, image, rest = arguments(argv)
    except ValueError as error:
        say(str(error))
        return 2
    try:
        if mode == "move":
            move(image, rest)
            return 0
        digest = push(image, rest)
    except Mismatch as error:
        say(str(error))
        return 1
    name = name_of(rest[0])
    output = f"digest={digest}\nname={name}\nimage={name}@{digest}\n"
    if path := os.environ.get("GITHUB_OUTPUT"):
        with open(path, "ab") as out:  # GitHub reads it as UTF-8
            out.write(output.encode())
    else:
        sys.stdout.write(output)
    return 0
