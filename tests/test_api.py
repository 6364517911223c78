import io
import json
import math

import pandas as pd
import pytest

from mlservice import create_app
from mlservice.contract import CONTRACT
from mlservice.model import ModelError
from tests.tools import copy_model
from tests.values import FEATURE_NAMES, FEATURES, FIRST, LABELS, LAST, below, csv_table

MIDDLE = FEATURES[len(FEATURES) // 2]

PREDICT = "/api/v1/predict"


def post_json(client, body, **kwargs):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(PREDICT, data=data, content_type="application/json", **kwargs)


def assert_json_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return error


def test_single_instance_predicts_label_and_probabilities(client, card, example):
    label, row = example
    response = post_json(client, row)
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == card["version"]
    [prediction] = body["predictions"]
    assert prediction["label"] == label
    probabilities = prediction["probabilities"]
    assert list(probabilities) == list(LABELS)  # every label, in the contract's order
    assert math.isclose(sum(probabilities.values()), 1.0)
    others = [p for name, p in probabilities.items() if name != label]
    assert probabilities[label] > max(others)


def test_batch_keeps_order_and_matches_single_predictions(client, card):
    rows = list(card["examples"].values()) * 3
    body = post_json(client, {"instances": rows}).get_json()
    assert [p["label"] for p in body["predictions"]] == list(card["examples"]) * 3
    single = post_json(client, rows[0]).get_json()["predictions"][0]
    assert single["label"] == body["predictions"][0]["label"]
    for label in LABELS:
        assert math.isclose(
            single["probabilities"][label], body["predictions"][0]["probabilities"][label]
        )


@pytest.mark.parametrize("feature", FEATURES, ids=FEATURE_NAMES)
def test_json_integers_are_accepted_as_numbers(client, row, feature):
    whole = math.ceil(feature.min)
    if whole > feature.max:
        pytest.skip(f"no whole number from {feature.min} to {feature.max}")
    row[feature.name] = whole
    assert post_json(client, row).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({FIRST.name: "12.5"}, FIRST.name, "valid number"),
        ({FIRST.name: True}, FIRST.name, "valid number"),
        ({FIRST.name: None}, FIRST.name, "valid number"),
        ({FIRST.name: below(FIRST)}, FIRST.name, "greater than or equal to"),
        ({"zz_not_a_feature": 1}, "zz_not_a_feature", "Extra inputs"),
    ],
)
def test_bad_values_name_their_field(client, row, change, field, needle):
    error = assert_json_error(post_json(client, {**row, **change}), 422, "invalid_input")
    assert error["message"].startswith(field)
    assert needle in error["message"]
    assert any(d["field"] == field for d in error["details"])


def test_missing_feature_is_named(client, row):
    del row[LAST.name]
    error = assert_json_error(post_json(client, row), 422, "invalid_input")
    assert error["details"] == [
        {"field": LAST.name, "message": "Field required", "type": "missing"}
    ]


def with_literal(row: dict, name: str, literal: str) -> str:
    """The row as JSON text, with this feature's value written as the given literal."""
    return json.dumps({**row, name: "LITERAL"}).replace('"LITERAL"', literal)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, row, literal):
    error = assert_json_error(
        post_json(client, with_literal(row, MIDDLE.name, literal)), 422, "invalid_input"
    )
    assert error["details"][0]["field"] == MIDDLE.name
    assert "finite" in error["message"]


def test_errors_in_a_batch_name_the_row(client, row):
    bad = {**row, LAST.name: "x"}
    error = assert_json_error(post_json(client, {"instances": [row, bad]}), 422, "invalid_input")
    assert error["details"][0]["field"] == f"instances[1].{LAST.name}"


def test_malformed_json(client):
    error = assert_json_error(post_json(client, f'{{"{FIRST.name}": 1,'), 400, "invalid_json")
    assert "line 1" in error["message"]


def test_deeply_nested_json_is_a_client_error(model_path):
    from mlservice import create_app

    roomy = create_app({"MODEL_PATH": str(model_path), "MAX_ROWS": 100_000})
    body = "[" * 50_000 + "]" * 50_000
    error = assert_json_error(post_json(roomy.test_client(), body), 400, "invalid_json")
    assert "nested too deeply" in error["message"]


def test_more_objects_than_rows_are_refused_before_parsing(client):
    error = assert_json_error(
        post_json(client, "[" * 100_000 + "]" * 100_000), 422, "too_many_rows"
    )
    assert "100000 objects and arrays" in error["message"]
    assert "limit is 50 rows" in error["message"]


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
def test_body_must_be_an_object(client, body):
    assert_json_error(post_json(client, body), 422, "invalid_input")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"instances": []}, "empty_batch"),
        ({"instances": {FIRST.name: 1}}, "invalid_input"),
        ({"instances": [], "extra": 1}, "invalid_input"),
    ],
)
def test_bad_batches(client, body, code):
    assert_json_error(post_json(client, body), 422, code)


