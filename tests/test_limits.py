"""Both sides of each input limit, and the details of the errors, for JSON and CSV batches.

The app fixture allows 50 rows a request; values run from 0 to 1e9 inclusive.
"""

import csv
import io
from pathlib import Path

import pytest

from mlservice import create_app
from mlservice.features import FEATURE_NAMES
from mlservice.validation import InputError, rows_from_json

PREDICT = "/api/v1/predict"
ANSWERS = Path(__file__).resolve().parent.parent / "data" / "sample_answers.csv"


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


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            '{"instances": [], "mode": 1, "batch": 2}',
            "invalid_input",
            "Unexpected top-level field(s) beside instances: batch, mode.",
        ),
        ('{"instances": {}}', "invalid_input", "instances must be a list of objects."),
        ('{"instances": []}', "empty_batch", "instances is empty; send at least one row."),
        (
            "[1]",
            "invalid_input",
            'The body must be a JSON object: one instance or {"instances": [...]}.',
        ),
        (
            '{"radius_mean": 1, "texture_mean": 2, "texture_mean": 3}',
            "invalid_input",
            "The field 'texture_mean' appears more than once in one object.",
        ),
    ],
)
def test_json_body_errors_say_what_is_wrong(client, body, code, message):
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert error_of(response, 422, code)["message"] == message


HEADER = ",".join(FEATURE_NAMES)
VALUES = "1,2,0.1,1,0.01,0.02"


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("\r\n\n", "invalid_input", "The CSV body is empty; send a header row and data rows."),
        (HEADER + "\n", "empty_batch", "The CSV has a header but no rows."),
        (
            f",{HEADER}\n0,{VALUES}\n",
            "invalid_input",
            "The CSV header's column 1 has no name; every column needs one (an unnamed first "
            "column is usually an exported row index: leave it out).",
        ),
        (
            f"{HEADER},texture_mean,radius_mean\n{VALUES},1,1\n",
            "invalid_input",
            "The CSV header names column(s) radius_mean, texture_mean more than once.",
        ),
        (
            HEADER.replace("smoothness_se,symmetry_se", "area,perimeter") + f"\n{VALUES}\n",
            "invalid_input",
            "The CSV header has missing column(s) smoothness_se, symmetry_se and unknown "
            "column(s) area, perimeter.",
        ),
        (
            HEADER.replace(",symmetry_se", "") + "\n1,2,0.1,1,0.01\n",
            "invalid_input",
            "The CSV header has missing column(s) symmetry_se.",
        ),
        (
            f"{HEADER}\n{VALUES}\n{VALUES.replace('1,2,', '1,,')}\n",
            "invalid_input",
            "line 3 (data row 2), column texture_mean: the cell is empty.",
        ),
        (
            f'{HEADER}\n"1,5",{VALUES[2:]}\n',
            "invalid_input",
            "line 2 (data row 1), column radius_mean: '1,5' is not a number (write decimals "
            "with a point, without thousands separators).",
        ),
        (
            f"{HEADER}\nabc,{VALUES[2:]}\n",
            "invalid_input",
            "line 2 (data row 1), column radius_mean: 'abc' is not a number.",
        ),
        (  # an underscore in any data row, not only the last
            f"{HEADER}\n1_0,{VALUES[2:]}\n{VALUES}\n",
            "invalid_input",
            "line 2 (data row 1), column radius_mean: '1_0' is not a number.",
        ),
    ],
)
def test_csv_errors_say_what_is_wrong(client, text, code, message):
    assert error_of(post_csv(client, text), 422, code)["message"] == message


def test_missing_and_unknown_columns_are_listed_in_the_details(client):
    text = HEADER.replace("symmetry_se", "area") + f"\n{VALUES}\n"
    error = error_of(post_csv(client, text), 422, "invalid_input")
    assert error["details"] == [
        {"field": "symmetry_se", "message": "missing column"},
        {"field": "area", "message": "unknown column"},
    ]


