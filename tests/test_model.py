"""Loading the model safely and serving it: the card checked against the contract, skops and its
trusted types, the scikit-learn version, the class order, and the folded linear fast path.

Models are fitted here on the contract's own training data, so the tests hold for any model. The
fast path folds a binary logistic regression: its tests fit one on a two-class version of the
data (the first label against the rest) and load it under a matching two-label contract.
"""

import hashlib
import io
import json
import subprocess
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.svm import SVC

from mlservice import create_app, model, process, training
from mlservice.contract import CONTRACT
from mlservice.probe import http, wait_until
from scripts.live_server import gunicorn_server
from tests.tools import copy_model
from tests.values import FEATURE_NAMES, FEATURES, LABELS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data():
    X, y = training.load_training_data()
    return X.to_numpy(), y


@pytest.fixture(scope="module")
def binary(data, card):
    """A two-label contract and card (the first label against the rest) and its data."""
    X, y = data
    labels = [LABELS[0], "the rest"]
    contract = CONTRACT.model_copy(update={"labels": labels, "positive_label": "the rest"})
    return contract, {**card, "labels": labels}, X, (y != 0).astype(int)


def fitted(X, y, *steps):
    return Pipeline(
        list(steps) or [("scale", StandardScaler()), ("classify", LogisticRegression())]
    ).fit(X, y)


@pytest.fixture
def folded(tmp_path, binary):
    """A saved StandardScaler + binary LogisticRegression, the pipeline the service folds."""
    contract, card, X, y = binary
    path = tmp_path / "folded.skops"
    pipeline = fitted(X, y)
    training.save(pipeline, card, path)
    return path, pipeline, contract


@pytest.fixture
def artifact(tmp_path, model_path):
    """A private copy of the shipped artifact and card that a test may damage."""
    path = tmp_path / "model.skops"
    copy_model(model_path, tmp_path)
    return path


def edit_card(path, **changes):
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_save_and_load_round_trip(model_path, card, data, tmp_path):
    X, _ = data
    pipeline = skops.io.load(model_path, trusted=list(model.TRUSTED_TYPES))
    saved = training.save(pipeline, card, tmp_path / "m.skops")
    assert zipfile.is_zipfile(tmp_path / "m.skops")  # skops format, not a pickle
    assert (
        saved["artifact"]["sha256"]
        == hashlib.sha256((tmp_path / "m.skops").read_bytes()).hexdigest()
    )
    loaded = model.load(tmp_path / "m.skops")
    assert loaded.version == saved["artifact"]["sha256"][:12]
    atol = 1e-12 if loaded.affine is not None else training.PARITY_BOUND  # ONNX: float32
    assert np.allclose(loaded.predict_proba(X), pipeline.predict_proba(X), atol=atol)


def test_the_shipped_model_gives_one_probability_per_label_in_the_contracts_order(model_path, data):
    X, y = data
    proba = model.load(model_path).predict_proba(X)
    assert proba.shape == (len(X), len(LABELS))
    assert np.allclose(proba.sum(axis=1), 1)
    # Column k is the class training coded k, the contract's k-th label: it scores its own rows
    # higher than the other rows, on average.
    for code in range(len(LABELS)):
        assert proba[y == code, code].mean() > proba[y != code, code].mean()


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


CONTRACT_MISMATCH = (
    r"^Model card .*model\.json was trained for another contract than model\.toml \(other "
    r"features, types, ranges or labels\); retrain with `make model`\.$"
)


@pytest.mark.parametrize(
    "change",
    [
        lambda card: card["features"].pop(),
        lambda card: card["features"].reverse(),
        lambda card: card["features"][0].update(name="zz_other"),
        lambda card: card["features"][-1].update(max=card["features"][-1]["max"] + 1),
        lambda card: card["features"][0].update(min=card["features"][0]["min"] - 1),
        lambda card: card["features"][0].update(type="float" if FEATURES[0].integer else "integer"),
        lambda card: card["labels"].reverse(),
        lambda card: card["labels"].append("zz_new"),
        lambda card: card.pop("features"),
        lambda card: card.pop("labels"),
        lambda card: card["features"].__setitem__(0, "not a table"),
    ],
    ids=[
        "a feature fewer",
        "features reordered",
        "a feature renamed",
        "a max moved",
        "a min moved",
        "a type changed",
        "labels reordered",
        "a label more",
        "no features",
        "no labels",
        "a feature that is no table",
    ],
)
def test_a_card_for_another_contract_is_refused(artifact, change):
    card = json.loads(artifact.with_suffix(".json").read_text())
    before = json.loads(json.dumps(card))
    change(card)
    if card == before:
        pytest.skip("this change leaves this model's card as it is (one feature: no other order)")
    artifact.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(model.ModelError, match=CONTRACT_MISMATCH):
        model.load(artifact)


def test_checksum_mismatch(artifact):
    with artifact.open("ab") as file:
        file.write(b"tampered")
    with pytest.raises(model.ModelError, match="does not match the checksum"):
        model.load(artifact)


def shifted(values):
    return values + 1


def custom_steps() -> tuple:
    """A custom transformer skl2onnx cannot convert, and the scaler the regression needs."""
    return (
        ("custom", FunctionTransformer(shifted)),
        ("scale", StandardScaler()),
        ("classify", LogisticRegression()),
    )


