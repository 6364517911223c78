import dataclasses
import html
import json
import re

import html5lib
import pytest

from mlservice import create_app
from mlservice.contract import CONTRACT, label_key, show
from tests.tools import copy_model
from tests.values import FEATURE_NAMES, FEATURES, FIRST, LABELS, below, text

MIDDLE = FEATURES[len(FEATURES) // 2]


def parse_strict(page: str):
    # html5lib's strict mode raises on any HTML5 parse error.
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


def field_values(page: str) -> dict[str, str]:
    tree = parse_strict(page)
    return {node.get("name"): node.get("value") for node in tree.iter("input")}


def field_error(page: str, name: str) -> str | None:
    tree = parse_strict(page)
    node = tree.find(f".//p[@id='{name}-error']")
    return None if node is None else node.text


def test_page_has_a_number_field_per_feature_with_units_and_ranges(client, card):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    tree = parse_strict(page)
    inputs = tree.findall(".//input")
    assert [i.get("name") for i in inputs] == list(FEATURE_NAMES)
    assert {i.get("type") for i in inputs} == {"number"}
    for feature in card["features"]:
        hint = tree.find(f".//small[@id='{feature['name']}-hint']").text
        assert hint.startswith(f"{feature['unit']} · " if feature["unit"] else "")
        seen = f"seen in training {feature['training_min']:g}–{feature['training_max']:g}"  # noqa: RUF001
        assert seen in hint


def test_page_words_come_from_the_contract(client):
    tree = parse_strict(client.get("/").get_data(as_text=True))
    assert tree.find(".//title").text == f"{CONTRACT.title} · mlservice"
    assert tree.find(".//h1").text == CONTRACT.title
    assert CONTRACT.description in tree.find(".//p[@class='lead']").text
    assert tree.find(".//footer/p").text == CONTRACT.disclaimer


def test_page_uses_only_local_assets(client):
    page = client.get("/").get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    with client.get("/static/style.css") as css:
        assert css.status_code == 200
        assert css.mimetype == "text/css"


@pytest.mark.parametrize("label", LABELS)
def test_example_buttons_fill_the_form_and_predict(client, card, label):
    if label not in card["examples"]:
        pytest.skip(f"no held-out {label} row was predicted right, so there is no example")
    tree = parse_strict(client.get("/").get_data(as_text=True))
    [button] = [a for a in tree.iterfind(".//p[@class='examples']/a") if a.text == label]
    page = client.get(button.get("href")).get_data(as_text=True)
    values = field_values(page)
    assert {k: float(v) for k, v in values.items()} == card["examples"][label]

    result = client.post("/", data=values)
    assert result.status_code == 200
    tree = parse_strict(result.get_data(as_text=True))
    assert tree.find(".//output[@id='prediction']").text == label
    assert "Probability" in result.get_data(as_text=True)


def test_the_result_shows_every_label_with_its_probability(client, example):
    label, row = example
    page = client.post("/", data={name: text(value) for name, value in row.items()})
    tree = parse_strict(page.get_data(as_text=True))
    rows = tree.findall(".//table[@id='probabilities']/tbody/tr")
    assert [tr.find("th").text for tr in rows] == list(LABELS)
    meters = {tr.find("th").text: float(tr.find("td/meter").get("value")) for tr in rows}
    assert sum(meters.values()) == pytest.approx(1)
    assert max(meters, key=meters.get) == label
    [predicted] = [tr.find("th").text for tr in rows if tr.get("class") == "predicted"]
    assert predicted == label


def test_unknown_example_is_not_found(client, card):
    response = client.get("/?example=unsure", headers={"Accept": "text/html"})
    assert response.status_code == 404
    known = " or ".join(card["examples"])
    page = response.get_data(as_text=True)
    assert f"There is no &#39;unsure&#39; example; try {html.escape(known)}." in page


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "Enter a number."),
        ("", "Enter a number."),
        (text(below(MIDDLE)), f"Must be {show(MIDDLE.min)} or more."),
        ("inf", "Enter a finite number."),
    ],
)
def test_invalid_field_shows_its_own_message_and_keeps_the_input(client, row, value, message):
    form = {name: f"{v:g}" for name, v in row.items()}
    form[MIDDLE.name] = value
    response = client.post("/", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert field_error(page, MIDDLE.name) == message
    others = [name for name in FEATURE_NAMES if name != MIDDLE.name]
    assert all(field_error(page, name) is None for name in others)
    assert field_values(page) == form
    assert 'aria-invalid="true"' in page


def test_empty_form_marks_every_field(client):
    response = client.post("/", data={})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert all(field_error(page, name) == "Enter a number." for name in FEATURE_NAMES)


def test_input_is_escaped_on_output(client):
    response = client.post("/", data={FIRST.name: '"><script>alert(1)</script>'})
    page = response.get_data(as_text=True)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page or "&#34;&gt;&lt;script" in page


def unseen(feature, seen: dict) -> float | None:
    """A value the contract accepts but training never saw, if there is room for one."""
    if seen["training_max"] < feature.max:
        return feature.max
    if feature.min < seen["training_min"]:
        return feature.min
    return None


def test_values_outside_the_training_range_are_flagged(client, card, row):
    found = [
        (feature, value)
        for feature, seen in zip(FEATURES, card["features"], strict=True)
        if (value := unseen(feature, seen)) is not None
    ]
    if not found:
        pytest.skip("training saw every feature's whole range")
    feature, value = found[0]
    form = {name: f"{v:g}" for name, v in row.items()}
    form[feature.name] = text(value)
    page = client.post("/", data=form).get_data(as_text=True)
    assert f"Outside the range seen in training: {html.escape(feature.label)}." in page


def test_unknown_page_is_an_html_404(client):
    response = client.get("/nowhere", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    parse_strict(response.get_data(as_text=True))


def test_json_clients_get_json_errors_outside_the_api(client):
    response = client.get("/nowhere", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


# --- The model card page -------------------------------------------------------------------


SVG = "{http://www.w3.org/2000/svg}"


def cells(tree, table_id: str) -> list[list[str]]:
    table = tree.find(f".//table[@id='{table_id}']/tbody")
    return [["".join(cell.itertext()).strip() for cell in row] for row in table.iter("tr")]


def test_header_links_to_the_model_card_page(client):
    tree = parse_strict(client.get("/").get_data(as_text=True))
    link = next(a for a in tree.iter("a") if a.text == "Model card")
    assert link.get("href") == "/model"


def test_model_card_page_shows_metrics_matrix_features_and_provenance(client, card):
    response = client.get("/model")
    assert response.status_code == 200
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src only
    page = response.get_data(as_text=True)
    tree = parse_strict(page)
    held_out = card["metrics"]["held_out"]
    assert tree.find(".//dd[@id='roc-auc']").text == f"{held_out['roc_auc']:.4f}"
    assert tree.find(".//dd[@id='accuracy']").text == f"{held_out['accuracy']:.4f}"
    cv = card["metrics"]["cross_validation"]
    assert tree.find(".//dd[@id='cv-roc-auc']").text == (
        f"{cv['roc_auc_mean']:.4f} ± {cv['roc_auc_std']:.4f}"
    )
    per_class = cells(tree, "per-class")
    assert [row[0] for row in per_class] == list(LABELS)
    for row, label in zip(per_class, LABELS, strict=True):
        assert row[2] == f"{held_out['per_class'][label]['recall']:.4f}"
    assert cells(tree, "confusion-matrix") == [
        [f"true {label}", *map(str, counts)]
        for label, counts in zip(LABELS, held_out["confusion_matrix"], strict=True)
    ]
    for feature in card["features"]:
        assert feature["label"] in page
        assert f"{feature['training_min']:g}–{feature['training_max']:g}" in page  # noqa: RUF001
    for value in (card["artifact"]["sha256"], card["training"]["data_sha256"]):
        assert f"<code>{value}</code>" in page
    assert card["scikit_learn_version"] in page
    assert card["created_at"] in page
    assert card["selection"]["why"] in page


def test_model_card_curves_are_inline_svg_with_text_alternatives(client, card):
    page = client.get("/model").get_data(as_text=True)
    tree = parse_strict(page)
    curve_sets = card["metrics"]["held_out"]["curves"]
    # One set for the positive label of a binary model, one per class for more classes.
    drawn = [CONTRACT.positive_label] if len(LABELS) == 2 else list(LABELS)
    assert [curves["positive_label"] for curves in curve_sets] == drawn
    figures = {figure.get("id"): figure for figure in tree.iter("figure")}
    keys = [label_key(label) for label in drawn]
    assert sorted(figures) == sorted(
        f"{kind}-{key}" for key in keys for kind in ("roc", "precision-recall")
    )
    for key, curves in zip(keys, curve_sets, strict=True):
        roc_auc = f"{curves['roc']['auc']:.4f}"
        average_precision = f"{curves['precision_recall']['average_precision']:.4f}"
        for name, part, number in [
            (f"roc-{key}", "roc", roc_auc),
            (f"precision-recall-{key}", "precision_recall", average_precision),
        ]:
            svg = figures[name].find(f"{SVG}svg")
            assert svg.get("role") == "img"
            assert svg.get("aria-labelledby") == f"{name}-title {name}-desc"
            assert curves["positive_label"] in svg.find(f"{SVG}title").text
            assert number in svg.find(f"{SVG}desc").text
            assert number in figures[name].find("figcaption").text
            points = svg.find(f"{SVG}polyline").get("points").split()
            assert len(points) == len(curves[part]["points"])
            # The ends of the plot: (0, 0) at the bottom left, (1, 1) at the top right.
            xs, ys = zip(*(map(float, point.split(",")) for point in points), strict=True)
            assert 40 <= min(xs) <= max(xs) <= 260
            assert 10 <= min(ys) <= max(ys) <= 210
        roc_points = figures[f"roc-{key}"].find(f"{SVG}svg/{SVG}polyline").get("points").split()
        assert (roc_points[0], roc_points[-1]) == ("40.0,210.0", "260.0,10.0")
    # Nothing the Content-Security-Policy would block: no script, no inline style.
    assert "<script" not in page
    assert "style=" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_model_card_page_shows_what_an_older_card_has(tmp_path, model_path, card):
    # A card from before the confusion matrix and curves, and without the selection notes.
    older = json.loads(json.dumps(card))
    del older["metrics"]["held_out"]["confusion_matrix"]
    del older["metrics"]["held_out"]["curves"]
    del older["schema_version"], older["selection"], older["metrics"]["cross_validation"]
    copy_model(model_path, tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(older))
    app = create_app({"TESTING": True, "MODEL_PATH": str(tmp_path / "model.skops")})
    response = app.test_client().get("/model")
    assert response.status_code == 200
    tree = parse_strict(response.get_data(as_text=True))
    assert tree.find(".//dd[@id='roc-auc']").text == f"{card['metrics']['held_out']['roc_auc']:.4f}"
    assert tree.find(".//dd[@id='cv-roc-auc']") is None
    assert tree.find(".//table[@id='confusion-matrix']") is None
    assert tree.find(".//section[@id='choice']") is None
    assert "This card records no curves." in response.get_data(as_text=True)


def test_model_card_page_without_any_metrics(app, card):
    bare = {k: v for k, v in card.items() if k not in {"metrics", "training", "selection"}}
    model = app.extensions["mlservice.model"]
    app.extensions["mlservice.model"] = dataclasses.replace(model, card=bare)
    response = app.test_client().get("/model")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    parse_strict(page)
    assert "This card records no held-out metrics." in page
    assert "This card records no curves." in page


THREE_CLASS_CARD = {
    "version": "3class",
    "description": "Sorts a sample into one of three kinds.",
    "estimator": "StandardScaler + LogisticRegression",
    "labels": ["setosa", "versicolor", "virginica"],
    "features": [
        {
            "name": "petal_length",
            "label": "Petal length",
            "unit": "cm",
            "description": "Long side.",
            "training_min": 1.0,
            "training_max": 6.9,
        },
    ],
    "metrics": {
        "held_out": {
            "accuracy": 0.9333,
            "roc_auc": 0.9911,
            "per_class": {
                "setosa": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 10},
                "versicolor": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10},
                "virginica": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10},
            },
            "confusion_matrix": [[10, 0, 0], [0, 9, 1], [0, 1, 9]],
        },
        "cross_validation": {"folds": 5, "roc_auc_mean": 0.99, "roc_auc_std": 0.004},
    },
    "scikit_learn_version": "1.7.2",
    "artifact": {"file": "model.skops", "sha256": "ab" * 32},
}


def test_model_card_page_renders_a_three_class_card(app):
    model = app.extensions["mlservice.model"]
    app.extensions["mlservice.model"] = dataclasses.replace(model, card=THREE_CLASS_CARD)
    response = app.test_client().get("/model")
    assert response.status_code == 200
    tree = parse_strict(response.get_data(as_text=True))
    assert cells(tree, "confusion-matrix") == [
        ["true setosa", "10", "0", "0"],
        ["true versicolor", "0", "9", "1"],
        ["true virginica", "0", "1", "9"],
    ]
    header = tree.find(".//table[@id='confusion-matrix']/thead/tr")
    assert [th.text for th in header.iter("th")] == [
        "predicted setosa",
        "predicted versicolor",
        "predicted virginica",
    ]
    assert [row[0] for row in cells(tree, "per-class")] == ["setosa", "versicolor", "virginica"]
    assert cells(tree, "per-class")[1] == ["versicolor", "0.9000", "0.9000", "0.9000", "10"]
    assert tree.find(".//dd[@id='roc-auc']").text == "0.9911"
    assert "This card records no curves." in response.get_data(as_text=True)