def test_a_form_without_a_field_asks_for_it(client, card):
    form = {name: str(card["examples"]["benign"][name]) for name in FEATURE_NAMES[1:]}
    response = client.post("/", data=form)
    assert response.status_code == 400
    assert response.get_data(as_text=True).count("Enter a number.") == 1


def test_one_json_error_is_the_whole_message(client, row):
    error = error_of(client.post(PREDICT, json={**row, "radius_mean": -1}), 422, "invalid_input")
    [detail] = error["details"]
    assert error["message"] == f"radius_mean: {detail['message']}."


def test_two_bad_csv_cells_count_one_more(client, row):
    error = error_of(
        post_csv(client, csv_of([{**row, "radius_mean": "-1"}] * 2)), 422, "invalid_input"
    )
    assert error["message"].endswith("values must be 0 or more (and 1 more).")


def test_range_ends_beside_a_bad_cell_are_not_reported(client, row):
    # A bad cell sends the whole table through the cell-by-cell reader; 0 and 1e9 pass it too.
    rows = [{**row, "radius_mean": "0", "texture_mean": "1e9"}, {**row, "symmetry_se": "x"}]
    error = error_of(post_csv(client, csv_of(rows)), 422, "invalid_input")
    assert [detail["field"] for detail in error["details"]] == ["symmetry_se"]


def test_form_accepts_both_ends_of_the_range(client, card):
    form = {name: str(card["examples"]["benign"][name]) for name in FEATURE_NAMES}
    form["radius_mean"], form["texture_mean"] = "0", "1e9"
    assert client.post("/", data=form).status_code == 200


def test_json_row_limit_counts_objects_and_arrays_before_parsing(client):
    # 50 rows have 52 objects and arrays: 50 empty objects are checked as rows.
    error = error_of(client.post(PREDICT, json={"instances": [{}] * 50}), 422, "invalid_input")
    assert error["details"][0]["field"] == "instances[0].radius_mean"
    error_of(client.post(PREDICT, json={"instances": [{}] * 51}), 422, "too_many_rows")


def test_json_row_limit_counts_values_before_parsing(client):
    # 50 rows hold at most 300 commas.
    body = "[" + ",".join(["1"] * 301) + "]"
    error = error_of(
        client.post(PREDICT, data=body, content_type="application/json"), 422, "invalid_input"
    )
    assert error["message"].startswith("The body must be a JSON object")
    body = "[" + ",".join(["1"] * 302) + "]"
    error = error_of(
        client.post(PREDICT, data=body, content_type="application/json"), 422, "too_many_rows"
    )
    assert error["message"] == (
        "The body holds 302 values or more, more than a batch of 50 rows has; "
        "the limit is 50 rows per request."
    )


def test_deeply_nested_json_is_a_clear_400(model_path):
    app = create_app(
        {
            "TESTING": True,
            "MODEL_PATH": str(model_path),
            "MAX_ROWS": 1_000_000,
            "ANSWERS_PATH": str(ANSWERS),
        }
    )
    body = "[" * 200_000 + "]" * 200_000
    response = app.test_client().post(PREDICT, data=body, content_type="application/json")
    assert error_of(response, 400, "invalid_json")["message"] == "The body is nested too deeply."


def test_a_last_cell_ending_in_x_is_not_a_number(client):
    text = f"{HEADER}\n1,2,0.1,1,0.01,0.02X"
    error = error_of(post_csv(client, text), 422, "invalid_input")
    assert error["message"] == "line 2 (data row 1), column symmetry_se: '0.02X' is not a number."


