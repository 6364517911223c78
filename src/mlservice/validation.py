"""Checking prediction inputs: JSON rows, CSV batches and the page's form, with one rule set.

Each feature's values follow one rule, stated once from the contract (model.toml): a finite number
from the feature's min to its max, and for an integer feature a whole one (3.0 is read as 3, 2.5
is refused). JSON fields (Instance), CSV cells and the page's fields (to_number) are all checked
against it, and the OpenAPI document shows it. Failures raise InputError with one message per bad
value, each naming its field (and row).
"""

import csv
import functools
import io
import itertools
import json
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Annotated, NamedTuple

import numpy as np
import orjson
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from mlservice.contract import CONTRACT, Feature, show

# Enough messages to fix a batch, few enough to read.
MAX_REPORTED_ERRORS = 20
FEATURES = CONTRACT.features
FEATURE_NAMES = CONTRACT.feature_names
FEATURE_COUNT = len(FEATURES)


def _whole(value: float) -> float:
    if value != int(value):
        raise PydanticCustomError("whole_number", "Input should be a whole number")
    return value


def value_rule(feature: Feature) -> object:
    """The type of one feature's values: its range, and whole numbers for an integer feature."""
    number = Annotated[
        float, Field(ge=feature.min, le=feature.max, allow_inf_nan=False, strict=True)
    ]
    if not feature.integer:
        return number
    # JSON Schema's integer is any number without a fraction, 3.0 included, as here.
    schema = {"type": "integer", "minimum": int(feature.min), "maximum": int(feature.max)}
    return Annotated[number, AfterValidator(_whole), WithJsonSchema(schema)]


@functools.cache
def _rule(feature: Feature) -> TypeAdapter:
    return TypeAdapter(value_rule(feature))


RULES = [value_rule(feature) for feature in FEATURES]
# A whole table at once, stopping at its first bad value (the cell-by-cell reader explains it).
_table = TypeAdapter(Annotated[list[tuple[tuple(RULES)]], Field(fail_fast=True)])
# The same rules as arrays, to check a whole table parsed by numpy at once.
_MINIMA = np.array([feature.min for feature in FEATURES], dtype=float)
_MAXIMA = np.array([feature.max for feature in FEATURES], dtype=float)
_INTEGER_FEATURES = np.array([feature.integer for feature in FEATURES], dtype=bool)


class InputError(Exception):
    """Input that was read but cannot be scored: one message, and one entry per bad value."""

    def __init__(self, message: str, errors: list[dict] | None = None, code: str = "invalid_input"):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.code = code


class UnreadableInput(InputError):
    """A body that cannot be read at all (not JSON); the web layer answers it with 400."""

    def __init__(self, message: str):
        super().__init__(message, code="invalid_json")


def _description(feature: Feature) -> str:
    unit = f" ({feature.unit})" if feature.unit else ""
    return f"{feature.label}{unit}: {feature.description}"


# One instance: exactly the contract's features, numbers only (strict: no "1", true or null).
# Python names f0, f1, ... with the features' names as aliases: a feature may be called anything
# the contract allows, even a name pydantic keeps for itself (schema, model_config).
_FIELDS = [f"f{index}" for index in range(FEATURE_COUNT)]
Instance = create_model(
    "Instance",
    __config__=ConfigDict(extra="forbid", strict=True),
    **{
        field: (rule, Field(alias=feature.name, description=_description(feature)))
        for field, rule, feature in zip(_FIELDS, RULES, FEATURES, strict=True)
    },
)
_instances = TypeAdapter(list[Instance])
_instance = Instance.__pydantic_validator__  # Instance.model_validate, less a Python call


def form_message(kind: str, feature: Feature) -> str:
    """The page's words for a NumberError of this kind in this feature's field."""
    return {
        "empty": "Enter a number.",
        "not_a_number": "Enter a number.",
        "not_finite": "Enter a finite number.",
        "too_small": f"Must be {show(feature.min)} or more.",
        "too_large": f"Must be at most {show(feature.max)}.",
        "not_whole": "Enter a whole number.",
    }[kind]


def _location(loc: tuple) -> str:
    parts = [f"instances[{part}]" if isinstance(part, int) else str(part) for part in loc]
    return ".".join(parts)