@pytest.fixture
def uncompiled(tmp_path, data, card):
    """A saved pipeline with a custom transformer: skl2onnx cannot compile it, skops serves it."""
    X, y = data
    pipeline = fitted(X, y, *custom_steps())
    path = tmp_path / "custom.skops"
    saved = training.save(pipeline, card, path)
    return path, pipeline, saved


def trusting_shifted(monkeypatch):
    monkeypatch.setattr(model, "TRUSTED_TYPES", (*model.TRUSTED_TYPES, "tests.test_model.shifted"))


def test_scikit_learn_version_mismatch(uncompiled):
    path, _, _ = uncompiled
    edit_card(path, scikit_learn_version="0.19.1")
    with pytest.raises(model.ModelError) as mismatch:
        model.load(path)
    assert str(mismatch.value) == (
        f"Model {path} was trained with scikit-learn 0.19.1 but "
        f"{model.installed_version('scikit-learn')} is installed; retrain it with `make model`."
    )


def test_a_model_that_needs_scikit_learn_says_how_to_install_it(uncompiled, monkeypatch):
    path, _, _ = uncompiled
    monkeypatch.setattr(model, "installed_version", lambda name: None)  # a serving-only image
    with pytest.raises(model.ModelError) as missing:
        model.load(path)
    assert str(missing.value).endswith(
        "but no scikit-learn is installed; retrain it with `make model`, or install the skops "
        "dependency group."
    )


def test_a_pipeline_skl2onnx_cannot_convert_is_served_by_scikit_learn(
    uncompiled, data, monkeypatch
):
    path, pipeline, saved = uncompiled
    X, _ = data
    assert saved["serving"]["runtime"] == "scikit-learn"
    assert saved["serving"]["reason"].startswith("skl2onnx cannot convert it: ")
    assert "FunctionTransformer" in saved["serving"]["reason"]
    assert not path.with_suffix(".onnx").exists()
    trusting_shifted(monkeypatch)
    loaded = model.load(path)
    assert loaded.runtime == "scikit-learn"
    assert loaded.onnx is None
    assert np.allclose(loaded.predict_proba(X), pipeline.predict_proba(X), atol=1e-12)


def test_without_scikit_learn_the_skops_path_says_what_to_install(uncompiled, monkeypatch):
    path, _, _ = uncompiled
    monkeypatch.setattr(model, "installed_version", lambda name: None)
    with pytest.raises(model.ModelError, match=r"but no scikit-learn is installed; .* skops"):
        model.load(path)


def square(values):
    return values**2


def test_untrusted_types_are_refused(card, data, tmp_path):
    X, y = data
    unsafe = fitted(X, y, ("custom", FunctionTransformer(shifted)), ("classify", DummyClassifier()))
    path = tmp_path / "unsafe.skops"
    training.save(unsafe, card, path)
    assert skops.io.get_untrusted_types(file=path)
    with pytest.raises(model.ModelError, match=r"types skops does not trust: .*shifted"):
        model.load(path)


def test_every_untrusted_type_is_named(card, data, tmp_path):
    X, y = data
    unsafe = fitted(
        X,
        y,
        ("a", FunctionTransformer(shifted)),
        ("b", FunctionTransformer(square)),
        ("classify", DummyClassifier()),
    )
    path = tmp_path / "unsafe.skops"
    training.save(unsafe, card, path)
    with pytest.raises(model.ModelError, match=r"trust: tests\.test_model\.\w+, tests\.test_model"):
        model.load(path)


def test_unreadable_archive(artifact):
    artifact.write_bytes(b"this is not a zip archive")
    edit_card(
        artifact,
        artifact={"file": artifact.name, "sha256": model.file_checksum(artifact)},
        serving={"runtime": "scikit-learn", "reason": "not compiled"},
    )
    with pytest.raises(model.ModelError, match="is not a readable skops file"):
        model.load(artifact)


def test_a_regressor_is_refused_at_load(card, data, tmp_path):
    X, y = data
    path = tmp_path / "regressor.skops"
    training.save(fitted(X, y, ("regress", LinearRegression())), card, path)
    with pytest.raises(model.ModelError) as raised:
        model.load(path)
    assert str(raised.value) == (
        f"Model file {path} holds a Pipeline that gives no class probabilities (classes_ and "
        "predict_proba); the service serves classifiers."
    )


def test_a_classifier_without_predict_proba_is_refused_at_load(card, data, tmp_path):
    X, y = data
    path = tmp_path / "svc.skops"
    training.save(fitted(X, y, ("scale", StandardScaler()), ("classify", SVC())), card, path)
    with pytest.raises(model.ModelError, match="gives no class probabilities"):
        model.load(path)


def test_a_model_with_other_classes_than_the_contracts_labels_is_refused(card, data, tmp_path):
    X, y = data
    path = tmp_path / "other.skops"
    # The labels as text: scikit-learn's classes are then the texts, not the codes 0, 1, ...
    named = np.take(LABELS, y)
    training.save(fitted(X, named, ("classify", DummyClassifier())), card, path)
    with pytest.raises(model.ModelError, match=r"predicts the classes \[.*\], but the contract's"):
        model.load(path)


def test_a_model_with_fewer_classes_is_refused(binary, card, tmp_path):
    _, _, X, y = binary
    path = tmp_path / "two.skops"
    training.save(fitted(X, y, ("classify", DummyClassifier())), card, path)
    if len(LABELS) == 2:
        assert model.load(path).pipeline is not None  # two classes are the contract's
    else:
        with pytest.raises(model.ModelError, match=r"predicts the classes \[0, 1\]"):
            model.load(path)


