"""Both sides of each input limit, and the details of the errors, for JSON and CSV batches.

The app fixture allows 50 rows a request. Every feature's range and type come from the contract,
and each is checked at its own bounds through JSON, CSV and the page's form.
"""

import csv
import io
from pathlib import Path

import html5lib
import pytest

from mlservice.contract import CONTRACT, plain, show
from mlservice.validation import InputError, rows_from_json
from tests.values import (
    FEATURE_NAMES,
    FEATURES,
    FIRST,
    INTEGER_FEATURES,
    LABELS,
    LAST,
    above,
    below,
    csv_table,
    middle_row,
    text,
)

PREDICT = "/api/v1/predict"
ANSWERS = Path(__file__).resolve().parent.parent / "data" / "sample_answers.csv"
two_features = pytest.mark.skipif(len(FEATURES) < 2, reason="needs two features")


def post_csv(client, body):
    return client.post(PREDICT, data=body, content_type="text/csv")


def csv_of(rows):
    return csv_table(rows)


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


# --- Each feature at its bounds, through JSON, CSV and the form ----------------------------


def all_three(client, row: dict, name: str, value) -> tuple[int, int, int]:
    """The statuses of JSON, CSV and the page for the row with this value in this feature."""
    changed = {**row, name: value}
    as_json = client.post(PREDICT, json=changed).status_code
    cells = {key: text(v) if isinstance(v, float) else str(v) for key, v in changed.items()}
    as_csv = post_csv(client, csv_of([cells])).status_code
    as_form = client.post("/", data=cells).status_code
    return as_json, as_csv, as_form


@pytest.mark.parametrize("feature", FEATURES, ids=FEATURE_NAMES)
def test_each_feature_accepts_both_ends_of_its_range(client, row, feature):
    for bound in (feature.min, feature.max):
        assert all_three(client, row, feature.name, bound) == (200, 200, 200), bound


@pytest.mark.parametrize("feature", FEATURES, ids=FEATURE_NAMES)
def test_each_feature_refuses_values_just_outside_its_range(client, row, feature):
    for value, side in (
        (below(feature), "below the minimum"),
        (above(feature), "above the maximum"),
    ):
        assert all_three(client, row, feature.name, value) == (422, 422, 400), value
        error = error_of(
            client.post(PREDICT, json={**row, feature.name: value}), 422, "invalid_input"
        )
        assert error["details"][0]["field"] == feature.name
        cells = {**row, feature.name: text(value)}
        error = error_of(post_csv(client, csv_of([cells])), 422, "invalid_input")
        bound = show(feature.min if side.startswith("below") else feature.max)
        assert error["message"] == (
            f"line 2 (data row 1), column {feature.name}: {text(value)} is {side} of {bound}."
        )


def test_the_page_shows_each_fields_range_and_step(client):
    tree = html5lib.parse(client.get("/").get_data(as_text=True), namespaceHTMLElements=False)
    for feature in FEATURES:
        field = tree.find(f".//input[@name='{feature.name}']")
        assert field.get("min") == plain(feature.min)
        assert field.get("max") == plain(feature.max)
        # The browser's spinner moves by the contract's step, by 1 for an integer, else freely.
        default = "1" if feature.integer else "any"
        assert field.get("step") == (default if feature.step is None else f"{feature.step:g}")
        hint = tree.find(f".//small[@id='{feature.name}-hint']").text
        assert f"{show(feature.min)} to {show(feature.max)}" in hint


