"""Builds the user registry from settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.events.publishing import EventPublisher, Publisher

from .domain import UserRegistry
from .store import DynamoUserRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import UsersSettings


def build_registry(
    settings: UsersSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    publisher: EventPublisher | None = None,
) -> UserRegistry:
    """The user registry wired to its table and the users topic (clients replaceable)."""
    return UserRegistry(
        DynamoUserRepository(dynamodb or clients.dynamodb(clients.REQUEST), settings.users_table),
        publisher or Publisher(settings.users_topic_arn),
    )
