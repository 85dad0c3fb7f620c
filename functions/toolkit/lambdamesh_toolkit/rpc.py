"""Typed RPC over direct Lambda invocation, client and server.

The wire format is the envelope in :mod:`lambdamesh_toolkit.contracts.rpc`:
the client sends ``RpcRequest{method, version, correlation_id, payload, deadline_ms,
traceparent}`` as the ``Invoke`` payload (``RequestResponse``); the server answers
``RpcResponse{ok, result | error}``. Typed errors raised by a method travel as
``error`` and are raised again, as the same class, on the client side.

Client behaviour matches :class:`lambdamesh_toolkit.http_client.ServiceHttpClient`:
connect/read timeouts on every attempt (botocore's own retries off so the
toolkit's policy is the only one), retries with full jitter for idempotent
methods, the dependency's circuit breaker around each attempt, and the
correlation id carried in the envelope. A call is an ``rpc.call`` hop and serving it an
``rpc.serve`` hop (:mod:`lambdamesh_toolkit.hops`), joined by the envelope's ``traceparent``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.errors import error_code
from lambdamesh_toolkit.contracts.rpc import RpcError, RpcRequest, RpcResponse
from lambdamesh_toolkit.correlation import current_correlation_id, use_correlation_id
from lambdamesh_toolkit.deadline import begin_deadline, configured_budget_s, current_deadline
from lambdamesh_toolkit.errors import (
    DependencyUnavailable,
    InvalidRequest,
    ServiceError,
    error_from_wire,
    invalid_request_from,
)
from lambdamesh_toolkit.hops import RPC_CALL, RPC_SERVE, inbound_hop, outbound_hop
from lambdamesh_toolkit.logging import bind_invocation
from lambdamesh_toolkit.resilience import (
    AttemptFailed,
    CircuitBreaker,
    RetryPolicy,
    call_dependency,
    time_for_attempt,
    timed_out,
)
from lambdamesh_toolkit.trace_context import TRACEPARENT, current_traceparent

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_lambda.client import LambdaClient

# Lambda API errors that say "busy, try again" rather than "wrong request".
_RETRYABLE_LAMBDA_ERRORS = frozenset(
    {
        "TooManyRequestsException",
        "ServiceException",
        "ResourceConflictException",
        "ResourceNotReadyException",
        "EC2ThrottledException",
        "ENILimitReachedException",
        "SubnetIPAddressLimitReachedException",
        "ThrottlingException",
    }
)


def _contract_version(model_type: type[BaseModel]) -> int:
    version = getattr(model_type, "contract_version", 1)
    return version if isinstance(version, int) else 1


class RpcClient:
    """Client of one RPC dependency (a Lambda function).

    Create one per dependency at module level so the boto3 client and the
    breaker are reused by warm invocations.

    Parameters
    ----------
    function_name : str
        Name or ARN of the function to invoke.
    dependency_name : str
        Name in errors and logs, and the circuit breaker's name.
    lambda_client : LambdaClient | None
        A client to use (tests pass a fake); by default one is created on
        first call with the timeouts below and botocore retries off.
    timeout_s : float
        Read timeout per attempt: how long one invocation may take.
    connect_timeout_s : float
        Connect timeout per attempt.
    retry : RetryPolicy | None
        Default: ``RetryPolicy()``.
    breaker : CircuitBreaker | None
        Default: :meth:`CircuitBreaker.from_environment`.
    """

    def __init__(
        self,
        function_name: str,
        dependency_name: str,
        *,
        lambda_client: LambdaClient | None = None,
        timeout_s: float = 3.0,
        connect_timeout_s: float = 1.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        self.function_name = function_name
        self.dependency_name = dependency_name
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker.from_environment(dependency_name)
        self._lambda_client = lambda_client

    def call[ResponseT: BaseModel](
        self,
        method: str,
        request: BaseModel,
        response_type: type[ResponseT],
        *,
        idempotent: bool = True,
    ) -> ResponseT:
        """Call ``method`` and return its typed response.

        Parameters
        ----------
        method : str
            Method name registered on the server, e.g. ``GetProduct``.
        request : BaseModel
            The request contract.
        response_type : type[BaseModel]
            The response contract to validate the result against.
        idempotent : bool
            Whether the method may run twice for one call (reads: yes). Only
            idempotent calls are retried after a timeout or server error.

        Returns
        -------
        BaseModel
            The validated response.

        Raises
        ------
        NotFound, InvalidRequest, Unprocessable, Conflict
            The typed error the method raised.
        DependencyUnavailable
            Circuit open, timeouts/throttling/crashes beyond the retries, or an
            answer that breaks the contract.
        """
        deadline = current_deadline()
        envelope = RpcRequest(
            method=method,
            version=_contract_version(type(request)),
            correlation_id=current_correlation_id(),
            payload=request.model_dump(mode="json"),
            deadline_ms=None if deadline is None else int(deadline * 1000),
        )

        def attempt() -> RpcResponse:
            # The current span: the call's, or a retry's (see call_dependency).
            sent = envelope.model_copy(update={"traceparent": current_traceparent()})
            return self._attempt(sent.model_dump_json().encode())

        with outbound_hop(RPC_CALL, self.dependency_name, method=method):
            response = call_dependency(
                self.dependency_name,
                attempt,
                retry=self.retry,
                breaker=self.breaker,
                repeatable=idempotent,
            )
            # A typed error raised here is the hop's outcome (refused, or failed from 500 on).
            return self._result(response, response_type)

    def _attempt(self, payload: bytes) -> RpcResponse:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        read_timeout_s = time_for_attempt(self.timeout_s)
        client = self._client(read_timeout_s)
        try:
            answer = client.invoke(
                FunctionName=self.function_name,
                InvocationType="RequestResponse",
                Payload=payload,
            )
            raw = answer["Payload"].read()
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            # No address in a reason: reasons reach callers in 503 bodies.
            raise AttemptFailed("cannot connect", retryable=True, never_sent=True) from exc
        except ReadTimeoutError as exc:
            raise timed_out(read_timeout_s, self.timeout_s) from exc
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                # The function does not exist: a deployment problem that no
                # retry will fix, but a reason to shed load all the same.
                raise AttemptFailed(
                    f"function {self.function_name!r} not found", retryable=False
                ) from exc
            raise AttemptFailed(
                f"Lambda {code}", retryable=code in _RETRYABLE_LAMBDA_ERRORS
            ) from exc
        except BotoCoreError as exc:
            raise AttemptFailed(f"invoke failed ({type(exc).__name__})", retryable=True) from exc

        if answer.get("FunctionError"):
            # The function crashed (unhandled exception, timeout, out of
            # memory): the service is unhealthy. Not retried, since a crash is
            # more often a bug than bad luck and retrying it triples the load.
            raise AttemptFailed(f"function error: {_crash_summary(raw)}", retryable=False)
        try:
            response = RpcResponse.model_validate_json(raw)
        except ValidationError as exc:
            raise AttemptFailed(
                f"answer is not an RPC response ({exc.error_count()} error(s))", retryable=False
            ) from None
        if response.error is not None and response.error.code == DependencyUnavailable.code:
            # The server is up but its own dependencies are not: the same
            # situation as an HTTP 503, so it is retried and counted the same.
            raise AttemptFailed(
                f"unavailable: {response.error.message}",
                retryable=True,
                retry_after_s=response.error.retry_after_s,
            )
        return response

    def _result[ResponseT: BaseModel](
        self, response: RpcResponse, response_type: type[ResponseT]
    ) -> ResponseT:
        if response.error is not None:
            error = response.error
            raise error_from_wire(
                error.code,
                error.message,
                error.field,
                dependency=self.dependency_name,
                retry_after_s=error.retry_after_s,
            )
        try:
            return response_type.model_validate(response.result)
        except ValidationError as exc:
            reason = f"result does not match {response_type.__name__}: {exc.error_count()} error(s)"
            raise DependencyUnavailable(self.dependency_name, reason=reason) from None

    def _client(self, read_timeout_s: float) -> LambdaClient:
        """A client whose read timeout is ``read_timeout_s`` (rounded up to a tenth of a
        second, so that a warm container keeps a handful of clients, not one per call)."""
        if self._lambda_client is not None:
            return self._lambda_client
        # The call's own timeouts; botocore's retries off: the retry policy decides.
        return clients.lambda_(
            clients.REQUEST.but(
                connect_timeout_s=min(self.connect_timeout_s, read_timeout_s),
                read_timeout_s=math.ceil(read_timeout_s * 10) / 10,
                max_attempts=1,
            )
        )


def _crash_summary(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return "unreadable error payload"
    if isinstance(body, dict):
        return f"{body.get('errorType', 'Error')}: {body.get('errorMessage', '')}"[:300]
    return str(body)[:300]


@dataclass(frozen=True)
class _Method[RequestT: BaseModel]:
    request_type: type[RequestT]
    handler: Callable[[RequestT], BaseModel]


class RpcServer:
    """The server side: a registry of methods behind one Lambda handler.

    ``functions/catalog/app.py`` serves RPC this way: it builds
    ``rpc = RpcServer("catalog", logger=logger)``, registers ``get_product_rpc`` with
    ``@rpc.method("GetProduct", GetProductRequest)``, and its ``@app.lambda_function``
    ``rpc_handler`` answers every invocation with ``rpc.handle(event, context)``.

    Parameters
    ----------
    service : str
        Name of the serving service (in logs).
    logger : aws_lambda_powertools.Logger | None
        When given, bound to each call's correlation and request ids.
    """

    def __init__(self, service: str, *, logger: Logger | None = None) -> None:
        self.service = service
        self.logger = logger
        self._methods: dict[str, _Method[Any]] = {}

    def method[RequestT: BaseModel, ResponseT: BaseModel](
        self, name: str, request_type: type[RequestT]
    ) -> Callable[[Callable[[RequestT], ResponseT]], Callable[[RequestT], ResponseT]]:
        """Register a method taking ``request_type`` and returning a contract."""

        def register(handler: Callable[[RequestT], ResponseT]) -> Callable[[RequestT], ResponseT]:
            if name in self._methods:
                raise ValueError(f"RPC method {name!r} is registered twice")
            self._methods[name] = _Method(request_type, handler)
            return handler

        return register

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Serve one invocation.

        Parameters
        ----------
        event : Mapping[str, Any]
            The invocation payload (an ``RpcRequest``).
        context : Any
            The Lambda context (its ``aws_request_id`` goes into the logs).

        Returns
        -------
        dict
            The ``RpcResponse`` as JSON-ready data.
        """
        raw_correlation = _field(event, "correlation_id")
        correlation_id = use_correlation_id(
            raw_correlation if isinstance(raw_correlation, str) else None
        )
        raw_deadline = _field(event, "deadline_ms")
        begin_deadline(
            configured_budget_s(),
            inherited=raw_deadline / 1000 if type(raw_deadline) is int else None,
        )
        if self.logger is not None:
            bind_invocation(self.logger, correlation_id, getattr(context, "aws_request_id", None))
        with inbound_hop(
            RPC_SERVE, _method_of(event), _field(event, TRACEPARENT), logger=self.logger
        ) as served:
            try:
                result = self._dispatch(event)
            except ServiceError as exc:
                if self.logger is not None:
                    self.logger.info(
                        "rpc call refused", extra={"error_code": exc.code, "field": exc.field}
                    )
                served.failed_with(exc)
                return _error_response(exc)
            except Exception:
                # Left to crash the invocation (the caller sees FunctionError and
                # counts it against the breaker); logged first so the stack trace
                # is a JSON line with the correlation id.
                if self.logger is not None:
                    self.logger.exception("rpc method failed")
                raise
            return RpcResponse(ok=True, result=result.model_dump(mode="json")).model_dump(
                mode="json"
            )

    def _dispatch(self, event: Mapping[str, Any]) -> BaseModel:
        try:
            envelope = RpcRequest.model_validate(event)
        except ValidationError as exc:
            raise invalid_request_from(exc) from None
        method = self._methods.get(envelope.method)
        if method is None:
            raise InvalidRequest("method", f"unknown method {envelope.method!r} on {self.service}")
        expected = _contract_version(method.request_type)
        if envelope.version != expected:
            raise InvalidRequest(
                "version", f"{envelope.method} accepts version {expected}, got {envelope.version}"
            )
        try:
            request = method.request_type.model_validate(envelope.payload)
        except ValidationError as exc:
            raise invalid_request_from(exc, prefix="payload") from None
        return method.handler(request)


def _field(event: object, name: str) -> object:
    """Field ``name`` of an invocation payload read before it is validated (``None`` if absent)."""
    return event.get(name) if isinstance(event, Mapping) else None


def _method_of(event: object) -> str:
    """The method an ``rpc.serve`` hop entered, when the payload names one that could be."""
    method = _field(event, "method")
    return method[:64] if isinstance(method, str) and method.isidentifier() else "?"


def _error_response(exc: ServiceError) -> dict[str, Any]:
    retry_after = exc.retry_after_s if isinstance(exc, DependencyUnavailable) else None
    error = RpcError(code=exc.code, message=exc.message, field=exc.field, retry_after_s=retry_after)
    return RpcResponse(ok=False, error=error).model_dump(mode="json")
