"""Reference apps for `make bench`, served with the same gunicorn settings as the service.

Never deployed. `ceiling` is what Flask and gunicorn cost with no work at all; `baseline` does what
the original app did per request (a pickled scaler and random forest, a DataFrame built per call)
so the table shows what the rebuild gained; `peer` is what a user might pick instead, FastAPI and
uvicorn (served by uvicorn, not gunicorn: scripts/bench.py starts it).
"""

import os
import pickle
from pathlib import Path

import pandas as pd
from flask import Flask, request

from mlservice.contract import CONTRACT

FEATURE_NAMES, LABELS = CONTRACT.feature_names, CONTRACT.labels

ceiling = Flask("ceiling")


def ready():
    # What the bench's server launcher (scripts/live_server.py) waits for.
    return {"status": "ready"}


ceiling.get("/readyz")(ready)


@ceiling.post("/api/v1/predict")
def constant():
    request.get_data()
    return {"predictions": [{"label": LABELS[0]}], "model_version": "constant"}


def _baseline() -> Flask:
    # The pickles are written by scripts/bench.py into a temporary folder for this run only.
    folder = Path(os.environ["BASELINE_DIR"])
    scaler = pickle.loads((folder / "scaler.pkl").read_bytes())  # noqa: S301 (our own temp file)
    forest = pickle.loads((folder / "forest.pkl").read_bytes())  # noqa: S301 (our own temp file)
    app = Flask("baseline")
    app.get("/readyz")(ready)

    @app.post("/api/v1/predict")
    def predict():
        row = pd.DataFrame([request.get_json()], columns=list(FEATURE_NAMES))
        code = int(forest.predict(scaler.transform(row))[0])
        return {"predictions": [{"label": LABELS[code]}]}

    return app


baseline = _baseline() if "BASELINE_DIR" in os.environ else None


def _peer():
    """The served model behind FastAPI + uvicorn, as FastAPI's tutorial writes an endpoint: a
    pydantic model of the body and scikit-learn's predict_proba per request."""
    import skops.io
    from fastapi import FastAPI
    from pydantic import Field, create_model

    from mlservice.model import TRUSTED_TYPES

    pipeline = skops.io.load(os.environ["BENCH_PEER_MODEL"], trusted=list(TRUSTED_TYPES))
    # Python names f0, f1, ... with the features' names as aliases, as the service does.
    fields = [f"f{index}" for index in range(len(FEATURE_NAMES))]
    features_model = create_model(
        "Features",
        **{
            field: (float, Field(alias=name))
            for field, name in zip(fields, FEATURE_NAMES, strict=True)
        },
    )
    app = FastAPI()
    app.get("/readyz")(ready)

    @app.post("/api/v1/predict")
    def predict(features: features_model):
        row = [[getattr(features, field) for field in fields]]
        proba = pipeline.predict_proba(row)[0]
        return {
            "label": LABELS[int(proba.argmax())],
            "probabilities": dict(zip(LABELS, proba.tolist(), strict=True)),
        }

    return app


peer = _peer() if "BENCH_PEER_MODEL" in os.environ else None
