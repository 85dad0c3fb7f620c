"""Every list is paged: a query of ``limit`` and ``next_token``, and opaque page tokens.

A list route reads its query string into a :class:`PageQuery` (a subclass sets its own default
size), answers at most ``limit`` items and, when there are more, a ``next_token`` that continues
after the last one. A token is the position to continue after (the store's last key), as
URL-safe base64 of compact JSON: opaque to clients, checked when it comes back.

>>> token = encode_token({"id": "p-1"})
>>> token, decode_token(token, ("id",))
('eyJpZCI6InAtMSJ9', {'id': 'p-1'})
>>> PageQuery.from_query_params({"limit": "5"}).limit
5
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambdamesh_toolkit.errors import InvalidRequest, invalid_request_from

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
NEXT_TOKEN_PARAMETER = "next_token"  # noqa: S105 - a parameter name, no secret
_NOT_OURS = "not a token this service handed out"


class PageQuery(BaseModel):
    """The query string of a list route: ``?limit=1..100&next_token=...``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    next_token: str | None = Field(None, min_length=1, max_length=1024)

    @classmethod
    def from_query_params(cls, params: Mapping[str, str] | None) -> Self:
        """Read a route's query parameters.

        Raises
        ------
        InvalidRequest
            Naming the parameter that is out of range, malformed or unknown.
        """
        try:
            return cls.model_validate(dict(params or {}))
        except ValidationError as exc:
            raise invalid_request_from(exc) from None


def time_ordered_key(when: datetime, item_id: str) -> str:
    """A sort key ordering items by time, then id: UTC to the microsecond (sorts as text),
    ``#``, the id.

    >>> time_ordered_key(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "o-1")
    '2026-01-02T03:04:05.000006Z#o-1'
    """
    return f"{when.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{item_id}"


def encode_token(position: Mapping[str, str]) -> str:
    """The token that continues a listing after ``position`` (the last key of a page)."""
    text = json.dumps(dict(position), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str, fields: tuple[str, ...]) -> dict[str, str]:
    """The position a token continues after, with exactly ``fields``, all text.

    Raises
    ------
    InvalidRequest
        Naming ``next_token`` when it is not one this service handed out.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        position = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
    except (ValueError, binascii.Error):  # not base64, not ASCII, not JSON
        raise InvalidRequest(NEXT_TOKEN_PARAMETER, _NOT_OURS) from None
    if (
        not isinstance(position, dict)
        or sorted(position) != sorted(fields)
        or not all(isinstance(value, str) and value for value in position.values())
    ):
        raise InvalidRequest(NEXT_TOKEN_PARAMETER, _NOT_OURS)
    return {str(name): str(value) for name, value in position.items()}