@pytest.mark.parametrize("form", [np.asarray, np.ndarray.tolist], ids=["array", "lists"])
def test_labels_of_names_the_most_probable_class_of_each_row(form):
    # predict_proba's array or predict_rows' lists
    proba = np.eye(len(LABELS))[::-1] * 0.5 + 0.25
    assert model.labels_of(form(proba)) == list(LABELS)[::-1]
    # A tie goes to the first label.
    assert model.labels_of(form(np.full((1, len(LABELS)), 1 / len(LABELS)))) == [LABELS[0]]
    assert model.labels_of(form(np.array([[0.2, *[0.4] * (len(LABELS) - 1)]]))) == [LABELS[1]]


# --- The folded fast path (StandardScaler + binary LogisticRegression) -----------------------


def test_affine_form_matches_the_pipeline(binary):
    _, card, X, y = binary
    pipeline = fitted(X, y)
    fast = model.Model(pipeline, card, model._affine_form(pipeline))
    slow = model.Model(pipeline, card)
    rng = np.random.default_rng(0)
    rows = np.vstack([X, X * rng.uniform(0, 10, X.shape)])
    assert fast.affine is not None
    assert slow.affine is None
    assert np.allclose(fast.predict_proba(rows), slow.predict_proba(rows), atol=1e-12)


def test_another_binary_linear_classifier_is_not_folded(binary):
    from sklearn.linear_model import SGDClassifier

    _, _, X, y = binary
    sgd = fitted(
        X,
        y,
        ("scale", StandardScaler()),
        ("classify", SGDClassifier(loss="log_loss", random_state=0)),
    )
    assert sgd[-1].coef_.shape[0] == 1  # one row of weights, as a binary LogisticRegression has
    assert model._affine_form(sgd) is None


def test_the_serving_note_says_how_the_card_serves_the_model():
    assert model.serving_note({}) == "not recorded (a card from before ONNX compiles)"
    plain = {"runtime": "scikit-learn", "reason": "a step skl2onnx cannot convert"}
    assert model.serving_note(plain) == "not compiled to ONNX: a step skl2onnx cannot convert"
    compiled = {
        "runtime": "onnxruntime",
        "opset": {"": 21, "ai.onnx": 22, "ai.onnx.ml": 3},
        "parity": {"max_probability_difference": 2.8e-07, "rows": "the held-out split (143 rows)"},
    }
    assert model.serving_note(compiled) == (
        "ONNX compile (opset 22) checked against scikit-learn: largest probability difference "
        "2.8e-07 on the held-out split (143 rows), same labels"
    )


def test_other_pipelines_use_scikit_learn(binary, data):
    _, _, X, y = binary
    pipeline = fitted(X, y)
    forest = training.build_pipeline("random_forest", training.SEED)
    assert model._affine_form(forest) is None
    assert model._affine_form(Pipeline([("classify", pipeline[-1])])) is None
    X3, y3 = data
    if len(np.unique(y3)) > 2:  # a multi-class regression has one row of weights per class
        assert model._affine_form(fitted(X3, y3)) is None


def test_three_steps_are_not_folded(binary):
    _, _, X, y = binary
    pipeline = fitted(X, y)
    longer = Pipeline(
        [("scale", StandardScaler()), ("again", StandardScaler()), *pipeline.steps[1:]]
    )
    assert model._affine_form(longer) is None


@pytest.mark.parametrize(
    "scaler",
    [StandardScaler(with_std=False), StandardScaler(with_mean=False)],
    ids=["without scaling", "without centring"],
)
def test_a_scaler_that_skips_a_step_folds_correctly(binary, scaler):
    _, card, X, y = binary
    X = X / X.std(axis=0)  # unit spread, so the regression converges without the scaler's help
    pipeline = fitted(X, y, ("scale", scaler), ("classify", LogisticRegression()))
    fast = model.Model(pipeline, card, model._affine_form(pipeline))
    assert fast.affine is not None
    assert np.allclose(fast.predict_proba(X), pipeline.predict_proba(X), atol=1e-12)


