"""Comparing model cards: held-out metrics side by side, and the quality gate on ROC-AUC.

The gate fails when the new model's held-out ROC-AUC is under the contract's floor (the one
training enforces), or worse than the baseline's by more than a tolerance. Cards keep metrics to
four decimals, so the comparison is made on four decimals too. A ROC-AUC that is not a number
from 0 to 1 (NaN, infinite, text) is refused with one line, never compared.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from mlservice.contract import label_key

DECIMALS = 4


class CardError(Exception):
    """A file is not a model card this code can read; the message is one sentence."""


def read_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
    except OSError as error:
        raise CardError(f"Cannot read the model card {path}: {error.strerror}.") from None
    except ValueError:
        raise CardError(f"{path} is not JSON, so not a model card.") from None
    if not isinstance(card, dict):
        raise CardError(f"{path} is not a model card (a JSON object).")
    return card


def held_out(card: dict) -> dict:
    """The card's held-out metrics, or {} for a card from before they were recorded."""
    metrics = card.get("metrics")
    section = metrics.get("held_out") if isinstance(metrics, dict) else None
    return section if isinstance(section, dict) else {}


def _number(value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def roc_auc_problem(card: dict) -> str | None:
    """What is wrong with the card's held-out ROC-AUC, if it is there but not from 0 to 1."""
    report = held_out(card)
    if "roc_auc" not in report:
        return None
    value = report["roc_auc"]
    number = _number(value)
    if number is not None and 0 <= number <= 1:
        return None
    return f"held-out ROC-AUC is {json.dumps(value)}, not a number from 0 to 1"


def headline_metrics(card: dict) -> dict[str, float]:
    """Display name -> value of every held-out number the card has; all are higher-is-better."""
    report = held_out(card)
    rows = {"Accuracy": report.get("accuracy"), "ROC-AUC": report.get("roc_auc")}
    per_class = report.get("per_class")
    for label, scores in (per_class if isinstance(per_class, dict) else {}).items():
        for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
            rows[f"{label}: {name}"] = scores.get(key) if isinstance(scores, dict) else None
    metrics = card.get("metrics")
    cv = metrics.get("cross_validation") if isinstance(metrics, dict) else None
    if isinstance(cv, dict):
        rows[f"{cv.get('folds', '?')}-fold ROC-AUC (training split)"] = cv.get("roc_auc_mean")
    return {name: number for name, value in rows.items() if (number := _number(value)) is not None}


def feature_names(card: dict) -> list:
    features = card.get("features")
    if not isinstance(features, list):
        return []
    return [feature.get("name") if isinstance(feature, dict) else None for feature in features]


@dataclass
class Comparison:
    markdown: str
    failures: list[str] = field(default_factory=list)  # the gate fails on any of these
    warnings: list[str] = field(default_factory=list)  # accepted drops

    @property
    def passed(self) -> bool:
        return not self.failures


def _change(old: float, new: float) -> str:
    difference = round(new - old, DECIMALS)
    if difference > 0:
        return f"+{difference:.4f} better"
    if difference < 0:
        return f"{difference:.4f} worse"
    return "unchanged"


def compare(
    old: dict | None,
    new: dict,
    *,
    tolerance: float,
    floor: float,
    accept_regression: bool = False,
    baseline_label: str = "Baseline",
    baseline_note: str | None = None,
) -> Comparison:
    """Compare NEW with OLD (None: no baseline); baseline_note says why OLD is missing."""
    if problem := roc_auc_problem(new):
        raise CardError(f"The new model card's {problem}, so the quality gate cannot judge it.")
    new_metrics = headline_metrics(new)
    if "ROC-AUC" not in new_metrics:
        raise CardError(
            "The new model card has no held-out ROC-AUC (metrics.held_out.roc_auc), "
            "so the quality gate cannot judge it."
        )
    old_metrics = headline_metrics(old) if old is not None else {}
    notes = []
    if old is None:
        notes.append(baseline_note or "No baseline yet: nothing to compare with.")
    elif feature_names(old) != feature_names(new):
        notes.append(
            "The baseline was trained on other features, so its metrics are not comparable; "
            "only the floor applies."
        )
        old_metrics = {}
    elif "labels" in old and old["labels"] != new.get("labels"):
        notes.append(
            "The baseline predicts other classes, so its metrics are not comparable; "
            "only the floor applies."
        )
        old_metrics = {}
    elif problem := roc_auc_problem(old):
        notes.append(f"The baseline's {problem}; no comparison, only the floor applies.")
        old_metrics = {}
    elif "ROC-AUC" not in old_metrics:
        notes.append(
            "The baseline card is from an older schema without held-out metrics; "
            "no comparison, only the floor applies."
        )
        old_metrics = {}

    if old_metrics:
        version = old.get("version", "?")
        lines = [
            f"| Held-out metric | {baseline_label} (`{version}`) | This model | Change |",
            "|---|---:|---:|---|",
        ]
        for name, value in new_metrics.items():
            if name in old_metrics:
                before = old_metrics[name]
                lines.append(f"| {name} | {before:.4f} | {value:.4f} | {_change(before, value)} |")
            else:
                lines.append(f"| {name} | n/a | {value:.4f} | new |")
    else:
        lines = ["| Held-out metric | This model |", "|---|---:|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in new_metrics.items()]

    comparison = Comparison(markdown="")
    roc_auc = new_metrics["ROC-AUC"]
    if roc_auc < floor:
        comparison.failures.append(f"Held-out ROC-AUC {roc_auc:.4f} is below the floor of {floor}.")
    if "ROC-AUC" in old_metrics:
        drop = round(old_metrics["ROC-AUC"] - roc_auc, DECIMALS)
        if drop > tolerance:
            message = (
                f"Held-out ROC-AUC fell from {old_metrics['ROC-AUC']:.4f} to {roc_auc:.4f} "
                f"({drop:.4f}), more than the tolerance of {tolerance}."
            )
            if accept_regression:
                comparison.warnings.append(f"{message} Accepted as a deliberate drop.")
            else:
                comparison.failures.append(message)

    if comparison.failures:
        verdict = "**Quality gate: failed.** " + " ".join(comparison.failures)
    else:
        verdict = f"**Quality gate: passed** (floor {floor}, tolerance {tolerance})."
        verdict += "".join(f" {warning}" for warning in comparison.warnings)
    comparison.markdown = "\n".join([*lines, "", *notes, *([""] if notes else []), verdict]) + "\n"
    return comparison


def figures(card: dict) -> list[dict]:
    """The card's curves as figures to draw, each with the text that stands in for it.

    One ROC and one precision-recall figure per class drawn: the positive label of a binary
    model, every class against the rest for more (a card of schema 2 held one set, unlisted).
    """
    report = held_out(card)
    curves = report.get("curves")
    sets = [curves] if isinstance(curves, dict) else curves if isinstance(curves, list) else []
    # One set: the model's ROC-AUC is that class's (a card of schema 2 records no other).
    overall = report.get("roc_auc") if len(sets) == 1 else None
    found = []
    for curve_set in sets:
        if isinstance(curve_set, dict):
            found += _figures(curve_set, overall)
    return found


def _figures(curves: dict, overall) -> list[dict]:
    positive = str(curves.get("positive_label", "the positive class"))
    key = label_key(positive) or "positive"
    found = []
    roc, pr = curves.get("roc"), curves.get("precision_recall")
    if isinstance(roc, dict) and roc.get("points"):
        roc_auc = _number(roc.get("auc", overall))
        found.append(
            {
                "id": f"roc-{key}",
                "title": f"ROC curve for {positive}",
                "summary": f"True-positive against false-positive rate for {positive} as the "
                "threshold moves"
                + (f"; held-out ROC-AUC {roc_auc:.4f}" if roc_auc is not None else "")
                + ". The diagonal is chance.",
                "points": roc["points"],
                "x_label": "False-positive rate",
                "y_label": "True-positive rate",
                "chance": True,
            }
        )
    if isinstance(pr, dict) and pr.get("points"):
        average_precision = _number(pr.get("average_precision"))
        found.append(
            {
                "id": f"precision-recall-{key}",
                "title": f"Precision-recall curve for {positive}",
                "summary": f"Precision against recall for {positive} as the threshold moves"
                + (
                    f"; average precision {average_precision:.4f}"
                    if average_precision is not None
                    else ""
                )
                + ".",
                "points": pr["points"],
                "x_label": "Recall",
                "y_label": "Precision",
                "chance": False,
            }
        )
    return found
