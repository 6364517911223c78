"""The served model: loading a skops artifact safely, and predicting with it."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn
import skops.io
from flask import Flask, current_app
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlservice.features import FEATURE_NAMES


class ModelError(Exception):
    """The model cannot be trained to standard or loaded safely; the message is one sentence."""


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _affine_form(pipeline: Pipeline) -> tuple[np.ndarray, float] | None:
    """Weights and bias of StandardScaler + binary LogisticRegression folded into one map.

    Such a pipeline is sigmoid(w . (x - mean) / scale + b) = sigmoid(x . w' + b'), so a row costs
    one dot product instead of scikit-learn's per-call input checks. Other pipelines get None.
    """
    steps = [step for _, step in pipeline.steps]
    if len(steps) != 2 or type(steps[0]) is not StandardScaler:
        return None
    scaler, classifier = steps
    if type(classifier) is not LogisticRegression or classifier.coef_.shape[0] != 1:
        return None
    mean = scaler.mean_ if scaler.with_mean else 0.0
    scale = scaler.scale_ if scaler.with_std else 1.0
    weights = classifier.coef_[0] / scale
    return weights, float(classifier.intercept_[0] - np.sum(weights * mean))


@dataclass(frozen=True)
class Model:
    pipeline: Pipeline
    card: dict
    affine: tuple[np.ndarray, float] | None = None

    @property
    def version(self) -> str:
        return self.card["version"]

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities per row, columns in LABELS order; rows are already validated."""
        if self.affine is not None:
            weights, bias = self.affine
            benign = expit(rows @ weights + bias)
            return np.column_stack([1 - benign, benign])
        # Inputs are checked finite before they get here, so skip scikit-learn's re-check.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.pipeline.predict_proba(rows)


def load(model_path: str | Path) -> Model:
    """Load a model and its card, refusing anything that does not check out."""
    path = Path(model_path)
    card_path = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError(f"Model file {path} not found; train one with `make model`.")
    try:
        card = json.loads(card_path.read_text())
        expected = card["artifact"]["sha256"]
        trained_with = card["scikit_learn_version"]
    except FileNotFoundError:
        raise ModelError(f"Model card {card_path} not found next to {path}.") from None
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"Model card {card_path} is not a valid model card.") from None
    if [feature.get("name") for feature in card.get("features", [])] != list(FEATURE_NAMES):
        raise ModelError(f"Model card {card_path} lists other features than this service serves.")
    if file_checksum(path) != expected:
        raise ModelError(f"Model file {path} does not match the checksum in {card_path.name}.")
    if trained_with != sklearn.__version__:
        raise ModelError(
            f"Model {path} was trained with scikit-learn {trained_with} but "
            f"{sklearn.__version__} is installed; retrain it with `make model`."
        )
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
        if untrusted:
            raise ModelError(
                f"Model file {path} contains types skops does not trust: {', '.join(untrusted)}."
            )
        pipeline = skops.io.load(path, trusted=[])
    except ModelError:
        raise
    except Exception as error:  # skops raises many kinds for a damaged archive
        raise ModelError(f"Model file {path} is not a readable skops file ({error}).") from None
    return Model(pipeline=pipeline, card=card, affine=_affine_form(pipeline))


def init_app(app: Flask) -> None:
    """Load the model once, at start-up; gunicorn's preload shares it with every worker."""
    app.extensions["mlservice.model"] = load(app.config["MODEL_PATH"])


def current_model() -> Model:
    return current_app.extensions["mlservice.model"]
