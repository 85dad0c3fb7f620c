"""Faults a chaos run switches on by configuration: the ``LAMBDAMESH_FAULTS`` variable.

``lambdamesh chaos`` sets this variable on the functions it wants to misbehave (Lambda's
``UpdateFunctionConfiguration``, as on AWS) and removes it afterwards; no code changes between
a normal run and a chaos run. Unset, which is the default and the only state outside a chaos
run, nothing here does anything. The value is a JSON object, every field optional:

``unavailable_until``
    Epoch seconds: until then every API route answers ``503`` (``unavailable``, with
    ``Retry-After``), as a service that is down would.
``crash_rate``
    The share of event batches in which the function's process is killed after half the
    batch was handled, before it could answer: SQS delivers the whole batch again.
``slow_rate``
    The share of event batches that first wait past the function's timeout: Lambda stops the
    invocation and SQS delivers the batch again once its visibility timeout ran out.
``duplicate_rate``
    The share of published events published a second time (on a FIFO topic under another
    deduplication id, so that both reach the queues): consumers see the same event id twice.

>>> plan = fault_plan({FAULTS_VARIABLE: '{"crash_rate": 0.1, "unavailable_until": 100}'})
>>> plan.crash_rate, plan.unavailable_for(now=98.5), plan.unavailable_for(now=101)
(0.1, 1.5, None)
>>> fault_plan({}) == FaultPlan()
True
>>> try:
...     fault_plan({FAULTS_VARIABLE: '{"crash_rate": 2}'})
... except ConfigurationError as error:
...     print(error)
LAMBDAMESH_FAULTS: crash_rate: Input should be less than or equal to 1

Chaos-engineering libraries for Lambda (``chaos_lambda``, ``failure-lambda``) read their
switches from a parameter store on every invocation; an environment variable costs nothing
when it is absent and is read once per execution environment, so it is used here instead.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambdamesh_toolkit.config import ConfigurationError
from lambdamesh_toolkit.errors import ServiceError, retry_after_header
from lambdamesh_toolkit.logging import get_logger

FAULTS_VARIABLE = "LAMBDAMESH_FAULTS"
"""The environment variable holding a function's faults (JSON)."""

FAULT_LOG_MESSAGE = "fault injected"
"""What a function logs, with the fault's name in ``fault``, each time it injects one."""

CRASH_EXIT_CODE = 137
"""The exit status of a killed process (128 + SIGKILL)."""

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class FaultPlan(BaseModel):
    """The faults one function injects (all off by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Finite: an infinite time would make ``Retry-After`` fail (a 500), NaN would mean never.
    unavailable_until: Annotated[float, Field(allow_inf_nan=False)] | None = None
    crash_rate: Rate = 0.0
    slow_rate: Rate = 0.0
    duplicate_rate: Rate = 0.0

    def unavailable_for(self, *, now: float | None = None) -> float | None:
        """Seconds the API has left to answer 503, or ``None`` when it is available."""
        if self.unavailable_until is None:
            return None
        left = self.unavailable_until - (time.time() if now is None else now)
        return left if left > 0 else None

    def to_environment(self) -> str:
        """The variable's value for this plan (only the fields that are set)."""
        return self.model_dump_json(exclude_defaults=True)


class Unavailable(ServiceError):  # noqa: N818 - an HTTP status name, as its siblings
    """The service itself is down for now (503 + ``Retry-After``)."""

    code: ClassVar[str] = "unavailable"
    status: ClassVar[int] = 503

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("the service is unavailable for now; retry later")
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        """``Retry-After`` in whole seconds, at least 1."""
        return retry_after_header(self.retry_after_s)


def fault_plan(environ: Mapping[str, str] | None = None) -> FaultPlan:
    """The plan in ``environ`` (default ``os.environ``); no variable → no fault.

    Raises
    ------
    ConfigurationError
        When the variable is not a JSON object of the fields above, naming what is wrong.
    """
    text = (os.environ if environ is None else environ).get(FAULTS_VARIABLE)
    if not text:
        return FaultPlan()
    try:
        return FaultPlan.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigurationError(f"{FAULTS_VARIABLE}: {problems}") from None


@functools.cache
def active_faults() -> FaultPlan:
    """This execution environment's plan, read once (a changed configuration means new ones)."""
    return fault_plan()


def happens(rate: float) -> bool:
    """Whether a fault of this ``rate`` happens this time (always ``False`` at rate 0)."""
    # Faults need no reproducible sequence, and a shared generator would make one function's
    # draws depend on another's: the module-level generator is what is wanted here.
    return rate > 0 and random.random() < rate  # noqa: S311 - not for security


def refuse_if_unavailable() -> None:
    """Raise :class:`Unavailable` while the plan says the API is down."""
    left = active_faults().unavailable_for()
    if left is not None:
        report("unavailable", retry_after_s=left)
        raise Unavailable(left)


def report(fault: str, **details: Any) -> None:
    """Log that ``fault`` is being injected, on the function's own logger (a warning)."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", "lambdamesh")
    get_logger(service).warning(FAULT_LOG_MESSAGE, extra={"fault": fault, **details})


def wait_past_timeout(context: Any) -> None:
    """Sleep until the invocation's time has run out (Lambda then stops it)."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: 0)()
    report("slow", sleep_s=remaining_ms / 1000 + 1)
    time.sleep(remaining_ms / 1000 + 1)


def kill_process() -> None:
    """End the process at once, as a crash or an out-of-memory kill would: no cleanup."""
    report("crash")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)
