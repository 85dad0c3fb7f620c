"""Retries and the circuit breaker every synchronous client goes through.

Retry policy
    Exponential backoff with *full* jitter (``uniform(0, min(cap, base * 2**n))``,
    tenacity's ``wait_random_exponential``), a maximum number of attempts, and a
    dependency's ``Retry-After`` honoured: the wait is never shorter than what
    the dependency asked for, and when it asks for longer than
    ``max_retry_after_s`` the call gives up at once instead of sleeping through
    the caller's own time budget. No attempt starts after the request's deadline
    (:mod:`lambdamesh_toolkit.deadline`) or with less than
    :data:`MIN_ATTEMPT_S` of it left.

Circuit breaker
    A thin wrapper over Powertools' circuit breaker
    (``aws_lambda_powertools.utilities.circuit_breaker``), whose state lives in
    a DynamoDB table shared by every warm container of every function calling
    the dependency; the circuit name is the dependency name. How Powertools
    counts (its design, kept as is): failures are counted *per container* in
    memory, so the healthy path never writes; the container whose count reaches
    ``failure_threshold`` writes ``OPEN``; every container then reads ``OPEN``
    (each caches the state for ``local_cache_max_age_s``) and refuses calls
    without making them; after ``recovery_timeout_s`` one container wins a
    conditional write and sends probes; ``success_threshold`` good probes close
    the circuit, a failed one reopens it. A store that cannot be read fails
    open (treated as closed).

Breaker table (created by the deploy step; table name in ``CIRCUIT_BREAKER_TABLE``)
    Partition key ``id`` (S) holding the circuit name, no sort key,
    ``PAY_PER_REQUEST``, TTL enabled on ``expiration`` (N, epoch seconds).
    Items also carry ``state`` (S: CLOSED/OPEN/HALF_OPEN), ``failure_count``
    (N), ``opened_at`` (N), ``half_open_owner`` (S), ``probe_lease_expiry`` (N).
    Functions need ``dynamodb:GetItem``, ``PutItem`` and ``UpdateItem`` on it.

Where a failure comes from
    Clients run each *attempt* inside the breaker and the breaker inside the
    retry loop: every failed attempt is evidence about the dependency's
    health, and once the circuit opens the remaining retries stop at once.
    Only :class:`AttemptFailed` counts; answers such as 404 or 400 are the
    dependency working correctly and never trip the circuit.

What counts against a dependency
    An :class:`AttemptFailed` counts only when it ``blames_dependency``. Two do not, because
    they say nothing about the dependency's health; the breaker sees them as neither a failure
    nor a success (the container's count of consecutive failures stays as it was):

    * an attempt never made because the caller's own deadline had run out
      (:func:`time_for_attempt`);
    * a timeout of an attempt that the caller's deadline cut below the dependency's own
      per-attempt timeout (:func:`timed_out`): the caller was late (cold itself, or slowed
      by an earlier call) and gave the dependency less time than it is allowed. A dependency
      that hangs is still counted, by every attempt that was given its whole timeout.

    Likewise a half-open probe that fails so neither closes nor reopens the circuit.

A cold start is not a dead dependency
    A function's first invocation in a new execution environment waits for its imports (a few
    hundred milliseconds for one of these functions alone; roughly 1-3 s on a 2-core emulator
    starting many at once, right after a deploy). The policy is configuration, kept by the
    services' settings:

    * every per-attempt timeout holds a cold start of the callee (the orders' and reviews'
      ``USERS_API_READ_TIMEOUT_S`` and ``CATALOG_RPC_TIMEOUT_S``: 5 s);
    * the request's budget (``REQUEST_DEADLINE_S``, 10 s: :mod:`lambdamesh_toolkit.deadline`)
      holds one such attempt for each call made in sequence on the longest path (orders:
      users, then catalog), well inside API Gateway's 29 s;
    * a per-attempt timeout is shorter than the budget (the settings refuse anything else): a
      timeout that the deadline always cuts short would never count, and a dependency that
      hangs would never open its circuit.

    Shorter timeouts with retries would make a cold burst worse, not better: the retry of an
    attempt that timed out lands on another new execution environment while the first is still
    busy with the abandoned request, so one cold start becomes several, and every timed-out
    attempt counts toward the circuit. The breaker's own rule is unchanged (``failure_threshold``
    consecutive failures in one container): a cold start within the timeouts ends in a success,
    which resets the count, while a dependency that hangs or refuses fails every attempt and
    opens the circuit after as many requests as before.

Retries in a trace
    The first attempt runs in the caller's hop; every later one is a ``retry`` hop
    (:mod:`lambdamesh_toolkit.hops`) with its ``attempt`` number, so the request it sends
    carries that hop's ``traceparent`` and a trace shows which attempt reached the dependency.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeIs

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.deadline import remaining_s
from lambdamesh_toolkit.errors import DependencyUnavailable
from lambdamesh_toolkit.hops import RETRY, outbound_hop

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.circuit_breaker import CircuitInfo, CircuitState
    from aws_lambda_powertools.utilities.circuit_breaker.persistence.base import (
        CircuitBreakerPersistenceLayer,
    )
    from aws_lambda_powertools.utilities.circuit_breaker.persistence.record import (
        CircuitStateRecord,
    )
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from tenacity import RetryCallState

#: Less time than this left before the deadline is not worth an attempt.
MIN_ATTEMPT_S = 0.05
#: Why a call stopped at its deadline (the words callers see).
DEADLINE_REASON = "no time left before the request's deadline"

#: HTTP statuses that mean "try again later" rather than "your request is wrong".
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

#: Key schema of the breaker table, in CloudFormation/boto3 form.
BREAKER_TABLE_KEY_SCHEMA: list[dict[str, str]] = [{"AttributeName": "id", "KeyType": "HASH"}]
BREAKER_TABLE_ATTRIBUTES: list[dict[str, str]] = [{"AttributeName": "id", "AttributeType": "S"}]
BREAKER_TABLE_TTL_ATTRIBUTE = "expiration"
#: The state read sits in front of every call: it must answer faster than the call itself.
BREAKER_STATE_PROFILE = clients.REQUEST.but(
    connect_timeout_s=0.5, read_timeout_s=1.0, max_attempts=2
)


class AttemptFailed(Exception):  # noqa: N818 - describes an event, not a bug
    """One attempt at a dependency failed in a way that says it is unhealthy.

    Raised by a client's single attempt; the retry loop decides whether to try
    again and the breaker counts it. Callers never see it: it becomes
    :class:`~lambdamesh_toolkit.errors.DependencyUnavailable`.

    Parameters
    ----------
    reason : str
        What happened (``"timeout"``, ``"HTTP 503"``, ...).
    retryable : bool
        Whether another attempt may succeed (a 500 is not; a 503 is).
    retry_after_s : float | None
        The dependency's ``Retry-After``, if it sent one.
    never_sent : bool
        The request certainly did not reach the dependency (the connection
        could not be opened), so repeating it is safe even when not idempotent.
    blames_dependency : bool
        The failure is evidence against the dependency, so its circuit counts it; ``False``
        when the caller's own deadline explains it (see the module's docstring).
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        never_sent: bool = False,
        blames_dependency: bool = True,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.never_sent = never_sent
        self.blames_dependency = blames_dependency


