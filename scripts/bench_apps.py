"""Reference apps for `make bench`, served with the same gunicorn settings as the service.

Never deployed. `ceiling` is what Flask and gunicorn cost with no work at all; `baseline` does what
the original app did per request (a pickled scaler and random forest, a DataFrame built per call)
so the table shows what the rebuild gained.
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
