"""The JSON and CSV prediction API under /api/v1."""

import csv
import io
import itertools

import numpy as np
import orjson
from flask import Blueprint, Request, Response, current_app, request
from pydantic import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from mlservice import telemetry
from mlservice.contract import CONTRACT, LABEL_COLUMN
from mlservice.errors import ApiError
from mlservice.model import EXTENSION as MODEL
from mlservice.model import ModelError, labels_of
from mlservice.responses import ModelCard, json_response
from mlservice.validation import CsvTable, parse_json, rows_from_json, table_from_csv

bp = Blueprint("api", __name__, url_prefix="/api/v1")
CARD = "mlservice.api.card"


@bp.record_once
def _check_card(state) -> None:
    # The card is fixed for the process: checked once, at start-up, so a card without the fields
    # GET /api/v1/model promises stops the app instead of failing that route on every request.
    card = state.app.extensions["mlservice.model"].card
    try:
        state.app.extensions[CARD] = ModelCard.model_validate(card)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ModelError(f"The model card cannot be served: {problems}.") from None


def _body_text(req: Request, limit: int | None) -> str:
    # From the WSGI environ: cheaper than req.headers, on every prediction.
    encoding = req.environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if encoding != "identity":
        raise ApiError(
            415,
            "unsupported_content_encoding",
            f"Content-Encoding {encoding} is not supported; send the body uncompressed.",
        )
    charset = req.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(
            415,
            "unsupported_charset",
            f"The body's charset {charset} is not supported; send UTF-8.",
        )
    length = req.content_length
    if length is None:
        # A chunked body: Werkzeug stops reading at the limit and returns what it has, so a body
        # that reaches the limit is refused here rather than parsed cut short.
        data = req.get_data(cache=False)
        if limit is not None and len(data) >= limit:
            raise RequestEntityTooLarge()
    else:
        # The Content-Length bytes straight from the server: Werkzeug's stream around them costs
        # more than parsing a one-row body (docs/performance.md). A body that ends early is
        # refused, not parsed cut short.
        if limit is not None and length > limit:
            raise RequestEntityTooLarge()
        data = req.environ["wsgi.input"].read(length)
        if len(data) < length:
            raise ApiError(
                400,
                "incomplete_body",
                f"The body ended after {len(data)} of the {length} bytes its Content-Length "
                "announced.",
            )
    try:
        text = data.decode()
    except UnicodeDecodeError as error:
        raise ApiError(
            400, "invalid_encoding", f"The body is not valid UTF-8 (byte {error.start})."
        ) from None
    # The byte-order mark that spreadsheet exports put first is not part of the text (as the
    # utf-8-sig codec reads it, which is written in Python and slower than this).
    return text[1:] if text.startswith("\ufeff") else text


def _predictions(labels: list[str], proba: list[list[float]]) -> list[dict]:
    return [
        {"label": label, "probabilities": dict(zip(CONTRACT.labels, row, strict=True))}
        for label, row in zip(labels, proba, strict=True)
    ]


def _csv_line(cells: list) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


# Each label as a CSV cell, quoted if it has to be.
_LABEL_CELLS = {label: _csv_line([label])[:-1] for label in CONTRACT.labels}


def _scored_csv(table: CsvTable, labels: list[str], proba: np.ndarray) -> str:
    """The table as sent, cell for cell, with the label and one probability per label appended.

    The probability columns are named by contract.probability_column, in the labels' order.
    """
    if table.lines is not None:
        # A plain table: each line as sent, then the label and repr() of each probability, as
        # the csv module writes them, without splitting and rejoining the cells.
        header = _csv_line([*table.header, LABEL_COLUMN, *CONTRACT.probability_columns])
        probabilities = [map(float.__repr__, column) for column in proba.T.tolist()]
        cells = zip(table.lines, map(_LABEL_CELLS.__getitem__, labels), *probabilities, strict=True)
        return header + "\n".join(map(",".join, cells)) + "\n"
    quoting = csv.QUOTE_MINIMAL
    if "\r" in "".join(itertools.chain(table.header, *table.rows)):
        # float() reads a quoted "1.5\r" as a number; the csv module quotes only the characters
        # of its line end, so without this the CR would be written bare and split the row.
        quoting = csv.QUOTE_NONNUMERIC
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=quoting)
    writer.writerow([*table.header, LABEL_COLUMN, *CONTRACT.probability_columns])
    writer.writerows(
        [*cells, label, *probabilities]
        for cells, label, probabilities in zip(table.rows, labels, proba.tolist(), strict=True)
    )
    return out.getvalue()


@bp.post("/predict")
def predict():
    # The request and the app once, not through their proxies at each use.
    req, app = request._get_current_object(), current_app._get_current_object()
    model = app.extensions[MODEL]
    max_rows, limit = app.config["MAX_ROWS"], app.config["MAX_CONTENT_LENGTH"]
    mimetype = req.mimetype
    if mimetype == "application/json":
        rows = rows_from_json(parse_json(_body_text(req, limit), max_rows))
        proba = model.predict_rows(rows)
        labels = labels_of(proba)
        telemetry.predicted(labels)
        # PredictResponse's shape, written without validating again what the model just gave:
        # pydantic's check and dump were half the answer's cost. Every answer is checked against
        # the OpenAPI document, made from PredictResponse, in tests/test_openapi.py.
        body = {"predictions": _predictions(labels, proba), "model_version": model.version}
        return app.response_class(orjson.dumps(body), 200, content_type="application/json")

    if mimetype == "text/csv":
        table = table_from_csv(_body_text(req, limit), max_rows)
        proba = model.predict_proba(table.numbers)
        labels = labels_of(proba)
        telemetry.predicted(labels)
        return Response(
            _scored_csv(table, labels, proba),
            mimetype="text/csv",
            headers={"X-Model-Version": model.version},
        )

    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {mimetype or '(none)'} is not supported; send application/json or text/csv.",
    )


@bp.get("/model")
def model_card():
    return json_response(current_app.extensions[CARD])


@bp.get("/openapi.json")
def openapi():
    # Built once, when the blueprint was registered.
    return current_app.extensions["openapi"]
