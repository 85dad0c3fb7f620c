"""Every boto3 client of the project is built here, from a named profile of timeouts and retries.

A profile says how long a caller may wait and how often botocore retries:

- :data:`REQUEST`: on a user's request path (an API route, an RPC method). Short, so a slow
  dependency becomes an error the route can answer with, well inside API Gateway's 29 s.
- :data:`CONSUMER`: in a queue consumer. A little more patience for a read (SES, SNS), still
  well inside the consumers' 10 s function timeout.
- :data:`CLI`: the ``lambdamesh`` command line. Long reads (CloudFormation, S3 uploads) and
  more retries: a person is waiting, not a client with a deadline.

A caller with a deadline of its own narrows a profile (``REQUEST.but(read_timeout_s=...)``): the
RPC client sets the read timeout to its call's timeout and turns botocore's retries off, because
its own retry policy and circuit breaker decide. The endpoint is ``AWS_ENDPOINT_URL`` when it is
set (the emulator sets it for every function, and users set it to reach LocalStack), else AWS's.

>>> REQUEST.read_timeout_s, CONSUMER.read_timeout_s, CLI.read_timeout_s
(3.0, 5.0, 60.0)
>>> REQUEST.but(read_timeout_s=0.5, max_attempts=1).name
'request'

Functions share one client per service and profile in a warm container
(:func:`shared_client`): building a client costs tens of milliseconds and memory, and boto3
clients are thread-safe. boto3 itself is imported on first use: it costs ≈ 0.3 s of cold start,
which a function that never calls AWS should not pay.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
"""The endpoint every client talks to when set (LocalStack's gateway)."""


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """How long a client waits and how often it retries.

    Attributes
    ----------
    name : str
        What the profile is for (``request``, ``consumer``, ``cli``).
    connect_timeout_s : float
        Seconds to open a connection.
    read_timeout_s : float
        Seconds to wait for an answer.
    max_attempts : int
        Attempts in botocore's ``standard`` retry mode, the first included (1 = no retry).
    """

    name: str
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError(f"profile {self.name}: timeouts must be positive")
        if self.max_attempts < 1:
            raise ValueError(f"profile {self.name}: max_attempts must be at least 1")

    def but(
        self,
        *,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        max_attempts: int | None = None,
    ) -> ClientProfile:
        """This profile with some values replaced (a caller's own deadline)."""
        return dataclasses.replace(
            self,
            connect_timeout_s=self.connect_timeout_s
            if connect_timeout_s is None
            else connect_timeout_s,
            read_timeout_s=self.read_timeout_s if read_timeout_s is None else read_timeout_s,
            max_attempts=self.max_attempts if max_attempts is None else max_attempts,
        )

    def botocore_config(self) -> Config:
        """The botocore ``Config`` of this profile."""
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
        )


REQUEST = ClientProfile("request", connect_timeout_s=1.0, read_timeout_s=3.0, max_attempts=3)
"""On a user's request path: fail in seconds, so the route answers with an error."""
CONSUMER = ClientProfile("consumer", connect_timeout_s=1.0, read_timeout_s=5.0, max_attempts=3)
"""In a queue consumer: inside the consumers' 10 s function timeout."""
CLI = ClientProfile("cli", connect_timeout_s=5.0, read_timeout_s=60.0, max_attempts=5)
"""The command line: deploys and uploads take long; a person waits."""


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """An access key pair given outright (the emulator accepts any: ``test``/``test``)."""

    access_key_id: str
    secret_access_key: str


def client(
    service_name: str,
    profile: ClientProfile = REQUEST,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: StaticCredentials | None = None,
) -> Any:
    """A new boto3 client for ``service_name``.

    Parameters
    ----------
    service_name : str
        A boto3 service name (``"dynamodb"``, ``"sqs"``, ...).
    profile : ClientProfile
        Timeouts and retries.
    endpoint_url : str | None
        Where to send requests; default ``AWS_ENDPOINT_URL``, else AWS.
    region : str | None
        The region; default the environment's or the AWS config's.
    credentials : StaticCredentials | None
        Fixed credentials in a session of their own, so a user's ``AWS_PROFILE`` or
        ``~/.aws`` never leaks in (the emulator); default the usual credential chain.

    Returns
    -------
    Any
        The client; annotate the variable with the boto3-stubs type (or use the typed
        shortcuts below).
    """
    import boto3

    options: dict[str, Any] = {
        "region_name": region,
        "endpoint_url": endpoint_url or os.environ.get(ENDPOINT_ENV) or None,
        "config": profile.botocore_config(),
    }
    if credentials is None:
        # boto3's default session: its loaded service models are shared by every client.
        return boto3.client(service_name, **options)  # type: ignore[call-overload]
    # One session per key pair, for the same reason: a session of its own per client loaded
    # and parsed the service's model again (≈ 0.1 s of CPU a client; a topology read of the
    # deployed system built 39). Sessions are not thread-safe, so clients are built one at a
    # time; the clients themselves are.
    with _static_sessions_lock:
        session = _static_sessions.get(credentials)
        if session is None:
            session = boto3.session.Session(
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
            )
            _static_sessions[credentials] = session
        return session.client(service_name, **options)  # type: ignore[call-overload]


_static_sessions: dict[StaticCredentials, Any] = {}
_static_sessions_lock = threading.Lock()


@functools.cache
def shared_client(service_name: str, profile: ClientProfile = REQUEST) -> Any:
    """The process's one client for ``service_name`` and ``profile``, built on first use."""
    return client(service_name, profile)


def reset_shared_clients() -> None:
    """Forget the shared clients (tests that change the environment between cases)."""
    shared_client.cache_clear()


def default_region() -> str | None:
    """The region the environment or the AWS config names, if any."""
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return region or boto3.session.Session().region_name


def has_credentials() -> bool:
    """Whether the usual credential chain (environment, profile, SSO, role) finds credentials.

    Raises
    ------
    botocore.exceptions.BotoCoreError
        When the configuration itself is broken (e.g. ``AWS_PROFILE`` names no profile).
    """
    import boto3

    return boto3.session.Session().get_credentials() is not None


def dynamodb(profile: ClientProfile = REQUEST) -> DynamoDBClient:
    """The shared DynamoDB client of ``profile``."""
    shared: DynamoDBClient = shared_client("dynamodb", profile)
    return shared


def sqs(profile: ClientProfile = CONSUMER) -> SQSClient:
    """The shared SQS client of ``profile``."""
    shared: SQSClient = shared_client("sqs", profile)
    return shared


def sns(profile: ClientProfile = REQUEST) -> SNSClient:
    """The shared SNS client of ``profile``."""
    shared: SNSClient = shared_client("sns", profile)
    return shared


def ses(profile: ClientProfile = CONSUMER) -> SESClient:
    """The shared SES client of ``profile``."""
    shared: SESClient = shared_client("ses", profile)
    return shared


def lambda_(profile: ClientProfile) -> LambdaClient:
    """The shared Lambda client of ``profile`` (callers narrow it to their call's timeout)."""
    shared: LambdaClient = shared_client("lambda", profile)
    return shared
