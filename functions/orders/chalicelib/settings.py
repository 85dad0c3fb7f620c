"""The orders functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from lambdamesh_toolkit.config import EnvSettings, EventFailureSettings
from lambdamesh_toolkit.deadline import DeadlineSettings, within_budget


class OrdersSettings(DeadlineSettings):
    """Where the API's tables and dependencies are, and how long to wait for the latter.

    Each call's per-attempt timeout holds a cold start of the callee, and the request budget
    (``REQUEST_DEADLINE_S``, inherited) one such attempt of each: the users check, then the
    catalog (``lambdamesh_toolkit.resilience``: a cold start is not a dead dependency). A
    timeout as long as the budget is refused: the deadline would always cut it short, and such
    a timeout never counts against the dependency's circuit.

    Attributes
    ----------
    events_table
        ``ORDER_EVENTS_TABLE``: the event store, one stream per order.
    orders_table
        ``ORDERS_TABLE``: the projection the read routes answer from.
    idempotency_table
        ``ORDER_IDEMPOTENCY_TABLE``: the ``Idempotency-Key`` records.
    users_api_url
        ``USERS_API_URL``: the users API stage URL.
    catalog_rpc_function
        ``CATALOG_RPC_FUNCTION``: name or ARN of the catalog's RPC function.
    users_connect_timeout_s, users_read_timeout_s
        ``USERS_API_CONNECT_TIMEOUT_S`` / ``USERS_API_READ_TIMEOUT_S``, per attempt.
    catalog_timeout_s
        ``CATALOG_RPC_TIMEOUT_S``: how long one ``GetProducts`` invocation may take.
    request_deadline_s
        ``REQUEST_DEADLINE_S``: the budget of a request (``DeadlineSettings``).
    """

    events_table: str = Field(alias="ORDER_EVENTS_TABLE", min_length=1)
    orders_table: str = Field(alias="ORDERS_TABLE", min_length=1)
    idempotency_table: str = Field(alias="ORDER_IDEMPOTENCY_TABLE", min_length=1)
    users_api_url: str = Field(alias="USERS_API_URL", min_length=1)
    catalog_rpc_function: str = Field(alias="CATALOG_RPC_FUNCTION", min_length=1)
    users_connect_timeout_s: float = Field(1.0, alias="USERS_API_CONNECT_TIMEOUT_S", gt=0)
    users_read_timeout_s: float = Field(5.0, alias="USERS_API_READ_TIMEOUT_S", gt=0)
    catalog_timeout_s: float = Field(5.0, alias="CATALOG_RPC_TIMEOUT_S", gt=0)

    @field_validator("users_read_timeout_s", "catalog_timeout_s")
    @classmethod
    def _shorter_than_the_budget(cls, timeout_s: float, info: ValidationInfo) -> float:
        return within_budget(timeout_s, info.data.get("request_deadline_s"))


class SagaSettings(EventFailureSettings):
    """What the outcome consumer (the saga) needs, besides its failures table.

    It keeps no processed marks: a repeated outcome finds itself recorded in the order's
    stream and appends nothing.

    Attributes
    ----------
    events_table
        ``ORDER_EVENTS_TABLE``: the saga appends to the orders' streams.
    """

    events_table: str = Field(alias="ORDER_EVENTS_TABLE", min_length=1)


class StreamSettings(EnvSettings):
    """What the functions on the event store's stream need.

    Attributes
    ----------
    events_table
        ``ORDER_EVENTS_TABLE``: the event store (the projector rebuilds orders from it).
    orders_table
        ``ORDERS_TABLE``: the projection.
    orders_topic_arn
        ``ORDERS_TOPIC_ARN``: the FIFO topic the appended events are published to.
    dead_letter_queue_arn
        ``ORDER_EVENTS_DEAD_LETTER_QUEUE_ARN``: where stream records no retry can handle go,
        with the reason (also the event sources' on-failure destination).
    """

    events_table: str = Field(alias="ORDER_EVENTS_TABLE", min_length=1)
    orders_table: str = Field(alias="ORDERS_TABLE", min_length=1)
    orders_topic_arn: str = Field(alias="ORDERS_TOPIC_ARN", min_length=1)
    dead_letter_queue_arn: str = Field(alias="ORDER_EVENTS_DEAD_LETTER_QUEUE_ARN", min_length=1)
