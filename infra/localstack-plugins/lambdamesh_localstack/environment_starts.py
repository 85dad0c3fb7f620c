"""At most a few Lambda execution environments start at once; an invocation waits for one.

LocalStack starts a new execution environment for every invocation that finds none of its
function idle, at once, as Lambda does. On AWS every start has machines of its own; here each
is a process importing its function's code (250 to 450 ms of CPU for the services' handlers) on
the same few cores as everything else. A burst of 16 clients right after a deploy started about
48 environments together, which shared two cores for seconds before any of them served a
request: POST /orders p99 10 s.

:func:`apply_environment_starts` (an ``on_infra_start`` hook) has LocalStack's
``AssignmentService.get_environment`` go through a :class:`StartGate`: at most
``LAMBDAMESH_STARTING_ENVIRONMENTS`` (default: half the CPUs, at least one) on-demand
environments start at once, across every function, so that starting environments leaves cores
to the invocations. On 2 cores, ``make load``'s cold burst of 16 clients gave 13.9 to 14.3
orders/s, p99 2.7 to 3.2 s, with one start at a time; 9.1 to 10.5 orders/s, p99 3.5 s, with two;
6.0 orders/s, p99 9.9 s, with no limit. An invocation that finds no idle environment of its function
and no free start waits, for one of its function's environments to be released or for a start
to end, at most :data:`START_WAIT_S`; then it starts one anyway (an initialisation that calls
another function, which waits for a start in turn, cannot hold everything up). What a function
sees does not change: each invocation runs alone in an environment, initialised first; a burst
makes fewer environments, each ready sooner, and the invocations that waited are served by the
first ones ready. Provisioned concurrency is left as LocalStack has it.

Who goes first, when several wait: among the invocations of one function, the one that came
first (for an environment released as for a start: woken together, they used to race, and one
of ``make load``'s cold burst waited 4.9 s while later ones were served). A free start goes to an
invocation a caller waits for (API Gateway, ``Invoke``) before one no caller waits for (an event
source mapping's batch, an asynchronous invocation); then to a function without any environment;
then to the function whose invocation has waited longest. Handed out to whichever woke first,
the starts went to the function called most, one after another, while the functions it waited
on had none: 12 starts of ``orders`` in a row (3.6 s) before ``users`` had one, whose every
invocation held its environment waiting for ``users``. Giving them to the function with the
fewest environments instead started a second and third ``users`` (whose invocations are short)
before the fourth ``orders``, and gave the consumers, a dozen functions with none, every start
before the second ``orders``.

Callers first while invocations run, too (:class:`CallerPrecedence`): while an invocation a
caller waits for runs, at most ``LAMBDAMESH_BACKGROUND_INVOCATIONS`` (default: half the CPUs, at
least one; ``off``: no limit) invocations no caller waits for run beside it; one more waits, at
most ``LAMBDAMESH_BACKGROUND_WAIT_SECONDS`` (default :data:`BACKGROUND_WAIT_S`), for one of
either to end. Every invocation shares the emulator's one process: in ``make load``'s warm
phase the queues' consumers ran beside the 16 clients' POSTs, which answered at 6.8-8.6
orders/s, p99 3.8-4.9 s; with one consumer at a time beside them, 11.7 orders/s, p99 2.5-2.8 s,
every order decided as soon (32-34 s). The wait was 2 s at first: under 8 clients posting back
to back the batches that had waited 2 s ran beside the POSTs anyway, and the saga benchmark's
POST p50 went 388-688 ms (floor 216-377 ms), 6.6 orders/s; with 8 s, 233-282 ms, 6.8-8.2
orders/s, and the floor's orders got faster too (9.3-10.1 orders/s against 7.2-7.3): the
consumers' work done after the POSTs instead of beside them costs the one process less. A batch
that waits holds its messages invisible: 8 s and a function's run stay inside the 60 s
visibility timeout of the system's queues; lower the wait for a queue whose timeout is short.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.esm_tuning import BATCH_THREAD_PREFIX
from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

LOG = logging.getLogger(__name__)

ASSIGNMENT_MODULE: Final = "localstack.services.lambda_.invocation.assignment"
LIMIT_ENV: Final = "LAMBDAMESH_STARTING_ENVIRONMENTS"
START_WAIT_S: Final = 10.0
"""Longest an invocation waits for a start or an environment before starting one anyway."""
BACKGROUND_THREADS: Final = ("event-source-mapping-poller-", BATCH_THREAD_PREFIX, "lambda-invoker-")
"""What the threads that invoke with no caller waiting are named after: an event source
mapping's poller (LocalStack's) and its batches in flight (``esm_tuning``'s), and LocalStack's
invokers of asynchronous invocations (``InvocationType=Event``, SNS)."""
BACKGROUND_LIMIT_ENV: Final = "LAMBDAMESH_BACKGROUND_INVOCATIONS"
BACKGROUND_WAIT_S: Final = 8.0
"""Longest an invocation no caller waits for waits for callers' to end, by default."""
BACKGROUND_WAIT_ENV: Final = "LAMBDAMESH_BACKGROUND_WAIT_SECONDS"
ON_DEMAND: Final = "on-demand"
"""LocalStack's ``InitializationType.on_demand`` (a ``StrEnum``)."""


def in_background(thread_name: str) -> bool:
    """Whether a thread so named invokes with no caller waiting (:data:`BACKGROUND_THREADS`).

    >>> in_background("esm-batch-3f2a"), in_background("gateway-connection-3")
    (True, False)
    """
    return thread_name.startswith(BACKGROUND_THREADS)


def start_limit(environ: Mapping[str, str], cpus: int | None) -> int:
    """How many environments may start at once: :data:`LIMIT_ENV`, else half the CPUs (at
    least one).

    >>> start_limit({}, 2), start_limit({}, 8), start_limit({}, None)
    (1, 4, 1)
    >>> start_limit({LIMIT_ENV: "6"}, 2)
    6
    """
    configured = environ.get(LIMIT_ENV, "").strip()
    if configured:
        limit = int(configured)
        if limit < 1:
            raise ValueError(f"{LIMIT_ENV}={configured}: at least 1 environment must start")
        return limit
    return max(1, (cpus or 1) // 2)


class StartGate:
    """Counts the environments starting; lets an invocation start one or wait for one.

    Parameters
    ----------
    limit : int
        Environments that may start at once.
    wait_s : float
        Longest :meth:`admit` waits before letting a start through anyway.
    clock : Callable[[], float]
        Monotonic seconds (tests pass their own).
    """

    def __init__(
        self, limit: int, wait_s: float = START_WAIT_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._clock = clock
        self._changed = threading.Condition()
        self.starting = 0
        self._starting_for: Counter[Hashable] = Counter()
        self._waiting: dict[int, tuple[bool, Hashable, Callable[[], int]]] = {}
        """Each waiting invocation by its turn: whether no caller waits for it, its function and
        how many environments that has."""
        self._turns_of: dict[Hashable, list[int]] = {}
        """The turns of each function's waiting invocations, earliest first: every waiter looks
        at its function's earliest on each change, which scanning every waiter made quadratic
        (1.1 % of the emulator's interpreter time under ``make load``)."""
        self._turns = itertools.count()

    def admit[T](
        self,
        reserve_idle: Callable[[], T | None],
        function: Hashable = None,
        environments: Callable[[], int] = lambda: 0,
        background: bool = False,
    ) -> T | None:
        """An idle environment ``reserve_idle`` reserved, or ``None``: start one for
        ``function`` (counted as starting until :meth:`start_ended`).

        Waits, at most ``wait_s``, while an earlier invocation of ``function`` waits, or while
        nothing is idle and either every start is taken or an invocation that goes first waits
        too: one no caller waits for (``background``) goes after every other, a function without
        environments (``environments()`` ready or busy, none starting) before one with, and
        then the invocation that came first.
        """
        deadline = self._clock() + self.wait_s
        turn = next(self._turns)
        with self._changed:
            self._waiting[turn] = (background, function, environments)
            self._turns_of.setdefault(function, []).append(turn)  # turns only grow
            try:
                while True:
                    remaining = deadline - self._clock()
                    earliest = self._earliest_of_its_function(turn)
                    if earliest or remaining <= 0:
                        idle = reserve_idle()
                        if idle is not None:
                            return idle
                    if remaining <= 0 or (
                        earliest and self.starting < self.limit and self._first(turn)
                    ):
                        self.starting += 1
                        self._starting_for[function] += 1
                        return None
                    self._changed.wait(remaining)
            finally:
                del self._waiting[turn]
                turns = self._turns_of[function]
                turns.remove(turn)
                if not turns:
                    del self._turns_of[function]
                self._changed.notify_all()

    def _earliest_of_its_function(self, turn: int) -> bool:
        return self._turns_of[self._waiting[turn][1]][0] == turn

    def _first(self, turn: int) -> bool:
        """No waiting invocation goes before the one of ``turn`` for a start."""

        def rank(turn: int) -> tuple[bool, bool, int]:
            background, function, count = self._waiting[turn]
            has_environments = count() + self._starting_for[function] > 0
            return background, has_environments, turn

        own = rank(turn)
        return all(own <= rank(other) for other in self._waiting)

    def start_ended(self, function: Hashable = None) -> None:
        """A start admitted by :meth:`admit` for ``function`` has ended (ready or failed)."""
        with self._changed:
            self.starting -= 1
            self._starting_for[function] -= 1
            if self._starting_for[function] <= 0:
                del self._starting_for[function]
            self._changed.notify_all()

    def released(self) -> None:
        """An environment has been released: a waiting invocation may take it."""
        with self._changed:
            self._changed.notify_all()


class CallerPrecedence:
    """While an invocation a caller waits for runs, at most ``limit`` invocations no caller
    waits for run beside it; one more waits, at most ``wait_s``, for one of either to end.

    Parameters
    ----------
    limit : int | None
        Background invocations beside callers' (``None``: no limit).
    wait_s : float
        Longest a background invocation waits.
    clock : Callable[[], float]
        Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        limit: int | None,
        wait_s: float = BACKGROUND_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._clock = clock
        self._changed = threading.Condition()
        self.callers = 0
        self.background = 0

    @contextlib.contextmanager
    def running(self, background: bool) -> Iterator[None]:
        """Count an invocation while it runs; a background one waits its turn first."""
        with self._changed:
            if background:
                deadline = self._clock() + self.wait_s
                while self.limit is not None and self.callers and self.background >= self.limit:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                self.background += 1
            else:
                self.callers += 1
        try:
            yield
        finally:
            with self._changed:
                if background:
                    self.background -= 1
                else:
                    self.callers -= 1
                self._changed.notify_all()


def background_limit(environ: Mapping[str, str], cpus: int | None) -> int | None:
    """How many invocations no caller waits for run beside callers':
    :data:`BACKGROUND_LIMIT_ENV` (``off``: no limit), else half the CPUs (at least one).

    >>> background_limit({}, 2), background_limit({}, 8)
    (1, 4)
    >>> background_limit({BACKGROUND_LIMIT_ENV: "3"}, 2)
    3
    >>> background_limit({BACKGROUND_LIMIT_ENV: "off"}, 2) is None
    True
    """
    configured = environ.get(BACKGROUND_LIMIT_ENV, "").strip().lower()
    if configured == "off":
        return None
    if configured:
        limit = int(configured)
        if limit < 0:
            raise ValueError(f"{BACKGROUND_LIMIT_ENV}={configured}: a count, 0 or more, or off")
        return limit
    return max(1, (cpus or 1) // 2)


def background_wait(environ: Mapping[str, str]) -> float:
    """Longest an invocation no caller waits for waits for callers' to end, in seconds:
    :data:`BACKGROUND_WAIT_ENV`, else :data:`BACKGROUND_WAIT_S`.

    >>> background_wait({}), background_wait({BACKGROUND_WAIT_ENV: "2.5"})
    (8.0, 2.5)
    """
    configured = environ.get(BACKGROUND_WAIT_ENV, "").strip()
    if not configured:
        return BACKGROUND_WAIT_S
    try:
        seconds = float(configured)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise ValueError(f"{BACKGROUND_WAIT_ENV}={configured}: seconds, 0 or more")
    return seconds


def _reserve_idle(environments: Mapping[str, Any], invalid_status: type[Exception]) -> Any:
    """The first of ``environments`` (on demand) that could be reserved, reserved; ``None``."""
    for environment in list(environments.values()):
        if environment.initialization_type != ON_DEMAND:
            continue
        try:
            environment.reserve()
        except invalid_status:
            continue
        return environment
    return None


def gated(
    get_environment: Callable[..., Any],
    gate: StartGate,
    precedence: CallerPrecedence | None = None,
) -> Callable[..., Any]:
    """``AssignmentService.get_environment`` with on-demand starts going through ``gate``.

    The same as LocalStack 4.14.0's method (reserve an idle environment, else start one; release
    it after the invocation, stop it after a failure) but for the gate, and for ``precedence``:
    an invocation no caller waits for takes its turn beside callers' before it asks the gate.
    """
    from localstack.services.lambda_.invocation.execution_environment import (  # type: ignore[import-not-found,unused-ignore]
        InvalidStatusException,
    )

    def reserve_idle(service: Any, version_manager_id: str) -> Any:
        return _reserve_idle(service.environments[version_manager_id], InvalidStatusException)

    taking_turns = precedence or CallerPrecedence(None)

    @contextlib.contextmanager
    def get_gated_environment(
        service: Any, version_manager_id: str, function_version: Any, provisioning_type: Any
    ) -> Iterator[Any]:
        if provisioning_type != ON_DEMAND:
            with get_environment(
                service, version_manager_id, function_version, provisioning_type
            ) as environment:
                yield environment
            return
        background = in_background(threading.current_thread().name)
        with taking_turns.running(background):
            yield from _assigned(service, version_manager_id, function_version, background)

    def _assigned(
        service: Any, version_manager_id: str, function_version: Any, background: bool
    ) -> Iterator[Any]:
        environment = gate.admit(
            lambda: reserve_idle(service, version_manager_id),
            version_manager_id,
            lambda: len(service.environments[version_manager_id]),
            background,
        )
        if environment is None:
            try:
                environment = service.start_environment(version_manager_id, function_version)
                service.environments[version_manager_id][environment.id] = environment
                environment.reserve()
            finally:
                gate.start_ended(version_manager_id)
        try:
            yield environment
            environment.release()
        except InvalidStatusException as invalid:
            LOG.error("InvalidStatusException: %s", invalid)
        except Exception as error:
            LOG.error(
                "Failed invocation <%s>: %s",
                type(error),
                error,
                exc_info=LOG.isEnabledFor(logging.DEBUG),
            )
            service.stop_environment(environment)
            raise
        finally:
            gate.released()

    get_gated_environment.__wrapped__ = get_environment  # type: ignore[attr-defined]
    return get_gated_environment


def patch_assignment(module: ModuleType) -> None:
    """Put LocalStack's environment assignment behind one :class:`StartGate` (idempotent)."""
    gate = StartGate(start_limit(os.environ, os.cpu_count()))
    precedence = CallerPrecedence(
        background_limit(os.environ, os.cpu_count()), background_wait(os.environ)
    )
    service = getattr(module, "AssignmentService", None)
    wrap_once(
        service,
        "get_environment",
        lambda original: gated(original, gate, precedence),
        "environment starts",
    )
    LOG.info(
        "at most %d Lambda execution environments start at once; %s invocations no caller "
        "waits for run beside callers'",
        gate.limit,
        "any number of" if precedence.limit is None else f"at most {precedence.limit}",
    )


def apply_environment_starts() -> None:
    """Gate environment starts once LocalStack imports its assignment service (idempotent)."""
    patch_when_imported({ASSIGNMENT_MODULE: patch_assignment}, "environment starts")


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    # As in esm_tuning: registers the hook with plux, which resolves the entry point to it.
    _localstack_hooks.on_infra_start(name="lambdamesh_environment_starts")(apply_environment_starts)
