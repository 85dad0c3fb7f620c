"""HTTP client for calling another service through API Gateway.

Every request has a connect and a read timeout (never beyond the request's
deadline, which it carries in ``X-Request-Deadline``), carries the correlation id
and the ``traceparent`` of its ``http`` hop (:mod:`lambdamesh_toolkit.hops`),
and goes through :func:`lambdamesh_toolkit.resilience.call_dependency`:

* connection errors, timeouts and 429/502/503/504 are retried with full
  jitter, but only when repeating the request is safe: GET/PUT/DELETE, or a
  request with an ``Idempotency-Key`` (a request whose connection could not
  even be opened is always safe to repeat);
* every such failure, and any other 5xx, counts against the dependency's
  circuit breaker (but for a timeout the caller's own deadline cut short:
  :mod:`lambdamesh_toolkit.resilience`); while the circuit is open no request is made;
* other answers, 4xx included, come back as :class:`HttpResult`: a 404 is the
  dependency working correctly, not a failure.

A client given a ``signer`` (:class:`~lambdamesh_toolkit.aws.signing.RequestSigner`, e.g.
:class:`~lambdamesh_toolkit.aws.signing.SigV4Signer` for a route that requires IAM
authorisation) signs every attempt, retries included, as the last step before sending: each
attempt carries its own span's ``traceparent`` and its own signature date.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lambdamesh_toolkit.correlation import CORRELATION_HEADER, current_correlation_id
from lambdamesh_toolkit.deadline import DEADLINE_HEADER, current_deadline, header_value
from lambdamesh_toolkit.errors import DependencyUnavailable, ServiceError, error_from_wire
from lambdamesh_toolkit.hops import HTTP, outbound_hop
from lambdamesh_toolkit.resilience import (
    RETRYABLE_STATUSES,
    AttemptFailed,
    CircuitBreaker,
    RetryPolicy,
    call_dependency,
    parse_retry_after,
    time_for_attempt,
    timed_out,
)
from lambdamesh_toolkit.trace_context import TRACEPARENT, current_traceparent

if TYPE_CHECKING:
    import urllib3
    from pydantic import BaseModel

    from lambdamesh_toolkit.aws.signing import RequestSigner

IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class HttpResult:
    """A dependency's answer.

    Attributes
    ----------
    status : int
        HTTP status.
    headers : Mapping[str, str]
        Response headers (case-insensitive mapping).
    body : bytes
        Raw body.
    dependency : str
        Who answered (used when rebuilding typed errors).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    dependency: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """Decode the body as JSON.

        Raises
        ------
        DependencyUnavailable
            When the body is not JSON: the dependency broke its contract.
        """
        try:
            return json.loads(self.body)
        except ValueError:
            raise DependencyUnavailable(
                self.dependency, reason=f"HTTP {self.status} answer is not JSON"
            ) from None

    def model[ModelT: BaseModel](self, model_type: type[ModelT]) -> ModelT:
        """Validate the body as ``model_type``.

        Raises
        ------
        DependencyUnavailable
            When the body does not match the contract.
        """
        from pydantic import ValidationError

        try:
            return model_type.model_validate_json(self.body)
        except ValidationError as exc:
            raise DependencyUnavailable(
                self.dependency,
                reason=f"answer does not match {model_type.__name__}: {exc.error_count()} error(s)",
            ) from None

    def service_error(self) -> ServiceError | None:
        """Rebuild the typed error of a non-2xx answer (``None`` for 2xx)."""
        if self.ok:
            return None
        code, message, field = "unexpected_status", f"HTTP {self.status}", None
        try:
            error = json.loads(self.body)["error"]
            code, message, field = str(error["code"]), str(error["message"]), error.get("field")
        except (ValueError, KeyError, TypeError):
            pass
        return error_from_wire(
            code,
            message,
            field,
            dependency=self.dependency,
            retry_after_s=parse_retry_after(self.headers.get("Retry-After")),
        )

    def raise_for_error(self) -> HttpResult:
        """Raise the typed error of a non-2xx answer; return ``self`` otherwise."""
        error = self.service_error()
        if error is not None:
            raise error
        return self


