"""Personal data kept out of logs, failure records and what the CLI prints.

Two rules, applied wherever text leaves a service for people to read:

- an email address anywhere in a text is masked to its first character and its domain
  (:func:`mask_text`): ``ada.lovelace@example.com`` → ``a***@example.com``;
- the value of a personal field in structured data (:data:`PERSONAL_FIELDS`: ``email``,
  ``name``, recipients) is masked whole (:func:`mask_personal`), since a name cannot be told
  from other text.

>>> mask_text("SES refused ada.lovelace@example.com: not verified")
'SES refused a***@example.com: not verified'
>>> mask_personal({"user_id": "u-1", "email": "ada@example.com", "name": "Ada Lovelace"})
{'user_id': 'u-1', 'email': 'a***@example.com', 'name': 'A***'}
>>> mask_personal({"data": {"to": ["bob@example.org"], "note": "mail bob@example.org"}})
{'data': {'to': ['b***@example.org'], 'note': 'mail b***@example.org'}}

The services' logs pass every line through :func:`mask_text` (``lambdamesh_toolkit.logging``),
the consumers mask the failure reasons they record, and ``lambdamesh dlq show`` masks bodies
and reasons unless asked for them with ``--show-personal-data``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

PERSONAL_FIELDS: Final = frozenset(
    {"email", "name", "to", "recipient", "recipients", "to_addresses", "ToAddresses"}
)
"""Keys whose values are personal data wherever they appear in a document."""

MASK: Final = "***"

# Deliberately loose: anything shaped like local@domain.tld is treated as an address, so
# that an address in an unexpected format is masked rather than missed.
_EMAIL: Final = re.compile(r"([^\s@\"'<>(),;:\\]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_email(address: str) -> str:
    """``address`` with its local part masked after the first character.

    >>> mask_email("Ada.Lovelace@example.com")
    'A***@example.com'
    """
    return _EMAIL.sub(lambda m: f"{m.group(1)[:1]}{MASK}@{m.group(2)}", address)


def mask_text(text: str) -> str:
    """``text`` with every email address in it masked (nothing else changes).

    >>> mask_text('{"message": "no contact", "to": "x"}')
    '{"message": "no contact", "to": "x"}'
    """
    if "@" not in text:
        return text
    return mask_email(text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_email(value) if "@" in value else f"{value[:1]}{MASK}" if value else value
    if isinstance(value, list):
        return [_mask_value(item) for item in value]
    return mask_personal(value)


def mask_personal(data: Any) -> Any:
    """A copy of JSON-like ``data`` with personal fields and email addresses masked."""
    if isinstance(data, dict):
        return {
            key: _mask_value(value) if key in PERSONAL_FIELDS else mask_personal(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [mask_personal(item) for item in data]
    if isinstance(data, str):
        return mask_text(data)
    return data


def mask_json_text(text: str) -> str:
    """``text`` masked as a JSON document when it is one (its personal fields too), else as text.

    >>> mask_json_text('{"data": {"name": "Ada", "email": "ada@example.com"}}')
    '{"data": {"name": "A***", "email": "a***@example.com"}}'
    >>> mask_json_text("not JSON, ada@example.com")
    'not JSON, a***@example.com'
    """
    try:
        document = json.loads(text)
    except ValueError:
        return mask_text(text)
    return json.dumps(mask_personal(document), ensure_ascii=False)
