"""`make bench`: requests/s and latency of the service against a ceiling, a peer and other designs.

Starts each app with gunicorn and the project's gunicorn.conf.py on loopback (the FastAPI peer
with uvicorn, as FastAPI's docs run it, with as many workers), drives it with wrk, times a
100,000-row CSV batch, prints a table and checks the targets from the performance doc. The random
forest candidate is served twice by the same server: compiled to ONNX (onnxruntime) and through
skops and scikit-learn. Each ratio the targets check is measured in alternating rounds against
servers running side by side, so both sides see the same machine (a shared VM's speed drifts by
5-10% within a minute): the service with telemetry (a JSON log line per request and the
Prometheus metrics) off and on, and the ceiling; the two forests. wrk runs on CPUs of its own
and the servers on the others (split_cpus), so that every server measured has the same CPUs
whatever wrk needs to keep up with it. Exits 1 when a target is missed. `--write` puts the table
into docs/performance.md.
"""

import argparse
import io
import json
import math
import os
import pickle
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent

import wrk  # noqa: E402 (scripts/wrk.py, beside this file)
from live_server import gunicorn_server  # noqa: E402

from mlservice.config import default_workers, usable_cpus  # noqa: E402
from mlservice.contract import CONTRACT  # noqa: E402
from mlservice.probe import http, wait_until  # noqa: E402
from mlservice.training import build_pipeline, load_training_data, save  # noqa: E402

DOC = ROOT / "docs" / "performance.md"
ROUNDS = 6  # each side of a ratio measured in this many turns of half the duration
# Seconds between turns: the server answers what wrk left in flight when it stopped (up to a
# request per connection: 32 x 3.5 ms of CPU for the scikit-learn forest), which would otherwise
# run during the next server's turn.
SETTLE = 0.5
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def core_of(cpu: int) -> str:
    """The physical core a CPU belongs to, as Linux lists its hyperthreads (the CPU itself where
    it does not say)."""
    siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
    try:
        return siblings.read_text()
    except OSError:
        return str(cpu)


def split_cpus() -> tuple[set[int], set[int]] | None:
    """The CPUs for wrk and those for the servers, or None where they cannot be kept apart.

    On shared CPUs a faster server leaves less of them to itself, since wrk needs CPU for each
    request it sends: a ratio then compared servers on unequal CPUs (docs/performance.md, "wrk on
    CPUs of its own"). wrk needs about a third of the CPU the servers spend on the lightest
    request (a quarter of all), so a third of the cores, at least one, leaves it room; whole cores
    where there are several, since two hyperthreads of one core share its units. None where a
    CPU quota, which both share whatever their CPUs, is below the CPUs this process may use.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity
        return None
    if len(cpus) < 2 or usable_cpus() < len(cpus):
        return None
    cores: dict[str, list[int]] = {}
    for cpu in cpus:
        cores.setdefault(core_of(cpu), []).append(cpu)
    # One core's hyperthreads are the only way apart on a single-core machine.
    units = list(cores.values()) if len(cores) > 1 else [[cpu] for cpu in cpus]
    wrk_units = math.ceil(len(units) / 3)  # at most len(units) - 1, from 2 units up
    load = {cpu for unit in units[len(units) - wrk_units :] for cpu in unit}
    return load, set(cpus) - load


def throughput(url: str, seconds: int, connections: int, load: dict, body: str = "") -> dict:
    totals = wrk.run(url, seconds, connections, method="POST" if body else "GET", body=body, **load)
    return {
        "rps": totals["requests"] / (totals["duration_us"] / 1e6),
        "p50_ms": totals["p50_us"] / 1000,
        "p99_ms": totals["p99_us"] / 1000,
        "errors": totals["non_2xx"] + sum(totals[key] for key in wrk.SOCKET_ERRORS),
    }


def baseline_pickles(folder: Path) -> None:
    """The original app's model: scaler and random forest fitted separately, pickled."""
    X, y = load_training_data()
    scaler = StandardScaler().fit(X)
    forest = RandomForestClassifier(max_depth=4, random_state=0).fit(scaler.transform(X), y)
    (folder / "scaler.pkl").write_bytes(pickle.dumps(scaler))
    (folder / "forest.pkl").write_bytes(pickle.dumps(forest))


def forest_models(folder: Path, card: dict) -> tuple[Path, Path]:
    """The random-forest candidate saved twice: with its ONNX compile, and as skops only."""
    X, y = load_training_data()
    forest = build_pipeline("random_forest", 0).fit(X.to_numpy(), y)
    compiled = folder / "onnx" / "model.skops"
    save(forest, card, compiled)
    plain = folder / "skops" / "model.skops"
    plain.parent.mkdir()
    shutil.copy(compiled, plain)
    forest_card = json.loads(compiled.with_suffix(".json").read_text())
    forest_card["serving"] = {"runtime": "scikit-learn", "reason": "the bench's comparison"}
    plain.with_suffix(".json").write_text(json.dumps(forest_card))
    return compiled, plain


