"""scripts/model-summary: the workflow's "Model" summary and gate, with a fake `gh` on PATH."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "model-summary"

# Answers like gh: FAKE_TAG is the latest non-draft release ("" for none); FAKE_CARD is its
# model.json (unset: the release has no such asset); FAKE_FAIL makes a subcommand fail.
FAKE_GH = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$1 $2" in
  "release list")
    if [[ ${FAKE_FAIL:-} == list ]]; then echo "HTTP 401: Bad credentials" >&2; exit 1; fi
    echo "$FAKE_TAG" ;;
  "release download")
    if [[ ${FAKE_FAIL:-} == download ]]; then echo "HTTP 503: unavailable" >&2; exit 1; fi
    while (($#)); do [[ $1 == --dir ]] && dir=$2; shift; done
    if [[ -z ${FAKE_CARD:-} ]]; then echo "no assets match the file pattern" >&2; exit 1; fi
    mkdir -p "$dir" && cp "$FAKE_CARD" "$dir/model.json" ;;
  *) echo "fake gh: unexpected $*" >&2; exit 90 ;;
esac
"""


# compare-cards with the contract's floor fixed at 0.95, so these cards hold for any model.
FIXED_FLOOR = f"""#!{sys.executable}
import sys
from mlservice import contract
fixed = contract.load().model_copy(update={{"roc_auc_floor": 0.95}})
contract.served = lambda: fixed
from mlservice.cli import main
sys.exit(main())
"""


def card(roc_auc: float, version: str = "new") -> dict:
    return {
        "version": version,
        "features": [{"name": "a"}],
        "metrics": {"held_out": {"accuracy": 0.9, "roc_auc": roc_auc}},
    }


@pytest.fixture
def summary(tmp_path):
    """Run the script with a fake gh; returns (result, summary text, gh calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    (bin_dir / "mlservice").write_text(FIXED_FLOOR)
    (bin_dir / "mlservice").chmod(0o755)

    def run(new: dict, *, tag: str = "v1.0.0", baseline: dict | None = None, **env: str):
        new_path = tmp_path / "new.json"
        new_path.write_text(json.dumps(new))
        environ = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "MLSERVICE": str(bin_dir / "mlservice"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "FAKE_LOG": str(tmp_path / "gh.log"),
            "FAKE_TAG": tag,
            **env,
        }
        if baseline is not None:
            (tmp_path / "baseline.json").write_text(json.dumps(baseline))
            environ["FAKE_CARD"] = str(tmp_path / "baseline.json")
        result = subprocess.run(
            [str(SCRIPT), str(new_path)],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        written = tmp_path / "summary.md"
        log = tmp_path / "gh.log"
        calls = log.read_text().splitlines() if log.exists() else []
        return result, written.read_text() if written.exists() else "", calls

    return run


def test_compares_with_the_latest_release(summary):
    result, text, calls = summary(card(0.975), baseline=card(0.97, version="old"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        'release list --exclude-drafts --limit 1 --json tagName --jq .[0].tagName // ""',
        f"release download v1.0.0 --pattern model.json --dir {calls[1].split('--dir ')[1]}",
    ]
    assert text.startswith("## Model\n\n")
    assert "| Held-out metric | release v1.0.0 (`old`) | This model | Change |" in text
    assert "| ROC-AUC | 0.9700 | 0.9750 | +0.0050 better |" in text
    assert "Quality gate: passed" in text


def test_no_release_is_no_baseline_yet(summary):
    result, text, calls = summary(card(0.97), tag="")
    assert result.returncode == 0
    assert "No baseline yet: there is no earlier release to compare with." in text
    assert len(calls) == 1  # nothing to download


def test_release_without_a_card_is_no_baseline_yet(summary):
    result, text, _ = summary(card(0.97), tag="v0.9.0")
    assert result.returncode == 0
    assert "No baseline yet: there is no model.json in release v0.9.0" in text


def test_a_drop_fails_with_an_annotation_and_still_writes_the_summary(summary):
    result, text, _ = summary(card(0.95), baseline=card(0.99))
    assert result.returncode == 1
    assert "::error title=Model quality gate::Held-out ROC-AUC fell from 0.9900" in result.stdout
    assert "**Quality gate: failed.**" in text
    assert "::error" not in text


def test_tolerance_comes_from_the_environment(summary):
    result, text, _ = summary(card(0.96), baseline=card(0.99), MODEL_TOLERANCE="0.05")
    assert result.returncode == 0
    assert "tolerance 0.05" in text


def test_the_label_override_accepts_a_deliberate_drop(summary):
    result, text, _ = summary(card(0.96), baseline=card(0.99), ACCEPT_MODEL_REGRESSION="true")
    assert result.returncode == 0
    assert "::warning title=Model quality gate::" in result.stdout
    assert "Accepted as a deliberate drop." in text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODEL_TOLERANCE": "1%"}, "MODEL_TOLERANCE must be a number such as 0.01 (got '1%')"),
        ({"ACCEPT_MODEL_REGRESSION": "yes"}, "ACCEPT_MODEL_REGRESSION must be true or false"),
        ({"FAKE_FAIL": "list"}, "Cannot list the releases: HTTP 401: Bad credentials"),
        ({"FAKE_FAIL": "download"}, "Cannot download model.json from release v1.0.0: HTTP 503"),
    ],
)
def test_bad_settings_and_gh_failures_fail_in_one_line(summary, env, message):
    result, text, _ = summary(card(0.97), baseline=card(0.97), **env)
    assert result.returncode == 1
    assert f"::error title=Model quality gate::{message}" in result.stdout
    assert text == ""


def test_an_unreadable_new_card_is_reported(summary, tmp_path):
    result, text, _ = summary({"metrics": {}}, baseline=card(0.97))
    assert result.returncode == 1
    assert "has no held-out ROC-AUC" in result.stdout
    assert "could not read" in text


def test_a_nan_roc_auc_fails_the_gate_in_one_line(summary, tmp_path):
    nan = json.dumps(card(0.5)).replace('"roc_auc": 0.5', '"roc_auc": NaN')
    result, text, _ = summary(json.loads(nan), baseline=card(0.99))
    assert result.returncode == 1
    assert "held-out ROC-AUC is NaN, not a number from 0 to 1" in result.stdout
    assert "could not read" in text
