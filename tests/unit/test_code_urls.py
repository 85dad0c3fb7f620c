"""A function's code URL is signed by one S3 client per endpoint (no LocalStack)."""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3

from lambdamesh_localstack.code_urls import patch_lambda_models


def lambda_models() -> tuple[ModuleType, list[str]]:
    """A module shaped as LocalStack's ``lambda_models`` whose S3Code builds a client per URL
    as LocalStack's does, and the endpoints of every client its boto3 built."""
    built: list[str] = []

    def client(service_name: str, **options: Any) -> Any:
        built.append(options["endpoint_url"])
        return boto3.client(service_name, **options)  # type: ignore[call-overload]

    module = ModuleType("lambda_models")
    module.boto3 = SimpleNamespace(client=client)  # type: ignore[attr-defined]
    module.AWS_REGION_US_EAST_1 = "us-east-1"  # type: ignore[attr-defined]
    module.INTERNAL_AWS_SECRET_ACCESS_KEY = "internal"  # type: ignore[attr-defined]
    module.config = SimpleNamespace(INTERNAL_RESOURCE_ACCOUNT="949334387222")  # type: ignore[attr-defined]

    class S3Code:
        def __init__(self, bucket: str, key: str, version: str | None = None) -> None:
            self.s3_bucket, self.s3_key, self.s3_object_version = bucket, key, version

        def generate_presigned_url(self, endpoint_url: str) -> str:
            s3 = module.boto3.client(
                "s3",
                region_name=module.AWS_REGION_US_EAST_1,
                aws_access_key_id=module.config.INTERNAL_RESOURCE_ACCOUNT,
                aws_secret_access_key=module.INTERNAL_AWS_SECRET_ACCESS_KEY,
                endpoint_url=endpoint_url,
            )
            params = {"Bucket": self.s3_bucket, "Key": self.s3_key}
            if self.s3_object_version:
                params["VersionId"] = self.s3_object_version
            url: str = s3.generate_presigned_url("get_object", Params=params)
            return url

    module.S3Code = S3Code  # type: ignore[attr-defined]
    return module, built


def unsigned(url: str) -> tuple[str, str, dict[str, list[str]]]:
    """The URL's host, path and query without what changes with the signing time."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for changing in ("X-Amz-Date", "X-Amz-Signature", "Signature", "Expires"):
        query.pop(changing, None)
    return parts.netloc, parts.path, query


def test_code_urls_are_those_localstack_signs_but_from_one_client_per_endpoint() -> None:
    # GIVEN LocalStack's way of signing, and the URLs it gives for two zips
    module, built = lambda_models()
    first = module.S3Code("awslambda-us-east-1-tasks", "snapshots/fn-1.zip")
    versioned = module.S3Code("awslambda-us-east-1-tasks", "snapshots/fn-2.zip", "v7")
    expected = [
        unsigned(code.generate_presigned_url("http://localhost:4599"))
        for code in (first, versioned)
    ]
    built.clear()
    # WHEN the module is patched (twice) and the URLs are signed again, each twice, then once
    # for another endpoint
    patch_lambda_models(module)
    patch_lambda_models(module)
    again = [
        unsigned(code.generate_presigned_url("http://localhost:4599"))
        for code in (first, versioned, first, versioned)
    ]
    other = unsigned(first.generate_presigned_url("http://127.0.0.1:4600"))
    # THEN each URL is the one LocalStack signed (host, path, version, the internal account's
    # credential)
    assert again == expected + expected
    assert expected[1][2]["versionId"] == ["v7"]
    assert expected[0][2]["AWSAccessKeyId"] == ["949334387222"]
    assert other[0] == "127.0.0.1:4600"
    # AND one client was built per endpoint, not one per URL
    assert built == ["http://localhost:4599", "http://127.0.0.1:4600"]
