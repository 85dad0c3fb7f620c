"""Event envelopes: build one around a contract's data, read one from a message body.

>>> from lambdamesh_toolkit.contracts.events import OrderConfirmed
>>> data = OrderConfirmed(order_id="o-1", user_id="u-1")
>>> event = new_event("order.confirmed", data, source="orders")
>>> (event.type, event.version, event.data)
('order.confirmed', 1, {'order_id': 'o-1', 'user_id': 'u-1'})
>>> parse_envelope(event.model_dump_json()) == event
True
>>> try:
...     parse_envelope('{"id": 1}')
... except InvalidEventError as error:
...     print(error.field)
id
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from pydantic import ValidationError

from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    InvalidEventError,
    event_model,
)
from lambdamesh_toolkit.correlation import current_correlation_id
from lambdamesh_toolkit.errors import field_path


def new_event(
    type: str,  # named as the envelope's field; shadows the builtin here only
    data_model: EventData,
    *,
    source: str,
    causation_id: str | None = None,
    event_id: str | None = None,
) -> EventEnvelope:
    """Wrap ``data_model`` in a new envelope with the current correlation id.

    Parameters
    ----------
    type : str
        The event type, e.g. ``order.placed``; it must be the type ``data_model``
        is registered for.
    data_model : EventData
        The event's data; its ``contract_version`` becomes the envelope's ``version``.
    source : str
        Name of the publishing service.
    causation_id : str | None
        Id of the event or request that caused this one.
    event_id : str | None
        The event's id when it must be the same however often it is built
        (:func:`derived_event_id`); a fresh uuid4 by default.

    Returns
    -------
    EventEnvelope
        With a fresh uuid4 ``id``, ``time`` now (UTC), and ``correlation_id``
        from :func:`lambdamesh_toolkit.correlation.current_correlation_id`.

    Raises
    ------
    UnknownEventError
        When ``(type, version)`` is not registered.
    InvalidEventError
        When ``data_model`` is not the model registered for ``type``, or an
        envelope field (``source``, ``causation_id``) is malformed.
    """
    version = data_model.contract_version
    expected = event_model(type, version)
    if not isinstance(data_model, expected):
        raise InvalidEventError(
            f"{type} v{version} carries {expected.__name__}, not {data_model.__class__.__name__}",
            field="data",
        )
    try:
        return EventEnvelope(
            id=event_id or str(uuid.uuid4()),
            type=type,
            version=version,
            source=source,
            time=dt.datetime.now(dt.UTC),
            correlation_id=current_correlation_id(),
            causation_id=causation_id,
            data=data_model.model_dump(mode="json"),
        )
    except ValidationError as exc:
        raise invalid_event_from(exc, what="envelope") from None


def derived_event_id(*parts: str) -> str:
    """An event id derived from ``parts``: the same parts give the same id, in uuid4 form.

    For an event that is published without being stored first: rebuilding it after a crash
    or a redelivery gives it the same id, so the topic and the consumers drop the repeat.

    >>> derived_event_id("order.voided", "e-1") == derived_event_id("order.voided", "e-1")
    True
    >>> uuid.UUID(derived_event_id("order.voided", "e-1")).version
    4
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


def event_data(envelope: EventEnvelope) -> EventData:
    """Validate an envelope's ``data`` against its registered model.

    Returns
    -------
    EventData
        The typed ``data``.

    Raises
    ------
    UnknownEventError
        When ``(type, version)`` is not registered.
    InvalidEventError
        When ``data`` breaks the model, naming the first field at fault.
    """
    model = event_model(envelope.type, envelope.version)
    try:
        return model.model_validate(envelope.data)
    except ValidationError as exc:
        what = f"{envelope.type} v{envelope.version}"
        raise invalid_event_from(exc, prefix="data", what=what) from None


def parse_envelope(body: str | bytes) -> EventEnvelope:
    """Read an envelope from a JSON message body.

    Raises
    ------
    InvalidEventError
        When the body is not JSON or not an envelope, naming the field at fault.
    """
    try:
        return EventEnvelope.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_event_from(exc, what="envelope") from None


def invalid_event_from(
    exc: ValidationError, *, what: str, prefix: str | None = None
) -> InvalidEventError:
    """Turn a pydantic ``ValidationError`` into :class:`InvalidEventError` naming the field."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return InvalidEventError(f"{what} is not valid JSON: {first['msg']}")
    field = field_path([*([prefix] if prefix else []), *first["loc"]])
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    return InvalidEventError(f"{what}: {field or 'body'}: {first['msg']}{more}", field=field)
