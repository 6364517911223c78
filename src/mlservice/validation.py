"""Checking prediction inputs: JSON rows, CSV batches and the page's form, with one rule set.

Every feature is a number from 0 to MAX_VALUE. Failures raise InputError with one message per
bad value, each naming its field (and row, for batches).
"""

import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, create_model

from mlservice.features import FEATURE_NAMES, FEATURES

# Enough messages to fix a batch, few enough to read.
MAX_REPORTED_ERRORS = 20
# Far beyond any real measurement; larger values overflow the model's scaling to inf and NaN.
MAX_VALUE = 1e9


class InputError(Exception):
    def __init__(self, message: str, errors: list[dict] | None = None, code: str = "invalid_input"):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.code = code


# One instance: exactly the six features, numbers only (strict: no "1", true or null).
Instance = create_model(
    "Instance",
    __config__=ConfigDict(extra="forbid", strict=True),
    **{
        feature.name: (
            float,
            Field(
                ge=0,
                le=MAX_VALUE,
                allow_inf_nan=False,
                description=f"{feature.description} ({feature.unit})",
            ),
        )
        for feature in FEATURES
    },
)
_instances = TypeAdapter(list[Instance])

# Shorter words for the page than pydantic's, keyed by pydantic's error type.
FORM_MESSAGES = {
    "missing": "Enter a number.",
    "float_parsing": "Enter a number.",
    "float_type": "Enter a number.",
    "finite_number": "Enter a finite number.",
    "greater_than_equal": "Must be 0 or more.",
    "less_than_equal": f"Must be at most {MAX_VALUE:,.0f}.",
}


def _location(loc: tuple) -> str:
    parts = [f"instances[{part}]" if isinstance(part, int) else str(part) for part in loc]
    return ".".join(parts)


def _errors_from(error: ValidationError, prefix: tuple = ()) -> list[dict]:
    return [
        {"field": _location(prefix + item["loc"]), "message": item["msg"], "type": item["type"]}
        for item in error.errors()[:MAX_REPORTED_ERRORS]
    ]


def rows_from_json(payload: object, max_rows: int) -> np.ndarray:
    """Validate one instance or {"instances": [...]}; return an (n, 6) array of features."""
    if isinstance(payload, Mapping) and "instances" in payload:
        extra = sorted(set(payload) - {"instances"})
        if extra:
            raise InputError(f"Unexpected top-level field(s) beside instances: {', '.join(extra)}.")
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InputError("instances must be a list of objects.")
        if not instances:
            raise InputError("instances is empty; send at least one row.", code="empty_batch")
        if len(instances) > max_rows:
            raise InputError(
                f"{len(instances)} rows sent; the limit is {max_rows} per request.",
                code="too_many_rows",
            )
        try:
            valid = _instances.validate_python(instances)
        except ValidationError as error:
            errors = _errors_from(error)
            raise InputError(_summary(errors), errors) from None
    elif isinstance(payload, Mapping):
        try:
            valid = [Instance.model_validate(payload)]
        except ValidationError as error:
            errors = _errors_from(error)
            raise InputError(_summary(errors), errors) from None
    else:
        raise InputError('The body must be a JSON object: one instance or {"instances": [...]}.')
    return np.array([[getattr(row, name) for name in FEATURE_NAMES] for row in valid])


def _summary(errors: list[dict]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['field']}: {first['message']}{more}."


def _read_csv(text: str, **options) -> pd.DataFrame:
    try:
        table = pd.read_csv(io.StringIO(text), **options)
    except pd.errors.EmptyDataError:
        raise InputError("The CSV body is empty; send a header row and data rows.") from None
    except pd.errors.ParserError as error:
        raise InputError(f"The CSV could not be parsed: {str(error).strip()}") from None
    table.columns = [str(column).strip() for column in table.columns]
    return table


def _check_shape(table: pd.DataFrame, max_rows: int) -> None:
    missing = [name for name in FEATURE_NAMES if name not in table.columns]
    unknown = [column for column in table.columns if column not in FEATURE_NAMES]
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
    if table.empty:
        raise InputError("The CSV has a header but no rows.", code="empty_batch")
    if len(table) > max_rows:
        raise InputError(
            f"{len(table)} rows sent; the limit is {max_rows} per request.", code="too_many_rows"
        )


def _acceptable(numbers: np.ndarray) -> np.ndarray:
    """The JSON rule for every cell: a finite number from 0 to MAX_VALUE (NaN fails all three)."""
    return np.isfinite(numbers) & (numbers >= 0) & (numbers <= MAX_VALUE)


def frame_from_csv(text: str, max_rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Parse a CSV batch; return the table (columns as sent) and the (n, 6) feature array."""
    try:
        # Fast path: pandas' C parser reads every cell as a number.
        table = _read_csv(text, dtype=float)
    except ValueError:
        table = None  # some cell is not a number; the text parse below says which
    if table is not None:
        _check_shape(table, max_rows)
        numbers = table[list(FEATURE_NAMES)].to_numpy()
        if _acceptable(numbers).all():
            return table, numbers
    table = _read_csv(text, dtype=str, keep_default_na=False)
    _check_shape(table, max_rows)
    return table, _numbers_from_text(table[list(FEATURE_NAMES)])


def _numbers_from_text(raw: pd.DataFrame) -> np.ndarray:
    values = raw.apply(lambda column: pd.to_numeric(column.str.strip(), errors="coerce"))
    numbers = values.to_numpy(dtype=float)
    bad = ~_acceptable(numbers)
    if not bad.any():
        return numbers
    errors = []
    for row, col in zip(*np.nonzero(bad), strict=True):
        name = FEATURE_NAMES[col]
        reason = _cell_problem(raw.iat[row, col], numbers[row, col])
        errors.append(
            {
                "row": int(row) + 1,
                "field": name,
                "message": f"row {row + 1}, column {name}: {reason}",
            }
        )
        if len(errors) == MAX_REPORTED_ERRORS:
            break
    more = f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""
    raise InputError(errors[0]["message"] + more + ".", errors)


def _cell_problem(cell: str, number: float) -> str:
    if not cell.strip():
        return "the cell is empty"
    if np.isnan(number) and cell.strip().lower() not in ("nan", "-nan", "+nan"):
        return f"{cell.strip()!r} is not a number"
    if not np.isfinite(number):
        return f"{cell.strip()!r} is not a finite number"
    if number > MAX_VALUE:
        return f"{cell.strip()} is larger than {MAX_VALUE:,.0f}"
    return f"{cell.strip()} is negative; values must be 0 or more"


def row_from_form(form: Mapping[str, str]) -> tuple[np.ndarray, dict[str, str]]:
    """Validate the page's fields; return the row, or an empty array and a message per bad field."""
    submitted = {name: form.get(name, "").strip() for name in FEATURE_NAMES}
    try:
        instance = Instance.model_validate(
            {name: value for name, value in submitted.items() if value}, strict=False
        )
    except ValidationError as error:
        return np.empty((0, len(FEATURE_NAMES))), {
            str(item["loc"][0]): FORM_MESSAGES.get(item["type"], item["msg"])
            for item in error.errors()
        }
    return np.array([[getattr(instance, name) for name in FEATURE_NAMES]]), {}
