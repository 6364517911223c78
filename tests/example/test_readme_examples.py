"""README's curl examples answer as shown, against the example model they show.

They show the example's features, labels and numbers, so they live with the example's tests:
with your own model, rewrite README's examples (or delete them) along with this folder.
"""

from pathlib import Path

import pytest

from tests.tools import answers_as_shown, curl_examples

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


EXAMPLES = curl_examples(README.read_text())


def test_the_readme_has_curl_examples_to_check():
    # Two JSON predictions, a CSV batch, the answers example and /readyz.
    assert len(EXAMPLES) >= 5
    assert {"/api/v1/predict", "/readyz"} <= {request["path"] for request, _ in EXAMPLES}


@pytest.mark.parametrize(
    ("request_", "shown"), EXAMPLES, ids=[request["path"][:30] for request, _ in EXAMPLES]
)
def test_readme_curl_example_answers_as_shown(client, request_, shown):
    assert answers_as_shown(client, request_, shown) is None
