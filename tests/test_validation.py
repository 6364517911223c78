"""The number rule shared by CSV cells and the page's fields, and the page agreeing with CSV."""

import pytest

from mlservice.features import FEATURE_NAMES
from mlservice.validation import NumberError, to_number


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e3", 1000.0), ("1E+03", 1000.0), (".5", 0.5), ("5.", 5.0), ("+7", 7.0), (" 2\t", 2.0)],
)
def test_notations_python_reads_are_numbers(text, value):
    assert to_number(text) == value


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1_000", "not_a_number"),
        ("1,000", "not_a_number"),
        ("0x10", "not_a_number"),
        ("nan", "not_finite"),
        ("inf", "not_finite"),
        ("-0.5", "negative"),
        ("1000000001", "too_large"),
    ],
)
def test_everything_else_is_refused_with_its_reason(text, kind):
    with pytest.raises(NumberError) as caught:
        to_number(text)
    assert caught.value.kind == kind


@pytest.mark.parametrize("value", ["1_000", "1,5"])
def test_page_and_csv_refuse_the_same_text(client, card, value):
    form = {name: str(v) for name, v in card["examples"]["benign"].items()}
    form["radius_mean"] = value
    page = client.post("/", data=form)
    assert page.status_code == 400
    assert "Enter a number." in page.get_data(as_text=True)

    cells = [f'"{form[name]}"' for name in FEATURE_NAMES]
    csv = ",".join(FEATURE_NAMES) + "\n" + ",".join(cells) + "\n"
    scored = client.post("/api/v1/predict", data=csv, content_type="text/csv")
    assert scored.status_code == 422
    assert f"{value!r} is not a number" in scored.get_json()["error"]["message"]
