"""SES (v1) adapter: sending plain-text mail and verifying the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mail import Mail

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient


class SesMailer:
    """Sends mail through SES ``SendEmail`` from one sender address.

    Parameters
    ----------
    client
        An SES client.
    sender
        The ``From`` address; SES refuses it until it is verified (:meth:`verify_sender`).
    """

    def __init__(self, client: SESClient, sender: str) -> None:
        self._client = client
        self._sender = sender

    def send(self, mail: Mail) -> str:
        """Send the mail; SES's message id."""
        answer = self._client.send_email(
            Source=self._sender,
            Destination={"ToAddresses": [mail.to]},
            Message={
                "Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": mail.body, "Charset": "UTF-8"}},
            },
        )
        return answer["MessageId"]

    def verify_sender(self) -> None:
        """Ask SES to verify the sender address (harmless when it is verified already)."""
        self._client.verify_email_identity(EmailAddress=self._sender)
