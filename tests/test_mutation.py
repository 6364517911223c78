"""make mutation's bookkeeping: which survivors count as equivalent, and that the list is current."""

import tomllib
from pathlib import Path

import pytest

from scripts import mutation

ROOT = Path(__file__).resolve().parent.parent
KNOWN = [
    {"module": "api", "line": "get_data(cache=False)", "to": "cache=True", "why": "caching"},
    {
        "module": "api",
        "line": "zip(a, b, strict=True)",
        "to": ["strict=None", ", )"],
        "why": "length",
    },
]


@pytest.mark.parametrize(
    ("module", "changed", "why"),
    [
        ("api", ["-    data = request.get_data(cache=False)", "+    data = request.get_data(cache=True)"], "caching"),
        # The mutated line must match `to` when the entry has one.
        ("api", ["-    data = request.get_data(cache=False)", "+    data = request.get_data(cache=None)"], None),
        # Any of the listed changes.
        ("api", ["-    pairs = zip(a, b, strict=True)", "+    pairs = zip(a, b, )"], "length"),
        ("api", ["-    pairs = zip(a, b, strict=True)", "+    pairs = zip(a, b, strict=None)"], "length"),
        # Another change to a listed line is not covered.
        ("api", ["-    pairs = zip(a, b, strict=True)", "+    pairs = zip(None, b, strict=True)"], None),
        # The same line in another module is not covered.
        ("model", ["-    pairs = zip(a, b, strict=True)", "+    pairs = zip(a, b, )"], None),
        # Only the removed line is matched against `line`.
        ("api", ["-    pairs = zip(a, b)", "+    pairs = zip(a, b, strict=True)"], None),
    ],
)  # fmt: skip
def test_a_survivor_is_equivalent_only_when_an_entry_matches_it(module, changed, why):
    assert mutation.equivalent_reason(module, changed, KNOWN) == why


def source_of(module: str) -> str:
    if "." in module:  # scripts.plan_deploys
        return (ROOT / f"{module.replace('.', '/')}.py").read_text()
    package = ROOT / "src" / "mlservice"
    files = [package / f"{module}.py"] if module != "answers" else (package / module).glob("*.py")
    return "\n".join(path.read_text() for path in files)


def test_each_listed_equivalent_mutant_names_a_line_that_still_exists():
    entries = tomllib.loads(mutation.EQUIVALENT.read_text())["mutant"]
    assert entries
    for entry in entries:
        assert entry["module"] in mutation.MODULES, entry
        assert entry["why"].strip(), entry
        assert entry["to"], entry  # without it, any change to the line would count
        assert entry["line"] in source_of(entry["module"]), entry
