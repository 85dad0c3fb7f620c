"""A function's code URL is signed by one S3 client per endpoint, not by a new one every time.

LocalStack answers ``GetFunction`` with ``Code.Location``, a presigned URL of the function's
zip in its internal bucket. ``S3Code.generate_presigned_url`` builds a boto3 S3 client for each
such URL, only to sign it (no request is sent). CloudFormation's Lambda resource reads the
function with ``GetFunction`` on every poll until it is ``Active``, so a deploy of the system
built some hundred clients: 22 % of the emulator's CPU during the deploy (≈ 2.3 s of ≈ 10 s,
sampled with py-spy at 50 Hz).

:func:`apply_code_urls`, an ``on_infra_start`` hook, replaces the method with one that signs
with a client kept per endpoint: the same URL (bucket, key, version, the internal account's
credentials, ``us-east-1``), read from the same module's settings when called. A signed URL
carries the time it was signed, not the client's. The body is LocalStack's, written again
here because its client is built inside it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

MODULE: Final = "localstack.services.lambda_.invocation.lambda_models"
WHAT: Final = "code URL signing"

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def signing_client(module: ModuleType, endpoint_url: str) -> Any:
    """The S3 client that signs code URLs for ``endpoint_url``, built on first use.

    Built as ``module`` builds its own (its boto3, region and internal credentials);
    boto3's default session is not safe to build clients from in several threads at once.
    """
    with _clients_lock:
        client = _clients.get(endpoint_url)
        if client is None:
            client = module.boto3.client(
                "s3",
                region_name=module.AWS_REGION_US_EAST_1,
                aws_access_key_id=module.config.INTERNAL_RESOURCE_ACCOUNT,
                aws_secret_access_key=module.INTERNAL_AWS_SECRET_ACCESS_KEY,
                endpoint_url=endpoint_url,
            )
            _clients[endpoint_url] = client
        return client


def signing_with_one_client(
    module: ModuleType,
) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Wrap ``S3Code.generate_presigned_url`` to sign with :func:`signing_client`."""

    def wrap(original: Callable[..., str]) -> Callable[..., str]:
        @functools.wraps(original)
        def generate_presigned_url(self: Any, endpoint_url: str) -> str:
            params = {"Bucket": self.s3_bucket, "Key": self.s3_key}
            if self.s3_object_version:
                params["VersionId"] = self.s3_object_version
            url: str = signing_client(module, endpoint_url).generate_presigned_url(
                "get_object", Params=params
            )
            return url

        return generate_presigned_url

    return wrap


def patch_lambda_models(module: ModuleType) -> None:
    """Replace the module's ``S3Code.generate_presigned_url`` (idempotent)."""
    wrap_once(
        getattr(module, "S3Code", None),
        "generate_presigned_url",
        signing_with_one_client(module),
        WHAT,
        own=True,
    )


def apply_code_urls() -> None:
    """Patch ``S3Code`` when its module is imported (``on_infra_start`` hook)."""
    patch_when_imported({MODULE: patch_lambda_models}, WHAT)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_code_urls")(apply_code_urls)
