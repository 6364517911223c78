"""The pages: a form for one case with prefilled examples and the prediction; the model card."""

import numpy as np
from flask import Blueprint, abort, render_template, request

from mlservice import telemetry
from mlservice.cards import figures, held_out
from mlservice.contract import CONTRACT, plain, show
from mlservice.model import Model, current_model, labels_of, serving_note
from mlservice.validation import row_from_form

bp = Blueprint("web", __name__)


@bp.app_context_processor
def _contract() -> dict:
    # Every page (the answers example's too) shows the contract's title and disclaimer.
    return {"contract": CONTRACT}


bp.add_app_template_filter(show, "show")
bp.add_app_template_filter(plain, "plain")


@bp.route("/", methods=["GET", "POST"])
def index():
    model = current_model()
    card = model.card
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    result = None
    if request.method == "POST":
        values = {name: request.form.get(name, "").strip() for name in CONTRACT.feature_names}
        row, errors = row_from_form(request.form)
        if not errors:
            result = _result(model, row[0])
    elif example := request.args.get("example"):
        if example not in card["examples"]:
            known = " or ".join(card["examples"]) or "none"
            abort(404, f"There is no {example!r} example; try {known}.")
        # Exactly as the card has them: %g would round 50881.67 to 50881.7, another case.
        values = {name: plain(value) for name, value in card["examples"][example].items()}
    page = render_template("index.html", card=card, values=values, errors=errors, result=result)
    return page, 400 if errors else 200


@bp.get("/model")
def model_card():
    model = current_model()
    card, serving = model.card, serving_note(model.card.get("serving"))
    return render_template(
        "model.html",
        card=card,
        held_out=held_out(card),
        figures=figures(card),
        model=model,
        serving=serving,
    )


def _result(model: Model, row: np.ndarray) -> dict:
    proba = model.predict_proba(row.reshape(1, -1))
    [label] = labels_of(proba)
    telemetry.predicted([label])
    outside = [
        feature["label"]
        for feature, value in zip(model.card["features"], row, strict=True)
        if not feature["training_min"] <= value <= feature["training_max"]
    ]
    return {
        "label": label,
        "probability": float(proba.max()),
        "probabilities": dict(zip(CONTRACT.labels, proba[0].tolist(), strict=True)),
        "outside_training": outside,
    }
