import re

import html5lib
import pytest

from mlservice.features import FEATURE_NAMES


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


def test_page_has_six_number_fields_with_units_and_ranges(client, card):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    tree = parse_strict(page)
    inputs = tree.findall(".//input")
    assert [i.get("name") for i in inputs] == list(FEATURE_NAMES)
    assert {i.get("type") for i in inputs} == {"number"}
    for feature in card["features"]:
        assert f"{feature['unit']} · seen in training {feature['training_min']:g}" in page


def test_page_uses_only_local_assets(client):
    page = client.get("/").get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    with client.get("/static/style.css") as css:
        assert css.status_code == 200
        assert css.mimetype == "text/css"


@pytest.mark.parametrize("label", ["benign", "malignant"])
def test_example_buttons_fill_the_form_and_predict(client, card, label):
    page = client.get(f"/?example={label}").get_data(as_text=True)
    assert f'href="/?example={label}"' in page
    values = field_values(page)
    assert {k: float(v) for k, v in values.items()} == card["examples"][label]

    result = client.post("/", data=values)
    assert result.status_code == 200
    tree = parse_strict(result.get_data(as_text=True))
    assert tree.find(".//output[@id='prediction']").text == label.capitalize()
    assert "Probability" in result.get_data(as_text=True)


def test_unknown_example_is_not_found(client):
    response = client.get("/?example=unsure", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "no &#39;unsure&#39; example; try benign or malignant" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "Enter a number."),
        ("", "Enter a number."),
        ("-3", "Must be 0 or more."),
        ("inf", "Enter a finite number."),
    ],
)
def test_invalid_field_shows_its_own_message_and_keeps_the_input(client, card, value, message):
    form = {name: f"{v:g}" for name, v in card["examples"]["benign"].items()}
    form["texture_se"] = value
    response = client.post("/", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert field_error(page, "texture_se") == message
    assert all(field_error(page, name) is None for name in FEATURE_NAMES if name != "texture_se")
    assert field_values(page) == form
    assert 'aria-invalid="true"' in page


def test_empty_form_marks_every_field(client):
    response = client.post("/", data={})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert all(field_error(page, name) == "Enter a number." for name in FEATURE_NAMES)


def test_input_is_escaped_on_output(client):
    response = client.post("/", data={"radius_mean": '"><script>alert(1)</script>'})
    page = response.get_data(as_text=True)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page or "&#34;&gt;&lt;script" in page


def test_values_outside_the_training_range_are_flagged(client, card):
    form = {name: f"{v:g}" for name, v in card["examples"]["benign"].items()}
    form["radius_mean"] = "500"
    page = client.post("/", data=form).get_data(as_text=True)
    assert "Outside the range seen in training: Radius (mean)." in page


def test_unknown_page_is_an_html_404(client):
    response = client.get("/nowhere", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    parse_strict(response.get_data(as_text=True))


def test_json_clients_get_json_errors_outside_the_api(client):
    response = client.get("/nowhere", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
