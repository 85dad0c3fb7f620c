"""What the embedded runtime does differently from Lambda, pinned: each item of the README's
list ("Where the embedded runtime differs from Lambda") has a test here, so a change to any of
them is noticed and the list corrected.

These describe the embedded runtime's ``process`` executor, so they are skipped against another
LocalStack (``LAMBDAMESH_ENDPOINT``).
"""

from __future__ import annotations

import io
import json
import os
import socket
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydantic
import pytest

from lambdamesh_localstack.environment_starts import background_limit, start_limit
from tests.conftest import ENDPOINT_ENV
from tests.e2e.lambda_support import (
    ROLE_ARN,
    create_function,
    invoke,
    unique_name,
    wait_for_state,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(ENDPOINT_ENV)), reason="pins the embedded runtime's own behaviour"
)

# Reports what it can see of its surroundings; does what Lambda would not let it.
PROBE = """
    import os, socket, sys, tempfile

    BOTO3_BEFORE_IMPORT = "boto3" in sys.modules
    PYDANTIC_BEFORE_IMPORT = "pydantic.main" in sys.modules
    try:
        import pydantic
        PYDANTIC_IMPORTED = True
    except ImportError:
        PYDANTIC_IMPORTED = False

    def handler(event, context):
        task_root = os.environ["LAMBDA_TASK_ROOT"]
        written = os.path.join(task_root, "written-at-run-time.txt")
        with open(written, "w") as handle:
            handle.write("Lambda's /var/task is read-only")
        hog = bytearray(event.get("allocate_mb", 0) * 1024 * 1024)
        reached = None
        if event.get("connect_port"):
            with socket.create_connection(("127.0.0.1", event["connect_port"]), timeout=5) as s:
                reached = s.recv(16).decode()
        return {
            "task_root": task_root,
            "cwd": os.getcwd(),
            "tmp": tempfile.gettempdir(),
            "uid": os.getuid(),
            "executable": sys.executable,
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "wrote_package": os.path.exists(written),
            "allocated_mb": len(hog) // (1024 * 1024),
            "reached": reached,
            "boto3_before_import": BOTO3_BEFORE_IMPORT,
            "pydantic_before_import": PYDANTIC_BEFORE_IMPORT,
            "pydantic_imported": PYDANTIC_IMPORTED,
            "parent_pid": os.getppid(),
        }
"""


@pytest.fixture(scope="module")
def lambda_client(emulator: Any) -> Any:
    return emulator.client("lambda")


@pytest.fixture(scope="module")
def probe(lambda_client: Any) -> str:
    return create_function(lambda_client, PROBE)


@pytest.fixture(scope="module")
def seen(lambda_client: Any, probe: str) -> dict[str, Any]:
    payload, error = invoke(lambda_client, probe)
    assert error is None, payload
    result: dict[str, Any] = payload
    return result


def test_code_runs_from_a_host_directory_not_var_task(seen: dict[str, Any]) -> None:
    # GIVEN / WHEN a function reports its task root and working directory
    # THEN both are a host directory holding its unzipped package, not /var/task
    assert seen["task_root"] != "/var/task"
    assert os.path.isdir(seen["task_root"])
    assert seen["cwd"] == seen["task_root"]


def test_tracebacks_name_host_paths(lambda_client: Any, seen: dict[str, Any]) -> None:
    # GIVEN a function that raises
    name = create_function(lambda_client, "def handler(event, context):\n    raise KeyError(1)\n")
    # WHEN it is invoked
    payload, _ = invoke(lambda_client, name)
    # THEN its stack trace names the host path of its file, where AWS says /var/task/app.py
    assert any("app.py" in line for line in payload["stackTrace"])
    assert not any("/var/task" in line for line in payload["stackTrace"])


def test_the_package_directory_is_writable(seen: dict[str, Any]) -> None:
    # GIVEN / WHEN a function writes into its own package directory
    # THEN the write succeeds (on AWS /var/task is read-only)
    assert seen["wrote_package"] is True


def test_each_environment_has_its_own_temporary_directory_not_tmp(seen: dict[str, Any]) -> None:
    # GIVEN / WHEN a function asks for the temporary directory
    # THEN it is a directory of its own environment on the host (TMPDIR), not /tmp; a function
    # writing to the literal path /tmp writes to the host's shared /tmp
    assert seen["tmp"] != "/tmp"
    assert os.path.isdir(seen["tmp"])


