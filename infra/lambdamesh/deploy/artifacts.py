"""Deployment packages in S3, under content-addressed keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from lambdamesh.deploy.fingerprint import file_sha256
from lambdamesh_toolkit.aws.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

KEY_PREFIX = "lambdamesh"


def package_key(service: str, package: Path) -> str:
    """``lambdamesh/<service>/<sha256>.zip``: the same bytes always get the same key."""
    return f"{KEY_PREFIX}/{service}/{file_sha256(package)}.zip"


def _exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def upload_package(s3: S3Client, bucket: str, key: str, package: Path) -> bool:
    """Upload ``package`` to ``s3://bucket/key`` unless it is there already.

    Returns
    -------
    bool
        True when it was uploaded, False when the object existed (same key, same bytes).
    """
    if _exists(s3, bucket, key):
        return False
    s3.upload_file(str(package), bucket, key)
    return True
