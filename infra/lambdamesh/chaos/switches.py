"""Faults switched on and off through the functions' configuration, as on AWS.

Each function gets the ``LAMBDAMESH_FAULTS`` variable (:mod:`lambdamesh_toolkit.faults`) with
the faults that make sense for it, and the payments functions a ``PAYMENT_FAILURE_RATE``;
Lambda starts new execution environments with the new configuration. Switching off puts back
each function's environment exactly as it was before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lambdamesh_toolkit.faults import FAULTS_VARIABLE, FaultPlan

from .plan import ChaosPlan

if TYPE_CHECKING:
    from mypy_boto3_lambda.client import LambdaClient

PUBLISHERS = frozenset({"users", "orders", "payments", "inventory"})
"""Services that publish events: their functions may publish each one twice."""

PAYMENT_FAILURE_VARIABLE = "PAYMENT_FAILURE_RATE"
UPDATE_WORKERS = 4


@dataclass(frozen=True)
class Function:
    """A deployed function and what it does.

    Attributes
    ----------
    service, logical_id, name
        Its service, its logical id in the service's stack, and its name.
    consumer
        Whether SQS event source mappings feed it.
    """

    service: str
    logical_id: str
    name: str
    consumer: bool


def faults_for(function: Function, plan: ChaosPlan, *, outage_until: float | None) -> FaultPlan:
    """The faults ``function`` injects under ``plan`` (no outage unless ``outage_until``).

    >>> plan = ChaosPlan(crash_rate=0.1, slow_rate=0.2, duplicate_rate=0.3)
    >>> faults_for(Function("inventory", "HandleOrderEvents", "f", True), plan, outage_until=None)
    FaultPlan(unavailable_until=None, crash_rate=0.1, slow_rate=0.2, duplicate_rate=0.3)
    >>> faults_for(Function("users", "APIHandler", "f", False), plan, outage_until=99.0)
    FaultPlan(unavailable_until=99.0, crash_rate=0.0, slow_rate=0.0, duplicate_rate=0.3)
    >>> faults_for(Function("catalog", "Rpc", "f", False), plan, outage_until=None) == FaultPlan()
    True
    """
    return FaultPlan(
        unavailable_until=outage_until
        if function.service == "users" and function.logical_id == "APIHandler"
        else None,
        crash_rate=plan.crash_rate if function.consumer else 0.0,
        slow_rate=plan.slow_rate if function.consumer and function.service == "inventory" else 0.0,
        duplicate_rate=plan.duplicate_rate if function.service in PUBLISHERS else 0.0,
    )


def variables_for(
    function: Function, plan: ChaosPlan, original: Mapping[str, str], *, outage_until: float | None
) -> dict[str, str]:
    """``function``'s environment with the plan's faults added to ``original``."""
    variables = dict(original)
    faults = faults_for(function, plan, outage_until=outage_until)
    if faults != FaultPlan():
        variables[FAULTS_VARIABLE] = faults.to_environment()
    if function.service == "payments":
        variables[PAYMENT_FAILURE_VARIABLE] = str(plan.payment_failure_rate)
    return variables


@dataclass
class FaultSwitches:
    """Sets and clears the faults of a deployed system's functions.

    Parameters
    ----------
    lambda_client
        Lambda on the target.
    functions
        Every function of the system.
    progress
        Where progress lines go.
    """

    lambda_client: LambdaClient
    functions: list[Function]
    progress: Callable[[str], None] = print
    _originals: dict[str, dict[str, str]] = field(default_factory=dict)

    def switch_on(self, plan: ChaosPlan, *, outage: bool) -> int:
        """Set every function's faults (the users API's outage too when ``outage``).

        The other functions are changed first, the users API last, so that its outage lasts
        about ``plan.outage_s`` once in place: its end is set as far beyond ``plan.outage_s``
        as the others' update took (an update waits until it is in effect, and takes longer on
        a busy machine), and set again, once, if its own update ate more than half the outage.
        Returns the number of functions changed.
        """
        started = time.monotonic()
        changed = self._switch(plan, users_api=False, outage_until=None)
        if not outage:
            return changed + self._switch(plan, users_api=True, outage_until=None)
        update_s = time.monotonic() - started
        for _ in range(2):
            outage_until = time.time() + plan.outage_s + update_s
            began = time.monotonic()
            users_changed = self._switch(plan, users_api=True, outage_until=outage_until)
            update_s = time.monotonic() - began
            if outage_until - time.time() >= plan.outage_s / 2:
                break
            self.progress(f"   the users API took {update_s:.1f} s to change: its outage set anew")
        return changed + users_changed

    def _switch(self, plan: ChaosPlan, *, users_api: bool, outage_until: float | None) -> int:
        """Set the faults of the users API (``users_api``) or of every other function."""
        changes: dict[str, dict[str, str]] = {}
        for function in self.functions:
            if (function.service == "users" and function.logical_id == "APIHandler") != users_api:
                continue
            original = self._original(function.name)
            wanted = variables_for(function, plan, original, outage_until=outage_until)
            if wanted != self._current(function.name):
                changes[function.name] = wanted
        self._apply(changes)
        return len(changes)

    def switch_off(self) -> int:
        """Put back every changed function's environment; returns how many were changed."""
        changes = {
            name: original
            for name, original in self._originals.items()
            if self._current(name) != original
        }
        self._apply(changes)
        return len(changes)

    def _original(self, name: str) -> dict[str, str]:
        if name not in self._originals:
            self._originals[name] = self._current(name)
        return self._originals[name]

    def _current(self, name: str) -> dict[str, str]:
        configuration = self.lambda_client.get_function_configuration(FunctionName=name)
        return dict(configuration.get("Environment", {}).get("Variables", {}))

    def _apply(self, changes: Mapping[str, dict[str, str]]) -> None:
        if not changes:
            return
        self.progress(f"   updating the configuration of {len(changes)} function(s)")
        with ThreadPoolExecutor(UPDATE_WORKERS) as pool:
            list(pool.map(lambda item: self._update(*item), changes.items()))

    def _update(self, name: str, variables: dict[str, str]) -> None:
        self.lambda_client.update_function_configuration(
            FunctionName=name, Environment={"Variables": variables}
        )
        self.lambda_client.get_waiter("function_updated_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )


def discover_functions(
    lambda_client: LambdaClient, services: Iterable[tuple[str, Mapping[str, str]]]
) -> list[Function]:
    """The functions of ``services`` (service name, logical id → function name)."""
    consumers = {
        mapping["FunctionArn"].rsplit(":", 1)[-1]
        for page in lambda_client.get_paginator("list_event_source_mappings").paginate()
        for mapping in page["EventSourceMappings"]
        if ":sqs:" in mapping.get("EventSourceArn", "")
    }
    return [
        Function(service, logical_id, name, name in consumers)
        for service, functions in services
        for logical_id, name in functions.items()
    ]