def test_functions_run_as_the_host_user(seen: dict[str, Any]) -> None:
    # GIVEN / WHEN a function reports its user id
    # THEN it is the user running the emulator (on AWS a sandbox user)
    assert seen["uid"] == os.getuid()


def test_the_interpreter_is_the_hosts(seen: dict[str, Any]) -> None:
    # GIVEN / WHEN a function reports its interpreter
    # THEN it is a Python found on the machine, not Lambda's /var/lang/bin/python3.13
    assert not seen["executable"].startswith("/var/lang")
    assert os.path.exists(seen["executable"])


def test_an_environment_is_forked_with_boto3_already_imported(
    emulator: Any, seen: dict[str, Any]
) -> None:
    # GIVEN / WHEN a function reports, as its module is imported, whether boto3 already is
    # THEN it is: the environment was forked from a process that imported the runtime's
    # libraries once (a new Lambda interpreter has imported nothing), a child of that process
    # rather than of the emulator
    assert seen["boto3_before_import"] is True
    assert seen["parent_pid"] != emulator.pid


def pydantic_package(source: str) -> bytes:
    """A deployment package holding ``app.py`` and this interpreter's pydantic with what it
    imports, each with its ``*.dist-info``, as the services' packages hold them."""
    site_packages = Path(pydantic.__file__).parent.parent
    family = {
        "pydantic",
        "pydantic_core",
        "typing_extensions",
        "annotated_types",
        "typing_inspection",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", textwrap.dedent(source))
        for entry in site_packages.iterdir():
            if entry.name.split(".", 1)[0].split("-", 1)[0] not in family:
                continue
            files = [entry] if entry.is_file() else sorted(entry.rglob("*"))
            for path in files:
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, str(path.relative_to(site_packages)))
    return buffer.getvalue()


def test_a_package_holding_pydantic_is_forked_with_it_imported_and_others_cannot_import_it(
    lambda_client: Any, seen: dict[str, Any]
) -> None:
    # GIVEN a function whose package holds pydantic, beside the probe, whose package does not
    name = unique_name("with-pydantic")
    lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=ROLE_ARN,
        Handler="app.handler",
        Code={"ZipFile": pydantic_package(PROBE)},
        Timeout=10,
    )
    wait_for_state(lambda_client, name)
    # WHEN it reports, as its module is imported, whether pydantic's models already are
    with_pydantic, error = invoke(lambda_client, name)
    assert error is None, with_pydantic
    # THEN they are: it was forked from a process that imported the package's pydantic, another
    # than the one the probe was forked from
    assert with_pydantic["pydantic_before_import"] is True
    assert with_pydantic["parent_pid"] != seen["parent_pid"]
    # AND the probe, whose package holds no pydantic, can import none, as on Lambda
    assert seen["pydantic_before_import"] is False
    assert seen["pydantic_imported"] is False


def test_functions_are_pointed_at_the_emulator(emulator: Any, seen: dict[str, Any]) -> None:
    # GIVEN / WHEN a function reports AWS_ENDPOINT_URL
    # THEN it names the emulator, so boto3 in the function talks to it (unset on AWS)
    assert seen["endpoint"] is not None
    assert str(emulator.port) in seen["endpoint"]


def test_the_memory_size_is_not_enforced(lambda_client: Any) -> None:
    # GIVEN a function with 128 MB of memory
    name = create_function(lambda_client, PROBE, timeout=30)
    assert lambda_client.get_function(FunctionName=name)["Configuration"]["MemorySize"] == 128
    # WHEN it allocates 256 MB
    payload, error = invoke(lambda_client, name, {"allocate_mb": 256})
    # THEN it succeeds (on AWS the runtime is killed: Runtime.OutOfMemory)
    assert error is None, payload
    assert payload["allocated_mb"] == 256


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A one-shot TCP server on the host's loopback answering ``host`` (its port)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)

    def answer() -> None:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            connection.sendall(b"host")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    thread.join(timeout=5)


