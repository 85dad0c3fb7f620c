"""Benchmark: every function's CPU per invocation, and what it is spent on.

Every service deployed on its own embedded LocalStack; every function made cold (a change of
its configuration, as a deploy makes); then ``ORDERS`` orders through the whole saga from
``THREADS`` threads, one warm-up order first. Meanwhile:

- each function process is found among LocalStack's descendants (its function name read from
  its environment or, for a forked environment, whose ``/proc`` environment is its forking
  process's, from its working directory: the package LocalStack unzipped for the function,
  ``<function>-<uuid>/code``) and its CPU time read from ``/proc`` until it is last seen: a
  process that started during the run is a cold start and counts from zero;
- ``py-spy`` samples LocalStack and every function process 100 times a second without stopping
  them (``--nonblocking``); each function stack is put down to one kind of work
  (:mod:`tests.benchmarks.function_profile`: importing at a cold start, pydantic validation, the
  AWS SDK and HTTP, logging, JSON, Powertools' tracing and metrics, the runtime, the services'
  own code);
- each function's invocations are its ``REPORT`` lines in CloudWatch Logs during the run, and
  its cold starts' ``Init Duration`` (wall time) is read from them.

Printed per function: invocations, CPU per invocation split by kind of work (the measured CPU
shared out in proportion to the samples; py-spy counts a thread that is not waiting, so on a
saturated machine one ready to run but not running counts too: the split is approximate, the
CPU is ``/proc``'s), cold starts and the CPU each cost once (imports, at
start-up or at a module's first use, and making the AWS clients); then the whole system's
function CPU per order by kind. ``LAMBDAMESH_BENCH_PROFILE_ORDERS`` sets ``ORDERS``
(default 100). Figures are printed, never asserted. Run with ``-s``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from lambdamesh.chaos.observation import restock
from lambdamesh.load.coldstart import make_cold
from tests.benchmarks.function_profile import functions_cpu, profile_lines, samples_by_process
from tests.benchmarks.test_saga_throughput import (
    PRODUCT,
    THREADS,
    Done,
    _confirmed,
    new_user_id,
    post_order,
    seen_done,
)
from tests.conftest import RunningEmulator
from tests.e2e.conftest import DeployedSystem, deploy_system

ORDERS = int(os.environ.get("LAMBDAMESH_BENCH_PROFILE_ORDERS", "100"))
SAMPLES_PER_SECOND = 100
SCAN_INTERVAL_S = 0.2
FUNCTION_NAME_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"
INIT_DURATION = re.compile(r"Init Duration: ([0-9.]+) ms")
PACKAGE_DIRECTORY = re.compile(r"(?P<function>.+)-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def function_name(process: psutil.Process) -> str | None:
    """The function a process of LocalStack's runs, if it runs one (see the module's text)."""
    name = process.environ().get(FUNCTION_NAME_VARIABLE)
    if name is not None:
        return name
    package = Path(process.cwd())
    found = PACKAGE_DIRECTORY.fullmatch(package.parent.name) if package.name == "code" else None
    return found["function"] if found else None


@pytest.fixture(scope="module")
def system(emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> DeployedSystem:
    """Every service deployed (reused as is when the stacks are current)."""
    return deploy_system(emulator, tmp_path_factory.mktemp("bench-function-cpu-deploy"))


class FunctionProcesses:
    """LocalStack's function processes over a run: function name and CPU seconds by pid."""

    def __init__(self, emulator_pid: int) -> None:
        self._emulator = psutil.Process(emulator_pid)
        self.names: dict[int, str] = {}
        self.before: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.started: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="function-watch", daemon=True)

    def _scan(self, first: bool) -> None:
        for child in self._emulator.children(recursive=True):
            try:
                if child.pid not in self.names:
                    name = function_name(child)
                    if name is None:
                        continue
                    self.names[child.pid] = name
                    if not first:
                        self.started.add(child.pid)
                times = child.cpu_times()
            except psutil.Error:  # gone meanwhile: its last reading stands
                continue
            cpu = times.user + times.system
            if first:
                self.before[child.pid] = cpu
            self.last[child.pid] = cpu

    def _watch(self) -> None:
        while not self._stop.wait(SCAN_INTERVAL_S):
            self._scan(first=False)

    def start(self) -> None:
        self._scan(first=True)
        self._thread.start()

    def stop(self) -> dict[int, float]:
        """Stop watching; CPU seconds each process spent during the run."""
        self._stop.set()
        self._thread.join()
        self._scan(first=False)
        return {pid: cpu - self.before.get(pid, 0.0) for pid, cpu in self.last.items()}