class ServiceHttpClient:
    """Client of one HTTP dependency (one API Gateway stage).

    Create one per dependency at module level: the connection pool and the
    breaker are then reused by every warm invocation.

    Parameters
    ----------
    base_url : str
        Stage URL, e.g. ``https://abc.execute-api.us-east-1.amazonaws.com/api``
        or the emulator's ``{endpoint}/_aws/execute-api/{api_id}/{stage}``.
    dependency_name : str
        Name in errors and logs, and the circuit breaker's name.
    connect_timeout_s, read_timeout_s : float
        Per attempt.
    retry : RetryPolicy | None
        Default: ``RetryPolicy()``.
    breaker : CircuitBreaker | None
        Default: the DynamoDB-backed circuit from the ``CIRCUIT_BREAKER_*``
        environment (:meth:`CircuitBreaker.from_environment`).
    signer : RequestSigner | None
        Signs each attempt once its headers are set (a dependency whose routes require IAM
        authorisation); default: requests go unsigned.
    """

    def __init__(
        self,
        base_url: str,
        dependency_name: str,
        *,
        connect_timeout_s: float = 1.0,
        read_timeout_s: float = 3.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        signer: RequestSigner | None = None,
    ) -> None:
        if connect_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        self.base_url = base_url.rstrip("/")
        self.dependency_name = dependency_name
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker.from_environment(dependency_name)
        self.signer = signer
        self._pool: urllib3.PoolManager | None = None

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> HttpResult:
        """GET ``path`` (idempotent: retried)."""
        return self.request("GET", path, headers=headers)

    def post(
        self,
        path: str,
        body: Any,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """POST a JSON body; retried only when ``idempotency_key`` is given.

        Parameters
        ----------
        path : str
            Path under the base URL.
        body : Any
            A pydantic model or anything ``json.dumps`` accepts.
        idempotency_key : str | None
            Sent as ``Idempotency-Key``; the dependency must deduplicate on it.
        """
        return self.request(
            "POST", path, body=body, idempotency_key=idempotency_key, headers=headers
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """Send one logical request (possibly several attempts).

        Raises
        ------
        DependencyUnavailable
            Circuit open, attempts exhausted, or a failure not safe to retry.
        """
        method = method.upper()
        url = self.base_url + "/" + path.lstrip("/")
        payload = _encode(body)
        sent_headers = {
            "Accept": "application/json",
            CORRELATION_HEADER: current_correlation_id(),
            **(headers or {}),
        }
        if payload is not None:
            sent_headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            sent_headers[IDEMPOTENCY_HEADER] = idempotency_key
        repeatable = method in _IDEMPOTENT_METHODS or idempotency_key is not None

        deadline = current_deadline()
        if deadline is not None:
            sent_headers[DEADLINE_HEADER] = header_value(deadline)

        def attempt() -> HttpResult:
            # The current span: the call's, or a retry's (see call_dependency).
            headers = with_traceparent(sent_headers)
            if self.signer is not None:
                # Last, over the headers as sent; every attempt anew (date, traceparent).
                headers = self.signer.sign(method, url, headers, payload)
            return self._attempt(method, url, payload, headers)

        with outbound_hop(HTTP, self.dependency_name, method=method) as call:
            result = call_dependency(
                self.dependency_name,
                attempt,
                retry=self.retry,
                breaker=self.breaker,
                repeatable=repeatable,
            )
            call.answered(result.status)
            return result

    def _attempt(
        self, method: str, url: str, payload: bytes | None, headers: Mapping[str, str]
    ) -> HttpResult:
        from urllib3 import Timeout
        from urllib3.exceptions import (
            ConnectTimeoutError,
            HTTPError,
            NewConnectionError,
        )
        from urllib3.exceptions import TimeoutError as Urllib3Timeout

        timeout = Timeout(
            connect=time_for_attempt(self.connect_timeout_s),
            read=time_for_attempt(self.read_timeout_s),
        )
        try:
            response = self._pool_manager().request(
                method,
                url,
                body=payload,
                headers=dict(headers),
                timeout=timeout,
                # Our retry policy and breaker apply; urllib3's own retries and
                # redirects would multiply attempts behind their back.
                retries=False,
                redirect=False,
            )
        # The reasons name what happened, never where: they reach callers in 503 bodies, and
        # an address or a port is nobody's business outside (the cause stays chained).
        except (NewConnectionError, ConnectTimeoutError) as exc:
            raise AttemptFailed("cannot connect", retryable=True, never_sent=True) from exc
        except Urllib3Timeout as exc:
            given_s = timeout.read_timeout or self.read_timeout_s
            raise timed_out(given_s, self.read_timeout_s) from exc
        except HTTPError as exc:
            # Connection reset or protocol error after sending: the request
            # may have been processed, so it is retried only if repeatable.
            raise AttemptFailed(
                f"connection failed ({type(exc).__name__})", retryable=True
            ) from exc
        result = HttpResult(
            status=response.status,
            headers=response.headers,
            body=response.data,
            dependency=self.dependency_name,
        )
        if result.status in RETRYABLE_STATUSES:
            raise AttemptFailed(
                f"HTTP {result.status}",
                retryable=True,
                retry_after_s=parse_retry_after(result.headers.get("Retry-After")),
            )
        if result.status >= 500:
            raise AttemptFailed(f"HTTP {result.status}", retryable=False)
        return result

    def _pool_manager(self) -> urllib3.PoolManager:
        if self._pool is None:
            # Imported here: urllib3 costs ~0.1-0.2 s of cold start and only
            # functions that actually call a dependency need it.
            import urllib3

            self._pool = urllib3.PoolManager(
                num_pools=4,
                maxsize=10,
                timeout=urllib3.Timeout(connect=self.connect_timeout_s, read=self.read_timeout_s),
            )
        return self._pool


def with_traceparent(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` and the current span's ``traceparent`` (none outside a hop)."""
    traceparent = current_traceparent()
    if traceparent is None:
        return dict(headers)
    return {**headers, TRACEPARENT: traceparent}


def _encode(body: Any) -> bytes | None:
    if body is None:
        return None
    dump = getattr(body, "model_dump_json", None)
    if callable(dump):
        encoded: str = dump()
        return encoded.encode()
    return json.dumps(body, separators=(",", ":")).encode()
