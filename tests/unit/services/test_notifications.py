"""The notifications service under moto: one mail per event, through SES."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from chalice.test import Client
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderConfirmed,
    UserCreated,
)
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.dead_lettering import PermanentFailure
from lambdamesh_toolkit.events.envelope import new_event
from tests.unit.services.conftest import ServiceFactory, sqs_event_of
from tests.unit.services.service_loader import LoadedService, load_service

USERS_QUEUE = "lambdamesh-notifications-users"
ORDERS_QUEUE = "lambdamesh-notifications-orders.fifo"
SENDER = "shop@lambdamesh.test"


def user_created(user_id: str = "u-ann", email: str = "ann@example.com") -> EventEnvelope:
    use_correlation_id("trace-mail-1")
    data = UserCreated(user_id=user_id, email=email, name="Ann")
    return new_event("user.created", data, source="users")


def order_confirmed(order_id: str = "o-1", user_id: str = "u-ann") -> EventEnvelope:
    use_correlation_id("trace-mail-1")
    data = OrderConfirmed(order_id=order_id, user_id=user_id)
    return new_event("order.confirmed", data, source="orders")


def order_cancelled(order_id: str = "o-1", user_id: str = "u-ann") -> EventEnvelope:
    use_correlation_id("trace-mail-1")
    data = OrderCancelled(order_id=order_id, user_id=user_id, reason="the card was declined")
    return new_event("order.cancelled", data, source="orders")


@pytest.fixture
def notifications(deployed_service: ServiceFactory, event_tables: dict[str, str]) -> LoadedService:
    return deployed_service("notifications", MailFrom=SENDER, **event_tables)


@pytest.fixture
def client(notifications: LoadedService) -> Client:
    client = notifications.client()
    client.lambda_.invoke("seed", {})
    return client


Deliver = Callable[..., dict[str, Any]]


def deliverer(client: Client, function: str, queue: str) -> Deliver:
    def run(*envelopes: EventEnvelope) -> dict[str, Any]:
        payload: dict[str, Any] = client.lambda_.invoke(
            function, sqs_event_of(queue, *envelopes)
        ).payload
        return payload

    return run


@pytest.fixture
def deliver_users(client: Client) -> Deliver:
    return deliverer(client, "handle_user_events", USERS_QUEUE)


@pytest.fixture
def deliver_orders(client: Client) -> Deliver:
    return deliverer(client, "handle_order_events", ORDERS_QUEUE)


def sent_mail() -> list[Any]:
    """The mails moto's SES accepted (``source``, ``destinations``, ``subject``, ``body``)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def test_seed_asks_ses_to_verify_the_sender(notifications: LoadedService) -> None:
    # GIVEN SES knowing no identity
    ses = boto3.client("ses", region_name="us-east-1")
    assert ses.list_identities()["Identities"] == []
    # WHEN the seed function runs
    answer = notifications.client().lambda_.invoke("seed", {}).payload
    # THEN MAIL_FROM is an identity of SES
    assert answer["sender"] == SENDER
    assert ses.list_identities(IdentityType="EmailAddress")["Identities"] == [SENDER]


def test_user_created_sends_the_welcome_mail(deliver_users: Deliver) -> None:
    # GIVEN a user.created event
    # WHEN it is handled
    answer = deliver_users(user_created())
    # THEN one mail goes from MAIL_FROM to the new user, welcoming them by name
    assert answer == {"batchItemFailures": []}
    [mail] = sent_mail()
    assert mail.source == SENDER
    assert mail.destinations["ToAddresses"] == ["ann@example.com"]
    assert mail.subject == "Welcome to lambdamesh, Ann"


def test_order_confirmed_mails_the_buyer(deliver_users: Deliver, deliver_orders: Deliver) -> None:
    # GIVEN a known user
    deliver_users(user_created())
    # WHEN their order is confirmed
    answer = deliver_orders(order_confirmed("o-42"))
    # THEN they get a mail saying so
    assert answer == {"batchItemFailures": []}
    mail = sent_mail()[-1]
    assert mail.destinations["ToAddresses"] == ["ann@example.com"]
    assert mail.subject == "Your order o-42 is confirmed"


def test_order_cancelled_mails_the_buyer_with_the_reason(
    deliver_users: Deliver, deliver_orders: Deliver
) -> None:
    # GIVEN a known user
    deliver_users(user_created())
    # WHEN their order is cancelled
    deliver_orders(order_cancelled("o-42"))
    # THEN they get a mail saying so, and why
    mail = sent_mail()[-1]
    assert mail.destinations["ToAddresses"] == ["ann@example.com"]
    assert mail.subject == "Your order o-42 was cancelled"
    assert "the card was declined" in mail.body


