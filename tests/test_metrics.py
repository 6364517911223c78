"""/metrics: off without METRICS_TOKEN, the token in constant time, and exact counts.

These run one process (the Flask test client); tests/test_observability.py checks the sums
across gunicorn's workers.
"""

import logging
import os
import sys
import time
from collections import Counter
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.core import Metric

from mlservice import create_app, metrics, telemetry
from mlservice.probe import NotYet, wait_until
from tests.conftest import ROOT
from tests.tools import Samples, metric_samples, requests_total, sample
from tests.values import FIRST, LABELS

TOKEN = "metrics-token-for-the-tests-0123456789"  # noqa: S105
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def metered(model_path):
    app = create_app(
        {
            "MODEL_PATH": str(model_path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "METRICS_TOKEN": TOKEN,
        }
    )
    return app.test_client()


def answered(
    route="/r", method="GET", status=200, seconds=0.01, error_code=None
) -> telemetry.Facts:
    """An answered request's facts, as telemetry queues them."""
    facts = telemetry.Facts(id="r" * 20, started=0.0, fields={})
    facts.route, facts.method, facts.status = route, method, status
    facts.seconds, facts.error_code, facts.done = seconds, error_code, True
    return facts


def scrape(client) -> Samples:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return metric_samples(response.get_data(as_text=True))


def test_without_a_token_there_is_no_metrics_route_and_nothing_is_counted(app, client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=AUTH).status_code == 404
    assert metrics.EXTENSION not in app.extensions


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer{TOKEN}",
        f"Bearer {TOKEN.upper()}",
        f"Bearer {TOKEN[:-1]}é",
    ],
)
def test_metrics_refuses_anything_but_the_token(metered, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = metered.get("/metrics", headers={**headers, "Accept": "application/json"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer realm=")
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_metrics_answers_the_token_in_any_case_of_the_scheme(metered, scheme):
    response = metered.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN} "})
    assert response.status_code == 200


def test_the_token_is_compared_in_constant_time(monkeypatch):
    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(metrics.hmac, "compare_digest", compare_digest)
    assert metrics._authorized(f"Bearer {TOKEN}", TOKEN)
    assert not metrics._authorized("Bearer nope", TOKEN)
    assert not metrics._authorized(f"Basic {TOKEN}", TOKEN)
    assert compared == [(TOKEN.encode(), TOKEN.encode()), (b"nope", TOKEN.encode())]


def test_counts_are_exact(metered, card):
    version_ = card["version"]
    # The card's examples: rows the model predicts right, each under its label.
    examples = list(card["examples"].items())
    (first, first_row), (last, last_row) = examples[0], examples[-1]
    for _ in range(3):
        metered.post("/api/v1/predict", json=first_row)
    metered.post("/api/v1/predict", json={"instances": [first_row, last_row, last_row]})
    metered.post("/api/v1/predict", json={FIRST.name: "x"})  # 422
    metered.get("/api/v1/nowhere")  # 404
    metered.open("/api/v1/predict", method="BREW")  # an unknown method: 405
    metered.get("/metrics")  # 401
    samples = scrape(metered)
    assert requests_total(samples, "/api/v1/predict", "POST", "200") == 4
    assert requests_total(samples, "/api/v1/predict", "POST", "422") == 1
    assert requests_total(samples, "(unmatched)", "GET", "404") == 1
    assert requests_total(samples, "(unmatched)", "other", "405") == 1
    assert requests_total(samples, "/metrics", "GET", "401") == 1
    assert requests_total(samples, "/metrics", "GET", "200") == 0  # counted once answered
    duration = "mlservice_http_request_duration_seconds"
    assert sample(samples, f"{duration}_count", route="/api/v1/predict") == 5
    assert sample(samples, f"{duration}_bucket", route="/api/v1/predict", le="+Inf") == 5
    assert 0 < sample(samples, f"{duration}_sum", route="/api/v1/predict") < 60

    predictions = "mlservice_predictions_total"
    expected = Counter([first] * 4 + [last] * 2)
    for label in LABELS:
        assert sample(samples, predictions, label=label, model_version=version_) == expected[label]
    assert sample(samples, "mlservice_prediction_rows_count") == 4
    assert sample(samples, "mlservice_prediction_rows_sum") == 6
    assert sample(samples, "mlservice_prediction_rows_bucket", le="1.0") == 3
    assert sample(samples, "mlservice_prediction_rows_bucket", le="2.0") == 3
    assert sample(samples, "mlservice_prediction_rows_bucket", le="5.0") == 4

    rejected = "mlservice_rejected_requests_total"
    assert sample(samples, rejected, code="invalid_input") == 1
    assert sample(samples, rejected, code="not_found") == 1
    assert sample(samples, rejected, code="method_not_allowed") == 1
    assert sample(samples, rejected, code="unauthorized") == 1
    assert sample(samples, "mlservice_http_requests_in_progress") == 1  # the scrape itself

    assert requests_total(scrape(metered), "/metrics", "GET", "200") == 1


def test_the_model_info_names_the_model_and_the_libraries(metered, card):
    [info] = [
        labels for (name, labels), v in scrape(metered).items() if name == "mlservice_model_info"
    ]
    assert dict(info) == {
        "version": card["version"],
        "estimator": card["estimator"],
        "serving": dict(info)["serving"],  # which one: the next test
        "scikit_learn": version("scikit-learn"),
        "numpy": version("numpy"),
        "python": sys.version.split()[0],
        "service": dict(info)["service"],
    }
    assert dict(info)["service"] == version("mlservice")
    assert scrape(metered)[("mlservice_model_info", info)] == 1


def test_the_model_info_says_unknown_for_a_card_without_its_estimator(model_path):
    from prometheus_client import CollectorRegistry

    from mlservice.model import load

    model = load(model_path)
    card = {key: value for key, value in model.card.items() if key != "estimator"}
    registry = CollectorRegistry()
    metrics.Metrics(replace(model, card=card), registry)
    [info] = [
        s.labels for m in registry.collect() for s in m.samples if s.name == "mlservice_model_info"
    ]
    assert info["estimator"] == "unknown"


def test_every_metric_says_what_it_counts(metered):
    text = metered.get("/metrics", headers=AUTH).get_data(as_text=True)
    helps = dict(
        line.removeprefix("# HELP ").split(" ", 1)
        for line in text.splitlines()
        if line.startswith("# HELP mlservice_") and "_created " not in line
    )
    # docs/observability.md's table says the same.
    assert helps == {
        "mlservice_http_requests_total": "Requests answered, by route (the URL rule), method and "
        "status.",
        "mlservice_http_request_duration_seconds": "Time from the request's arrival in the app "
        "to its answer, by route.",
        "mlservice_http_requests_in_progress": "Requests being answered now, across the workers.",
        "mlservice_rejected_requests_total": "Requests refused with a 4xx status, by error code "
        "(the one in the error body).",
        "mlservice_predictions_total": "Instances predicted, by predicted label and model version.",
        "mlservice_prediction_rows": "Instances in one prediction request.",
        "mlservice_model_info": "The served model (always 1): version, estimator, how it is "
        "served, library versions.",
    }


def test_child_pids_are_the_live_children(tmp_path):
    import subprocess

    # A command name may hold ") ", as this one does (prctl PR_SET_NAME): /proc/PID/stat's
    # fields are read after its last ")".
    named = "import ctypes, time; ctypes.CDLL(None).prctl(15, b'a) S 1 b', 0, 0, 0); time.sleep(30)"
    running = subprocess.Popen([sys.executable, "-c", named])
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        ended_pid = ended.pid
        # Ended but not yet waited for: a zombie, which is no worker any more.
        for _ in range(500):
            if (Path("/proc") / str(ended_pid) / "stat").read_text().split(")")[1].split()[
                0
            ] == "Z":
                break
            time.sleep(0.01)
        stat = Path("/proc") / str(running.pid) / "stat"
        for _ in range(500):
            if "(a) S 1 b)" in stat.read_text():
                break
            time.sleep(0.01)
        children = metrics.child_pids(os.getpid())
        assert running.pid in children
        assert ended_pid not in children
        assert metrics.child_pids(running.pid) == set()
    finally:
        running.kill()
        running.wait()
        ended.wait()


def test_the_server_processes_are_each_labelled_by_pid_and_role(monkeypatch):
    master, workers = 4242, [4243, 4244]
    monkeypatch.setattr(metrics.os, "getppid", lambda: master)
    monkeypatch.setattr(
        metrics, "child_pids", lambda parent: set(workers) if parent == master else set()
    )
    read = []

    class Collector:
        def __init__(self, pid, registry):
            assert registry is None
            self.pid = pid()
            read.append(self.pid)

        def collect(self):
            family = Metric("process_cpu_seconds", "Total user and system CPU time.", "counter")
            family.add_sample("process_cpu_seconds_total", {}, self.pid / 1000)
            fds = Metric("process_open_fds", "Number of open file descriptors.", "gauge")
            fds.add_sample("process_open_fds", {}, 7)
            return [family, fds]

    monkeypatch.setattr(metrics, "ProcessCollector", Collector)
    family, fds = metrics.ServerProcesses().collect()
    assert [s.labels["pid"] for s in fds.samples] == ["4242", "4243", "4244"]
    assert (family.name, family.documentation, family.type) == (
        "process_cpu_seconds",
        "Total user and system CPU time.",
        "counter",
    )
    assert read == [master, *workers]
    assert [(s.name, s.labels, s.value) for s in family.samples] == [
        ("process_cpu_seconds_total", {"pid": "4242", "process": "master"}, 4.242),
        ("process_cpu_seconds_total", {"pid": "4243", "process": "worker"}, 4.243),
        ("process_cpu_seconds_total", {"pid": "4244", "process": "worker"}, 4.244),
    ]


def test_in_multiprocess_mode_a_scrape_adds_up_the_files_and_every_process(
    metered, monkeypatch, tmp_path
):
    from prometheus_client import Counter, values

    # What a worker of another server start left behind, counted in its own file.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 77))
    Counter("elsewhere", "Counted by another process.", registry=None).inc(3)
    monkeypatch.setattr(metrics, "multiprocessing", lambda: True)
    samples = scrape(metered)
    assert sample(samples, "elsewhere_total") == 3
    assert any(name == "python_info" for name, _ in samples)
    master = str(os.getppid())
    assert sample(samples, "process_resident_memory_bytes", pid=master, process="master") > 0
    assert all(
        dict(labels)["process"] in ("master", "worker")
        for name, labels in samples
        if name.startswith("process_")
    )


def test_a_single_process_reports_its_own_cpu_and_memory(metered):
    samples = scrape(metered)
    assert sample(samples, "process_resident_memory_bytes") > 10_000_000
    assert sample(samples, "process_cpu_seconds_total") > 0
    assert any(name == "python_info" for name, _ in samples)


@pytest.mark.parametrize(
    ("status", "code", "counted"),
    [(399, "x", False), (400, "x", True), (499, "x", True), (500, "x", False), (404, None, False)],
)
def test_only_4xx_answers_count_as_rejected(model_path, status, code, counted):
    from prometheus_client import CollectorRegistry

    from mlservice.model import load

    registry = CollectorRegistry()
    meter = metrics.Metrics(load(model_path), registry)
    meter.count([answered(status=status, error_code=code)], [None], in_progress=0)
    rejected = registry.get_sample_value("mlservice_rejected_requests_total", {"code": "x"})
    assert (rejected or 0) == (1 if counted else 0)
    assert registry.get_sample_value("mlservice_prediction_rows_count") == 0


@pytest.mark.parametrize(
    ("affine", "onnx", "serving"),
    [
        (None, None, "scikit-learn"),
        ((np.ones(1), 0.0), None, "folded arrays (numpy)"),
        (None, "an ONNX session", "onnxruntime"),
    ],
)
def test_the_model_info_says_how_the_model_is_served(model_path, affine, onnx, serving):
    from prometheus_client import CollectorRegistry

    from mlservice.model import load

    registry = CollectorRegistry()
    metrics.Metrics(replace(load(model_path), affine=affine, onnx=onnx), registry)
    [info] = [
        s.labels for m in registry.collect() for s in m.samples if s.name == "mlservice_model_info"
    ]
    assert info["serving"] == serving


def test_the_model_info_says_none_for_an_image_without_scikit_learn(model_path, monkeypatch):
    from prometheus_client import CollectorRegistry

    from mlservice.model import load

    monkeypatch.setattr(metrics, "installed_version", lambda name: None)
    registry = CollectorRegistry()
    metrics.Metrics(load(model_path), registry)
    [info] = [
        s.labels for m in registry.collect() for s in m.samples if s.name == "mlservice_model_info"
    ]
    assert info["scikit_learn"] == "none"


def test_a_batch_of_requests_is_counted_and_added_up(model_path):
    from prometheus_client import CollectorRegistry

    from mlservice.model import load

    registry = CollectorRegistry()
    meter = metrics.Metrics(load(model_path), registry)
    labels = {"route": "/r", "method": "PATCH", "status": "200"}

    def value(name: str, **labels) -> float | None:
        return registry.get_sample_value(name, labels)

    one, two = [1] + [0] * (len(LABELS) - 1), [0] * (len(LABELS) - 1) + [2]
    batch = [answered(method="PATCH", seconds=0.002) for _ in range(3)]
    batch.append(answered(method="BREW", status=404, seconds=0.04, error_code="not_found"))
    meter.count(batch, [one, one, two, None], in_progress=1)
    assert value("mlservice_http_requests_total", **labels) == 3
    assert value("mlservice_http_requests_total", route="/r", method="other", status="404") == 1
    assert value("mlservice_http_requests_in_progress") == 1
    assert value("mlservice_rejected_requests_total", code="not_found") == 1
    version_ = load(model_path).version
    assert value("mlservice_predictions_total", label=LABELS[0], model_version=version_) == 2
    assert value("mlservice_predictions_total", label=LABELS[-1], model_version=version_) == 2
    assert value("mlservice_prediction_rows_sum") == 4
    assert value("mlservice_prediction_rows_bucket", le="1.0") == 2
    assert value("mlservice_prediction_rows_bucket", le="2.0") == 3
    duration = "mlservice_http_request_duration_seconds"
    assert value(f"{duration}_bucket", route="/r", le="0.001") == 0
    assert value(f"{duration}_bucket", route="/r", le="0.0025") == 3
    assert value(f"{duration}_bucket", route="/r", le="0.025") == 3
    assert value(f"{duration}_bucket", route="/r", le="0.05") == 4
    assert value(f"{duration}_sum", route="/r") == pytest.approx(0.046)
    meter.count([], [], in_progress=0)  # nothing answered since: only the gauge changes
    assert value("mlservice_http_requests_in_progress") == 0
    assert value("mlservice_http_requests_total", **labels) == 3
    assert value("mlservice_prediction_rows_count") == 3


@pytest.mark.parametrize(
    "values", [[0.5], [0.001, 0.0011, 2.5, 2.6, 31.0, 0.0], [1e-9] * 5, [30.0, 30.000001]]
)
def test_observing_many_at_once_is_observing_each(values):
    from prometheus_client import CollectorRegistry, Histogram

    registries = CollectorRegistry(), CollectorRegistry()
    one_by_one, all_at_once = (
        Histogram("h", "h", buckets=metrics.LATENCY_BUCKETS, registry=registry)
        for registry in registries
    )
    for value in values:
        one_by_one.observe(value)
    metrics.observe_all(all_at_once, values)

    def samples(registry) -> list:
        return [
            (s.name, s.labels, s.value)
            for family in registry.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    assert samples(registries[1]) == samples(registries[0])
    assert dict((s[1].get("le"), s[2]) for s in samples(registries[1]) if s[0] == "h_bucket")[
        "+Inf"
    ] == len(values)


def test_a_process_writes_its_requests_from_its_own_thread_soon_after(model_path):
    from prometheus_client import CollectorRegistry

    from mlservice.model import load

    registry = CollectorRegistry()
    recorder = telemetry.Recorder("v1", metrics.Metrics(load(model_path), registry))
    running, request = answered(route="/still-running"), answered()
    running.done = False
    recorder.queue(running)
    recorder.queue(request)

    def written() -> float:
        count = registry.get_sample_value(
            "mlservice_http_requests_total", {"route": "/r", "method": "GET", "status": "200"}
        )
        if count is None:
            raise NotYet("not written yet")
        return count

    # Nothing here calls write(): the process's thread does.
    assert wait_until(written, timeout=10, interval=0.005, what="the write") == 1
    assert registry.get_sample_value("mlservice_http_requests_in_progress") == 1
    running.done = True  # and nothing else queued: the thread looks again by itself

    def finished() -> float:
        if registry.get_sample_value("mlservice_http_requests_in_progress") != 0:
            raise NotYet("still in progress")
        return registry.get_sample_value(
            "mlservice_http_requests_total",
            {"route": "/still-running", "method": "GET", "status": "200"},
        )

    assert wait_until(finished, timeout=10, interval=0.005, what="the second write") == 1


def test_the_buckets_are_the_documented_ones(metered, card):
    metered.post("/api/v1/predict", json=next(iter(card["examples"].values())))
    samples = scrape(metered)

    def bounds(name: str) -> list[str]:
        return sorted(
            (dict(labels)["le"] for n, labels in samples if n == name),
            key=lambda le: float(le),
        )

    # docs/observability.md: latency from 1 ms to 30 s; rows from 1 to 100,000.
    assert bounds("mlservice_http_request_duration_seconds_bucket") == [
        *("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"),
        *("1.0", "2.5", "5.0", "10.0", "30.0", "+Inf"),
    ]
    assert bounds("mlservice_prediction_rows_bucket") == [
        *("1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0", "1000.0"),
        *("2000.0", "5000.0", "10000.0", "20000.0", "50000.0", "100000.0", "+Inf"),
    ]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_the_usual_methods_are_counted_by_name(metered, method):
    status = metered.open("/healthz", method=method).status_code
    route = "/healthz" if status < 400 else "(unmatched)"  # 405: no rule matched the method
    assert requests_total(scrape(metered), route, method, str(status)) == 1


def test_in_multiprocess_mode_the_gauges_add_up_across_processes_as_documented(
    model_path, monkeypatch, tmp_path
):
    from prometheus_client import values

    # The app counting in files, as under gunicorn: in-progress summed over the live workers,
    # the model info the highest any process set (1).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 78))
    monkeypatch.setattr(metrics, "multiprocessing", lambda: True)
    app = create_app(
        {
            "MODEL_PATH": str(model_path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "METRICS_TOKEN": TOKEN,
        }
    )
    samples = scrape(app.test_client())
    in_progress = [labels for name, labels in samples if name.endswith("requests_in_progress")]
    assert in_progress == [frozenset()]  # one sum, not one series per process
    assert sample(samples, "mlservice_http_requests_in_progress") == 1  # the scrape itself
    [(labels, value)] = [
        (dict(ls), v) for (n, ls), v in samples.items() if n == "mlservice_model_info"
    ]
    assert "pid" not in labels  # one series, not one per process
    assert value == 1


def test_with_request_lines_off_requests_are_still_counted(model_path, monkeypatch):
    # LOG_LEVEL=WARNING writes no request line: the metrics alone queue each request.
    app = create_app(
        {
            "MODEL_PATH": str(model_path),
            "ANSWERS_PATH": str(ROOT / "data" / "sample_answers.csv"),
            "METRICS_TOKEN": TOKEN,
        }
    )
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    client = app.test_client()
    client.get("/healthz")
    samples = scrape(client)
    assert requests_total(samples, "/healthz", "GET", "200") == 1
    assert sample(samples, "mlservice_http_requests_in_progress") == 1  # the scrape itself


def test_a_batch_counts_each_rejected_request(model_path):
    from prometheus_client import CollectorRegistry

    from mlservice.model import load

    registry = CollectorRegistry()
    meter = metrics.Metrics(load(model_path), registry)
    batch = [answered(status=404, error_code="not_found") for _ in range(2)]
    batch.append(answered(status=405))
    meter.count(batch, [None] * 3, in_progress=0)

    def rejected(code: str) -> float | None:
        return registry.get_sample_value("mlservice_rejected_requests_total", {"code": code})

    assert (rejected("not_found"), rejected("http_405")) == (2, 1)


def test_a_process_that_cannot_be_read_is_passed_over(monkeypatch, tmp_path):
    # The first entry went away while it was read (its stat is gone); the next is still read.
    gone, child = tmp_path / "100" / "stat", tmp_path / "200" / "stat"
    gone.mkdir(parents=True)  # reading a directory fails as reading a vanished file does
    child.parent.mkdir()
    child.write_text("200 (worker) S 42 200 200 0 -1")

    class Proc:
        def glob(self, pattern):
            assert pattern == "[0-9]*/stat"
            return [gone, child]

    monkeypatch.setattr(metrics, "Path", lambda path: Proc() if path == "/proc" else Path(path))
    assert metrics.child_pids(42) == {200}
