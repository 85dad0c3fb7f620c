"""The services' call budgets: each attempt holds a cold start, the deadline holds the calls.

The policy is ``lambdamesh_toolkit.resilience``'s (a cold start is not a dead dependency); these
tests keep the services' settings to it, defaults and overrides alike.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lambdamesh_toolkit.config import ConfigurationError, load_settings

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"
COLD_START_S = 3.0
"""A cold start of one of these functions in a burst on a 2-core emulator: roughly 1-3 s."""
ORDERS_ENVIRONMENT = {
    "ORDER_EVENTS_TABLE": "events",
    "ORDERS_TABLE": "orders",
    "ORDER_IDEMPOTENCY_TABLE": "claims",
    "USERS_API_URL": "http://users.test/api",
    "CATALOG_RPC_FUNCTION": "catalog-rpc",
}
REVIEWS_ENVIRONMENT = {"REVIEWS_TABLE": "reviews", "CATALOG_RPC_FUNCTION": "catalog-rpc"}


def settings_module(service: str) -> ModuleType:
    """A service's ``chalicelib/settings.py``, imported on its own (it needs only the toolkit)."""
    path = FUNCTIONS / service / "chalicelib" / "settings.py"
    spec = importlib.util.spec_from_file_location(f"{service}_settings_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def orders_settings(**overrides: str) -> Any:
    settings_type = settings_module("orders").OrdersSettings
    return load_settings(settings_type, {**ORDERS_ENVIRONMENT, **overrides})


def reviews_settings(**overrides: str) -> Any:
    settings_type = settings_module("reviews").ReviewsSettings
    return load_settings(settings_type, {**REVIEWS_ENVIRONMENT, **overrides})


def test_each_call_of_an_order_holds_a_cold_start_and_the_deadline_holds_both_calls() -> None:
    # GIVEN the orders API's settings as deployed (no override)
    # WHEN they are read
    settings = orders_settings()
    # THEN each attempt, to users and to the catalog, outlasts a cold start of its callee
    assert settings.users_read_timeout_s > COLD_START_S
    assert settings.catalog_timeout_s > COLD_START_S
    # AND the request's deadline holds one whole attempt of each, made in turn
    assert settings.users_read_timeout_s + settings.catalog_timeout_s <= settings.request_deadline_s
    # AND stays inside API Gateway's 29 s
    assert settings.request_deadline_s < 29


def test_reviews_give_the_shared_catalog_circuit_the_same_timeout_as_orders() -> None:
    # GIVEN the two callers of the catalog's RPC, which share one circuit
    # WHEN their settings are read as deployed
    # THEN a catalog call may take as long from either, a cold start included
    assert reviews_settings().catalog_timeout_s == orders_settings().catalog_timeout_s
    assert reviews_settings().catalog_timeout_s < reviews_settings().request_deadline_s


@pytest.mark.parametrize("variable", ["USERS_API_READ_TIMEOUT_S", "CATALOG_RPC_TIMEOUT_S"])
def test_an_attempt_timeout_as_long_as_the_deadline_is_refused_naming_it(variable: str) -> None:
    # GIVEN an attempt timeout the request's deadline would always cut short
    # WHEN the orders API's settings are read
    # THEN the cold start fails, naming the variable and why
    with pytest.raises(ConfigurationError, match=rf"{variable}.*shorter than REQUEST_DEADLINE_S"):
        orders_settings(**{variable: "6", "REQUEST_DEADLINE_S": "6"})


def test_a_shorter_deadline_with_shorter_timeouts_is_accepted() -> None:
    # GIVEN a tighter budget whose attempt timeouts stay inside it
    # WHEN the settings are read
    settings = orders_settings(
        REQUEST_DEADLINE_S="4", USERS_API_READ_TIMEOUT_S="2", CATALOG_RPC_TIMEOUT_S="1.5"
    )
    # THEN they are taken as given
    assert (settings.request_deadline_s, settings.users_read_timeout_s) == (4.0, 2.0)
    assert settings.catalog_timeout_s == 1.5


def test_reviews_refuse_a_catalog_timeout_the_deadline_always_cuts_short() -> None:
    # GIVEN a catalog timeout longer than the reviews' budget
    # WHEN their settings are read
    # THEN they are refused
    with pytest.raises(ConfigurationError, match="CATALOG_RPC_TIMEOUT_S"):
        reviews_settings(CATALOG_RPC_TIMEOUT_S="8", REQUEST_DEADLINE_S="5")
