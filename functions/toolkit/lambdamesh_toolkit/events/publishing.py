"""Publishing events to an SNS topic, and the outbox that makes publishing safe.

:class:`Publisher` validates an envelope against its contract and publishes it; the returned SNS
``MessageId`` is the publisher confirm: SNS has stored the message. Message attributes ``type``,
``version``, ``correlation_id`` and ``traceparent`` travel beside the body, so subscriptions
filter on ``type`` without reading the body and the correlation id and the trace context survive
delivery as SQS message attributes (raw delivery keeps them). Each publish is a ``publish`` hop
(:mod:`lambdamesh_toolkit.hops`): the ``traceparent`` it sends is its own span.

:class:`Outbox` is the one way services publish what they decided: **commit the state change
and its event together, publish after.** The event is stored in the same DynamoDB write as the
change that caused it (an attribute of the item, or the transaction's items), then published,
then marked published. A crash or an SNS outage between the write and the publish leaves the
event stored; whatever runs the same work again (a queue's redelivery, a client's retry with its
``Idempotency-Key``) finds it and publishes it under the same event id. Consumers are idempotent
by that id, and FIFO topics drop a republished event by its deduplication id, so an event may be
published twice but is never lost.

>>> from lambdamesh_toolkit.contracts.events import OrderConfirmed
>>> from lambdamesh_toolkit.events.envelope import new_event
>>> class Topic:
...     def __init__(self): self.sent = []
...     def publish(self, envelope, *, group_id=None):
...         self.sent.append((envelope.type, group_id)); return f"m-{len(self.sent)}"
>>> topic, marked = Topic(), []
>>> data = OrderConfirmed(order_id="o-1", user_id="u-1")
>>> confirmed = new_event("order.confirmed", data, source="orders")
>>> Outbox(topic).publish([confirmed], group_id="o-1", then=lambda: marked.append("o-1"))
>>> topic.sent, marked
([('order.confirmed', 'o-1')], ['o-1'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lambdamesh_toolkit import faults
from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.contracts.events import EventEnvelope, EventError
from lambdamesh_toolkit.events.envelope import event_data
from lambdamesh_toolkit.events.time_guard import TimeGuard
from lambdamesh_toolkit.hops import PUBLISH, outbound_hop
from lambdamesh_toolkit.trace_context import TRACEPARENT, current_traceparent

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sns.type_defs import (
        MessageAttributeValueTypeDef,
        PublishBatchRequestEntryTypeDef,
    )

#: SNS refuses messages over 256 KiB, body and message attributes counted together.
SNS_MAX_MESSAGE_BYTES = 256 * 1024
#: ``PublishBatch`` takes at most 10 messages, 256 KiB together.
SNS_MAX_BATCH_ENTRIES = 10
#: Why :meth:`Publisher.publish_batch` stopped before a request it had no time left to send.
OUT_OF_TIME_FAILURE = "OutOfTime: not sent, the invocation was running out of time"


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


class EventPublisher(Protocol):
    """What publishes an event: :class:`Publisher`, or a double in tests (a domain's port)."""

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        """Publish ``envelope``; the topic's message id once it has it."""
        ...


@dataclass(frozen=True)
class PreparedEvent:
    """An event checked and made into its SNS message, to be sent later (with others).

    Attributes
    ----------
    envelope : EventEnvelope
        The event.
    body : str
        Its message body (the envelope as JSON).
    attributes : dict[str, MessageAttributeValueTypeDef]
        Its message attributes (:func:`message_attributes`).
    group_id : str | None
        Its ``MessageGroupId`` on a FIFO topic.
    size : int
        Its size as SNS counts it (:func:`message_size`).
    """

    envelope: EventEnvelope
    body: str
    attributes: dict[str, MessageAttributeValueTypeDef]
    group_id: str | None
    size: int


@dataclass(frozen=True)
class BatchOutcome:
    """What a :meth:`Publisher.publish_batch` published, in order, and where it stopped.

    Attributes
    ----------
    message_ids : tuple[str, ...]
        SNS's message ids of the leading events published, in the order given.
    failure : str | None
        Why the next event was not published (SNS's code and message, or the error);
        ``None`` when every one was.
    error : Exception | None
        The error the request raised, when that was the failure.
    """

    message_ids: tuple[str, ...]
    failure: str | None = None
    error: Exception | None = None


class BatchEventPublisher(EventPublisher, Protocol):
    """What publishes events several to a request: :class:`Publisher`."""

    @property
    def topic_name(self) -> str:
        """The topic's name (a ``publish`` hop's peer)."""
        ...

    def prepare(
        self, envelope: EventEnvelope, *, group_id: str | None = None, traceparent: str | None
    ) -> PreparedEvent:
        """Check ``envelope`` and make its message (see :meth:`Publisher.prepare`)."""
        ...

    def publish_batch(
        self, events: Sequence[PreparedEvent], *, guard: TimeGuard | None = None
    ) -> BatchOutcome:
        """Publish ``events`` in order, several to a request (see
        :meth:`Publisher.publish_batch`)."""
        ...


class Publisher:
    """Publishes event envelopes to one SNS topic.

    Create one per topic at module level; the SNS client is the process's shared one,
    created on the first publish (boto3 is not imported at cold start).

    Parameters
    ----------
    topic_arn : str
        The topic; a name ending in ``.fifo`` makes it a FIFO topic.
    sns_client : SNSClient | None
        A client to use (tests pass one); by default the shared client of ``profile``.
    profile : ClientProfile
        Timeouts and retries of the default client: :data:`~lambdamesh_toolkit.aws.clients.REQUEST`
        on an API route, :data:`~lambdamesh_toolkit.aws.clients.CONSUMER` in a consumer.
    """

    def __init__(
        self,
        topic_arn: str,
        *,
        sns_client: SNSClient | None = None,
        profile: clients.ClientProfile = clients.REQUEST,
    ) -> None:
        if not topic_arn:
            raise ValueError("topic_arn is empty")
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(".fifo")
        self._sns_client = sns_client
        self._profile = profile

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
        self._check_group(group_id)
        event_data(envelope)
        with outbound_hop(PUBLISH, self.topic_name, event_type=envelope.type, event_id=envelope.id):
            prepared = self._message(envelope, group_id, current_traceparent())
            message_id = self._send(prepared.body, prepared.attributes, group_id, envelope.id)
            if self._duplicated(envelope):
                self._send(prepared.body, prepared.attributes, group_id, f"{envelope.id}:duplicate")
            return message_id

    @property
    def topic_name(self) -> str:
        """The topic's name: the last part of its ARN."""
        return self.topic_arn.rsplit(":", 1)[-1]

    def prepare(
        self, envelope: EventEnvelope, *, group_id: str | None = None, traceparent: str | None
    ) -> PreparedEvent:
        """Check ``envelope`` and make its message, to publish with :meth:`publish_batch`.

        Parameters
        ----------
        envelope : EventEnvelope
            The event; its ``data`` is validated against the registered model.
        group_id : str | None
            ``MessageGroupId`` (see :meth:`publish`).
        traceparent : str | None
            The ``traceparent`` the message carries: the span of its publish hop.

        Raises
        ------
        UnknownEventError, InvalidEventError, EventTooLargeError, ValueError
            As :meth:`publish` raises them.
        """
        self._check_group(group_id)
        event_data(envelope)
        return self._message(envelope, group_id, traceparent)

    @staticmethod
    def _message(
        envelope: EventEnvelope, group_id: str | None, traceparent: str | None
    ) -> PreparedEvent:
        """``envelope``'s message, its group and data already checked; refused over 256 KiB."""
        body = envelope.model_dump_json()
        attributes = message_attributes(envelope, traceparent)
        size = message_size(body, attributes)
        if size > SNS_MAX_MESSAGE_BYTES:
            raise EventTooLargeError(envelope.type, size)
        return PreparedEvent(envelope, body, attributes, group_id, size)

    def publish_batch(
        self, events: Sequence[PreparedEvent], *, guard: TimeGuard | None = None
    ) -> BatchOutcome:
        """Publish ``events`` in the order given, up to 10 (and 256 KiB) to a ``PublishBatch``.

        Requests go one after the other; the first event SNS does not take ends the run: the
        outcome says which events before it were published and why it was not. Events after
        it may have been published in the same request (on a FIFO topic, sending them again
        within 5 minutes delivers nothing more: their event ids are the deduplication ids).

        Parameters
        ----------
        events : Sequence[PreparedEvent]
            What to publish, in order (:meth:`prepare`).
        guard : TimeGuard | None
            The invocation's time: no request is sent once it says the function's timeout is
            too near (the run ends there, with :data:`OUT_OF_TIME_FAILURE`), and each request
            is timed by it.

        Returns
        -------
        BatchOutcome
            The leading events' message ids, and the failure that stopped the run.
        """
        guard = guard or TimeGuard(None)
        published: list[str] = []
        for chunk in self._chunks(events):
            if not guard.allows_another():
                return BatchOutcome(tuple(published), OUT_OF_TIME_FAILURE)
            entries = self._entries(chunk)
            try:
                with guard.timing():
                    answer = self._client().publish_batch(
                        TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
                    )
            except Exception as error:  # any refusal or transport error: the caller retries
                return BatchOutcome(tuple(published), f"{type(error).__name__}: {error}", error)
            taken = {entry["Id"]: entry["MessageId"] for entry in answer.get("Successful", [])}
            refused = {
                entry["Id"]: f"{entry['Code']}: {entry.get('Message', '')}".rstrip(": ")
                for entry in answer.get("Failed", [])
            }
            for position in range(len(chunk)):
                message_id = taken.get(str(position))
                if message_id is None:
                    failure = refused.get(str(position), "NotPublished")
                    return BatchOutcome(tuple(published), failure)
                published.append(message_id)
        return BatchOutcome(tuple(published))

    def _chunks(self, events: Sequence[PreparedEvent]) -> list[list[tuple[PreparedEvent, bool]]]:
        """``events`` in runs that fit one request, each with whether a chaos run's
        ``duplicate`` fault sends it twice (its copy counted in the run)."""
        chunks: list[list[tuple[PreparedEvent, bool]]] = []
        entries = size = 0
        for event in events:
            twice = self._duplicated(event.envelope)
            copies = 2 if twice else 1
            if (
                not chunks
                or entries + copies > SNS_MAX_BATCH_ENTRIES
                or size + copies * event.size > SNS_MAX_MESSAGE_BYTES
            ):
                chunks.append([])
                entries = size = 0
            chunks[-1].append((event, twice))
            entries += copies
            size += copies * event.size
        return chunks

    def _entries(
        self, chunk: Sequence[tuple[PreparedEvent, bool]]
    ) -> list[PublishBatchRequestEntryTypeDef]:
        """The request's entries: each event under its position as ``Id``, its duplicate (a
        chaos run's) after it under ``d<position>``."""
        entries: list[PublishBatchRequestEntryTypeDef] = []
        for position, (event, twice) in enumerate(chunk):
            entries.append(self._entry(str(position), event, event.envelope.id))
            if twice:
                entries.append(self._entry(f"d{position}", event, f"{event.envelope.id}:duplicate"))
        return entries

    def _entry(
        self, entry_id: str, event: PreparedEvent, deduplication_id: str
    ) -> PublishBatchRequestEntryTypeDef:
        entry: PublishBatchRequestEntryTypeDef = {
            "Id": entry_id,
            "Message": event.body,
            "MessageAttributes": event.attributes,
        }
        if event.group_id is not None:
            entry["MessageGroupId"] = event.group_id
            entry["MessageDeduplicationId"] = deduplication_id
        return entry

    def _check_group(self, group_id: str | None) -> None:
        if self.fifo and not group_id:
            raise ValueError(f"FIFO topic {self.topic_arn} needs a group_id")
        if not self.fifo and group_id is not None:
            raise ValueError(f"standard topic {self.topic_arn} takes no group_id")

    @staticmethod
    def _duplicated(envelope: EventEnvelope) -> bool:
        """Whether a chaos run's ``duplicate`` fault sends this event twice (reported if so)."""
        if not faults.happens(faults.active_faults().duplicate_rate):
            return False
        faults.report("duplicate", event_id=envelope.id)
        return True

    def _send(
        self,
        body: str,
        attributes: dict[str, MessageAttributeValueTypeDef],
        group_id: str | None,
        deduplication_id: str,
    ) -> str:
        client = self._client()
        if group_id is not None:
            answer = client.publish(
                TopicArn=self.topic_arn,
                Message=body,
                MessageAttributes=attributes,
                MessageGroupId=group_id,
                MessageDeduplicationId=deduplication_id,
            )
        else:
            answer = client.publish(
                TopicArn=self.topic_arn, Message=body, MessageAttributes=attributes
            )
        return answer["MessageId"]

    def _client(self) -> SNSClient:
        return self._sns_client or clients.sns(self._profile)


def message_attributes(
    envelope: EventEnvelope, traceparent: str | None
) -> dict[str, MessageAttributeValueTypeDef]:
    """The message attributes an event travels with: ``type``, ``version``, ``correlation_id``
    and, inside a hop, ``traceparent`` (four of the ten SNS and SQS allow; a message
    dead-lettered at once adds ``failure_reason``).

    >>> from lambdamesh_toolkit.contracts.events import OrderConfirmed
    >>> from lambdamesh_toolkit.events.envelope import new_event
    >>> event = new_event("order.confirmed", OrderConfirmed(order_id="o-1", user_id="u-1"),
    ...                   source="orders")
    >>> sorted(message_attributes(event, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
    ['correlation_id', 'traceparent', 'type', 'version']
    """
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        "type": {"DataType": "String", "StringValue": envelope.type},
        "version": {"DataType": "String", "StringValue": str(envelope.version)},
        "correlation_id": {"DataType": "String", "StringValue": envelope.correlation_id},
    }
    if traceparent is not None:
        attributes[TRACEPARENT] = {"DataType": "String", "StringValue": traceparent}
    return attributes


