"""The example model's own numbers: the Wisconsin breast-cancer classifier this template ships.

These tests know the example: its data, features, labels and scores. Replacing the example with
your own model (README, "Bring your own model") means deleting this folder or rewriting it for
yours; the machinery tests in tests/ hold for any model without a change.
"""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from mlservice import model
from mlservice.contract import CONTRACT

ROOT = Path(__file__).resolve().parents[2]
# scikit-learn's names of the six measurements the original app used, in the contract's order.
SOURCE_COLUMNS = {
    "radius_mean": "mean radius",
    "texture_mean": "mean texture",
    "smoothness_mean": "mean smoothness",
    "texture_se": "texture error",
    "smoothness_se": "smoothness error",
    "symmetry_se": "symmetry error",
}


@pytest.fixture(scope="module")
def bunch():
    return load_breast_cancer(as_frame=True)


def test_the_contract_is_the_examples():
    assert CONTRACT.feature_names == list(SOURCE_COLUMNS)
    assert CONTRACT.labels == ["malignant", "benign"]
    assert CONTRACT.positive_label == "benign"
    assert CONTRACT.roc_auc_floor == 0.95
    assert CONTRACT.training.data == "breast_cancer.csv"


def test_the_training_csv_is_scikit_learns_bundled_data(bunch):
    # data/training/breast_cancer.csv was exported from load_breast_cancer: the six columns
    # under their public names, and the diagnosis as the label (scikit-learn codes 0 = malignant).
    header, *rows = csv.reader(io.StringIO(CONTRACT.training_data.read_text()))
    assert header == [*SOURCE_COLUMNS, "diagnosis"]
    expected = bunch.data[list(SOURCE_COLUMNS.values())].to_numpy()
    assert np.array_equal(np.array([[float(c) for c in r[:-1]] for r in rows]), expected)
    assert [r[-1] for r in rows] == [bunch.target_names[code] for code in bunch.target]


def test_shipped_model_scores_what_its_card_says(model_path, card, bunch):
    # Scored from scratch: scikit-learn's own data, split and metric, not the training code's.
    X = bunch.data[list(SOURCE_COLUMNS.values())].to_numpy()
    benign_target = (bunch.target == 1).to_numpy().astype(int)  # contract code 1 = benign
    _, X_test, _, y_test = train_test_split(
        X,
        benign_target,
        test_size=card["training"]["test_size"],
        stratify=benign_target,
        random_state=card["training"]["seed"],
    )
    assert len(y_test) == card["training"]["rows_test"] == 143
    assert np.bincount(y_test).tolist() == [53, 90]  # malignant, benign (docs/model.md)
    pipeline = skops.io.load(model_path, trusted=[])
    benign = pipeline.predict_proba(X_test)[:, 1]
    held_out = card["metrics"]["held_out"]
    assert roc_auc_score(y_test, benign) == pytest.approx(held_out["roc_auc"], abs=1e-4)
    assert roc_auc_score(y_test, benign) >= 0.95
    assert accuracy_score(y_test, benign >= 0.5) == pytest.approx(held_out["accuracy"], abs=1e-4)
    served = model.load(model_path).predict_proba(X_test)[:, 1]
    assert np.allclose(served, benign, atol=1e-12)


def test_logistic_regression_is_chosen(card):
    assert card["selection"]["chosen"] == "logistic_regression"
    assert card["estimator"] == "StandardScaler + LogisticRegression"


def test_shipped_model_is_served_from_its_arrays_without_scikit_learn(model_path):
    loaded = model.load(model_path)
    assert loaded.pipeline is None
    assert loaded.affine is not None
    code = (
        "import sys; from mlservice import model; "
        f"loaded = model.load({str(model_path)!r}); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skops', 'scipy'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_examples_are_one_malignant_and_one_benign_case(client, card):
    assert list(card["examples"]) == ["malignant", "benign"]
    for label, row in card["examples"].items():
        answer = client.post("/api/v1/predict", json=row).get_json()
        assert answer["predictions"][0]["label"] == label


def test_the_page_speaks_of_breast_masses(client):
    page = client.get("/").get_data(as_text=True)
    assert "<title>Breast-cancer classifier · mlservice</title>" in page
    assert "Radius (mean)" in page
    assert "Not for clinical decisions." in page
    card = json.loads(client.get("/api/v1/model").get_data(as_text=True))
    assert card["name"] == "breast-cancer-classifier"
