"""Prometheus metrics at GET /metrics, exact across gunicorn's workers, behind a bearer token.

Under gunicorn each worker is its own process with its own counts. gunicorn.conf.py therefore
puts prometheus_client in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, a fresh directory per
server start): every process writes its counts to files there, and whichever worker answers a
scrape adds up all the files. Multiprocess mode cannot ask a process for its own CPU and memory
(per-process collectors would describe only the worker that answers), so ServerProcesses reads
them for the master and every worker from /proc at scrape time, labelled by pid.

Without METRICS_TOKEN there is no /metrics route and nothing is counted (docs/observability.md).
"""

import hmac
import os
import sys
import time
from bisect import bisect_left
from collections import Counter as TallyCounter
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import Metric
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from mlservice import process, telemetry
from mlservice.cli import package_version
from mlservice.contract import CONTRACT
from mlservice.model import installed_version

if values.ValueClass._multiprocess:
    # Every write checks for a fork by asking for the process id (prometheus_client's
    # MultiProcessValue): ask mlservice.process, which knows it without a system call. The
    # files stay named by the real pid, which child_exit marks dead.
    values.ValueClass = values.MultiProcessValue(process_identifier=process.pid)

EXTENSION = "mlservice.metrics"
# Seconds. Predictions take about a millisecond; a 100,000-row batch about one second.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ROW_BUCKETS = (
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
    10_000,
    20_000,
    50_000,
    100_000,
)
# Any other method a client sends is counted as "other": label values stay a short, fixed list.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# How long a scrape waits for the other workers to write their queued requests: a few of their
# write intervals, for a busy machine.
SCRAPE_WAIT = 4 * telemetry.WRITE_INTERVAL

bp = Blueprint("metrics", __name__)


