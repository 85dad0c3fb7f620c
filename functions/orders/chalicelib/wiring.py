"""Builds the order desk and the saga from settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.clients.catalog import CatalogRpcLookup, RpcCaller
from lambdamesh_toolkit.events.publishing import Publisher
from lambdamesh_toolkit.http_client import ServiceHttpClient
from lambdamesh_toolkit.rpc import RpcClient

from .domain import OrderDesk
from .outcomes import OrderSaga
from .publishing import EventPublisher
from .saga_store import DynamoSagaRepository
from .store import DynamoOrderRepository
from .users_client import HttpGetter, UsersHttpDirectory

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import OrdersSettings, SagaSettings

USERS_DEPENDENCY = "users-api"
"""The users API's name in errors, logs, and the circuit breaker table."""
CATALOG_DEPENDENCY = "catalog-rpc"
"""The catalog RPC's name; reviews use the same name, so both share one circuit."""


def build_order_desk(
    settings: OrdersSettings,
    *,
    users_http: HttpGetter | None = None,
    catalog_rpc: RpcCaller | None = None,
    dynamodb: DynamoDBClient | None = None,
    publisher: EventPublisher | None = None,
) -> OrderDesk:
    """The order desk wired to its adapters.

    Parameters
    ----------
    settings
        The functions' settings.
    users_http, catalog_rpc, dynamodb, publisher
        Replacements for the default clients (tests pass doubles); by default the users
        API and the catalog are reached through the toolkit's clients, with their
        timeouts, retries and the shared circuit breaker, and events go to the orders
        topic through the toolkit's publisher.
    """
    if users_http is None:
        users_http = ServiceHttpClient(
            settings.users_api_url,
            USERS_DEPENDENCY,
            connect_timeout_s=settings.users_connect_timeout_s,
            read_timeout_s=settings.users_read_timeout_s,
        )
    if catalog_rpc is None:
        catalog_rpc = RpcClient(
            settings.catalog_rpc_function, CATALOG_DEPENDENCY, timeout_s=settings.catalog_timeout_s
        )
    return OrderDesk(
        users=UsersHttpDirectory(users_http, USERS_DEPENDENCY),
        catalog=CatalogRpcLookup(catalog_rpc),
        repository=DynamoOrderRepository(
            dynamodb or clients.dynamodb(clients.REQUEST),
            settings.orders_table,
            settings.idempotency_table,
        ),
        publisher=publisher or Publisher(settings.orders_topic_arn),
    )


def build_saga(
    settings: SagaSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    publisher: EventPublisher | None = None,
) -> OrderSaga:
    """The order saga wired to the orders table and the orders topic."""
    return OrderSaga(
        DynamoSagaRepository(dynamodb or clients.dynamodb(clients.CONSUMER), settings.orders_table),
        publisher or Publisher(settings.orders_topic_arn, profile=clients.CONSUMER),
    )
