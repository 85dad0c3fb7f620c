"""Lambda's Python runtime as AWS documents it: output, logs, errors, payload limits.

Sources: ``GetFunction`` (``Code.Location``: a presigned URL to download the deployment package),
"Log and monitor Python Lambda functions" (stdout/stderr and ``logging`` reach
CloudWatch Logs; the text format ``[LEVEL]\t<timestamp>\t<request id>\t<message>``; JSON
format and log levels through ``LoggingConfig``), "Troubleshoot invocation issues"
(``Runtime.ImportModuleError``, ``Runtime.UserCodeSyntaxError``, ``Runtime.HandlerNotFound``,
``Runtime.ExitError``, ``Sandbox.Timedout``), "Lambda quotas" (6 MB synchronous and 256 KB
asynchronous payloads) and ``GetProvisionedConcurrencyConfig`` (``Status`` ``FAILED`` with its
``StatusReason``).
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from typing import Any

import pytest
import urllib3
from botocore.exceptions import ClientError

from tests.e2e.lambda_support import (
    create_function,
    invoke,
    wait_for_state,
    wait_until,
)

PRINTER = """
    print("initialising")

    def handler(event, context):
        print("handling", event)
        return {"request_id": context.aws_request_id}
"""


@pytest.fixture(scope="module")
def lambda_client(emulator: Any) -> Any:
    return emulator.client("lambda")


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


def test_a_module_that_cannot_be_imported_is_runtime_import_module_error(
    lambda_client: Any,
) -> None:
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


def test_logs_reach_cloudwatch_with_start_end_report(emulator: Any, lambda_client: Any) -> None:
    # GIVEN a function that prints
    name = create_function(lambda_client, PRINTER)
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
    name = create_function(
        lambda_client,
        "import logging\n\n"
        "def handler(event, context):\n"
        "    logging.getLogger('shop').debug('checking %s', 'stock')\n"
        "    return context.aws_request_id\n",
        logging_config={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"},
    )
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


def test_what_a_function_printed_survives_its_process_exiting(lambda_client: Any) -> None:
    # GIVEN a function that prints without a newline, then ends its own process
    name = create_function(
        lambda_client,
        """
        import os

        def handler(event, context):
            print("last words", end="")
            os._exit(3)
        """,
    )
    # WHEN it is invoked
    payload, tail = _tail(lambda_client, name)
    # THEN the invocation fails as a runtime exit, and what it printed is in its log
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in payload["errorMessage"]
    assert "last words" in tail


def test_a_syntax_error_in_the_handler_module_is_runtime_user_code_syntax_error(
    lambda_client: Any,
) -> None:
    # GIVEN a handler module that is not valid Python
    name = create_function(lambda_client, "def handler(event, context)\n    return 1\n")
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN Lambda reports a syntax error in the user's code, naming the module
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.UserCodeSyntaxError"
    assert payload["errorMessage"].startswith("Syntax error in module 'app'")


def test_a_handler_the_module_does_not_define_is_runtime_handler_not_found(
    lambda_client: Any,
) -> None:
    # GIVEN a function whose configured handler names a function its module lacks
    name = create_function(
        lambda_client, "def other(event, context):\n    return 1\n", handler="app.handler"
    )
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN Lambda reports the missing handler
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.HandlerNotFound"
    assert payload["errorMessage"] == "Handler 'handler' missing on module 'app'"


def test_an_invocation_past_the_timeout_is_sandbox_timedout(lambda_client: Any) -> None:
    # GIVEN a function with a 1 s timeout that sleeps for 5 s
    name = create_function(
        lambda_client,
        "import time\n\ndef handler(event, context):\n    time.sleep(5)\n",
        timeout=1,
    )
    # WHEN it is invoked
    payload, error = invoke(lambda_client, name)
    # THEN the error is Lambda's timeout, with its message
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]


def test_the_application_log_level_drops_lower_levels(lambda_client: Any) -> None:
    # GIVEN a JSON-logging function at application level WARN that logs at INFO and WARNING
    name = create_function(
        lambda_client,
        "import logging\n\n"
        "def handler(event, context):\n"
        "    logging.getLogger().info('routine')\n"
        "    logging.getLogger().warning('unusual')\n",
        logging_config={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"},
    )
    # WHEN it is invoked
    _, tail = _tail(lambda_client, name)
    # THEN only the warning reached the log
    assert "unusual" in tail
    assert "routine" not in tail


def test_an_init_failure_under_provisioned_concurrency_fails_the_configuration(
    lambda_client: Any,
) -> None:
    # GIVEN a published version of a function whose module raises while it is imported
    name = create_function(lambda_client, 'raise RuntimeError("no config at init")\n')
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    wait_for_state(lambda_client, f"{name}:{version}")
    # WHEN provisioned concurrency is configured on it
    lambda_client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1
    )

    # THEN the configuration fails, saying the function's initialisation failed
    def settled() -> dict[str, Any] | None:
        config: dict[str, Any] = lambda_client.get_provisioned_concurrency_config(
            FunctionName=name, Qualifier=version
        )
        return None if config["Status"] == "IN_PROGRESS" else config

    config = wait_until(settled, timeout_s=60)
    assert config["Status"] == "FAILED"
    assert "FUNCTION_ERROR_INIT_FAILURE" in config["StatusReason"]
    assert config["AvailableProvisionedConcurrentExecutions"] == 0
    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)


def test_get_function_gives_a_url_that_downloads_the_functions_own_package(
    lambda_client: Any,
) -> None:
    # GIVEN two functions with different code
    first = create_function(lambda_client, PRINTER)
    second = create_function(lambda_client, "def handler(event, context):\n    return 2\n")
    http = urllib3.PoolManager(retries=False)
    # WHEN each is read with GetFunction, twice, and its code location fetched
    for name, expected in ((first, "initialising"), (second, "return 2"), (first, "initialising")):
        location = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
        response = http.request("GET", location)
        # THEN the location serves that function's zip, holding its own app.py
        assert response.status == 200
        with zipfile.ZipFile(io.BytesIO(response.data)) as package:
            assert expected in package.read("app.py").decode()