@pytest.mark.parametrize("feature", INTEGER_FEATURES, ids=[f.name for f in INTEGER_FEATURES])
def test_an_integer_feature_refuses_a_fraction_everywhere(client, row, feature):
    half = feature.min + 0.5
    assert all_three(client, row, feature.name, half) == (422, 422, 400)
    error = error_of(client.post(PREDICT, json={**row, feature.name: half}), 422, "invalid_input")
    assert error["details"][0] == {
        "field": feature.name,
        "message": "Input should be a whole number",
        "type": "whole_number",
    }
    error = error_of(post_csv(client, csv_of([{**row, feature.name: half}])), 422, "invalid_input")
    assert error["message"] == (
        f"line 2 (data row 1), column {feature.name}: {text(half)} is not a whole number."
    )
    page = client.post("/", data={**row, feature.name: text(half)}).get_data(as_text=True)
    assert f'<p class="error" id="{feature.name}-error">Enter a whole number.</p>' in page


@pytest.mark.parametrize("feature", INTEGER_FEATURES, ids=[f.name for f in INTEGER_FEATURES])
def test_an_integer_feature_reads_a_whole_float_as_that_number(client, row, feature):
    whole = float(feature.min + 1)
    assert all_three(client, row, feature.name, whole) == (200, 200, 200)
    cells = {**row, feature.name: f"{int(whole)}.0"}
    assert post_csv(client, csv_of([cells])).status_code == 200
    assert client.post("/", data=cells).status_code == 200


# --- Errors say what is wrong -----------------------------------------------------------


def test_csv_answer_has_every_probability_as_the_json_answer_does(client, card):
    rows = list(card["examples"].values())
    answer = post_csv(client, csv_of(rows)).get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(answer)))
    predictions = client.post(PREDICT, json={"instances": rows}).get_json()["predictions"]
    assert [line["label"] for line in table] == list(card["examples"])
    columns = dict(zip(LABELS, CONTRACT.probability_columns, strict=True))
    for line, prediction in zip(table, predictions, strict=True):
        for label, column in columns.items():
            assert float(line[column]) == prediction["probabilities"][label]
        assert float(line[columns[line["label"]]]) == max(float(line[c]) for c in columns.values())


@two_features
def test_json_errors_name_each_field_and_count_the_rest(client, row):
    bad = {**row, FIRST.name: below(FIRST), LAST.name: "12"}
    error = error_of(client.post(PREDICT, json={"instances": [row, bad]}), 422, "invalid_input")
    assert [detail["field"] for detail in error["details"]] == [
        f"instances[1].{FIRST.name}",
        f"instances[1].{LAST.name}",
    ]
    assert all(detail["message"] for detail in error["details"])
    assert error["message"].startswith(f"instances[1].{FIRST.name}: ")
    assert error["message"].endswith(" (and 1 more).")


def test_one_json_error_has_no_count(client, row):
    error = error_of(
        client.post(PREDICT, json={**row, FIRST.name: below(FIRST)}), 422, "invalid_input"
    )
    assert [detail["field"] for detail in error["details"]] == [FIRST.name]
    assert "more)" not in error["message"]


@two_features
def test_several_bad_csv_cells_are_each_reported(client, row):
    rows = [row, {**row, FIRST.name: "x"}, {**row, FIRST.name: "", LAST.name: below(LAST)}]
    error = error_of(post_csv(client, csv_of(rows)), 422, "invalid_input")
    assert [(d["line"], d["row"], d["field"]) for d in error["details"]] == [
        (3, 2, FIRST.name),
        (4, 3, FIRST.name),
        (4, 3, LAST.name),
    ]
    assert error["details"][2]["message"] == (
        f"line 4 (data row 3), column {LAST.name}: {text(below(LAST))} is below the minimum of "
        f"{show(LAST.min)}"
    )
    assert error["message"] == (
        f"line 3 (data row 2), column {FIRST.name}: 'x' is not a number (and 2 more)."
    )


