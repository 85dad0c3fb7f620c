"""boto3 clients pointed at an emulator."""

from __future__ import annotations

from typing import Any

from lambdamesh.emulator.settings import REGION
from lambdamesh_toolkit.aws import clients

TEST_ACCESS_KEY_ID = "test"
TEST_SECRET_ACCESS_KEY = "test"  # noqa: S105 - a placeholder the emulator accepts, no secret
"""LocalStack accepts any credentials; these are the conventional ones."""


def emulator_client(endpoint_url: str, service_name: str, region: str = REGION) -> Any:
    """A boto3 client for ``service_name`` talking to the emulator at ``endpoint_url``.

    Parameters
    ----------
    endpoint_url
        The emulator's base URL.
    service_name
        A boto3 service name (``"sqs"``, ``"lambda"``, ...).
    region
        The region; ``us-east-1`` by default.

    Returns
    -------
    Any
        The client; annotate the variable with the boto3-stubs client type you expect.
    """
    # Credentials of its own, so the caller's AWS_PROFILE or ~/.aws never leak in.
    return clients.client(
        service_name,
        clients.CLI,
        endpoint_url=endpoint_url,
        region=region,
        credentials=clients.StaticCredentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY),
    )
