"""`make bench` keeps wrk on CPUs of its own, apart from the servers it measures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench
import wrk

# The real one: the tests below replace subprocess.run for the whole process (wrk.subprocess is
# this same module).
REAL_RUN = subprocess.run


@pytest.fixture
def machine(monkeypatch):
    """Set the CPUs this process may use, their cores (each CPU its own by default) and the CPU
    quota (none by default)."""

    def set_machine(affinity, cores=None, quota_cpus=None):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(affinity))
        monkeypatch.setattr(bench, "core_of", lambda cpu: (cores or {}).get(cpu, str(cpu)))
        monkeypatch.setattr(bench, "usable_cpus", lambda: quota_cpus or len(affinity))

    return set_machine


@pytest.mark.parametrize(
    ("affinity", "load", "servers"),
    [
        ({0, 1}, {1}, {0}),
        ({0, 1, 2}, {2}, {0, 1}),
        ({0, 1, 2, 3}, {2, 3}, {0, 1}),
        (set(range(8)), {5, 6, 7}, {0, 1, 2, 3, 4}),
        ({3, 5, 9, 12}, {9, 12}, {3, 5}),  # the CPUs the process may use, not 0..n-1
    ],
)
def test_wrk_gets_a_third_of_the_cpus_and_at_least_one(machine, affinity, load, servers):
    machine(affinity)
    assert bench.split_cpus() == (load, servers)


def test_wrk_gets_whole_cores(machine):
    # Linux numbers a core's two hyperthreads apart: cores (0, 2) and (1, 3).
    machine({0, 1, 2, 3}, cores={0: "0,2", 2: "0,2", 1: "1,3", 3: "1,3"})
    assert bench.split_cpus() == ({1, 3}, {0, 2})


def test_one_core_is_split_between_its_hyperthreads(machine):
    machine({0, 1}, cores={0: "0-1", 1: "0-1"})
    assert bench.split_cpus() == ({1}, {0})


def test_wrk_stays_beside_the_servers_where_it_cannot_be_kept_apart(machine, monkeypatch):
    machine({4})  # one CPU
    assert bench.split_cpus() is None
    machine({0, 1, 2, 3}, quota_cpus=2)  # a quota both would share
    assert bench.split_cpus() is None
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS
    assert bench.split_cpus() is None


def test_a_cpu_linux_does_not_describe_is_a_core_of_its_own():
    assert bench.core_of(99_999) == "99999"


def _captured_wrk_run(monkeypatch, **options) -> dict:
    """wrk.run with the wrk process replaced: the arguments it would have been started with."""
    calls = []

    def fake_run(command, **kwargs):
        calls.append({"command": command, **kwargs})
        result = "RESULT requests=1 duration_us=1 non_2xx=0 connect=0 read=0 write=0 timeout=0"
        return subprocess.CompletedProcess(
            command, 0, stdout=result + " p50_us=1 p99_us=1 max_us=1\n"
        )

    monkeypatch.setattr(wrk.shutil, "which", lambda name: "/usr/bin/wrk")
    monkeypatch.setattr(wrk.subprocess, "run", fake_run)
    wrk.run("http://127.0.0.1:1/", 1, 1, **options)
    (call,) = calls
    return call


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and two CPUs, so that wrk's differs from this process's",
)
def test_wrk_starts_on_the_cpus_it_is_given(monkeypatch):
    cpu = min(os.sched_getaffinity(0))
    call = _captured_wrk_run(monkeypatch, threads=1, cpus={cpu})
    assert "-t1" in call["command"]
    # The start-up hook wrk.run gives, run in a real child process.
    child = REAL_RUN(
        [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
        preexec_fn=call["preexec_fn"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == f"[{cpu}]"


def test_wrk_without_cpus_keeps_the_callers(monkeypatch):
    assert _captured_wrk_run(monkeypatch)["preexec_fn"] is None
