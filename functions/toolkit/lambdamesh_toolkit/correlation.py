"""The correlation id of the current invocation.

One id follows a request through every hop: the ``X-Correlation-Id`` HTTP
header, the RPC envelope, and every log line. It lives in a ``ContextVar`` so
concurrent work (threads, asyncio tasks) never sees another request's id.

Lambda reuses the process between invocations, so every entry point must call
:func:`use_correlation_id` at the start of each invocation; otherwise the
previous invocation's id would leak into this one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar

CORRELATION_HEADER = "X-Correlation-Id"

# Ids come from callers, and end up in log lines and outgoing headers: accept
# only a conservative alphabet and length so a caller cannot inject log
# records or header lines. Anything else is replaced by a fresh id.
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")

_current: ContextVar[str | None] = ContextVar("lambdamesh_correlation_id", default=None)


def new_correlation_id() -> str:
    """Return a fresh correlation id (a uuid4 in its canonical form)."""
    return str(uuid.uuid4())


def is_valid_correlation_id(value: str) -> bool:
    """Tell whether ``value`` is acceptable as a correlation id from a caller."""
    return bool(_VALID_ID.fullmatch(value))


def use_correlation_id(value: str | None) -> str:
    """Make ``value`` the correlation id of this invocation.

    Parameters
    ----------
    value : str | None
        The id received from the caller, or ``None`` to start a new one. An id
        that is not acceptable (see :func:`is_valid_correlation_id`) is replaced
        by a new one too.

    Returns
    -------
    str
        The id now in use.
    """
    chosen = value if value is not None and is_valid_correlation_id(value) else new_correlation_id()
    _current.set(chosen)
    return chosen


def current_correlation_id() -> str:
    """Return this invocation's correlation id, starting one if none is set.

    Returns
    -------
    str
        The id set by :func:`use_correlation_id`; if no entry point set one, a
        new id that is kept for the rest of the context, so that logs and
        outgoing calls still agree with each other.
    """
    value = _current.get()
    if value is None:
        value = use_correlation_id(None)
    return value


def correlation_from_http_headers(headers: Mapping[str, str] | None) -> str | None:
    """Read the correlation id from HTTP headers, whatever their case.

    Parameters
    ----------
    headers : Mapping[str, str] | None
        Request headers (a plain dict from an API Gateway event, or Chalice's
        case-insensitive mapping).

    Returns
    -------
    str | None
        The header's value when present and acceptable, else ``None``.
    """
    value = header_of(headers, CORRELATION_HEADER)
    if value is None:
        return None
    value = value.strip()
    return value if is_valid_correlation_id(value) else None


def header_of(headers: Mapping[str, str] | None, name: str) -> str | None:
    """The value of header ``name`` in ``headers``, whatever its case; ``None`` when absent."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
