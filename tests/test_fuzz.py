"""Property-based fuzzing of every operation in /api/v1/openapi.json with schemathesis.

Each generated request (valid and deliberately invalid) goes through all of schemathesis's
checks: no 5xx, status codes, content types and bodies as documented, invalid data rejected.
`make test` runs FUZZ_EXAMPLES (default 500) examples per operation, over 1,000 cases in all;
`make fuzz` runs many more.
"""

import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mlservice import create_app

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "model.skops"
# The schema is read from the app at import (schemathesis's fixture-based loader does not work
# with this pytest). Without a model, skip: every test that uses it reports the missing model.
if not MODEL_PATH.is_file():
    pytest.skip("models/model.skops is missing; run `make model`", allow_module_level=True)

schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", create_app({"MODEL_PATH": str(MODEL_PATH)})
)
cases_run: Counter = Counter()


def takes_input(operation) -> bool:
    definition = schema.raw_schema["paths"][operation.path][operation.method.lower()]
    return "requestBody" in definition or bool(definition.get("parameters"))


@pytest.fixture
def budget_spent():
    """After each operation's run: the budget really was spent (checked per test, so it holds
    however pytest-xdist spreads the operations over its workers)."""
    before = Counter(cases_run)
    yield
    (label, count), *others = (cases_run - before).items()
    assert not others  # one operation per test
    operation = next(op.ok() for op in schema.get_all_operations() if op.ok().label == label)
    # Operations without inputs have little to vary; the others get every example.
    assert count >= (EXAMPLES if takes_input(operation) else 1), (label, count)


@pytest.mark.slow
@pytest.mark.usefixtures("budget_spent")
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # no .hypothesis directory in the work tree
)
def test_api_conforms_to_its_openapi_document(case):
    cases_run[case.operation.label] += 1
    # A string schema cannot say what a CSV table must hold, so a "valid" text/csv body is any
    # string and most are rightly refused with 422; every other check still applies to them.
    excluded = [positive_data_acceptance] if case.media_type == "text/csv" else None
    case.call_and_validate(excluded_checks=excluded)


def test_every_operation_in_the_document_is_fuzzed(request):
    # Every worker collects the whole session, so this holds under pytest-xdist too.
    fuzzed = [
        item
        for item in request.session.items
        if item.name.startswith("test_api_conforms_to_its_openapi_document")
    ]
    operations = [operation.ok().label for operation in schema.get_all_operations()]
    assert len(fuzzed) == len(operations) >= 6
