"""``Idempotency-Key`` decisions for ``POST /orders``.

A client that sends the same key with the same body gets the same order back, however
many times it retries and however many of those retries run at once; the same key with a
different body is refused. The store makes the claim atomic (a conditional put); what to
do when a key is already claimed is decided here, without any I/O.

A claim holds a *lease* while its request runs. A request that dies mid-way (timeout,
crash) leaves its claim ``IN_PROGRESS``; once the lease has run out, the next request with
that key takes the claim over instead of waiting for ever. The lease is as long as the
function's timeout, so a live request never loses its claim.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from enum import StrEnum

from lambdamesh_toolkit.contracts.orders import CreateOrder
from lambdamesh_toolkit.errors import InvalidRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
LEASE_S = 30
"""How long a claim stays ``IN_PROGRESS`` before another request may take it over."""
RETENTION_S = 24 * 3600
"""How long a key is remembered (the table's TTL attribute ``expires_at``)."""


class ClaimStatus(StrEnum):
    """Where the request holding a key is."""

    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


class Verdict(StrEnum):
    """What to do with a request whose key is already claimed."""

    REPLAY = "REPLAY"
    """Same body, order placed: answer with that order."""
    MISMATCH = "MISMATCH"
    """Different body: refuse, the key belongs to another request."""
    IN_PROGRESS = "IN_PROGRESS"
    """Same body, still running elsewhere: ask the client to retry shortly."""
    TAKE_OVER = "TAKE_OVER"
    """Same body, the holder's lease ran out without placing the order: run it here."""


@dataclass(frozen=True)
class IdempotencyClaim:
    """A key's record: whose body it stands for and which order it places."""

    key: str
    fingerprint: str
    order_id: str
    status: ClaimStatus
    lease_expires_at: int
    """Epoch seconds after which an ``IN_PROGRESS`` claim may be taken over."""
    expires_at: int
    """Epoch seconds after which the key is forgotten."""


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


def new_claim(key: str, body_fingerprint: str, order_id: str, now_s: int) -> IdempotencyClaim:
    """The claim a request puts down before doing anything else."""
    return IdempotencyClaim(
        key=key,
        fingerprint=body_fingerprint,
        order_id=order_id,
        status=ClaimStatus.IN_PROGRESS,
        lease_expires_at=now_s + LEASE_S,
        expires_at=now_s + RETENTION_S,
    )


def renewed(stale: IdempotencyClaim, now_s: int) -> IdempotencyClaim:
    """The claim that replaces a stale one; it keeps the order id the key was given."""
    return replace(stale, lease_expires_at=now_s + LEASE_S, expires_at=now_s + RETENTION_S)


def decide(existing: IdempotencyClaim, body_fingerprint: str, now_s: int) -> Verdict:
    """What to do with a request whose key ``existing`` already holds."""
    if existing.fingerprint != body_fingerprint:
        return Verdict.MISMATCH
    if existing.status is ClaimStatus.COMPLETED:
        return Verdict.REPLAY
    if now_s >= existing.lease_expires_at:
        return Verdict.TAKE_OVER
    return Verdict.IN_PROGRESS
