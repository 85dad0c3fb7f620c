"""DynamoDB adapter for the user registry.

One table, key ``pk`` (string), two kinds of item:

- ``USER#<id>``: the user (``id``, ``email``, ``name``, ``created_at`` ISO-8601) and, until
  it is published, its ``user.created`` event as JSON (``announcement``: the outbox);
- ``EMAIL#<email>``: the claim on an email (``user_id``), which makes emails unique.

Both are written in one transaction with ``attribute_not_exists(pk)``, so two concurrent
registrations of one email cannot both succeed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.dynamodb import condition_failed
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.contracts.users import User

from .domain import EmailAlreadyRegisteredError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

USER_PREFIX = "USER#"
EMAIL_PREFIX = "EMAIL#"


class DynamoUserRepository:
    """Users in a DynamoDB table.

    Parameters
    ----------
    client
        A DynamoDB client.
    table_name
        The users table (key ``pk``).
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def add(self, user: User, announcement: EventEnvelope) -> None:
        """Store the user with its unpublished announcement and claim its email, atomically."""
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": {"S": USER_PREFIX + user.id},
                                "id": {"S": user.id},
                                "email": {"S": user.email},
                                "name": {"S": user.name},
                                "created_at": {"S": user.created_at.isoformat()},
                                "announcement": {"S": announcement.model_dump_json()},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": {"S": EMAIL_PREFIX + user.email},
                                "user_id": {"S": user.id},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if condition_failed(error):
                raise EmailAlreadyRegisteredError(user.email) from error
            raise

    def mark_announced(self, user_id: str) -> None:
        """Drop the user's stored announcement: it was published."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": USER_PREFIX + user_id}},
            UpdateExpression="REMOVE announcement",
        )

    def unpublished_announcement(self, user_id: str) -> EventEnvelope | None:
        """The user's ``user.created`` if it was stored and not published."""
        answer = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": USER_PREFIX + user_id}},
            ProjectionExpression="announcement",
            ConsistentRead=True,
        )
        raw = answer.get("Item", {}).get("announcement")
        return None if raw is None else EventEnvelope.model_validate_json(raw["S"])

    def get(self, user_id: str) -> User | None:
        """The user with this id, or ``None``."""
        answer = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": USER_PREFIX + user_id}}
        )
        item = answer.get("Item")
        if item is None:
            return None
        return User.model_validate(
            {
                "id": item["id"]["S"],
                "email": item["email"]["S"],
                "name": item["name"]["S"],
                "created_at": item["created_at"]["S"],
            }
        )