def test_a_redelivered_event_is_mailed_once(
    deliver_users: Deliver, deliver_orders: Deliver
) -> None:
    # GIVEN a confirmed order that was mailed about
    deliver_users(user_created())
    confirmed = order_confirmed()
    deliver_orders(confirmed)
    # WHEN the event is delivered again
    deliver_orders(confirmed)
    # THEN no second mail goes out
    assert [mail.subject for mail in sent_mail()] == [
        "Welcome to lambdamesh, Ann",
        "Your order o-1 is confirmed",
    ]


def test_a_redelivered_event_does_not_mail_again(deliver_users: Deliver) -> None:
    # GIVEN a welcome mail sent (notifications keeps no processed marks: its mail log decides)
    created = user_created()
    deliver_users(created)
    # WHEN the event is delivered again, as after a run that died before acknowledging it
    answer = deliver_users(created)
    # THEN the log of sent mail stops a second mail
    assert answer == {"batchItemFailures": []}
    assert len(sent_mail()) == 1


def test_an_order_event_for_an_unknown_user_fails_and_sends_nothing(
    deliver_orders: Deliver, event_tables: dict[str, str]
) -> None:
    # GIVEN no user.created handled for u-bob
    confirmed = order_confirmed(user_id="u-bob")
    # WHEN an order event about u-bob is delivered
    answer = deliver_orders(confirmed)
    # THEN its record fails (retried until user.created is handled), no mail goes out
    message_id = f"msg-0-{confirmed.id}"
    assert answer == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert sent_mail() == []
    # AND the failure names the user, for `dlq show`
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    failure = dynamodb.get_item(
        TableName=event_tables["EventFailuresTable"], Key={"id": {"S": message_id}}
    )["Item"]
    assert "u-bob" in failure["reason"]["S"]
    assert failure["service"]["S"] == "notifications"


def test_the_order_event_succeeds_once_the_user_is_known(
    deliver_users: Deliver, deliver_orders: Deliver
) -> None:
    # GIVEN an order event that failed because its user.created had not come yet
    confirmed = order_confirmed()
    deliver_orders(confirmed)
    # WHEN user.created is handled and the order event is retried
    deliver_users(user_created())
    answer = deliver_orders(confirmed)
    # THEN the retry mails the buyer
    assert answer == {"batchItemFailures": []}
    assert sent_mail()[-1].subject == "Your order o-1 is confirmed"


# --- the mails and the once-per-event rule, without AWS -------------------------------


@pytest.fixture
def service() -> LoadedService:
    return load_service("notifications")


def test_mails_address_the_contact_and_say_what_happened(service: LoadedService) -> None:
    # GIVEN a contact
    mail = service.module("chalicelib.mail")
    ann = mail.Contact(user_id="u-ann", email="ann@example.com", name="Ann")
    # WHEN each mail is composed
    welcome = mail.welcome_mail(ann)
    confirmed = mail.order_confirmed_mail(ann, "o-1")
    cancelled = mail.order_cancelled_mail(ann, "o-1", "out of stock")
    # THEN each goes to the contact, and its subject and text say what happened
    assert {welcome.to, confirmed.to, cancelled.to} == {"ann@example.com"}
    assert welcome.subject == "Welcome to lambdamesh, Ann"
    assert "o-1" in confirmed.subject
    assert "confirmed" in confirmed.subject
    assert "cancelled" in cancelled.subject
    assert "out of stock" in cancelled.body
    assert all(m.body.startswith("Hello Ann") for m in (welcome, confirmed, cancelled))


class MemoryContacts:
    def __init__(self, *contacts: Any) -> None:
        self.contacts = {contact.user_id: contact for contact in contacts}

    def get(self, user_id: str) -> Any:
        return self.contacts.get(user_id)

    def put(self, contact: Any) -> None:
        self.contacts[contact.user_id] = contact


class MemoryMailLog:
    def __init__(self) -> None:
        self.records: dict[str, Any] = {}

    def claim(self, record: Any) -> Any:
        held = self.records.get(record.event_id)
        if held is None:
            self.records[record.event_id] = record
        return held

    def take_over(self, stale: Any, record: Any) -> bool:
        if self.records.get(stale.event_id) != stale:
            return False
        self.records[record.event_id] = record
        return True

    def mark_sent(self, record: Any, message_id: str) -> None:
        held = self.records[record.event_id]
        sent = type(held.status)("sent")
        self.records[record.event_id] = replace(held, status=sent, message_id=message_id)


