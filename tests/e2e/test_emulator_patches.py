"""The emulator's own libraries hold what the lambdamesh hooks replace.

Each hook leaves LocalStack as it is when its target is missing (only slower); this test makes
a missing target fail loudly instead, run by the emulator's own interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import urllib3

from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh_localstack.gateway_responses import PROVIDER_MODULE
from lambdamesh_localstack.request_overhead import MEMOISED
from tests.conftest import RunningEmulator

PROBE = """
import importlib, sys
missing = [
    f"{module}.{function}"
    for module, function in TARGETS
    if not callable(getattr(importlib.import_module(module), function, None))
]
from localstack.services.lambda_.invocation.logs import LogHandler
from localstack.services.sqs.provider import MessageMoveTaskManager
from localstack.services.apigateway.next_gen.execute_api.handlers.gateway_exception import (
    GatewayExceptionHandler,
)
from localstack.services.lambda_.provider import LambdaProvider
from localstack.services.apigateway.next_gen.execute_api.handlers.parse import (
    InvocationRequestParser,
)
from localstack.services.lambda_.event_source_mapping.pollers.dynamodb_poller import (
    DynamoDBPoller,
)
from localstack.services.apigateway.next_gen.execute_api.integrations.aws import (
    RestApiAwsProxyIntegration,
)
from localstack.services.apigateway.resource_providers.aws_apigateway_stage import (
    ApiGatewayStageProvider,
)
from localstack.services.cloudformation.resource_provider import ResourceProviderExecutor
from localstack.services.apigateway.next_gen.execute_api import gateway_response, handlers
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard, Table
from localstack.aws.handlers.logging import ResponseLogger
from localstack.aws.handlers.internal import LocalstackResourceHandler
from localstack.services.lambda_.invocation.assignment import AssignmentService
from localstack.services.lambda_.invocation import event_manager, lambda_models
from localstack.services.lambda_.invocation.internal_sqs_queue import QueueManager
from localstack.services.sqs.models import StandardQueue
for name in ("AWS_REGION_US_EAST_1", "INTERNAL_AWS_SECRET_ACCESS_KEY"):
    if not isinstance(getattr(lambda_models, name, None), str):
        missing.append(f"lambda_models.{name}")
if not isinstance(getattr(lambda_models.config, "INTERNAL_RESOURCE_ACCOUNT", None), str):
    missing.append("lambda_models.config.INTERNAL_RESOURCE_ACCOUNT")
for owner, name in (
    (lambda_models.S3Code, "generate_presigned_url"),
    (lambda_models.boto3, "client"),
    (event_manager.LambdaEventManager, "stop"),
    (event_manager.Poller, "stop"),
    (event_manager, "get_sqs_client"),
    (QueueManager, "get_queue"),
    (StandardQueue, "shutdown"),
    (ResponseLogger, "__call__"),
    (LocalstackResourceHandler, "__call__"),
    (AssignmentService, "get_environment"),
    (AssignmentService, "start_environment"),
    (AssignmentService, "stop_environment"),
    (LambdaProvider, "invoke"),
    (InvocationRequestParser, "__call__"),
    (StreamShard, "add"),
    (Table, "query"),
    (Table, "all_items"),
    (DynamoDBPoller, "poll_events"),
    (DynamoDBPoller, "get_records"),
    (DynamoDBPoller, "forward_events_to_target"),
    (DynamoDBPoller, "transform_into_events"),
    (DynamoDBPoller, "add_source_metadata"),
    (LogHandler, "run_log_loop"),
    (DynamoDBBackend, "transact_write_items"),
    (MessageMoveTaskManager, "_get_queue_by_arn"),
    (GatewayExceptionHandler, "create_exception_response"),
    (RestApiAwsProxyIntegration, "create_lambda_input_event"),
    (ApiGatewayStageProvider, "create"),
    (ResourceProviderExecutor, "deploy_loop"),
    (handlers.preprocess_request, "append"),
    (gateway_response, "MissingAuthTokenError"),
    (gateway_response, "InvalidSignatureError"),
    (gateway_response, "AccessDeniedError"),
):
    if not callable(getattr(owner, name, None)):
        missing.append(f"{getattr(owner, '__name__', type(owner).__name__)}.{name}")
print(", ".join(missing))
"""


def test_every_function_the_hooks_replace_exists_in_the_emulator(
    emulator: RunningEmulator,
) -> None:
    # GIVEN the emulator's virtualenv (installed by the emulator fixture)
    python = ProjectPaths.discover().venv_python
    targets = [(module, function) for module, function, _ in MEMOISED]
    targets.append((PROVIDER_MODULE, "import_api_from_openapi_spec"))
    targets.append(("rolo.request", "get_raw_path"))
    # WHEN its interpreter looks for every function the hooks replace
    probe = subprocess.run(
        [str(python), "-c", PROBE.replace("TARGETS", repr(targets))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    # THEN none is missing
    assert probe.stdout.strip() == ""


def test_the_emulator_counts_requests_by_service_and_operation(
    emulator: RunningEmulator,
) -> None:
    # GIVEN the counts reset
    http = urllib3.PoolManager(retries=False)
    url = f"{emulator.endpoint_url}/_lambdamesh/requests"
    assert http.request("DELETE", url).status == 204
    # WHEN a client lists DynamoDB's tables twice
    dynamodb = emulator.client("dynamodb")
    dynamodb.list_tables()
    dynamodb.list_tables()
    # THEN the emulator counted both, as requests from outside
    counts = json.loads(http.request("GET", url).data)["requests"]
    assert {
        "service": "dynamodb",
        "operation": "ListTables",
        "internal": False,
        "count": 2,
    } in counts


def test_the_emulator_writes_no_line_per_request_to_its_log(emulator: RunningEmulator) -> None:
    if emulator.home is None:
        pytest.skip("an external LocalStack's log is not ours to read")
    if any(os.environ.get(name) for name in ("LAMBDAMESH_REQUEST_LOG", "LS_LOG", "DEBUG")):
        pytest.skip("the caller's environment asks LocalStack for more log lines")
    # GIVEN a request the emulator answers, and one it refuses
    sqs = emulator.client("sqs")
    sqs.list_queues(QueueNamePrefix="no-such-queue-")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="no-such-queue-at-all")
    # WHEN its log is read THEN neither left LocalStack's line per request there
    # (LAMBDAMESH_REQUEST_LOG=1 keeps those lines)
    log = (emulator.home / "localstack.log").read_text(errors="replace")
    assert "AWS sqs.ListQueues =>" not in log
    assert "AWS sqs.GetQueueUrl =>" not in log


def test_the_emulators_own_resources_answer_as_before_beside_aws_requests(
    emulator: RunningEmulator,
) -> None:
    # GIVEN the emulator, whose internal resources are matched only for paths that may route
    http = urllib3.PoolManager()
    base = f"http://127.0.0.1:{emulator.port}"
    # WHEN its resources are asked for, one that exists, one that does not, with slashes doubled
    health = http.request("GET", f"{base}/_localstack/health")
    doubled = http.request("GET", f"{base}//_localstack//health", redirect=False)
    unknown = http.request("GET", f"{base}/_localstack/no-such-resource")
    # THEN the first answers, the second as werkzeug answers it (merged), the third 404
    assert health.status == 200
    assert "services" in json.loads(health.data)
    assert doubled.status in (200, 301, 308)
    assert unknown.status == 404
    # AND an AWS request still reaches its service
    assert "AccountLimit" in emulator.client("lambda").get_account_settings()