def test_a_folded_model_is_read_from_its_arrays_without_scikit_learn(folded):
    path, _, contract = folded
    code = (
        "import sys; from mlservice import model; from mlservice.contract import CONTRACT; "
        f"contract = CONTRACT.model_copy(update={{'labels': {contract.labels!r}}}); "
        f"loaded = model.load({str(path)!r}, contract); "
        "print(loaded.pipeline is None, loaded.affine is not None, "
        "sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skops', 'scipy'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["True", "True", "[]"]


def test_a_folded_model_is_served_from_its_arrays(folded):
    path, _, contract = folded
    loaded = model.load(path, contract)
    assert loaded.pipeline is None
    assert loaded.affine is not None


def test_arrays_read_from_the_archive_match_skops(folded, binary):
    path, pipeline, contract = folded
    _, _, X, _ = binary
    weights, biases = model._read_affine(path, len(FEATURES))
    reference_weights, reference_biases = model._affine_form(skops.io.load(path, trusted=[]))
    assert np.array_equal(weights, reference_weights)
    assert np.array_equal(biases, reference_biases)
    served = model.load(path, contract).predict_proba(X)
    assert np.allclose(served, pipeline.predict_proba(X), atol=1e-12)


def far_rows(X, pipeline) -> np.ndarray:
    """The data's rows, then rows moved along the folded weights w until z = x . w + b spans
    -1000 to 1000: past 745, where e^z overflows and the smaller probability underflows to 0."""
    weights = model._affine_form(pipeline)[0][:, 0]
    moves = np.linspace(-1000, 1000, 41) / weights.dot(weights)
    return np.vstack([X, X[: len(moves)] + moves[:, None] * weights])


def test_one_folded_row_is_computed_in_python_floats_with_the_batchs_answer(folded, binary):
    path, pipeline, contract = folded
    _, _, X, _ = binary
    loaded = model.load(path, contract)
    rows = far_rows(X, pipeline)
    assert np.abs(pipeline.decision_function(rows)).max() > 745  # else this could not fail
    expected = loaded.predict_proba(rows)
    one_by_one = np.array([loaded.predict_rows([row])[0] for row in rows.tolist()])
    # Relative: the smaller probability keeps its digits, down to the smallest float.
    assert np.allclose(one_by_one, expected, rtol=1e-12, atol=0)
    assert np.allclose(one_by_one, pipeline.predict_proba(rows), atol=1e-12)
    assert model.labels_of(one_by_one.tolist()) == model.labels_of(expected)


def test_the_one_row_softplus_is_numpys_logaddexp_bit_for_bit():
    # log(1 + e^x) of one folded row and np.logaddexp(0, x) of a batch give the same float: the
    # two paths differ only in the dot product's order of additions and in the last exp (numpy's
    # vectorised one against the C library's, which round a last bit apart in a few cases).
    xs = np.concatenate(
        [np.linspace(-800, 800, 16_001), np.linspace(-1, 1, 2_001), [745.2, -745.2]]
    )
    assert [model._softplus(x) for x in xs.tolist()] == np.logaddexp(0.0, xs).tolist()


@pytest.mark.parametrize("z", [0.0, 2.0, -2.0, 36.5, -36.5, 700.0, -700.0, 800.0, -800.0])
def test_one_folded_row_gets_the_logistic_functions_probabilities(card, z):
    from scipy.special import expit

    # A fold whose z is the first feature's value: class 0 gets sigmoid(-z), class 1 sigmoid(z).
    n = len(FEATURES)
    fold = model._fold(np.zeros(n), np.ones(n), np.eye(n)[0], 0.0)
    loaded = model.Model(pipeline=None, card=card, affine=fold)
    [answer] = loaded.predict_rows([[z] + [0.0] * (n - 1)])
    assert answer == pytest.approx([expit(-z), expit(z)], rel=1e-14, abs=0)


def test_one_folded_row_needs_no_numpy_call_and_more_rows_go_through_predict_proba(
    folded, binary, monkeypatch
):
    path, _, contract = folded
    _, _, X, _ = binary
    loaded = model.load(path, contract)
    row = X[0].tolist()
    [expected] = loaded.predict_rows([row])
    assert len(expected) == 2  # its cached weights made, by a first row
    monkeypatch.setattr(model, "np", None)  # any use of numpy now fails
    assert loaded.predict_rows([row]) == [expected]
    with pytest.raises(AttributeError):
        loaded.predict_rows([row, row])


def test_the_folded_arrays_must_have_the_contracts_feature_count(folded):
    path, _, _ = folded
    assert model._read_affine(path, len(FEATURES)) is not None
    assert model._read_affine(path, len(FEATURES) + 1) is None


def test_a_folded_binary_model_is_refused_for_more_labels(folded, card):
    path, _, contract = folded
    three = contract.model_copy(update={"labels": [*contract.labels, "third"]})
    edit_card(path, labels=three.labels)
    with pytest.raises(
        model.ModelError,
        match=r"gives probabilities shaped \(1, 2\) for one row, but the contract's 3 labels "
        r"need \(1, 3\)",
    ):
        model.load(path, three)


def read_members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def rewrite_schema(path, edit):
    members = read_members(path)
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    write_members(path, members)


def replace_array(path, attributes, name: str, array: np.ndarray) -> None:
    """Put another array in the archive's file for this attribute of a step."""
    members = read_members(path)
    file = attributes(json.loads(members["schema.json"]))[name]["file"]
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype == object)
    members[file] = buffer.getvalue()
    write_members(path, members)


def scaler_attributes(schema):
    return schema["content"]["content"]["steps"]["content"][0]["content"][1]["content"]["content"]


def classifier_attributes(schema):
    return schema["content"]["content"]["steps"]["content"][1]["content"][1]["content"]["content"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda schema: schema.update(protocol=3),  # a layout this reader does not know
        lambda schema: scaler_attributes(schema)["with_mean"].update(content="false"),
        lambda schema: scaler_attributes(schema)["with_std"].update(content="false"),
        lambda schema: scaler_attributes(schema)["mean_"].update(__module__="custom"),
        lambda schema: scaler_attributes(schema).pop("scale_"),
    ],
)
def test_anything_but_the_folded_pipeline_is_left_to_skops(folded, edit):
    path, _, _ = folded
    assert model._read_affine(path, len(FEATURES)) is not None
    rewrite_schema(path, edit)
    assert model._read_affine(path, len(FEATURES)) is None