class MemoryMailer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, mail: Any) -> str:
        self.sent.append(mail)
        return f"ses-{len(self.sent)}"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def notifier_parts(service: LoadedService) -> tuple[Any, MemoryMailLog, MemoryMailer, Clock]:
    domain = service.module("chalicelib.domain")
    ann = service.module("chalicelib.mail").Contact("u-ann", "ann@example.com", "Ann")
    log, mailer, clock = MemoryMailLog(), MemoryMailer(), Clock()
    notifier = domain.Notifier(MemoryContacts(ann), log, mailer, clock=clock)
    return notifier, log, mailer, clock


def test_a_live_claim_on_the_mail_makes_a_duplicate_retry_later(
    service: LoadedService, notifier_parts: tuple[Any, MemoryMailLog, MemoryMailer, Clock]
) -> None:
    # GIVEN an event whose mail another attempt claimed a moment ago
    notifier, log, mailer, _ = notifier_parts
    domain = service.module("chalicelib.domain")
    event = order_confirmed()
    log.claim(
        domain.MailRecord(
            event.id, event.type, domain.MailStatus.SENDING, "ann@example.com", "s", 1767225600
        )
    )
    # WHEN a duplicate delivery handles the event
    # THEN it refuses to send (to be retried), and nothing is sent
    with pytest.raises(domain.MailInProgressError):
        notifier.on_order_confirmed(event, OrderConfirmed.model_validate(event.data))
    assert mailer.sent == []


def test_a_dead_attempts_claim_is_taken_over_after_its_lease(
    service: LoadedService, notifier_parts: tuple[Any, MemoryMailLog, MemoryMailer, Clock]
) -> None:
    # GIVEN an event whose mail was claimed by an attempt that died, longer ago than the lease
    notifier, log, mailer, clock = notifier_parts
    domain = service.module("chalicelib.domain")
    event = order_confirmed()
    claimed_at = int(clock.now.timestamp()) - domain.LEASE_S - 1
    log.claim(
        domain.MailRecord(
            event.id, event.type, domain.MailStatus.SENDING, "ann@example.com", "s", claimed_at
        )
    )
    # WHEN the event is handled again
    message_id = notifier.on_order_confirmed(event, OrderConfirmed.model_validate(event.data))
    # THEN the mail goes out and is logged as sent
    assert message_id == "ses-1"
    assert [mail.subject for mail in mailer.sent] == ["Your order o-1 is confirmed"]
    assert log.records[event.id].status is domain.MailStatus.SENT


def test_an_order_event_about_an_unknown_user_raises_unknown_recipient(
    service: LoadedService, notifier_parts: tuple[Any, MemoryMailLog, MemoryMailer, Clock]
) -> None:
    # GIVEN a notifier that knows only Ann
    notifier, _, mailer, _ = notifier_parts
    domain = service.module("chalicelib.domain")
    event = order_cancelled(user_id="u-bob")
    # WHEN an order event about Bob is handled
    # THEN it raises naming Bob, and sends nothing
    with pytest.raises(domain.UnknownRecipientError, match="u-bob"):
        notifier.on_order_cancelled(event, OrderCancelled.model_validate(event.data))
    assert mailer.sent == []


def test_a_mail_ses_refuses_is_a_permanent_failure_that_names_no_address(
    notifications: LoadedService, client: Client
) -> None:
    # GIVEN the service's SES mailer and an address SES will not send to (no domain)
    ses_module = notifications.module("chalicelib.ses")
    mail_module = notifications.module("chalicelib.mail")
    mailer = ses_module.SesMailer(boto3.client("ses", region_name="us-east-1"), SENDER)
    # WHEN it sends
    with pytest.raises(PermanentFailure) as refused:
        mailer.send(mail_module.Mail(to="ann.example.com", subject="Hi", body="Hello"))
    # THEN the refusal is permanent (dead-letter now), and says why without the address
    assert refused.value.reason == "SES refused the mail: InvalidParameterValue"
    assert "ann" not in refused.value.reason


def test_a_mail_ses_cannot_take_now_is_retried(notifications: LoadedService) -> None:
    # GIVEN an SES that throttles
    ses_module = notifications.module("chalicelib.ses")
    mail_module = notifications.module("chalicelib.mail")
    ses = boto3.client("ses", region_name="us-east-1")
    mailer = ses_module.SesMailer(ses, SENDER)
    with Stubber(ses) as stub:
        stub.add_client_error("send_email", service_error_code="Throttling")
        # WHEN it sends THEN the error is not a permanent one: the event will be retried
        with pytest.raises(ClientError):
            mailer.send(mail_module.Mail(to="ann@example.com", subject="Hi", body="Hello"))
