"""The pages: a form for one case with prefilled examples and the prediction; the model card."""

import numpy as np
from flask import Blueprint, abort, render_template, request

from mlservice import telemetry
from mlservice.cards import figures, held_out
from mlservice.features import FEATURE_NAMES, LABELS
from mlservice.model import Model, current_model, labels_of
from mlservice.validation import MAX_VALUE, MIN_VALUE, row_from_form

bp = Blueprint("web", __name__)


@bp.route("/", methods=["GET", "POST"])
def index():
    model = current_model()
    card = model.card
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    result = None
    if request.method == "POST":
        values = {name: request.form.get(name, "").strip() for name in FEATURE_NAMES}
        row, errors = row_from_form(request.form)
        if not errors:
            result = _result(model, row[0])
    elif example := request.args.get("example"):
        if example not in card["examples"]:
            abort(404, f"There is no {example!r} example; try benign or malignant.")
        values = {name: f"{value:g}" for name, value in card["examples"][example].items()}
    page = render_template(
        "index.html",
        card=card,
        values=values,
        errors=errors,
        result=result,
        labels=LABELS,
        value_range=(MIN_VALUE, MAX_VALUE),
    )
    return page, 400 if errors else 200


@bp.get("/model")
def model_card():
    card = current_model().card
    return render_template("model.html", card=card, held_out=held_out(card), figures=figures(card))


def _result(model: Model, row: np.ndarray) -> dict:
    proba = model.predict_proba(row.reshape(1, -1))
    telemetry.predicted(proba)
    outside = [
        feature["label"]
        for feature, value in zip(model.card["features"], row, strict=True)
        if not feature["training_min"] <= value <= feature["training_max"]
    ]
    return {
        "label": labels_of(proba)[0],
        "probability": float(proba.max()),
        "outside_training": outside,
    }
