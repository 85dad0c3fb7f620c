"""The ``process`` Lambda executor on the embedded LocalStack: what a function sees and returns."""

from __future__ import annotations

import base64
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError

from lambdamesh_localstack.interpreters import UnsupportedRuntimeError, find_interpreter
from tests.e2e.lambda_support import (
    ROLE_ARN,
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


def test_unhandled_exception_is_a_function_error_with_type_and_trace(lambda_client: Any) -> None:
    # GIVEN a function whose handler raises
    name = create_function(
        lambda_client,
        """
        def handler(event, context):
            raise ValueError("no such order")
        """,
    )
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN Lambda reports an unhandled error with the exception's type, message and user frames
    assert error == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "no such order"
    assert any("app.py" in line for line in payload["stackTrace"])
    assert not any("function_bootstrap" in line for line in payload["stackTrace"])


def test_missing_dependency_fails_as_on_aws(lambda_client: Any) -> None:
    # GIVEN a package importing a library it does not ship (the emulator itself has it installed)
    name = create_function(
        lambda_client,
        """
        import requests

        def handler(event, context):
            return "unreachable"
        """,
    )
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN the import fails exactly as it would on AWS
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"] == "Unable to import module 'app': No module named 'requests'"


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
    # GIVEN a function with a 1 s timeout that sleeps when asked to
    name = create_function(
        lambda_client,
        """
        import os, time

        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return os.getpid()
        """,
        timeout=1,
    )
    pid_before, _ = invoke(lambda_client, name)
    # WHEN an invocation runs past the timeout
    payload, error = invoke(lambda_client, name, {"sleep": 5})
    # THEN Lambda's timeout error is returned and the old process is gone
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
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


def test_logs_reach_cloudwatch_with_start_end_report(emulator: Any, lambda_client: Any) -> None:
    # GIVEN a function that prints
    name = create_function(lambda_client, ECHO)
    # WHEN it is invoked with its log tail requested
    response = lambda_client.invoke(FunctionName=name, Payload=b'{"n": 1}', LogType="Tail")
    request_id = json.loads(response["Payload"].read())["request_id"]
    tail = base64.b64decode(response["LogResult"]).decode()
    # THEN the tail and CloudWatch Logs hold its output between Lambda's START/END/REPORT lines
    assert f"START RequestId: {request_id}" in tail
    assert "handling {'n': 1}" in tail
    assert f"REPORT RequestId: {request_id}" in tail
    logs = emulator.client("logs")

    def logged_report() -> list[str] | None:
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except logs.exceptions.ResourceNotFoundException:
            return None
        messages = [event["message"] for event in events]
        return messages if any(m.startswith("REPORT RequestId") for m in messages) else None

    messages = wait_until(logged_report)
    assert any("initialising" in m for m in messages)
    assert any(m.startswith(f"END RequestId: {request_id}") for m in messages)


def _tail(lambda_client: Any, name: str, event: Any = None) -> tuple[dict[str, Any], str]:
    response = lambda_client.invoke(
        FunctionName=name, Payload=json.dumps(event or {}).encode(), LogType="Tail"
    )
    payload = json.loads(response["Payload"].read() or b"null")
    return payload, base64.b64decode(response.get("LogResult", "")).decode()


def test_what_a_function_printed_survives_its_timeout(lambda_client: Any) -> None:
    # GIVEN a function that prints, without a newline or a flush, then runs past its timeout
    name = create_function(
        lambda_client,
        """
        import sys, time

        def handler(event, context):
            print("written before the timeout", end="")
            sys.stderr.write("and to stderr")
            time.sleep(5)
        """,
        timeout=1,
    )
    # WHEN it is invoked
    payload, tail = _tail(lambda_client, name)
    # THEN it timed out, and what it wrote is in its log all the same
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "written before the timeout" in tail
    assert "and to stderr" in tail


def test_logging_writes_lambdas_text_format_with_the_request_id(lambda_client: Any) -> None:
    # GIVEN a function logging through the standard library's root logger
    name = create_function(
        lambda_client,
        """
        import logging

        def handler(event, context):
            logging.getLogger().warning("stock low: %s", 3)
            return context.aws_request_id
        """,
    )
    # WHEN it is invoked
    request_id, tail = _tail(lambda_client, name)
    # THEN the line is [LEVEL] <UTC time> <request id> <message>, tab-separated, as on AWS
    lines = [line for line in tail.splitlines() if "stock low" in line]
    assert len(lines) == 1, tail
    assert re.fullmatch(
        rf"\[WARNING\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{request_id}\tstock low: 3",
        lines[0],
    ), lines[0]


def test_json_log_format_and_application_log_level_behave_as_configured(
    lambda_client: Any,
) -> None:
    # GIVEN a function with Lambda's logging configuration: JSON, application level DEBUG
    name = unique_name("fn")
    lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=ROLE_ARN,
        Handler="app.handler",
        Code={
            "ZipFile": zip_package(
                {
                    "app.py": "import logging\n\n"
                    "def handler(event, context):\n"
                    "    logging.getLogger('shop').debug('checking %s', 'stock')\n"
                    "    return context.aws_request_id\n"
                }
            )
        },
        LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"},
    )
    wait_for_state(lambda_client, name)
    # WHEN it logs at DEBUG
    request_id, tail = _tail(lambda_client, name)
    # THEN the line is one JSON object with Lambda's fields
    documents = [json.loads(line) for line in tail.splitlines() if line.startswith("{")]
    logged = [d for d in documents if d.get("message") == "checking stock"]
    assert len(logged) == 1, tail
    assert logged[0]["level"] == "DEBUG"
    assert logged[0]["logger"] == "shop"
    assert logged[0]["requestId"] == request_id
    assert logged[0]["timestamp"].endswith("Z")


