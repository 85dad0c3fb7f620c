"""The mails the shop sends: pure functions from what happened to subject and text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contact:
    """Whom to write to about a user's orders (learnt from ``user.created``)."""

    user_id: str
    email: str
    name: str


@dataclass(frozen=True)
class Mail:
    """A plain-text mail to one recipient."""

    to: str
    subject: str
    body: str


SIGNATURE = "\n\n-- \nlambdamesh coffee supplies"


def welcome_mail(contact: Contact) -> Mail:
    """The mail a new user gets."""
    return Mail(
        to=contact.email,
        subject=f"Welcome to lambdamesh, {contact.name}",
        body=(f"Hello {contact.name},\n\nyour account is ready. Happy brewing!" + SIGNATURE),
    )


def order_confirmed_mail(contact: Contact, order_id: str) -> Mail:
    """The mail sent when an order is paid and its stock reserved."""
    return Mail(
        to=contact.email,
        subject=f"Your order {order_id} is confirmed",
        body=(
            f"Hello {contact.name},\n\nwe received your payment for order {order_id} "
            "and set its items aside. It ships soon." + SIGNATURE
        ),
    )


def order_cancelled_mail(contact: Contact, order_id: str, reason: str) -> Mail:
    """The mail sent when an order is cancelled; it says why."""
    return Mail(
        to=contact.email,
        subject=f"Your order {order_id} was cancelled",
        body=(
            f"Hello {contact.name},\n\nwe could not complete order {order_id}: {reason}.\n"
            "Anything charged for it is refunded." + SIGNATURE
        ),
    )
