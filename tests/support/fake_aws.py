"""The environment of a test that talks to moto in process: fake keys, nothing reaching out.

moto intercepts the requests, but botocore still reads the environment first: a developer's
``AWS_PROFILE`` (a profile this machine may not have) or ``AWS_ENDPOINT_URL`` (an emulator left
running) would change which credentials and endpoint a client takes. Every unit test, and the
benchmarks that use moto, start from this one environment.
"""

from __future__ import annotations

import pytest

FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"


def use_fake_aws(monkeypatch: pytest.MonkeyPatch, *, region: str = REGION, **more: str) -> None:
    """Set fake keys and ``region`` (plus any ``more`` variables) for the test, and unset the
    profile and endpoint a shell may carry."""
    for name, value in {**FAKE_KEYS, "AWS_DEFAULT_REGION": region, **more}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
