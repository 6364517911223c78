"""Training the classifier the contract describes, and writing it with its model card.

`mlservice train` (make model) reads the training CSV the contract names, checks every value with
the service's own rules, picks a candidate by cross-validated ROC-AUC on a stratified training
split, scores it on the held-out rest and refuses a model under the contract's floor. Kept apart
from model.py so the server never imports the training half of scikit-learn.
"""

import csv
import io
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import skops.io
from sklearn.base import is_classifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlservice.contract import CONTRACT, probability_column
from mlservice.model import PROBABILITIES, ModelError, OnnxModel, file_checksum
from mlservice.validation import InputError, numbers_from_cells

SEED = 42
TEST_SIZE = 0.25
CV_FOLDS = 5
# A cheaper model is preferred while its cross-validated ROC-AUC is within this of the best.
ROC_AUC_TOLERANCE = 0.01
# 2 added the confusion matrix and the curves; 3 the contract's fields (feature types and
# ranges, positive_label, roc_auc_floor) and one set of curves per class drawn.
CARD_SCHEMA = 3
# Points kept per curve: enough to draw it, few enough to keep the card small.
CURVE_POINTS = 40
# The largest difference from scikit-learn's probabilities an ONNX compile may show on the
# held-out split (onnxruntime computes in float32, about 7 significant digits); its labels must
# be the same. A compile outside it is a training error, not a silently different model.
PARITY_BOUND = 1e-5

# Candidates, cheapest to serve first: a linear model costs one multiply-add per feature and
# class a row, a forest walks 100 trees of depth 4. Any scikit-learn classifier with
# predict_proba fits here; the scaler in front of it (UNSCALED: none) is fitted on the training
# split only.
CANDIDATES = {
    "logistic_regression": lambda seed: LogisticRegression(max_iter=1000),
    "random_forest": lambda seed: RandomForestClassifier(max_depth=4, random_state=seed),
}


