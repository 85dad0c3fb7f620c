"""Notifications: one mail per event, to the user the event is about.

Plain Python: the contact book, the log of sent mail and the mail service are ports that
adapters implement.

The orders' events name a user id, not an address: this service keeps its own contact
book, filled from ``user.created``, instead of asking the users service on every mail
(the events it needs are already coming its way). An order event about a user it has not
heard of yet (``user.created`` travels through another queue and may come later) fails,
and is retried with backoff until the contact is known.

Mail cannot be taken back, so a mail is claimed in the log (keyed by the event id) before
it is sent and marked sent afterwards: a redelivered event finds it sent and sends
nothing. A claim left by an attempt that died before sending is taken over once its
lease has run out; one that died between sending and marking sends the mail twice,
which is the one duplicate at-least-once delivery leaves possible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderConfirmed,
    UserCreated,
)

from .mail import Contact, Mail, order_cancelled_mail, order_confirmed_mail, welcome_mail

LEASE_S = 15
"""How long a claimed mail is left to its sender before another attempt takes it over.

Longer than the function's timeout (10 s), so a live attempt never loses its claim; short
enough that a duplicate retried with the consumer's backoff (1 + 2 + 4 + 8 s) takes over
the claim of a dead attempt before its message runs out of receives."""


class UnknownRecipientError(LookupError):
    """The event is about a user whose ``user.created`` has not been handled yet."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"no contact for user {user_id} yet (user.created not handled yet)")
        self.user_id = user_id


class MailInProgressError(RuntimeError):
    """Another attempt holds the claim on this event's mail; retry after it finished."""


class MailStatus(StrEnum):
    """Where a claimed mail is."""

    SENDING = "sending"
    SENT = "sent"


@dataclass(frozen=True)
class MailRecord:
    """The log's entry for one event's mail."""

    event_id: str
    event_type: str
    status: MailStatus
    to: str
    subject: str
    claimed_at: int
    """Epoch seconds the current attempt claimed it."""
    message_id: str | None = None


class ContactBook(Protocol):
    """Users' names and addresses."""

    def get(self, user_id: str) -> Contact | None:
        """The user's contact, or ``None``."""
        ...

    def put(self, contact: Contact) -> None:
        """Store (or refresh) a contact."""
        ...


class MailLog(Protocol):
    """Which events have been mailed about."""

    def claim(self, record: MailRecord) -> MailRecord | None:
        """Put the claim down if the event has none: ``None``; else the record holding it."""
        ...

    def take_over(self, stale: MailRecord, record: MailRecord) -> bool:
        """Replace ``stale`` by ``record`` if ``stale`` is still what is stored."""
        ...

    def mark_sent(self, record: MailRecord, message_id: str) -> None:
        """Record that the mail went out, with the mail service's message id."""
        ...


class Mailer(Protocol):
    """The mail service (SES)."""

    def send(self, mail: Mail) -> str:
        """Send the mail; the service's message id."""
        ...


class Notifier:
    """Mails users about their account and orders, once per event.

    Parameters
    ----------
    contacts
        The contact book.
    log
        The log of sent mail.
    mailer
        The mail service.
    clock
        Source of time, injectable so tests are deterministic.
    """

    def __init__(
        self,
        contacts: ContactBook,
        log: MailLog,
        mailer: Mailer,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._contacts = contacts
        self._log = log
        self._mailer = mailer
        self._clock = clock

    def on_user_created(self, event: EventEnvelope, user: UserCreated) -> str | None:
        """Remember the contact and send the welcome mail; the message id if it was sent."""
        contact = Contact(user_id=user.user_id, email=user.email, name=user.name)
        self._contacts.put(contact)
        return self._send_once(event, welcome_mail(contact))

    def on_order_confirmed(self, event: EventEnvelope, order: OrderConfirmed) -> str | None:
        """Tell the user the order is confirmed; the message id if it was sent.

        Raises
        ------
        UnknownRecipientError
            When the user's ``user.created`` has not been handled yet.
        """
        contact = self._contact(order.user_id)
        return self._send_once(event, order_confirmed_mail(contact, order.order_id))

    def on_order_cancelled(self, event: EventEnvelope, order: OrderCancelled) -> str | None:
        """Tell the user the order is cancelled and why; the message id if it was sent.

        Raises
        ------
        UnknownRecipientError
            When the user's ``user.created`` has not been handled yet.
        """
        contact = self._contact(order.user_id)
        return self._send_once(event, order_cancelled_mail(contact, order.order_id, order.reason))

    def _contact(self, user_id: str) -> Contact:
        contact = self._contacts.get(user_id)
        if contact is None:
            raise UnknownRecipientError(user_id)
        return contact

    def _send_once(self, event: EventEnvelope, mail: Mail) -> str | None:
        """Send ``mail`` unless this event's mail went out already; the message id if sent.

        Raises
        ------
        MailInProgressError
            When another live attempt holds the claim.
        """
        now_s = int(self._clock().timestamp())
        record = MailRecord(
            event_id=event.id,
            event_type=event.type,
            status=MailStatus.SENDING,
            to=mail.to,
            subject=mail.subject,
            claimed_at=now_s,
        )
        held = self._log.claim(record)
        if held is not None:
            if held.status is MailStatus.SENT:
                return None
            if held.claimed_at + LEASE_S > now_s or not self._log.take_over(held, record):
                raise MailInProgressError(f"the mail for event {event.id} is being sent")
        message_id = self._mailer.send(mail)
        self._log.mark_sent(record, message_id)
        return message_id
