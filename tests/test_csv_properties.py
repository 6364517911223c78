"""Properties of CSV batches over generated valid tables.

Whatever the notation of the numbers, the column order, the quoting, the line endings or a
byte-order mark, the CSV answer echoes every cell as sent and scores each row exactly as the JSON
path scores the same numbers.
"""

import csv
import html
import io
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlservice import create_app
from mlservice.contract import CONTRACT, Feature
from tests.values import FEATURE_NAMES, FEATURES, LABELS

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "model.skops"
PREDICT = "/api/v1/predict"

client = create_app({"TESTING": True, "MODEL_PATH": str(MODEL_PATH), "MAX_ROWS": 50}).test_client()


@st.composite
def number(draw, feature: Feature) -> tuple[str, str]:
    """One valid value of the feature as (CSV cell text, the same value as a JSON literal).

    A decimal within the feature's range (whole for an integer feature); the cell writes it in
    one of the notations Python's float() reads, the JSON literal in plain decimal.
    """
    places = 0 if feature.integer else draw(st.integers(0, 6))
    value = draw(
        st.decimals(
            min_value=Decimal(repr(feature.min)),
            max_value=Decimal(repr(feature.max)),
            places=places,
            allow_nan=False,
            allow_infinity=False,
        )
    )
    literal = format(value, "f")
    sign, unsigned = ("-", literal[1:]) if literal.startswith("-") else ("", literal)
    whole, _, fraction = unsigned.partition(".")
    digits = f"{whole}{fraction}".lstrip("0") or "0"
    shift = len(fraction)
    forms = [
        literal,
        f"{sign}{digits}e-{shift}",
        f"{sign}{digits}E-{shift:02d}",
        f"{sign}{digits}0e-{shift + 1}",
        f"{sign or '+'}{unsigned}",
        f"{sign}{whole}." + fraction,  # "5." when there is no fraction
    ]
    if whole == "0" and fraction:
        forms.append(f"{sign}.{fraction}")
    if not fraction:
        forms += [f"{sign}{whole}e0", f"{sign}{whole}E+00", f"{sign}{whole}.0e+0"]
    cell = draw(st.sampled_from(forms))
    padding = draw(st.sampled_from(["", " ", "  ", "\t"]))
    return padding + cell + draw(st.sampled_from(["", " "])), literal


def row_values():
    return st.tuples(*[number(feature) for feature in FEATURES])


@st.composite
def table(draw) -> tuple[bytes, list[str], list[list[str]], list[dict]]:
    """A valid CSV body, its header and cells as a reader gets them, and the rows for JSON."""
    order = draw(st.permutations(range(len(FEATURES))))
    columns = [FEATURE_NAMES[index] for index in order]
    rows = [
        [values[index] for index in order]
        for values in draw(st.lists(row_values(), min_size=1, max_size=8))
    ]
    newline = draw(st.sampled_from(["\n", "\r\n"]))

    def field(text: str) -> str:
        return f'"{text}"' if draw(st.booleans()) else text

    lines = [",".join(field(name) for name in columns)]
    lines += [",".join(field(cell) for cell, _ in row) for row in rows]
    text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 2]))
    body = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode()
    cells = [[cell for cell, _ in row] for row in rows]
    instances = [
        {name: literal for name, (_, literal) in zip(columns, row, strict=True)} for row in rows
    ]
    return body, columns, cells, instances


def json_literal_body(instances: list[dict]) -> str:
    # The literals go into the body as written, so the JSON parser reads the same decimals.
    rows = (
        "{" + ",".join(f'"{name}":{literal}' for name, literal in row.items()) + "}"
        for row in instances
    )
    return '{"instances":[' + ",".join(rows) + "]}"


@given(table())
@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
def test_csv_echoes_cells_and_scores_like_json(generated):
    body, columns, cells, instances = generated
    response = client.post(PREDICT, data=body, content_type="text/csv")
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, rows = answer[0], answer[1:]
    probability_columns = CONTRACT.probability_columns
    assert header == [*columns, "label", *probability_columns]
    assert [row[: len(columns)] for row in rows] == cells

    as_json = client.post(
        PREDICT, data=json_literal_body(instances), content_type="application/json"
    )
    assert as_json.status_code == 200, as_json.get_data(as_text=True)
    predictions = as_json.get_json()["predictions"]
    assert len(rows) == len(predictions)
    for row, prediction in zip(rows, predictions, strict=True):
        assert row[header.index("label")] == prediction["label"]
        for label, column in zip(LABELS, probability_columns, strict=True):
            assert float(row[header.index(column)]) == prediction["probabilities"][label]
        assert prediction["label"] in LABELS


@given(row_values())
@settings(max_examples=100, deadline=None, database=None)
def test_the_form_reads_a_field_as_a_csv_cell(values):
    form = {name: cell for name, (cell, _) in zip(FEATURE_NAMES, values, strict=True)}
    page = client.post("/", data=form)
    assert page.status_code == 200
    csv_body = ",".join(FEATURE_NAMES) + "\n" + ",".join(form.values()) + "\n"
    scored = client.post(PREDICT, data=csv_body, content_type="text/csv")
    assert scored.status_code == 200
    label = next(csv.DictReader(io.StringIO(scored.get_data(as_text=True))))["label"]
    assert f'<output id="prediction">{html.escape(label)}</output>' in page.get_data(as_text=True)