def test_an_error_raised_while_importing_is_reported_as_itself(lambda_client: Any) -> None:
    # GIVEN a module that raises an error of its own while it is imported
    name = create_function(lambda_client, 'raise ValueError("no config")\n')
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN the error is reported as itself, not as Runtime.ImportModuleError (kept for modules
    # that cannot be imported)
    assert error == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "no config"


def test_payloads_over_lambdas_limits_are_refused_as_aws_refuses_them(lambda_client: Any) -> None:
    # GIVEN a function echoing its event, and one returning what size it is asked for
    echo = create_function(lambda_client, "def handler(event, context):\n    return len(event)\n")
    big = create_function(
        lambda_client, "def handler(event, context):\n    return 'x' * event['size']\n"
    )
    # WHEN invoked synchronously with 6 MB + 1 byte, or asynchronously with 256 KB + 1 byte
    oversized = [
        ("RequestResponse", json.dumps("x" * (6 * 1024 * 1024 - 1))),
        ("Event", json.dumps("x" * (256 * 1024 - 1))),
    ]
    for invocation_type, payload in oversized:
        with pytest.raises(ClientError) as refused:
            lambda_client.invoke(
                FunctionName=echo, InvocationType=invocation_type, Payload=payload.encode()
            )
        # THEN the request is refused with 413 RequestTooLargeException, as AWS does
        assert refused.value.response["Error"]["Code"] == "RequestTooLargeException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    # AND just under the asynchronous limit is accepted
    accepted = lambda_client.invoke(
        FunctionName=echo, InvocationType="Event", Payload=json.dumps("x" * 200_000).encode()
    )
    assert accepted["StatusCode"] == 202
    # AND a result over 6 MB is the function's error Function.ResponseSizeTooLarge
    payload, error = invoke(lambda_client, big, {"size": 7 * 1024 * 1024})
    assert error == "Unhandled"
    assert payload["errorType"] == "Function.ResponseSizeTooLarge"
