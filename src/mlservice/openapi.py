"""The OpenAPI 3.1 description of the HTTP API, served at /api/v1/openapi.json.

Schemas for the inputs come from the validation models, so the document and the checks
cannot drift apart; tests/test_openapi.py checks responses against it.
"""

from importlib.metadata import PackageNotFoundError, version

from flask import Flask, current_app

from mlservice.features import LABELS
from mlservice.validation import MAX_VALUE, Instance


def _json(schema_ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}


def _error(description: str) -> dict:
    return {"description": description, "content": _json("Error")}


def _schemas(max_rows: int) -> dict:
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "Instance": Instance.model_json_schema(),
        "Batch": {
            "type": "object",
            "properties": {
                "instances": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Instance"},
                    "minItems": 1,
                    "maxItems": max_rows,
                }
            },
            "required": ["instances"],
            "additionalProperties": False,
        },
        "Prediction": {
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": list(LABELS)},
                "probabilities": {
                    "type": "object",
                    "properties": dict.fromkeys(LABELS, probability),
                    "required": list(LABELS),
                    "additionalProperties": False,
                },
            },
            "required": ["label", "probabilities"],
            "additionalProperties": False,
        },
        "PredictResponse": {
            "type": "object",
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Prediction"},
                    "minItems": 1,
                },
                "model_version": {"type": "string"},
            },
            "required": ["predictions", "model_version"],
            "additionalProperties": False,
        },
        "ModelCard": {
            "type": "object",
            "properties": {
                "version": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "features": {"type": "array", "items": {"type": "object"}},
                "metrics": {"type": "object"},
                "examples": {"type": "object"},
                "scikit_learn_version": {"type": "string"},
                "artifact": {
                    "type": "object",
                    "properties": {"file": {"type": "string"}, "sha256": {"type": "string"}},
                    "required": ["file", "sha256"],
                },
            },
            "required": [
                "version",
                "labels",
                "features",
                "metrics",
                "examples",
                "scikit_learn_version",
                "artifact",
            ],
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"const": "ok"}},
            "required": ["status"],
        },
        "Ready": {
            "type": "object",
            "properties": {"status": {"const": "ready"}, "model_version": {"type": "string"}},
            "required": ["status", "model_version"],
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {},
                    },
                    "required": ["code", "message", "details"],
                }
            },
            "required": ["error"],
        },
    }


def _get(summary: str, schema_ref: str) -> dict:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": "OK", "content": _json(schema_ref)}},
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


def openapi_document() -> dict:
    max_rows = current_app.config["MAX_ROWS"]
    predict = {
        "summary": "Classify one instance, a batch of instances, or a CSV table",
        "description": f"Every feature is a number from 0 to {MAX_VALUE:,.0f}. JSON takes one "
        f'instance or {{"instances": [...]}} with at most {max_rows} rows; CSV takes a header '
        "naming the six features in any order and returns the table with label, "
        "probability_benign and probability_malignant appended.",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Instance"},
                            {"$ref": "#/components/schemas/Batch"},
                        ]
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        "responses": {
            "200": {
                "description": "One prediction per row, in the order sent",
                "content": {**_json("PredictResponse"), "text/csv": {"schema": {"type": "string"}}},
            },
            "400": _error("Body is not valid JSON or not UTF-8"),
            "413": _error("Body larger than the configured limit"),
            "415": _error(
                "Content-Type is neither application/json nor text/csv, its charset is not "
                "UTF-8, or the body is compressed (Content-Encoding)"
            ),
            "422": _error("A value, row count, CSV row or CSV column is not acceptable"),
        },
    }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "mlservice",
            "version": _version(),
            "description": "Breast-cancer classifier served by the mlservice template.",
        },
        "paths": {
            "/api/v1/predict": {"post": predict},
            "/api/v1/model": _get("The model card: features, metrics, versions", "ModelCard"),
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "OK", "content": {"application/json": {}}}
                    },
                }
            },
            "/healthz": _get("Liveness: the process answers", "Health"),
            "/readyz": _get("Readiness: the model is loaded", "Ready"),
        },
        "components": {"schemas": _schemas(max_rows)},
    }
    # Optional features (the ranked answers) add their own paths and schemas.
    for part in current_app.extensions.get("mlservice.openapi", []):
        contribution = part(current_app)
        document["paths"].update(contribution["paths"])
        document["components"]["schemas"].update(contribution["schemas"])
    return document
