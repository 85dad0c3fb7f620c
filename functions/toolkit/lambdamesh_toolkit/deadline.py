"""A request's deadline, carried down every hop so that no caller waits past its own.

The first service a request reaches gives it a budget (``REQUEST_DEADLINE_S``, 10 s by default:
room for a cold start of each dependency it calls in turn, within each call's per-attempt
timeout, as :mod:`lambdamesh_toolkit.resilience` explains; well inside API Gateway's 29 s, for a
person is waiting). The deadline travels as an absolute time, in epoch milliseconds: in the
``X-Request-Deadline`` header of HTTP calls and in the ``deadline_ms`` field of RPC requests.
A service that receives one keeps the earlier of it and its own budget. Clients give each
attempt only the time that is left and retry only while time is left, so with a dependency
hanging the caller answers 503 within its deadline instead of after every retry's timeout.

>>> use_deadline(None); remaining_s() is None
True
>>> deadline = begin_deadline(2.0, inherited=None, now=100.0)
>>> deadline, remaining_s(now=99.5)
(102.0, 2.5)
>>> begin_deadline(2.0, inherited=101.0, now=100.0)
101.0
>>> header_value(101.0), deadline_from_header("101000")
('101000', 101.0)
"""

from __future__ import annotations

import functools
import re
import time
from contextvars import ContextVar

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings, load_settings

DEADLINE_HEADER = "X-Request-Deadline"
"""HTTP header of the deadline: epoch milliseconds."""
#: What the header holds: epoch milliseconds, ASCII digits only.
_EPOCH_MILLISECONDS = re.compile(r"[0-9]{1,15}")
#: The deadline of the work being done, in epoch seconds; ``None``: none.
_deadline: ContextVar[float | None] = ContextVar("lambdamesh_deadline", default=None)


class DeadlineSettings(EnvSettings):
    """The budget a request gets where it enters the system.

    Attributes
    ----------
    request_deadline_s : float
        ``REQUEST_DEADLINE_S``: seconds from a request's arrival to its answer, every
        downstream call and retry included (API Gateway itself gives up after 29 s).
    """

    request_deadline_s: float = Field(10.0, alias="REQUEST_DEADLINE_S", gt=0, le=29)


def within_budget(timeout_s: float, budget_s: float | None) -> float:
    """Check a per-attempt timeout against the request budget; return it.

    A timeout the deadline always cuts short never counts against its dependency
    (:func:`lambdamesh_toolkit.resilience.timed_out`), so a dependency that hangs would never
    open its circuit: a settings model refuses it with this check.

    >>> within_budget(5.0, 10.0)
    5.0
    >>> within_budget(10.0, 10.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: must be shorter than REQUEST_DEADLINE_S (10 s), or a dependency that hangs ...

    Raises
    ------
    ValueError
        When ``timeout_s`` is not shorter than ``budget_s``.
    """
    if budget_s is not None and timeout_s >= budget_s:
        raise ValueError(
            f"must be shorter than REQUEST_DEADLINE_S ({budget_s:g} s), "
            "or a dependency that hangs never opens its circuit"
        )
    return timeout_s


def use_deadline(deadline: float | None) -> float | None:
    """Make ``deadline`` (epoch seconds, or ``None``) the current work's; return it."""
    _deadline.set(deadline)
    return deadline


def current_deadline() -> float | None:
    """The current work's deadline in epoch seconds, if it has one."""
    return _deadline.get()


def remaining_s(*, now: float | None = None) -> float | None:
    """Seconds left before the deadline (negative once past); ``None`` without one."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return deadline - (time.time() if now is None else now)


def begin_deadline(budget_s: float, *, inherited: float | None, now: float | None = None) -> float:
    """Start the current work's deadline: ``budget_s`` from now, or the caller's if earlier."""
    own = (time.time() if now is None else now) + budget_s
    deadline = own if inherited is None else min(own, inherited)
    use_deadline(deadline)
    return deadline


def deadline_from_header(value: str | None) -> float | None:
    """The deadline a caller sent (epoch milliseconds); ``None`` when absent or malformed.

    >>> deadline_from_header("²") is None  # a digit to str.isdigit, not to int()
    True
    """
    if value is None or not _EPOCH_MILLISECONDS.fullmatch(value.strip()):
        return None
    return int(value.strip()) / 1000


@functools.cache
def configured_budget_s() -> float:
    """``REQUEST_DEADLINE_S`` of this function, read once: its environment does not change."""
    return load_settings(DeadlineSettings).request_deadline_s


def header_value(deadline: float) -> str:
    """``deadline`` as the header carries it: whole epoch milliseconds."""
    return str(int(deadline * 1000))
