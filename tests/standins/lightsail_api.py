"""A stand-in for the Lightsail container service API (JSON protocol) on 127.0.0.1.

The real AWS CLI talks to it when AWS_ENDPOINT_URL_LIGHTSAIL points here (the CLI's own setting
for what --endpoint-url does per call; `FakeLightsail.environment`). Each request is checked
against botocore's Lightsail model (service-2.json, 2016-11-28) as the service would: names,
types and required members (botocore's ParamValidator), and the enum values, lengths and
patterns botocore leaves to the service. Its own answers are held to the model's enums too.

The deployment lifecycle (ContainerServiceDeployment and ContainerServiceStateDetail in the
Lightsail API reference): a new deployment is ACTIVATING while the service is DEPLOYING, then
ACTIVE (the current one; the one before becomes INACTIVE) or FAILED (its health check failed:
the previous deployment keeps serving and the service is RUNNING again). Each deployment takes
its outcome from `outcomes`: "active", "failed", "stuck" (still ACTIVATING whenever asked) or
"late" (ACTIVE, but only once the script stopped waiting: at the first look after it fetched the
container log). A look is one GetContainerServices call.
"""

import json
import os
import re
import signal
import uuid
from http.server import BaseHTTPRequestHandler

import botocore.session
import botocore.validate

from tests.standins.server import FakeServer

MODEL = botocore.session.get_session().get_service_model("lightsail")
TARGET = "Lightsail_20161128."


