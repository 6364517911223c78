"""Swapping in another model takes only the files README's "Bring your own model" lists.

Two models are defined here: three wine cultivars from six of scikit-learn's wine measurements
(two of them integers), and a binary loan model with other feature names, integer features and
labels that are not identifiers ("will default", "repaid"), which is docs/your-model.md's worked
example. For each, a copy of the project gets
its contract and its training CSV and loses the example's tests, which are the files README
lists and nothing else; `make model` trains it; and the machinery tests run against it
unchanged: the JSON and CSV API, validation at every feature's bounds, the page, the model page,
the OpenAPI document (and fuzzing), the smoke test, the gate and the curves; and the worked
example's curl commands answer as the page shows.

The copy shares this project's .venv: the copy's src/ comes first on PYTHONPATH (the .venv
installs this project's src/ as an editable path, which comes after it), and make is told never
to sync it (`-o .venv/bin/.synced`): a sync from the copy would point the shared .venv at the copy.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from mlservice.contract import label_key
from tests.tools import your_model_files

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".tools", "models", "__pycache__", "*.pyc", ".*_cache", ".hypothesis",
    ".schemathesis", "coverage.xml", ".coverage", "htmlcov", "mutants",
)  # fmt: skip
# The tests of the template's machinery that the swapped models run: everything that reads the
# contract or the card. The rest (deploy, pipeline, image, rename) does not depend on the model.
MACHINERY = [
    "test_contract.py",
    "test_training.py",
    "test_model.py",
    "test_validation.py",
    "test_api.py",
    "test_limits.py",
    "test_csv_properties.py",
    "test_web.py",
    "test_openapi.py",
    "test_fuzz.py",
    "test_cli.py",
    "test_cards.py",
    "test_security.py",
    "test_docs.py",
    "test_telemetry.py",
    "test_metrics.py",
]

WINE_CONTRACT = """
name = "wine-cultivar"
title = "Wine cultivar"
description = "Which of three cultivars an Italian wine comes from, from its chemical analysis."
disclaimer = "A test model."
labels = ["barolo", "grignolino", "barbera"]
roc_auc_floor = 0.9

[training]
data = "wine.csv"
target = "cultivar"
source = "UCI wine data, as bundled with scikit-learn"

[[features]]
name = "alcohol"
label = "Alcohol"
unit = "% vol"
description = "Alcohol by volume."
min = 0
max = 20

[[features]]
name = "malic_acid"
label = "Malic acid"
unit = "g/l"
description = "Malic acid."
type = "float"
min = 0
max = 10

[[features]]
name = "ash"
label = "Ash"
unit = "g/l"
description = "Ash."
min = 0
max = 10

[[features]]
name = "magnesium"
label = "Magnesium"
unit = "mg/l"
description = "Magnesium, in whole milligrams."
type = "integer"
min = 0
max = 300

[[features]]
name = "flavanoids"
label = "Flavanoids"
unit = "g/l"
description = "Flavanoid phenols."
min = 0
max = 10