def load_training_data(path: Path | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The contract's training CSV: its features in contract order, and each row's label coded by
    its position in the contract's labels (the model's class order).

    Every feature value is read with the service's own rules, so the model only ever learns from
    values the service accepts; a bad value, an unknown label or a class without rows is a
    ModelError naming its line.
    """
    path = CONTRACT.training_data if path is None else path
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ModelError(
            f"Training data {path} not found; put your CSV there, or name the file in "
            "data/training/ as training.data in model.toml."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"Training data {path} cannot be read as UTF-8 text ({error}).") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip() for name in next(reader, [])]
        rows = [cells for cells in reader if cells]  # blank lines are no rows
    except csv.Error as error:
        raise ModelError(
            f"Training data {path} could not be parsed at line {reader.line_num}: {error}."
        ) from None
    if not rows:
        raise ModelError(f"Training data {path} has no rows under its header.")
    target = CONTRACT.training.target
    missing = [name for name in [*CONTRACT.feature_names, target] if name not in header]
    if missing:
        raise ModelError(
            f"Training data {path} has no column(s) {', '.join(missing)}, which model.toml names."
        )
    for row, cells in enumerate(rows, start=1):
        if len(cells) != len(header):
            raise ModelError(
                f"Training data {path}, data row {row}: {len(cells)} field(s) where the header "
                f"has {len(header)}."
            )
    columns = [header.index(name) for name in CONTRACT.feature_names]
    features = [[cells[column] for column in columns] for cells in rows]
    try:
        values = numbers_from_cells(features, list(range(len(columns))))
    except InputError as error:
        raise ModelError(f"Training data {path}: {error.message}") from None
    labels = [cells[header.index(target)].strip() for cells in rows]
    unknown = [(row, label) for row, label in enumerate(labels, 1) if label not in CONTRACT.labels]
    if unknown:
        row, label = unknown[0]
        raise ModelError(
            f"Training data {path}, data row {row}: {target} is {label!r}, not one of the labels "
            f"in model.toml ({', '.join(CONTRACT.labels)})"
            + (f" (and {len(unknown) - 1} more rows)." if len(unknown) > 1 else ".")
        )
    y = np.array([CONTRACT.labels.index(label) for label in labels], dtype=int)
    return pd.DataFrame(values, columns=CONTRACT.feature_names), y


# Trees split on thresholds and need no scaling. A scaler in front of them would change nothing
# but the ONNX compile, whose float32 scaler moves a value near a split threshold across it.
UNSCALED = {"random_forest"}


def build_pipeline(name: str, seed: int) -> Pipeline:
    # Scaling lives inside the pipeline so it is fitted on training rows only (no leakage).
    scale = [] if name in UNSCALED else [("scale", StandardScaler())]
    return Pipeline([*scale, ("classify", CANDIDATES[name](seed))])


def check_candidate(name: str, estimator) -> None:
    """Refuse, in one line, an estimator the service cannot serve: it must give probabilities."""
    kind = type(estimator).__name__
    if not is_classifier(estimator):
        raise ModelError(
            f"Candidate {name} ({kind}) is not a classifier; the service serves classifiers with "
            "predict_proba, such as LogisticRegression or RandomForestClassifier."
        )
    if not hasattr(estimator, "predict_proba"):
        raise ModelError(
            f"Candidate {name} ({kind}) has no predict_proba; the service answers with class "
            "probabilities, so choose a classifier that gives them (SVC: probability=True)."
        )


def check_classes(y: np.ndarray, y_train: np.ndarray, y_test: np.ndarray) -> None:
    """Every class needs rows in both splits, and enough in the training one for every fold."""
    for code, label in enumerate(CONTRACT.labels):
        total, train, test = (int(np.sum(part == code)) for part in (y, y_train, y_test))
        where = f"Class {label!r} has {total} row(s) in the training data"
        if test == 0:
            raise ModelError(f"{where}, none of them in the held-out split; add rows of it.")
        if train < CV_FOLDS:
            raise ModelError(
                f"{where}, {train} in the training split; {CV_FOLDS}-fold cross-validation "
                f"needs at least {CV_FOLDS} there: add rows of it."
            )


def _git_commit() -> str | None:
    if commit := os.environ.get("GIT_COMMIT"):
        return commit
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 (git from PATH, fixed arguments)
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _thin(x: np.ndarray, y: np.ndarray, limit: int = CURVE_POINTS) -> list[list[float]]:
    """At most `limit` (x, y) points, evenly spaced along the curve, first and last kept."""
    keep = np.unique(np.linspace(0, len(x) - 1, min(limit, len(x))).round().astype(int))
    return [[round(float(x[i]), 4), round(float(y[i]), 4)] for i in keep]


def _curves(y_true: np.ndarray, proba: np.ndarray, code: int) -> dict:
    """ROC and precision-recall points of one class against the rest, for the card's page."""
    positive, score = y_true == code, proba[:, code]
    fpr, tpr, _ = roc_curve(positive, score)
    precision, recall, _ = precision_recall_curve(positive, score)
    return {
        "positive_label": CONTRACT.labels[code],
        "roc": {
            "x": "false_positive_rate",
            "y": "true_positive_rate",
            "points": _thin(fpr, tpr),
            "auc": round(float(roc_auc_score(positive, score)), 4),
        },
        "precision_recall": {
            "x": "recall",
            "y": "precision",
            # scikit-learn returns recall from 1 down to 0; the page draws it left to right.
            "points": _thin(recall[::-1], precision[::-1]),
            "average_precision": round(float(average_precision_score(positive, score)), 4),
        },
    }


def _roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The positive label's ROC-AUC for two classes; one-vs-rest, macro-averaged, for more."""
    if len(CONTRACT.labels) == 2:
        code = CONTRACT.labels.index(CONTRACT.positive_label)
        value = roc_auc_score(y_true == code, proba[:, code])
    else:
        codes = list(range(len(CONTRACT.labels)))
        value = roc_auc_score(y_true, proba, multi_class="ovr", labels=codes)
    return round(float(value), 4)


def _held_out_report(y_true: np.ndarray, proba: np.ndarray) -> dict:
    y_pred = proba.argmax(axis=1)
    codes = list(range(len(CONTRACT.labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=codes, zero_division=0
    )
    # Binary: the positive label's curves; more classes: each class against the rest.
    drawn = [CONTRACT.labels.index(CONTRACT.positive_label)] if len(codes) == 2 else codes
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "roc_auc": _roc_auc(y_true, proba),
        "roc_auc_method": (
            f"{CONTRACT.positive_label} against {_other(CONTRACT.positive_label)}"
            if len(codes) == 2
            else "each class against the rest, averaged over the classes"
        ),
        "per_class": {
            label: {
                "precision": round(float(precision[code]), 4),
                "recall": round(float(recall[code]), 4),
                "f1": round(float(f1[code]), 4),
                "support": int(support[code]),
            }
            for code, label in enumerate(CONTRACT.labels)
        },
        # Rows are the true class, columns the predicted one, both in the labels' order.
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=codes).tolist(),
        "curves": [_curves(y_true, proba, code) for code in drawn],
    }


def _other(label: str) -> str:
    return next(other for other in CONTRACT.labels if other != label)


