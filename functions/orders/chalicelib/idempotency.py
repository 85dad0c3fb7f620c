"""``Idempotency-Key`` decisions for ``POST /orders``.

A client that sends the same key with the same body gets the same order back, however
many times it retries and however many of those retries run at once; the same key with a
different body is refused.

A key is recorded only together with the order it placed: its record is put in the
transaction that appends the order's ``order.placed``, on condition that the key is free, so
a key never names an order that was not placed and never yields two. Nothing is claimed
before: a request looks the user and the products up, then places; a repeat finds the key
taken at that write (or, when its lookups refused or failed, by reading the key) and is
answered with the order the key names. The lookups are reads, so a repeat that runs them
again changes nothing. In exchange every first request — nearly all of them — makes one
write and one round trip fewer than a claim put down first would cost, and a request that
dies leaves no claim behind for its retry to wait out.

What a key's record means for a request is decided here, without any I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from lambdamesh_toolkit.contracts.orders import CreateOrder
from lambdamesh_toolkit.errors import InvalidRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
RETENTION_S = 24 * 3600
"""How long a key is remembered (the table's TTL attribute ``expires_at``)."""


class Verdict(StrEnum):
    """What to do with a request whose key already names an order."""

    REPLAY = "REPLAY"
    """Same body: answer with that order."""
    MISMATCH = "MISMATCH"
    """Different body: refuse, the key belongs to another request."""


class KeyBusy(Exception):  # noqa: N818 - a state, not a bug
    """Another request is writing an order under the same key at this moment."""


@dataclass(frozen=True)
class KeyRecord:
    """A key's record: whose body it stands for and which order it placed."""

    key: str
    fingerprint: str
    order_id: str
    expires_at: int
    """Epoch seconds after which the key is forgotten (and may name another order)."""


def check_key(key: str) -> str:
    """Validate an ``Idempotency-Key`` header value.

    Raises
    ------
    InvalidRequest
        Naming ``Idempotency-Key`` when it is blank, too long or not printable ASCII.
    """
    if not key or len(key) > MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise InvalidRequest(
            IDEMPOTENCY_HEADER, f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


def fingerprint(request: CreateOrder) -> str:
    """A hash of what the request asks for, blind to JSON spacing and key order."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_record(key: str, body_fingerprint: str, order_id: str, now_s: int) -> KeyRecord:
    """The record stored with the order a request places."""
    return KeyRecord(
        key=key, fingerprint=body_fingerprint, order_id=order_id, expires_at=now_s + RETENTION_S
    )


def decide(existing: KeyRecord, body_fingerprint: str) -> Verdict:
    """What to do with a request whose key ``existing`` already holds."""
    if existing.fingerprint != body_fingerprint:
        return Verdict.MISMATCH
    return Verdict.REPLAY
