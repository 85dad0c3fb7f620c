"""Settings from the environment, failing with the variable's name."""

from __future__ import annotations

import pytest
from pydantic import Field

from lambdamesh_toolkit.config import ConfigurationError, EnvSettings, load_settings


class OrdersSettings(EnvSettings):
    orders_table: str = Field(alias="ORDERS_TABLE")
    users_api_url: str = Field(alias="USERS_API_URL")
    read_timeout_s: float = Field(3.0, alias="USERS_API_READ_TIMEOUT_S", gt=0)


def test_settings_are_read_and_typed() -> None:
    # GIVEN an environment with every variable
    environ = {
        "ORDERS_TABLE": "orders",
        "USERS_API_URL": "http://x",
        "USERS_API_READ_TIMEOUT_S": "1.5",
    }

    # WHEN the settings are loaded
    settings = load_settings(OrdersSettings, environ)

    # THEN they hold typed values
    assert (settings.orders_table, settings.read_timeout_s) == ("orders", 1.5)


def test_missing_variables_are_all_named() -> None:
    # GIVEN an environment missing two variables
    # WHEN the settings are loaded
    # THEN the error names both and the settings class
    with pytest.raises(ConfigurationError) as raised:
        load_settings(OrdersSettings, {})
    message = str(raised.value)
    assert "OrdersSettings" in message
    assert "ORDERS_TABLE" in message
    assert "USERS_API_URL" in message


def test_malformed_variable_is_named() -> None:
    # GIVEN a timeout that is not a positive number
    environ = {"ORDERS_TABLE": "o", "USERS_API_URL": "u", "USERS_API_READ_TIMEOUT_S": "-1"}

    # WHEN the settings are loaded
    # THEN the error names the variable
    with pytest.raises(ConfigurationError, match=r"invalid.*USERS_API_READ_TIMEOUT_S"):
        load_settings(OrdersSettings, environ)
