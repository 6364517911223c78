"""Both sides of each input limit, and the details of the errors, for JSON and CSV batches.

The app fixture allows 50 rows a request; values run from 0 to 1e9 inclusive.
"""

import csv
import io

import pytest

from mlservice.features import FEATURE_NAMES

PREDICT = "/api/v1/predict"


@pytest.fixture
def row(card):
    return dict(card["examples"]["malignant"])


def post_csv(client, text):
    return client.post(PREDICT, data=text, content_type="text/csv")


def csv_of(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FEATURE_NAMES, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def error_of(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    return error


def test_exactly_the_row_limit_is_accepted(client, row):
    response = client.post(PREDICT, json={"instances": [row] * 50})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 50
    response = post_csv(client, csv_of([row] * 50))
    assert response.status_code == 200
    assert len(response.get_data(as_text=True).splitlines()) == 51


def test_one_row_over_the_limit_is_refused(client, row):
    error = error_of(client.post(PREDICT, json={"instances": [row] * 51}), 422, "too_many_rows")
    assert "50 rows per request" in error["message"]
    error = error_of(post_csv(client, csv_of([row] * 51)), 422, "too_many_rows")
    assert error["message"] == "51 data rows sent; the limit is 50 per request."


@pytest.mark.parametrize(("sent", "read"), [("0", 0.0), ("1e9", 1e9), ("1000000000", 1e9)])
def test_values_at_both_ends_of_the_range_are_accepted(client, row, sent, read):
    row["radius_mean"] = read
    assert client.post(PREDICT, json=row).status_code == 200
    row["radius_mean"] = sent
    assert post_csv(client, csv_of([row])).status_code == 200


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ("-0.001", "-0.001 is negative; values must be 0 or more"),
        ("1000000001", "1000000001 is larger than 1,000,000,000"),
        ("1.0000001e9", "1.0000001e9 is larger than 1,000,000,000"),
    ],
)
def test_values_just_outside_the_range_are_refused(client, row, sent, message):
    row["radius_mean"] = float(sent)
    error = error_of(client.post(PREDICT, json=row), 422, "invalid_input")
    assert error["details"][0]["field"] == "radius_mean"
    row["radius_mean"] = sent
    error = error_of(post_csv(client, csv_of([row])), 422, "invalid_input")
    assert error["message"] == f"line 2 (data row 1), column radius_mean: {message}."


def test_csv_answer_has_both_probabilities_as_the_json_answer_does(client, card):
    rows = [card["examples"]["malignant"], card["examples"]["benign"]]
    table = list(csv.DictReader(io.StringIO(post_csv(client, csv_of(rows)).get_data(as_text=True))))
    predictions = client.post(PREDICT, json={"instances": rows}).get_json()["predictions"]
    assert [line["label"] for line in table] == ["malignant", "benign"]
    for line, prediction in zip(table, predictions, strict=True):
        for label in ("benign", "malignant"):
            assert float(line[f"probability_{label}"]) == prediction["probabilities"][label]
    assert float(table[0]["probability_malignant"]) > 0.5 > float(table[1]["probability_malignant"])


def test_json_errors_name_each_field_and_count_the_rest(client, row):
    bad = {**row, "radius_mean": -1, "texture_mean": "12"}
    error = error_of(client.post(PREDICT, json={"instances": [row, bad]}), 422, "invalid_input")
    assert [detail["field"] for detail in error["details"]] == [
        "instances[1].radius_mean",
        "instances[1].texture_mean",
    ]
    assert all(detail["message"] for detail in error["details"])
    assert error["message"].startswith("instances[1].radius_mean: ")
    assert error["message"].endswith(" (and 1 more).")


def test_one_json_error_has_no_count(client, row):
    error = error_of(client.post(PREDICT, json={**row, "radius_mean": -1}), 422, "invalid_input")
    assert [detail["field"] for detail in error["details"]] == ["radius_mean"]
    assert "more)" not in error["message"]


def test_several_bad_csv_cells_are_each_reported(client, row):
    rows = [row, {**row, "radius_mean": "x"}, {**row, "texture_mean": "", "symmetry_se": "-2"}]
    error = error_of(post_csv(client, csv_of(rows)), 422, "invalid_input")
    assert [(d["line"], d["row"], d["field"]) for d in error["details"]] == [
        (3, 2, "radius_mean"),
        (4, 3, "texture_mean"),
        (4, 3, "symmetry_se"),
    ]
    assert error["details"][2]["message"] == (
        "line 4 (data row 3), column symmetry_se: -2 is negative; values must be 0 or more"
    )
    assert error["message"] == (
        "line 3 (data row 2), column radius_mean: 'x' is not a number (and 2 more)."
    )


def test_at_most_twenty_bad_cells_are_listed_but_all_are_counted(client, row):
    rows = [{name: "-1" for name in FEATURE_NAMES}] * 5  # 30 bad cells
    error = error_of(post_csv(client, csv_of(rows)), 422, "invalid_input")
    assert len(error["details"]) == 20
    assert error["message"].endswith(" (and 29 more).")


@pytest.mark.parametrize("charset", ["utf-8", "utf8", "UTF-8"])
def test_both_spellings_of_utf8_are_accepted(client, row, charset):
    response = client.post(PREDICT, data=csv_of([row]), content_type=f"text/csv; charset={charset}")
    assert response.status_code == 200


def test_csv_answer_lines_end_with_a_newline_only(client, row):
    text = post_csv(client, csv_of([row, row])).get_data(as_text=True)
    assert "\r" not in text
    assert text.count("\n") == 3
