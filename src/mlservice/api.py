"""The JSON and CSV prediction API under /api/v1."""

import csv
import io
import json

import numpy as np
import pandas as pd
from flask import Blueprint, Response, current_app, request

from mlservice.errors import ApiError
from mlservice.features import LABELS
from mlservice.model import current_model
from mlservice.openapi import openapi_document
from mlservice.validation import InputError, frame_from_csv, rows_from_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _body_text() -> str:
    # get_data raises 413 itself when the body is over MAX_CONTENT_LENGTH.
    try:
        # utf-8-sig also accepts the byte-order mark that spreadsheet exports put first.
        return request.get_data(cache=False).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ApiError(
            400, "invalid_encoding", f"The body is not valid UTF-8 (byte {error.start})."
        ) from None


def _input_error(error: InputError) -> ApiError:
    return ApiError(422, error.code, error.message, error.errors or None)


def _predictions(proba: np.ndarray) -> list[dict]:
    return [
        {
            "label": LABELS[int(row.argmax())],
            "probabilities": {label: float(p) for label, p in zip(LABELS, row, strict=True)},
        }
        for row in proba
    ]


def _scored_csv(table: pd.DataFrame, proba: np.ndarray) -> str:
    """The table as sent with the prediction columns appended.

    The csv module writes rows several times faster than DataFrame.to_csv formats floats.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*table.columns, "label", "probability_benign", "probability_malignant"])
    labels = np.take(LABELS, proba.argmax(axis=1)).tolist()
    benign = proba[:, LABELS.index("benign")].tolist()
    malignant = proba[:, LABELS.index("malignant")].tolist()
    columns = (table[column].tolist() for column in table.columns)
    writer.writerows(zip(*columns, labels, benign, malignant, strict=True))
    return out.getvalue()


@bp.post("/predict")
def predict():
    model = current_model()
    max_rows = current_app.config["MAX_ROWS"]
    if request.mimetype == "application/json":
        text = _body_text()
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise ApiError(400, "invalid_json", f"The body is not valid JSON: {error}.") from None
        except RecursionError:
            raise ApiError(400, "invalid_json", "The body is nested too deeply.") from None
        try:
            rows = rows_from_json(payload, max_rows)
        except InputError as error:
            raise _input_error(error) from None
        proba = model.predict_proba(rows)
        return {"predictions": _predictions(proba), "model_version": model.version}

    if request.mimetype == "text/csv":
        try:
            table, rows = frame_from_csv(_body_text(), max_rows)
        except InputError as error:
            raise _input_error(error) from None
        proba = model.predict_proba(rows)
        return Response(
            _scored_csv(table, proba),
            mimetype="text/csv",
            headers={"X-Model-Version": model.version},
        )

    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {request.mimetype or '(none)'} is not supported; "
        "send application/json or text/csv.",
    )


@bp.get("/model")
def model_card():
    return current_model().card


@bp.get("/openapi.json")
def openapi():
    return openapi_document()