@contextmanager
def sampled(emulator_pid: int, output: Path) -> Iterator[list[str]]:
    """py-spy sampling LocalStack and its children until the block ends; yields what went wrong
    (empty when the samples are in ``output``)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    problems: list[str] = []
    command = [
        py_spy, "record", "--pid", str(emulator_pid), "--subprocesses", "--nonblocking",
        "--rate", str(SAMPLES_PER_SECOND), "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    recorder = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(1.0)  # attached, or refused
    try:
        yield problems
    finally:
        recorder.send_signal(signal.SIGINT)
        said, _ = recorder.communicate(timeout=120)
        if not output.exists():
            problems.append(f"py-spy wrote no samples (exit {recorder.returncode}): {said[-400:]}")


@dataclass(frozen=True)
class Reports:
    """A function's ``REPORT`` lines in a run: one per invocation, ``Init Duration`` at a cold
    start (wall time: what the import took as the function saw it)."""

    invocations: int
    init_ms: tuple[float, ...]


def reports_since(logs: Any, names: Iterable[str], since_ms: int) -> dict[str, Reports]:
    """Each function's ``REPORT`` lines since ``since_ms`` (read whole: the filter pattern is
    not LocalStack's to apply)."""
    reports: dict[str, Reports] = {}
    for name in names:
        invocations, init_ms = 0, []
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=f"/aws/lambda/{name}", startTime=since_ms
        )
        try:
            for page in pages:
                for event in page.get("events", []):
                    message = event.get("message", "")
                    if not message.startswith("REPORT RequestId"):
                        continue
                    invocations += 1
                    if init := INIT_DURATION.search(message):
                        init_ms.append(float(init.group(1)))
        except logs.exceptions.ResourceNotFoundException:
            pass
        reports[name] = Reports(invocations, tuple(init_ms))
    return reports


@pytest.mark.timeout(1800)
def test_function_cpu_per_invocation_by_kind_of_work(
    emulator: RunningEmulator,
    system: DeployedSystem,
    tmp_path: Path,
) -> None:
    if emulator.pid is None:
        pytest.skip("function processes are read from /proc: an embedded LocalStack only")
    # GIVEN every service deployed, every function made cold, stock for every order
    dynamodb, logs = emulator.client("dynamodb"), emulator.client("logs")
    labels = {
        name: f"{service.name}/{logical}"
        for service in system.services.values()
        for logical, name in service.functions.items()
    }
    restock(dynamodb, system["inventory"].outputs["StockTableName"], [PRODUCT], ORDERS + 1)
    user_id = new_user_id(system)
    make_cold(emulator.client("lambda"), sorted(labels), lambda line: None)
    url = system["orders"].url("orders")
    confirmed = Done(system["orders"].outputs["OrdersTableName"], "status", _confirmed, "confirmed")
    processes = FunctionProcesses(emulator.pid)
    samples_file = tmp_path / "samples.txt"
    since_ms = int(time.time() * 1000)

    # WHEN the orders go through while the processes are watched and sampled
    processes.start()
    with sampled(emulator.pid, samples_file) as problems:
        warm = post_order(url, user_id)
        seen_done(dynamodb, confirmed, [warm.order_id])
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            placed = list(pool.map(lambda _: post_order(url, user_id), range(ORDERS)))
        seen_done(dynamodb, confirmed, [order.order_id for order in placed])
    cpu_s = processes.stop()
    time.sleep(2.0)  # the last invocations' logs are shipped in batches
    reports = reports_since(logs, labels, since_ms)

    # THEN the figures are printed (never asserted)
    samples = {} if problems else samples_by_process(samples_file.read_text().splitlines())
    names = {pid: labels.get(name, name) for pid, name in processes.names.items()}
    per_label = {labels[name]: report.invocations for name, report in reports.items()}
    functions = functions_cpu(names, cpu_s, per_label, samples, processes.started)
    sampled_functions = sum(1 for function in functions if function.samples)
    print(f"\n[function CPU] {ORDERS + 1} orders from {THREADS} threads, every function cold "
          f"first; {len(functions)} functions ran, {sampled_functions} sampled")  # fmt: skip
    for problem in problems:
        print(f"  no split by kind of work: {problem}")
    print("\n".join(profile_lines(functions, ORDERS + 1)))
    print("  Init Duration of the cold starts (REPORT lines; wall time, under the run's load):")
    for name, report in sorted(reports.items(), key=lambda item: labels[item[0]]):
        if report.init_ms:
            print(f"    {labels[name]:<40} {len(report.init_ms):>3} cold starts, "
                  f"p50 {statistics.median(report.init_ms):6.0f} ms")  # fmt: skip
