import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mlservice import create_app, model, training
from mlservice.features import FEATURE_NAMES, FEATURES, LABELS

ROOT = Path(__file__).resolve().parent.parent
VOLATILE = {"created_at", "git_commit", "version", "artifact"}


@pytest.fixture(scope="module")
def trained():
    return training.train()


@pytest.fixture
def artifact(tmp_path, model_path):
    """A private copy of the shipped artifact and card that a test may damage."""
    path = tmp_path / "model.skops"
    shutil.copy(model_path, path)
    shutil.copy(model_path.with_suffix(".json"), tmp_path / "model.json")
    return path


def edit_card(path, **changes):
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_same_seed_same_data_same_card(trained):
    _, first = trained
    _, second = training.train()
    strip = lambda card: {k: v for k, v in card.items() if k not in VOLATILE}  # noqa: E731
    assert strip(first) == strip(second)


def test_another_seed_changes_the_split(trained):
    _, card = trained
    _, other = training.train(seed=7)
    assert other["metrics"]["held_out"] != card["metrics"]["held_out"]


def test_shipped_model_meets_the_floor(card):
    held_out = card["metrics"]["held_out"]
    assert held_out["roc_auc"] >= training.ROC_AUC_FLOOR
    assert card["metrics"]["cross_validation"]["folds"] == 5
    assert 0.9 <= card["metrics"]["cross_validation"]["roc_auc_mean"] <= 1


def test_shipped_model_scores_what_its_card_says(model_path, card):
    # Scored from scratch: scikit-learn's data, split and metric, not the training code's.
    bunch = load_breast_cancer(as_frame=True)
    X = bunch.data[[feature.source for feature in FEATURES]].to_numpy()
    _, X_test, _, y_test = train_test_split(
        X,
        bunch.target.to_numpy(),
        test_size=card["training"]["test_size"],
        stratify=bunch.target,
        random_state=card["training"]["seed"],
    )
    assert len(y_test) == card["training"]["rows_test"]
    pipeline = skops.io.load(model_path, trusted=[])
    benign = pipeline.predict_proba(X_test)[:, list(pipeline.classes_).index(1)]
    held_out = card["metrics"]["held_out"]
    assert roc_auc_score(y_test, benign) == pytest.approx(held_out["roc_auc"], abs=1e-4)
    assert roc_auc_score(y_test, benign) >= 0.95
    assert accuracy_score(y_test, benign >= 0.5) == pytest.approx(held_out["accuracy"], abs=1e-4)
    served = model.load(model_path).predict_proba(X_test)[:, 1]
    assert np.allclose(served, benign, atol=1e-12)


def test_report_counts_the_true_labels(trained):
    # y_true first: supports are the held-out class counts, whatever the model predicted.
    _, card = trained
    X, y = training.load_training_data()
    _, _, _, y_test = train_test_split(
        X, y, test_size=training.TEST_SIZE, stratify=y, random_state=training.SEED
    )
    per_class = card["metrics"]["held_out"]["per_class"]
    assert [per_class[label]["support"] for label in LABELS] == list(np.bincount(y_test))


def test_scaler_is_fitted_on_the_training_split_only(trained):
    pipeline, card = trained
    X, y = training.load_training_data()
    X_train, _, _, _ = train_test_split(
        X, y, test_size=training.TEST_SIZE, stratify=y, random_state=training.SEED
    )
    assert np.allclose(pipeline.named_steps["scale"].mean_, X_train.mean().to_numpy())
    assert not np.allclose(pipeline.named_steps["scale"].mean_, X.mean().to_numpy())
    assert card["training"]["rows_train"] == len(X_train)


def test_card_describes_features_and_choice(trained):
    _, card = trained
    assert [f["name"] for f in card["features"]] == list(FEATURE_NAMES)
    assert all(f["unit"] and f["training_min"] < f["training_max"] for f in card["features"])
    assert card["selection"]["chosen"] == "logistic_regression"
    assert card["selection"]["why"]


def test_data_checksum_identifies_the_data():
    X, y = training.load_training_data()
    checksum = training.data_checksum(X, y)
    assert re.fullmatch(r"[0-9a-f]{64}", checksum)
    assert training.data_checksum(X.copy(), y.copy()) == checksum
    changed = X.copy()
    changed.iloc[3, 2] += 0.001
    flipped = y.copy()
    flipped[3] = 1 - flipped[3]
    assert training.data_checksum(changed, y) != checksum
    assert training.data_checksum(X, flipped) != checksum
    assert training.data_checksum(X.iloc[::-1], y[::-1]) != checksum  # row order counts too