[[features]]
name = "proline"
label = "Proline"
unit = "mg/l"
description = "The amino acid proline."
type = "integer"
min = 0
max = 5000
"""

# The loan model is docs/your-model.md's worked example: its contract is the page's, and the
# page's curl examples must answer as shown.
WORKED_EXAMPLE = ROOT / "docs" / "your-model.md"
[LOAN_CONTRACT] = re.findall(r"^```toml\n(.*?)^```", WORKED_EXAMPLE.read_text(), re.M | re.S)
CHECK_DOC_EXAMPLES = """
import sys
from pathlib import Path
from mlservice import create_app
from tests.tools import answers_as_shown, curl_examples
client = create_app({"TESTING": True}).test_client()
examples = curl_examples(Path("docs/your-model.md").read_text())
problems = [answers_as_shown(client, request, shown) for request, shown in examples]
problems = [problem for problem in problems if problem]
print(f"{len(examples)} examples", *problems, sep="\\n")
sys.exit(1 if problems or not examples else 0)
"""


# How the trained model is served: the card's ONNX compile, run by onnxruntime, against what the
# service serves (the compile itself for a multi-class model; the folded arrays for a binary
# StandardScaler + LogisticRegression) on rows spread over the contract's ranges.
CHECK_SERVING = """
from pathlib import Path
import numpy as np
from mlservice import model, training
loaded = model.load("models/model.skops")
serving = loaded.card["serving"]
compiled = model.OnnxModel(Path("models", serving["file"]).read_bytes())
rows = training.spread_rows(1000)
difference = np.max(np.abs(compiled.predict_proba(rows) - loaded.predict_proba(rows)))
print(serving["runtime"], loaded.runtime, difference <= training.PARITY_BOUND, sep="\\n")
"""


def wine_csv() -> str:
    wine = load_wine(as_frame=True)
    columns = ["alcohol", "malic_acid", "ash", "magnesium", "flavanoids", "proline"]
    table = wine.data[columns].copy()  # magnesium and proline as 127.0: whole, written as floats
    table["cultivar"] = np.take(["barolo", "grignolino", "barbera"], wine.target)
    return table.to_csv(index=False)


def loans_csv(rows: int = 2000) -> str:
    rng = np.random.default_rng(7)
    income = np.round(rng.lognormal(10.8, 0.5, rows), 2)
    debt_ratio = np.round(rng.beta(2, 5, rows) * 2, 3)
    age = rng.integers(18, 80, rows)
    credit_lines = rng.poisson(6, rows)
    late_payments = rng.poisson(1, rows)
    risk = -2 + 2.5 * debt_ratio + 0.6 * late_payments - 0.02 * (age - 40) - income / 200_000
    default = rng.random(rows) < 1 / (1 + np.exp(-risk))
    table = pd.DataFrame(
        {
            "loan_id": [f"L{n:05d}" for n in range(rows)],  # a column the contract ignores
            "income": income,
            "debt_ratio": debt_ratio,
            "age": age,
            "credit_lines": credit_lines,
            "late_payments": late_payments,
            "outcome": np.where(default, "will default", "repaid"),
        }
    )
    return table.to_csv(index=False)


MODELS = {
    "three-wine-cultivars": (
        WINE_CONTRACT,
        "wine.csv",
        wine_csv,
        ["barolo", "grignolino", "barbera"],
    ),
    "binary-loans": (LOAN_CONTRACT, "loans.csv", loans_csv, ["will default"]),
}


def snapshot(root: Path) -> dict[str, bytes]:
    skip = {".venv", ".tools", "models"}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not skip & set(path.relative_to(root).parts)
    }


def listed(path: str, files: list[str]) -> bool:
    return any(path == f or (f.endswith("/") and path.startswith(f)) for f in files)


def environment(copy: Path) -> dict:
    # Not this run's coverage (the copy's files are not this project's) nor its virtualenv.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COV_CORE", "COVERAGE", "PYTEST_")) and key != "VIRTUAL_ENV"
    }
    return env | {"PYTHONPATH": str(copy / "src"), "FUZZ_EXAMPLES": "50"}


# make in the copy, which must never re-sync the .venv it shares with this project.
MAKE = ["make", "--no-print-directory", "-o", ".venv/bin/.synced"]


def run(command: list[str], copy: Path, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_another_model_takes_only_the_listed_files_and_passes_the_machinery_tests(tmp_path, name):
    contract, data_name, make_data, drawn = MODELS[name]
    files = your_model_files()
    copy = tmp_path / "copy"
    # copytree keeps modification times: make sees .venv as up to date with pyproject.toml.
    shutil.copytree(ROOT, copy, ignore=IGNORED, symlinks=True)
    for shared in (".venv", ".tools"):
        if (ROOT / shared).exists():
            (copy / shared).symlink_to(ROOT / shared)
    before = snapshot(copy)

    # The steps README lists: the contract, the data (the example's removed), the example's tests.
    [contract_path] = [f for f in files if f.endswith("model.toml")]
    [data_dir] = [f for f in files if f.startswith("data/")]
    [example_tests] = [f for f in files if f.startswith("tests/")]
    (copy / contract_path).write_text(contract)
    for old in (copy / data_dir).iterdir():
        old.unlink()
    (copy / data_dir / data_name).write_text(make_data())
    shutil.rmtree(copy / example_tests)

    after = snapshot(copy)
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert changed
    assert [path for path in sorted(changed) if not listed(path, files)] == []

    trained = run([*MAKE, "model"], copy, timeout=600)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "wrote models/model.skops" in trained.stdout
    served = run([".venv/bin/python", "-c", CHECK_SERVING], copy, timeout=120)
    assert served.returncode == 0, served.stdout + served.stderr
    compiled, runtime, same = served.stdout.splitlines()
    assert compiled == "onnxruntime"
    if len(drawn) > 1:  # more than two classes: nothing to fold, onnxruntime serves it
        assert runtime == "onnxruntime"
    else:
        assert runtime in ("onnxruntime", "folded arrays (numpy)")
    assert same == "True"
    assert f"served with {runtime}; ONNX compile" in trained.stdout

    tests = run(
        [".venv/bin/pytest", "-q", "-p", "no:cacheprovider", "--no-cov", "-n", "0",
         *(f"tests/{module}" for module in MACHINERY)],
        copy,
        timeout=1200,
    )  # fmt: skip
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else ""
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed, summary
    assert int(passed[1]) >= 300, summary
    assert "failed" not in summary, summary
    assert "error" not in summary, summary

    # The curves the release attaches: one ROC and one precision-recall file per drawn class.
    curves = run([*MAKE, "curves"], copy, timeout=300)
    assert curves.returncode == 0, curves.stdout + curves.stderr
    svgs = sorted(p.name for p in (copy / "models").glob("model-*.svg"))
    assert svgs == sorted(
        f"model-{kind}-{label_key(label)}.svg"
        for label in drawn
        for kind in ("roc", "precision-recall")
    )

    # The gate's first comparison after the swap: the example's card is not comparable.
    gate = run(
        [".venv/bin/mlservice", "compare-cards", str(ROOT / "models" / "model.json"),
         "models/model.json"],
        copy,
        timeout=120,
    )  # fmt: skip
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert (
        "The baseline was trained on other features, so its metrics are not comparable; "
        in gate.stdout
    )
    assert "**Quality gate: passed**" in gate.stdout

    if name == "binary-loans":
        shown = run([".venv/bin/python", "-c", CHECK_DOC_EXAMPLES], copy, timeout=120)
        assert shown.returncode == 0, shown.stdout + shown.stderr

    # The shared .venv still installs this project, not the copy.
    installed = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-c",
            "import mlservice; print(mlservice.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    package = label_key.__module__.partition(".")[0]  # this project's import name
    assert installed.stdout.strip() == str(ROOT / "src" / package / "__init__.py")
