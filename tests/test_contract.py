"""The model contract (model.toml): a valid one is read as written, a bad one is refused at
start-up with one line naming the field."""

import subprocess
import sys
import tomllib

import pytest

from mlservice import contract
from mlservice.contract import (
    CONTRACT,
    PATH,
    ContractError,
    label_key,
    parse,
    plain,
    probability_column,
    show,
)

VALID = """
name = "loan-default"
title = "Loan default"
description = "Whether a loan defaults."
disclaimer = "A test."
labels = ["will default", "repaid"]
positive_label = "will default"
roc_auc_floor = 0.7

[training]
data = "loans.csv"
target = "outcome"
source = "Synthetic."

[[features]]
name = "income"
label = "Income"
unit = "USD"
description = "Per year."
min = 0
max = 1e7

[[features]]
name = "age"
label = "Age"
description = "In years."
type = "integer"
min = 18
max = 120
step = 1
"""


def edited(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


def test_the_served_contract_is_the_file_in_the_package():
    assert tomllib.loads(PATH.read_text())["labels"] == CONTRACT.labels
    assert contract.served() is CONTRACT  # read once


def test_a_valid_contract_is_read_as_written():
    parsed = parse(VALID)
    assert parsed.feature_names == ["income", "age"]
    assert parsed.labels == ["will default", "repaid"]
    assert parsed.probability_columns == ["probability_will_default", "probability_repaid"]
    income, age = parsed.features
    assert (income.type, income.min, income.max, income.unit) == ("float", 0, 1e7, "USD")
    assert (age.type, age.integer, age.unit, age.step) == ("integer", True, "", 1)
    assert (income.form_step, age.form_step) == ("any", "1")
    assert str(parsed.training_data) == "data/training/loans.csv"


def test_feature_names_may_have_capitals_underscores_and_digits():
    parsed = parse(edited('name = "income"', 'name = "_Annual_Income2"'))
    assert parsed.feature_names == ["_Annual_Income2", "age"]


@pytest.mark.parametrize(
    ("label", "column"),
    [
        ("benign", "probability_benign"),
        ("will default", "probability_will_default"),
        ("<=50K", "probability_50K"),
        ("Class 1 / high-risk", "probability_Class_1_high_risk"),
        ("négatif", "probability_négatif"),
        ("_x_", "probability_x"),
        ("X-ray X", "probability_X_ray_X"),
    ],
)
def test_probability_columns_make_each_run_of_other_characters_one_underscore(label, column):
    assert probability_column(label) == column
    assert column == f"probability_{label_key(label)}"


@pytest.mark.parametrize(
    ("number", "shown", "literal"),
    [(0, "0", "0"), (1e9, "1,000,000,000", "1000000000"), (0.05, "0.05", "0.05"), (-3, "-3", "-3")],
)
def test_bounds_read_as_people_write_them_and_as_exact_literals(number, shown, literal):
    assert show(number) == shown
    assert plain(number) == literal


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max = 1e7", "max = 0", "features[0] (income): min (0) must be less than max (0)."),
        ("max = 1e7", "max = -1", "features[0] (income): min (0) must be less than max (-1)."),
        ("min = 18", "min = 18.5", "features[1] (age): min of an integer feature must be whole, got 18.5."),
        ("step = 1", "step = 0.5", "features[1] (age): step of an integer feature must be whole, got 0.5."),
        ("step = 1", "step = 0", "features[1] (age).step: Input should be greater than 0."),
        ("max = 1e7", "max = 1e16", "features[0] (income).max: Input should be less than or equal to 1000000000000000."),
        ("max = 1e7", "max = nan", "features[0] (income).max: Input should be a finite number."),
        ("max = 1e7", 'max = "1e7"', "features[0] (income).max: Input should be a valid number."),
        ('type = "integer"', 'type = "int"', "features[1] (age).type: Input should be 'float' or 'integer'."),
        ('name = "age"', 'name = "income"', "features: 'income' appears more than once."),
        ('name = "age"', 'name = "2nd age"', "features[1] (2nd age).name: '2nd age' is not letters, digits and _, not starting with a digit."),
        ('name = "age"', 'name = "label"', "features: 'label' is the name of a column the CSV answer adds (label, probability_will_default, probability_repaid)."),
        ('name = "age"', 'name = "probability_repaid"', "features: 'probability_repaid' is the name of a column the CSV answer adds (label, probability_will_default, probability_repaid)."),
        ('label = "Age"', 'label = ""', "features[1] (age).label: String should have at least 1 character."),
        ('unit = "USD"', 'unit = "USD"\ncolour = "red"', "features[0] (income).colour: Extra inputs are not permitted."),
        ('labels = ["will default", "repaid"]', 'labels = ["repaid"]', "labels: List should have at least 2 items after validation, not 1."),
        ('labels = ["will default", "repaid"]', 'labels = ["repaid", "repaid"]', "labels: 'repaid' appears more than once."),
        ('labels = ["will default", "repaid"]', 'labels = ["will default", "will-default"]', "labels: 'will default' and 'will-default' both give the CSV column probability_will_default (docs/your-model.md); rename one."),
        ('labels = ["will default", "repaid"]', 'labels = ["will default", "???"]', "labels: '???' has no letter or digit to name its CSV column."),
        ('positive_label = "will default"', 'positive_label = "default"', "positive_label: must be one of the labels (will default, repaid), got 'default'."),
        ('positive_label = "will default"\n', "", "positive_label: must be one of the labels (will default, repaid), got None."),
        ('labels = ["will default", "repaid"]', 'labels = ["will default", "repaid", "late"]', "positive_label: is for two labels; with 3 every class gets its own one-vs-rest curves, so leave it out."),
        ("roc_auc_floor = 0.7", "roc_auc_floor = 1.5", "roc_auc_floor: Input should be less than or equal to 1."),
        ("roc_auc_floor = 0.7", "", "roc_auc_floor: Field required."),
        ('data = "loans.csv"', 'data = "../loans.csv"', "training.data: '../loans.csv' is not a file name ending in .csv."),
        ('data = "loans.csv"', 'data = "loans.parquet"', "training.data: 'loans.parquet' is not a file name ending in .csv."),
        ('target = "outcome"', 'target = "age"', "training.target: 'age' is also a feature."),
        ('title = "Loan default"', "", "title: Field required."),
        ("[[features]]", "[[feature]]", "feature: Extra inputs are not permitted."),
        ("roc_auc_floor = 0.7", "roc_auc_floor = ", "model.toml is not valid TOML: Invalid value (at line 8, column 17)."),
        ("roc_auc_floor = 0.7", "roc_auc_floor = 0.7\nXtra = 1", "Xtra: Extra inputs are not permitted."),
        ('name = "age"', 'name = ""', "features[1].name: '' is not letters, digits and _, not starting with a digit."),
        ('name = "age"', "name = 5", "features[1].name: Input should be a valid string."),
        ('name = "age"\n', "", "features[1].name: Field required."),
    ],
)  # fmt: skip
def test_a_bad_contract_is_refused_in_one_line_naming_the_field(old, new, message):
    with pytest.raises(ContractError) as raised:
        parse(edited(old, new))
    text = str(raised.value)
    assert text == (message if message.startswith("model.toml is") else f"model.toml: {message}")
    assert "\n" not in text