class _NotTheDependency(Exception):  # noqa: N818 - a carrier, not an error of its own
    """Carries an :class:`AttemptFailed` that does not blame the dependency through the
    breaker, which counts every ``AttemptFailed`` (its ``handled_exceptions``) and lets any
    other exception pass untouched."""

    def __init__(self, failure: AttemptFailed) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay-seconds or an HTTP date.

    Parameters
    ----------
    value : str | None
        The header value.
    now : datetime | None
        Reference time for the HTTP-date form (default: now, UTC).

    Returns
    -------
    float | None
        Seconds to wait (never negative), or ``None`` when absent or unreadable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    reference = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - reference).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a dependency again.

    Parameters
    ----------
    max_attempts : int
        Attempts in total, the first one included (1 = no retry).
    base_delay_s : float
        Ceiling of the first backoff; it doubles after each failed attempt.
    max_delay_s : float
        Cap on the backoff ceiling.
    max_retry_after_s : float
        Longest ``Retry-After`` worth waiting for inside one call; a longer one
        ends the call at once (the caller gets it back as ``retry_after_s``).
    sleep : Callable[[float], None]
        How to wait (tests pass a recorder instead of ``time.sleep``).
    """

    max_attempts: int = 3
    base_delay_s: float = 0.1
    max_delay_s: float = 1.0
    max_retry_after_s: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("delays must not be negative")

    def backoff_ceiling(self, failed_attempts: int) -> float:
        """Upper bound of the jittered wait after ``failed_attempts`` failures."""
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** (failed_attempts - 1))

    def should_retry(self, exc: BaseException, *, repeatable: bool) -> bool:
        """Tell whether ``exc`` from an attempt deserves another attempt.

        Parameters
        ----------
        exc : BaseException
            What the attempt raised.
        repeatable : bool
            The request is idempotent (GET/PUT/DELETE, a read-only RPC) or
            carries an idempotency key, so the dependency may see it twice.
        """
        if not isinstance(exc, AttemptFailed) or not exc.retryable:
            return False
        if not (repeatable or exc.never_sent):
            return False
        return exc.retry_after_s is None or exc.retry_after_s <= self.max_retry_after_s

    def run[T](self, attempt: Callable[[], T], *, repeatable: bool) -> T:
        """Call ``attempt`` until it succeeds, fails for good, or attempts run out.

        Parameters
        ----------
        attempt : Callable[[], T]
            One attempt; raises :class:`AttemptFailed` on a dependency failure.
        repeatable : bool
            See :meth:`should_retry`.

        Returns
        -------
        T
            The first successful attempt's result.

        Raises
        ------
        Exception
            The last attempt's exception, unchanged.
        """
        # Imported here: tenacity costs tens of milliseconds of cold start and
        # is only needed once a function actually calls a dependency.
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            stop_any,
            stop_before_delay,
        )
        from tenacity.stop import stop_base

        stops: list[stop_base] = [stop_after_attempt(self.max_attempts)]
        left = remaining_s()
        if left is not None:
            # No attempt starts with less than MIN_ATTEMPT_S of the deadline left.
            stops.append(stop_before_delay(max(0.0, left - MIN_ATTEMPT_S)))
        retrying = Retrying(
            stop=stop_any(*stops),
            wait=self._wait_strategy(),
            retry=retry_if_exception(lambda exc: self.should_retry(exc, repeatable=repeatable)),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _wait_strategy(self) -> Callable[[RetryCallState], float]:
        from tenacity import wait_random_exponential

        # tenacity's wait_random_exponential *is* full jitter; it only lacks
        # Retry-After, so the dependency's hint is applied on top as a floor.
        jitter = wait_random_exponential(multiplier=self.base_delay_s, max=self.max_delay_s)

        def wait(retry_state: RetryCallState) -> float:
            delay = float(jitter(retry_state))
            outcome = retry_state.outcome
            failure = outcome.exception() if outcome is not None else None
            if isinstance(failure, AttemptFailed) and failure.retry_after_s is not None:
                delay = max(delay, failure.retry_after_s)
            return delay

        return wait


_stores: dict[str, CircuitBreakerPersistenceLayer] = {}


def dynamodb_breaker_store(
    table_name: str,
    *,
    dynamodb_client: DynamoDBClient | None = None,
) -> CircuitBreakerPersistenceLayer:
    """Return the Powertools DynamoDB store of breaker state for ``table_name``.

    One store (and one boto3 client) per table and process, shared by every
    circuit: Powertools keys its cache by circuit name.

    Parameters
    ----------
    table_name : str
        The breaker table (schema in this module's docstring).
    dynamodb_client : DynamoDBClient | None
        A client to use (tests pass one bound to moto); by default one is made
        with short timeouts, because the state read sits in front of every call.
    """
    if dynamodb_client is None and table_name in _stores:
        return _stores[table_name]
    # Imported here: the persistence package imports boto3 (~0.5 s), which an
    # HTTP-only function should not pay for before its first call.
    from aws_lambda_powertools.utilities.circuit_breaker.persistence.dynamodb import (
        CircuitBreakerDynamoDBPersistence,
    )

    if dynamodb_client is None:
        dynamodb_client = clients.dynamodb(BREAKER_STATE_PROFILE)
        store = CircuitBreakerDynamoDBPersistence(
            table_name=table_name, boto3_client=dynamodb_client
        )
        _stores[table_name] = store
        return store
    return CircuitBreakerDynamoDBPersistence(table_name=table_name, boto3_client=dynamodb_client)


class CircuitBreaker:
    """The circuit of one dependency, shared through a Powertools store.

    Parameters
    ----------
    name : str
        Circuit name: the dependency name (``"users-api"``), so every function
        calling that dependency shares one circuit.
    store : CircuitBreakerPersistenceLayer | Callable[[], CircuitBreakerPersistenceLayer]
        Where the state lives, or a factory called on first use (so a cold
        start does not create AWS clients it may not need).
    failure_threshold : int
        Consecutive failed attempts (in one container) that open the circuit.
    recovery_timeout_s : int
        Seconds the circuit stays open before a probe is let through.
    success_threshold : int
        Consecutive good probes that close it again.
    local_cache_max_age_s : int
        Seconds a container trusts the state it last read (0 = read every call).
    """

    def __init__(
        self,
        name: str,
        store: CircuitBreakerPersistenceLayer | Callable[[], CircuitBreakerPersistenceLayer],
        *,
        failure_threshold: int = 5,
        recovery_timeout_s: int = 10,
        success_threshold: int = 1,
        local_cache_max_age_s: int = 5,
    ) -> None:
        # The Powertools config is built here so bad tunables fail at cold start.
        from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerConfig

        self.name = name
        self._store_or_factory = store
        self._store: CircuitBreakerPersistenceLayer | None = None
        self.config = CircuitBreakerConfig(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout_s,
            success_threshold=success_threshold,
            handled_exceptions=(AttemptFailed,),
            local_cache_max_age=local_cache_max_age_s,
        )

    @classmethod
    def from_environment(
        cls,
        name: str,
        environ: Mapping[str, str] | None = None,
    ) -> CircuitBreaker:
        """Build the DynamoDB-backed circuit from ``CIRCUIT_BREAKER_*`` variables.

        Raises
        ------
        lambdamesh_toolkit.config.ConfigurationError
            When ``CIRCUIT_BREAKER_TABLE`` is not set.
        """
        from lambdamesh_toolkit.config import ResilienceSettings, load_settings

        settings = load_settings(ResilienceSettings, environ)
        return cls(
            name,
            lambda: dynamodb_breaker_store(settings.circuit_breaker_table),
            failure_threshold=settings.failure_threshold,
            recovery_timeout_s=settings.recovery_timeout_s,
            success_threshold=settings.success_threshold,
        )

    @property
    def store(self) -> CircuitBreakerPersistenceLayer:
        """The state store, created on first use."""
        if self._store is None:
            candidate = self._store_or_factory
            self._store = candidate if _is_store(candidate) else candidate()
        return self._store

    def state(self) -> CircuitState:
        """Return the circuit's state as this container sees it now."""
        return self.store.get_state(self.name).state

    def call[T](self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` through the circuit.

        Returns
        -------
        T
            What ``attempt`` returned.

        Raises
        ------
        DependencyUnavailable
            At once, without calling ``attempt``, while the circuit is open
            (``retry_after_s`` = time left until a probe is allowed).
        Exception
            Whatever ``attempt`` raised; an :class:`AttemptFailed` that
            ``blames_dependency`` is counted, anything else passes through uncounted.
        """
        from aws_lambda_powertools.utilities.circuit_breaker import (
            CircuitBreakerOpenError,
            circuit_breaker,
        )

        def judged() -> T:
            try:
                return attempt()
            except AttemptFailed as failure:
                if failure.blames_dependency:
                    raise
                raise _NotTheDependency(failure) from failure

        protected: Callable[[], T] = circuit_breaker(
            name=self.name, persistence_store=self.store, config=self.config
        )(judged)
        try:
            return protected()
        except CircuitBreakerOpenError as exc:
            raise DependencyUnavailable(
                self.name, self._seconds_until_probe(exc.circuit), reason="circuit open"
            ) from None
        except _NotTheDependency as passed:
            # Handed back as it was raised: the retry policy and the caller see no difference.
            raise passed.failure from passed.failure.__cause__

    def seconds_until_closed_or(self, otherwise: float | None) -> float | None:
        """While the circuit is open, the seconds until it lets a probe through; else
        ``otherwise``. A store that cannot be read answers ``otherwise``."""
        from aws_lambda_powertools.utilities.circuit_breaker import CircuitState

        try:
            record = self.store.get_state(self.name)
        except Exception:
            return otherwise
        if record.state != CircuitState.OPEN:
            return otherwise
        return max(otherwise or 0.0, self._seconds_until_probe(record))

    def _seconds_until_probe(self, circuit: CircuitInfo | CircuitStateRecord | None) -> float:
        if circuit is None or circuit.opened_at is None:
            return float(self.config.recovery_timeout)
        # The same clock as Powertools' (whole seconds of dt.datetime.now()).
        now = int(dt.datetime.now().timestamp())
        remaining = circuit.opened_at + self.config.recovery_timeout - now
        # Half-open (another container probing) or a probe just due: the
        # answer is known within about a second.
        return max(1.0, remaining)


def time_for_attempt(timeout_s: float) -> float:
    """The time an attempt may take: ``timeout_s``, or what is left of the deadline if less.

    Raises
    ------
    AttemptFailed
        Not retryable and blaming nobody but the caller, when less than
        :data:`MIN_ATTEMPT_S` is left.
    """
    left = remaining_s()
    if left is None:
        return timeout_s
    if left < MIN_ATTEMPT_S:
        raise AttemptFailed(
            DEADLINE_REASON, retryable=False, never_sent=True, blames_dependency=False
        )
    return min(timeout_s, left)


def timed_out(given_s: float, timeout_s: float) -> AttemptFailed:
    """The failure of an attempt that had no answer within ``given_s``.

    Parameters
    ----------
    given_s : float
        The time the attempt had (:func:`time_for_attempt` of ``timeout_s``).
    timeout_s : float
        The dependency's own per-attempt timeout.

    Returns
    -------
    AttemptFailed
        Retryable; it blames the dependency only when the attempt had the whole of
        ``timeout_s``, not a deadline's remainder.

    >>> timed_out(5.0, 5.0).blames_dependency, timed_out(0.3, 5.0).blames_dependency
    (True, False)
    >>> timed_out(0.3, 5.0).reason
    'timeout: no answer within 0.3 s'
    """
    return AttemptFailed(
        f"timeout: no answer within {given_s:.1f} s",
        retryable=True,
        blames_dependency=given_s >= timeout_s,
    )


def _is_store(candidate: Any) -> TypeIs[CircuitBreakerPersistenceLayer]:
    # Duck-typed on purpose: importing the persistence base class would import
    # its package, which imports boto3 at cold start.
    return hasattr(candidate, "get_state") and hasattr(candidate, "save_open")


def call_dependency[T](
    dependency: str,
    attempt: Callable[[], T],
    *,
    retry: RetryPolicy,
    breaker: CircuitBreaker | None,
    repeatable: bool,
) -> T:
    """Call a dependency with retries, each attempt through its circuit breaker.

    Parameters
    ----------
    dependency : str
        Dependency name, used in errors.
    attempt : Callable[[], T]
        One attempt; raises :class:`AttemptFailed` when the dependency failed,
        a :class:`~lambdamesh_toolkit.errors.ServiceError` for a typed answer.
    retry : RetryPolicy
        The retry policy.
    breaker : CircuitBreaker | None
        The dependency's circuit (``None`` only where a test wants none).
    repeatable : bool
        The request may safely reach the dependency more than once.

    Returns
    -------
    T
        The successful attempt's result.

    Raises
    ------
    DependencyUnavailable
        Circuit open, or attempts exhausted / not retryable.
    """

    def guarded() -> T:
        return breaker.call(attempt) if breaker is not None else attempt()

    attempts = 0

    def numbered() -> T:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return guarded()
        # Every later attempt is a `retry` hop: its own span, the parent of what it reaches.
        with outbound_hop(RETRY, dependency, attempt=attempts) as again:
            try:
                return guarded()
            except AttemptFailed as failure:
                # What happened, not its details (a crash's message could carry anything).
                again.failed(failure.reason.split(":", 1)[0][:80])
                raise

    try:
        return retry.run(numbered, repeatable=repeatable)
    except AttemptFailed as exc:
        retry_after_s = exc.retry_after_s
        if breaker is not None:
            # The failures may just have opened the circuit: then its recovery time is the
            # truth about when to come back, not a guess.
            retry_after_s = breaker.seconds_until_closed_or(retry_after_s)
        raise DependencyUnavailable(dependency, retry_after_s, reason=exc.reason) from exc
