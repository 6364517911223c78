import csv
import io
import json
import threading
import tomllib
from importlib import metadata
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask, request
from werkzeug.serving import make_server

from mlservice import cli, create_app, model, training
from mlservice.contract import CONTRACT, label_key
from tests.conftest import ROOT

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.fixture
def serve():
    """Run a WSGI app on a free loopback port for the duration of a test."""
    servers = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_train_writes_artifact_and_card(tmp_path):
    output = tmp_path / "out" / "model.skops"
    result = CliRunner().invoke(cli.main, ["train", "--output", str(output)])
    assert result.exit_code == 0, result.output
    card = json.loads(output.with_suffix(".json").read_text())
    assert f"version {card['version']}" in result.output
    assert model.load(output).version == card["version"]


def test_train_reports_a_failed_floor(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "cross_val_score", lambda *args, **kwargs: np.ones(5))
    monkeypatch.setattr(training, "CONTRACT", CONTRACT.model_copy(update={"roc_auc_floor": 1.01}))
    result = CliRunner().invoke(cli.main, ["train", "--output", str(tmp_path / "m.skops")])
    assert result.exit_code == 1
    assert "is below the floor of 1.01 (roc_auc_floor in model.toml)." in result.output
    assert len(result.output.splitlines()) == 1
    assert not (tmp_path / "m.skops").exists()


def test_smoke_passes_against_the_service(app, serve, card):
    url = serve(app)
    result = CliRunner().invoke(cli.main, ["smoke", url, "--wait", "5"])
    assert result.exit_code == 0, result.output
    for label in card["examples"]:
        assert f"ok   predict {label} example -> {label}" in result.output
    # Every example and a row of the least values seen in training, as one CSV table.
    assert f"ok   predict CSV of {len(card['examples']) + 1} rows -> " in result.output
    assert f"serves model {card['version']}" in result.output


def test_smoke_assumes_http_when_the_url_has_no_scheme(app, serve):
    url = serve(app)
    result = CliRunner().invoke(cli.main, ["smoke", url.removeprefix("http://") + "/"])
    assert result.exit_code == 0, result.output
    assert f"smoke test passed: {url} serves model" in result.output


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "http://", "localhost:port", "localhost:70000", "local host:80"]
)
def test_smoke_refuses_what_is_not_an_http_url(url):
    result = CliRunner().invoke(cli.main, ["smoke", url])
    assert result.exit_code == 2
    assert f"{url!r} is not an http(s) URL; give one like http://localhost:8000" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_smoke_checks_the_expected_version(app, serve):
    result = CliRunner().invoke(cli.main, ["smoke", serve(app), "--expect-version", "0000"])
    assert result.exit_code == 1
    assert "expected 0000" in result.output


LABELS = CONTRACT.labels
FIRST_LABEL, OTHER = LABELS[0], LABELS[1]


def probabilities_for(label: str) -> dict:
    """Probabilities as a service gives them: 0.9 for this label, the rest shared."""
    rest = 0.1 / (len(LABELS) - 1)
    return {name: 0.9 if name == label else rest for name in LABELS}


def broken_service(card: dict, **overrides) -> Flask:
    """A service that answers like mlservice except where a test breaks it.

    Each row is predicted as the example it is (the first label for any other row); overrides
    replace an answer ("predict" a JSON prediction, "csv" an edit of the CSV table's lines).
    """
    fake = Flask("fake")
    answers = {
        "/healthz": ({"status": "ok"}, 200),
        "/readyz": ({"status": "ready", "model_version": card["version"]}, 200),
        "/api/v1/model": (card, 200),
        "predict": None,
        "csv": lambda lines: lines,
        "bad": ({"error": {"code": "invalid_input"}}, 422),
        "/metrics": ("", 404),
        **overrides,
    }

    def label_of(row: dict) -> str:
        return next((label for label, ex in card["examples"].items() if ex == row), FIRST_LABEL)

    @fake.get("/<path:path>")
    def get(path):
        return answers[f"/{path}"]

    @fake.post("/api/v1/predict")
    def predict():
        if request.mimetype == "text/csv":
            header, *rows = csv.reader(io.StringIO(request.get_data(as_text=True)))
            lines = [[*header, "label", *(card["csv_columns"][label] for label in LABELS)]]
            for cells in rows:
                label = label_of(dict(zip(header, map(float, cells), strict=True)))
                lines.append([*cells, label, *map(str, probabilities_for(label).values())])
            lines = answers["csv"](lines)
            return "\n".join(",".join(line) for line in lines) + "\n", {"Content-Type": "text/csv"}
        row = request.get_json()
        if not all(isinstance(value, int | float) for value in row.values()):
            return answers["bad"]
        label = label_of(row)
        prediction = {"label": label, "probabilities": probabilities_for(label)}
        return answers["predict"] or {"predictions": [prediction]}

    return fake