@pytest.mark.parametrize("classes", [[1, 2], [0, 2]])
def test_folded_classes_must_be_the_codes_0_and_1(folded, classes):
    path, _, _ = folded
    replace_array(path, classifier_attributes, "classes_", np.array(classes))
    assert model._read_affine(path, len(FEATURES)) is None


def test_a_pickled_array_in_the_archive_is_not_read(folded):
    path, _, _ = folded
    pickled = np.array([0.0] * len(FEATURE_NAMES), dtype=object)
    replace_array(path, scaler_attributes, "mean_", pickled)
    assert model._read_affine(path, len(FEATURES)) is None


@pytest.mark.parametrize("scaler", [StandardScaler(with_mean=False), MinMaxScaler()])
def test_other_linear_pipelines_are_served_by_onnxruntime(binary, tmp_path, scaler):
    contract, card, X, y = binary
    pipeline = fitted(X, y, ("scale", scaler), ("classify", LogisticRegression()))
    path = tmp_path / "other.skops"
    saved = training.save(pipeline, card, path)
    loaded = model.load(path, contract)
    assert (loaded.runtime, loaded.pipeline, loaded.affine) == ("onnxruntime", None, None)
    assert loaded.version == saved["artifact"]["sha256"][:12]
    assert np.allclose(loaded.predict_proba(X), pipeline.predict_proba(X), atol=1e-5)


def test_a_fallback_pipeline_is_served_by_scikit_learn(uncompiled, data, monkeypatch):
    X, _ = data
    path, pipeline, _ = uncompiled
    trusting_shifted(monkeypatch)
    expected = pipeline.predict_proba(X[:3])
    app = create_app(
        {
            "TESTING": True,
            "MODEL_PATH": str(path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "MAX_ROWS": 10,
        }
    )
    sent = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in X[:3]]
    response = app.test_client().post("/api/v1/predict", json={"instances": sent})
    assert response.status_code == 200, response.get_json()
    served = [
        [p["probabilities"][label] for label in LABELS] for p in response.get_json()["predictions"]
    ]
    assert np.allclose(served, expected, atol=1e-12)


def test_every_training_candidate_can_be_served(card, data, tmp_path):
    # Whichever candidate the selection rule picks, the service must be able to load it.
    X, y = data
    for name in training.CANDIDATES:
        pipeline = training.build_pipeline(name, training.SEED).fit(X, y)
        path = tmp_path / f"{name}.skops"
        training.save(pipeline, card, path)
        loaded = model.load(path)
        assert loaded.runtime in ("folded arrays (numpy)", "onnxruntime")
        rows = training.spread_rows(500)
        served = loaded.predict_proba(rows)
        assert np.allclose(served, pipeline.predict_proba(rows), atol=training.PARITY_BOUND)
        assert model.labels_of(loaded.predict_proba(X)) == model.labels_of(
            pipeline.predict_proba(X)
        )


# --- ONNX: compiled at training, served by onnxruntime ------------------------------------


