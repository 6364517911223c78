"""Values by the contract's rules, for whatever features the served model has.

The machinery tests build their rows from these (and from the model card's examples), never from
the example model's feature names or numbers, so they hold for any valid model.
"""

from mlservice.contract import CONTRACT, Feature

FEATURES = CONTRACT.features
FEATURE_NAMES = CONTRACT.feature_names
LABELS = CONTRACT.labels
FIRST, LAST = FEATURES[0], FEATURES[-1]
INTEGER_FEATURES = [feature for feature in FEATURES if feature.integer]


def middle(feature: Feature) -> float:
    """A valid value: the middle of the range, whole for an integer feature."""
    value = (feature.min + feature.max) / 2
    return float(round(value)) if feature.integer else value


def text(value: float) -> str:
    """A value as a CSV cell or form field: exact, without a needless .0."""
    return str(int(value)) if value == int(value) else repr(value)


def below(feature: Feature) -> float:
    """Just under the range: the next whole number down for an integer feature."""
    return feature.min - (1 if feature.integer else max(abs(feature.min), 1) * 1e-6)


def above(feature: Feature) -> float:
    """Just over the range: the next whole number up for an integer feature."""
    return feature.max + (1 if feature.integer else max(abs(feature.max), 1) * 1e-6)


def middle_row() -> dict[str, float]:
    return {feature.name: middle(feature) for feature in FEATURES}


def csv_table(rows: list[dict], columns=FEATURE_NAMES) -> str:
    """A CSV body of these rows (values written with text()), header first."""
    lines = [",".join(columns)]
    lines += [",".join(cell(row[name]) for name in columns) for row in rows]
    return "\n".join(lines) + "\n"


def cell(value) -> str:
    return text(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def marked(feature: Feature) -> float:
    """A valid value with unusual digits (37.13713…% of the way up the range), so that finding
    it in a log line cannot be a coincidence; whole for an integer feature."""
    value = feature.min + (feature.max - feature.min) * 0.371371371
    return float(round(value)) if feature.integer else value


def marked_row() -> dict[str, float]:
    return {feature.name: marked(feature) for feature in FEATURES}


def telltale(value: float) -> bool:
    """Whether a value's text is long enough that no log line holds it by chance (six digits)."""
    return sum(character.isdigit() for character in text(value)) >= 6