def one_prediction(label: str, probabilities: dict) -> tuple[dict, int]:
    return {"predictions": [{"label": label, "probabilities": probabilities}]}, 200


def swap_label_of_first_row(lines: list) -> list:
    column = len(lines[0]) - len(LABELS) - 1
    lines[1][column] = next(label for label in LABELS if label != lines[1][column])
    return lines


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"predict": one_prediction(OTHER, probabilities_for(OTHER))},
            f"example was predicted {OTHER}",
        ),
        (
            {"predict": one_prediction(FIRST_LABEL, {FIRST_LABEL: 1.0})},
            f"example: probabilities for ['{FIRST_LABEL}'], not",
        ),
        (
            {
                "predict": one_prediction(
                    FIRST_LABEL, {**probabilities_for(FIRST_LABEL), OTHER: 1.5}
                )
            },
            f"example: the probability of {OTHER} is 1.5",
        ),
        (
            {"predict": one_prediction(FIRST_LABEL, dict.fromkeys(LABELS, 0.1))},
            "example: the probabilities sum to",
        ),
        (
            {"predict": one_prediction(FIRST_LABEL, probabilities_for(OTHER))},
            f"example: the label {FIRST_LABEL} is not the most probable class",
        ),
        ({"csv": lambda lines: [lines[0][:-1], *lines[1:]]}, "the CSV answer's header is"),
        ({"csv": lambda lines: lines[:-1]}, "the CSV answer has"),
        ({"csv": swap_label_of_first_row}, "CSV row 1: the label"),
        ({"/healthz": ("down", 503)}, "/healthz answered 503"),
        ({"/readyz": ("<html>", 200)}, "did not answer JSON"),
        ({"bad": ("oops", 500)}, "bad input answered 500"),
    ],
    ids=[
        "wrong label",
        "a label missing",
        "probability over 1",
        "no sum of 1",
        "label not the most probable",
        "CSV header",
        "CSV rows",
        "CSV label",
        "not live",
        "not JSON",
        "bad input",
    ],
)
def test_smoke_fails_on_a_broken_service(card, serve, override, message):
    url = serve(broken_service(card, **override))
    result = CliRunner().invoke(cli.main, ["smoke", url])
    assert result.exit_code == 1
    assert "smoke test failed" in result.output
    assert message in result.output


def test_smoke_gives_up_waiting(card, serve):
    url = serve(broken_service(card, **{"/readyz": ("starting", 503)}))
    result = CliRunner().invoke(cli.main, ["smoke", url, "--wait", "1"])
    assert result.exit_code == 1
    assert "not ready after 1 s (status 503)" in result.output


def test_smoke_reports_an_unreachable_service():
    result = CliRunner().invoke(cli.main, ["smoke", "http://127.0.0.1:9", "--wait", "1"])
    assert result.exit_code == 1
    assert "not ready after 1 s" in result.output


def parse_svg(path):
    return ElementTree.parse(path).getroot()  # noqa: S314 (a file the test just wrote)