def _example_rows(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray) -> dict:
    """One typical held-out row per class: the correctly classified row nearest its class median.

    A class none of whose held-out rows is predicted right has no example.
    """
    predicted = pipeline.predict(X.to_numpy())
    scale = X.std().replace(0, 1).to_numpy()  # a constant column adds no distance
    integer = {feature.name for feature in CONTRACT.features if feature.integer}
    examples = {}
    for code, label in enumerate(CONTRACT.labels):
        rows = X[(y == code) & (predicted == code)]
        if rows.empty:
            continue
        distance = (((rows - rows.median()) / scale) ** 2).sum(axis=1)
        examples[label] = {
            name: int(value) if name in integer else float(value)
            for name, value in rows.loc[distance.idxmin()].items()
        }
    return examples


def _selection(cv_scores: dict, chosen: str) -> dict:
    means = {name: round(float(scores.mean()), 4) for name, scores in cv_scores.items()}
    best = max(means, key=means.get)
    words = {name: name.replace("_", " ") for name in means}
    if chosen == best:
        why = f"{words[chosen].capitalize()} has the best cross-validated ROC-AUC here."
    else:
        why = (
            f"{words[chosen].capitalize()} ({means[chosen]:.4f}) scores within "
            f"{ROC_AUC_TOLERANCE} of {words[best]} ({means[best]:.4f}) and costs less to serve."
        )
    return {
        "chosen": chosen,
        "rule": f"cheapest candidate to serve whose {CV_FOLDS}-fold ROC-AUC is within "
        f"{ROC_AUC_TOLERANCE} of the best",
        "why": why,
        "cv_roc_auc": means,
    }


