"""The model contract, model.toml: what the served model reads and answers, checked at start-up.

One file states the features (name, words, type and valid range, in the model's column order), the
labels in the model's class order, the positive label of a binary model, the quality floor, the
training data and the page's words. Training, validation, the API, the page, the OpenAPI document,
the smoke test and the quality gate read it from here (CONTRACT), so nothing else names a feature
or a label. docs/your-model.md explains each field.
"""

import functools
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

PATH = Path(__file__).with_name("model.toml")
# Where training data lives, relative to the project root (`make model` runs there).
TRAINING_DATA = Path("data", "training")
# float64 holds every whole number up to 2**53 (about 9e15): a range within this keeps integer
# features exact and the model's arithmetic far from overflow.
LIMIT = 1e15
# The CSV answer's column holding each row's predicted label.
LABEL_COLUMN = "label"


class ContractError(Exception):
    """The contract is missing or invalid; the message is one line naming the field."""


def label_key(label: str) -> str:
    """A label as a name: each run of characters other than letters, digits and `_` made one `_`,
    any `_` at the ends dropped ("will default" gives will_default)."""
    return re.sub(r"\W+", "_", label).strip("_")


def probability_column(label: str) -> str:
    """The CSV answer's column for a label's probability: probability_<label_key(label)>.

    "benign" gives probability_benign, "will default" probability_will_default. The contract
    refuses labels whose columns collide.
    """
    return f"probability_{label_key(label)}"


def show(number: float) -> str:
    """A bound as people read it: 0, 1,000,000, 0.05."""
    return f"{number:,.0f}" if number == int(number) else f"{number:g}"


def plain(number: float) -> str:
    """A bound as a number literal, exact: 0, 1000000, 0.05 (HTML attributes)."""
    return str(int(number)) if number == int(number) else repr(number)


Text = Annotated[str, Field(min_length=1, strict=True)]
Bound = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-LIMIT, le=LIMIT)]


def _identifier(value: str) -> str:
    # An API field, a CSV column, a form field and an HTML id.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(f"{value!r} is not letters, digits and _, not starting with a digit")
    return value


def _csv_file_name(value: str) -> str:
    if not re.fullmatch(r"[^/\\]+\.csv", value):
        raise ValueError(f"{value!r} is not a file name ending in .csv")
    return value


Name = Annotated[str, Field(strict=True), AfterValidator(_identifier)]
FileName = Annotated[str, Field(strict=True), AfterValidator(_csv_file_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(Strict):
    name: Name
    label: Text
    unit: str = ""
    description: Text
    type: Literal["float", "integer"] = "float"
    min: Bound
    max: Bound
    step: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _valid(self) -> "Feature":
        check_feature(self)
        return self

    @property
    def integer(self) -> bool:
        return self.type == "integer"

    @property
    def form_step(self) -> str:
        """The form field's step attribute: any number, or whole ones."""
        if self.step is not None:
            return f"{self.step:g}"
        return "1" if self.integer else "any"


class Training(Strict):
    data: FileName  # in data/training/
    target: Text
    source: Text


class Contract(Strict):
    name: Text
    title: Text
    description: Text
    disclaimer: Text
    labels: list[Text] = Field(min_length=2)
    positive_label: str | None = None
    roc_auc_floor: float = Field(ge=0, le=1, strict=True, allow_inf_nan=False)
    training: Training
    features: list[Feature] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> "Contract":
        check_contract(self)
        return self

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def probability_columns(self) -> list[str]:
        return [probability_column(label) for label in self.labels]

    @property
    def training_data(self) -> Path:
        return TRAINING_DATA / self.training.data


def check_feature(feature: Feature) -> None:
    """A range with room in it; whole bounds and step for an integer feature."""
    if feature.min >= feature.max:
        raise ValueError(f"min ({show(feature.min)}) must be less than max ({show(feature.max)})")
    if feature.integer:
        for key in ("min", "max", "step"):
            value = getattr(feature, key)
            if value is not None and value != int(value):
                raise ValueError(f"{key} of an integer feature must be whole, got {value:g}")


def check_contract(contract: Contract) -> None:
    """What no single field can say: unique names, CSV columns that do not collide, a positive
    label that is one of the labels, a target that is not a feature."""
    _unique("labels", contract.labels)
    _unique("features", contract.feature_names)
    columns = {}
    for label in contract.labels:
        column = probability_column(label)
        if not label_key(label):
            raise ValueError(f"labels: {label!r} has no letter or digit to name its CSV column")
        if column in columns:
            raise ValueError(
                f"labels: {columns[column]!r} and {label!r} both give the CSV column {column} "
                "(docs/your-model.md); rename one"
            )
        columns[column] = label
    clash = sorted(set(contract.feature_names) & {LABEL_COLUMN, *columns})
    if clash:
        raise ValueError(
            f"features: {clash[0]!r} is the name of a column the CSV answer adds "
            f"({LABEL_COLUMN}, {', '.join(columns)})"
        )
    if len(contract.labels) == 2 and contract.positive_label not in contract.labels:
        raise ValueError(
            f"positive_label: must be one of the labels ({', '.join(contract.labels)}), "
            f"got {contract.positive_label!r}"
        )
    if len(contract.labels) > 2 and contract.positive_label is not None:
        raise ValueError(
            f"positive_label: is for two labels; with {len(contract.labels)} every class gets "
            "its own one-vs-rest curves, so leave it out"
        )
    if contract.training.target in contract.feature_names:
        raise ValueError(f"training.target: {contract.training.target!r} is also a feature")


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    twice = [name for name in names if name in seen or seen.add(name)]
    if twice:
        raise ValueError(f"{what}: {twice[0]!r} appears more than once")


def _where(location: tuple, data: dict) -> str:
    """features[2] (age).max: the field, with the name of the feature it is in."""
    text = ""
    for position, part in enumerate(location):
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
        if location[:1] == ("features",) and position == 1:
            feature = data["features"][part]
            name = feature.get("name") if isinstance(feature, dict) else None
            text += f" ({name})" if isinstance(name, str) and name else ""
    return text.lstrip(".")


def parse(text: str, source: str = "model.toml") -> Contract:
    """The contract in this TOML text, or ContractError naming the first bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ContractError(f"{source} is not valid TOML: {error}.") from None
    try:
        return Contract.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = _where(first["loc"], data)
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        field = f"{where}: " if where else ""
        raise ContractError(f"{source}: {field}{message}{more}.") from None


def load(path: Path = PATH) -> Contract:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ContractError(f"Cannot read the model contract {path}: {error.strerror}.") from None
    return parse(text, str(path))


@functools.cache
def served() -> Contract:
    """The contract of this service, read once."""
    return load()


def __getattr__(name: str) -> Contract:
    # CONTRACT is read on first use, not at import: ContractError can be imported (to catch it)
    # before the file is read, and a bad file stops the start-up with that one line.
    if name == "CONTRACT":
        return served()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