@pytest.mark.parametrize(
    ("sent", "accepted"),
    [
        ("0", True),
        ("-0", True),
        ("1e9", True),
        ("999999999.9", True),
        ("-1e-300", False),
        ("1.0000001e9", False),
        ("1e308", False),
    ],
)
def test_json_csv_and_the_form_apply_one_rule(client, row, sent, accepted):
    # The same value, through each of the three ways in: all accept it or all refuse it.
    json_row = {**row, "radius_mean": float(sent)}
    assert client.post(PREDICT, json=json_row).status_code == (200 if accepted else 422)
    csv_row = {**row, "radius_mean": sent}
    assert post_csv(client, csv_of([csv_row])).status_code == (200 if accepted else 422)
    form = {name: str(value) for name, value in csv_row.items()}
    assert client.post("/", data=form).status_code == (200 if accepted else 400)


def test_the_page_shows_the_range_on_each_field(client):
    page = client.get("/").get_data(as_text=True)
    fields = [line for line in page.splitlines() if 'min="0" max="1000000000"' in line]
    assert len(fields) == len(FEATURE_NAMES)


def test_the_csv_answer_keeps_each_cell_as_sent(client, row):
    # Spaces at the end of the last cell are the client's, and come back.
    cells = [str(row[name]) for name in FEATURE_NAMES]
    last = ",".join([*cells[:-1], f"{cells[-1]}  "])
    response = post_csv(client, f"{','.join(FEATURE_NAMES)}\n{last}\n")
    sent = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert sent[1][len(FEATURE_NAMES) - 1] == f"{cells[-1]}  "


@pytest.mark.parametrize("where", ["header", "row"])
def test_a_carriage_return_inside_a_quoted_cell_comes_back_quoted(client, row, where):
    # float() reads "0.5\r" as a number; written bare, the CR would split the row in two.
    header, cells = [*FEATURE_NAMES], [str(row[name]) for name in FEATURE_NAMES]
    (header if where == "header" else cells)[-1] += "\r"
    quoted = [",".join(f'"{value}"' for value in line) for line in (header, cells)]
    response = post_csv(client, "\n".join(quoted) + "\n")
    assert response.status_code == 200, response.get_data(as_text=True)
    sent = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert [line[: len(FEATURE_NAMES)] for line in sent] == [header, cells]


def test_an_input_error_reads_as_its_message(row):
    # Logs and tracebacks show str(error): the same words the client gets.
    with pytest.raises(InputError) as raised:
        rows_from_json({**row, "radius_mean": -1.0})
    assert str(raised.value) == "radius_mean: Input should be greater than or equal to 0."


@pytest.mark.parametrize(
    ("name", "text", "status"),
    [
        # str.strip() removes \x1c-\x1f, float() does not: the fast path fails, every cell is valid.
        ("control character after a number", "HEADER\n{row}\x1f\n", 200),
        # A newline inside the quoted header: the cells still hold no underscore.
        ("newline in a quoted header cell", "HEADER_QUOTED\n{row}\n", 200),
        # Old Mac line ends: no \n anywhere, and an underscore that float() would read as 14.
        ("CR line ends with 1_4", "HEADER\r{underscore}\r", 422),
        ("LF line ends with 1_4", "HEADER\n{underscore}\n", 422),
    ],
)
def test_csv_cells_float_and_to_number_read_differently(client, row, name, text, status):
    cells = [str(row[feature]) for feature in FEATURE_NAMES]
    body = (
        text.replace("HEADER_QUOTED", ",".join([f'"{FEATURE_NAMES[0]}\n"', *FEATURE_NAMES[1:]]))
        .replace("HEADER", ",".join(FEATURE_NAMES))
        .replace("{row}", ",".join(cells))
        .replace("{underscore}", ",".join(["1_4", *cells[1:]]))
    )
    response = post_csv(client, body)
    assert response.status_code == status, (name, response.get_data(as_text=True))
    if status == 422:
        assert response.get_json()["error"]["message"] == (
            "line 2 (data row 1), column radius_mean: '1_4' is not a number."
        )
    else:
        scored = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
        assert len(scored) == 2
        assert scored[1][-3] == "malignant"
