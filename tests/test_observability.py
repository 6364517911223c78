"""The real server, three workers: /metrics adds up every worker's counts exactly, every log
line is one JSON object, and no submitted value ever reaches the log."""

import contextlib
import csv
import io
import json
import os
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlservice.probe import NotYet, http, wait_until
from scripts.live_server import Server, gunicorn_server, stop
from tests.test_telemetry import BAD_VALUE, SUBMITTED, TELLTALE
from tests.tools import Samples, metric_samples, requests_total, sample
from tests.values import FIRST, csv_table

pytestmark = pytest.mark.slow

TOKEN = "observability-test-token-0123456789abcdef"  # noqa: S105
APP = "tests.telemetry_app:app"  # the service plus /boom and /sleep
JSON = {"Content-Type": "application/json"}


def scrape(base: str) -> Samples:
    reply = http("GET", f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200, reply.body[:300]
    return metric_samples(reply.body.decode())


def in_progress(base: str) -> float:
    return sample(scrape(base), "mlservice_http_requests_in_progress")


def log_lines(server: Server) -> list[dict]:
    """The server's log, each line parsed: any line that is not one JSON object fails here."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert all({"time", "severity", "logger", "message"} <= line.keys() for line in lines)
    return lines


def three_workers(server: Server) -> None:
    wait_until(
        lambda: len(server.worker_pids()) == 3, timeout=60, interval=0.1, what="three workers"
    )


def test_counts_add_up_across_the_workers_and_the_log_is_json_without_values(card):
    examples = list(card["examples"].values())
    csv_text = csv_table([SUBMITTED, examples[0]])
    requests = (
        [("POST", "/api/v1/predict", json.dumps(SUBMITTED), JSON)] * 24
        + [("POST", "/api/v1/predict", json.dumps({"instances": [SUBMITTED, examples[0], examples[-1]]}), JSON)] * 6
        + [("POST", "/api/v1/predict", csv_text, {"Content-Type": "text/csv"})] * 6
        + [("POST", "/api/v1/predict", json.dumps({**SUBMITTED, FIRST.name: BAD_VALUE}), JSON)] * 8
        + [("GET", "/api/v1/nowhere", None, {})] * 4
        + [("GET", "/boom", None, {"Accept": "application/json"})] * 2
    )  # fmt: skip
    env = {"METRICS_TOKEN": TOKEN, "LOG_FORMAT": "json"}
    with gunicorn_server(env=env, workers=3, app=APP) as server:
        three_workers(server)

        def send(numbered):
            number, (method, path, body, headers) = numbered
            rid = f"observability-test-{number:04d}"
            reply = http(
                method,
                f"{server.url}{path}",
                body=body.encode() if body else None,
                headers={**headers, "X-Request-ID": rid},
            )
            return rid, reply

        # Eight at a time: a busy worker cannot accept, so the requests spread over the workers.
        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = dict(pool.map(send, enumerate(requests)))
        statuses = Counter(reply.status for reply in replies.values())
        assert statuses == {200: 36, 422: 8, 404: 4, 500: 2}

        # What the service answered is what it must have counted.
        predicted = Counter()
        for reply in replies.values():
            if reply.status == 200 and reply.headers["Content-Type"].startswith("text/csv"):
                predicted.update(
                    row["label"] for row in csv.DictReader(io.StringIO(reply.body.decode()))
                )
            elif reply.status == 200:
                predicted.update(p["label"] for p in reply.json()["predictions"])
        assert predicted.total() == 24 + 6 * 3 + 6 * 2

        samples = scrape(server.url)
        pids = {server.pid, *server.worker_pids()}
        stop(server)
        lines = log_lines(server)

    assert requests_total(samples, "/api/v1/predict", "POST", "200") == 36
    assert requests_total(samples, "/api/v1/predict", "POST", "422") == 8
    assert requests_total(samples, "(unmatched)", "GET", "404") == 4
    assert requests_total(samples, "/boom", "GET", "500") == 2
    duration = "mlservice_http_request_duration_seconds"
    assert sample(samples, f"{duration}_count", route="/api/v1/predict") == 44
    assert sample(samples, f"{duration}_bucket", route="/boom", le="+Inf") == 2
    for label, count in predicted.items():
        assert (
            sample(
                samples, "mlservice_predictions_total", label=label, model_version=card["version"]
            )
            == count
        )
    assert sample(samples, "mlservice_prediction_rows_count") == 36
    assert sample(samples, "mlservice_prediction_rows_sum") == 24 + 18 + 12
    assert sample(samples, "mlservice_prediction_rows_bucket", le="1.0") == 24
    assert sample(samples, "mlservice_prediction_rows_bucket", le="2.0") == 30
    assert sample(samples, "mlservice_rejected_requests_total", code="invalid_input") == 8
    assert sample(samples, "mlservice_rejected_requests_total", code="not_found") == 4
    assert sample(samples, "mlservice_http_requests_in_progress") == 1  # the scrape
    [info] = [dict(labels) for name, labels in samples if name == "mlservice_model_info"]
    assert info["version"] == card["version"]
    # CPU and memory of the master and each worker, read by whichever worker answered.
    memory = {
        (dict(labels)["pid"], dict(labels)["process"])
        for name, labels in samples
        if name == "process_resident_memory_bytes"
    }
    assert memory == {(str(pid), "master" if pid == server.pid else "worker") for pid in pids}

    # One line per request, with its id and what it answered.
    request_lines = {
        line["request_id"]: line for line in lines if line["logger"] == "mlservice.requests"
    }
    for rid, reply in replies.items():
        assert request_lines[rid]["status"] == reply.status
        assert reply.headers["X-Request-ID"] == rid
    assert len({request_lines[rid]["pid"] for rid in replies}) >= 2, "one worker served all"
    tracebacks = [line for line in lines if "stack_trace" in line]
    assert len(tracebacks) == 2
    for line in tracebacks:
        assert line["stack_trace"].endswith("RuntimeError: the model fell over")
        assert replies[line["request_id"]].status == 500
    assert any(line["message"].startswith("Booting worker") for line in lines)  # gunicorn's own

    # Nothing that was submitted is in the log, valid or not.
    written = json.dumps(lines)
    for submitted in [*TELLTALE, BAD_VALUE]:
        assert submitted not in written


def test_a_killed_worker_leaves_the_sums_and_a_stuck_one_names_its_request(card):
    env = {"METRICS_TOKEN": TOKEN, "LOG_FORMAT": "json", "WEB_TIMEOUT": "3"}
    body = json.dumps(next(iter(card["examples"].values()))).encode()
    with gunicorn_server(env=env, workers=3, app=APP) as server:
        three_workers(server)
        for _ in range(5):
            assert (
                http("POST", f"{server.url}/api/v1/predict", body=body, headers=JSON).status == 200
            )

        def sleeping_in(rid: str) -> int:
            """The pid of the worker holding request `rid` on /sleep."""

            def find():
                for line in log_lines(server):
                    if line.get("request_id") == rid and line["message"].startswith("sleeping"):
                        return line["pid"]
                raise NotYet(f"no worker holds {rid} yet")

            return wait_until(find, timeout=30, interval=0.1, what=f"{rid} to start")

        def hold(rid: str, seconds: int) -> threading.Thread:
            def request():
                # Its worker is killed or aborted: that is the point.
                with contextlib.suppress(OSError):
                    http(
                        "GET",
                        f"{server.url}/sleep?seconds={seconds}",
                        headers={"X-Request-ID": rid},
                        timeout=60,
                    )

            thread = threading.Thread(target=request, daemon=True)
            thread.start()
            return thread

        # A worker killed in the middle of a request: its in-progress count must leave the sum.
        killed = hold("killed-in-the-middle-0001", 60)
        victim = sleeping_in("killed-in-the-middle-0001")
        assert in_progress(server.url) == 2  # the held request and this scrape
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 3,
            timeout=60,
            interval=0.1,
            what="the killed worker to be replaced",
        )
        killed.join(timeout=30)
        samples = scrape(server.url)
        assert sample(samples, "mlservice_http_requests_in_progress") == 1
        # The dead worker's counts stay in the sums.
        assert requests_total(samples, "/api/v1/predict", "POST", "200") == 5

        # A worker stuck past WEB_TIMEOUT is aborted; the line it writes names the request.
        stuck = hold("stuck-past-the-timeout-01", 60)
        sleeping_in("stuck-past-the-timeout-01")

        def abort_line():
            for line in log_lines(server):
                if line["message"].startswith("Worker timeout"):
                    return line
            raise NotYet("no timeout yet")

        line = wait_until(abort_line, timeout=60, interval=0.2, what="the worker timeout")
        assert line["severity"] == "ERROR"
        assert line["request_id"] == "stuck-past-the-timeout-01"
        stuck.join(timeout=30)
        wait_until(
            lambda: in_progress(server.url) == 1, timeout=30, interval=0.2, what="no stuck count"
        )
        stop(server)
        log_lines(server)  # every line, shutdown included, is JSON