def split(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows, their classes and held-out rows, as training splits them (stratified)."""
    X, y = data
    X_train, X_held_out, y_train, _ = train_test_split(
        X, y, test_size=training.TEST_SIZE, stratify=y, random_state=training.SEED
    )
    return X_train, y_train, X_held_out


@pytest.fixture
def compiled(tmp_path, data, card):
    """The random-forest candidate saved with its ONNX compile (served by onnxruntime)."""
    X_train, y_train, X_held_out = split(data)
    pipeline = training.build_pipeline("random_forest", training.SEED).fit(X_train, y_train)
    path = tmp_path / "forest.skops"
    saved = training.save(pipeline, card, path, held_out=X_held_out)
    return path, pipeline, saved


def unseen_rows(data) -> np.ndarray:
    """Rows the compiled forest was not fitted on: its held-out ones and rows over the ranges.

    (A training row can sit within float32 rounding of a split threshold, where a tree compiled
    to float32 may take the other branch: docs/model.md.)"""
    return np.vstack([split(data)[2], training.spread_rows(500)])


def test_the_card_records_the_compile_its_checksum_opset_and_parity(compiled, data):
    path, _, saved = compiled
    serving = saved["serving"]
    onnx_path = path.with_suffix(".onnx")
    assert serving["runtime"] == "onnxruntime"
    assert serving["file"] == onnx_path.name
    assert serving["sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert serving["opset"]["ai.onnx"] >= 9
    assert "ai.onnx.ml" in serving["opset"]
    assert serving["parity"]["rows"] == f"the held-out split ({len(split(data)[2])} rows)"
    assert 0 <= serving["parity"]["max_probability_difference"] <= training.PARITY_BOUND
    assert serving["parity"]["labels_identical"] is True
    assert json.loads(path.with_suffix(".json").read_text())["serving"] == serving


def test_an_onnx_model_is_served_by_onnxruntime_with_scikit_learns_answers(compiled, data):
    path, pipeline, _ = compiled
    loaded = model.load(path)
    assert (loaded.runtime, loaded.pipeline, loaded.affine) == ("onnxruntime", None, None)
    rows = unseen_rows(data)
    expected = pipeline.predict_proba(rows)
    served = loaded.predict_proba(rows)
    assert np.max(np.abs(served - expected)) <= training.PARITY_BOUND
    assert model.labels_of(served) == model.labels_of(expected)


def test_rows_as_lists_get_the_arrays_answers_from_onnxruntime_and_scikit_learn(
    compiled, uncompiled, data, monkeypatch
):
    trusting_shifted(monkeypatch)
    rows = unseen_rows(data)[:50]
    for loaded in (model.load(compiled[0]), model.load(uncompiled[0])):
        expected = loaded.predict_proba(rows).tolist()
        assert loaded.predict_rows(rows.tolist()) == expected
        one_by_one = [loaded.predict_proba(rows[i : i + 1]).tolist()[0] for i in range(len(rows))]
        assert [loaded.predict_rows([row])[0] for row in rows.tolist()] == one_by_one


def test_an_onnx_model_is_served_without_scikit_learn(compiled):
    path, _, _ = compiled
    code = (
        "import sys; from mlservice import model; "
        f"loaded = model.load({str(path)!r}); "
        "print(loaded.runtime, "
        "sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skops', 'scipy'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["onnxruntime", "[]"]


def test_a_forked_process_runs_its_own_session_with_the_same_answers(compiled):
    # What gunicorn's preload does: load in the parent, predict in forked children.
    path, _, _ = compiled
    code = f"""
import os, sys
import numpy as np
from mlservice import model, training
loaded = model.load({str(path)!r})
rows = training.spread_rows(200)
expected = loaded.predict_proba(rows)
parent = loaded.onnx.session()
loaded.predict_proba(rows[:1]), loaded.predict_proba(rows[1:2])  # one-row buffers bound
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        ok = loaded.onnx.session() is not parent and np.array_equal(loaded.predict_proba(rows), expected)
        one_by_one = np.vstack([loaded.predict_proba(rows[i : i + 1]) for i in range(len(rows))])
        ok = ok and np.array_equal(one_by_one, expected)
        os._exit(0 if ok else 1)
    children.append(pid)
print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
print(loaded.onnx.session() is parent)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split("\n")[:2] == ["[0, 0, 0]", "True"]


def test_one_row_at_a_time_answers_as_the_batch_through_the_bound_buffers(compiled, data):
    path, _, _ = compiled
    loaded = model.load(path)
    rows = unseen_rows(data)[:60]
    expected = loaded.predict_proba(rows)
    session = loaded.onnx.session()
    runs = []
    run = session.run
    session.run = lambda *args: runs.append(args) or run(*args)
    one_by_one = [loaded.predict_proba(rows[i : i + 1]) for i in range(len(rows))]
    # Each answer kept as given, not overwritten by the next row's run.
    assert np.array_equal(np.vstack(one_by_one), expected)
    # Loading ran one row (_load_onnx), which sized this thread's buffers: none since has been an
    # ordinary run.
    assert runs == []
    assert loaded.onnx._threads.one_row.session is session


def test_each_thread_runs_one_rows_through_buffers_of_its_own(compiled, data):
    path, _, _ = compiled
    loaded = model.load(path)
    rows = unseen_rows(data)[:40]
    expected = loaded.predict_proba(rows)
    both_started = threading.Barrier(2, timeout=30)

    def one_by_one(start):
        both_started.wait()  # two threads, not one running both
        answers = [loaded.predict_proba(rows[i : i + 1]) for i in range(start, start + 20)]
        return loaded.onnx._threads.one_row, np.vstack(answers)

    with ThreadPoolExecutor(max_workers=2) as pool:
        (first, answers), (second, more) = pool.map(one_by_one, [0, 20])
    assert first is not second
    assert np.array_equal(np.vstack([answers, more]), expected)


@pytest.mark.parametrize("string_classes", [False, True], ids=["codes", "strings"])
def test_one_row_runs_bind_every_numeric_output_and_leave_strings_unbound(data, string_classes):
    # skl2onnx's classifiers give a label besides the probabilities: int64 for classes coded
    # 0, 1, ... as training codes them, strings for string classes, which no buffer holds.
    import skl2onnx
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    classes = np.array([f"class {code}" for code in y]) if string_classes else y
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, classes)
    options = {id(forest): {"zipmap": False}}
    graph = skl2onnx.to_onnx(forest, X[:1].astype(np.float32), options=options)
    compiled = model.OnnxModel(graph.SerializeToString())
    rows = X[:30]
    expected = compiled.predict_proba(rows)
    one_by_one = np.vstack([compiled.predict_proba(rows[i : i + 1]) for i in range(len(rows))])
    assert np.array_equal(one_by_one, expected)
    bound = compiled._threads.one_row.buffers
    assert sorted(bound) == (["probabilities"] if string_classes else ["label", "probabilities"])


def test_onnx_checksum_mismatch(compiled):
    path, _, _ = compiled
    with path.with_suffix(".onnx").open("ab") as file:
        file.write(b"tampered")
    with pytest.raises(model.ModelError, match=r"ONNX model .*forest\.onnx does not match"):
        model.load(path)


def test_a_missing_onnx_model_is_named(compiled):
    path, _, _ = compiled
    path.with_suffix(".onnx").unlink()
    with pytest.raises(model.ModelError, match=r"ONNX model .*forest\.onnx not found next to"):
        model.load(path)


def test_an_onnx_model_onnxruntime_cannot_run_is_refused_in_one_sentence(compiled):
    path, _, saved = compiled
    onnx_path = path.with_suffix(".onnx")
    onnx_path.write_bytes(b"not an ONNX graph")
    serving = {**saved["serving"], "sha256": model.file_checksum(onnx_path)}
    edit_card(path, serving=serving)
    with pytest.raises(model.ModelError) as raised:
        model.load(path)
    message = str(raised.value)
    assert message.startswith(
        f"ONNX model {onnx_path} (opset {serving['opset']}) cannot be served by onnxruntime "
    )
    assert message.endswith("; retrain with `make model`.")
    assert "\n" not in message


