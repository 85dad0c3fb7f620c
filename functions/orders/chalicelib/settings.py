"""The orders functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings, EventBookkeepingSettings


class OrdersSettings(EnvSettings):
    """Where orders' tables and dependencies are, and how long to wait for the latter.

    Attributes
    ----------
    orders_table
        ``ORDERS_TABLE``.
    idempotency_table
        ``ORDER_IDEMPOTENCY_TABLE``: the ``Idempotency-Key`` claims.
    users_api_url
        ``USERS_API_URL``: the users API stage URL.
    catalog_rpc_function
        ``CATALOG_RPC_FUNCTION``: name or ARN of the catalog's RPC function.
    users_connect_timeout_s, users_read_timeout_s
        ``USERS_API_CONNECT_TIMEOUT_S`` / ``USERS_API_READ_TIMEOUT_S``, per attempt.
    catalog_timeout_s
        ``CATALOG_RPC_TIMEOUT_S``: how long one ``GetProduct`` invocation may take.
    orders_topic_arn
        ``ORDERS_TOPIC_ARN``: the FIFO topic ``order.placed`` is published to.
    """

    orders_table: str = Field(alias="ORDERS_TABLE", min_length=1)
    idempotency_table: str = Field(alias="ORDER_IDEMPOTENCY_TABLE", min_length=1)
    users_api_url: str = Field(alias="USERS_API_URL", min_length=1)
    catalog_rpc_function: str = Field(alias="CATALOG_RPC_FUNCTION", min_length=1)
    users_connect_timeout_s: float = Field(1.0, alias="USERS_API_CONNECT_TIMEOUT_S", gt=0)
    users_read_timeout_s: float = Field(3.0, alias="USERS_API_READ_TIMEOUT_S", gt=0)
    catalog_timeout_s: float = Field(3.0, alias="CATALOG_RPC_TIMEOUT_S", gt=0)
    orders_topic_arn: str = Field(alias="ORDERS_TOPIC_ARN", min_length=1)


class SagaSettings(EventBookkeepingSettings):
    """What the outcome consumer (the saga) needs, besides the event consumer's tables.

    Attributes
    ----------
    orders_table
        ``ORDERS_TABLE``: the saga's state lives on the orders' items.
    orders_topic_arn
        ``ORDERS_TOPIC_ARN``: where ``order.confirmed`` / ``order.cancelled`` go.
    """

    orders_table: str = Field(alias="ORDERS_TABLE", min_length=1)
    orders_topic_arn: str = Field(alias="ORDERS_TOPIC_ARN", min_length=1)