def test_at_most_twenty_bad_cells_are_listed_but_all_are_counted(client):
    rows = [dict.fromkeys(FEATURE_NAMES, "x")] * (30 // len(FEATURES) + 1)
    bad = len(rows) * len(FEATURES)
    error = error_of(post_csv(client, csv_of(rows)), 422, "invalid_input")
    assert len(error["details"]) == 20
    assert error["message"].endswith(f" (and {bad - 1} more).")


@pytest.mark.parametrize("charset", ["utf-8", "utf8", "UTF-8"])
def test_both_spellings_of_utf8_are_accepted(client, row, charset):
    response = client.post(PREDICT, data=csv_of([row]), content_type=f"text/csv; charset={charset}")
    assert response.status_code == 200


def test_csv_answer_lines_end_with_a_newline_only(client, row):
    answer = post_csv(client, csv_of([row, row])).get_data(as_text=True)
    assert "\r" not in answer
    assert answer.count("\n") == 3


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
            f'{{"{FIRST.name}": 1, "{LAST.name}": 2, "{LAST.name}": 3}}',
            "invalid_input",
            f"The field {LAST.name!r} appears more than once in one object.",
        ),
    ],
)
def test_json_body_errors_say_what_is_wrong(client, body, code, message):
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert error_of(response, 422, code)["message"] == message


HEADER = ",".join(FEATURE_NAMES)
CELLS = [text(value) for value in middle_row().values()]
VALUES = ",".join(CELLS)
REST = ",".join(CELLS[1:])
FIRST_ON_LINE_2 = f"line 2 (data row 1), column {FIRST.name}"


@pytest.mark.parametrize(
    ("body", "code", "message"),
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
            f"{HEADER},{LAST.name},{FIRST.name}\n{VALUES},1,1\n",
            "invalid_input",
            f"The CSV header names column(s) {', '.join(sorted({FIRST.name, LAST.name}))} more "
            "than once.",
        ),
        (
            ",".join([*FEATURE_NAMES[:-1], "zz_area"]) + f"\n{VALUES}\n",
            "invalid_input",
            f"The CSV header has missing column(s) {LAST.name} and unknown column(s) zz_area.",
        ),
        (
            ",".join(FEATURE_NAMES[:-1] or ["zz_area"]) + "\n" + ",".join(CELLS[:-1] or ["1"]),
            "invalid_input",
            f"The CSV header has missing column(s) {LAST.name}"
            + ("." if len(FEATURES) > 1 else " and unknown column(s) zz_area."),
        ),
        (
            f"{HEADER}\n{VALUES}\n,{REST}\n",
            "invalid_input",
            f"line 3 (data row 2), column {FIRST.name}: the cell is empty.",
        ),
        (
            f'{HEADER}\n"1,5"{"," + REST if REST else ""}\n',
            "invalid_input",
            f"{FIRST_ON_LINE_2}: '1,5' is not a number (write decimals with a point, without "
            "thousands separators).",
        ),
        (
            f"{HEADER}\nabc{',' + REST if REST else ''}\n",
            "invalid_input",
            f"{FIRST_ON_LINE_2}: 'abc' is not a number.",
        ),
        (  # an underscore in any data row, not only the last
            f"{HEADER}\n1_0{',' + REST if REST else ''}\n{VALUES}\n",
            "invalid_input",
            f"{FIRST_ON_LINE_2}: '1_0' is not a number.",
        ),
    ],
    ids=[
        "blank",
        "header only",
        "index column",
        "duplicates",
        "missing and unknown",
        "missing",
        "empty cell",
        "decimal comma",
        "text",
        "underscore",
    ],
)
def test_csv_errors_say_what_is_wrong(client, body, code, message):
    assert error_of(post_csv(client, body), 422, code)["message"] == message


def test_missing_and_unknown_columns_are_listed_in_the_details(client):
    body = ",".join([*FEATURE_NAMES[:-1], "zz_area"]) + f"\n{VALUES}\n"
    error = error_of(post_csv(client, body), 422, "invalid_input")
    assert error["details"] == [
        {"field": LAST.name, "message": "missing column"},
        {"field": "zz_area", "message": "unknown column"},
    ]


def test_a_form_without_a_field_asks_for_it(client, row):
    form = {name: str(value) for name, value in row.items() if name != FIRST.name}
    response = client.post("/", data=form)
    assert response.status_code == 400
    assert response.get_data(as_text=True).count("Enter a number.") == 1


