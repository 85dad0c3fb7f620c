"""Typed settings read from the environment once, at cold start.

A service declares its settings as a subclass of :class:`EnvSettings` whose
field aliases are the environment variable names, and loads it once per container
with :func:`load_settings`. A missing or malformed variable fails the cold start
with a message naming the variable, instead of a ``KeyError`` deep inside the
first request. Given an explicit mapping instead of ``os.environ``:

>>> from pydantic import Field
>>> class OrdersSettings(EnvSettings):
...     orders_table: str = Field(alias="ORDERS_TABLE")
...     read_timeout_s: float = Field(3.0, alias="USERS_API_READ_TIMEOUT_S", gt=0)
>>> load_settings(OrdersSettings, {"ORDERS_TABLE": "orders"})
OrdersSettings(orders_table='orders', read_timeout_s=3.0)
>>> try:
...     load_settings(OrdersSettings, {"USERS_API_READ_TIMEOUT_S": "0"})
... except ConfigurationError as error:
...     for part in str(error).split("; "):
...         print(part)
OrdersSettings: missing environment variable(s): ORDERS_TABLE
invalid environment variable(s): USERS_API_READ_TIMEOUT_S (Input should be greater than 0)

``functions/orders/chalicelib/settings.py`` declares the orders service's settings this
way, and ``functions/orders/app.py`` loads them on first use with
``load_settings(OrdersSettings)``.

pydantic (already in every function) does the parsing and validation, which
is why ``pydantic-settings`` is not added to each Lambda package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CIRCUIT_BREAKER_TABLE_ENV = "CIRCUIT_BREAKER_TABLE"


class ConfigurationError(RuntimeError):
    """The environment lacks a variable the function needs, or holds a bad value."""


class EnvSettings(BaseModel):
    """Base of settings models: field aliases are environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)


class ResilienceSettings(EnvSettings):
    """Circuit breaker and retry tunables shared by every synchronous client.

    Attributes
    ----------
    circuit_breaker_table : str
        ``CIRCUIT_BREAKER_TABLE``: the shared DynamoDB table of breaker state.
    failure_threshold : int
        ``CIRCUIT_BREAKER_FAILURE_THRESHOLD``: consecutive failed attempts (in
        one warm container) that open the circuit.
    recovery_timeout_s : int
        ``CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S``: seconds an open circuit waits
        before letting one probe through.
    success_threshold : int
        ``CIRCUIT_BREAKER_SUCCESS_THRESHOLD``: good probes that close it again.
    """

    circuit_breaker_table: str = Field(alias="CIRCUIT_BREAKER_TABLE", min_length=1)
    failure_threshold: int = Field(5, alias="CIRCUIT_BREAKER_FAILURE_THRESHOLD", ge=1)
    recovery_timeout_s: int = Field(10, alias="CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S", ge=1)
    success_threshold: int = Field(1, alias="CIRCUIT_BREAKER_SUCCESS_THRESHOLD", ge=1)


class EventFailureSettings(EnvSettings):
    """Where every event consumer records why a message failed; the base of its settings.

    Attributes
    ----------
    event_failures_table : str
        ``EVENT_FAILURES_TABLE``: why a message failed, by SQS message id (read by
        ``lambdamesh dlq show``).
    """

    event_failures_table: str = Field(alias="EVENT_FAILURES_TABLE", min_length=1)


class EventBookkeepingSettings(EventFailureSettings):
    """The two tables of an event consumer that also remembers the events it handled.

    Attributes
    ----------
    event_idempotency_table : str
        ``EVENT_IDEMPOTENCY_TABLE``: the events already handled, by service and event id.
    """

    event_idempotency_table: str = Field(alias="EVENT_IDEMPOTENCY_TABLE", min_length=1)


def load_settings[SettingsT: EnvSettings](
    settings_type: type[SettingsT],
    environ: Mapping[str, str] | None = None,
) -> SettingsT:
    """Read ``settings_type`` from the environment.

    Parameters
    ----------
    settings_type : type[EnvSettings]
        The settings model; each field's alias is its variable name.
    environ : Mapping[str, str] | None
        The variables to read (default: ``os.environ``).

    Returns
    -------
    EnvSettings
        The validated settings.

    Raises
    ------
    ConfigurationError
        Naming every missing variable and every malformed one at once.
    """
    source = os.environ if environ is None else environ
    try:
        return settings_type.model_validate(dict(source))
    except ValidationError as exc:
        raise ConfigurationError(_describe(settings_type, exc)) from None


def _describe(settings_type: type[EnvSettings], exc: ValidationError) -> str:
    missing: list[str] = []
    invalid: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            missing.append(name)
        else:
            invalid.append(f"{name} ({error['msg']})")
    parts = []
    if missing:
        parts.append("missing environment variable(s): " + ", ".join(missing))
    if invalid:
        parts.append("invalid environment variable(s): " + "; ".join(invalid))
    return f"{settings_type.__name__}: " + "; ".join(parts)
