"""Invoke refuses payloads over Lambda's limits before the function runs."""

from __future__ import annotations

import io
from typing import Any

import pytest

from lambdamesh_localstack.payload_limits import (
    ASYNC_LIMIT_BYTES,
    SYNC_LIMIT_BYTES,
    limited,
    payload_problem,
)


class RefusedError(Exception):
    pass


def _invoke(
    self: Any, context: Any, function_name: str, **kwargs: Any
) -> tuple[str, bytes, str | None]:
    return function_name, kwargs["payload"].read(), kwargs.get("invocation_type")


@pytest.mark.parametrize(
    ("size", "invocation_type", "refused"),
    [
        (SYNC_LIMIT_BYTES, "RequestResponse", False),
        (SYNC_LIMIT_BYTES + 1, "RequestResponse", True),
        (SYNC_LIMIT_BYTES + 1, None, True),
        (ASYNC_LIMIT_BYTES, "Event", False),
        (ASYNC_LIMIT_BYTES + 1, "Event", True),
        (ASYNC_LIMIT_BYTES + 1, "DryRun", False),
    ],
)
def test_a_payload_is_refused_only_over_its_invocation_types_limit(
    size: int, invocation_type: str | None, refused: bool
) -> None:
    # GIVEN the provider's invoke, limited  WHEN a payload of that size comes
    invoke = limited(_invoke, RefusedError)
    payload = io.BytesIO(b"x" * size)
    if refused:
        # THEN over the limit it is refused with AWS's message, before the provider runs
        with pytest.raises(RefusedError, match=r"Request must be smaller than \d+ bytes"):
            invoke(None, None, "fn", payload=payload, invocation_type=invocation_type)
        assert payload_problem(b"x" * size, invocation_type) is not None
    else:
        # THEN within it the provider gets the whole payload, readable again
        answer = invoke(None, None, "fn", payload=payload, invocation_type=invocation_type)
        name, data, kind = answer
        assert (name, len(data), kind) == ("fn", size, invocation_type)