def train(seed: int = SEED, data: Path | None = None) -> tuple[Pipeline, dict, np.ndarray]:
    """Fit the chosen pipeline on a stratified split; return it, its model card and the held-out
    rows (save() checks the ONNX compile against scikit-learn on them)."""
    path = CONTRACT.training_data if data is None else data
    X, y = load_training_data(path)
    if len(np.unique(y)) < len(CONTRACT.labels):
        absent = [label for code, label in enumerate(CONTRACT.labels) if not np.any(y == code)]
        raise ModelError(
            f"Training data {path} has no rows of the class(es) {', '.join(map(repr, absent))}; "
            "every label in model.toml needs rows."
        )
    if np.bincount(y).min() < 2:
        rare = CONTRACT.labels[int(np.bincount(y).argmin())]
        raise ModelError(
            f"Class {rare!r} has 1 row in the training data; it needs rows in both the training "
            "and the held-out split: add rows of it."
        )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, stratify=y, random_state=seed
    )
    check_classes(y, y_train, y_test)
    for name in CANDIDATES:
        check_candidate(name, CANDIDATES[name](seed))
    scoring = "roc_auc" if len(CONTRACT.labels) == 2 else "roc_auc_ovr"
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    cv_scores = {
        name: cross_val_score(
            build_pipeline(name, seed), X_train.to_numpy(), y_train, cv=folds, scoring=scoring
        )
        for name in CANDIDATES
    }
    best = max(scores.mean() for scores in cv_scores.values())
    chosen = next(n for n, s in cv_scores.items() if s.mean() >= best - ROC_AUC_TOLERANCE)

    pipeline = build_pipeline(chosen, seed).fit(X_train.to_numpy(), y_train)
    held_out = _held_out_report(y_test, pipeline.predict_proba(X_test.to_numpy()))
    floor = CONTRACT.roc_auc_floor
    if not held_out["roc_auc"] >= floor:  # NaN fails too
        raise ModelError(
            f"Held-out ROC-AUC {held_out['roc_auc']} is below the floor of {floor} "
            "(roc_auc_floor in model.toml)."
        )

    card = {
        "schema_version": CARD_SCHEMA,
        "name": CONTRACT.name,
        "description": CONTRACT.description,
        "intended_use": CONTRACT.disclaimer,
        "estimator": " + ".join(type(step).__name__ for _, step in pipeline.steps),
        "selection": _selection(cv_scores, chosen),
        "features": [
            {
                "name": feature.name,
                "label": feature.label,
                "unit": feature.unit,
                "description": feature.description,
                "type": feature.type,
                "min": feature.min,
                "max": feature.max,
                "training_min": float(X_train[feature.name].min()),
                "training_max": float(X_train[feature.name].max()),
            }
            for feature in CONTRACT.features
        ],
        "labels": list(CONTRACT.labels),
        "positive_label": CONTRACT.positive_label,
        "csv_columns": {label: probability_column(label) for label in CONTRACT.labels},
        "roc_auc_floor": floor,
        "metrics": {
            "held_out": held_out,
            "cross_validation": {
                "folds": CV_FOLDS,
                "scoring": scoring,
                "roc_auc_mean": round(float(cv_scores[chosen].mean()), 4),
                "roc_auc_std": round(float(cv_scores[chosen].std()), 4),
            },
        },
        "training": {
            "data": CONTRACT.training.source,
            "file": path.name,
            "target": CONTRACT.training.target,
            "data_sha256": file_checksum(path),
            "rows_train": len(X_train),
            "rows_test": len(X_test),
            "test_size": TEST_SIZE,
            "seed": seed,
        },
        "examples": _example_rows(pipeline, X_test, y_test),
        "scikit_learn_version": sklearn.__version__,
        "git_commit": _git_commit(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return pipeline, card, X_test.to_numpy()


def spread_rows(count: int = 1000, seed: int = SEED) -> np.ndarray:
    """Rows spread evenly at random over the contract's ranges, integer features whole."""
    rng = np.random.default_rng(seed)
    columns = [
        np.round(column) if feature.integer else column
        for feature in CONTRACT.features
        for column in [rng.uniform(feature.min, feature.max, count)]
    ]
    return np.column_stack(columns)


def compile_onnx(pipeline: Pipeline, rows: np.ndarray, where: str) -> tuple[bytes | None, dict]:
    """The pipeline compiled to ONNX, checked against scikit-learn on rows; and how it is served.

    A pipeline skl2onnx cannot convert (a custom transformer, say) is served with scikit-learn:
    the returned section says why. A compile whose probabilities differ by more than PARITY_BOUND
    or whose labels differ is a ModelError.
    """
    import onnxruntime
    import skl2onnx

    if not (is_classifier(pipeline) and hasattr(pipeline, "predict_proba")):
        # The service refuses it at load, with its own message (model.load).
        return None, {"runtime": "scikit-learn", "reason": "it gives no class probabilities"}
    final = pipeline[-1] if isinstance(pipeline, Pipeline) else pipeline
    try:
        compiled = skl2onnx.to_onnx(
            pipeline, rows[:1].astype(np.float32), options={id(final): {"zipmap": False}}
        )
    except Exception as error:  # the converter raises many kinds for what it cannot convert
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        return None, {"runtime": "scikit-learn", "reason": f"skl2onnx cannot convert it: {reason}"}
    content = compiled.SerializeToString()
    expected = pipeline.predict_proba(rows)
    served = OnnxModel(content).predict_proba(rows)
    difference = float(np.max(np.abs(served - expected)))
    differ = int(np.sum(served.argmax(axis=1) != expected.argmax(axis=1)))
    if not difference <= PARITY_BOUND or differ:  # NaN fails too
        raise ModelError(
            f"The ONNX compile of the pipeline differs from scikit-learn on {where}: largest "
            f"probability difference {difference:.2g} (bound {PARITY_BOUND:g}), {differ} label(s) "
            "differ; the pipeline cannot be served as trained."
        )
    return content, {
        "runtime": "onnxruntime",
        "opset": {entry.domain or "ai.onnx": entry.version for entry in compiled.opset_import},
        "output": PROBABILITIES,
        "skl2onnx_version": skl2onnx.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "parity": {
            "rows": where,
            "max_probability_difference": float(f"{difference:.3g}"),
            "bound": PARITY_BOUND,
            "labels_identical": True,
        },
    }


def save(
    pipeline: Pipeline, card: dict, model_path: Path, held_out: np.ndarray | None = None
) -> dict:
    """Write the skops artifact, its ONNX compile when there is one, and the model card.

    The compile is checked on the held-out rows when given, else on rows spread over the
    contract's ranges. The card records both files' checksums and how the model is served.
    """
    model_path.parent.mkdir(parents=True, exist_ok=True)
    if held_out is None:
        rows, where = spread_rows(), "1000 rows spread over the contract's ranges"
    else:
        rows, where = held_out, f"the held-out split ({len(held_out)} rows)"
    content, serving = compile_onnx(pipeline, rows, where)
    onnx_path = model_path.with_suffix(".onnx")
    onnx_path.unlink(missing_ok=True)  # never leave an older compile beside a new artifact
    if content is not None:
        onnx_path.write_bytes(content)
        serving = {"file": onnx_path.name, "sha256": file_checksum(onnx_path), **serving}
    skops.io.dump(pipeline, model_path)
    digest = file_checksum(model_path)
    card = {
        **card,
        "version": digest[:12],
        "artifact": {"file": model_path.name, "sha256": digest},
        "serving": serving,
    }
    model_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card
