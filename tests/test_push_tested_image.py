"""scripts/push-tested-image's decisions, with a docker that answers as Docker does.

The docker here keeps a registry in a dict and answers `docker info`, `image inspect`, `push`,
`manifest inspect --verbose` and `buildx imagetools create` in the shapes the real CLI prints
(Docker 28's CLI against Docker 20.10 and 26 daemons; tests/test_image_stores.py runs the real
thing against both image stores). In-process, so that mutation testing sees these tests.
"""

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

import pytest

from scripts import push_tested_image as pti

V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
CONFIG, MANIFEST, OTHER = ("sha256:" + c * 64 for c in "abc")
CLASSIC_STATUS = [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]
CONTAINERD_STATUS = [["driver-type", "io.containerd.snapshotter.v1"]]


class FakeDocker:
    """What `docker` answers: local images, the daemon's store, the registry's manifests."""

    def __init__(self, store="classic", local=None, media_type=V2):
        self.status = CLASSIC_STATUS if store == "classic" else CONTAINERD_STATUS
        self.local = local or {}  # ref -> id
        self.registry = {}  # ref -> (manifest digest, media type, config digest) or "index"
        self.media_type = media_type
        self.calls = []
        self.fail = {}  # command word -> stderr of a failure

    def __call__(self, *args):
        self.calls.append(args)
        if args[0] in self.fail:
            raise pti.Mismatch(f"docker {' '.join(args[:2])} failed: {self.fail[args[0]]}")
        if args[0] == "info":
            assert args[1:] == ("--format", "{{json .DriverStatus}}")
            return json.dumps(self.status) + "\n"
        if args[:2] == ("image", "inspect"):
            assert args[2:4] == ("--format", "{{.Id}}")
            if args[4] not in self.local:
                raise pti.Mismatch("docker image inspect failed: No such image")
            return self.local[args[4]] + "\n"
        if args[0] == "push":
            assert args[1] == "--quiet"
            self.registry.setdefault(args[2], (MANIFEST, self.media_type, CONFIG))
            return args[2] + "\n"
        if args[:3] == ("manifest", "inspect", "--verbose"):
            return json.dumps(self.inspect(args[-1]))
        if args[:3] == ("buildx", "imagetools", "create"):
            assert args[3] == "--prefer-index=false"
            for flag in args[4:-1]:
                self.registry[flag.removeprefix("--tag=")] = self.registry[args[-1]]
            return ""
        raise AssertionError(f"unexpected docker {args}")

    def inspect(self, ref):
        held = self.registry[ref]
        if held == "index":  # `docker manifest inspect --verbose` lists an index's manifests
            return [{"Ref": ref, "Descriptor": {"mediaType": OCI, "digest": OTHER, "size": 1}}]
        digest, media_type, config = held
        key = "SchemaV2Manifest" if media_type == V2 else "OCIManifest"
        return {
            "Ref": ref,
            "Descriptor": {"mediaType": media_type, "digest": digest, "size": 498},
            key: {"schemaVersion": 2, "mediaType": media_type, "config": {"digest": config}},
        }


