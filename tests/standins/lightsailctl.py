#!/usr/bin/env python3
"""Stand-in for lightsailctl v1.0.8, the plugin behind `aws lightsail push-container-image`.

As github.com/aws/lightsailctl does it (internal/plugin/plugin.go, internal/cs/pushimage.go):
`--plugin --input-stdin` reads the CLI's request ({"inputVersion", "operation":
"PushContainerImage", "payload": {service, image, label}, "configuration": {region, endpoint,
...}}), asks Lightsail for a registry login (CreateContainerServiceRegistryLogin), tags the
image as <registry>/sr:<unique tag>, pushes it, untags it, registers the pushed digest
(RegisterContainerImage) and prints the three lines the deploy script reads. An error ends it
as Go's log.Fatal does: one line with the time on stderr, exit 1. The API calls go through
botocore (the same Lightsail model), so AWS_ENDPOINT_URL_LIGHTSAIL reaches the fake; docker is
whatever `docker` is on PATH. Tests install it as `lightsailctl`.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

VERSION = "v1.0.8"


def fatal(message: str) -> None:
    print(time.strftime("%Y/%m/%d %H:%M:%S ") + message, file=sys.stderr)
    sys.exit(1)


def docker(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode:
        fatal(done.stderr.strip() or done.stdout.strip())
    return done.stdout


def push(request: dict) -> None:
    import botocore.exceptions
    import botocore.session

    payload, configuration = request["payload"], request.get("configuration", {})
    for what, key in (
        ("service name", "service"),
        ("container image", "image"),
        ("container label", "label"),
    ):
        if not payload.get(key):
            fatal(
                f"unable to parse the input's payload field: push container image: {what} is not specified"
            )
    client = botocore.session.get_session().create_client(
        "lightsail",
        region_name=configuration.get("region"),
        endpoint_url=configuration.get("endpoint"),
    )
    try:
        login = client.create_container_service_registry_login()["registryLogin"]
        remote = f"{login['registry']}/sr:{time.time_ns()}-{uuid.uuid4().hex[:13]}"
        with tempfile.TemporaryDirectory() as config:  # the login stays out of ~/.docker
            os.environ["DOCKER_CONFIG"] = config
            docker(
                "login",
                login["registry"],
                "--username",
                login["username"],
                "--password-stdin",
                stdin=login["password"],
            )
            docker("tag", payload["image"], remote)
            try:
                pushed = docker("push", remote)
            finally:
                subprocess.run(["docker", "rmi", remote], capture_output=True, check=False)
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
        if digest is None:
            fatal("image push response does not contain the image digest")
        registered = client.register_container_image(
            serviceName=payload["service"], label=payload["label"], digest=digest[1]
        )["containerImage"]
    except botocore.exceptions.ClientError as error:
        fatal(str(error))
    print(f"Digest: {registered['digest']}")
    print(f'Image "{payload["image"]}" registered.')
    print(f'Refer to this image as "{registered["image"]}" in deployments.')


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(VERSION)
        return
    if sys.argv[1:] != ["--plugin", "--input-stdin"]:
        fatal('no plugin input: either "input" or "input-stdin" flag must be specified')
    try:
        request = json.loads(sys.stdin.read())
    except ValueError as error:
        fatal(f"invalid plugin input: unable to unmarshal JSON input: {error}")
    if request.get("operation") != "PushContainerImage":
        fatal(f'unknown plugin operation: "{request.get("operation")}"')
    push(request)


if __name__ == "__main__":
    main()
