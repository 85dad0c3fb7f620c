"""The ``process`` Lambda executor on the embedded LocalStack: what a function sees and returns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

from lambdamesh_localstack.interpreters import UnsupportedRuntimeError, find_interpreter
from tests.e2e.lambda_support import (
    create_function,
    invoke,
    unique_name,
    wait_for_state,
    wait_until,
    zip_package,
)

ECHO = """
    import os

    print("initialising")

    def handler(event, context):
        print("handling", event)
        return {
            "event": event,
            "function_name": context.function_name,
            "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "pid": os.getpid(),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "handler": os.environ.get("_HANDLER"),
        }
"""


@pytest.fixture(scope="module")
def lambda_client(emulator: Any) -> Any:
    return emulator.client("lambda")


@pytest.fixture(scope="module")
def echo_function(lambda_client: Any) -> str:
    return create_function(lambda_client, ECHO)


def test_function_returns_its_result_with_lambda_context(
    lambda_client: Any, echo_function: str
) -> None:
    # GIVEN a deployed Python function
    # WHEN it is invoked with an event
    payload, error = invoke(lambda_client, echo_function, {"order": 42})
    # THEN it answers with what the handler returned, built from Lambda's context and environment
    assert error is None
    assert payload["event"] == {"order": 42}
    assert payload["function_name"] == echo_function
    assert payload["handler"] == "app.handler"
    assert 0 < payload["remaining_ms"] <= 10_000
    assert payload["endpoint"].startswith("http://127.0.0.1:")


def test_warm_invocations_reuse_one_process(lambda_client: Any, echo_function: str) -> None:
    # GIVEN a function that has been invoked once
    first, _ = invoke(lambda_client, echo_function)
    # WHEN it is invoked again, one after the other
    second, _ = invoke(lambda_client, echo_function)
    # THEN the same execution environment (process) served both, with distinct request ids
    assert first["pid"] == second["pid"]
    assert first["request_id"] != second["request_id"]


def test_boto3_is_importable_and_reaches_the_emulator(emulator: Any, lambda_client: Any) -> None:
    # GIVEN a queue, and a function that lists queues with boto3 (shipped by the runtime, not
    # by the package) using only the environment Lambda gives it
    queue_name = unique_name("from-function")
    emulator.client("sqs").create_queue(QueueName=queue_name)
    name = create_function(
        lambda_client,
        """
        import boto3

        def handler(event, context):
            return boto3.client("sqs").list_queues()["QueueUrls"]
        """,
    )
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN it sees the queue the test created
    assert error is None
    assert any(url.endswith(f"/{queue_name}") for url in payload)


def test_large_events_and_results_cross_the_pipes_whole(lambda_client: Any) -> None:
    # GIVEN a function answering with a result of the size it is asked for
    name = create_function(
        lambda_client,
        """
        def handler(event, context):
            return {"received": len(event["blob"]), "blob": "r" * event["size"]}
        """,
    )
    # WHEN it is invoked with a 1 MB event and asked for a 5 MB result (Lambda's limit is 6 MB)
    payload, error = invoke(lambda_client, name, {"blob": "e" * 1_000_000, "size": 5_000_000})
    # THEN both arrive whole, in one invocation
    assert error is None
    assert payload["received"] == 1_000_000
    assert payload["blob"] == "r" * 5_000_000


def test_a_process_that_dies_in_a_handler_fails_that_invocation_and_is_replaced(
    lambda_client: Any,
) -> None:
    # GIVEN a function whose handler can end its own process
    name = create_function(
        lambda_client,
        """
        import os

        def handler(event, context):
            if event.get("die"):
                os._exit(3)
            return os.getpid()
        """,
    )
    pid_before, _ = invoke(lambda_client, name)
    # WHEN the process exits in the middle of an invocation
    payload, error = invoke(lambda_client, name, {"die": True})
    # THEN that invocation fails as Lambda reports a runtime exit
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in payload["errorMessage"]
    # AND the next one runs in a fresh process
    pid_after, error_after = invoke(lambda_client, name)
    assert error_after is None
    assert pid_after != pid_before


def test_timeout_answers_sandbox_timedout_and_recycles_the_process(lambda_client: Any) -> None:
    # GIVEN a function with a 3 s timeout (room for a busy machine's slow start) that sleeps
    # when asked to
    name = create_function(
        lambda_client,
        """
        import os, time

        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return os.getpid()
        """,
        timeout=3,
    )
    pid_before, _ = invoke(lambda_client, name)
    # WHEN an invocation runs past the timeout
    payload, error = invoke(lambda_client, name, {"sleep": 10})
    # THEN Lambda's timeout error is returned and the old process is gone
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 3.00 seconds" in payload["errorMessage"]
    assert not psutil.pid_exists(pid_before) or psutil.Process(pid_before).status() == "zombie"
    # AND the next invocation runs in a fresh process
    pid_after, error_after = invoke(lambda_client, name)
    assert error_after is None
    assert pid_after != pid_before


def test_concurrent_invocations_run_in_separate_processes(lambda_client: Any) -> None:
    # GIVEN a function that takes a while
    name = create_function(
        lambda_client,
        """
        import os, time

        def handler(event, context):
            time.sleep(1)
            return os.getpid()
        """,
    )
    # WHEN three invocations are in flight at once
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: invoke(lambda_client, name), range(3)))
    # THEN each ran in its own execution environment
    assert all(error is None for _, error in results)
    assert len({pid for pid, _ in results}) == 3


def test_update_function_code_stops_old_processes(lambda_client: Any) -> None:
    # GIVEN a function with a warm process
    name = create_function(
        lambda_client,
        """
        import os

        def handler(event, context):
            return {"version": 1, "pid": os.getpid()}
        """,
    )
    old, _ = invoke(lambda_client, name)
    # WHEN its code is updated
    lambda_client.update_function_code(
        FunctionName=name,
        ZipFile=zip_package(
            {
                "app.py": """
                import os

                def handler(event, context):
                    return {"version": 2, "pid": os.getpid()}
                """
            }
        ),
    )
    wait_for_state(lambda_client, name)
    new, _ = invoke(lambda_client, name)
    # THEN the new code answers from a new process and the old process has exited
    assert new["version"] == 2
    assert new["pid"] != old["pid"]
    wait_until(lambda: True if not psutil.pid_exists(old["pid"]) else None, timeout_s=15)


def test_delete_function_stops_its_processes(lambda_client: Any) -> None:
    # GIVEN a function with a warm process
    name = create_function(lambda_client, ECHO)
    payload, _ = invoke(lambda_client, name)
    # WHEN the function is deleted
    lambda_client.delete_function(FunctionName=name)
    # THEN its process exits
    wait_until(lambda: True if not psutil.pid_exists(payload["pid"]) else None, timeout_s=15)


def _has_interpreter(runtime: str) -> bool:
    try:
        find_interpreter(runtime)
    except UnsupportedRuntimeError:
        return False
    return True


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [
        ("nodejs20.x", "runs Python runtimes (python3.x) only"),
        pytest.param(
            "python3.14",
            "needs a python3.14 interpreter",
            marks=pytest.mark.skipif(
                _has_interpreter("python3.14"), reason="this machine has python3.14"
            ),
        ),
    ],
)
def test_runtimes_it_cannot_run_are_refused_on_the_function(
    lambda_client: Any, runtime: str, expected: str
) -> None:
    # GIVEN the process executor runs Python runtimes with an interpreter on this machine
    # WHEN a function of another runtime is created
    name = create_function(
        lambda_client, "def handler(e, c): pass", runtime=runtime, wait_active=False
    )
    configuration = wait_for_state(lambda_client, name)
    # THEN the function fails with a reason that says why, instead of hanging on invoke
    assert configuration["State"] == "Failed"
    assert expected in configuration["StateReason"]


def test_python_3_12_runtime_runs_on_python_3_12(lambda_client: Any) -> None:
    # GIVEN a python3.12 function
    name = create_function(
        lambda_client,
        """
        import sys

        def handler(event, context):
            return list(sys.version_info[:2])
        """,
        runtime="python3.12",
    )
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN it ran on a 3.12 interpreter
    assert error is None
    assert payload == [3, 12]
