"""The notifications functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EventFailureSettings


class NotificationsSettings(EventFailureSettings):
    """Where notifications' tables and event bookkeeping are, and who mail comes from.

    The event consumers' failures table comes from :class:`EventFailureSettings`; they keep no
    processed marks (the sent-mail log, keyed by the event id, makes a repeat send nothing).

    Attributes
    ----------
    contacts_table
        ``CONTACTS_TABLE``: name and email per user, learnt from ``user.created``.
    sent_mail_table
        ``SENT_MAIL_TABLE``: one item per event mailed about (key: the event id).
    mail_from
        ``MAIL_FROM``: the sender address (verified with SES by the seed function).
    """

    contacts_table: str = Field(alias="CONTACTS_TABLE", min_length=1)
    sent_mail_table: str = Field(alias="SENT_MAIL_TABLE", min_length=1)
    mail_from: str = Field(alias="MAIL_FROM", min_length=3)
