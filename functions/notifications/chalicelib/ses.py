"""SES (v1) adapter: sending plain-text mail and verifying the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.errors import error_code
from lambdamesh_toolkit.events.dead_lettering import PermanentFailure

from .mail import Mail

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient


#: SES error codes that refuse a mail for what it is, not for the moment.
REFUSALS = frozenset(
    {
        "MessageRejected",
        "InvalidParameterValue",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExist",
        "AccountSendingPausedException",
    }
)


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
        """Send the mail; SES's message id.

        Raises
        ------
        PermanentFailure
            When SES refuses the mail itself (an address it will not send to, an unverified
            sender): sending it again cannot work until someone fixes the cause, so the event
            goes to the dead-letter queue at once instead of being retried.
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            For anything else (throttling, SES unreachable): retried.
        """
        try:
            answer = self._client.send_email(
                Source=self._sender,
                Destination={"ToAddresses": [mail.to]},
                Message={
                    "Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": mail.body, "Charset": "UTF-8"}},
                },
            )
        except ClientError as error:
            code = error_code(error)
            if code in REFUSALS:
                # The code only: SES's message may quote the address, which stays out of
                # failure records and logs.
                raise PermanentFailure(f"SES refused the mail: {code}") from error
            raise
        return answer["MessageId"]

    def verify_sender(self) -> None:
        """Ask SES to verify the sender address (harmless when it is verified already).

        ``ses:VerifyEmailIdentity`` is the only permission notifications holds on every
        resource (``*``): IAM has no resource type for it. An ``AWS::SES::EmailIdentity`` in
        the template would need no permission at all, but LocalStack 4.14.0's provider of that
        type is an unfinished scaffold (its create ends in ``NotImplementedError``), and SES
        refuses to send from an address it has not verified.
        """
        self._client.verify_email_identity(EmailAddress=self._sender)
