import io
import json
import math

import pandas as pd
import pytest

from mlservice.features import FEATURE_NAMES, LABELS

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


@pytest.fixture
def row(card):
    return dict(card["examples"]["benign"])


def test_single_instance_predicts_label_and_probabilities(client, card, row):
    response = post_json(client, row)
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == card["version"]
    [prediction] = body["predictions"]
    assert prediction["label"] == "benign"
    probabilities = prediction["probabilities"]
    assert set(probabilities) == set(LABELS)
    assert math.isclose(sum(probabilities.values()), 1.0)
    assert probabilities["benign"] > probabilities["malignant"]


def test_batch_keeps_order_and_matches_single_predictions(client, card):
    rows = [card["examples"]["malignant"], card["examples"]["benign"]] * 3
    body = post_json(client, {"instances": rows}).get_json()
    assert [p["label"] for p in body["predictions"]] == ["malignant", "benign"] * 3
    single = post_json(client, rows[0]).get_json()["predictions"][0]
    assert single["label"] == body["predictions"][0]["label"]
    for label in LABELS:
        assert math.isclose(
            single["probabilities"][label], body["predictions"][0]["probabilities"][label]
        )


def test_integers_are_accepted_as_numbers(client, row):
    row["radius_mean"] = 14
    assert post_json(client, row).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({"radius_mean": "12.5"}, "radius_mean", "valid number"),
        ({"radius_mean": True}, "radius_mean", "valid number"),
        ({"radius_mean": None}, "radius_mean", "valid number"),
        ({"radius_mean": -1}, "radius_mean", "greater than or equal to 0"),
        ({"bogus": 1}, "bogus", "Extra inputs"),
    ],
)
def test_bad_values_name_their_field(client, row, change, field, needle):
    error = assert_json_error(post_json(client, {**row, **change}), 422, "invalid_input")
    assert error["message"].startswith(field)
    assert needle in error["message"]
    assert any(d["field"] == field for d in error["details"])


def test_missing_feature_is_named(client, row):
    del row["symmetry_se"]
    error = assert_json_error(post_json(client, row), 422, "invalid_input")
    assert error["details"] == [
        {"field": "symmetry_se", "message": "Field required", "type": "missing"}
    ]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, row, literal):
    text = json.dumps(row).replace(str(row["texture_mean"]), literal, 1)
    error = assert_json_error(post_json(client, text), 422, "invalid_input")
    assert error["details"][0]["field"] == "texture_mean"
    assert "finite" in error["message"]


def test_errors_in_a_batch_name_the_row(client, row):
    bad = {**row, "smoothness_se": "x"}
    error = assert_json_error(post_json(client, {"instances": [row, bad]}), 422, "invalid_input")
    assert error["details"][0]["field"] == "instances[1].smoothness_se"


def test_malformed_json(client):
    error = assert_json_error(post_json(client, '{"radius_mean": 1,'), 400, "invalid_json")
    assert "line 1" in error["message"]


def test_deeply_nested_json_is_a_client_error(client):
    assert_json_error(post_json(client, "[" * 100_000 + "]" * 100_000), 400, "invalid_json")


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
def test_body_must_be_an_object(client, body):
    assert_json_error(post_json(client, body), 422, "invalid_input")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"instances": []}, "empty_batch"),
        ({"instances": {"radius_mean": 1}}, "invalid_input"),
        ({"instances": [], "extra": 1}, "invalid_input"),
    ],
)
def test_bad_batches(client, body, code):
    assert_json_error(post_json(client, body), 422, code)


def test_too_many_rows(client, row):
    error = assert_json_error(post_json(client, {"instances": [row] * 51}), 422, "too_many_rows")
    assert "limit is 50" in error["message"]


def test_body_over_the_size_limit(model_path, row):
    from mlservice import create_app

    small = create_app({"MODEL_PATH": str(model_path), "MAX_CONTENT_LENGTH": 1000})
    response = post_json(small.test_client(), {"instances": [row] * 20})
    assert_json_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(client, row, content_type):
    response = client.post(PREDICT, data=json.dumps(row), content_type=content_type)
    error = assert_json_error(response, 415, "unsupported_media_type")
    assert "application/json or text/csv" in error["message"]


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_non_utf8_body(client, content_type):
    response = client.post(PREDICT, data=b'{"radius_mean": "\xff\xfe"}', content_type=content_type)
    assert_json_error(response, 400, "invalid_encoding")


