"""DynamoDB adapters for notifications: the contact book and the log of sent mail.

- contacts, key ``user_id``: ``email``, ``name``;
- sent mail, key ``event_id``: ``event_type``, ``status`` (``sending``/``sent``), ``to``,
  ``subject``, ``claimed_at`` (epoch seconds), ``message_id`` once sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.dynamodb import condition_failed

from .domain import MailRecord, MailStatus
from .mail import Contact

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class DynamoContactBook:
    """Contacts in a DynamoDB table (key ``user_id``).

    Parameters
    ----------
    client
        A DynamoDB client.
    table_name
        The contacts table.
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, user_id: str) -> Contact | None:
        """The user's contact, or ``None``."""
        answer = self._client.get_item(
            TableName=self._table, Key={"user_id": {"S": user_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None:
            return None
        return Contact(user_id=user_id, email=item["email"]["S"], name=item["name"]["S"])

    def put(self, contact: Contact) -> None:
        """Store (or refresh) a contact."""
        self._client.put_item(
            TableName=self._table,
            Item={
                "user_id": {"S": contact.user_id},
                "email": {"S": contact.email},
                "name": {"S": contact.name},
            },
        )


class DynamoMailLog:
    """The log of sent mail in a DynamoDB table (key ``event_id``).

    Parameters
    ----------
    client
        A DynamoDB client.
    table_name
        The sent-mail table.
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, record: MailRecord) -> MailRecord | None:
        """Put the claim down if the event has none: ``None``; else the record holding it."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_item_from_record(record),
                ConditionExpression="attribute_not_exists(event_id)",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
        else:
            return None
        answer = self._client.get_item(
            TableName=self._table, Key={"event_id": {"S": record.event_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        # Claims are never deleted, so the one that refused ours is there to read.
        if item is None:
            raise RuntimeError(f"the mail claim of event {record.event_id} vanished")
        return _record_from_item(item)

    def take_over(self, stale: MailRecord, record: MailRecord) -> bool:
        """Replace ``stale`` by ``record`` if ``stale`` is still what is stored."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_item_from_record(record),
                ConditionExpression="#status = :sending AND claimed_at = :claimed_at",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":sending": {"S": MailStatus.SENDING},
                    ":claimed_at": {"N": str(stale.claimed_at)},
                },
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def mark_sent(self, record: MailRecord, message_id: str) -> None:
        """Record that the mail went out, with the mail service's message id."""
        self._client.update_item(
            TableName=self._table,
            Key={"event_id": {"S": record.event_id}},
            UpdateExpression="SET #status = :sent, message_id = :message_id",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":sent": {"S": MailStatus.SENT},
                ":message_id": {"S": message_id},
            },
        )


def _item_from_record(record: MailRecord) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        "event_id": {"S": record.event_id},
        "event_type": {"S": record.event_type},
        "status": {"S": record.status},
        "to": {"S": record.to},
        "subject": {"S": record.subject},
        "claimed_at": {"N": str(record.claimed_at)},
    }
    if record.message_id is not None:
        item["message_id"] = {"S": record.message_id}
    return item


def _record_from_item(item: Mapping[str, Any]) -> MailRecord:
    message_id = item.get("message_id")
    return MailRecord(
        event_id=item["event_id"]["S"],
        event_type=item["event_type"]["S"],
        status=MailStatus(item["status"]["S"]),
        to=item["to"]["S"],
        subject=item["subject"]["S"],
        claimed_at=int(item["claimed_at"]["N"]),
        message_id=None if message_id is None else message_id["S"],
    )
