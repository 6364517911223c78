"""The value rules (a finite number within the feature's range, whole for an integer feature),
shared by JSON fields, CSV cells and the page's fields, and the page agreeing with CSV."""

import json

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from mlservice import validation
from mlservice.contract import Feature
from mlservice.validation import (
    InputError,
    NumberError,
    form_message,
    table_from_csv,
    to_number,
    value_rule,
)
from tests.values import FEATURE_NAMES, FEATURES, FIRST, csv_table

WIDE = Feature(name="wide", label="Wide", description="Any size.", min=0, max=1e9)
WHOLE = Feature(
    name="count", label="Count", description="How many.", type="integer", min=-5, max=100
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e3", 1000.0), ("1E+03", 1000.0), (".5", 0.5), ("5.", 5.0), ("+7", 7.0), (" 2\t", 2.0)],
)
def test_notations_python_reads_are_numbers(text, value):
    assert to_number(text, WIDE) == value


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
        ("-0.5", "too_small"),
        ("1000000001", "too_large"),
    ],
)
def test_everything_else_is_refused_with_its_reason(text, kind):
    with pytest.raises(NumberError) as caught:
        to_number(text, WIDE)
    assert caught.value.kind == kind


@pytest.mark.parametrize(("text", "value"), [("3", 3.0), ("3.0", 3.0), ("1e1", 10.0), ("-5", -5.0)])
def test_an_integer_feature_takes_whole_numbers_in_any_notation(text, value):
    assert to_number(text, WHOLE) == value


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("2.5", "not_whole", "2.5 is not a whole number"),
        ("99.000001", "not_whole", "99.000001 is not a whole number"),
        ("-6", "too_small", "-6 is below the minimum of -5"),
        ("101", "too_large", "101 is above the maximum of 100"),
    ],
)
def test_an_integer_feature_refuses_fractions_and_its_range_ends(text, kind, message):
    with pytest.raises(NumberError) as caught:
        to_number(text, WHOLE)
    assert caught.value.kind == kind
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("kind", "feature", "message"),
    [
        ("empty", WHOLE, "Enter a number."),
        ("not_a_number", WHOLE, "Enter a number."),
        ("not_finite", WHOLE, "Enter a finite number."),
        ("too_small", WHOLE, "Must be -5 or more."),
        ("too_large", WIDE, "Must be at most 1,000,000,000."),
        ("not_whole", WHOLE, "Enter a whole number."),
    ],
)
def test_the_page_says_each_reason_in_its_own_words(kind, feature, message):
    assert form_message(kind, feature) == message


@pytest.mark.parametrize("value", ["1_000", "1,5"])
def test_page_and_csv_refuse_the_same_text(client, row, value):
    form = {name: str(v) for name, v in row.items()}
    form[FIRST.name] = value
    page = client.post("/", data=form)
    assert page.status_code == 400
    assert "Enter a number." in page.get_data(as_text=True)

    quoted = {name: f'"{text}"' for name, text in form.items()}
    scored = client.post(
        "/api/v1/predict", data=csv_table([quoted], FEATURE_NAMES), content_type="text/csv"
    )
    assert scored.status_code == 422
    assert f"{value!r} is not a number" in scored.get_json()["error"]["message"]


def bounds_table() -> str:
    """A plain CSV table (no quotes, no CR): a row at every feature's minimum, one at its maximum."""
    return csv_table(
        [{f.name: f.min for f in FEATURES}, {f.name: f.max for f in FEATURES}],
        columns=list(reversed(FEATURE_NAMES)),
    )


def test_a_plain_table_is_read_whole_and_kept_line_by_line():
    text = bounds_table()
    table = table_from_csv(text, max_rows=2)
    assert table.header == list(reversed(FEATURE_NAMES))
    assert table.lines == text.splitlines()[1:]
    assert table.rows is None
    assert table.numbers.tolist() == [[f.min for f in FEATURES], [f.max for f in FEATURES]]
    # Laid out as JSON rows are, so that a model's sums, and so its answers, are the same bits.
    assert table.numbers.flags["C_CONTIGUOUS"]


def test_a_quoted_table_is_read_cell_by_cell():
    plain = bounds_table().splitlines()
    text = "".join('"' + line.replace(",", '","') + '"\n' for line in plain)
    table = table_from_csv(text, max_rows=2)
    assert table.lines is None
    assert table.rows == [line.split(",") for line in plain[1:]]
    assert table.numbers.tolist() == [[f.min for f in FEATURES], [f.max for f in FEATURES]]


def test_the_plain_reader_checks_integer_columns_for_whole_numbers(monkeypatch):
    # As if every feature were an integer one from -10 to 10: the last row's 2.5 is not whole.
    count = len(FEATURES)
    monkeypatch.setattr(validation, "_INTEGER_FEATURES", np.ones(count, dtype=bool))
    monkeypatch.setattr(validation, "_MINIMA", np.full(count, -10.0))
    monkeypatch.setattr(validation, "_MAXIMA", np.full(count, 10.0))
    whole = np.full((2, count), 3.0)
    assert validation._all_within_rules(whole)
    whole[-1, -1] = 2.5
    assert not validation._all_within_rules(whole)


def test_a_cell_with_separator_characters_around_its_number_is_read_cell_by_cell():
    # float() refuses the ASCII separators \x1c-\x1f that str.strip() removes, so such a table
    # is read cell by cell (to_number), which accepts it as JSON and the page would.
    plain = bounds_table().splitlines()
    rows = [["\x1f" + value + "\x1c" for value in line.split(",")] for line in plain[1:]]
    text = plain[0] + "\n" + "".join(",".join(f'"{c}"' for c in cells) + "\n" for cells in rows)
    table = table_from_csv(text, max_rows=2)
    assert table.rows == rows
    assert table.numbers.tolist() == [[f.min for f in FEATURES], [f.max for f in FEATURES]]
    assert table.numbers.dtype == np.float64


