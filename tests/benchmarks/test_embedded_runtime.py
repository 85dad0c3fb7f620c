"""Benchmark: the embedded LocalStack and its ``process`` Lambda executor.

Prints start → healthy, cold and warm invoke latency of a function that imports boto3 beside a
no-op function invoked the same way in the same run (the floor), LocalStack's own CPU time per
warm no-op invoke (what bounds throughput on a small machine: every invoke, direct, through API
Gateway or a mapping, runs inside its one process), and peak RSS of LocalStack and of one function
process. Targets (2-core machine): healthy ≤ 3 s once installed, warm invoke median
≤ 25 ms, cold ≤ 0.5 s. Figures are printed, never asserted: these machines are noisy.
"""

from __future__ import annotations

import shutil
import statistics
import time
from typing import Any

import psutil

from lambdamesh.emulator.install import ensure_emulator_installed
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import EmbeddedLocalStack
from tests.conftest import free_port
from tests.e2e.lambda_support import create_function, invoke

NOOP = """
    def handler(event, context):
        return None
"""

WITH_BOTO3 = """
    import os
    import boto3

    session = boto3.session.Session()

    def handler(event, context):
        return {"pid": os.getpid(), "region": session.region_name}
"""

WARM_SAMPLES = 50
CPU_SAMPLES = 500
COLD_SAMPLES = 5
STARTS = 3


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _timed_invoke_ms(lambda_client: Any, name: str) -> float:
    started = time.perf_counter()
    _, error = invoke(lambda_client, name)
    elapsed = (time.perf_counter() - started) * 1000
    assert error is None
    return elapsed


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _report(label: str, samples: list[float], floor: list[float] | None = None) -> None:
    median, p90 = statistics.median(samples), _percentile(samples, 0.9)
    line = f"  {label:<34} median {median:8.1f} ms   p90 {p90:8.1f} ms   n={len(samples)}"
    if floor:
        line += f"   x{median / statistics.median(floor):.2f} of floor"
    print(line)


def test_start_to_healthy() -> None:
    paths = ProjectPaths.discover()
    ensure_emulator_installed(paths)
    timings = []
    for _ in range(STARTS):
        port = free_port()
        run_dir = paths.test_runs / f"bench-{port}"
        shutil.rmtree(run_dir, ignore_errors=True)
        embedded = EmbeddedLocalStack(port, run_dir, paths=paths)
        started = time.perf_counter()
        try:
            embedded.start()
            timings.append(time.perf_counter() - started)
        finally:
            embedded.stop()
            shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\n[embedded runtime] start → healthy over {STARTS} starts (target ≤ 3 s)")
    print(f"  median {statistics.median(timings):.2f} s   min {min(timings):.2f} s   "
          f"max {max(timings):.2f} s")  # fmt: skip


def test_invoke_latency_and_memory(emulator: Any) -> None:
    lambda_client = emulator.client("lambda")
    cold = {"no-op (floor)": [], "imports boto3": []}  # type: dict[str, list[float]]
    names = {}
    for label, source in (("no-op (floor)", NOOP), ("imports boto3", WITH_BOTO3)):
        for _ in range(COLD_SAMPLES):
            name = create_function(lambda_client, source)
            cold[label].append(_timed_invoke_ms(lambda_client, name))
        names[label] = name
    warm = {
        label: [_timed_invoke_ms(lambda_client, name) for _ in range(WARM_SAMPLES)]
        for label, name in names.items()
    }
    floor_cold, floor_warm = cold["no-op (floor)"], warm["no-op (floor)"]
    print("\n[embedded runtime] invoke latency, client → LocalStack → function process → client")
    print(" cold (first invoke of a new function; target ≤ 500 ms)")
    for label, samples in cold.items():
        _report(label, samples, floor_cold)
    print(f" warm ({WARM_SAMPLES} sequential invokes; target median ≤ 25 ms)")
    for label, samples in warm.items():
        _report(label, samples, floor_warm)

    if emulator.pid is not None:
        runtime = psutil.Process(emulator.pid)
        before = runtime.cpu_times()
        for _ in range(CPU_SAMPLES):
            invoke(lambda_client, names["no-op (floor)"])
        after = runtime.cpu_times()
        cpu_ms = (after.user + after.system - before.user - before.system) / CPU_SAMPLES * 1000
        print(f"[embedded runtime] LocalStack CPU per warm no-op invoke ({CPU_SAMPLES} sequential)")
        print(f"  {cpu_ms:.2f} ms")

    payload, _ = invoke(lambda_client, names["imports boto3"])
    print("[embedded runtime] peak RSS")
    if emulator.pid is not None:
        print(f"  LocalStack                         {_peak_rss_mb(emulator.pid):8.1f} MB")
    print(f"  one function process (boto3)       {_peak_rss_mb(payload['pid']):8.1f} MB")