def _errors_from(error: ValidationError, prefix: tuple = ()) -> list[dict]:
    return [
        {"field": _location(prefix + item["loc"]), "message": item["msg"], "type": item["type"]}
        for item in error.errors()[:MAX_REPORTED_ERRORS]
    ]


def rows_from_json(payload: object) -> list[list[float]]:
    """Validate one instance or {"instances": [...]}; return its rows, each a list of floats in
    the contract's order (Model.predict_rows).

    The row limit was applied by parse_json, before the objects were built.
    """
    # JSON objects are read as dicts (parse_json).
    if type(payload) is dict and "instances" in payload:
        extra = sorted(set(payload) - {"instances"})
        if extra:
            raise InputError(f"Unexpected top-level field(s) beside instances: {', '.join(extra)}.")
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InputError("instances must be a list of objects.")
        if not instances:
            raise InputError("instances is empty; send at least one row.", code="empty_batch")
        try:
            valid = _instances.validate_python(instances)
        except ValidationError as error:
            errors = _errors_from(error)
            raise InputError(_summary(errors), errors) from None
    elif type(payload) is dict:
        try:
            valid = [_instance.validate_python(payload)]
        except ValidationError as error:
            errors = _errors_from(error)
            raise InputError(_summary(errors), errors) from None
    else:
        raise InputError('The body must be a JSON object: one instance or {"instances": [...]}.')
    # An instance's __dict__ holds its fields alone (extra="forbid"), in the contract's order.
    return [[*row.__dict__.values()] for row in valid]


def _summary(errors: list[dict]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['field']}: {first['message']}{more}."


def parse_json(text: str, max_rows: int) -> object:
    """Parse a JSON body, refusing one that holds more than max_rows rows' worth of values.

    The counts come before parsing, so a body of a million empty objects or arrays is refused
    without building them: a batch of max_rows rows has max_rows + 2 objects and arrays and fewer
    than FEATURE_COUNT commas per row (braces or commas inside strings only ever overcount, and
    no valid body has them). orjson reads a valid body (four times faster than json for one row);
    anything else, or a body that may hold a key twice, is read by json, whose errors are the
    answer's and which refuses a key twice.
    """
    containers = text.count("{") + text.count("[")
    if containers > max_rows + 2:
        raise InputError(
            f"The body holds {containers} objects and arrays, more than a batch of {max_rows} "
            f"rows has; the limit is {max_rows} rows per request.",
            code="too_many_rows",
        )
    commas = text.count(",")
    if commas > FEATURE_COUNT * max_rows:
        raise InputError(
            f"The body holds {commas + 1} values or more, more than a batch of {max_rows} rows "
            f"has; the limit is {max_rows} rows per request.",
            code="too_many_rows",
        )
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass  # json's reader below says why, or reads what orjson does not (NaN, 1e999)
    else:
        if _key_count(payload) == text.count(":"):
            return payload  # no key twice: every colon is one of the keys orjson kept
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise UnreadableInput(f"The body is not valid JSON: {error}.") from None
    except ValueError:  # Python's guard against quadratic-time conversion of huge integers
        raise UnreadableInput(
            f"The body holds an integer of more than {sys.get_int_max_str_digits()} digits."
        ) from None
    except RecursionError:
        raise UnreadableInput("The body is nested too deeply.") from None


def _key_count(payload: object) -> int | None:
    """The keys of a body's objects, counted for the shapes a valid body has: one object, or
    {"instances": [...]} of objects (None for any other). A key kept once of two, a nested object
    or a colon inside a string leaves fewer keys than colons."""
    if not isinstance(payload, dict):
        return None
    instances = payload.get("instances")
    rows = instances if isinstance(instances, list) else ()
    return len(payload) + sum(len(row) for row in rows if isinstance(row, dict))


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    # json.loads would keep the last of two equal keys; which value was meant is unknowable.
    result = dict(pairs)
    if len(result) < len(pairs):
        seen = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InputError(f"The field {twice!r} appears more than once in one object.")
    return result


# Made once: json.loads(text, object_pairs_hook=...) builds a decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object_without_duplicates)