def alternating(
    servers: dict, path: str, seconds: int, connections: int, body: str, rounds: int, load: dict
):
    """Throughput of each server, measured in turns (a, b, b, a, a, b, ...) so that a change in
    the machine's load during the run weighs on all of them alike, on fresh servers each round:
    a server's speed stays 1-3% off another's of the same code for as long as it runs (where its
    memory landed), which as many servers per side average out. `servers` maps each name to a
    function starting its server (a context manager yielding it). `load`: wrk's CPUs and threads."""
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    for round_ in range(rounds):
        with ExitStack() as stack:
            urls = {
                name: stack.enter_context(start()).url + path for name, start in servers.items()
            }
            for url in urls.values():  # each worker's first requests (its caches, its session)
                wrk.run(url, 1, connections, method="POST", body=body, **load)
                time.sleep(SETTLE)
            order = list(urls) if round_ % 2 == 0 else list(reversed(urls))
            for name in order:
                runs[name].append(
                    wrk.run(urls[name], seconds, connections, method="POST", body=body, **load)
                )
                time.sleep(SETTLE)
    results = {}
    for name, totals in runs.items():
        results[name] = {
            "rps": sum(t["requests"] for t in totals)
            / (sum(t["duration_us"] for t in totals) / 1e6),
            "p50_ms": statistics.median(t["p50_us"] for t in totals) / 1000,
            "p99_ms": statistics.median(t["p99_us"] for t in totals) / 1000,
            "errors": sum(t["non_2xx"] + sum(t[key] for key in wrk.SOCKET_ERRORS) for t in totals),
        }
    return results