class Metrics:
    """The service's metrics, created once per app.

    Requests are counted in batches, by mlservice.telemetry's Recorder, from a thread of each
    process: count() writes each metric that changed once per batch instead of about eight
    times per request.
    """

    def __init__(self, model, registry: CollectorRegistry | None):
        self._registry = registry
        self.requests = Counter(
            "mlservice_http_requests",
            "Requests answered, by route (the URL rule), method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "mlservice_http_request_duration_seconds",
            "Time from the request's arrival in the app to its answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # livesum: a worker that dies mid-request leaves the sum (gunicorn.conf.py child_exit).
        self.in_progress = Gauge(
            "mlservice_http_requests_in_progress",
            "Requests being answered now, across the workers.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.rejected = Counter(
            "mlservice_rejected_requests",
            "Requests refused with a 4xx status, by error code (the one in the error body).",
            ["code"],
            registry=registry,
        )
        predictions = Counter(
            "mlservice_predictions",
            "Instances predicted, by predicted label and model version.",
            ["label", "model_version"],
            registry=registry,
        )
        self.rows = Histogram(
            "mlservice_prediction_rows",
            "Instances in one prediction request.",
            buckets=ROW_BUCKETS,
            registry=registry,
        )
        # max: the master sets it at start-up; the workers' zeros leave it at 1.
        info = Gauge(
            "mlservice_model_info",
            "The served model (always 1): version, estimator, how it is served, library versions.",
            ["version", "estimator", "serving", "scikit_learn", "numpy", "python", "service"],
            multiprocess_mode="max",
            registry=registry,
        )
        info.labels(
            version=model.version,
            estimator=model.card.get("estimator", "unknown"),
            serving=model.runtime,  # folded arrays, onnxruntime or scikit-learn
            # An ONNX model's image has no scikit-learn.
            scikit_learn=installed_version("scikit-learn") or "none",
            numpy=version("numpy"),
            python=sys.version.split()[0],
            service=package_version(),
        ).set(1)
        self._predictions = [
            predictions.labels(label=label, model_version=model.version)
            for label in CONTRACT.labels
        ]

    def count(self, answered: list, label_counts: list, in_progress: int) -> None:
        """Count answered requests (telemetry.Facts) with their predictions per label, if any,
        and set this process's requests in progress."""
        self.in_progress.set(in_progress)
        requests: TallyCounter = TallyCounter()
        durations: dict[str, list[float]] = defaultdict(list)
        rejected: TallyCounter = TallyCounter()
        for facts in answered:
            status = facts.status
            method = facts.method if facts.method in METHODS else "other"
            requests[facts.route, method, status] += 1
            durations[facts.route].append(facts.seconds)
            if 400 <= status < 500:
                rejected[facts.error_code or f"http_{status}"] += 1
        for (route, method, status), n in requests.items():
            self.requests.labels(route=route, method=method, status=str(status)).inc(n)
        for route, seconds in durations.items():
            observe_all(self.duration.labels(route=route), seconds)
        for code, n in rejected.items():
            self.rejected.labels(code=code).inc(n)
        counted = [counts for counts in label_counts if counts is not None]
        if counted:
            for child, n in zip(
                self._predictions, map(sum, zip(*counted, strict=True)), strict=True
            ):
                if n:
                    child.inc(n)
            observe_all(self.rows, list(map(sum, counted)))

    def registry(self) -> CollectorRegistry:
        """What a scrape reports: this process's metrics, or the sum over the server's."""
        if not multiprocessing():
            return self._registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(ServerProcesses())
        PlatformCollector(registry=registry)
        return registry


def observe_all(histogram, values: list[float]) -> None:
    """Observe each of `values` in a histogram (a labelled child or an unlabelled one).

    What Histogram.observe does for one value, done for many with one write to the sum and one
    to each bucket they fall in: prometheus_client has no call for it, so this writes its
    Histogram's own `_sum` and `_buckets` (tests/test_metrics.py checks the result against
    observe()). A value goes into the first bucket whose bound is at least the value.
    """
    histogram._sum.inc(sum(values))
    for index, n in TallyCounter(bisect_left(histogram._upper_bounds, v) for v in values).items():
        histogram._buckets[index].inc(n)


def multiprocessing() -> bool:
    """Whether prometheus_client counts in files (chosen when it was imported)."""
    return values.ValueClass._multiprocess


def child_pids(parent: int) -> set[int]:
    """Live (not zombie) child processes of `parent`, read from /proc (Linux)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces; the fields after its ")" are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        state, ppid = fields[0], int(fields[1])
        if ppid == parent and state != "Z":
            children.add(int(stat.parent.name))
    return children


class ServerProcesses:
    """prometheus_client's process_* metrics for the gunicorn master and each of its workers.

    A scrape is answered by a worker, whose parent is the master. Each sample gets `pid` and
    `process` (master or worker) labels; a process that cannot be read is left out.
    """

    def collect(self):
        master = os.getppid()
        processes = [(master, "master")] + [(pid, "worker") for pid in sorted(child_pids(master))]
        families: dict[str, Metric] = {}
        for pid, role in processes:
            collector = ProcessCollector(pid=lambda pid=pid: pid, registry=None)
            for family in collector.collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    labels = {**sample.labels, "pid": str(pid), "process": role}
                    merged.add_sample(sample.name, labels, sample.value)
        return list(families.values())


def _authorized(header: str, token: str) -> bool:
    scheme, _, credentials = header.partition(" ")
    # Constant time: how much of a guess was right must not show in how long the answer takes.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(errors="replace"), token.encode()
    )


@bp.get("/metrics")
def scrape():
    if not _authorized(
        request.headers.get("Authorization", ""), current_app.config["METRICS_TOKEN"]
    ):
        raise Unauthorized(
            "GET /metrics needs the METRICS_TOKEN as a bearer token (Authorization: Bearer ...).",
            www_authenticate=WWWAuthenticate("bearer", {"realm": "metrics"}),
        )
    metrics: Metrics = current_app.extensions[EXTENSION]
    current_app.extensions[telemetry.EXTENSION].write()  # this process's queued requests
    if multiprocessing():
        # The other workers' Recorders write theirs within telemetry.WRITE_INTERVAL: wait for
        # them, so that the scrape counts every request answered before it arrived.
        time.sleep(SCRAPE_WAIT)
    return Response(
        generate_latest(metrics.registry()), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def init_app(app: Flask) -> Metrics | None:
    """With METRICS_TOKEN set: count, and serve /metrics. Returns the metrics, or None."""
    if not app.config["METRICS_TOKEN"]:
        return None
    # In multiprocess mode the counts live in files, not in a registry; otherwise this app's own
    # registry, which also reports this process's CPU and memory.
    registry = None
    if not multiprocessing():
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    metrics = Metrics(app.extensions["mlservice.model"], registry)
    app.extensions[EXTENSION] = metrics
    app.register_blueprint(bp)
    return metrics