def test_too_many_rows(client, row):
    error = assert_json_error(post_json(client, {"instances": [row] * 51}), 422, "too_many_rows")
    assert "limit is 50" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        '{"instances": [{}' + ",{}" * 60 + "]}",
        '{"instances": [[]' + ",[]" * 60 + "]}",
        '{"instances": [1' + ",1" * 400 + "]}",
    ],
    ids=["empty objects", "empty arrays", "flat numbers"],
)
def test_bodies_with_more_values_than_max_rows_hold_are_refused(client, body):
    error = assert_json_error(post_json(client, body), 422, "too_many_rows")
    assert "limit is 50 rows" in error["message"]


def test_integer_literal_over_python_digit_limit_is_a_client_error(client, row):
    # json.loads raises ValueError (not JSONDecodeError) for integers over 4300 digits.
    text = with_literal(row, FIRST.name, "1" * 5000)
    error = assert_json_error(post_json(client, text), 400, "invalid_json")
    assert "4300 digits" in error["message"]


def test_duplicate_keys_are_refused_not_last_one_wins(client, row):
    text = json.dumps(row)[:-1] + f', "{FIRST.name}": 1}}'
    error = assert_json_error(post_json(client, text), 422, "invalid_input")
    assert f"{FIRST.name!r} appears more than once" in error["message"]


@pytest.mark.parametrize("text", ['{"\\ud800": 1}', f'{{"{FIRST.name}": "\\udfff"}}'])
def test_lone_surrogates_are_refused_as_input(client, text):
    response = post_json(client, text)
    assert_json_error(response, 422, "invalid_input")


def test_charset_other_than_utf8_is_refused(client, row):
    response = client.post(
        PREDICT, data=json.dumps(row), content_type="application/json; charset=latin-1"
    )
    error = assert_json_error(response, 415, "unsupported_charset")
    assert "latin-1" in error["message"]
    ok = client.post(PREDICT, data=json.dumps(row), content_type="application/json; charset=UTF-8")
    assert ok.status_code == 200