@contextmanager
def uvicorn_server(env: dict[str, str], workers: int):
    """uvicorn serving bench_apps:peer on a free loopback port, as FastAPI's docs run it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", "bench_apps:peer", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http("GET", f"{base}/readyz", timeout=2).status == 200,
            timeout=60,
            interval=0.2,
            what="uvicorn to be ready",
            retry_on=(OSError,),
        )
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _cpu_list(cpus: set[int]) -> str:
    return ", ".join(map(str, sorted(cpus)))


def batch_csv(rows: int) -> bytes:
    X, _ = load_training_data()
    rng = np.random.default_rng(0)
    sample = X.sample(rows, replace=True, random_state=0) * rng.uniform(0.95, 1.05, (rows, 1))
    buffer = io.StringIO()
    # Still valid after the jitter: each value kept inside its feature's range.
    for feature in CONTRACT.features:
        column = sample[feature.name].clip(feature.min, feature.max)
        sample[feature.name] = column.round() if feature.integer else column
    sample[CONTRACT.feature_names].round(5).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def time_batch(base: str, body: bytes, repeats: int = 3) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        reply = http(
            "POST",
            f"{base}/api/v1/predict",
            body=body,
            headers={"Content-Type": "text/csv"},
            timeout=120,
        )
        timings.append(time.perf_counter() - started)
        if reply.status != 200:
            raise SystemExit(f"bench: the CSV batch answered {reply.status}: {reply.body[:200]!r}")
    return statistics.median(timings)


def answers_query(base: str) -> str | None:
    """A typical ranked-answers query, when the service has the answers example."""
    try:
        questions = http("GET", f"{base}/api/v1/questions", timeout=5).json()["questions"]
    except (OSError, KeyError, ValueError):
        return None
    return f"/api/v1/answers?question={questions[0]['id']}&weight=0.5&k=10"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    split = split_cpus()
    if split:
        load_cpus, server_cpus = split
        os.sched_setaffinity(0, server_cpus)  # inherited by every server started from here
        load = {"threads": len(load_cpus), "cpus": load_cpus}
        placement = (
            f"wrk on CPU {_cpu_list(load_cpus)}, the servers on CPU {_cpu_list(server_cpus)}"
        )
    else:
        load = {"threads": 2}
        placement = "wrk and the servers on the same CPUs"

    card = json.loads((ROOT / "models" / "model.json").read_text())
    row = json.dumps(next(iter(card["examples"].values())))
    env = {"MAX_ROWS": "100000", "MAX_BODY_BYTES": str(64 * 1024 * 1024), "LOG_LEVEL": "WARNING"}
    apps_env = {**env, "PYTHONPATH": str(ROOT / "scripts")}  # bench_apps lives beside this file
    # Telemetry off: no line per request (WARNING) and no metrics (no METRICS_TOKEN).
    results = {}
    # On, as on the platforms: a JSON line per request (written to the server's log file) and
    # the metrics counted in prometheus_client's files.
    observed_env = {
        **env,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
    }
    # The same gunicorn.conf.py settings (WEB_CONCURRENCY workers) for every app.
    server = {"workers": None}
    turn = max(args.seconds // 2, 1)

    def side_by_side(servers: dict) -> dict[str, dict]:
        return alternating(servers, "/api/v1/predict", turn, args.connections, row, ROUNDS, load)

    measured = side_by_side(
        {
            "off": lambda: gunicorn_server(env, **server),
            "on": lambda: gunicorn_server(observed_env, **server),
            "ceiling": lambda: gunicorn_server(apps_env, app="bench_apps:ceiling", **server),
        }
    )
    results["(a) mlservice: POST /api/v1/predict, one JSON row"] = measured["off"]
    results["(h) (a) with telemetry on: a JSON log line + metrics"] = measured["on"]
    results["(b) ceiling: constant JSON, same gunicorn"] = measured["ceiling"]
    with gunicorn_server(env, **server) as service:
        base = service.url
        if query := answers_query(base):
            results[f"(d) mlservice: GET {query.split('?')[0]}, k=10"] = throughput(
                base + query, args.seconds, args.connections, load
            )
        batch_seconds = time_batch(base, batch_csv(100_000))
    workers = int(os.environ.get("WEB_CONCURRENCY", default_workers(usable_cpus())))
    with tempfile.TemporaryDirectory() as folder:
        peer_env = {**apps_env, "BENCH_PEER_MODEL": str(ROOT / "models" / "model.skops")}
        with uvicorn_server(peer_env, workers) as peer:
            results["(e) peer: the same model, FastAPI + uvicorn, scikit-learn per request"] = (
                throughput(f"{peer}/api/v1/predict", args.seconds, args.connections, load, row)
            )
        compiled, plain = forest_models(Path(folder), card)
        forests = side_by_side(
            {
                "onnx": lambda: gunicorn_server({**env, "MODEL_PATH": str(compiled)}, **server),
                "sklearn": lambda: gunicorn_server({**env, "MODEL_PATH": str(plain)}, **server),
            }
        )
        results["(f) random forest, ONNX: mlservice, one JSON row"] = forests["onnx"]
        results["(g) random forest, scikit-learn: mlservice, one JSON row"] = forests["sklearn"]
        baseline_pickles(Path(folder))
        baseline_env = {**apps_env, "BASELINE_DIR": folder}
        with gunicorn_server(baseline_env, app="bench_apps:baseline", **server) as baseline:
            results["(c) original design: pickled scaler + forest, DataFrame per request"] = (
                throughput(
                    f"{baseline.url}/api/v1/predict", args.seconds, args.connections, load, row
                )
            )

    a, b, c, e, f, g, h = (
        next(v for k, v in results.items() if k.startswith(p))
        for p in ["(a", "(b", "(c", "(e", "(f", "(g", "(h"]
    )
    errors = sum(r["errors"] for r in results.values())
    checks = [
        ("(a) >= 85% of (b) requests/s", a["rps"] / b["rps"], a["rps"] >= 0.85 * b["rps"]),
        ("(f) >= 10x (g) requests/s", f["rps"] / g["rps"], f["rps"] >= 10 * g["rps"]),
        ("(a) >= 10x (c) requests/s", a["rps"] / c["rps"], a["rps"] >= 10 * c["rps"]),
        ("(a) / (e), the peer (no target)", a["rps"] / e["rps"], True),
        ("(h) >= 95% of (a) requests/s", h["rps"] / a["rps"], h["rps"] >= 0.95 * a["rps"]),
        ("100,000-row CSV batch < 0.4 s", batch_seconds, batch_seconds < 0.4),
        ("no errors in any scenario", errors, errors == 0),
    ]
    command = (
        ""
        if args.seconds == parser.get_default("seconds")
        else f" (`scripts/bench.py --seconds {args.seconds}`)"
    )
    lines = [
        f"wrk -t{load['threads']} -c{args.connections} -d{args.seconds}s on 127.0.0.1{command}, "
        f"gunicorn.conf.py with {workers} workers, {os.cpu_count()} CPU cores ({placement}), "
        f"Python {sys.version.split()[0]}. "
        f"(a), (h) and (b), and (f) and (g): servers side by side, measured in {ROUNDS} "
        f"alternating turns of {turn} s each, on fresh servers each round.",
        "",
        "| scenario | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
            for name, r in results.items()
        ),
        "",
        f"100,000-row CSV batch (POST text/csv, median of 3): {batch_seconds:.2f} s",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
        *(f"| {name} | {value:.2f} | {'yes' if ok else 'NO'} |" for name, value, ok in checks),
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        text = DOC.read_text()
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{START}\n{table}\n{END}{tail}")
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