@pytest.mark.parametrize(
    ("forest_score", "chosen"),
    [
        (0.975, "logistic_regression"),  # the cheaper one, 0.005 behind the best
        (0.985, "random_forest"),  # 0.015 behind: the better one
    ],
)
def test_cheapest_candidate_within_the_tolerance_is_chosen(monkeypatch, forest_score, chosen):
    scores = {LogisticRegression: 0.97, RandomForestClassifier: forest_score}

    def cross_val_score(pipeline, *args, **kwargs):
        return np.full(5, scores[type(pipeline[-1])])

    monkeypatch.setattr(training, "cross_val_score", cross_val_score)
    _, card = training.train()
    assert card["selection"]["chosen"] == chosen
    assert card["selection"]["cv_roc_auc"] == {
        "logistic_regression": 0.97,
        "random_forest": forest_score,
    }


def test_examples_are_predicted_as_their_class(trained):
    pipeline, card = trained
    for label, row in card["examples"].items():
        values = np.array([[row[name] for name in FEATURE_NAMES]])
        assert LABELS[int(pipeline.predict(values)[0])] == label


def test_training_below_the_floor_fails(monkeypatch):
    monkeypatch.setattr(training, "ROC_AUC_FLOOR", 1.01)
    with pytest.raises(model.ModelError, match="below the floor"):
        training.train()


def test_git_commit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("GIT_COMMIT", "abc123")
    assert training._git_commit() == "abc123"


def test_save_and_load_round_trip(trained, tmp_path):
    pipeline, card = trained
    saved = training.save(pipeline, card, tmp_path / "m.skops")
    assert zipfile.is_zipfile(tmp_path / "m.skops")  # skops format, not a pickle
    assert (
        saved["artifact"]["sha256"]
        == hashlib.sha256((tmp_path / "m.skops").read_bytes()).hexdigest()
    )
    loaded = model.load(tmp_path / "m.skops")
    assert loaded.version == saved["artifact"]["sha256"][:12]
    rows = np.array([[r[n] for n in FEATURE_NAMES] for r in card["examples"].values()])
    assert np.allclose(loaded.predict_proba(rows), pipeline.predict_proba(rows))


def test_missing_model_file(tmp_path):
    with pytest.raises(model.ModelError, match=r"not found; train one with `make model`"):
        model.load(tmp_path / "absent.skops")


def test_missing_card(artifact):
    artifact.with_suffix(".json").unlink()
    with pytest.raises(model.ModelError, match=r"Model card .* not found"):
        model.load(artifact)


@pytest.mark.parametrize("text", ["not json", "[]", '{"artifact": {}}'])
def test_invalid_card(artifact, text):
    artifact.with_suffix(".json").write_text(text)
    with pytest.raises(model.ModelError, match="is not a valid model card"):
        model.load(artifact)


def test_card_for_other_features(artifact):
    edit_card(artifact, features=[{"name": "radius_mean"}])
    with pytest.raises(model.ModelError, match="other features"):
        model.load(artifact)


def test_checksum_mismatch(artifact):
    with artifact.open("ab") as file:
        file.write(b"tampered")
    with pytest.raises(model.ModelError, match="does not match the checksum"):
        model.load(artifact)


def test_scikit_learn_version_mismatch(artifact):
    edit_card(artifact, scikit_learn_version="0.19.1")
    with pytest.raises(
        model.ModelError, match=r"trained with scikit-learn 0\.19\.1 but .* installed"
    ):
        model.load(artifact)


def reciprocal(values):
    return 1 / values


def test_untrusted_types_are_refused(trained, tmp_path):
    pipeline, card = trained
    unsafe = Pipeline([("custom", FunctionTransformer(reciprocal)), *pipeline.steps])
    path = tmp_path / "unsafe.skops"
    training.save(unsafe, card, path)
    assert skops.io.get_untrusted_types(file=path)
    with pytest.raises(model.ModelError, match=r"types skops does not trust: .*reciprocal"):
        model.load(path)


