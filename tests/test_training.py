"""Training the contract's model from its training CSV: the split, the metrics and the card, and
a clear one-line refusal for data, classes or estimators the service cannot use.

Everything is read from the contract and its data file, so these tests hold for any model.
"""

import csv
import hashlib
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from mlservice import model, training
from mlservice.contract import CONTRACT, PATH, label_key, probability_column
from tests.values import FEATURES, LABELS, text

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = {"created_at", "git_commit", "version", "artifact"}
TARGET = CONTRACT.training.target


@pytest.fixture(scope="module")
def trained():
    return training.train()


@pytest.fixture(scope="module")
def data():
    return training.load_training_data()


@pytest.fixture(scope="module")
def split(data):
    X, y = data
    return train_test_split(
        X, y, test_size=training.TEST_SIZE, stratify=y, random_state=training.SEED
    )


def table() -> tuple[list[str], list[list[str]]]:
    """The contract's training CSV as header and rows of cells."""
    header, *rows = csv.reader(io.StringIO(CONTRACT.training_data.read_text(encoding="utf-8-sig")))
    return header, rows


def write(tmp_path, header, rows) -> object:
    path = tmp_path / "data.csv"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    path.write_text(out.getvalue())
    return path


def test_same_seed_same_data_same_card(trained):
    _, first, _ = trained
    _, second, _ = training.train()
    strip = lambda card: {k: v for k, v in card.items() if k not in VOLATILE}  # noqa: E731
    assert strip(first) == strip(second)


def test_another_seed_changes_the_split(trained):
    _, card, _ = trained
    _, other, _ = training.train(seed=7)
    assert other["metrics"]["held_out"] != card["metrics"]["held_out"]


def test_the_shipped_model_meets_the_contracts_floor(card):
    assert card["metrics"]["held_out"]["roc_auc"] >= CONTRACT.roc_auc_floor
    assert card["roc_auc_floor"] == CONTRACT.roc_auc_floor
    assert card["metrics"]["cross_validation"]["folds"] == training.CV_FOLDS


def test_the_data_is_read_in_the_contracts_order_with_labels_coded_by_position(data):
    X, y = data
    header, rows = table()
    assert list(X.columns) == CONTRACT.feature_names
    assert len(X) == len(y) == len(rows)
    first = rows[0]
    assert [text(value) for value in X.iloc[0]] == [
        text(float(first[header.index(name)])) for name in CONTRACT.feature_names
    ]
    assert [LABELS[code] for code in y] == [cells[header.index(TARGET)].strip() for cells in rows]


def test_report_counts_the_true_labels(trained, split):
    # y_true first: supports are the held-out class counts, whatever the model predicted.
    _, card, _ = trained
    _, _, _, y_test = split
    per_class = card["metrics"]["held_out"]["per_class"]
    assert list(per_class) == list(LABELS)
    assert [per_class[label]["support"] for label in LABELS] == list(
        np.bincount(y_test, minlength=len(LABELS))
    )


def test_scaler_is_fitted_on_the_training_split_only(trained, data, split):
    pipeline, card, _ = trained
    X, _ = data
    X_train, _, _, _ = split
    if card["selection"]["chosen"] in training.UNSCALED:
        assert "scale" not in pipeline.named_steps
        return
    assert np.allclose(pipeline.named_steps["scale"].mean_, X_train.mean().to_numpy())
    assert not np.allclose(pipeline.named_steps["scale"].mean_, X.mean().to_numpy())
    assert card["training"]["rows_train"] == len(X_train)