def message_size(body: str, attributes: dict[str, MessageAttributeValueTypeDef]) -> int:
    """Size of a message as SNS counts it: the body plus each attribute's name, type and value.

    >>> message_size("{}", {"type": {"DataType": "String", "StringValue": "order.placed"}})
    24
    """
    size = len(body.encode())
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(value.get("StringValue", "").encode())
    return size


class UnpublishedEventsError(Exception):
    """The state change is committed, but its events could not all be published.

    They stay stored with the change; running the same work again publishes them.

    Parameters
    ----------
    events : Sequence[EventEnvelope]
        The events not confirmed by the topic, in order.
    """

    def __init__(self, events: Sequence[EventEnvelope]) -> None:
        names = ", ".join(f"{event.type} {event.id}" for event in events)
        super().__init__(f"committed, not published: {names}")
        self.events = tuple(events)


class Outbox:
    """Publishes the events committed with a state change, then marks them published.

    Plain Python over the :class:`EventPublisher` port: a domain builds one around the
    publisher it is given.

    Parameters
    ----------
    publisher : EventPublisher
        The topic.
    """

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish(
        self,
        events: Sequence[EventEnvelope],
        *,
        group_id: str | None = None,
        then: Callable[[], object] | None = None,
    ) -> None:
        """Publish committed ``events`` in order, then call ``then`` (mark them published).

        Parameters
        ----------
        events : Sequence[EventEnvelope]
            Events already stored with the change that caused them.
        group_id : str | None
            Their message group on a FIFO topic.
        then : Callable | None
            Marks them published (clears the outbox); skipped when nothing was published.

        Raises
        ------
        UnpublishedEventsError
            When an event was not confirmed (its cause chained); the ones from it on are named
            and stay stored, and ``then`` is not called.
        """
        for position, event in enumerate(events):
            try:
                self._publisher.publish(event, group_id=group_id)
            except Exception as error:
                raise UnpublishedEventsError(events[position:]) from error
        if events and then is not None:
            then()

    def publish_stored(
        self, stored: EventEnvelope | None, *, group_id: str | None = None
    ) -> EventEnvelope | None:
        """Publish one stored event if there is one; return it (``None`` when there is none).

        For records that keep the event announcing their last change (a payment's outcome, a
        reservation's release): the stored event is the outbox, and publishing it again repeats
        the same event id.

        Raises
        ------
        UnpublishedEventsError
            When the topic did not confirm it.
        """
        if stored is not None:
            self.publish([stored], group_id=group_id)
        return stored

    def republish_if_caused_by(
        self, stored: EventEnvelope | None, event: EventEnvelope, *, group_id: str | None = None
    ) -> EventEnvelope | None:
        """Publish ``stored`` again if ``event`` caused it, else nothing.

        A redelivered ``event`` finds the state change it caused already stored; its
        announcement may not have been published (a crash between the write and the publish),
        so it is sent again under the same event id. A different event that finds the same
        state publishes nothing.
        """
        if stored is None or stored.causation_id != event.id:
            return None
        return self.publish_stored(stored, group_id=group_id)