def test_body_over_the_size_limit(model_path, row):
    from mlservice import create_app

    small = create_app({"MODEL_PATH": str(model_path), "MAX_CONTENT_LENGTH": 1000})
    response = post_json(small.test_client(), {"instances": [row] * 20})
    assert_json_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_chunked_body_over_the_size_limit_is_refused_not_cut_short(model_path, content_type):
    # As gunicorn passes a chunked request: no length, the stream marked as terminated.
    from mlservice import create_app

    small = create_app({"MODEL_PATH": str(model_path), "MAX_CONTENT_LENGTH": 1000})
    body = b'{"instances": "' + b"x" * 5000 + b'"}'
    response = small.test_client().post(
        PREDICT,
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_json_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_a_body_shorter_than_its_content_length_is_refused_not_parsed(client, row, content_type):
    body = json.dumps(row).encode()
    response = client.post(
        PREDICT,
        input_stream=io.BytesIO(body[:-5]),  # the client went away 5 bytes early
        content_type=content_type,
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )
    error = assert_json_error(response, 400, "incomplete_body")
    assert error["message"] == (
        f"The body ended after {len(body) - 5} of the {len(body)} bytes its Content-Length "
        "announced."
    )


def test_only_the_content_length_bytes_are_the_body(client, row):
    # What follows them on the connection (a pipelined request) is not read as part of it.
    body = json.dumps(row).encode()
    response = client.post(
        PREDICT,
        input_stream=io.BytesIO(body + b"POST /api/v1/predict HTTP/1.1"),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_body_of_exactly_the_size_limit_is_read(model_path, row):
    body = json.dumps(row).encode()
    exact = create_app({"MODEL_PATH": str(model_path), "MAX_CONTENT_LENGTH": len(body)})
    response = exact.test_client().post(PREDICT, data=body, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_json_error(
        create_app({"MODEL_PATH": str(model_path), "MAX_CONTENT_LENGTH": len(body) - 1})
        .test_client()
        .post(PREDICT, data=body, content_type="application/json"),
        413,
        "payload_too_large",
    )


def test_chunked_body_under_the_limit_is_read_whole(client, row):
    response = client.post(
        PREDICT,
        input_stream=io.BytesIO(json.dumps(row).encode()),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_compressed_body_is_refused(client, row):
    response = client.post(
        PREDICT,
        data=json.dumps(row),
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    error = assert_json_error(response, 415, "unsupported_content_encoding")
    assert "gzip" in error["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(client, row, content_type):
    response = client.post(PREDICT, data=json.dumps(row), content_type=content_type)
    error = assert_json_error(response, 415, "unsupported_media_type")
    assert "application/json or text/csv" in error["message"]


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_non_utf8_body(client, content_type):
    response = client.post(PREDICT, data=b'{"a": "\xff\xfe"}', content_type=content_type)
    assert_json_error(response, 400, "invalid_encoding")


def csv_of(rows: list[dict], columns=FEATURE_NAMES) -> str:
    return csv_table(rows, columns)


def post_csv(client, text):
    return client.post(PREDICT, data=text.encode(), content_type="text/csv")


def test_csv_batch_in_any_column_order(client, card):
    rows = list(reversed(card["examples"].values()))
    shuffled = list(reversed(FEATURE_NAMES))
    response = post_csv(client, csv_of(rows, shuffled))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["X-Model-Version"] == card["version"]
    table = pd.read_csv(io.StringIO(response.get_data(as_text=True)), dtype={"label": str})
    columns = CONTRACT.probability_columns
    assert list(table.columns) == [*shuffled, "label", *columns]
    assert list(table["label"]) == list(reversed(card["examples"]))
    as_json = post_json(client, {"instances": rows}).get_json()["predictions"]
    for (_, scored), predicted in zip(table.iterrows(), as_json, strict=True):
        for label, column in zip(LABELS, columns, strict=True):
            assert math.isclose(scored[column], predicted["probabilities"][label])


def test_csv_with_byte_order_mark(client, row):
    response = client.post(
        PREDICT, data=b"\xef\xbb\xbf" + csv_of([row]).encode(), content_type="text/csv"
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith(",".join(FEATURE_NAMES[:2]))


def test_json_with_byte_order_mark(client, row):
    body = b"\xef\xbb\xbf" + json.dumps(row).encode()
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert response.status_code == 200
    assert response.get_json() == post_json(client, row).get_json()


def test_only_the_first_byte_order_mark_is_dropped(client, row):
    body = b"\xef\xbb\xbf" * 2 + json.dumps(row).encode()
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert_json_error(response, 400, "invalid_json")


def test_csv_missing_and_extra_columns(client, row):
    table = pd.DataFrame([row]).drop(columns=FIRST.name).assign(zz_patient="p1")
    error = assert_json_error(post_csv(client, table.to_csv(index=False)), 422, "invalid_input")
    assert f"missing column(s) {FIRST.name}" in error["message"]
    assert "unknown column(s) zz_patient" in error["message"]
    assert {"field": "zz_patient", "message": "unknown column"} in error["details"]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("abc", "'abc' is not a number"),
        ("", "the cell is empty"),
        (repr(below(MIDDLE)), "is below the minimum of"),
        ("inf", "not a finite"),
        ("1e308", "1e308 is above the maximum of"),
    ],
)
def test_csv_bad_cell_names_row_and_column(client, row, cell, reason):
    text = csv_of([row] * 3)
    lines = text.splitlines()
    values = lines[2].split(",")
    values[FEATURE_NAMES.index(MIDDLE.name)] = cell
    lines[2] = ",".join(values)
    error = assert_json_error(post_csv(client, "\n".join(lines) + "\n"), 422, "invalid_input")
    assert error["message"].startswith(f"line 3 (data row 2), column {MIDDLE.name}: ")
    assert reason in error["message"]
    assert error["details"][0]["row"] == 2
    assert error["details"][0]["line"] == 3


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        (",".join(FEATURE_NAMES) + "\n", "no rows"),
        (
            ",".join(FEATURE_NAMES) + "\n" + "1," * (len(FEATURE_NAMES) - 1) + '"6\n',
            "could not be parsed",
        ),
    ],
)
def test_csv_without_rows(client, text, needle):
    error = assert_json_error(post_csv(client, text), 422, error_code(needle))
    assert needle in error["message"]


def error_code(needle: str) -> str:
    return "empty_batch" if needle == "no rows" else "invalid_input"


def test_csv_too_many_rows(client, row):
    assert_json_error(post_csv(client, csv_of([row] * 51)), 422, "too_many_rows")


def test_model_card_endpoint(client, card):
    response = client.get("/api/v1/model")
    assert response.status_code == 200
    assert response.get_json() == card


def test_unknown_api_path_and_wrong_method_answer_json(client):
    assert_json_error(client.get("/api/v1/nothing"), 404, "not_found")
    assert_json_error(client.get(PREDICT), 405, "method_not_allowed")


def test_unexpected_failure_is_a_json_500_without_details(client, row, monkeypatch):
    from mlservice.model import Model

    def explode(self, rows):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Model, "predict_rows", explode)
    response = post_json(client, row)
    error = assert_json_error(response, 500, "http_error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert error["details"] is None


def test_unexpected_failure_is_logged_with_its_traceback(client, row, monkeypatch, caplog):
    from mlservice.model import Model

    def explode(self, rows):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Model, "predict_rows", explode)
    with caplog.at_level("ERROR", logger="mlservice.errors"):
        assert_json_error(post_json(client, row), 500, "http_error")
    [record] = [r for r in caplog.records if r.name == "mlservice.errors"]
    assert "POST /api/v1/predict" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_health_and_readiness(client, card):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready", "model_version": card["version"]}


def test_app_engine_warmup_request_answers_once_the_model_is_loaded(client, card):
    response = client.get("/_ah/warmup")
    assert response.status_code == 200  # App Engine counts an instance warm on a 2xx
    assert response.get_json()["model_version"] == card["version"]


def test_csv_cells_may_have_spaces_and_exponents(client, example):
    label, row = example
    cells = [f" {row[name]:e} " for name in FEATURE_NAMES]
    text = ",".join(FEATURE_NAMES) + "\n" + ",".join(cells) + "\n"
    response = post_csv(client, text)
    assert response.status_code == 200
    scored = pd.read_csv(io.StringIO(response.get_data(as_text=True)), dtype={"label": str})
    assert scored.loc[0, "label"] == label
    assert math.isclose(scored.loc[0, FIRST.name], row[FIRST.name], rel_tol=1e-6)


def test_csv_short_row_is_refused_naming_its_line(client, row):
    text = csv_of([row, row]).rstrip("\n").rsplit(",", 1)[0] + "\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    n = len(FEATURE_NAMES)
    assert (
        error["message"]
        == f"Line 3 (data row 2) has {n - 1} field(s); the header (line 1) has {n}."
    )


def test_csv_row_with_an_extra_field_is_refused_not_shifted(client, row):
    # pandas would take the first value as an index and shift every feature by one column.
    lines = csv_of([row, row, row]).splitlines()
    lines[2] = "7," + lines[2]
    error = assert_json_error(post_csv(client, "\n".join(lines)), 422, "invalid_input")
    n = len(FEATURE_NAMES)
    assert (
        error["message"]
        == f"Line 3 (data row 2) has {n + 1} field(s); the header (line 1) has {n}."
    )
    assert error["details"] == [{"line": 3, "row": 2, "message": "wrong number of fields"}]


@pytest.mark.parametrize("change", [1, -1], ids=["one field more", "one field less"])
def test_csv_whose_rows_all_differ_from_the_header_is_refused(client, row, change):
    # Every data row alike, so the rows agree with each other but not with the header; the
    # field more is last, where reading only the header's columns would drop it unseen.
    header, *rows = csv_of([row, row]).splitlines()
    rows = [f"{line},7" if change > 0 else line.rsplit(",", 1)[0] for line in rows]
    error = assert_json_error(post_csv(client, "\n".join([header, *rows])), 422, "invalid_input")
    n = len(FEATURE_NAMES)
    assert (
        error["message"]
        == f"Line 2 (data row 1) has {n + change} field(s); the header (line 1) has {n}."
    )


def test_csv_line_numbers_count_quoted_line_breaks(client, row):
    header = ",".join(f'"{name}"' for name in FEATURE_NAMES)
    values = [str(row[name]) for name in FEATURE_NAMES]
    quoted_break = ",".join(['"1\n"', *values[1:]])
    text = "\n".join([header, ",".join(values), quoted_break, ",".join(values[:-1])]) + "\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    assert error["message"].startswith(f"Line 5 (data row 3) has {len(FEATURE_NAMES) - 1} field(s)")


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (["", *FEATURE_NAMES], "column 1 has no name"),
        (
            [*FEATURE_NAMES[:3], " ", *FEATURE_NAMES[3:]],
            f"column {min(3, len(FEATURE_NAMES)) + 1} has no name",
        ),
        ([*FEATURE_NAMES, FEATURE_NAMES[0]], f"names column(s) {FEATURE_NAMES[0]} more than once"),
        (
            [*FEATURE_NAMES[:-1], f" {FEATURE_NAMES[0]} "],
            f"names column(s) {FEATURE_NAMES[0]} more than once",
        ),
    ],
    ids=["index column", "blank name", "duplicate", "duplicate with spaces"],
)
def test_csv_header_must_name_each_column_once(client, row, header, needle):
    values = ["0", *[str(row[name]) for name in FEATURE_NAMES]][-len(header) :]
    text = ",".join(header) + "\n" + ",".join(values) + "\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    assert needle in error["message"]


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ('"1,000"', "'1,000' is not a number (write decimals with a point"),
        ('"0,5"', "'0,5' is not a number (write decimals with a point"),
        ("1_000", "'1_000' is not a number"),
        ("1 000", "'1 000' is not a number"),
        ("0x10", "'0x10' is not a number"),
        ("nan", "'nan' is not a finite number"),
    ],
)
def test_csv_cells_a_spreadsheet_reads_as_text_are_refused(client, row, cell, needle):
    values = [str(row[name]) for name in FEATURE_NAMES]
    values[0] = cell
    text = ",".join(FEATURE_NAMES) + "\n" + ",".join(values) + "\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    prefix = f"line 2 (data row 1), column {FEATURE_NAMES[0]}: "
    assert error["message"].startswith(prefix + needle)
    assert error["details"][0]["field"] == FEATURE_NAMES[0]


