"""Benchmark: the synchronous calls between the deployed services, beside their floor.

Latency (p50/p99 of ≥ 100 warm samples) of

- ``POST /orders`` through API Gateway (orders → users over HTTP, → catalog by RPC, DynamoDB);
- ``GET /users/{id}`` through API Gateway (the call orders makes to users: signed with SigV4, as
  orders signs it, since the route requires IAM authorisation; the emulator checks nothing);
- RPC ``GetProduct``: a direct ``Invoke`` of the catalog's RPC function with the envelope;

each beside a no-op function reached the same way in the same run (the floor: the no-op behind
an API Gateway ``AWS_PROXY`` route, and the same no-op invoked directly), samples interleaved so
both see the same machine. Targets: RPC ≤ 1.5x floor; a single HTTP hop through API Gateway
≤ 2x floor (``POST /orders`` makes three hops of its own and has no ratio target).

Per service: import time of the handler module from the deployed package (median of 5 fresh
interpreters, target ≤ 300 ms) and the zipped package size (target ≤ 10 MB).

Figures are printed, never asserted: these machines are noisy. Run with ``-s``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from botocore.credentials import Credentials

from lambdamesh.deploy.packaging import PACKAGE_NAME
from lambdamesh.emulator.clients import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.settings import REGION
from lambdamesh_localstack.interpreters import find_interpreter
from lambdamesh_toolkit.aws.signing import RequestSigner, SigV4Signer
from tests.conftest import RunningEmulator
from tests.e2e.conftest import SERVICES, DeployedSystem, deploy_system
from tests.e2e.lambda_support import create_function, unique_name

WARMUP = 10
SAMPLES = 120
IMPORT_RUNS = 5
RPC_TARGET = 1.5
HTTP_TARGET = 2.0
IMPORT_TARGET_MS = 300.0
PACKAGE_TARGET_MB = 10.0
STAGE = "api"

NOOP = """
    def handler(event, context):
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}
"""

IMPORT_PROBE = (
    "import time, sys; sys.path[:0] = [{package!r}, {runtime!r}]; "
    "t = time.perf_counter(); import app; print(time.perf_counter() - t)"
)

_http = urllib3.PoolManager(maxsize=4, retries=False)
_TIMEOUT = urllib3.Timeout(connect=2.0, read=30.0)


@dataclass(frozen=True)
class Floor:
    """The no-op function, invocable directly and through API Gateway."""

    function_name: str
    url: str


@pytest.fixture(scope="module")
def system(emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> DeployedSystem:
    """Every service deployed (reused as is when the stacks are current)."""
    return deploy_system(emulator, tmp_path_factory.mktemp("bench-deploy"))


@pytest.fixture(scope="module")
def floor(emulator: RunningEmulator) -> Iterator[Floor]:
    """A no-op function behind a REST API ``AWS_PROXY`` route, removed afterwards."""
    lambda_client = emulator.client("lambda")
    apigateway = emulator.client("apigateway")
    name = create_function(lambda_client, NOOP, name=unique_name("noop-floor"))
    arn = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    api_id = apigateway.create_rest_api(name=name)["id"]
    try:
        root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
        resource = apigateway.create_resource(restApiId=api_id, parentId=root, pathPart="noop")
        apigateway.put_method(
            restApiId=api_id,
            resourceId=resource["id"],
            httpMethod="ANY",
            authorizationType="NONE",
        )
        apigateway.put_integration(
            restApiId=api_id,
            resourceId=resource["id"],
            httpMethod="ANY",
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations",
        )
        lambda_client.add_permission(
            FunctionName=name,
            StatementId="apigateway",
            Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
        )
        apigateway.create_deployment(restApiId=api_id, stageName=STAGE)
        yield Floor(name, f"{emulator.endpoint_url}/_aws/execute-api/{api_id}/{STAGE}/noop")
    finally:
        apigateway.delete_rest_api(restApiId=api_id)
        lambda_client.delete_function(FunctionName=name)


def _timed_ms(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(len(ordered), rank) - 1]


def _compare(
    label: str,
    measured: Callable[[], None],
    floor_label: str,
    baseline: Callable[[], None],
    target: float | None,
) -> None:
    """Warm both up, sample them interleaved, print p50/p99 and the ratio to the floor."""
    for _ in range(WARMUP):
        measured()
        baseline()
    samples: list[float] = []
    floor_samples: list[float] = []
    for _ in range(SAMPLES):
        samples.append(_timed_ms(measured))
        floor_samples.append(_timed_ms(baseline))
    p50, p99 = _percentile(samples, 0.5), _percentile(samples, 0.99)
    f50, f99 = _percentile(floor_samples, 0.5), _percentile(floor_samples, 0.99)
    ratio = p50 / f50
    verdict = "" if target is None else f"  target ≤ {target:.1f}x: {_verdict(ratio <= target)}"
    print(f"  {label:<34} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  n={len(samples)}")
    print(f"  {floor_label:<34} p50 {f50:7.1f} ms  p99 {f99:7.1f} ms  n={len(floor_samples)}")
    print(f"  {'':<34} p50 ratio x{ratio:.2f}  p99 ratio x{p99 / f99:.2f}{verdict}")


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _request(
    method: str,
    url: str,
    body: Any = None,
    expected: int = 200,
    signer: RequestSigner | None = None,
) -> None:
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signer is not None:
        headers = signer.sign(method, url, headers, payload)
    response = _http.request(method, url, body=payload, headers=headers, timeout=_TIMEOUT)
    assert response.status == expected, response.data[:300]


def _invoke(lambda_client: Any, function_name: str, payload: bytes) -> None:
    response = lambda_client.invoke(FunctionName=function_name, Payload=payload)
    body = response["Payload"].read()
    assert "FunctionError" not in response, body[:300]


def _new_user(system: DeployedSystem) -> str:
    response = _http.request(
        "POST",
        system["users"].url("users"),
        body=json.dumps({"email": f"{uuid.uuid4().hex[:12]}@example.org", "name": "Bench"}),
        headers={"Content-Type": "application/json"},
        timeout=_TIMEOUT,
    )
    assert response.status == 201, response.data
    user_id: str = json.loads(response.data)["id"]
    return user_id


def test_latency_of_sync_calls_beside_the_floor(
    system: DeployedSystem, floor: Floor, emulator: RunningEmulator
) -> None:
    lambda_client = emulator.client("lambda")
    user_id = _new_user(system)
    order = {"user_id": user_id, "items": [{"product_id": "p-ceramic-mug", "quantity": 1}]}
    envelope = json.dumps(
        {
            "method": "GetProduct",
            "version": 1,
            "correlation_id": "bench",
            "payload": {"product_id": "p-ceramic-mug"},
        }
    ).encode()
    rpc_function = system["catalog"].functions["Rpc"]
    # The users lookup is internal (IAM): signed as orders signs it, with the emulator's keys.
    signer = SigV4Signer(
        region=REGION, credentials=Credentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
    )
    print(f"\nsync calls, {SAMPLES} samples each after {WARMUP} warm-up, interleaved with floor")
    _compare(
        "POST /orders (API Gateway)",
        lambda: _request("POST", system["orders"].url("orders"), order, expected=201),
        "no-op (API Gateway)",
        lambda: _request("POST", floor.url, {}),
        None,
    )
    _compare(
        "GET /users/{id} (API Gateway)",
        lambda: _request("GET", system["users"].url(f"users/{user_id}"), signer=signer),
        "no-op (API Gateway)",
        lambda: _request("GET", floor.url),
        HTTP_TARGET,
    )
    _compare(
        "RPC GetProduct (Invoke)",
        lambda: _invoke(lambda_client, rpc_function, envelope),
        "no-op (Invoke)",
        lambda: _invoke(lambda_client, floor.function_name, envelope),
        RPC_TARGET,
    )


def _deployed_package(system: DeployedSystem, service: str) -> Path:
    """The cached package of ``service`` (the cache keeps only the latest build)."""
    builds = [
        entry
        for entry in (system.cache_dir / service).iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    assert len(builds) == 1, builds
    return builds[0] / PACKAGE_NAME


def _import_seconds(interpreter: str, package_dir: Path, runtime_lib: Path) -> float:
    probe = IMPORT_PROBE.format(package=str(package_dir), runtime=str(runtime_lib))
    completed = subprocess.run(
        [interpreter, "-I", "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def test_handler_import_time_and_package_size(system: DeployedSystem, tmp_path: Path) -> None:
    runtime_lib = ProjectPaths.discover().lambda_runtime
    interpreter = find_interpreter("python3.13")
    print(f"\nhandler import ({interpreter}, median of {IMPORT_RUNS} fresh processes)")
    for service in SERVICES:
        package = _deployed_package(system, service)
        unpacked = tmp_path / service
        with zipfile.ZipFile(package) as archive:
            archive.extractall(unpacked)
        runs = [_import_seconds(interpreter, unpacked, runtime_lib) for _ in range(IMPORT_RUNS)]
        import_ms = statistics.median(runs) * 1000
        size_mb = package.stat().st_size / 1_000_000
        print(
            f"  {service:<10} import {import_ms:6.1f} ms "
            f"(target ≤ {IMPORT_TARGET_MS:.0f}: {_verdict(import_ms <= IMPORT_TARGET_MS)})"
            f"   package {size_mb:5.2f} MB "
            f"(target ≤ {PACKAGE_TARGET_MB:.0f}: {_verdict(size_mb <= PACKAGE_TARGET_MB)})"
        )