def test_card_describes_the_contract(trained, split):
    _, card, _ = trained
    X_train, _, _, _ = split
    assert [f["name"] for f in card["features"]] == CONTRACT.feature_names
    for described, feature in zip(card["features"], FEATURES, strict=True):
        assert (described["label"], described["unit"], described["description"]) == (
            feature.label,
            feature.unit,
            feature.description,
        )
        assert (described["type"], described["min"], described["max"]) == (
            feature.type,
            feature.min,
            feature.max,
        )
        seen = X_train[feature.name]
        assert (described["training_min"], described["training_max"]) == (seen.min(), seen.max())
    assert card["labels"] == list(LABELS)
    assert card["positive_label"] == CONTRACT.positive_label
    assert card["csv_columns"] == {label: probability_column(label) for label in LABELS}
    assert (card["name"], card["description"], card["intended_use"]) == (
        CONTRACT.name,
        CONTRACT.description,
        CONTRACT.disclaimer,
    )
    assert card["training"]["data"] == CONTRACT.training.source
    assert card["training"]["file"] == CONTRACT.training.data
    assert card["training"]["target"] == TARGET
    assert card["selection"]["chosen"] in training.CANDIDATES
    assert card["selection"]["why"]


def test_the_data_checksum_is_the_training_files(trained):
    _, card, _ = trained
    digest = hashlib.sha256(CONTRACT.training_data.read_bytes()).hexdigest()
    assert card["training"]["data_sha256"] == digest


def test_the_cross_validation_scores_by_the_number_of_classes(trained):
    _, card, _ = trained
    scoring = card["metrics"]["cross_validation"]["scoring"]
    assert scoring == ("roc_auc" if len(LABELS) == 2 else "roc_auc_ovr")


@pytest.mark.parametrize(
    ("forest_score", "chosen", "why"),
    [
        # The cheaper one, 0.005 behind the best.
        (
            0.975,
            "logistic_regression",
            "Logistic regression (0.9700) scores within 0.01 of random forest (0.9750) and "
            "costs less to serve.",
        ),
        # 0.015 behind: the better one.
        (0.985, "random_forest", "Random forest has the best cross-validated ROC-AUC here."),
    ],
)
def test_cheapest_candidate_within_the_tolerance_is_chosen(monkeypatch, forest_score, chosen, why):
    scores = {"LogisticRegression": 0.97, "RandomForestClassifier": forest_score}

    def cross_val_score(pipeline, *args, **kwargs):
        return np.full(5, scores[type(pipeline[-1]).__name__])

    monkeypatch.setattr(training, "cross_val_score", cross_val_score)
    monkeypatch.setattr(training, "CONTRACT", CONTRACT.model_copy(update={"roc_auc_floor": 0}))
    _, card, _ = training.train()
    assert card["selection"]["chosen"] == chosen
    assert card["selection"]["why"] == why
    assert card["selection"]["cv_roc_auc"] == {
        "logistic_regression": 0.97,
        "random_forest": forest_score,
    }


def test_examples_are_predicted_as_their_class_and_valid_inputs(trained):
    pipeline, card, _ = trained
    assert card["examples"], "no class has a held-out row predicted right"
    for label, row in card["examples"].items():
        assert list(row) == CONTRACT.feature_names
        values = np.array([[row[name] for name in CONTRACT.feature_names]])
        assert LABELS[int(pipeline.predict(values)[0])] == label
        for feature in FEATURES:
            assert feature.min <= row[feature.name] <= feature.max
            assert isinstance(row[feature.name], int if feature.integer else float)


def test_training_below_the_floor_fails(monkeypatch):
    monkeypatch.setattr(training, "cross_val_score", lambda *args, **kwargs: np.ones(5))
    monkeypatch.setattr(training, "CONTRACT", CONTRACT.model_copy(update={"roc_auc_floor": 1.01}))
    with pytest.raises(
        model.ModelError,
        match=r"^Held-out ROC-AUC [\d.]+ is below the floor of 1\.01 \(roc_auc_floor in model\.toml\)\.$",
    ):
        training.train()


def test_git_commit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("GIT_COMMIT", "abc123")
    assert training._git_commit() == "abc123"


