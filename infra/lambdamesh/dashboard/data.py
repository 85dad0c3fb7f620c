"""What the dashboard shows, read from the target: each function of this module answers one of
the page's JSON requests and is plain enough to test against moto.

Everything is read live from the endpoint (the emulator or AWS) and from what
``lambdamesh deploy`` recorded for it, never from a cache of the page's own: what the page shows
is what is there.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import urllib3

from lambdamesh.messaging_status import read_messaging

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

RECENT_ORDERS_SCANNED = 500
"""At most this many read-model items are scanned for the newest orders (a local system's
table is small; on a large one the page shows the newest of the first ones read)."""


@dataclass(frozen=True)
class Deployment:
    """What deploy recorded of the system: each service's API URL, functions and outputs.

    Attributes
    ----------
    services
        Service name → ``{"api_url", "functions", "outputs", "stack", ...}``, as
        :func:`lambdamesh.deploy.records.load_services` reads it.
    """

    services: Mapping[str, Mapping[str, Any]]

    def api_url(self, service: str) -> str | None:
        """The service's REST API base URL (ending in ``/``), if it has one."""
        url = self.services.get(service, {}).get("api_url")
        return str(url) if url else None

    def output(self, service: str, key: str) -> str | None:
        """One of the service stack's outputs."""
        value = (self.services.get(service, {}).get("outputs") or {}).get(key)
        return str(value) if value else None


def system_status(
    deployment: Deployment, sns: SNSClient, sqs: SQSClient, prefix: str
) -> dict[str, Any]:
    """The services with their API and functions, the topics, and every queue and DLQ with its
    depth (``GET /api/status``)."""
    messaging = read_messaging(sns, sqs, prefix)
    return {
        "services": {
            name: {"api_url": record.get("api_url"), "functions": record.get("functions") or {}}
            for name, record in sorted(deployment.services.items())
        },
        "messaging": dataclasses.asdict(messaging),
        "dead_letters": sum(queue.total for queue in messaging.dead_letter_queues),
    }


def recent_orders(dynamodb: DynamoDBClient, table: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` orders of the orders' read model, newest first (``GET /api/orders``).

    Each is ``{"id", "user_id", "status", "placed_at", "total_cents", "currency"}``.
    """
    items: list[dict[str, Any]] = []
    paginator = dynamodb.get_paginator("scan")
    pages = paginator.paginate(
        TableName=table,
        ProjectionExpression="id, user_id, #s, placed_at, total_cents, currency",
        ExpressionAttributeNames={"#s": "status"},
        PaginationConfig={"MaxItems": RECENT_ORDERS_SCANNED},
    )
    for page in pages:
        for item in page.get("Items", []):
            items.append(
                {
                    "id": item["id"]["S"],
                    "user_id": item.get("user_id", {}).get("S"),
                    "status": item.get("status", {}).get("S"),
                    "placed_at": item.get("placed_at", {}).get("S", ""),
                    "total_cents": int(item.get("total_cents", {}).get("N", "0")),
                    "currency": item.get("currency", {}).get("S"),
                }
            )
    items.sort(key=lambda order: str(order["placed_at"]), reverse=True)
    return items[:limit]


def order_history(http: urllib3.PoolManager, orders_api_url: str, order_id: str) -> Any:
    """An order's events as the orders service answers ``GET /orders/{id}/events``
    (``GET /api/orders/<id>/events``): the dashboard is one more client of the service.

    Raises
    ------
    LookupError
        When the service answers anything but 200 (the order is unknown, or the service is
        not there).
    """
    url = f"{orders_api_url.rstrip('/')}/orders/{quote(order_id, safe='')}/events"
    answer = http.request("GET", url, timeout=urllib3.Timeout(total=10))
    if answer.status != 200:
        raise LookupError(f"GET /orders/{order_id}/events answered {answer.status}")
    return json.loads(answer.data)