def test_a_header_lists_every_missing_and_unknown_column(monkeypatch):
    # As if the contract had three features: the header lacks two and has two others.
    monkeypatch.setattr(validation, "FEATURE_NAMES", ["alpha", "beta", "gamma"])
    with pytest.raises(InputError) as caught:
        table_from_csv("beta,delta,epsilon\n1,2,3\n", max_rows=1)
    assert caught.value.message == (
        "The CSV header has missing column(s) alpha, gamma and unknown column(s) delta, epsilon."
    )
    assert caught.value.errors == [
        {"field": "alpha", "message": "missing column"},
        {"field": "gamma", "message": "missing column"},
        {"field": "delta", "message": "unknown column"},
        {"field": "epsilon", "message": "unknown column"},
    ]


# The rules are built when the module is imported; these build them again from features of their
# own, as the contract's would be.
def broken_rules(rule, value) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(rule).validate_python(value)
    return [(error["type"], error["msg"]) for error in caught.value.errors()]


@pytest.mark.parametrize(("value", "read"), [(0.0, 0.0), (2.5, 2.5), (3, 3.0), (1e9, 1e9)])
def test_a_decimal_feature_takes_any_number_of_its_range(value, read):
    number = TypeAdapter(value_rule(WIDE)).validate_python(value)
    assert number == read
    assert type(number) is float


@pytest.mark.parametrize(
    ("value", "broken"),
    [
        (-0.5, ("greater_than_equal", "Input should be greater than or equal to 0")),
        (1e9 + 1, ("less_than_equal", "Input should be less than or equal to 1000000000")),
        (float("nan"), ("finite_number", "Input should be a finite number")),
        (float("inf"), ("finite_number", "Input should be a finite number")),
        (float("-inf"), ("finite_number", "Input should be a finite number")),
        ("1", ("float_type", "Input should be a valid number")),
        (True, ("float_type", "Input should be a valid number")),
        (None, ("float_type", "Input should be a valid number")),
    ],
)
def test_a_decimal_feature_refuses_other_values_saying_why(value, broken):
    assert broken_rules(value_rule(WIDE), value) == [broken]


@pytest.mark.parametrize(("value", "read"), [(-5, -5.0), (3.0, 3.0), (100.0, 100.0)])
def test_an_integer_rule_takes_whole_numbers_of_its_range(value, read):
    assert TypeAdapter(value_rule(WHOLE)).validate_python(value) == read


@pytest.mark.parametrize(
    ("value", "broken"),
    [
        (2.5, ("whole_number", "Input should be a whole number")),
        (-4.999, ("whole_number", "Input should be a whole number")),
        (-6, ("greater_than_equal", "Input should be greater than or equal to -5")),
        (101.0, ("less_than_equal", "Input should be less than or equal to 100")),
        (float("nan"), ("finite_number", "Input should be a finite number")),
        ("3", ("float_type", "Input should be a valid number")),
    ],
)
def test_an_integer_rule_refuses_fractions_saying_why(value, broken):
    assert broken_rules(value_rule(WHOLE), value) == [broken]


def test_the_rules_are_documented_as_json_schema_types():
    assert TypeAdapter(value_rule(WHOLE)).json_schema() == {
        "type": "integer",
        "minimum": -5,
        "maximum": 100,
    }
    assert TypeAdapter(value_rule(WIDE)).json_schema() == {
        "type": "number",
        "minimum": 0,
        "maximum": 1e9,
    }


def test_a_field_is_described_by_its_label_unit_and_description():
    height = Feature(
        name="height", label="Height", unit="cm", description="Standing.", min=0, max=300
    )
    assert validation._description(height) == "Height (cm): Standing."
    assert validation._description(WHOLE) == "Count: How many."


class _Refusing:
    def decode(self, text: str):
        raise AssertionError("json's reader read a body orjson vouches for")


@pytest.mark.parametrize("batch", [False, True], ids=["one row", "instances"])
def test_a_valid_body_is_read_by_orjson_alone(monkeypatch, row, batch):
    monkeypatch.setattr(validation, "_DECODER", _Refusing())
    body = {"instances": [row, row]} if batch else row
    assert validation.parse_json(json.dumps(body), 10) == body


@pytest.mark.parametrize(
    "body",
    [
        '{"a": "1:2"}',  # a colon inside a string
        '{"a": {"b": 1}}',  # a nested object
        '{"instances": [{"a": {"b": 1}}]}',
        '{"instances": {"a": 1}}',
        '[{"a": 1}]',
        '{"a": NaN}',  # orjson refuses what json reads
    ],
)
def test_a_body_orjson_cannot_vouch_for_is_read_by_json(monkeypatch, body):
    read = []
    decoder = validation._DECODER

    class Watching:
        def decode(self, text: str):
            read.append(text)
            return decoder.decode(text)

    monkeypatch.setattr(validation, "_DECODER", Watching())
    parsed = validation.parse_json(body, 10)
    assert read == [body]
    assert json.dumps(parsed) == json.dumps(json.loads(body))


@pytest.mark.parametrize(
    "body", ['{"a": 1, "a": 2}', '{"instances": [{"a": 1}, {"a": 1, "a": 2}]}']
)
def test_a_key_twice_is_refused_though_orjson_keeps_the_last(body):
    with pytest.raises(validation.InputError, match="The field 'a' appears more than once"):
        validation.parse_json(body, 10)
