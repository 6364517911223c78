"""Faults against the real server: a killed worker, a corrupted model file, SIGTERM under load."""

import http.client
import json
import os
import shutil
import signal
import threading
import time
from urllib.parse import urlsplit

import pytest

from mlservice.probe import WaitTimeout, wait_until
from scripts.live_server import gunicorn_server


@pytest.fixture(scope="module")
def sample(example) -> dict:
    return example[1]


def post(base_url: str, body: str, content_type: str, timeout: float = 60) -> tuple[int, bytes]:
    """One request on a fresh connection; connection errors propagate."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)
    try:
        connection.request("POST", "/api/v1/predict", body, {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_for(condition, timeout: float, interval: float = 0.1) -> bool:
    try:
        return bool(wait_until(condition, timeout=timeout, interval=interval, what="a condition"))
    except WaitTimeout:
        return False


def test_killed_worker_loses_only_its_in_flight_request_and_is_replaced(sample):
    clients, per_client, time_limit = 4, 300, 20.0
    outcomes: list[str] = []  # "200", another status, or the connection error's name
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(base_url: str):
        deadline = time.monotonic() + time_limit
        for _ in range(per_client):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                status, _ = post(base_url, json.dumps(sample), "application/json", timeout=10)
                outcome = str(status)
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__
            with lock:
                outcomes.append(outcome)

    with gunicorn_server(workers=2) as server:
        assert wait_for(lambda: len(server.worker_pids()) == 2, timeout=30)
        workers_before = server.worker_pids()
        threads = [threading.Thread(target=client_loop, args=(server.url,)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            assert wait_for(lambda: len(outcomes) >= 100, timeout=15), "no load reached the server"
            victim = min(workers_before)
            os.kill(victim, signal.SIGKILL)
            done_at_kill = len(outcomes)
            replaced = wait_for(
                lambda: (
                    len(server.worker_pids() - workers_before) == 1
                    and len(server.worker_pids()) == 2
                ),
                timeout=30,
            )
            # Keep the load on for a moment after the replacement starts.
            wait_for(lambda: len(outcomes) >= done_at_kill + 100, timeout=10)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

        failed = [outcome for outcome in outcomes if outcome != "200"]
        assert replaced, f"no new worker replaced {victim}: {server.worker_pids()}"
        assert victim not in server.worker_pids()
        # A sync worker serves one request at a time: at most that one may be lost.
        assert len(failed) <= 1, failed
        assert len(outcomes) >= done_at_kill + 100, "requests stopped succeeding after the kill"


def test_corrupted_model_file_stops_start_up_with_one_clear_line(model_path, tmp_path):
    for artifact in (model_path, model_path.with_suffix(".json")):
        shutil.copy(artifact, tmp_path)
    damaged = tmp_path / model_path.name
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, as a bad disk or a broken copy would do
    damaged.write_bytes(bytes(data))

    with gunicorn_server(env={"MODEL_PATH": str(damaged)}, wait=False) as server:
        code = server.process.wait(timeout=120)
        output = server.log()

    assert code != 0
    assert "Traceback" not in output
    reasons = [line for line in output.splitlines() if "mlservice cannot start" in line]
    assert len(reasons) == 1, output
    assert "checksum" in reasons[0]
    assert str(damaged) in reasons[0]


def test_sigterm_lets_the_in_flight_request_finish(sample):
    # A slow upload: the worker has accepted the request and is reading its body when SIGTERM
    # arrives, however fast the service itself is.
    rows, chunks, pause = 2000, 10, 0.15
    lines = [",".join(sample)] + [",".join(map(str, sample.values()))] * rows
    body = ("\n".join(lines) + "\n").encode()
    size = -(-len(body) // chunks)
    result: dict = {}
    terminate = threading.Event()

    def slow_request(base_url: str):
        address = urlsplit(base_url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        try:
            connection.putrequest("POST", "/api/v1/predict")
            connection.putheader("Content-Type", "text/csv")
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders()
            for start in range(0, len(body), size):
                connection.send(body[start : start + size])
                terminate.set()  # after the first chunk: the request is in flight
                time.sleep(pause)
            response = connection.getresponse()
            result["status"], result["body"] = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            result["error"] = repr(error)
        finally:
            connection.close()
        result["finished_at"] = time.monotonic()

    with gunicorn_server(workers=1) as server:
        graceful = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "8"))
        request = threading.Thread(target=slow_request, args=(server.url,))
        request.start()
        assert terminate.wait(timeout=10)
        time.sleep(pause)  # the idle worker accepts within milliseconds
        terminated_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=graceful + 10)
        exited_at = time.monotonic()
        request.join(timeout=30)

    assert "error" not in result, result.get("error")
    assert result["status"] == 200
    assert result["finished_at"] > terminated_at
    assert result["body"].count(b"\n") == rows + 1  # the header and every row, scored
    assert code == 0
    assert exited_at - terminated_at <= graceful + 5
