"""The image installs what the card's model needs to be served, and no more (docs/container.md).

The Dockerfile is built twice around the random-forest training candidate: once with its ONNX
compile (the card says onnxruntime: no scikit-learn, SciPy or skops in the image) and once with a
card that says scikit-learn (the skops group is installed, and the model is served through it).
Each image then loads its model as the server does. Needs docker: skipped locally without it, a
failure under CI=true.
"""

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from mlservice import training
from tests.tools import require, unavailable

ROOT = Path(__file__).resolve().parents[1]
# The build context the Dockerfile and .dockerignore expect, models/ aside.
CONTEXT = ["Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock", "README.md", "src",
           "gunicorn.conf.py", "data"]  # fmt: skip
CHECK = (
    "import importlib.util; from mlservice import model; "
    "print(model.load('models/model.skops').runtime, "
    "[name for name in ('sklearn', 'scipy', 'skops') if importlib.util.find_spec(name)])"
)


@pytest.fixture(scope="module")
def base_image() -> str:
    require("docker", ".ci/ensure-docker installs it")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        unavailable("no docker daemon answers (.ci/ensure-docker starts one)")
    done = subprocess.run(
        [str(ROOT / ".ci" / "base-image")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def build_context(tmp_path: Path, card: dict, runtime: str) -> Path:
    context = tmp_path / runtime
    context.mkdir()
    for name in CONTEXT:
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, context / name)
    X, y = training.load_training_data()
    forest = training.build_pipeline("random_forest", training.SEED).fit(X.to_numpy(), y)
    path = context / "models" / "model.skops"
    saved = training.save(forest, card, path)
    assert saved["serving"]["runtime"] == "onnxruntime"
    if runtime == "scikit-learn":
        path.with_suffix(".onnx").unlink()
        saved["serving"] = {"runtime": "scikit-learn", "reason": "a test of the skops image"}
        path.with_suffix(".json").write_text(json.dumps(saved))
    return context


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runtime", "installed"),
    [("onnxruntime", "[]"), ("scikit-learn", "['sklearn', 'scipy', 'skops']")],
)
def test_the_image_installs_scikit_learn_only_for_a_model_the_card_serves_with_it(
    tmp_path, base_image, card, runtime, installed
):
    context = build_context(tmp_path, card, runtime)
    tag = f"mlservice-image-kinds:{uuid.uuid4().hex[:12]}"
    try:
        built = subprocess.run(
            ["docker", "build", "--quiet", "--network", "host", "--build-arg",
             f"BASE_IMAGE={base_image}", "-t", tag, str(context)],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        served = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", tag, "-c", CHECK],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert served.returncode == 0, served.stderr[-3000:]
        assert served.stdout.strip() == f"{runtime} {installed}"
    finally:
        subprocess.run(["docker", "rmi", "--force", tag], capture_output=True, check=False)
