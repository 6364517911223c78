"""`make soak`: hold the production server under load and check it stays healthy and flat.

Starts gunicorn with gunicorn.conf.py on loopback (scripts/live_server.py), warms it up, records
each worker's resident memory (RSS), drives POST /api/v1/predict with wrk (scripts/wrk.lua,
one JSON row per request) and records RSS again. Prints a Markdown table for
docs/performance.md and exits 1 if a budget is missed: any non-2xx response, any socket
error, a worker replaced during the run, or a worker's RSS more than 10% above its start.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import wrk  # noqa: E402 (scripts/wrk.py, beside this file)
from live_server import gunicorn_server, rss_kib  # noqa: E402

CARD = ROOT / "models" / "model.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5, help="seconds of load before measuring")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1)
    parser.add_argument("--rss-growth", type=float, default=0.10, help="allowed, as a fraction")
    args = parser.parse_args()

    body = json.dumps(next(iter(json.loads(CARD.read_text())["examples"].values())))

    def load(url: str, seconds: int) -> dict[str, int]:
        return wrk.run(f"{url}/api/v1/predict", seconds, args.connections, args.threads, body=body)

    with gunicorn_server(workers=args.workers) as server:
        # First requests import lazily loaded code in each worker; measure from after that.
        load(server.url, args.warmup)
        workers = sorted(server.worker_pids())
        rss_start = {pid: rss_kib(pid) for pid in workers}
        result = load(server.url, args.seconds)
        time.sleep(1)
        workers_after = sorted(server.worker_pids())
        rss_end = {pid: rss_kib(pid) for pid in workers_after if pid in rss_start}

    socket_errors = sum(result[key] for key in wrk.SOCKET_ERRORS)
    seconds = result["duration_us"] / 1e6
    print(
        f"Soak: {args.seconds} s, {args.connections} connections, {args.threads} wrk threads, "
        f"{args.workers} gunicorn workers, POST /api/v1/predict with one JSON row.\n"
    )
    print("| Measure | Value |")
    print("|---|---|")
    print(f"| Requests | {result['requests']:,} ({result['requests'] / seconds:,.0f}/s) |")
    print(
        f"| Latency p50 / p99 / max | {result['p50_us'] / 1000:.1f} / "
        f"{result['p99_us'] / 1000:.1f} / {result['max_us'] / 1000:.1f} ms |"
    )
    print(f"| Non-2xx responses | {result['non_2xx']} |")
    print(f"| Socket errors (connect, read, write, timeout) | {socket_errors} |")
    for pid in workers:
        if pid in rss_end:
            growth = rss_end[pid] / rss_start[pid] - 1
            print(
                f"| Worker {pid} RSS start → end | {rss_start[pid] / 1024:.1f} → "
                f"{rss_end[pid] / 1024:.1f} MiB ({growth:+.1%}) |"
            )

    failures = []
    if result["non_2xx"]:
        failures.append(f"{result['non_2xx']} non-2xx responses")
    if socket_errors:
        failures.append(f"{socket_errors} socket errors")
    if workers_after != workers:
        failures.append(f"workers changed during the run: {workers} → {workers_after}")
    for pid, end in rss_end.items():
        if end > rss_start[pid] * (1 + args.rss_growth):
            failures.append(f"worker {pid} RSS grew more than {args.rss_growth:.0%}")
    for failure in failures:
        print(f"soak: FAILED: {failure}", file=sys.stderr)
    if not failures:
        print("\nsoak: all budgets met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