def test_unreadable_archive(artifact):
    artifact.write_bytes(b"this is not a zip archive")
    edit_card(artifact, artifact={"file": artifact.name, "sha256": model.file_checksum(artifact)})
    with pytest.raises(model.ModelError, match="is not a readable skops file"):
        model.load(artifact)


def test_affine_form_matches_the_pipeline(trained):
    pipeline, card = trained
    fast = model.Model(pipeline, card, model._affine_form(pipeline))
    slow = model.Model(pipeline, card)
    X, _ = training.load_training_data()
    rng = np.random.default_rng(0)
    rows = np.vstack([X.to_numpy(), X.to_numpy() * rng.uniform(0, 10, X.shape)])
    assert fast.affine is not None
    assert slow.affine is None
    assert np.allclose(fast.predict_proba(rows), slow.predict_proba(rows), atol=1e-12)


def test_other_pipelines_use_scikit_learn(trained):
    pipeline, _ = trained
    forest = training.build_pipeline("random_forest", training.SEED)
    assert model._affine_form(forest) is None
    assert model._affine_form(Pipeline([("classify", pipeline[-1])])) is None


def test_confusion_matrix_rows_are_the_true_classes(trained):
    _, card = trained
    held_out = card["metrics"]["held_out"]
    matrix = held_out["confusion_matrix"]
    assert [sum(row) for row in matrix] == [held_out["per_class"][lab]["support"] for lab in LABELS]
    correct = sum(matrix[i][i] for i in range(len(LABELS)))
    assert correct / card["training"]["rows_test"] == pytest.approx(held_out["accuracy"], abs=1e-4)


def test_curves_are_thinned_and_span_the_whole_range(trained):
    _, card = trained
    curves = card["metrics"]["held_out"]["curves"]
    assert curves["positive_label"] == "benign"
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
    assert 0.5 < curves["precision_recall"]["average_precision"] <= 1


def test_thin_keeps_the_ends_and_spaces_the_rest():
    x = np.arange(10) / 9
    assert training._thin(x, x, limit=4) == [
        [0.0, 0.0],
        [0.3333, 0.3333],
        [0.6667, 0.6667],
        [1.0, 1.0],
    ]
    assert len(training._thin(x[:3], x[:3], limit=4)) == 3


def test_served_linear_model_is_read_without_scikit_learn(model_path):
    # The shipped model is served from its arrays: the start-up skips importing these libraries.
    code = (
        "import sys; from mlservice import model; "
        f"loaded = model.load({str(model_path)!r}); "
        "print(loaded.pipeline is None, loaded.affine is not None, "
        "sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skops', 'scipy'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["True", "True", "[]"]


def test_arrays_read_from_the_archive_match_skops(model_path):
    pipeline = skops.io.load(model_path, trusted=[])
    weights, bias = model._read_affine(model_path)
    reference_weights, reference_bias = model._affine_form(pipeline)
    assert np.array_equal(weights, reference_weights)
    assert bias == reference_bias
    X, _ = training.load_training_data()
    served = model.load(model_path).predict_proba(X.to_numpy())
    assert np.allclose(served, pipeline.predict_proba(X.to_numpy()), atol=1e-12)


def rewrite_schema(path, edit):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def scaler_attributes(schema):
    return schema["content"]["content"]["steps"]["content"][0]["content"][1]["content"]["content"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda schema: schema.update(protocol=3),  # a layout this reader does not know
        lambda schema: scaler_attributes(schema)["with_mean"].update(content="false"),
        lambda schema: scaler_attributes(schema)["mean_"].update(__module__="custom"),
        lambda schema: scaler_attributes(schema).pop("scale_"),
    ],
)
def test_anything_but_the_folded_pipeline_is_left_to_skops(artifact, edit):
    assert model._read_affine(artifact) is not None
    rewrite_schema(artifact, edit)
    assert model._read_affine(artifact) is None


def test_other_pipelines_are_loaded_by_skops(trained, tmp_path):
    _, card = trained
    X, y = training.load_training_data()
    rows = X.to_numpy()
    for pipeline, folded in (
        # Read by skops, then still folded into one dot product.
        (
            Pipeline(
                [("scale", StandardScaler(with_mean=False)), ("classify", LogisticRegression())]
            ),
            True,
        ),
        (Pipeline([("classify", LogisticRegression(max_iter=5000))]), False),
    ):
        pipeline.fit(rows, y)
        path = tmp_path / "other.skops"
        saved = training.save(pipeline, card, path)
        loaded = model.load(path)
        assert loaded.pipeline is not None
        assert (loaded.affine is not None) is folded
        assert loaded.version == saved["artifact"]["sha256"][:12]
        assert np.allclose(loaded.predict_proba(rows), pipeline.predict_proba(rows), atol=1e-12)


