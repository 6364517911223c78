"""`mlservice compare-cards`: the Markdown table and the quality gate, on hand-written cards.

The gate's floor is the contract's; these tests fix it at 0.95, so they hold for any model.
"""

import json

import pytest
from click.testing import CliRunner

from mlservice import cards, cli, contract

FEATURES = [{"name": "radius_mean"}, {"name": "texture_mean"}]
LABELS = ["malignant", "benign"]


@pytest.fixture(autouse=True)
def floor(monkeypatch) -> float:
    """The contract's floor, set to 0.95 for these cards."""
    return set_floor(monkeypatch, 0.95)


def set_floor(monkeypatch, value: float) -> float:
    fixed = contract.load().model_copy(update={"roc_auc_floor": value})
    monkeypatch.setattr(contract, "served", lambda: fixed)
    return value


def card(roc_auc, accuracy=0.9, version="new", features=FEATURES, labels=LABELS) -> dict:
    return {
        "version": version,
        "features": features,
        "labels": labels,
        "metrics": {
            "held_out": {
                "accuracy": accuracy,
                "roc_auc": roc_auc,
                "per_class": {
                    "malignant": {"precision": 0.8, "recall": 0.75, "f1": 0.7742, "support": 4},
                    "benign": {"precision": 0.9, "recall": 0.95, "f1": 0.9243, "support": 6},
                },
            },
            "cross_validation": {"folds": 5, "roc_auc_mean": 0.97, "roc_auc_std": 0.01},
        },
    }


def run(tmp_path, old: dict | None, new: dict, *args: str):
    old_path, new_path = tmp_path / "old.json", tmp_path / "new.json"
    if old is not None:
        old_path.write_text(json.dumps(old))
    new_path.write_text(json.dumps(new))
    return CliRunner().invoke(cli.main, ["compare-cards", str(old_path), str(new_path), *args])


