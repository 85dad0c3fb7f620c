"""Publishing events: build an envelope, validate it, publish it to an SNS topic.

::

    PUBLISHER = Publisher(SETTINGS.orders_topic_arn)      # module level: reused when warm

    envelope = new_event("order.placed", OrderPlaced(...), source="orders")
    message_id = PUBLISHER.publish(envelope, group_id=order.id)

The returned SNS ``MessageId`` is the publisher confirm: SNS has stored the
message. A caller that must not lose an event records the envelope first and
publishes (again) until it holds a message id; consumers are idempotent by the
event id, and FIFO topics drop a republished event by its deduplication id.

Message attributes ``type``, ``version`` and ``correlation_id`` travel beside
the body, so subscriptions filter on ``type`` without reading the body and the
correlation id survives delivery as an SQS message attribute.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    EventError,
    InvalidEventError,
    event_data,
    event_model,
    invalid_event_from,
)
from lambdamesh_toolkit.correlation import current_correlation_id

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

#: SNS refuses messages over 256 KiB, body and message attributes counted together.
SNS_MAX_MESSAGE_BYTES = 256 * 1024


class EventTooLargeError(EventError, ValueError):
    """An event is larger than SNS accepts.

    Parameters
    ----------
    event_type : str
        The event's ``type``.
    size : int
        Its size in bytes, body and message attributes.
    limit : int
        The largest size accepted.
    """

    def __init__(self, event_type: str, size: int, limit: int = SNS_MAX_MESSAGE_BYTES) -> None:
        super().__init__(
            f"event {event_type!r} is {size} bytes, over the {limit}-byte limit of SNS"
            " (body and message attributes); publish a reference to the data instead"
        )
        self.event_type = event_type
        self.size = size
        self.limit = limit


def new_event(
    type: str,  # named as the envelope's field; shadows the builtin here only
    data_model: EventData,
    *,
    source: str,
    causation_id: str | None = None,
) -> EventEnvelope:
    """Wrap ``data_model`` in a new envelope with the current correlation id.

    Parameters
    ----------
    type : str
        The event type, e.g. ``order.placed``; it must be the type ``data_model``
        is registered for.
    data_model : EventData
        The event's data; its ``contract_version`` becomes the envelope's ``version``.
    source : str
        Name of the publishing service.
    causation_id : str | None
        Id of the event or request that caused this one.

    Returns
    -------
    EventEnvelope
        With a fresh uuid4 ``id``, ``time`` now (UTC), and ``correlation_id``
        from :func:`lambdamesh_toolkit.correlation.current_correlation_id`.

    Raises
    ------
    UnknownEventError
        When ``(type, version)`` is not registered.
    InvalidEventError
        When ``data_model`` is not the model registered for ``type``, or an
        envelope field (``source``, ``causation_id``) is malformed.
    """
    version = data_model.contract_version
    expected = event_model(type, version)
    if not isinstance(data_model, expected):
        raise InvalidEventError(
            f"{type} v{version} carries {expected.__name__}, not {data_model.__class__.__name__}",
            field="data",
        )
    try:
        return EventEnvelope(
            id=str(uuid.uuid4()),
            type=type,
            version=version,
            source=source,
            time=dt.datetime.now(dt.UTC),
            correlation_id=current_correlation_id(),
            causation_id=causation_id,
            data=data_model.model_dump(mode="json"),
        )
    except ValidationError as exc:
        raise invalid_event_from(exc, what="envelope") from None


class Publisher:
    """Publishes event envelopes to one SNS topic.

    Create one per topic at module level; the SNS client is created on the
    first publish (boto3 is not imported at cold start).

    Parameters
    ----------
    topic_arn : str
        The topic; a name ending in ``.fifo`` makes it a FIFO topic.
    sns_client : SNSClient | None
        A client to use (tests pass one); by default one is created on first
        use, with short timeouts and botocore's standard retries.
    """

    def __init__(self, topic_arn: str, *, sns_client: SNSClient | None = None) -> None:
        if not topic_arn:
            raise ValueError("topic_arn is empty")
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(".fifo")
        self._sns_client = sns_client

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        """Publish ``envelope`` and return SNS's ``MessageId`` (the publisher confirm).

        Parameters
        ----------
        envelope : EventEnvelope
            The event; its ``data`` is validated against the registered model first.
        group_id : str | None
            ``MessageGroupId``: required on a FIFO topic (events of one group
            are delivered in order), refused on a standard topic. On a FIFO
            topic the event id is the ``MessageDeduplicationId``, so publishing
            the same envelope twice within 5 minutes delivers it once.

        Returns
        -------
        str
            The SNS message id.

        Raises
        ------
        UnknownEventError, InvalidEventError
            When the envelope's data does not match its registered model.
        EventTooLargeError
            When the message is over 256 KiB.
        ValueError
            When ``group_id`` is missing on a FIFO topic or given on a standard one.
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            When SNS refuses or cannot be reached (after botocore's retries).
        """
        if self.fifo and not group_id:
            raise ValueError(f"FIFO topic {self.topic_arn} needs a group_id")
        if not self.fifo and group_id is not None:
            raise ValueError(f"standard topic {self.topic_arn} takes no group_id")
        event_data(envelope)
        body = envelope.model_dump_json()
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "type": {"DataType": "String", "StringValue": envelope.type},
            "version": {"DataType": "String", "StringValue": str(envelope.version)},
            "correlation_id": {"DataType": "String", "StringValue": envelope.correlation_id},
        }
        size = message_size(body, attributes)
        if size > SNS_MAX_MESSAGE_BYTES:
            raise EventTooLargeError(envelope.type, size)
        client = self._client()
        if group_id is not None:
            answer = client.publish(
                TopicArn=self.topic_arn,
                Message=body,
                MessageAttributes=attributes,
                MessageGroupId=group_id,
                MessageDeduplicationId=envelope.id,
            )
        else:
            answer = client.publish(
                TopicArn=self.topic_arn, Message=body, MessageAttributes=attributes
            )
        return answer["MessageId"]

    def _client(self) -> SNSClient:
        if self._sns_client is None:
            # Imported here: boto3 costs ~0.3 s of cold start, paid on first publish only.
            import boto3
            from botocore.config import Config

            self._sns_client = boto3.client(
                "sns",
                config=Config(
                    connect_timeout=2,
                    read_timeout=5,
                    retries={"total_max_attempts": 3, "mode": "standard"},
                ),
            )
        return self._sns_client


def message_size(body: str, attributes: dict[str, MessageAttributeValueTypeDef]) -> int:
    """Size of a message as SNS counts it: the body plus each attribute's name, type and value."""
    size = len(body.encode())
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(value.get("StringValue", "").encode())
    return size


class EventPublisher(Protocol):
    """What publishes an event: :class:`Publisher`, or a double in tests (a domain's port)."""

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        """Publish ``envelope``; the topic's message id once it has it."""
        ...


def publish_stored(
    publisher: EventPublisher, envelope: EventEnvelope | None
) -> EventEnvelope | None:
    """Publish a stored event if there is one; return it (``None`` when there is none).

    For standard topics: the envelope was stored with the state change that caused it (an
    outbox on the record), so publishing it again after a crash repeats the same event id and
    consumers drop the duplicate.
    """
    if envelope is not None:
        publisher.publish(envelope)
    return envelope


def republish_if_caused_by(
    publisher: EventPublisher, stored: EventEnvelope | None, event: EventEnvelope
) -> EventEnvelope | None:
    """Publish ``stored`` again if ``event`` caused it, else nothing.

    A redelivered ``event`` finds the state change it caused already stored; its announcement
    may not have been published (a crash between the write and the publish), so it is sent
    again under the same event id. A different event that finds the same state publishes
    nothing.
    """
    if stored is None or stored.causation_id != event.id:
        return None
    return publish_stored(publisher, stored)