def model_errors(value, shape, where: str = "") -> list[str]:
    """What the service checks beyond botocore's validator: enums, max lengths, patterns."""
    found = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                found += model_errors(member, shape.members[name], f"{where}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for n, item in enumerate(value):
            found += model_errors(item, shape.member, f"{where}[{n}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            found += model_errors(key, shape.key, f"{where} key {key!r}")
            found += model_errors(item, shape.value, f"{where}.{key}")
    elif shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            found.append(f"{where or 'value'}: {value!r} is not one of {shape.enum}")
        if len(value) > shape.metadata.get("max", len(value)):
            found.append(f"{where}: longer than {shape.metadata['max']}")
        pattern = shape.metadata.get("pattern")
        if pattern and not re.fullmatch(pattern, value):
            found.append(f"{where}: {value!r} does not match {pattern}")
    return found


class ServiceError(Exception):
    """An error answer: HTTP 400 with the exception's name as __type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class FakeLightsail(FakeServer):
    def __init__(
        self,
        service: str = "mlservice",
        region: str = "eu-west-1",
        code_url: str = "http://127.0.0.1:9/",
        power: str = "nano",
        registry: str = "127.0.0.1:9",
    ) -> None:
        self.service, self.region, self.code_url, self.power = service, region, code_url, power
        self.registry = registry  # what CreateContainerServiceRegistryLogin hands out
        self.registry_password = uuid.uuid4().hex
        self.deployments: list[dict] = []  # newest first, as GetContainerServiceDeployments
        self.current: int | None = None
        self.images: list[dict] = []  # the images registered to the service
        self.pushes: dict[str, int] = {}
        self.log = ["[boot] gunicorn starting", "[boot] mlservice cannot start: model missing"]
        self.outcomes: list[str] = []  # of the next deployments, in turn; "active" when empty
        self.settle_after = 2  # looks a deployment stays ACTIVATING
        self.log_fetched = False
        self.requests: list[dict] = []
        self.plants: dict[str, list[str | None]] = {}
        self.clock = 1_764_000_000
        super().__init__(self._handler())

    def environment(self) -> dict[str, str]:
        """What the AWS CLI (and botocore in the lightsailctl stand-in) need to reach this fake."""
        return {
            "AWS_ENDPOINT_URL_LIGHTSAIL": self.url,
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "not-a-secret",
            "AWS_REGION": self.region,
        }

    # -- the service's state -----------------------------------------------------------------

    def add_deployment(self, containers: dict, endpoint: dict) -> dict:
        """A deployment made before the test, ACTIVE and current."""
        deployment = self.new_deployment(containers, endpoint, "active")
        self.activate(deployment)
        return deployment

    def add_image(self, label: str) -> dict:
        return self.register(label, "sha256:" + uuid.uuid4().hex * 2)

    def plant(self, operation: str, what: str, times: int = 1, after: int = 0) -> None:
        """Make `times` calls of `operation`, after the next `after`, go wrong: "error" (an
        AccessDeniedException, which the CLI does not retry), "garbage" (not JSON), "empty" (200 with {}), "hang" (no answer) or
        "sigterm" (SIGTERM to this process, then the normal answer)."""
        self.plants.setdefault(operation, []).extend([None] * after + [what] * times)

    def tick(self) -> int:
        self.clock += 60
        return self.clock

    def new_deployment(self, containers: dict, endpoint: dict, outcome: str) -> dict:
        deployment = {
            "version": max((d["version"] for d in self.deployments), default=0) + 1,
            "state": "ACTIVATING",
            "containers": containers,
            "publicEndpoint": {**endpoint, "healthCheck": endpoint.get("healthCheck", {})},
            "createdAt": self.tick(),
            "outcome": outcome,
            "looks": 0,
        }
        self.deployments.insert(0, deployment)
        return deployment

    def activate(self, deployment: dict) -> None:
        for other in self.deployments:
            if other["state"] == "ACTIVE":
                other["state"] = "INACTIVE"
        deployment["state"] = "ACTIVE"
        self.current = deployment["version"]

    def in_flight(self) -> dict | None:
        return next((d for d in self.deployments if d["state"] == "ACTIVATING"), None)

    def look(self) -> None:
        """One look at the service: the deployment in flight may settle."""
        deployment = self.in_flight()
        if deployment is None:
            return
        deployment["looks"] += 1
        outcome = deployment["outcome"]
        if outcome == "late" and self.log_fetched:
            self.activate(deployment)
        elif outcome in ("active", "failed") and deployment["looks"] >= self.settle_after:
            if outcome == "active":
                self.activate(deployment)
            else:
                deployment["state"] = "FAILED"

    def register(self, label: str, digest: str) -> dict:
        """A pushed image becomes :<service>.<label>.<N>, N counting that label's pushes."""
        self.pushes[label] = self.pushes.get(label, 0) + 1
        name = f":{self.service}.{label}.{self.pushes[label]}"
        image = {"image": name, "digest": digest, "createdAt": self.tick()}
        self.images.append(image)
        return image

    @staticmethod
    def public(deployment: dict) -> dict:
        return {k: v for k, v in deployment.items() if k not in ("outcome", "looks")}

    def container_service(self) -> dict:
        flight = self.in_flight()
        service = {
            "containerServiceName": self.service,
            "arn": f"arn:aws:lightsail:{self.region}:123456789012:ContainerService/{uuid.UUID(int=1)}",
            "location": {"availabilityZone": "all", "regionName": self.region},
            "resourceType": "ContainerService",
            "power": self.power,
            "scale": 1,
            "state": "DEPLOYING" if flight else ("RUNNING" if self.current else "READY"),
            "isDisabled": False,
            "url": self.code_url,
        }
        if flight:
            service["stateDetail"] = {"code": "ACTIVATING_DEPLOYMENT", "message": "Activating"}
            service["nextDeployment"] = self.public(flight)
        if self.current:
            current = next(d for d in self.deployments if d["version"] == self.current)
            service["currentDeployment"] = self.public(current)
        return service

    # -- the API -----------------------------------------------------------------------------

    def call(self, operation: str, params: dict) -> dict:
        if params.get("serviceName", self.service) != self.service:
            raise ServiceError("NotFoundException", "The container service does not exist.")
        if operation == "GetContainerServices":
            self.look()
            return {"containerServices": [self.container_service()]}
        if operation == "CreateContainerServiceRegistryLogin":
            login = {
                "username": "AWS",
                "password": self.registry_password,
                "expiresAt": self.clock + 3600,
                "registry": self.registry,
            }
            return {"registryLogin": login}
        if operation == "RegisterContainerImage":
            return {"containerImage": self.register(params["label"], params["digest"])}
        if operation == "CreateContainerServiceDeployment":
            # Assumed, as the console does: no new deployment while one is in flight (if
            # Lightsail queued or superseded it, the script's restore would end the same way).
            if self.in_flight():
                raise ServiceError(
                    "InvalidInputException",
                    "The container service is in a DEPLOYING state; try again once it is RUNNING.",
                )
            images = {i["image"] for i in self.images}
            for name, container in params["containers"].items():
                if container["image"].startswith(":") and container["image"] not in images:
                    raise ServiceError(
                        "InvalidInputException", f"The image of container {name} is not registered."
                    )
            outcome = self.outcomes.pop(0) if self.outcomes else "active"
            self.new_deployment(params["containers"], params["publicEndpoint"], outcome)
            return {"containerService": self.container_service()}
        if operation == "GetContainerServiceDeployments":
            return {"deployments": [self.public(d) for d in self.deployments]}
        if operation == "GetContainerImages":
            return {"containerImages": list(self.images)}
        if operation == "DeleteContainerImage":
            if params["image"] not in {i["image"] for i in self.images}:
                raise ServiceError("NotFoundException", "The image does not exist.")
            self.images = [i for i in self.images if i["image"] != params["image"]]
            return {}
        if operation == "GetContainerLog":
            # The log of a container the service's deployments name (containerName is required).
            names = {name for d in self.deployments for name in d["containers"]}
            if params.get("containerName") not in names:
                raise ServiceError("NotFoundException", "The container does not exist.")
            self.log_fetched = True
            # A line of `log` is a message; a dict is an event as it is (the API model
            # requires neither createdAt nor message).
            events = [
                line if isinstance(line, dict) else {"createdAt": self.clock, "message": line}
                for line in self.log
            ]
            return {"logEvents": events}
        raise ServiceError("InvalidInputException", f"{operation} is not part of this fake")

    def answer(self, headers, body: bytes) -> tuple[str, int, object]:
        """(operation, status, answer) for one request, checked against the model."""
        operation = headers.get("X-Amz-Target", "").removeprefix(TARGET)
        # SigV4: the CLI signs for the lightsail service in the region it was given.
        credential = re.search(
            r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request", headers.get("Authorization", "")
        )
        if not credential or credential.groups() != (self.region, "lightsail"):
            return (
                operation,
                400,
                {"__type": "UnrecognizedClientException", "message": "Bad signature"},
            )
        try:
            model = MODEL.operation_model(operation)
        except Exception:
            return operation, 400, {"__type": "UnknownOperationException", "message": operation}
        params = json.loads(body or b"{}")
        report = botocore.validate.ParamValidator().validate(params, model.input_shape)
        problems = [report.generate_report()] if report.has_errors() else []
        problems += model_errors(params, model.input_shape)
        if problems:
            return (
                operation,
                400,
                {"__type": "InvalidInputException", "message": "; ".join(problems)},
            )
        try:
            result = self.call(operation, params)
        except ServiceError as error:
            return operation, 400, {"__type": error.kind, "message": str(error)}
        wrong = model_errors(result, model.output_shape) if model.output_shape else []
        assert not wrong, f"the fake answered outside the model: {wrong}"
        return operation, 200, result

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                operation = self.headers.get("X-Amz-Target", "").removeprefix(TARGET)
                fake.requests.append({"operation": operation, "params": json.loads(body or b"{}")})
                waiting = fake.plants.get(operation)
                planted = waiting.pop(0) if waiting else None
                if planted == "hang":
                    fake.unblock.wait()
                    return
                if planted == "error":  # refused: nothing is done
                    status, answer = 400, {"__type": "AccessDeniedException", "message": "planted"}
                else:
                    _, status, answer = fake.answer(self.headers, body)
                if planted == "sigterm":
                    os.kill(os.getpid(), signal.SIGTERM)
                elif planted == "empty":
                    status, answer = 200, {}
                data = b"<html>" if planted == "garbage" else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        return Handler