def row(output: str, metric: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"| {metric} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_better_model_passes_and_says_better(tmp_path):
    result = run(tmp_path, card(0.97, accuracy=0.92, version="v1"), card(0.985))
    assert result.exit_code == 0, result.output
    assert "| Held-out metric | Baseline (`v1`) | This model | Change |" in result.output
    assert row(result.output, "ROC-AUC") == ["ROC-AUC", "0.9700", "0.9850", "+0.0150 better"]
    assert row(result.output, "Accuracy") == ["Accuracy", "0.9200", "0.9000", "-0.0200 worse"]
    assert row(result.output, "benign: recall") == [
        "benign: recall",
        "0.9500",
        "0.9500",
        "unchanged",
    ]
    assert "Quality gate: passed" in result.output
    assert "::error" not in result.output


def test_equal_model_passes_unchanged(tmp_path):
    result = run(tmp_path, card(0.97), card(0.97))
    assert result.exit_code == 0
    assert row(result.output, "ROC-AUC")[3] == "unchanged"
    assert row(result.output, "5-fold ROC-AUC (training split)")[1:] == [
        "0.9700",
        "0.9700",
        "unchanged",
    ]


def test_slightly_worse_within_the_tolerance_passes(tmp_path):
    result = run(tmp_path, card(0.98), card(0.975))
    assert result.exit_code == 0
    assert row(result.output, "ROC-AUC")[3] == "-0.0050 worse"
    assert "Quality gate: passed" in result.output


def test_worse_beyond_the_tolerance_fails_with_an_annotation(tmp_path):
    result = run(tmp_path, card(0.99), card(0.97))
    assert result.exit_code == 1
    assert row(result.output, "ROC-AUC")[3] == "-0.0200 worse"
    assert (
        "::error title=Model quality gate::Held-out ROC-AUC fell from 0.9900 to 0.9700 (0.0200), "
        "more than the tolerance of 0.01." in result.output
    )
    assert "**Quality gate: failed.**" in result.output


@pytest.mark.parametrize(("old", "new"), [(0.98, 0.97), (0.99, 0.98), (0.96, 0.95)])
def test_a_drop_of_exactly_the_tolerance_passes(tmp_path, old, new):
    # In binary floating point 0.98 - 0.97 is 0.010000000000000009: four decimals decide.
    result = run(tmp_path, card(old), card(new))
    assert result.exit_code == 0, result.output
    assert row(result.output, "ROC-AUC")[3] == "-0.0100 worse"


def test_a_drop_just_past_the_tolerance_fails(tmp_path):
    assert run(tmp_path, card(0.98), card(0.9699)).exit_code == 1


def test_the_tolerance_option_widens_the_gate(tmp_path):
    assert run(tmp_path, card(0.99), card(0.97), "--tolerance", "0.02").exit_code == 0
    assert run(tmp_path, card(0.99), card(0.97), "--tolerance", "0.019").exit_code == 1


def test_negative_tolerance_is_refused(tmp_path):
    result = run(tmp_path, card(0.99), card(0.97), "--tolerance", "-0.1")
    assert result.exit_code == 2
    assert "--tolerance" in result.output


def test_accepted_regression_passes_with_a_warning(tmp_path):
    result = run(tmp_path, card(0.99), card(0.96), "--accept-regression")
    assert result.exit_code == 0
    assert "::warning title=Model quality gate::Held-out ROC-AUC fell from 0.9900" in result.output
    assert "Accepted as a deliberate drop." in result.output
    assert "::error" not in result.output


def test_under_the_floor_fails_even_without_a_baseline(tmp_path):
    result = run(tmp_path, None, card(0.94))
    assert result.exit_code == 1
    assert (
        "::error title=Model quality gate::Held-out ROC-AUC 0.9400 is below the floor of 0.95."
        in result.output
    )


def test_under_the_floor_is_not_accepted_by_the_override(tmp_path):
    result = run(tmp_path, card(0.99), card(0.94), "--accept-regression", "--tolerance", "0.1")
    assert result.exit_code == 1
    assert "below the floor" in result.output


def test_the_floor_is_the_contracts(tmp_path, monkeypatch):
    set_floor(monkeypatch, 0.99)
    result = run(tmp_path, None, card(0.985))
    assert result.exit_code == 1
    assert "Held-out ROC-AUC 0.9850 is below the floor of 0.99." in result.output
    set_floor(monkeypatch, 0.98)
    assert run(tmp_path, None, card(0.985)).exit_code == 0


def test_a_bad_contract_is_one_line(tmp_path, monkeypatch):
    def broken():
        raise contract.ContractError("model.toml: roc_auc_floor: Input should be a valid number.")

    monkeypatch.setattr(contract, "served", broken)
    result = run(tmp_path, None, card(0.97))
    assert result.exit_code == 1
    assert result.output == "Error: model.toml: roc_auc_floor: Input should be a valid number.\n"


def test_no_baseline_yet_shows_the_new_metrics(tmp_path):
    result = run(tmp_path, None, card(0.97))
    assert result.exit_code == 0
    assert "No baseline yet" in result.output
    assert "| Held-out metric | This model |" in result.output
    assert row(result.output, "ROC-AUC") == ["ROC-AUC", "0.9700"]
    assert row(result.output, "malignant: F1") == ["malignant: F1", "0.7742"]


def test_baseline_from_an_older_schema_is_not_compared(tmp_path):
    older = {"version": "old", "features": FEATURES, "metrics": {"accuracy": 0.99}}
    result = run(tmp_path, older, card(0.96))
    assert result.exit_code == 0, result.output
    assert "older schema without held-out metrics" in result.output
    assert "Baseline" not in result.output


def test_baseline_with_other_classes_gates_on_the_floor_only(tmp_path):
    other = card(0.999, labels=["malignant", "benign", "unsure"])
    result = run(tmp_path, other, card(0.96))
    assert result.exit_code == 0, result.output
    assert (
        "The baseline predicts other classes, so its metrics are not comparable; "
        "only the floor applies." in result.output
    )
    assert "Baseline" not in result.output
    assert run(tmp_path, other, card(0.9)).exit_code == 1


def test_baseline_with_other_features_gates_on_the_floor_only(tmp_path):
    other = card(0.999, features=[{"name": "area_mean"}])
    result = run(tmp_path, other, card(0.96))
    assert result.exit_code == 0, result.output
    assert "trained on other features" in result.output
    assert "Baseline" not in result.output
    assert run(tmp_path, other, card(0.9)).exit_code == 1


def test_unreadable_baseline_is_no_comparison(tmp_path):
    (tmp_path / "old.json").write_text("<html>not found</html>")
    (tmp_path / "new.json").write_text(json.dumps(card(0.97)))
    result = CliRunner().invoke(
        cli.main, ["compare-cards", str(tmp_path / "old.json"), str(tmp_path / "new.json")]
    )
    assert result.exit_code == 0
    assert "the baseline is unreadable" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "is not a model card (a JSON object)"),
        ("{", "is not JSON"),
        ('{"metrics": {"held_out": {"roc_auc": "high"}}}', 'ROC-AUC is "high", not a number'),
        ('{"metrics": {"accuracy": 0.9}}', "has no held-out ROC-AUC"),
    ],
)
def test_a_new_card_that_cannot_be_judged_is_a_clear_error(tmp_path, text, message):
    (tmp_path / "new.json").write_text(text)
    result = CliRunner().invoke(
        cli.main, ["compare-cards", str(tmp_path / "absent.json"), str(tmp_path / "new.json")]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_new_card_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        cli.main, ["compare-cards", str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    )
    assert result.exit_code == 1
    assert "Cannot read the model card" in result.output


def test_a_metric_the_baseline_lacks_is_marked_new():
    old = card(0.97)
    del old["metrics"]["cross_validation"]
    comparison = cards.compare(old, card(0.97), tolerance=0.01, floor=0.95)
    assert "| 5-fold ROC-AUC (training split) | n/a | 0.9700 | new |" in comparison.markdown
    assert comparison.passed


def test_multi_class_cards_compare_per_class():
    three = card(0.97)
    three["metrics"]["held_out"]["per_class"]["normal"] = {
        "precision": 0.5,
        "recall": 0.6,
        "f1": 0.5455,
    }
    better = json.loads(json.dumps(three))
    better["metrics"]["held_out"]["per_class"]["normal"]["recall"] = 0.7
    comparison = cards.compare(three, better, tolerance=0.01, floor=0.95)
    assert "| normal: recall | 0.6000 | 0.7000 | +0.1000 better |" in comparison.markdown


def test_baseline_label_names_the_baseline(tmp_path):
    result = run(
        tmp_path, card(0.97, version="abc"), card(0.97), "--baseline-label", "release v1.0.0"
    )
    assert "| Held-out metric | release v1.0.0 (`abc`) | This model | Change |" in result.output
    (tmp_path / "old.json").unlink()
    missing = run(tmp_path, None, card(0.97), "--baseline-label", "earlier release")
    assert "No baseline yet: there is no earlier release to compare with." in missing.output


@pytest.mark.parametrize(
    ("literal", "shown"),
    [
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ('"0.97"', '"0.97"'),
        ("true", "true"),
        ("null", "null"),
        ("1.5", "1.5"),
        ("-0.1", "-0.1"),
    ],
)
def test_a_new_roc_auc_that_is_not_a_number_from_0_to_1_is_refused_in_one_line(
    tmp_path, literal, shown
):
    baseline = tmp_path / "old.json"
    baseline.write_text(json.dumps(card(0.99)))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(card(0.5)).replace('"roc_auc": 0.5', f'"roc_auc": {literal}'))
    result = CliRunner().invoke(cli.main, ["compare-cards", str(baseline), str(new)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: The new model card's held-out ROC-AUC is {shown}, not a number from 0 to 1, "
        "so the quality gate cannot judge it.\n"
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", '"high"', "2"])
def test_a_baseline_roc_auc_that_is_not_a_number_from_0_to_1_is_not_compared(tmp_path, literal):
    (tmp_path / "old.json").write_text(
        json.dumps(card(0.5)).replace('"roc_auc": 0.5', f'"roc_auc": {literal}')
    )
    (tmp_path / "new.json").write_text(json.dumps(card(0.96)))
    result = CliRunner().invoke(
        cli.main, ["compare-cards", str(tmp_path / "old.json"), str(tmp_path / "new.json")]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"The baseline's held-out ROC-AUC is {literal}, not a number from 0 to 1; no comparison, "
        "only the floor applies." in result.output
    )
    assert "Baseline" not in result.output


@pytest.mark.parametrize("roc_auc", [0, 1, 0.0, 1.0, 0.5])
def test_roc_auc_from_0_to_1_inclusive_is_judged(roc_auc):
    new = card(roc_auc)
    assert cards.roc_auc_problem(new) is None
    comparison = cards.compare(None, new, tolerance=0.01, floor=0.5)
    assert comparison.passed is (roc_auc >= 0.5)


def test_a_card_without_held_out_metrics_has_no_roc_auc_problem():
    assert cards.roc_auc_problem({"metrics": {}}) is None
    assert cards.roc_auc_problem({}) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"metrics": []}',
        '{"metrics": {"held_out": []}}',
        '{"metrics": {"held_out": {"accuracy": 0.9}}}',
    ],
)
def test_cards_without_held_out_metrics_are_judged_by_nothing(tmp_path, text):
    (tmp_path / "new.json").write_text(text)
    result = CliRunner().invoke(
        cli.main, ["compare-cards", str(tmp_path / "absent.json"), str(tmp_path / "new.json")]
    )
    assert result.exit_code == 1
    assert result.output == (
        "Error: The new model card has no held-out ROC-AUC (metrics.held_out.roc_auc), "
        "so the quality gate cannot judge it.\n"
    )


