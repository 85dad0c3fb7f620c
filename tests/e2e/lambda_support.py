"""Helpers shared by end-to-end tests that deploy Lambda functions to the embedded LocalStack."""

from __future__ import annotations

import io
import json
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

ROLE_ARN = "arn:aws:iam::000000000000:role/lambda-role"


def zip_package(files: dict[str, str]) -> bytes:
    """A deployment package (zip) holding ``files`` (name → source, dedented)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in files.items():
            archive.writestr(name, textwrap.dedent(source))
    return buffer.getvalue()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until[T](
    probe: Callable[[], T | None], *, timeout_s: float = 30.0, interval_s: float = 0.1
) -> T:
    """Call ``probe`` until it returns something other than ``None`` or ``timeout_s`` passes.

    A bound on waiting for an asynchronous outcome, not a performance assertion: on timeout the
    test fails saying what it waited for.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            what = getattr(probe, "__name__", repr(probe))
            raise AssertionError(f"gave up after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def create_function(
    lambda_client: Any,
    source: str,
    *,
    name: str | None = None,
    runtime: str = "python3.13",
    handler: str = "app.handler",
    timeout: int = 10,
    extra_files: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
    logging_config: dict[str, str] | None = None,
    role: str = ROLE_ARN,
    wait_active: bool = True,
) -> str:
    """Create a Python function whose ``app.py`` is ``source``; wait until it leaves Pending.

    ``logging_config`` is Lambda's ``LoggingConfig`` (``LogFormat``, ``ApplicationLogLevel``).
    """
    function_name = name or unique_name("fn")
    files = {"app.py": source, **(extra_files or {})}
    lambda_client.create_function(
        FunctionName=function_name,
        Runtime=runtime,
        Role=role,
        Handler=handler,
        Code={"ZipFile": zip_package(files)},
        Timeout=timeout,
        Environment={"Variables": environment or {}},
        **({"LoggingConfig": logging_config} if logging_config else {}),
    )
    if wait_active:
        wait_for_state(lambda_client, function_name)
    return function_name


def wait_for_state(lambda_client: Any, function_name: str) -> dict[str, Any]:
    """The function's configuration once it has left ``Pending`` (and any update is done)."""

    def settled() -> dict[str, Any] | None:
        configuration: dict[str, Any] = lambda_client.get_function(FunctionName=function_name)[
            "Configuration"
        ]
        if configuration["State"] == "Pending":
            return None
        if configuration.get("LastUpdateStatus") == "InProgress":
            return None
        return configuration

    return wait_until(settled)


def create_proxy_api(
    lambda_client: Any,
    apigateway: Any,
    function_name: str,
    *,
    stage: str,
    name: str | None = None,
) -> str:
    """A REST API whose ``/{proxy+}`` resource, any method, is a Lambda proxy integration.

    The resource's ``ANY`` method (no authorisation) is an ``AWS_PROXY`` integration of
    ``function_name``, API Gateway may invoke the function (``AddPermission``, as on AWS), and
    the API is deployed to ``stage``.

    Parameters
    ----------
    lambda_client, apigateway
        Clients of the same endpoint and region.
    function_name
        The function every request goes to.
    stage
        The stage deployed.
    name
        The API's name; a unique one when not given.

    Returns
    -------
    str
        The API's id (its stage's URL on the emulator: :func:`stage_url`).
    """
    function_arn = lambda_client.get_function(FunctionName=function_name)["Configuration"][
        "FunctionArn"
    ]
    region = lambda_client.meta.region_name
    api_id: str = apigateway.create_rest_api(name=name or unique_name("api"))["id"]
    root_id = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    resource_id = apigateway.create_resource(
        restApiId=api_id, parentId=root_id, pathPart="{proxy+}"
    )["id"]
    apigateway.put_method(
        restApiId=api_id, resourceId=resource_id, httpMethod="ANY", authorizationType="NONE"
    )
    apigateway.put_integration(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="ANY",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
    )
    lambda_client.add_permission(
        FunctionName=function_name,
        StatementId=f"apigateway-{api_id}",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
    )
    apigateway.create_deployment(restApiId=api_id, stageName=stage)
    return api_id


def stage_url(endpoint_url: str, api_id: str, stage: str) -> str:
    """The base URL of a REST API's stage on the emulator, ending in ``/`` (the path form: the
    host form needs DNS that is not there offline)."""
    return f"{endpoint_url}/_aws/execute-api/{api_id}/{stage}/"


def invoke(lambda_client: Any, function_name: str, event: Any = None) -> tuple[Any, str | None]:
    """Invoke synchronously; return the decoded payload and ``FunctionError`` (or ``None``)."""
    response = lambda_client.invoke(
        FunctionName=function_name, Payload=json.dumps(event if event is not None else {})
    )
    return json.loads(response["Payload"].read() or b"null"), response.get("FunctionError")
