"""Builds the user registry from settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.events import Publisher

from .domain import EventPublisher, UserRegistry
from .store import DynamoUserRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import UsersSettings


def dynamodb_client() -> DynamoDBClient:
    """A DynamoDB client with short timeouts (a request must fail fast, not hang)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        config=Config(
            connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}
        ),
    )


def build_registry(
    settings: UsersSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    publisher: EventPublisher | None = None,
) -> UserRegistry:
    """The user registry wired to its table and the users topic (clients replaceable)."""
    return UserRegistry(
        DynamoUserRepository(dynamodb or dynamodb_client(), settings.users_table),
        publisher or Publisher(settings.users_topic_arn),
    )