def test_csv_blank_line_inside_the_table_is_refused(client, row):
    lines = csv_of([row, row]).splitlines()
    text = "\n".join([lines[0], lines[1], "", lines[2]]) + "\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    n = len(FEATURE_NAMES)
    assert error["message"] == f"Line 3 (data row 2) has 0 field(s); the header (line 1) has {n}."


def test_csv_trailing_blank_lines_and_crlf_are_read_as_a_spreadsheet_would(client, row):
    text = csv_of([row, row]).replace("\n", "\r\n") + "\r\n\r\n"
    response = post_csv(client, text)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_data(as_text=True).count("\n") == 3
    assert "\r" not in response.get_data(as_text=True)  # the cells as read, not the line ends


def test_a_quoted_table_is_answered_cell_for_cell_one_line_feed_a_row(client, row):
    plain = csv_of([row, row]).splitlines()
    text = "".join('"' + line.replace(",", '","') + '"\n' for line in plain)
    answer = post_csv(client, text).get_data(as_text=True)
    lines = answer.split("\n")
    assert len(lines) == 4
    assert lines[-1] == ""
    assert "\r" not in answer
    assert [line.split(",")[: len(FEATURE_NAMES)] for line in lines[1:3]] == [
        plain[1].split(",")
    ] * 2