def test_functions_reach_the_hosts_loopback(
    lambda_client: Any, probe: str, host_listener: int
) -> None:
    # GIVEN a server listening on the host's loopback
    # WHEN a function connects to it
    payload, error = invoke(lambda_client, probe, {"connect_port": host_listener})
    # THEN it gets through: no network isolation (on AWS the function's own loopback is its own)
    assert error is None, payload
    assert payload["reached"] == "host"


def test_iam_is_not_enforced(emulator: Any, lambda_client: Any) -> None:
    # GIVEN a function whose role exists nowhere, calling SQS
    name = create_function(
        lambda_client,
        "import boto3\n\n"
        "def handler(event, context):\n"
        "    return len(boto3.client('sqs').list_queues().get('QueueUrls', []))\n",
        role=ROLE_ARN.replace("lambda-role", "no-such-role"),
    )
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN the call succeeds (on AWS: AccessDenied, or no function without a valid role)
    assert error is None, payload
    assert isinstance(payload, int)


def test_a_burst_waits_for_environments_instead_of_starting_one_per_invocation(
    lambda_client: Any,
) -> None:
    # GIVEN a function whose initialisation takes a second and whose handler is quick, and a
    # burst of more invocations at once than environments may start at once
    limit = start_limit(os.environ, os.cpu_count())
    name = create_function(
        lambda_client,
        """
        import os, time

        time.sleep(1)

        def handler(event, context):
            return os.getpid()
        """,
    )
    burst = limit + 6
    # WHEN the burst comes
    with ThreadPoolExecutor(max_workers=burst) as pool:
        results = list(pool.map(lambda _: invoke(lambda_client, name), range(burst)))
    # THEN every invocation succeeded, and those that found no environment idle waited for one
    # instead of each starting its own (Lambda would have started one per invocation)
    assert all(error is None for _, error in results)
    assert len({pid for pid, _ in results}) < burst


def test_beside_a_callers_invocation_background_invocations_wait_their_turn(
    lambda_client: Any, tmp_path: Path
) -> None:
    # GIVEN a function with as many environments ready as invocations no caller waits for
    # may run beside a caller's, and one more; each invocation notes when it ran
    limit = background_limit(os.environ, os.cpu_count())
    assert limit is not None
    noting = create_function(
        lambda_client,
        """
        import os, time

        def handler(event, context):
            started = time.time()
            time.sleep(event["sleep"])
            with open(event["path"], "a") as notes:
                notes.write(f"{started} {time.time()}\\n")
            return os.getpid()
        """,
    )
    warm_up = str(tmp_path / "warm-up")
    with ThreadPoolExecutor(max_workers=limit + 1) as pool:
        pids = list(
            pool.map(
                lambda _: invoke(lambda_client, noting, {"sleep": 3.0, "path": warm_up})[0],
                range(limit + 1),
            )
        )
    assert len(set(pids)) == limit + 1
    waiting = create_function(
        lambda_client,
        """
        import pathlib, time

        def handler(event, context):
            pathlib.Path(event["started"]).touch()
            time.sleep(event["sleep"])
        """,
    )
    notes, started = tmp_path / "notes", tmp_path / "caller-started"
    # WHEN a caller's invocation runs for 4 s, and once it has started that many asynchronous
    # invocations (no caller waits for them) come at once
    with ThreadPoolExecutor(max_workers=1) as pool:
        caller = pool.submit(
            invoke, lambda_client, waiting, {"sleep": 4.0, "started": str(started)}
        )
        wait_until(lambda: True if started.exists() else None, timeout_s=30)
        for _ in range(limit + 1):
            lambda_client.invoke(
                FunctionName=noting,
                InvocationType="Event",
                Payload=json.dumps({"sleep": 0.8, "path": str(notes)}),
            )
        assert caller.result()[1] is None
    ran = wait_until(
        lambda: lines if len(lines := _lines(notes)) == limit + 1 else None, timeout_s=15
    )
    # THEN no more of them ran at once than the limit (Lambda would have run them together)
    intervals = sorted(tuple(map(float, line.split())) for line in ran)
    at_once = max(
        sum(1 for start, end in intervals if start <= moment < end) for moment, _ in intervals
    )
    assert at_once == limit


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line]
    except FileNotFoundError:
        return []
