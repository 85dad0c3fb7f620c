"""The notifications functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings


class NotificationsSettings(EnvSettings):
    """Where notifications' tables and event bookkeeping are, and who mail comes from.

    Attributes
    ----------
    contacts_table
        ``CONTACTS_TABLE``: name and email per user, learnt from ``user.created``.
    sent_mail_table
        ``SENT_MAIL_TABLE``: one item per event mailed about (key: the event id).
    mail_from
        ``MAIL_FROM``: the sender address (verified with SES by the seed function).
    event_idempotency_table, event_failures_table
        ``EVENT_IDEMPOTENCY_TABLE`` / ``EVENT_FAILURES_TABLE``: the event consumer's
        bookkeeping (handled event ids, the last error of failed messages).
    """

    contacts_table: str = Field(alias="CONTACTS_TABLE", min_length=1)
    sent_mail_table: str = Field(alias="SENT_MAIL_TABLE", min_length=1)
    mail_from: str = Field(alias="MAIL_FROM", min_length=3)
    event_idempotency_table: str = Field(alias="EVENT_IDEMPOTENCY_TABLE", min_length=1)
    event_failures_table: str = Field(alias="EVENT_FAILURES_TABLE", min_length=1)
