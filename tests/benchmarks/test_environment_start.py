"""Benchmark: the CPU an execution environment of each service takes to start.

Every service's deployment package (built as a deploy builds it, or reused from its cache) is
unzipped and started ``STARTS`` times, one start at a time, in three ways the embedded executor
knows: as a new interpreter (``LAMBDAMESH_FORKED_ENVIRONMENTS=0``), forked from the process
that imported the runtime's boto3 only, and forked from the one that also imported the
package's own pydantic (``function_forks.py``, what the executor picks for these packages). A
start is the environment's process from its first instruction (or its fork) to its ``ready``:
the bootstrap, the handler module's imports, Chalice's app; the CPU is the process's own
(``/proc/<pid>/schedstat``), nothing else running. The floor: a package of one no-op handler,
forked, same run. Figures are printed, never asserted: these machines are noisy.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from lambdamesh.deploy.packaging import package_app
from lambdamesh.deploy.services import discover_apps
from lambdamesh.emulator.install import ensure_emulator_installed
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh_localstack.function_bootstrap import RESULT_FD_ENV
from lambdamesh_localstack.function_forks import Forks, package_libraries
from lambdamesh_localstack.function_zygote import BOOTSTRAP

STARTS = int(os.environ.get("LAMBDAMESH_BENCH_STARTS", "15"))
NOOP = "def handler(event, context):\n    return None\n"

Start = Callable[[dict[str, str], int, int], int]
"""Starts an environment (variables, output, result pipe's write end); its process id."""


def cpu_ms(pid: int) -> float:
    """The CPU the process has used, from the scheduler's nanoseconds."""
    with open(f"/proc/{pid}/schedstat") as schedstat:
        return int(schedstat.read().split()[0]) / 1e6


def started_cpu_ms(start: Start, env: dict[str, str], output: int) -> float:
    """Start one environment, wait for its ``ready``, read its CPU, end it."""
    read_end, write_end = os.pipe()
    try:
        pid = start(env, output, write_end)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as results:
        ready = json.loads(results.readline())
        assert ready.get("init_error") is None, ready
        spent = cpu_ms(pid)
    os.kill(pid, 9)
    return spent


def new_interpreter(task_root: str) -> Start:
    processes: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], output: int, results: int) -> int:
        process = subprocess.Popen(  # the executor's own command for an environment
            [sys.executable, "-I", "-S", str(BOOTSTRAP)],
            env={**env, RESULT_FD_ENV: str(results)},
            cwd=task_root,
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=output,
            pass_fds=(results,),
        )
        processes.append(process)
        return process.pid

    return start


def forked(forks: Forks, task_root: str) -> Start:
    def start(env: dict[str, str], output: int, results: int) -> int:
        return forks.spawn(env, task_root, output, results).pid

    return start


def environment(task_root: Path, runtime: Path, handler: str, work: Path) -> dict[str, str]:
    return {
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(runtime),
        "_HANDLER": handler,
        "LAMBDAMESH_LOG_FILE": str(work / "function.log"),
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    }


def median_starts(start: Start, env: dict[str, str], output: int) -> float:
    started_cpu_ms(start, env, output)  # the first: files read into the page cache
    return statistics.median(started_cpu_ms(start, env, output) for _ in range(STARTS))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every service's package, unzipped."""
    paths = ProjectPaths.discover()
    unzipped = {}
    for app in discover_apps(paths.root / "functions"):
        package = package_app(app, paths.root / ".lambdamesh" / "deploy" / "packages", "us-east-1")
        target = tmp_path_factory.mktemp(f"package-{app.name}")
        with zipfile.ZipFile(package.package_file) as archive:
            archive.extractall(target)
        unzipped[app.name] = target
    return unzipped


def test_environment_start_cpu_by_service(packages: dict[str, Path], tmp_path: Path) -> None:
    # GIVEN the runtime's library directory, a no-op package, and every service's package
    paths = ProjectPaths.discover()
    ensure_emulator_installed(paths)
    runtime = paths.lambda_runtime
    noop = tmp_path / "noop"
    noop.mkdir()
    (noop / "app.py").write_text(NOOP)
    plain = Forks(sys.executable, str(runtime))
    output = os.open(tmp_path / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    rows: list[tuple[str, float, float, float | None]] = []
    try:
        # WHEN each starts STARTS times in each way
        floor = median_starts(
            forked(plain, str(noop)), environment(noop, runtime, "app.handler", tmp_path), output
        )
        for service, root in sorted(packages.items()):
            env = environment(root, runtime, "app.app", tmp_path)
            libraries = package_libraries(str(root))
            with_libraries = Forks(sys.executable, str(runtime), libraries, str(root))
            try:
                rows.append(
                    (
                        service,
                        median_starts(new_interpreter(str(root)), env, output),
                        median_starts(forked(plain, str(root)), env, output),
                        median_starts(forked(with_libraries, str(root)), env, output)
                        if libraries
                        else None,
                    )
                )
            finally:
                with_libraries.close()
    finally:
        plain.close()
        os.close(output)

    # THEN the figures are printed (never asserted)
    print(
        f"\n[environment start] CPU of a start to ready, median of {STARTS} one at a time; "
        f"floor (a no-op package, forked) {floor:.1f} ms"
    )
    print(
        f"  {'service':<14} {'new interpreter':>16} {'forked, boto3':>14} "
        f"{'forked, + pydantic':>19} {'x floor':>8}"
    )
    for service, fresh, runtime_only, libraries_too in rows:
        best = libraries_too if libraries_too is not None else runtime_only
        shown = f"{libraries_too:16.1f} ms" if libraries_too is not None else f"{'-':>19}"
        print(
            f"  {service:<14} {fresh:13.1f} ms {runtime_only:11.1f} ms {shown} {best / floor:7.1f}x"
        )