def test_one_json_error_is_the_whole_message(client, row):
    error = error_of(
        client.post(PREDICT, json={**row, FIRST.name: below(FIRST)}), 422, "invalid_input"
    )
    [detail] = error["details"]
    assert error["message"] == f"{FIRST.name}: {detail['message']}."


def test_two_bad_csv_cells_count_one_more(client, row):
    error = error_of(post_csv(client, csv_of([{**row, FIRST.name: "x"}] * 2)), 422, "invalid_input")
    assert error["message"].endswith("is not a number (and 1 more).")


@two_features
def test_range_ends_beside_a_bad_cell_are_not_reported(client, row):
    # A bad cell sends the whole table through the cell-by-cell reader; the ends pass it too.
    rows = [{**row, FIRST.name: FIRST.min, LAST.name: LAST.max}, {**row, LAST.name: "x"}]
    error = error_of(post_csv(client, csv_of(rows)), 422, "invalid_input")
    assert [detail["field"] for detail in error["details"]] == [LAST.name]


def test_json_row_limit_counts_objects_and_arrays_before_parsing(client):
    # 50 rows have 52 objects and arrays: 50 empty objects are checked as rows.
    error = error_of(client.post(PREDICT, json={"instances": [{}] * 50}), 422, "invalid_input")
    assert error["details"][0]["field"] == f"instances[0].{FIRST.name}"
    error_of(client.post(PREDICT, json={"instances": [{}] * 51}), 422, "too_many_rows")


def test_json_row_limit_counts_values_before_parsing(client):
    # 50 rows hold fewer than 50 commas per feature.
    most = 50 * len(FEATURES)
    body = "[" + ",".join(["1"] * (most + 1)) + "]"
    error = error_of(
        client.post(PREDICT, data=body, content_type="application/json"), 422, "invalid_input"
    )
    assert error["message"].startswith("The body must be a JSON object")
    body = "[" + ",".join(["1"] * (most + 2)) + "]"
    error = error_of(
        client.post(PREDICT, data=body, content_type="application/json"), 422, "too_many_rows"
    )
    assert error["message"] == (
        f"The body holds {most + 2} values or more, more than a batch of 50 rows has; "
        "the limit is 50 rows per request."
    )


def test_deeply_nested_json_is_a_clear_400(model_path):
    from mlservice import create_app

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
    error = error_of(post_csv(client, f"{HEADER}\n{VALUES}X"), 422, "invalid_input")
    assert error["message"] == (
        f"line 2 (data row 1), column {LAST.name}: '{CELLS[-1]}X' is not a number."
    )


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
        rows_from_json({**row, FIRST.name: below(FIRST)})
    assert str(raised.value) == raised.value.message
    assert raised.value.message.startswith(
        f"{FIRST.name}: Input should be greater than or equal to "
    )


@pytest.mark.parametrize(
    ("name", "body", "status"),
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
def test_csv_cells_float_and_to_number_read_differently(client, example, name, body, status):
    label, row = example
    cells = [str(row[feature]) for feature in FEATURE_NAMES]
    body = (
        body.replace("HEADER_QUOTED", ",".join([f'"{FEATURE_NAMES[0]}\n"', *FEATURE_NAMES[1:]]))
        .replace("HEADER", ",".join(FEATURE_NAMES))
        .replace("{row}", ",".join(cells))
        .replace("{underscore}", ",".join(["1_4", *cells[1:]]))
    )
    response = post_csv(client, body)
    assert response.status_code == status, (name, response.get_data(as_text=True))
    if status == 422:
        assert response.get_json()["error"]["message"] == (
            f"{FIRST_ON_LINE_2}: '1_4' is not a number."
        )
    else:
        scored = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
        assert len(scored) == 2
        assert scored[1][len(FEATURE_NAMES)] == label