def test_labels_of_names_the_most_probable_class_of_each_row():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    # Columns are in LABELS order (malignant, benign); a tie goes to the first.
    assert model.labels_of(proba) == ["malignant", "benign", "malignant"]


def test_shipped_model_is_served_from_its_arrays(model_path):
    loaded = model.load(model_path)
    assert loaded.pipeline is None
    assert loaded.affine is not None


def test_card_without_features(artifact):
    card_path = artifact.with_suffix(".json")
    card = json.loads(card_path.read_text())
    del card["features"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(model.ModelError, match="lists other features"):
        model.load(artifact)


def square(values):
    return values**2


def test_every_untrusted_type_is_named(trained, tmp_path):
    pipeline, card = trained
    unsafe = Pipeline(
        [
            ("a", FunctionTransformer(reciprocal)),
            ("b", FunctionTransformer(square)),
            *pipeline.steps,
        ]
    )
    path = tmp_path / "unsafe.skops"
    training.save(unsafe, card, path)
    with pytest.raises(model.ModelError, match=r"trust: tests\.test_model\.\w+, tests\.test_model"):
        model.load(path)


def test_scaler_without_scaling_folds_correctly(trained):
    _, card = trained
    X, y = training.load_training_data()
    rows = X.to_numpy()
    pipeline = Pipeline(
        [("scale", StandardScaler(with_std=False)), ("classify", LogisticRegression(max_iter=5000))]
    ).fit(rows, y)
    fast = model.Model(pipeline, card, model._affine_form(pipeline))
    assert fast.affine is not None
    assert np.allclose(fast.predict_proba(rows), pipeline.predict_proba(rows), atol=1e-12)


def test_three_steps_are_not_folded(trained):
    pipeline, _ = trained
    longer = Pipeline(
        [("scale", StandardScaler()), ("again", StandardScaler()), *pipeline.steps[1:]]
    )
    assert model._affine_form(longer) is None


def test_a_pickled_array_in_the_archive_is_not_read(artifact):
    with zipfile.ZipFile(artifact) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
        mean_file = scaler_attributes(json.loads(members["schema.json"]))["mean_"]["file"]
    pickled = io.BytesIO()
    np.save(pickled, np.array([0.0] * len(FEATURE_NAMES), dtype=object), allow_pickle=True)
    members[mean_file] = pickled.getvalue()
    with zipfile.ZipFile(artifact, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert model._read_affine(artifact) is None


def test_a_fallback_pipeline_is_served_by_scikit_learn(trained, tmp_path):
    _, card = trained
    X, y = training.load_training_data()
    rows = X.to_numpy()
    # One step is not the folded pair, so its own predict_proba serves it.
    unscaled = Pipeline([("classify", LogisticRegression(max_iter=5000))]).fit(rows, y)
    path = tmp_path / "unscaled.skops"
    training.save(unscaled, card, path)
    loaded = model.load(path)
    assert loaded.affine is None
    expected = unscaled.predict_proba(rows[:3])
    app = create_app(
        {
            "TESTING": True,
            "MODEL_PATH": str(path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "MAX_ROWS": 10,
        }
    )
    sent = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in rows[:3]]
    response = app.test_client().post("/api/v1/predict", json={"instances": sent})
    assert response.status_code == 200, response.get_json()
    served = [
        [p["probabilities"][label] for label in LABELS] for p in response.get_json()["predictions"]
    ]
    assert np.allclose(served, expected, atol=1e-12)


def test_every_training_candidate_can_be_served(trained, tmp_path):
    # Whichever candidate the selection rule picks, the service must be able to load it.
    _, card = trained
    X, y = training.load_training_data()
    rows = X.to_numpy()[:20]
    for name in training.CANDIDATES:
        pipeline = training.build_pipeline(name, training.SEED).fit(X.to_numpy(), y)
        path = tmp_path / f"{name}.skops"
        training.save(pipeline, card, path)
        loaded = model.load(path)
        assert np.allclose(loaded.predict_proba(rows), pipeline.predict_proba(rows), atol=1e-12)
