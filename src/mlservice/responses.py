"""The JSON bodies the service answers with, as pydantic models.

The routes build their answers from these models, and the OpenAPI document's response schemas are
generated from them (mlservice.openapi), so what is sent and what is documented cannot drift apart.
One route, POST /api/v1/predict, the hot path, writes PredictResponse's shape from plain values;
tests/test_openapi.py checks its answers, as every answer, against the document.
"""

from typing import Annotated, Any, Literal

from flask import Response, current_app
from pydantic import BaseModel, ConfigDict, Field, create_model

from mlservice.contract import CONTRACT

LABELS = tuple(CONTRACT.labels)


class Body(BaseModel):
    """A response body: exactly the fields declared, nothing else."""

    model_config = ConfigDict(extra="forbid")


Probability = Annotated[float, Field(ge=0, le=1)]
# One field per label, keyed by the label as the contract writes it (any text: the Python names
# are p0, p1, ...), so a renamed or added label changes the document too.
Probabilities = create_model(
    "Probabilities",
    __base__=Body,
    **{f"p{index}": (Probability, Field(alias=label)) for index, label in enumerate(LABELS)},
)


class Prediction(Body):
    label: Literal[LABELS]
    probabilities: Probabilities


class PredictResponse(Body):
    predictions: list[Prediction] = Field(min_length=1)
    model_version: str


class Artifact(BaseModel):
    file: str
    sha256: str


class ModelCard(BaseModel):
    """The fields clients rely on; the card may carry more (training details), served as is."""

    model_config = ConfigDict(extra="allow")

    version: str
    labels: list[str]
    features: list[dict[str, Any]]
    metrics: dict[str, Any]
    examples: dict[str, Any]
    scikit_learn_version: str
    artifact: Artifact


class Health(Body):
    status: Literal["ok"]


class Ready(Body):
    status: Literal["ready"]
    model_version: str


class ErrorDetail(Body):
    code: str = Field(description="Stable, machine-readable; the message may change")
    message: str
    details: Any = Field(
        description="What the error is about, or null: a list with one entry per bad value, "
        "field or column for input errors, the parameter's name for a bad query parameter"
    )
    request_id: str = Field(
        description="This request's id, also in the X-Request-ID header: quote it when "
        "reporting a problem, it finds the request's log lines"
    )


class Error(Body):
    error: ErrorDetail


def json_response(body: BaseModel, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response from a model: the body is checked against it when the model is built."""
    return current_app.response_class(
        body.model_dump_json(by_alias=True),
        status=status,
        headers=headers,
        mimetype="application/json",
    )
