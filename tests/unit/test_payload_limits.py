"""Invoke refuses payloads over Lambda's limits before the function runs; a REST API refuses a
body over 10 MB."""

from __future__ import annotations

import io
from typing import Any

import pytest

from lambdamesh_localstack.payload_limits import (
    API_GATEWAY_BODY_LIMIT_BYTES,
    ASYNC_LIMIT_BYTES,
    SYNC_LIMIT_BYTES,
    body_limited,
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


class Context:
    """API Gateway's invocation context, as far as the parser fills it."""

    invocation_request: dict[str, Any]


@pytest.mark.parametrize(
    ("size", "refused"),
    [(API_GATEWAY_BODY_LIMIT_BYTES, False), (API_GATEWAY_BODY_LIMIT_BYTES + 1, True), (0, False)],
)
def test_a_rest_api_refuses_a_body_over_ten_megabytes_once_the_request_is_parsed(
    size: int, refused: bool
) -> None:
    # GIVEN API Gateway's request parser, limited
    parsed: list[int] = []

    def parse(self: Any, chain: Any, context: Context, response: Any) -> str:
        context.invocation_request = {"body": b"x" * size}
        parsed.append(size)
        return "parsed"

    parser = body_limited(parse, RefusedError)
    context = Context()
    # WHEN a request with a body of that size is parsed
    if refused:
        # THEN over 10 MB it is refused as AWS says it, after parsing (the request id is known)
        with pytest.raises(RefusedError, match="Request Too Long"):
            parser(None, None, context, None)
    else:
        # THEN up to 10 MB it goes on
        assert parser(None, None, context, None) == "parsed"
    assert parsed == [size]