class NumberError(ValueError):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# What each way of breaking a value rule is called (NumberError.kind), by pydantic's error type.
_BROKEN_RULE = {
    "finite_number": "not_finite",
    "greater_than_equal": "too_small",
    "less_than_equal": "too_large",
    "whole_number": "not_whole",
}


def to_number(text: str, feature: Feature) -> float:
    """Read a CSV cell or form field and check it against the feature's rule, as JSON values are.

    Python's float() syntax ("1e3", ".5", "+5.", surrounding spaces), but no underscores: a
    spreadsheet reads "1_000" as text, and so does this.
    """
    cell = text.strip()
    if not cell:
        raise NumberError("empty", "the cell is empty")
    try:
        if "_" in cell:
            raise ValueError
        number = float(cell)
    except ValueError:
        hint = " (write decimals with a point, without thousands separators)" if "," in cell else ""
        raise NumberError("not_a_number", f"{cell!r} is not a number{hint}") from None
    try:
        return _rule(feature).validate_python(number)
    except ValidationError as error:
        kind = _BROKEN_RULE[error.errors()[0]["type"]]
    message = {
        "not_finite": f"{cell!r} is not a finite number",
        "too_small": f"{cell} is below the minimum of {show(feature.min)}",
        "too_large": f"{cell} is above the maximum of {show(feature.max)}",
        "not_whole": f"{cell} is not a whole number",
    }[kind]
    raise NumberError(kind, message)


class CsvTable(NamedTuple):
    """A CSV batch as read: its header, its data rows as sent, and their features as an array.

    A plain table (no quote character, no CR) keeps each data row as its line, which is its cells
    joined by commas; any other keeps the cells the csv module read. Exactly one of `lines` and
    `rows` is set.
    """

    header: list[str]
    lines: list[str] | None
    rows: list[list[str]] | None
    numbers: np.ndarray


def table_from_csv(text: str, max_rows: int) -> CsvTable:
    """Parse a CSV batch; return its header, its rows as sent and the (n, features) array.

    Read as a spreadsheet would: the csv module splits fields (quotes, CRLF), every row must
    have exactly the header's fields, and blank lines at the end are ignored. Line numbers in
    messages count the header as line 1.
    """
    text = text.rstrip("\r\n")
    if not text:
        raise InputError("The CSV body is empty; send a header row and data rows.")
    # Counted before parsing, so an oversized table is refused without building its rows.
    lines = text.count("\n")
    if lines > max_rows:
        raise InputError(
            f"{lines} data rows sent; the limit is {max_rows} per request.", code="too_many_rows"
        )
    if '"' not in text and "\r" not in text:
        plain = _plain_table(text)
        if plain is not None:
            return plain
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        columns = _feature_columns(header)
        rows = []
        for cells in reader:
            row = len(rows) + 1
            if len(cells) != len(header):
                raise InputError(
                    f"Line {reader.line_num} (data row {row}) has {len(cells)} field(s); "
                    f"the header (line 1) has {len(header)}.",
                    [{"line": reader.line_num, "row": row, "message": "wrong number of fields"}],
                )
            if row > max_rows:
                raise InputError(
                    f"More than {max_rows} data rows sent; the limit is {max_rows} per request.",
                    code="too_many_rows",
                )
            rows.append(cells)
    except csv.Error as error:
        raise InputError(
            f"The CSV could not be parsed at line {reader.line_num}: {error}."
        ) from None
    if not rows:
        raise InputError("The CSV has a header but no rows.", code="empty_batch")
    return CsvTable(header, None, rows, numbers_from_cells(rows, columns))


