"""The OpenAPI 3.1 description of the HTTP API, served at /api/v1/openapi.json.

Every schema is generated: the inputs' from the validation models (mlservice.validation), the
answers' from the response models (mlservice.responses), so the document, the checks and the
bodies sent cannot drift apart. tests/test_openapi.py checks responses against it.
"""

from importlib.metadata import PackageNotFoundError, version

from flask import Flask, current_app
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic.json_schema import models_json_schema

from mlservice.contract import CONTRACT, LABEL_COLUMN
from mlservice.model import current_model
from mlservice.responses import Error, Health, ModelCard, PredictResponse, Ready
from mlservice.telemetry import SANE_ID
from mlservice.validation import Instance

REF = "#/components/schemas/{model}"
REQUEST_ID_HEADER = {
    "description": "The request's id: the X-Request-ID sent, when it is 20 to 200 letters, "
    "digits, +, =, / or -, else a new one. Error bodies repeat it; log lines carry it.",
    "schema": {"type": "string", "pattern": f"^{SANE_ID.pattern}$"},
}
TEXT = TypeAdapter(str).json_schema()


def component_schemas(models: list[type[BaseModel]]) -> dict:
    """The JSON schemas of these models (and the models they use), under their class names."""
    _, schemas = models_json_schema([(model, "validation") for model in models], ref_template=REF)
    return schemas.get("$defs", {})


def ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def json_content(model: type[BaseModel]) -> dict:
    return {"application/json": {"schema": ref(model)}}


def error(description: str) -> dict:
    return {"description": description, "content": json_content(Error)}


def get(summary: str, model: type[BaseModel]) -> dict:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": "OK", "content": json_content(model)}},
        }
    }


def _version() -> str:
    # A source checkout run without `pip install` has no distribution metadata.
    try:
        return version("mlservice")
    except PackageNotFoundError:
        return "unknown"


def init_app(app: Flask) -> None:
    """Build the document once, after every feature added its part; the route serves this copy."""
    with app.app_context():
        app.extensions["openapi"] = openapi_document()


def _json_examples() -> dict:
    """The model card's example rows, one per class, as request examples."""
    return {
        f"example-{index}": {"summary": f"A typical {label} case", "value": row}
        for index, (label, row) in enumerate(current_model().card["examples"].items())
    }


def _csv_example() -> dict:
    rows = list(current_model().card["examples"].values())
    if not rows:
        return {}
    lines = [",".join(CONTRACT.feature_names)]
    lines += [",".join(repr(row[name]) for name in CONTRACT.feature_names) for row in rows]
    return {"table": {"summary": "The examples as a table", "value": "\n".join(lines) + "\n"}}


def openapi_document() -> dict:
    max_rows = current_app.config["MAX_ROWS"]
    # The batch's row limit is a setting, so its model is made here.
    batch = create_model(
        "Batch",
        __config__=ConfigDict(extra="forbid"),
        instances=(list[Instance], Field(min_length=1, max_length=max_rows)),
    )
    features = CONTRACT.feature_names
    appended = [LABEL_COLUMN, *CONTRACT.probability_columns]
    predict = {
        "summary": "Classify one instance, a batch of instances, or a CSV table",
        "description": f"Every feature is a number within its range, a whole one where its type "
        f'is integer (see Instance). JSON takes one instance or {{"instances": [...]}} with '
        f"at most {max_rows} rows; CSV takes a header naming the {len(features)} features in "
        f"any order and returns the table with {', '.join(appended)} appended. Probabilities "
        f"are keyed by label: {', '.join(CONTRACT.labels)}.",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [ref(Instance), ref(batch)]},
                    "examples": _json_examples(),
                },
                "text/csv": {"schema": TEXT, "examples": _csv_example()},
            },
        },
        "responses": {
            "200": {
                "description": "One prediction per row, in the order sent",
                "content": {**json_content(PredictResponse), "text/csv": {"schema": TEXT}},
            },
            "400": error("Body is not valid JSON or not UTF-8"),
            "413": error("Body larger than the configured limit"),
            "415": error(
                "Content-Type is neither application/json nor text/csv, its charset is not "
                "UTF-8, or the body is compressed (Content-Encoding)"
            ),
            "422": error("A value, row count, CSV row or CSV column is not acceptable"),
        },
    }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "mlservice",
            "version": _version(),
            "description": f"{CONTRACT.title}: {CONTRACT.description}",
        },
        "paths": {
            "/api/v1/predict": {"post": predict},
            "/api/v1/model": get("The model card: features, metrics, versions", ModelCard),
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "OK", "content": {"application/json": {}}}
                    },
                }
            },
            "/healthz": get("Liveness: the process answers", Health),
            "/readyz": get("Readiness: the model is loaded", Ready),
        },
        "components": {
            "schemas": component_schemas(
                [Instance, batch, PredictResponse, ModelCard, Health, Ready, Error]
            )
        },
    }
    # Optional features (the ranked answers) add their own paths and schemas.
    for part in current_app.extensions.get("mlservice.openapi", []):
        contribution = part(current_app)
        if clash := document["components"]["schemas"].keys() & contribution["schemas"].keys():
            raise RuntimeError(f"OpenAPI schema names defined twice: {', '.join(sorted(clash))}")
        document["paths"].update(contribution["paths"])
        document["components"]["schemas"].update(contribution["schemas"])
    # Every answer carries its request id (mlservice.telemetry).
    document["components"]["headers"] = {"X-Request-ID": REQUEST_ID_HEADER}
    for operation in (op for item in document["paths"].values() for op in item.values()):
        for response in operation["responses"].values():
            response["headers"] = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    return document