def test_export_curves_writes_standalone_svg_files(card, model_path, tmp_path):
    result = CliRunner().invoke(
        cli.main,
        ["export-curves", str(model_path.with_suffix(".json")), "--output-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    curve_sets = card["metrics"]["held_out"]["curves"]
    keys = [label_key(curves["positive_label"]) for curves in curve_sets]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"model-{kind}-{key}.svg" for key in keys for kind in ("roc", "precision-recall")
    )
    svg = "{http://www.w3.org/2000/svg}"
    for key, curves in zip(keys, curve_sets, strict=True):
        for name, part in [("roc", "roc"), ("precision-recall", "precision_recall")]:
            root = parse_svg(tmp_path / f"model-{name}-{key}.svg")
            assert root.tag == f"{svg}svg"
            assert root.find(f"{svg}title").text.endswith(f"curve for {curves['positive_label']}")
            points = root.find(f"{svg}polyline").get("points").split()
            assert len(points) == len(curves[part]["points"])
        roc = parse_svg(tmp_path / f"model-roc-{key}.svg")
        assert f"ROC-AUC {curves['roc']['auc']:.4f}" in roc.find(f"{svg}desc").text


def test_export_curves_of_a_card_without_curves_says_so(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"metrics": {"held_out": {"roc_auc": 0.97}}}))
    result = CliRunner().invoke(
        cli.main, ["export-curves", str(old), "--output-dir", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert f"The model card {old} records no curves." in result.output
    assert not (tmp_path / "out").exists()


def test_export_curves_of_a_missing_card_says_so(tmp_path):
    result = CliRunner().invoke(
        cli.main, ["export-curves", str(tmp_path / "none.json"), "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "Cannot read the model card" in result.output


def test_version_is_the_projects():
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"mlservice {version}\n"


def test_version_without_installed_metadata_comes_from_pyproject(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.output == f"mlservice {version}\n"


TOKEN = "smoke-test-metrics-token-0123456789abcdef"  # noqa: S105


@pytest.fixture
def metered_app(model_path):
    return create_app(
        {
            "MODEL_PATH": str(model_path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "METRICS_TOKEN": TOKEN,
        }
    )


def test_smoke_checks_metrics_with_the_token_from_the_environment(metered_app, serve):
    url = serve(metered_app)
    result = CliRunner().invoke(cli.main, ["smoke", url], env={"METRICS_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert "ok   /metrics answers with the token, refuses without it (401)" in result.output


def test_smoke_without_a_token_passes_when_metrics_refuses(metered_app, serve):
    result = CliRunner().invoke(cli.main, ["smoke", serve(metered_app)], env={"METRICS_TOKEN": ""})
    assert result.exit_code == 0, result.output
    assert "ok   /metrics is not public (401); set METRICS_TOKEN" in result.output


def test_smoke_without_a_token_passes_when_metrics_is_off(app, serve):
    result = CliRunner().invoke(cli.main, ["smoke", serve(app)], env={"METRICS_TOKEN": " "})
    assert result.exit_code == 0, result.output
    assert "ok   /metrics is not public (404)" in result.output


def test_smoke_with_a_token_fails_when_the_service_has_none(app, serve):
    result = CliRunner().invoke(cli.main, ["smoke", serve(app)], env={"METRICS_TOKEN": TOKEN})
    assert result.exit_code == 1
    assert (
        "/metrics answered 404 with the token, expected 200: is METRICS_TOKEN set on the service?"
        in result.output
    )


def test_smoke_with_another_token_than_the_service_fails(metered_app, serve):
    url = serve(metered_app)
    result = CliRunner().invoke(cli.main, ["smoke", url, "--metrics-token", TOKEN + "x"])
    assert result.exit_code == 1
    assert "/metrics answered 401 with the token, expected 200" in result.output


METRICS_TEXT = "\n".join(
    ["# TYPE mlservice_model_info gauge", 'mlservice_model_info{{version="{}"}} 1.0', ""]
)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        (("# public", 200), "/metrics answered 200 without a token, expected 404 (off) or 401"),
        (("oops", 500), "/metrics answered 500 without a token"),
    ],
)
def test_smoke_fails_when_metrics_is_public_or_broken(card, serve, metrics, message):
    url = serve(broken_service(card, **{"/metrics": metrics}))
    result = CliRunner().invoke(cli.main, ["smoke", url], env={"METRICS_TOKEN": ""})
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    ("body", "without_token", "message"),
    [
        (METRICS_TEXT.format("0000"), 401, "/metrics does not report the served model {version}"),
        ("mlservice_model_info{version=", 401, "/metrics is not in Prometheus text format"),
        (None, 200, "/metrics answered 200 without the token, expected 401"),
        (None, 403, "/metrics answered 403 without the token, expected 401"),
    ],
)
def test_smoke_checks_what_metrics_reports(card, serve, body, without_token, message):
    service = broken_service(card)

    @service.before_request
    def metrics_behind_a_token():
        if request.path == "/metrics":
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return "", without_token
            return body or METRICS_TEXT.format(card["version"]), 200
        return None

    result = CliRunner().invoke(cli.main, ["smoke", serve(service)], env={"METRICS_TOKEN": TOKEN})
    assert result.exit_code == 1
    assert message.format(version=card["version"]) in result.output