def test_headline_metrics_skip_what_is_not_a_number():
    odd = card(0.97)
    odd["metrics"]["held_out"]["accuracy"] = "high"
    odd["metrics"]["held_out"]["per_class"] = {"a": "x", "b": {"precision": True, "recall": 0.5}}
    odd["metrics"]["cross_validation"] = ["not", "a", "dict"]
    assert cards.headline_metrics(odd) == {"ROC-AUC": 0.97, "b: recall": 0.5}
    odd["metrics"]["held_out"]["per_class"] = ["a"]
    odd["metrics"]["cross_validation"] = {"roc_auc_mean": 0.9}
    assert cards.headline_metrics(odd) == {
        "ROC-AUC": 0.97,
        "?-fold ROC-AUC (training split)": 0.9,
    }


def test_feature_names_of_odd_cards():
    assert cards.feature_names({}) == []
    assert cards.feature_names({"features": "x"}) == []
    assert cards.feature_names({"features": [{"name": "a"}, "b"]}) == ["a", None]


def test_a_baseline_without_labels_is_compared_by_its_features():
    old = card(0.99)
    del old["labels"]
    comparison = cards.compare(old, card(0.97), tolerance=0.01, floor=0.95)
    assert not comparison.passed
    assert "| ROC-AUC | 0.9900 | 0.9700 | -0.0200 worse |" in comparison.markdown


