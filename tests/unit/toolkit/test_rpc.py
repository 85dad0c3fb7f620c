"""Typed RPC: client and server, with a fake Lambda client in between."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from lambdamesh_toolkit.contracts.catalog import GetProductRequest, GetProductResponse, Product
from lambdamesh_toolkit.correlation import current_correlation_id, use_correlation_id
from lambdamesh_toolkit.deadline import current_deadline, use_deadline
from lambdamesh_toolkit.errors import (
    Conflict,
    DependencyUnavailable,
    InvalidRequest,
    NotFound,
    Unprocessable,
)
from lambdamesh_toolkit.resilience import CircuitBreaker, RetryPolicy
from lambdamesh_toolkit.rpc import RpcClient, RpcServer
from tests.support.circuit_breaker import InMemoryCircuitStore

PRODUCT = Product(id="p-1", name="Mug", price_cents=1250, currency="EUR", stock=3)

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


class FakeLambda:
    """Implements ``invoke``: hands the payload to a script (or a real RpcServer)."""

    def __init__(self, *steps: Invoke | BaseException) -> None:
        self.steps = list(steps)
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["InvocationType"] == "RequestResponse"
        payload = json.loads(kwargs["Payload"])
        self.payloads.append(payload)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, BaseException):
            raise step
        return step(payload)


def answer(body: Any, *, function_error: str | None = None) -> Invoke:
    def respond(_: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": io.BytesIO(json.dumps(body).encode()),
        }
        if function_error:
            result["FunctionError"] = function_error
        return result

    return respond


def served_by(server: RpcServer) -> Invoke:
    def respond(payload: dict[str, Any]) -> dict[str, Any]:
        context = SimpleNamespace(aws_request_id="req-rpc-1")
        return answer(server.handle(payload, context))(payload)

    return respond


def catalog_server() -> RpcServer:
    server = RpcServer("catalog")

    @server.method("GetProduct", GetProductRequest)
    def get_product(request: GetProductRequest) -> GetProductResponse:
        if request.product_id != PRODUCT.id:
            raise NotFound("product", request.product_id)
        return GetProductResponse(product=PRODUCT)

    return server


def make_client(fake: FakeLambda, sleeps: list[float], *, attempts: int = 3) -> RpcClient:
    name = f"catalog-rpc-{uuid.uuid4().hex[:6]}"
    return RpcClient(
        "lambdamesh-catalog-dev-rpc",
        name,
        lambda_client=fake,  # type: ignore[arg-type]
        retry=retry_policy(attempts, sleeps),
        breaker=CircuitBreaker(name, InMemoryCircuitStore(), failure_threshold=100),
    )


def retry_policy(attempts: int, sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, sleep=sleeps.append)


def test_call_round_trips_through_the_server_with_the_correlation_id(sleeps: list[float]) -> None:
    # GIVEN a caller in an invocation with a correlation id, and the catalog's RPC server
    use_correlation_id("corr-rpc-1")
    fake = FakeLambda(served_by(catalog_server()))
    client = make_client(fake, sleeps)

    # WHEN the caller calls GetProduct
    response = client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)

    # THEN it gets the typed answer, and the envelope carried method, version and correlation id
    assert response.product == PRODUCT
    envelope = fake.payloads[0]
    assert envelope["method"] == "GetProduct"
    assert envelope["version"] == GetProductRequest.contract_version
    assert envelope["correlation_id"] == "corr-rpc-1"
    assert envelope["payload"] == {"product_id": "p-1"}


def test_server_adopts_the_callers_correlation_id() -> None:
    # GIVEN a server and an envelope carrying a correlation id
    server = RpcServer("catalog")
    seen: list[str] = []

    @server.method("GetProduct", GetProductRequest)
    def get_product(request: GetProductRequest) -> GetProductResponse:
        seen.append(current_correlation_id())
        return GetProductResponse(product=PRODUCT)

    # WHEN it handles the call
    server.handle(
        {
            "method": "GetProduct",
            "version": 1,
            "correlation_id": "corr-up",
            "payload": {"product_id": "p-1"},
        }
    )

    # THEN the method ran under the caller's id
    assert seen == ["corr-up"]


def test_not_found_from_the_method_is_raised_as_not_found(sleeps: list[float]) -> None:
    # GIVEN the catalog server, asked for an unknown product
    fake = FakeLambda(served_by(catalog_server()))
    client = make_client(fake, sleeps)

    # WHEN the caller calls
    with pytest.raises(NotFound, match="p-404"):
        client.call("GetProduct", GetProductRequest(product_id="p-404"), GetProductResponse)

    # THEN it was not retried
    assert len(fake.payloads) == 1


def test_invalid_payload_is_raised_as_invalid_request_naming_the_field(sleeps: list[float]) -> None:
    # GIVEN a server whose method expects GetProductRequest, sent a payload of another shape
    fake = FakeLambda(served_by(catalog_server()))
    client = make_client(fake, sleeps)

    class Wrong(GetProductRequest):
        pass

    # WHEN the caller sends an envelope whose payload misses product_id
    fake.steps = [lambda payload: served_by(catalog_server())({**payload, "payload": {}})]

    # THEN the typed error names the payload field
    with pytest.raises(InvalidRequest) as raised:
        client.call("GetProduct", Wrong(product_id="p-1"), GetProductResponse)
    assert raised.value.field == "payload.product_id"


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ({"method": "Nope", "version": 1, "correlation_id": "c", "payload": {}}, "method"),
        ({"method": "GetProduct", "version": 2, "correlation_id": "c", "payload": {}}, "version"),
        ({"version": 1, "correlation_id": "c", "payload": {}}, "method"),
        ({"method": "GetProduct", "version": 1, "correlation_id": "c"}, "payload"),
    ],
)
def test_server_refuses_bad_envelopes_naming_the_field(
    envelope: dict[str, Any], field: str
) -> None:
    # GIVEN the catalog server
    server = catalog_server()

    # WHEN it is invoked with a bad envelope
    response = server.handle(envelope)

    # THEN it answers an invalid_request error naming the field, without crashing
    assert response["ok"] is False
    assert response["error"]["code"] == "invalid_request"
    assert response["error"]["field"] == field


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("not_found", NotFound),
        ("invalid_request", InvalidRequest),
        ("unprocessable", Unprocessable),
        ("conflict", Conflict),
        ("something_new", DependencyUnavailable),
    ],
)
def test_error_envelopes_map_to_typed_errors(
    code: str, expected: type[Exception], sleeps: list[float]
) -> None:
    # GIVEN a dependency answering an error envelope with this code
    error = {"code": code, "message": "m", "field": "product_id"}
    client = make_client(FakeLambda(answer({"ok": False, "error": error})), sleeps)

    # WHEN the caller calls
    # THEN the matching typed error is raised, keeping the field when the code has one
    with pytest.raises(expected) as raised:
        client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)
    if expected is not DependencyUnavailable:
        assert raised.value.field == "product_id"  # type: ignore[attr-defined]


def test_unavailable_envelope_is_retried_then_raised_with_retry_after(sleeps: list[float]) -> None:
    # GIVEN a dependency whose own dependency is down
    error = {"code": "dependency_unavailable", "message": "db down", "retry_after_s": 1.0}
    fake = FakeLambda(answer({"ok": False, "error": error}))
    client = make_client(fake, sleeps, attempts=2)

    # WHEN the caller calls
    with pytest.raises(DependencyUnavailable) as raised:
        client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)

    # THEN it was retried after the hinted wait, and the hint is passed on
    assert len(fake.payloads) == 2
    assert sleeps == [1.0]
    assert raised.value.retry_after_s == 1.0


def test_function_error_is_dependency_unavailable_and_not_retried(sleeps: list[float]) -> None:
    # GIVEN a function that crashed (Lambda answers FunctionError: Unhandled)
    crash = {"errorType": "KeyError", "errorMessage": "'price'", "stackTrace": []}
    fake = FakeLambda(answer(crash, function_error="Unhandled"))
    client = make_client(fake, sleeps)

    # WHEN the caller calls
    with pytest.raises(DependencyUnavailable, match="KeyError"):
        client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)

    # THEN it called once: a crash is not retried
    assert len(fake.payloads) == 1


def test_read_timeout_is_retried_for_idempotent_calls(sleeps: list[float]) -> None:
    # GIVEN an invocation that times out once, then answers
    timeout = ReadTimeoutError(endpoint_url="http://lambda")
    fake = FakeLambda(timeout, served_by(catalog_server()))
    client = make_client(fake, sleeps)

    # WHEN the caller calls an idempotent method
    response = client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)

    # THEN the second attempt answered
    assert response.product.id == "p-1"
    assert len(fake.payloads) == 2
    assert len(sleeps) == 1


def test_read_timeout_is_not_retried_for_non_idempotent_calls(sleeps: list[float]) -> None:
    # GIVEN an invocation that times out
    fake = FakeLambda(ReadTimeoutError(endpoint_url="http://lambda"))
    client = make_client(fake, sleeps)

    # WHEN the caller calls a method declared non-idempotent
    with pytest.raises(DependencyUnavailable, match="timeout"):
        client.call(
            "GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse, idempotent=False
        )

    # THEN one attempt only
    assert len(fake.payloads) == 1


def test_throttling_is_retried_and_missing_function_is_not(sleeps: list[float]) -> None:
    # GIVEN Lambda throttling once, and separately a function that does not exist
    throttled = ClientError({"Error": {"Code": "TooManyRequestsException"}}, "Invoke")
    missing = ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "Invoke")
    flaky = FakeLambda(throttled, served_by(catalog_server()))
    absent = FakeLambda(missing)

    # WHEN each is called
    make_client(flaky, sleeps).call(
        "GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse
    )
    with pytest.raises(DependencyUnavailable, match="not found"):
        make_client(absent, sleeps).call(
            "GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse
        )

    # THEN throttling was retried once, the missing function not at all
    assert len(flaky.payloads) == 2
    assert len(absent.payloads) == 1


def test_result_breaking_the_contract_is_dependency_unavailable(sleeps: list[float]) -> None:
    # GIVEN a dependency answering ok with a result of the wrong shape
    client = make_client(FakeLambda(answer({"ok": True, "result": {"nope": 1}})), sleeps)

    # WHEN the caller calls
    # THEN the contract violation is the dependency's failure
    with pytest.raises(DependencyUnavailable, match="does not match GetProductResponse"):
        client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)


def test_open_circuit_refuses_without_invoking(sleeps: list[float]) -> None:
    # GIVEN a dependency that crashes, behind a breaker opening after 2 failures
    crash = {"errorType": "Boom", "errorMessage": "x"}
    fake = FakeLambda(answer(crash, function_error="Unhandled"))
    name = f"catalog-rpc-{uuid.uuid4().hex[:6]}"
    breaker = CircuitBreaker(name, InMemoryCircuitStore(), failure_threshold=2)
    client = RpcClient(
        "fn",
        name,
        lambda_client=fake,  # type: ignore[arg-type]
        retry=retry_policy(1, sleeps),
        breaker=breaker,
    )

    # WHEN it is called three times
    for _ in range(2):
        with pytest.raises(DependencyUnavailable, match="Boom"):
            client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)
    with pytest.raises(DependencyUnavailable, match="circuit open"):
        client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)

    # THEN the third call never reached Lambda
    assert len(fake.payloads) == 2


def test_method_crash_propagates_so_lambda_reports_function_error() -> None:
    # GIVEN a server whose method has a bug
    server = RpcServer("catalog")

    @server.method("GetProduct", GetProductRequest)
    def get_product(request: GetProductRequest) -> GetProductResponse:
        raise KeyError("price")

    # WHEN it handles a call
    # THEN the exception escapes (Lambda turns it into FunctionError: Unhandled)
    with pytest.raises(KeyError):
        server.handle(
            {
                "method": "GetProduct",
                "version": 1,
                "correlation_id": "c",
                "payload": {"product_id": "p"},
            }
        )


def test_registering_a_method_twice_is_refused() -> None:
    # GIVEN a server with GetProduct
    server = catalog_server()

    # WHEN GetProduct is registered again
    # THEN it is refused
    with pytest.raises(ValueError, match="twice"):
        server.method("GetProduct", GetProductRequest)(
            lambda request: GetProductResponse(product=PRODUCT)
        )


def deadline_recording_server() -> tuple[RpcServer, list[float | None]]:
    """A catalog server whose GetProduct notes the deadline it runs under."""
    server = RpcServer("catalog")
    seen: list[float | None] = []

    @server.method("GetProduct", GetProductRequest)
    def get_product(request: GetProductRequest) -> GetProductResponse:
        seen.append(current_deadline())
        return GetProductResponse(product=PRODUCT)

    return server, seen


def test_the_deadline_travels_with_the_call_and_the_server_keeps_within_it(
    sleeps: list[float], frozen_deadline_clock: float
) -> None:
    # GIVEN a caller with a deadline 1.5 s away (on a clock that stands still: a stalled worker
    # cannot use them up before the call), and a server whose method reads its own
    deadline = use_deadline(frozen_deadline_clock + 1.5)
    assert deadline is not None
    server, seen = deadline_recording_server()

    fake = FakeLambda(served_by(server))
    # WHEN the caller calls the method
    make_client(fake, sleeps).call(
        "GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse
    )
    # THEN the envelope carried the deadline, and the server worked under it, not its own budget
    assert fake.payloads[0]["deadline_ms"] == int(deadline * 1000)
    assert seen == [int(deadline * 1000) / 1000]


def test_a_server_called_without_a_deadline_starts_its_own_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a server whose budget is 7 s, called by an old client that sends no deadline
    monkeypatch.setenv("REQUEST_DEADLINE_S", "7")
    server, seen = deadline_recording_server()

    envelope = {"method": "GetProduct", "version": 1, "correlation_id": "c-1"}
    # WHEN it is invoked
    before = time.time()
    server.handle({**envelope, "payload": {"product_id": "p-1"}})
    after = time.time()
    # THEN its method ran under a deadline 7 s from its arrival
    [deadline] = seen
    assert deadline is not None
    assert before + 7 <= deadline <= after + 7
