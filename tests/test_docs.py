"""The documentation shows what the project really does: `make help` names real values, the
performance table says how it was measured, and "Bring your own model" lists real files.

README's curl examples show the example model's answers: tests/example/test_readme_examples.py
checks them.
"""

import re
import subprocess
from pathlib import Path

import pytest

from mlservice import contract
from tests.tools import curl_examples, pattern, your_model_files

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.mark.parametrize(
    ("shown", "body", "matches"),
    [
        ('{"p":0.981…}', '{"p":0.9813107}', True),
        ('{"p":0.981…}', '{"p":0.9913107}', False),
        ('{"p":0.981…}', '{"p":0.981,"q":1}', False),
        ('{"a":"…","b":1}', '{"a":"x","b":1}', True),
        ('{"a":1, …}', '{"a":1,"b":2}', True),
        ('{"a":1, …}', '{"a":2,"b":2}', False),
        ('[{"a":1, …, "c":3}, …]', '[{"a":1,"b":2,"c":3},{"a":4}]', True),
        ('[{"a":1, …, "c":3}, …]', '[{"a":1,"b":2,"c":4},{"a":4}]', False),
        ("x,2.21…e-05", "x,2.2159e-05", True),
    ],
)
def test_shown_output_patterns(shown, body, matches):
    assert bool(pattern(shown).fullmatch(body)) is matches


def test_docs_curl_examples_are_found_with_their_output():
    doc = (ROOT / "docs" / "your-model.md").read_text()
    examples = curl_examples(doc)
    assert [request["path"] for request, _ in examples] == ["/api/v1/predict"] * 3
    assert [request["method"] for request, _ in examples] == ["POST"] * 3
    csv_request = examples[1][0]
    assert csv_request["headers"] == {"Content-Type": "text/csv"}
    assert csv_request["data"].startswith("income,debt_ratio,age")
    assert examples[2][1].startswith("422 ")


def test_readme_lists_the_files_a_user_edits():
    # The list tests/test_model_swap.py follows: the contract, the data's folder (holding the
    # file the contract names) and the example's tests (which a user may have deleted).
    contract_file, data_folder, example_tests = your_model_files()
    assert ROOT / contract_file == contract.PATH
    assert (
        ROOT / data_folder / contract.CONTRACT.training.data
        == ROOT / contract.CONTRACT.training_data
    )
    assert (ROOT / data_folder / contract.CONTRACT.training.data).is_file()
    assert example_tests == "tests/example/"


def make_help(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "help", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_make_help_shows_the_values_of_variables_it_names():
    default = make_help()
    assert "$(" not in default
    assert "on http://127.0.0.1:8000\n" in default
    assert "Build the container image mlservice:local " in default
    custom = make_help("HOST=0.0.0.0", "PORT=9123", "IMAGE=example/image:tag")
    assert "on http://0.0.0.0:9123\n" in custom
    assert "Build the container image example/image:tag " in custom


def test_the_performance_table_says_how_to_measure_it_again():
    doc = (ROOT / "docs" / "performance.md").read_text()
    table = doc[doc.index("<!-- bench:start -->") : doc.index("<!-- bench:end -->")]
    seconds = re.search(r"\bwrk -t\d+ -c\d+ -d(\d+)s\b", table)[1]
    bench = (ROOT / "scripts" / "bench.py").read_text()
    default = re.search(r'"--seconds", type=int, default=(\d+)', bench)[1]
    # Measured with make bench's duration, or the line names the command that was run.
    assert seconds == default or f"scripts/bench.py --seconds {seconds}" in table
