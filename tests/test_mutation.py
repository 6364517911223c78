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
    """The source of a module of make mutation: a file or a package, under src/ or not."""
    dotted = mutation.MODULES[module].replace(".", "/")
    for path in (ROOT / "src" / dotted, ROOT / dotted):
        if path.is_dir():
            return "\n".join(p.read_text() for p in sorted(path.glob("*.py")))
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py").read_text()
    raise AssertionError(f"no source for {module}")


@pytest.mark.parametrize(
    ("line", "module", "name"),
    [
        ("    mlservice.config.x_positive__mutmut_3: survived", "config", "x_positive__mutmut_3"),
        (
            "    mlservice.answers.ranking.x_rank__mutmut_1: killed",
            "answers",
            "ranking.x_rank__mutmut_1",
        ),
        ("    deploy.common.x_setting__mutmut_2: survived", "deploy.common", "x_setting__mutmut_2"),
    ],
)
def test_results_are_grouped_by_module(line, module, name):
    match = mutation.RESULT.match(line)
    assert mutation.module_of(match[1]) == module
    assert match[1] == f"{mutation.MODULES[module]}.{name}"


def test_each_listed_equivalent_mutant_names_a_line_that_still_exists():
    entries = tomllib.loads(mutation.EQUIVALENT.read_text())["mutant"]
    assert entries
    for entry in entries:
        assert entry["module"] in mutation.MODULES, entry
        assert entry["why"].strip(), entry
        assert entry["to"], entry  # without it, any change to the line would count
        assert entry["line"] in source_of(entry["module"]), entry


@pytest.mark.parametrize(
    ("mutant", "module"),
    [
        ("mlservice.config.x__positive_int__mutmut_12", "config"),
        ("mlservice.model.xǁModelǁload__mutmut_3", "model"),
        ("mlservice.answers.ranking.x_rank__mutmut_1", "answers"),
        ("scripts.rename_rules.x_spell__mutmut_2", "rename_rules"),  # template-only
        ("mlservice.configuration.x_a__mutmut_1", None),
        ("mlservice.cli.x_main__mutmut_1", None),
    ],
)
def test_each_mutant_is_counted_for_its_module(mutant, module):
    assert mutation.module_of(mutant) == module
