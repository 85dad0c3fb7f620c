"""Builds the orders' use cases from settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.signing import SigV4Signer
from lambdamesh_toolkit.clients.catalog import CatalogRpcLookup, RpcCaller
from lambdamesh_toolkit.contracts.events import OrderPaymentRecorded, OrderStockRecorded
from lambdamesh_toolkit.events.change_capture import StreamDeadLetters, StreamPublisher
from lambdamesh_toolkit.events.publishing import Publisher
from lambdamesh_toolkit.events.store import EventStore
from lambdamesh_toolkit.http_client import ServiceHttpClient
from lambdamesh_toolkit.rpc import RpcClient

from .key_records import DynamoKeyRecords
from .order import order_id_of
from .placing import OrderDesk
from .projection import (
    OrderProjector,
    OrderViews,
    RebuildReport,
    compare_with_store,
    stream_ids_in,
)
from .reading import OrderReader
from .saga import OrderSaga
from .users_client import HttpGetter, UsersHttpDirectory

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import OrdersSettings, SagaSettings, StreamSettings

PRIVATE_EVENT_TYPES = frozenset({OrderPaymentRecorded.event_type, OrderStockRecorded.event_type})
"""The orders' events that stay in the event store, never published."""
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
) -> OrderDesk:
    """The order desk wired to its adapters.

    Parameters
    ----------
    settings
        The API's settings.
    users_http, catalog_rpc, dynamodb
        Replacements for the default clients (tests pass doubles); by default the users
        API (:func:`build_users_client`) and the catalog are reached through the toolkit's
        clients, with their timeouts, retries and the shared circuit breaker.
    """
    if users_http is None:
        users_http = build_users_client(settings)
    if catalog_rpc is None:
        catalog_rpc = RpcClient(
            settings.catalog_rpc_function, CATALOG_DEPENDENCY, timeout_s=settings.catalog_timeout_s
        )
    client = dynamodb or clients.dynamodb(clients.REQUEST)
    streams = EventStore(settings.events_table, client=client)
    return OrderDesk(
        users=UsersHttpDirectory(users_http, USERS_DEPENDENCY),
        catalog=CatalogRpcLookup(catalog_rpc),
        keys=DynamoKeyRecords(client, settings.idempotency_table, streams),
        streams=streams,
    )


def build_users_client(settings: OrdersSettings) -> ServiceHttpClient:
    """The client of the users API: every request signed (SigV4, ``execute-api``).

    ``GET /users/{user_id}`` requires IAM authorisation: API Gateway lets through only requests
    signed by a principal allowed ``execute-api:Invoke`` on it, which the orders functions'
    role is (``functions/orders/resources.json``, statement ``UsersLookup``). The signature is
    made with the role's credentials, in the function's region, for each attempt.
    """
    return ServiceHttpClient(
        settings.users_api_url,
        USERS_DEPENDENCY,
        connect_timeout_s=settings.users_connect_timeout_s,
        read_timeout_s=settings.users_read_timeout_s,
        signer=SigV4Signer(),
    )


def build_reader(
    settings: OrdersSettings, *, dynamodb: DynamoDBClient | None = None
) -> OrderReader:
    """The read side: the projection, and the event store for histories and fresh orders."""
    client = dynamodb or clients.dynamodb(clients.REQUEST)
    return OrderReader(
        OrderViews(client, settings.orders_table), EventStore(settings.events_table, client=client)
    )


def build_saga(settings: SagaSettings, *, dynamodb: DynamoDBClient | None = None) -> OrderSaga:
    """The order saga wired to the event store."""
    client = dynamodb or clients.dynamodb(clients.CONSUMER)
    return OrderSaga(EventStore(settings.events_table, client=client))


def build_stream_publisher(settings: StreamSettings, logger: Logger) -> StreamPublisher:
    """The publisher of the orders' appended events to the orders topic (FIFO, grouped by order).

    The records of what payments and inventory answered (``order.payment_recorded``,
    ``order.stock_recorded``) are the order's own bookkeeping: no other service acts on them,
    so they stay in the event store and only the order's decisions and its voiding go out.
    """
    topic = Publisher(settings.orders_topic_arn, profile=clients.CONSUMER)
    return StreamPublisher(
        topic,
        group_of=lambda stream: order_id_of(stream) or stream,  # an order's group: its id
        dead_letters=StreamDeadLetters(settings.dead_letter_queue_arn),
        logger=logger,
        fifo=topic.fifo,
        private_types=PRIVATE_EVENT_TYPES,
    )


def build_projector(
    settings: StreamSettings, logger: Logger, *, dynamodb: DynamoDBClient | None = None
) -> OrderProjector:
    """The projector of the orders' read model."""
    client = dynamodb or clients.dynamodb(clients.CONSUMER)
    return OrderProjector(
        OrderViews(client, settings.orders_table),
        EventStore(settings.events_table, client=client),
        dead_letters=StreamDeadLetters(settings.dead_letter_queue_arn),
        logger=logger,
    )


def rebuild_projection(
    settings: StreamSettings, *, apply: bool, dynamodb: DynamoDBClient | None = None
) -> RebuildReport:
    """Rebuild the read model from every stream and compare (``apply``: and write it)."""
    client = dynamodb or clients.dynamodb(clients.CONSUMER)
    return compare_with_store(
        OrderViews(client, settings.orders_table),
        EventStore(settings.events_table, client=client),
        stream_ids_in(client, settings.events_table),
        apply=apply,
    )
