"""Where deploy sends stacks: a LocalStack endpoint or real AWS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ProfileNotFound

from lambdamesh.emulator.clients import emulator_client
from lambdamesh.emulator.settings import REGION
from lambdamesh_toolkit.aws import clients


@dataclass(frozen=True)
class Target:
    """A deployment target.

    Attributes
    ----------
    endpoint_url
        A LocalStack gateway URL, or ``None`` for real AWS (no endpoint override).
    region
        The AWS region stacks go to.
    """

    endpoint_url: str | None
    region: str = REGION

    @classmethod
    def localstack(cls, endpoint_url: str) -> Target:
        """A LocalStack (embedded or external) at ``endpoint_url``, region us-east-1."""
        return cls(endpoint_url.rstrip("/"), REGION)

    @classmethod
    def aws(cls, region: str | None = None) -> Target:
        """Real AWS; the region comes from ``region``, the environment or the AWS config."""
        try:
            resolved = region or clients.default_region()
        except ProfileNotFound as error:
            raise ValueError(
                f"{error}: set AWS_PROFILE to a profile of ~/.aws/config, or unset it"
            ) from None
        if not resolved:
            raise ValueError("no AWS region: set AWS_REGION or configure a default region")
        return cls(None, resolved)

    @property
    def is_localstack(self) -> bool:
        """True when an endpoint is set: LocalStack, whose API URLs take the path form."""
        return self.endpoint_url is not None

    @property
    def label(self) -> str:
        """A short human name: the endpoint URL or ``aws:<region>``."""
        return self.endpoint_url or f"aws:{self.region}"

    @property
    def slug(self) -> str:
        """The label as a file-name-safe string (for per-target record files)."""
        return re.sub(r"[^A-Za-z0-9]+", "-", self.label).strip("-")

    def client(self, service_name: str) -> Any:
        """A boto3 client for ``service_name`` on this target.

        Returns
        -------
        Any
            The client; annotate the variable with the boto3-stubs type expected.
        """
        if self.endpoint_url is not None:
            return emulator_client(self.endpoint_url, service_name, self.region)
        # Real AWS: the caller's usual credential chain (profile, SSO, role) applies.
        return clients.client(service_name, clients.CLI, region=self.region)

    def api_url(self, api_id: str, stage: str) -> str:
        """The base URL of REST API ``api_id``'s ``stage``, ending in ``/``.

        On LocalStack the path form: its host form
        (``{api}.execute-api.localhost.localstack.cloud``) needs DNS that is not there offline.
        """
        if self.endpoint_url is not None:
            return f"{self.endpoint_url}/_aws/execute-api/{api_id}/{stage}/"
        return f"https://{api_id}.execute-api.{self.region}.amazonaws.com/{stage}/"