@pytest.mark.parametrize("drop", ["file", "sha256", "opset"])
def test_an_onnx_card_without_its_fields_is_invalid(compiled, drop):
    path, _, saved = compiled
    edit_card(path, serving={k: v for k, v in saved["serving"].items() if k != drop})
    with pytest.raises(model.ModelError) as raised:
        model.load(path)
    assert (
        str(raised.value) == f"Model card {path.parent / 'forest.json'} is not a valid model card."
    )


def test_a_compile_that_differs_from_scikit_learn_is_a_training_error(
    data, card, tmp_path, monkeypatch
):
    X, y = data
    monkeypatch.setattr(training, "PARITY_BOUND", 0.0)  # float32 never matches exactly
    with pytest.raises(model.ModelError) as raised:
        training.save(fitted(X, y), card, tmp_path / "m.skops", held_out=X)
    assert str(raised.value).startswith(
        f"The ONNX compile of the pipeline differs from scikit-learn on the held-out split "
        f"({len(X)} rows): largest probability difference "
    )
    assert "(bound 0), 0 label(s) differ" in str(raised.value)


def test_saving_again_removes_an_older_compile(compiled, data, monkeypatch):
    path, _, saved = compiled
    X, y = data
    trusting_shifted(monkeypatch)
    custom = fitted(X, y, *custom_steps())
    training.save(custom, saved, path)
    assert not path.with_suffix(".onnx").exists()
    assert model.load(path).runtime == "scikit-learn"


def test_three_preloaded_gunicorn_workers_serve_the_onnx_model(compiled, data):
    # gunicorn.conf.py's preload: the master loads the model, three forked workers serve it.
    path, pipeline, _ = compiled
    rows = unseen_rows(data)[:40]
    expected = pipeline.predict_proba(rows)
    body = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in rows]
    with gunicorn_server({"MODEL_PATH": str(path)}, workers=3) as server:
        wait_until(
            lambda: len(server.worker_pids()) == 3, timeout=60, interval=0.1, what="3 workers"
        )

        def predict(_):
            return http(
                "POST",
                f"{server.url}/api/v1/predict",
                body=json.dumps({"instances": body}).encode(),
                headers={"Content-Type": "application/json"},
                timeout=60,
            )

        # More concurrent requests than workers, so every worker answers some.
        with ThreadPoolExecutor(max_workers=6) as pool:
            replies = list(pool.map(predict, range(30)))
    for reply in replies:
        assert reply.status == 200, reply.body[:300]
        served = [
            [p["probabilities"][label] for label in LABELS] for p in reply.json()["predictions"]
        ]
        assert np.max(np.abs(np.array(served) - expected)) <= training.PARITY_BOUND


def test_an_onnx_model_without_a_probability_tensor_is_refused(compiled, data):
    # skl2onnx's default (zipmap) answers a list of dicts per row, not the probability tensor.
    import skl2onnx

    path, pipeline, saved = compiled
    X, _ = data
    onnx_path = path.with_suffix(".onnx")
    onnx_path.write_bytes(skl2onnx.to_onnx(pipeline, X[:1].astype(np.float32)).SerializeToString())
    edit_card(path, serving={**saved["serving"], "sha256": model.file_checksum(onnx_path)})
    with pytest.raises(model.ModelError, match=r"an output named 'probabilities' \(skl2onnx"):
        model.load(path)


def serve_onnx(path, saved, content: bytes) -> Path:
    """Put another ONNX file beside the artifact, its card's checksum updated to match."""
    onnx_path = path.with_suffix(".onnx")
    onnx_path.write_bytes(content)
    edit_card(path, serving={**saved["serving"], "sha256": model.file_checksum(onnx_path)})
    return onnx_path


def refusal(onnx_path, saved, reason: str) -> str:
    """The whole message of an ONNX model onnxruntime cannot serve, as the user reads it."""
    import onnxruntime

    return (
        f"ONNX model {onnx_path} (opset {saved['serving']['opset']}) cannot be served by "
        f"onnxruntime {onnxruntime.__version__}: {reason}; retrain with `make model`."
    )


def test_an_onnx_model_whose_input_is_not_float_is_refused(compiled, data):
    # A compile for float64 rows: the service feeds float32, so it says what it expects.
    import skl2onnx

    path, pipeline, saved = compiled
    X, _ = data
    doubles = skl2onnx.to_onnx(
        pipeline, X[:1].astype(np.float64), options={id(pipeline[-1]): {"zipmap": False}}
    )
    assert doubles.graph.input[0].type.tensor_type.elem_type == 11  # TensorProto.DOUBLE
    onnx_path = serve_onnx(path, saved, doubles.SerializeToString())
    with pytest.raises(model.ModelError) as raised:
        model.load(path)
    assert str(raised.value) == refusal(
        onnx_path,
        saved,
        "expected one float input and an output named 'probabilities' (skl2onnx with zipmap=False)",
    )