def _plain_table(text: str) -> CsvTable | None:
    """A table without quotes or CRs, read by numpy's C parser: one row per line, fields split at
    commas, each read as float() reads it (but "1_4", which to_number refuses too). None when a
    row or value is not as the rules want; the csv module's reader then says what is wrong."""
    first, _, body = text.partition("\n")
    if not body:
        return None
    header = first.split(",")
    columns = _feature_columns(header)
    lines = body.split("\n")
    try:
        numbers = np.loadtxt(lines, delimiter=",", comments=None, ndmin=2)
    except ValueError:  # a cell that is not a number, rows with different numbers of fields
        return None
    if numbers.shape[1] != len(header):  # every row with as many fields as each other, not
        return None  # as the header: numpy only checks the rows against the first
    # Row by row in memory (C order), as the other readers build it: a matrix product sums in
    # an order that depends on the layout. (BLAS still splits a long table its own way: a row of
    # it may score differently from the same row alone in the last bit.)
    numbers = np.ascontiguousarray(numbers[:, columns])
    # numpy skips blank lines, which the csv module's reader refuses.
    if len(numbers) != len(lines) or not _all_within_rules(numbers):
        return None
    return CsvTable(header, lines, None, numbers)


def _all_within_rules(numbers: np.ndarray) -> bool:
    """Whether every value of an (n, features) table keeps its feature's rule (value_rule): finite,
    from min to max, whole for an integer feature."""
    # NaN fails both comparisons, and ±inf is outside the contract's finite bounds.
    whole = numbers[:, _INTEGER_FEATURES]
    return bool(
        (numbers >= _MINIMA).all()
        and (numbers <= _MAXIMA).all()
        and (whole == np.trunc(whole)).all()
    )


def _feature_columns(header: list[str]) -> list[int]:
    """The position of each feature in the header, or InputError naming what is wrong."""
    names = [name.strip() for name in header]
    for position, name in enumerate(names, start=1):
        if not name:
            raise InputError(
                f"The CSV header's column {position} has no name; every column needs one "
                "(an unnamed first column is usually an exported row index: leave it out)."
            )
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    if twice:
        raise InputError(f"The CSV header names column(s) {', '.join(twice)} more than once.")
    missing = [name for name in FEATURE_NAMES if name not in names]
    unknown = [name for name in names if name not in FEATURE_NAMES]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        errors = [{"field": c, "message": "missing column"} for c in missing] + [
            {"field": c, "message": "unknown column"} for c in unknown
        ]
        raise InputError(f"The CSV header has {' and '.join(problems)}.", errors)
    return [names.index(name) for name in FEATURE_NAMES]


def numbers_from_cells(rows: list[list[str]], columns: list[int]) -> np.ndarray:
    """The features of each row, read from its cells at these positions (contract order).

    Every cell must be a feature's (a table with other columns was refused). Training reads its
    CSV through this too, so the model learns only from values the service accepts.
    """
    # Fast path: float() on every cell, then every rule on the whole table at once. Every cell is
    # a feature's, so the cells hold an underscore only where a feature does: float() reads "1_4"
    # as 14, to_number refuses it.
    if "_" not in "".join(itertools.chain.from_iterable(rows)):
        try:
            numbers = [[float(cells[column]) for column in columns] for cells in rows]
            _table.validate_python(numbers)
        except (ValueError, ValidationError):
            pass
        else:
            return np.array(numbers, dtype=float)
    # Cell by cell with to_number, which says which cells are bad and why. It can also accept
    # what float() did not: str.strip() removes a few control characters that float() refuses.
    numbers, errors, bad = [], [], 0
    for row, cells in enumerate(rows, start=1):
        values = []
        for column, feature in zip(columns, FEATURES, strict=True):
            try:
                values.append(to_number(cells[column], feature))
            except NumberError as error:
                bad += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    name = feature.name
                    errors.append(
                        {
                            "line": row + 1,
                            "row": row,
                            "field": name,
                            "message": f"line {row + 1} (data row {row}), column {name}: {error}",
                        }
                    )
        numbers.append(values)
    if errors:
        more = f" (and {bad - 1} more)" if bad > 1 else ""
        raise InputError(errors[0]["message"] + more + ".", errors)
    return np.array(numbers)


def row_from_form(form: Mapping[str, str]) -> tuple[np.ndarray | None, dict[str, str]]:
    """Validate the page's fields; return the row, or None and a message per bad field.

    Each field is read like a CSV cell (to_number), so the page and CSV batches agree.
    """
    values, errors = [], {}
    for feature in FEATURES:
        try:
            values.append(to_number(form.get(feature.name, ""), feature))
        except NumberError as error:
            errors[feature.name] = form_message(error.kind, feature)
    if errors:
        return None, errors
    return np.array([values]), {}
