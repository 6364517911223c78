"""`make memory`: the server's memory at rest and while both workers parse maximal request bodies.

Starts the production server (gunicorn with gunicorn.conf.py, 2 workers, as app.yaml runs it on an
App Engine F1 instance with 384 MB) on loopback. It prints the resting PSS of the whole server (the
sum of Pss in /proc/PID/smaps_rollup over the master and its workers: shared pages are split
between the processes, so the sum is what the server costs the machine), then, for each body shape,
sends two such bodies at once, one per worker, samples the PSS every few milliseconds while they
run and prints the peak. Each body is as large as the body limit (MAX_BODY_BYTES) allows.
Exits 1 when a peak is over the budget.
"""

import argparse
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from live_server import gunicorn_server  # noqa: E402

from mlservice.config import from_environ  # noqa: E402
from mlservice.contract import CONTRACT  # noqa: E402

FEATURE_NAMES = CONTRACT.feature_names

BUDGET_MIB = 128  # a third of the 384 MB of an F1 instance, leaving room for the runtime
WORKERS = 2


def pss_kib(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            pass  # a worker that just ended
    return total


def repeated(head: str, item: str, tail: str, limit: int, separator: str = ",") -> bytes:
    """head + item, item, ... + tail, as many items as fit in `limit` bytes."""
    count = max(1, (limit - len(head) - len(tail)) // (len(item) + len(separator)))
    return (head + separator.join([item] * count) + tail).encode()


def typical_values() -> list[str]:
    """A valid value per feature, written with six decimals as measurements often are."""
    middles = [(feature, (feature.min + feature.max) / 2) for feature in CONTRACT.features]
    return [str(round(m)) if f.integer else f"{m:.6f}" for f, m in middles]


def bodies(limit: int, max_rows: int) -> dict[str, tuple[str, bytes]]:
    """Each shape as large as the body limit allows, and the largest valid batches."""
    values = typical_values()
    row = "{" + ",".join(f'"{n}":{v}' for n, v in zip(FEATURE_NAMES, values, strict=True)) + "}"
    csv_row = ",".join(values)
    depth = limit // 2 - 1
    valid_json = '{"instances":[' + ",".join([row] * max_rows) + "]}"
    valid_csv = ",".join(FEATURE_NAMES) + "\n" + "\n".join([csv_row] * max_rows) + "\n"
    return {
        f"JSON {max_rows} rows (valid)": ("application/json", valid_json.encode()),
        f"CSV {max_rows} rows (valid)": ("text/csv", valid_csv.encode()),
        "JSON rows, over the limit": (
            "application/json",
            repeated('{"instances":[', row, "]}", limit),
        ),
        "JSON empty objects": ("application/json", repeated('{"instances":[', "{}", "]}", limit)),
        "CSV rows, over the limit": (
            "text/csv",
            repeated(",".join(FEATURE_NAMES) + "\n", csv_row, "\n", limit, "\n"),
        ),
        "JSON flat array of numbers": (
            "application/json",
            repeated('{"instances":[', "1.5", "]}", limit),
        ),
        "JSON empty arrays": ("application/json", repeated('{"instances":[', "[]", "]}", limit)),
        "JSON one long string": (
            "application/json",
            ('{"instances":"' + "x" * (limit - 20) + '"}').encode(),
        ),
        "JSON deep nesting": ("application/json", ("[" * depth + "]" * depth).encode()),
    }


def post(url: str, media_type: str, body: bytes, statuses: list) -> None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": media_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            statuses.append(response.status)
    except urllib.error.HTTPError as error:
        statuses.append(error.code)
    except OSError as error:
        statuses.append(type(error).__name__)


def warm_up(url: str) -> None:
    """A few one-row predictions, so both workers have served a request before measuring."""
    values = typical_values()
    row = (
        "{" + ",".join(f'"{n}":{v}' for n, v in zip(FEATURE_NAMES, values, strict=True)) + "}"
    ).encode()
    statuses: list = []
    work = [
        threading.Thread(target=post, args=(url, "application/json", row, statuses))
        for _ in range(4 * WORKERS)
    ]
    for thread in work:
        thread.start()
    for thread in work:
        thread.join()
    time.sleep(0.5)


def peak_while(pids: Callable[[], set[int]], work: list[threading.Thread]) -> int:
    for thread in work:
        thread.start()
    peak = 0
    while any(thread.is_alive() for thread in work):
        peak = max(peak, pss_kib(pids()))
        time.sleep(0.005)
    for thread in work:
        thread.join()
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=BUDGET_MIB, help="peak PSS budget, MiB")
    parser.add_argument("--only", default="", help="measure only shapes whose name has this text")
    args = parser.parse_args()
    env = {"LOG_LEVEL": "WARNING"}
    settings = from_environ({**os.environ, **env})
    limit, max_rows = settings["MAX_CONTENT_LENGTH"], settings["MAX_ROWS"]
    print(f"gunicorn, {WORKERS} workers, body limit {limit:,} bytes; a fresh server per row")
    print(f"{'':28} {'rest MiB':>9} {'peak MiB':>9}  statuses")
    worst = 0
    for name, (media_type, body) in bodies(limit, max_rows).items():
        if args.only not in name:
            continue
        # A fresh server per shape: memory a worker once took is not all given back, so a
        # shared server would carry one shape's peak into the next one's numbers.
        with gunicorn_server(env=env, workers=WORKERS) as server:
            url = f"{server.url}/api/v1/predict"

            def pids(server=server) -> set[int]:
                return {server.pid, *server.worker_pids()}

            warm_up(url)
            resting = pss_kib(pids())
            statuses: list = []
            work = [
                threading.Thread(target=post, args=(url, media_type, body, statuses))
                for _ in range(WORKERS)
            ]
            peak = peak_while(pids, work)
        worst = max(worst, peak)
        print(
            f"{name:28} {resting / 1024:9.1f} {peak / 1024:9.1f}  {', '.join(map(str, statuses))}"
        )
    met = worst / 1024 <= args.budget
    print(
        f"highest peak {worst / 1024:.1f} MiB; budget {args.budget:.0f} MiB: {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