@pytest.mark.parametrize(
    ("changes", "more"),
    [
        ({'title = "Loan default"': 'title = ""'}, ""),
        ({'title = "Loan default"': 'title = ""', "roc_auc_floor = 0.7": "roc_auc_floor = 2"}, " (and 1 more)"),
        (
            {
                'title = "Loan default"': 'title = ""',
                "roc_auc_floor = 0.7": "roc_auc_floor = 2",
                'disclaimer = "A test."': 'disclaimer = ""',
            },
            " (and 2 more)",
        ),
    ],
)  # fmt: skip
def test_the_first_problem_is_named_and_the_others_counted(changes, more):
    text = VALID
    for old, new in changes.items():
        text = text.replace(old, new, 1)
    with pytest.raises(ContractError) as raised:
        parse(text)
    assert str(raised.value) == f"model.toml: title: String should have at least 1 character{more}."


def test_a_feature_that_is_not_a_table_is_named_by_its_place():
    text = 'features = ["age"]\n' + VALID.split("[[features]]")[0]
    with pytest.raises(ContractError) as raised:
        parse(text)
    assert str(raised.value) == (
        "model.toml: features[0]: Input should be a valid dictionary or instance of Feature."
    )


def test_a_contract_file_is_named_in_its_error(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text(edited("roc_auc_floor = 0.7", "roc_auc_floor = 1.5"), encoding="utf-8")
    with pytest.raises(ContractError) as raised:
        contract.load(path)
    assert str(raised.value) == (f"{path}: roc_auc_floor: Input should be less than or equal to 1.")
    path.write_text(edited('title = "Loan default"', 'title = "Prêt à défaut"'), encoding="utf-8")
    assert contract.load(path).title == "Prêt à défaut"


def test_a_missing_contract_is_one_line(tmp_path):
    with pytest.raises(ContractError) as raised:
        contract.load(tmp_path / "model.toml")
    assert str(raised.value) == (
        f"Cannot read the model contract {tmp_path / 'model.toml'}: No such file or directory."
    )


def test_contract_error_can_be_imported_before_the_contract_is_read():
    # The server catches ContractError around create_app: importing it must not read the file.
    code = (
        "import mlservice.contract as c, mlservice.model, mlservice.cards; "
        "print(c.served.cache_info().currsize)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "0"


def test_only_contract_is_read_lazily():
    with pytest.raises(AttributeError, match="has no attribute 'CONTRACTS'"):
        _ = contract.CONTRACTS
