"""The payments functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EventFailureSettings


class PaymentsSettings(EventFailureSettings):
    """Where payments' table, topic and event bookkeeping are, and how the provider behaves.

    The event consumer's failures table comes from :class:`EventFailureSettings`; it keeps no
    processed marks (the payments table's conditional writes make a repeat change nothing).

    Attributes
    ----------
    payments_table
        ``PAYMENTS_TABLE``: one item per order (its one charge, refund or void).
    payments_topic_arn
        ``PAYMENTS_TOPIC_ARN``: where ``payment.*`` events are published.
    decline_above_cents
        ``PAYMENT_DECLINE_ABOVE_CENTS``: the simulated provider declines larger amounts.
    failure_rate
        ``PAYMENT_FAILURE_RATE``: the share of other charges it declines (0 to 1).
    """

    payments_table: str = Field(alias="PAYMENTS_TABLE", min_length=1)
    payments_topic_arn: str = Field(alias="PAYMENTS_TOPIC_ARN", min_length=1)
    decline_above_cents: int = Field(100_000, alias="PAYMENT_DECLINE_ABOVE_CENTS", ge=0)
    failure_rate: float = Field(0.0, alias="PAYMENT_FAILURE_RATE", ge=0.0, le=1.0)
