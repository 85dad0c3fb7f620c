"""AWS clients for the services' own adapters, configured to fail fast.

A Lambda function that waits on a slow AWS call holds its caller (an API request, or a
batch of queued events) until its own timeout; short connect and read timeouts turn that
wait into an error the caller can handle, and botocore's standard retries absorb the
occasional throttle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient


def fail_fast_config() -> Config:
    """The botocore configuration of every client here.

    Returns
    -------
    Config
        1 s to connect, 3 s to read, at most 3 attempts in botocore's ``standard`` retry mode.
    """
    from botocore.config import Config

    return Config(
        connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}
    )


def dynamodb_client() -> DynamoDBClient:
    """Create a DynamoDB client with short timeouts (a request or a handler must not hang).

    Returns
    -------
    DynamoDBClient
        A new client configured by :func:`fail_fast_config`; region and credentials from the
        environment.
    """
    # Imported here: boto3 costs ~0.3 s of cold start, paid only by code that needs AWS.
    import boto3

    return boto3.client("dynamodb", config=fail_fast_config())