def test_a_hash_in_a_plain_table_is_not_read_as_a_comment(client, row):
    # numpy's reader would drop "#1" as a comment by default and score the row.
    text = csv_of([row]).rstrip("\n") + "#1\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    assert "#1' is not a number" in error["message"]


def test_csv_line_count_is_checked_before_parsing(client, row):
    # 51 data lines, the last one malformed: the row limit is named, not the bad line.
    text = csv_of([row] * 50) + '1,2,"unterminated\n'
    error = assert_json_error(post_csv(client, text), 422, "too_many_rows")
    assert error["message"] == "51 data rows sent; the limit is 50 per request."


def test_csv_rows_are_counted_while_parsing_too(client, row):
    # Lines ended by a bare CR (old Mac exports) escape the count of line feeds.
    text = csv_of([row] * 51).replace("\n", "\r")
    error = assert_json_error(post_csv(client, text), 422, "too_many_rows")
    assert error["message"] == "More than 50 data rows sent; the limit is 50 per request."
    assert post_csv(client, csv_of([row] * 50).replace("\n", "\r")).status_code == 200


def test_csv_bad_quoting_is_refused_with_its_line(client, row):
    values = [str(row[name]) for name in FEATURE_NAMES]
    values[-1] = '"1"2'
    text = ",".join(FEATURE_NAMES) + "\n" + ",".join(values) + "\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    assert error["message"].startswith("The CSV could not be parsed at line 2: ")


def test_csv_giant_field_is_a_client_error(client):
    text = (
        ",".join(FEATURE_NAMES)
        + "\n"
        + ",".join(["1" * 200_000] + ["1"] * (len(FEATURE_NAMES) - 1))
        + "\n"
    )
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    assert "field larger than field limit" in error["message"]


def test_a_card_without_what_the_model_route_promises_stops_the_app(tmp_path, model_path):
    path = tmp_path / "model.skops"
    copy_model(model_path, tmp_path)
    card = json.loads(model_path.with_suffix(".json").read_text())
    del card["metrics"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(
        ModelError, match=r"^The model card cannot be served: metrics: Field required\.$"
    ):
        create_app({"TESTING": True, "MODEL_PATH": str(path)})