def csv_of(rows: list[dict], columns=FEATURE_NAMES) -> str:
    return pd.DataFrame(rows, columns=list(columns)).to_csv(index=False)


def post_csv(client, text):
    return client.post(PREDICT, data=text.encode(), content_type="text/csv")


def test_csv_batch_in_any_column_order(client, card):
    rows = [card["examples"]["benign"], card["examples"]["malignant"]]
    shuffled = list(reversed(FEATURE_NAMES))
    response = post_csv(client, csv_of(rows, shuffled))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["X-Model-Version"] == card["version"]
    table = pd.read_csv(io.StringIO(response.get_data(as_text=True)))
    assert list(table.columns) == [
        *shuffled,
        "label",
        "probability_benign",
        "probability_malignant",
    ]
    assert list(table["label"]) == ["benign", "malignant"]
    as_json = post_json(client, {"instances": rows}).get_json()["predictions"]
    for (_, scored), predicted in zip(table.iterrows(), as_json, strict=True):
        assert math.isclose(scored["probability_benign"], predicted["probabilities"]["benign"])


def test_csv_with_byte_order_mark(client, row):
    response = client.post(
        PREDICT, data=b"\xef\xbb\xbf" + csv_of([row]).encode(), content_type="text/csv"
    )
    assert response.status_code == 200


def test_csv_missing_and_extra_columns(client, row):
    table = pd.DataFrame([row]).drop(columns="radius_mean").assign(patient="p1")
    error = assert_json_error(post_csv(client, table.to_csv(index=False)), 422, "invalid_input")
    assert "missing column(s) radius_mean" in error["message"]
    assert "unknown column(s) patient" in error["message"]
    assert {"field": "patient", "message": "unknown column"} in error["details"]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("abc", "'abc' is not a number"),
        ("", "the cell is empty"),
        ("-2", "negative"),
        ("inf", "not a finite"),
        ("1e308", "1e308 is larger than 1,000,000,000"),
    ],
)
def test_csv_bad_cell_names_row_and_column(client, card, cell, reason):
    rows = [card["examples"]["benign"]] * 3
    text = csv_of(rows)
    lines = text.splitlines()
    values = lines[2].split(",")
    values[FEATURE_NAMES.index("smoothness_mean")] = cell
    lines[2] = ",".join(values)
    error = assert_json_error(post_csv(client, "\n".join(lines) + "\n"), 422, "invalid_input")
    assert error["message"].startswith("row 2, column smoothness_mean: ")
    assert reason in error["message"]
    assert error["details"][0]["row"] == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        (",".join(FEATURE_NAMES) + "\n", "no rows"),
        (",".join(FEATURE_NAMES) + '\n1,2,3,4,5,"6\n', "could not be parsed"),
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

    monkeypatch.setattr(Model, "predict_proba", explode)
    response = post_json(client, row)
    error = assert_json_error(response, 500, "http_error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert error["details"] is None


def test_health_and_readiness(client, card):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready", "model_version": card["version"]}


def test_csv_cells_may_have_spaces_and_exponents(client, row):
    cells = [f" {row[name]:e} " for name in FEATURE_NAMES]
    text = ",".join(FEATURE_NAMES) + "\n" + ",".join(cells) + "\n"
    response = post_csv(client, text)
    assert response.status_code == 200
    scored = pd.read_csv(io.StringIO(response.get_data(as_text=True)))
    assert scored.loc[0, "label"] == "benign"
    assert math.isclose(scored.loc[0, "radius_mean"], row["radius_mean"], rel_tol=1e-6)


def test_csv_short_row_names_the_empty_cell(client, row):
    text = csv_of([row, row]).rstrip("\n").rsplit(",", 1)[0] + "\n"
    error = assert_json_error(post_csv(client, text), 422, "invalid_input")
    assert error["message"] == "row 2, column symmetry_se: the cell is empty."
