"""The OpenAPI document and the app stay in step: same operations, answers that match it."""

import re

import jsonschema
import pytest
from referencing import Registry, Resource

from mlservice.contract import CONTRACT
from tests.values import FEATURES, FIRST

# Page routes, static files and the document itself are not API operations.
UNDOCUMENTED = {"/", "/model", "/static/<path:filename>"}
UNDOCUMENTED |= {"/answers", "/answers/static/<path:filename>"}  # the ranked-answers example
UNDOCUMENTED |= {"/_ah/warmup"}  # App Engine's warmup request, a platform hook


@pytest.fixture
def document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_every_route_is_documented_and_every_operation_exists(app, document):
    routes = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule not in UNDOCUMENTED
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented


def test_the_document_is_openapi_3_1_with_resolvable_references(document):
    assert document["openapi"].startswith("3.1")
    registry = Registry().with_resource("urn:api", Resource.opaque(document))
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert registry.resolver("urn:api").lookup(f"urn:api#/components/schemas/{name}")


def validate(document: dict, path: str, method: str, response) -> None:
    """Check a response body against the schema the document gives for its status."""
    documented = document["paths"][path][method]["responses"][str(response.status_code)]
    schema = documented["content"]["application/json"]["schema"]
    registry = Registry().with_resource("urn:api", Resource.opaque(document))
    if "$ref" in schema:
        schema = {"$ref": "urn:api" + schema["$ref"]}
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    validator.validate(response.get_json())


def test_documented_features_are_the_validated_ones(document, card):
    instance = document["components"]["schemas"]["Instance"]
    assert instance["required"] == [feature["name"] for feature in card["features"]]
    assert instance["additionalProperties"] is False
    for feature in FEATURES:
        documented = instance["properties"][feature.name]
        assert documented["type"] == ("integer" if feature.integer else "number")
        assert (documented["minimum"], documented["maximum"]) == (feature.min, feature.max)
        assert feature.description in documented["description"]


def test_the_document_describes_this_model(document, card):
    assert CONTRACT.title in document["info"]["description"]
    predict = document["paths"]["/api/v1/predict"]["post"]
    for name in [*CONTRACT.labels, *CONTRACT.probability_columns]:
        assert name in predict["description"]
    probabilities = document["components"]["schemas"]["Probabilities"]
    assert probabilities["required"] == list(CONTRACT.labels)
    examples = predict["requestBody"]["content"]["application/json"]["examples"]
    assert [example["value"] for example in examples.values()] == list(card["examples"].values())


@pytest.mark.parametrize(
    ("body", "status"),
    [("example", 200), ({FIRST.name: "x"}, 422), ({"instances": []}, 422)],
)
def test_predict_answers_match_the_document(client, document, row, body, status):
    payload = row if body == "example" else body
    response = client.post("/api/v1/predict", json=payload)
    assert response.status_code == status
    validate(document, "/api/v1/predict", "post", response)


@pytest.mark.parametrize("path", ["/api/v1/model", "/healthz", "/readyz"])
def test_read_only_answers_match_the_document(client, document, path):
    response = client.get(path)
    assert response.status_code == 200
    validate(document, path, "get", response)


def test_the_document_needs_no_installed_distribution(model_path, monkeypatch):
    """A source checkout without `pip install` has no metadata; the document is built anyway."""
    import importlib.metadata

    from mlservice import create_app

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr("mlservice.openapi.version", not_installed)
    app = create_app({"MODEL_PATH": str(model_path)})
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["info"]["version"] == "unknown"


def test_the_document_is_built_once_at_start_up(app, monkeypatch):
    before = app.test_client().get("/api/v1/openapi.json").get_json()

    def must_not_be_called(*args):
        raise AssertionError("the document was rebuilt for a request")

    monkeypatch.setattr("mlservice.openapi.openapi_document", must_not_be_called)
    monkeypatch.setattr("mlservice.openapi.version", must_not_be_called)
    assert app.test_client().get("/api/v1/openapi.json").get_json() == before


def test_a_part_may_not_redefine_a_schema(app):
    from mlservice.openapi import openapi_document

    part = {"paths": {}, "schemas": {"Error": {}}}
    app.extensions.setdefault("mlservice.openapi", []).append(lambda app: part)
    with app.app_context(), pytest.raises(RuntimeError, match="defined twice: Error"):
        openapi_document()


def test_every_documented_answer_carries_the_request_id_header(document, client):
    header = document["components"]["headers"]["X-Request-ID"]
    pattern = re.compile(header["schema"]["pattern"])
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                where = f"{method} {path} {status}"
                assert response["headers"]["X-Request-ID"] == {
                    "$ref": "#/components/headers/X-Request-ID"
                }, where
    assert pattern.fullmatch(client.get("/healthz").headers["X-Request-ID"])
    sent = "client-chosen-id-0123456789"
    assert client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent
    assert pattern.fullmatch(sent)
    assert not pattern.fullmatch("short")