def curve_set(label, auc=None, average_precision=0.8, points=((0, 0), (1, 1))):
    roc = {"points": [list(p) for p in points]}
    if auc is not None:
        roc["auc"] = auc
    pr = {"points": [list(p) for p in points], "average_precision": average_precision}
    return {"positive_label": label, "roc": roc, "precision_recall": pr}


def with_curves(curves, roc_auc=0.9) -> dict:
    return {"metrics": {"held_out": {"roc_auc": roc_auc, "curves": curves}}}


def test_figures_of_one_class_state_the_models_roc_auc():
    [roc, pr] = cards.figures(with_curves([curve_set("will default")]))
    assert (roc["id"], pr["id"]) == ("roc-will_default", "precision-recall-will_default")
    assert roc["title"] == "ROC curve for will default"
    assert roc["summary"] == (
        "True-positive against false-positive rate for will default as the threshold moves; "
        "held-out ROC-AUC 0.9000. The diagonal is chance."
    )
    assert pr["summary"] == (
        "Precision against recall for will default as the threshold moves; "
        "average precision 0.8000."
    )
    assert (roc["chance"], pr["chance"]) == (True, False)
    assert (roc["x_label"], roc["y_label"]) == ("False-positive rate", "True-positive rate")
    assert (pr["x_label"], pr["y_label"]) == ("Recall", "Precision")
    assert roc["points"] == pr["points"] == [[0, 0], [1, 1]]


def test_figures_of_a_schema_2_card_are_its_one_curve_set():
    [roc, _] = cards.figures(with_curves(curve_set("benign")))
    assert roc["id"] == "roc-benign"
    assert "held-out ROC-AUC 0.9000" in roc["summary"]


def test_figures_per_class_state_each_classes_own_roc_auc():
    sets = [curve_set("a", auc=0.91), curve_set("b", auc=0.92), curve_set("c")]
    figures = cards.figures(with_curves(sets, roc_auc=0.95))
    assert [f["id"] for f in figures] == [
        "roc-a",
        "precision-recall-a",
        "roc-b",
        "precision-recall-b",
        "roc-c",
        "precision-recall-c",
    ]
    assert "ROC-AUC 0.9100" in figures[0]["summary"]
    assert "ROC-AUC 0.9200" in figures[2]["summary"]
    # The model's one-vs-rest average is no class's own: a set without its own says none.
    assert figures[4]["summary"] == (
        "True-positive against false-positive rate for c as the threshold moves. "
        "The diagonal is chance."
    )