def test_confusion_matrix_rows_are_the_true_classes(trained):
    _, card, _ = trained
    held_out = card["metrics"]["held_out"]
    matrix = held_out["confusion_matrix"]
    assert [sum(row) for row in matrix] == [held_out["per_class"][lab]["support"] for lab in LABELS]
    correct = sum(matrix[i][i] for i in range(len(LABELS)))
    assert correct / card["training"]["rows_test"] == pytest.approx(held_out["accuracy"], abs=1e-4)


def test_curves_are_drawn_per_class_thinned_and_span_the_whole_range(trained):
    _, card, _ = trained
    held_out = card["metrics"]["held_out"]
    curve_sets = held_out["curves"]
    drawn = [CONTRACT.positive_label] if len(LABELS) == 2 else list(LABELS)
    assert [curves["positive_label"] for curves in curve_sets] == drawn
    for curves in curve_sets:
        roc = curves["roc"]["points"]
        assert roc[0] == [0.0, 0.0]
        assert roc[-1] == [1.0, 1.0]
        pr = curves["precision_recall"]["points"]
        assert pr[0][0] == 0.0
        assert pr[-1][0] == 1.0
        assert [x for x, _ in pr] == sorted(x for x, _ in pr)
        for points in (roc, pr):
            assert 2 <= len(points) <= training.CURVE_POINTS
            assert all(0 <= value <= 1 for point in points for value in point)
        assert 0 < curves["precision_recall"]["average_precision"] <= 1
    # The model's ROC-AUC: the positive label's, or the mean of the classes' one-vs-rest ones.
    aucs = [curves["roc"]["auc"] for curves in curve_sets]
    assert held_out["roc_auc"] == pytest.approx(np.mean(aucs), abs=2e-4)


def test_thin_keeps_the_ends_and_spaces_the_rest():
    x = np.arange(10) / 9
    assert training._thin(x, x, limit=4) == [
        [0.0, 0.0],
        [0.3333, 0.3333],
        [0.6667, 0.6667],
        [1.0, 1.0],
    ]
    assert len(training._thin(x[:3], x[:3], limit=4)) == 3


# --- Data the service cannot learn from: one line each -------------------------------------


def test_missing_data_file_says_where_it_belongs(tmp_path):
    with pytest.raises(model.ModelError) as raised:
        training.train(data=tmp_path / "absent.csv")
    assert str(raised.value) == (
        f"Training data {tmp_path / 'absent.csv'} not found; put your CSV there, or name the "
        "file in data/training/ as training.data in model.toml."
    )


@pytest.mark.parametrize("column", [FEATURES[-1].name, TARGET])
def test_a_missing_column_is_named(tmp_path, column):
    header, rows = table()
    index = header.index(column)
    path = write(
        tmp_path, header[:index] + header[index + 1 :], [r[:index] + r[index + 1 :] for r in rows]
    )
    with pytest.raises(model.ModelError) as raised:
        training.train(data=path)
    assert str(raised.value) == (
        f"Training data {path} has no column(s) {column}, which model.toml names."
    )


def test_a_bad_value_is_named_by_line_and_column_with_the_services_rule(tmp_path):
    header, rows = table()
    feature = FEATURES[-1]
    rows[1][header.index(feature.name)] = "abc"
    rows[3][header.index(feature.name)] = text(feature.max * 2 + 1)
    path = write(tmp_path, header, rows)
    with pytest.raises(model.ModelError) as raised:
        training.train(data=path)
    assert str(raised.value) == (
        f"Training data {path}: line 3 (data row 2), column {feature.name}: 'abc' is not a "
        "number (and 1 more)."
    )


def test_a_value_outside_the_contracts_range_is_refused(tmp_path):
    header, rows = table()
    feature = FEATURES[0]
    rows[0][header.index(feature.name)] = text(feature.max + 1)
    path = write(tmp_path, header, rows)
    with pytest.raises(model.ModelError, match=rf"column {feature.name}: .* is above the maximum"):
        training.train(data=path)