def call(fake, *args, env=None):
    """main(args) with `fake` as docker; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.object(pti, "docker", fake),
        mock.patch.dict(os.environ, env or {}, clear=True),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        code = pti.main(list(args))
    return code, out.getvalue(), err.getvalue()


REFS = ("ghcr.io/owner/repo:1.2.3", "ghcr.io/owner/repo:sha-abc")


@pytest.mark.parametrize(("store", "tested"), [("classic", CONFIG), ("containerd", MANIFEST)])
def test_pushes_every_tag_and_reports_the_manifest_digest(tmp_path, store, tested):
    fake = FakeDocker(store, local=dict.fromkeys(REFS, tested))
    output = tmp_path / "output"
    output.write_text("earlier=kept\n")
    code, stdout, stderr = call(fake, tested, *REFS, env={"GITHUB_OUTPUT": str(output)})
    assert code == 0, stderr
    assert stdout == ""
    assert output.read_text() == (
        "earlier=kept\n"
        f"digest={MANIFEST}\nname=ghcr.io/owner/repo\nimage=ghcr.io/owner/repo@{MANIFEST}\n"
    )
    pushes = [c for c in fake.calls if c[0] == "push"]
    assert pushes == [("push", "--quiet", ref) for ref in REFS]
    # Every tag is checked locally before anything is pushed.
    first_push = fake.calls.index(pushes[0])
    assert [c[4] for c in fake.calls[:first_push] if c[:2] == ("image", "inspect")] == list(REFS)
    assert f"push-tested-image: {REFS[1]} is the tested image (manifest {MANIFEST})" in stderr


def test_it_says_what_it_pushes():
    fake = FakeDocker(local=dict.fromkeys(REFS, CONFIG))
    _, _, stderr = call(fake, CONFIG, *REFS)
    assert stderr.splitlines() == [
        f"push-tested-image: pushing {REFS[0]}",
        f"push-tested-image: {REFS[0]} is the tested image (manifest {MANIFEST})",
        f"push-tested-image: pushing {REFS[1]}",
        f"push-tested-image: {REFS[1]} is the tested image (manifest {MANIFEST})",
    ]


class NoDriverStatus(FakeDocker):
    """A daemon whose `docker info` prints `answer` for its DriverStatus."""

    def __init__(self, answer, **kwargs):
        super().__init__(**kwargs)
        self.answer = answer

    def __call__(self, *args):
        if args[0] == "info":
            self.calls.append(args)
            return self.answer
        return super().__call__(*args)


@pytest.mark.parametrize("answer", ["", "null\n"])
def test_a_daemon_without_driver_status_is_proved_as_the_classic_store(answer):
    assert call(NoDriverStatus(answer, local={REFS[0]: CONFIG}), CONFIG, REFS[0])[0] == 0
    fake = NoDriverStatus(answer, local={REFS[0]: MANIFEST})
    assert failure(fake, MANIFEST, REFS[0]) == (
        f"{REFS[0]} in the registry has config digest {CONFIG}, not the tested image {MANIFEST}"
    )


def test_without_github_output_it_prints_the_outputs():
    fake = FakeDocker(local={REFS[0]: CONFIG})
    code, stdout, _ = call(fake, CONFIG, REFS[0])
    assert code == 0
    assert stdout.splitlines() == [
        f"digest={MANIFEST}",
        "name=ghcr.io/owner/repo",
        f"image=ghcr.io/owner/repo@{MANIFEST}",
    ]


def failure(fake, *args):
    code, stdout, stderr = call(fake, *args)
    assert (code, stdout) == (1, "")
    return stderr.splitlines()[-1].removeprefix("push-tested-image: ")


def test_the_containerd_store_proves_by_manifest_digest_not_config_digest():
    # An id that is the config digest on a containerd store (what buildx's docker driver
    # reported before 0.36) is not the image Docker ran: refused.
    fake = FakeDocker("containerd", local={REFS[0]: CONFIG})
    assert failure(fake, CONFIG, REFS[0]) == (
        f"{REFS[0]} in the registry is manifest {MANIFEST}, not the tested image {CONFIG}"
        " (containerd image store: the image id is the manifest digest)"
    )


def test_the_classic_store_proves_by_config_digest_not_manifest_digest():
    fake = FakeDocker("classic", local={REFS[0]: MANIFEST})
    assert failure(fake, MANIFEST, REFS[0]) == (
        f"{REFS[0]} in the registry has config digest {CONFIG}, not the tested image {MANIFEST}"
    )


@pytest.mark.parametrize("store", ["classic", "containerd"])
def test_fails_when_the_registry_holds_another_image(store):
    tested = CONFIG if store == "classic" else MANIFEST
    fake = FakeDocker(store, local={REFS[0]: tested})
    fake.registry[REFS[0]] = (OTHER, V2, OTHER)  # someone else's push won the race
    assert f"{REFS[0]} in the registry" in failure(fake, tested, REFS[0])
    assert f"not the tested image {tested}" in failure(fake, tested, REFS[0])


@pytest.mark.parametrize("store", ["classic", "containerd"])
def test_an_oci_manifest_is_refused_for_heroku_and_lightsail(store):
    tested = CONFIG if store == "classic" else MANIFEST
    fake = FakeDocker(store, local={REFS[0]: tested}, media_type=OCI)
    assert failure(fake, tested, REFS[0]) == (
        f"{REFS[0]} was pushed as {OCI}; Heroku and Lightsail take Docker v2 schema 2 image"
        " manifests only (build with oci-mediatypes=false, provenance: false, sbom: false,"
        " one platform)"
    )


def test_an_index_is_refused():
    fake = FakeDocker("containerd", local={REFS[0]: MANIFEST})
    fake.registry[REFS[0]] = "index"
    assert failure(fake, MANIFEST, REFS[0]).startswith(
        f"{REFS[0]} in the registry is an image index, not one image manifest; Heroku"
    )


def test_every_tag_must_resolve_to_the_same_manifest():
    fake = FakeDocker("classic", local=dict.fromkeys(REFS, CONFIG))
    fake.registry[REFS[1]] = (OTHER, V2, CONFIG)  # same image, another manifest
    assert failure(fake, CONFIG, *REFS) == (
        f"{REFS[1]} resolves to manifest {OTHER}, but the first tag to {MANIFEST}"
    )


def test_a_tag_naming_another_image_locally_stops_before_any_push():
    fake = FakeDocker(local={REFS[0]: CONFIG, REFS[1]: OTHER})
    assert failure(fake, CONFIG, *REFS) == f"{REFS[1]} is {OTHER} locally, not the tested {CONFIG}"
    assert not [c for c in fake.calls if c[0] == "push"]


def test_a_tag_that_is_not_local_is_named():
    assert failure(FakeDocker(), CONFIG, REFS[0]) == f"{REFS[0]} is not a local image"


def test_a_failed_push_or_read_back_is_named():
    fake = FakeDocker(local={REFS[0]: CONFIG})
    fake.fail["push"] = "denied: permission_denied"
    assert failure(fake, CONFIG, REFS[0]) == "docker push --quiet failed: denied: permission_denied"
    fake = FakeDocker(local={REFS[0]: CONFIG})
    fake.fail["manifest"] = "no such manifest"
    assert failure(fake, CONFIG, REFS[0]) == (
        f"reading the manifest of {REFS[0]} back from the registry failed"
    )


@pytest.mark.parametrize(
    ("ref", "insecure"),
    [
        ("127.0.0.1:5000/o/r:t", True),
        ("localhost:5000/o/r:t", True),
        ("ghcr.io/o/r:t", False),
        ("registry.example/127.0.0.1:t", False),
    ],
)
def test_only_loopback_registries_are_read_over_plain_http(ref, insecure):
    fake = FakeDocker(local={ref: CONFIG})
    assert call(fake, CONFIG, ref)[0] == 0
    (read,) = [c for c in fake.calls if c[0] == "manifest"]
    assert read == ("manifest", "inspect", "--verbose", *(["--insecure"] * insecure), ref)


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("ghcr.io/owner/repo:1.2.3", "ghcr.io/owner/repo"),
        ("127.0.0.1:5000/owner/repo:sha-abc", "127.0.0.1:5000/owner/repo"),
        ("127.0.0.1:5000/owner/repo", "127.0.0.1:5000/owner/repo"),  # no tag: the port stays
        ("repo:latest", "repo"),
        ("repo", "repo"),
    ],
)
def test_the_name_is_the_first_ref_without_its_tag(ref, name):
    assert pti.name_of(ref) == name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage: scripts/push-tested-image IMAGE_ID REF [REF...] (see --help)"),
        ([CONFIG], "usage:"),
        (["--move", "ghcr.io/o/r@" + MANIFEST], "usage:"),
        (["latest", "x:y"], "IMAGE_ID 'latest' is not an image id like sha256:<64 hex>"),
        (["--help", "x:y"], "IMAGE_ID '--help' is not an image id"),  # help is alone
        ([CONFIG[:-1], "x:y"], "is not an image id"),
        ([CONFIG + "0", "x:y"], "is not an image id"),
        (["sha256:" + "A" * 64, "x:y"], "is not an image id"),
        (["--move", "ghcr.io/o/r:1.2.3", "1.2"], "is not an image by digest like NAME@sha256"),
        (["--move", MANIFEST, "1.2"], "is not an image by digest"),
        (["--move", "a b@" + MANIFEST, "1.2"], "is not an image by digest"),
        (["--move", "ghcr.io/o/r@" + MANIFEST + "0", "1.2"], "is not an image by digest"),
    ],
)
def test_bad_arguments_fail_with_one_line_and_touch_nothing(args, message):
    fake = FakeDocker()
    code, stdout, stderr = call(fake, *args)
    assert (code, stdout) == (2, "")
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith("push-tested-image: ")
    assert message in stderr
    assert fake.calls == []


@pytest.mark.parametrize("args", [[], [CONFIG], ["--move", "ghcr.io/o/r@" + MANIFEST], ["--move"]])
def test_too_few_arguments_print_the_usage_line(args):
    code, stdout, stderr = call(FakeDocker(), *args)
    assert (code, stdout) == (2, "")
    assert stderr == (
        "push-tested-image: usage: scripts/push-tested-image IMAGE_ID REF [REF...] (see --help)\n"
    )


def test_help_prints_the_usage():
    for flag in ("-h", "--help"):
        code, stdout, _ = call(FakeDocker(), flag)
        assert code == 0
        assert "scripts/push-tested-image --move NAME@DIGEST TAG [TAG...]" in stdout


# -- --move -------------------------------------------------------------------------------------

RELEASED = f"ghcr.io/owner/repo@{MANIFEST}"


def test_move_copies_the_released_manifest_to_each_tag():
    fake = FakeDocker()
    fake.registry[RELEASED] = (MANIFEST, V2, CONFIG)
    code, _, stderr = call(fake, "--move", RELEASED, "1.2", "latest")
    assert code == 0, stderr
    assert fake.calls[0] == (
        "buildx",
        "imagetools",
        "create",
        "--prefer-index=false",
        "--tag=ghcr.io/owner/repo:1.2",
        "--tag=ghcr.io/owner/repo:latest",
        RELEASED,
    )
    assert [c[-1] for c in fake.calls if c[0] == "manifest"] == [
        "ghcr.io/owner/repo:1.2",
        "ghcr.io/owner/repo:latest",
    ]
    assert f"push-tested-image: ghcr.io/owner/repo:latest is {RELEASED}" in stderr


@pytest.mark.parametrize("held", [(OTHER, V2, CONFIG), (MANIFEST, OCI, CONFIG)])
def test_move_fails_unless_each_tag_is_the_released_manifest(held):
    fake = FakeDocker()
    fake.registry[RELEASED] = held  # e.g. an index around it, or another image
    assert failure(fake, "--move", RELEASED, "latest") == (
        f"ghcr.io/owner/repo:latest in the registry is {held[1]} {held[0]}, not {RELEASED}"
    )


# -- The docker command ---------------------------------------------------------------------


def fake_cli(tmp_path, script):
    path = tmp_path / "docker-cli"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_docker_returns_stdout_and_names_the_last_line_of_a_failure(tmp_path):
    cli = fake_cli(
        tmp_path, 'echo "args: $*"\n[ "$3" = ok ] || { echo first >&2; echo last >&2; exit 3; }\n'
    )
    with mock.patch.dict(os.environ, {"DOCKER": f"{cli} --context x"}):
        assert pti.docker("ok", "now") == "args: --context x ok now\n"
        with pytest.raises(pti.Mismatch) as failed:
            pti.docker("push", "--quiet", "r")
    assert str(failed.value) == "docker push --quiet failed: last"


def test_without_docker_set_it_runs_docker_from_the_path(tmp_path):
    (tmp_path / "docker").write_text('#!/bin/sh\necho "docker $*"\n')
    (tmp_path / "docker").chmod(0o755)
    with mock.patch.dict(os.environ, {"PATH": f"{tmp_path}:{os.environ['PATH']}"}):
        os.environ.pop("DOCKER", None)
        assert pti.docker("info", "--format", "{{.ID}}") == "docker info --format {{.ID}}\n"


def test_docker_failing_silently_still_says_so(tmp_path):
    with (
        mock.patch.dict(os.environ, {"DOCKER": fake_cli(tmp_path, "exit 1\n")}),
        pytest.raises(pti.Mismatch, match=r"^docker info failed: \(no message\)$"),
    ):
        pti.docker("info")