def test_figures_leave_out_what_a_card_lacks():
    assert cards.figures({}) == []
    assert cards.figures(with_curves("curves")) == []
    assert cards.figures(with_curves(["not a set"])) == []
    empty = curve_set("a", points=())
    assert cards.figures(with_curves([empty])) == []
    [roc, pr] = cards.figures(with_curves([curve_set("???", average_precision="high")]))
    assert (roc["id"], pr["id"]) == ("roc-positive", "precision-recall-positive")
    assert pr["summary"] == "Precision against recall for ??? as the threshold moves."
    nameless = curve_set("x")
    del nameless["positive_label"]
    [roc, _] = cards.figures(with_curves([nameless]))
    assert roc["title"] == "ROC curve for the positive class"


# The gate's whole comment, as the pull request shows it, for the three shapes it takes.
NEW_METRICS = """\
| Accuracy | 0.9000 |
| ROC-AUC | 0.9700 |
| malignant: precision | 0.8000 |
| malignant: recall | 0.7500 |
| malignant: F1 | 0.7742 |
| benign: precision | 0.9000 |
| benign: recall | 0.9500 |
| benign: F1 | 0.9243 |
| 5-fold ROC-AUC (training split) | 0.9700 |
"""


def test_the_whole_comment_without_a_baseline():
    comparison = cards.compare(None, card(0.97), tolerance=0.01, floor=0.95)
    assert comparison.markdown == (
        "| Held-out metric | This model |\n|---|---:|\n"
        + NEW_METRICS
        + "\nNo baseline yet: nothing to compare with.\n"
        + "\n**Quality gate: passed** (floor 0.95, tolerance 0.01).\n"
    )


def test_the_whole_comment_of_a_failed_comparison():
    old = card(0.99)
    del old["version"]
    comparison = cards.compare(old, card(0.9), tolerance=0.01, floor=0.95)
    assert comparison.markdown == (
        "| Held-out metric | Baseline (`?`) | This model | Change |\n"
        "|---|---:|---:|---|\n"
        "| Accuracy | 0.9000 | 0.9000 | unchanged |\n"
        "| ROC-AUC | 0.9900 | 0.9000 | -0.0900 worse |\n"
        "| malignant: precision | 0.8000 | 0.8000 | unchanged |\n"
        "| malignant: recall | 0.7500 | 0.7500 | unchanged |\n"
        "| malignant: F1 | 0.7742 | 0.7742 | unchanged |\n"
        "| benign: precision | 0.9000 | 0.9000 | unchanged |\n"
        "| benign: recall | 0.9500 | 0.9500 | unchanged |\n"
        "| benign: F1 | 0.9243 | 0.9243 | unchanged |\n"
        "| 5-fold ROC-AUC (training split) | 0.9700 | 0.9700 | unchanged |\n"
        "\n"
        "**Quality gate: failed.** Held-out ROC-AUC 0.9000 is below the floor of 0.95. "
        "Held-out ROC-AUC fell from 0.9900 to 0.9000 (0.0900), more than the tolerance of 0.01.\n"
    )


@pytest.mark.parametrize(
    ("old", "note"),
    [
        (
            card(0.99, features=[{"name": "income"}]),
            "The baseline was trained on other features, so its metrics are not comparable; "
            "only the floor applies.",
        ),
        (
            {"version": "old", "features": FEATURES, "metrics": {"accuracy": 0.99}},
            "The baseline card is from an older schema without held-out metrics; "
            "no comparison, only the floor applies.",
        ),
    ],
)
def test_the_whole_comment_when_the_baseline_is_not_comparable(old, note):
    comparison = cards.compare(old, card(0.97), tolerance=0.01, floor=0.95)
    assert comparison.markdown == (
        "| Held-out metric | This model |\n|---|---:|\n"
        + NEW_METRICS
        + f"\n{note}\n"
        + "\n**Quality gate: passed** (floor 0.95, tolerance 0.01).\n"
    )