def test_an_unknown_label_is_named(tmp_path):
    header, rows = table()
    rows[4][header.index(TARGET)] = "zz_unknown"
    rows[6][header.index(TARGET)] = "zz_unknown"
    path = write(tmp_path, header, rows)
    with pytest.raises(model.ModelError) as raised:
        training.train(data=path)
    assert str(raised.value) == (
        f"Training data {path}, data row 5: {TARGET} is 'zz_unknown', not one of the labels in "
        f"model.toml ({', '.join(LABELS)}) (and 1 more rows)."
    )


def test_extra_columns_and_blank_lines_are_no_rows_and_no_features(tmp_path):
    header, rows = table()
    path = write(tmp_path, ["zz_id", *header], [[str(n), *cells] for n, cells in enumerate(rows)])
    path.write_text(path.read_text() + "\n\n")
    X, y = training.load_training_data(path)
    X_ref, y_ref = training.load_training_data()
    assert X.equals(X_ref)
    assert np.array_equal(y, y_ref)


def rows_keeping(rows, header, label: str, keep: int) -> list:
    column = header.index(TARGET)
    kept = [cells for cells in rows if cells[column] == label][:keep]
    return [cells for cells in rows if cells[column] != label] + kept


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (0, "Training data {path} has no rows of the class(es) {label!r}; every label in model.toml needs rows."),
        (1, "Class {label!r} has 1 row in the training data; it needs rows in both the training and the held-out split: add rows of it."),
        (4, "Class {label!r} has 4 row(s) in the training data, 3 in the training split; 5-fold cross-validation needs at least 5 there: add rows of it."),
    ],
)  # fmt: skip
def test_a_class_with_too_few_rows_is_named(tmp_path, keep, message):
    header, rows = table()
    label = LABELS[-1]
    path = write(tmp_path, header, rows_keeping(rows, header, label, keep))
    with pytest.raises(model.ModelError) as raised:
        training.train(data=path)
    assert str(raised.value) == message.format(path=path, label=label)


def test_header_only_and_short_rows_are_refused(tmp_path):
    header, rows = table()
    path = write(tmp_path, header, [])
    with pytest.raises(model.ModelError, match=r"has no rows under its header\.$"):
        training.train(data=path)
    path = write(tmp_path, header, [rows[0], rows[1][:-1]])
    with pytest.raises(
        model.ModelError,
        match=rf"data row 2: {len(header) - 1} field\(s\) where the header has {len(header)}\.$",
    ):
        training.train(data=path)


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (
            LinearRegression(),
            "Candidate zz (LinearRegression) is not a classifier; the service serves classifiers "
            "with predict_proba, such as LogisticRegression or RandomForestClassifier.",
        ),
        (
            SVC(),
            "Candidate zz (SVC) has no predict_proba; the service answers with class "
            "probabilities, so choose a classifier that gives them (SVC: probability=True).",
        ),
    ],
)
def test_an_estimator_without_class_probabilities_is_refused(monkeypatch, estimator, message):
    monkeypatch.setattr(training, "CANDIDATES", {"zz": lambda seed: estimator})
    with pytest.raises(model.ModelError) as raised:
        training.train()
    assert str(raised.value) == message


def test_figure_keys_name_every_drawn_class(trained):
    _, card, _ = trained
    keys = [label_key(curves["positive_label"]) for curves in card["metrics"]["held_out"]["curves"]]
    assert all(re.fullmatch(r"\w+", key) for key in keys)
    assert len(set(keys)) == len(keys)


def test_make_model_retrains_when_the_contract_or_the_data_changes():
    # make's own view of the rule: every file in data/training/ and the contract are
    # prerequisites of the model, so a change to any of them makes `make model` train again.
    database = subprocess.run(
        ["make", "--no-print-directory", "-pqn", "models/model.skops"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    [rule] = [line for line in database.splitlines() if line.startswith("models/model.skops:")]
    prerequisites = rule.split(":", 1)[1].split()
    data = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "data" / "training").iterdir())
    assert data
    contract = str(PATH.relative_to(ROOT))
    assert {contract, *data} <= set(prerequisites)