def test_a_long_onnxruntime_error_is_cut_to_300_characters_on_one_line(compiled, monkeypatch):
    path, _, saved = compiled

    def failing(content):
        raise RuntimeError("  " + "x" * 150 + "\n\n\t" + "y" * 250 + "\n")

    monkeypatch.setattr(model, "onnx_session", failing)
    with pytest.raises(model.ModelError) as raised:
        model.load(path)
    # The error's whitespace runs become single spaces (401 characters), then the first 300.
    expected = refusal(path.with_suffix(".onnx"), saved, "x" * 150 + " " + "y" * 149)
    assert str(raised.value) == expected


def test_onnx_probabilities_add_up_to_one_in_float64(compiled, data):
    path, _, _ = compiled
    loaded = model.load(path)
    rows = unseen_rows(data)
    feed = {loaded.onnx.input: rows.astype(np.float32)}
    raw = loaded.onnx.session().run([model.PROBABILITIES], feed)[0].astype(float)
    # onnxruntime's float32 rows miss 1 (else this test could not fail) ...
    assert np.max(np.abs(raw.sum(axis=1) - 1)) > 1e-9
    served = loaded.predict_proba(rows)
    # ... the served ones add up to 1 as float64 sums can, and keep onnxruntime's proportions.
    assert np.max(np.abs(served.sum(axis=1) - 1)) < 1e-12
    assert np.allclose(served, raw, rtol=0, atol=1e-6)


def test_a_process_that_did_not_build_the_session_builds_its_own(compiled, data, monkeypatch):
    # What a forked gunicorn worker sees (test_a_forked_process_runs_its_own_session_... forks
    # for real, in a subprocess): the session came from a process with another id.
    path, _, _ = compiled
    loaded = model.load(path)
    rows = unseen_rows(data)
    expected = loaded.predict_proba(rows)
    parents = loaded.onnx.session()
    assert loaded.onnx.session() is parents  # the builder keeps its session
    forked = process.pid() + 1
    monkeypatch.setattr(process, "pid", lambda: forked)
    own = loaded.onnx.session()
    assert own is not parents
    assert loaded.onnx.session() is own  # built once in this process, then kept
    assert np.array_equal(loaded.predict_proba(rows), expected)


def test_each_session_runs_on_the_cpu_with_one_thread(compiled, monkeypatch):
    # One thread per worker (gunicorn.conf.py runs a worker per core), in the parent's session
    # and in the one a forked worker builds.
    path, _, _ = compiled
    loaded = model.load(path)
    sessions = [loaded.onnx.session()]
    forked = process.pid() + 1
    monkeypatch.setattr(process, "pid", lambda: forked)
    sessions.append(loaded.onnx.session())
    assert sessions[0] is not sessions[1]
    for session in sessions:
        options = session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
        assert session.get_providers() == ["CPUExecutionProvider"]


def test_a_folded_pipeline_from_a_card_before_onnx_is_folded_once_loaded(binary, tmp_path):
    # A card without a serving section (before ONNX compiles) is served by scikit-learn. A
    # StandardScaler without centring is no pipeline the archive is read as data for, but the
    # loaded pipeline folds all the same.
    contract, card, X, y = binary
    X = X / X.std(axis=0)  # unit spread, so the regression converges without the scaler's help
    scaler = StandardScaler(with_mean=False)
    pipeline = fitted(X, y, ("scale", scaler), ("classify", LogisticRegression()))
    path = tmp_path / "older.skops"
    saved = training.save(pipeline, card, path)
    path.with_suffix(".onnx").unlink()
    path.with_suffix(".json").write_text(
        json.dumps({key: value for key, value in saved.items() if key != "serving"})
    )
    assert model._read_affine(path, len(FEATURES)) is None
    loaded = model.load(path, contract)
    assert loaded.runtime == "folded arrays (numpy)"
    assert loaded.pipeline is not None
    assert np.allclose(loaded.predict_proba(X), pipeline.predict_proba(X), atol=1e-12)


@pytest.mark.parametrize("extra_axis", [1, 2], ids=["(rows, 1, labels)", "(rows, labels, 1)"])
def test_an_onnx_model_with_an_axis_more_is_refused_with_its_shape(compiled, extra_axis):
    # Probabilities with an axis more than (rows, labels): refused, with the shape they have.
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path, _, saved = compiled
    features, labels = len(FEATURES), len(LABELS)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "weights"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["softmax"], axis=1),
            helper.make_node("Unsqueeze", ["softmax", "axes"], [model.PROBABILITIES]),
        ],
        "an axis more",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, features])],
        [
            helper.make_tensor_value_info(
                model.PROBABILITIES,
                TensorProto.FLOAT,
                [None, 1, labels] if extra_axis == 1 else [None, labels, 1],
            )
        ],
        initializer=[
            numpy_helper.from_array(np.zeros((features, labels), np.float32), "weights"),
            numpy_helper.from_array(np.array([extra_axis]), "axes"),
        ],
    )
    compiled_graph = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    compiled_graph.ir_version = 8
    onnx.checker.check_model(compiled_graph)
    onnx_path = serve_onnx(path, saved, compiled_graph.SerializeToString())
    with pytest.raises(model.ModelError) as raised:
        model.load(path)
    shape = (1, 1, labels) if extra_axis == 1 else (1, labels, 1)
    assert str(raised.value) == (
        f"ONNX model {onnx_path} gives probabilities shaped {shape} for one row, but the "
        f"contract's {labels} labels need (1, {labels}); retrain with `make model`."
    )
