"""What every contract shares: strictness, a name, a version, common field types."""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable, Iterable
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints

#: Unicode categories no text field accepts: controls, format (invisible) characters,
#: surrogates, line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: What multi-line text keeps of the controls: line feeds and tabs.
_MULTILINE_CONTROLS = frozenset("\n\t")


def clean_text(value: object, *, multiline: bool = False) -> object:
    r"""Text as it is stored and compared: NFC-normalised, without blanks around it.

    Runs before a field's length and pattern checks, so they hold for what is stored.
    Anything that is not a string is handed on unchanged, for the field's type to refuse.

    >>> clean_text("  Cafe\u0301 ")
    'Café'
    >>> clean_text("Bob\u200b")
    Traceback (most recent call last):
    ...
    ValueError: contains an invisible or control character (U+200B)

    Raises
    ------
    ValueError
        When the text holds a control or invisible character (a line feed or a tab is
        allowed in ``multiline`` text).
    """
    if not isinstance(value, str):
        return value
    text = unicodedata.normalize("NFC", value).strip()
    allowed = _MULTILINE_CONTROLS if multiline else frozenset()
    for char in text:
        if char not in allowed and unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise ValueError(f"contains an invisible or control character (U+{ord(char):04X})")
    return text


def _clean_multiline(value: object) -> object:
    return clean_text(value, multiline=True)


#: Identifiers: safe in URLs, DynamoDB keys and log lines.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)
]


def _integral_number(value: object) -> object:
    """``5.0`` as ``5``: JSON Schema's ``integer`` is any number without a fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A whole number in JSON, as JSON Schema's ``integer`` says: ``5`` and ``5.0`` are one,
#: ``true``, ``"5"`` and ``5.5`` are refused.
StrictInt = Annotated[int, Strict(), BeforeValidator(_integral_number)]
#: Money is always integer cents, never a float.
Cents = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]
#: ISO 4217 currency code.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
#: Short human text (names): one line, NFC, surrounding blanks removed, then 1-200 characters.
ShortText = Annotated[
    str,
    BeforeValidator(clean_text),
    StringConstraints(min_length=1, max_length=200),
    # Documented for clients and fuzzers (the C0 and C1 controls); clean_text refuses more.
    Field(json_schema_extra={"pattern": r"^[^\u0000-\u001f\u007f-\u009f]*$"}),
]
#: Longer human text (a review, a description): line feeds and tabs allowed.
MultilineText = Annotated[
    str,
    BeforeValidator(_clean_multiline),
    Field(json_schema_extra={"pattern": r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$"}),
]


#: pydantic writes a bound it could not fold into a before-validated type under its own name;
#: JSON Schema's names for them.
_BOUND_NAMES = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
}


def first_repeat(values: Iterable[Hashable]) -> tuple[int, int] | None:
    """Where a value first comes again: ``(its index, the index it first had)``; ``None``
    when every value is distinct.

    >>> first_repeat(["p-1", "p-2", "p-1"]), first_repeat(["p-1", "p-2"])
    ((2, 0), None)
    """
    first_seen: dict[Hashable, int] = {}
    for index, value in enumerate(values):
        if value in first_seen:
            return index, first_seen[value]
        first_seen[value] = index
    return None


def standard_bounds(schema: Any) -> None:
    """Rename pydantic's ``ge``/``le``/``gt``/``lt`` to JSON Schema's words, in place.

    >>> schema = {"properties": {"rating": {"type": "integer", "ge": 1, "le": 5}}}
    >>> standard_bounds(schema); schema["properties"]["rating"]
    {'type': 'integer', 'minimum': 1, 'maximum': 5}
    """
    if isinstance(schema, dict):
        for short, name in _BOUND_NAMES.items():
            if short in schema and isinstance(schema[short], int | float):
                schema[name] = schema.pop(short)
        for value in schema.values():
            standard_bounds(value)
    elif isinstance(schema, list):
        for value in schema:
            standard_bounds(value)


class Contract(BaseModel):
    """Base of every wire model.

    Unknown fields are refused (``extra="forbid"``): a typo in a request is an
    error naming that field, not a silently ignored value. A change that is
    not backward compatible gets a new ``contract_version``.

    Attributes
    ----------
    contract_name : ClassVar[str]
        ``<service>.<Model>``, unique in the system.
    contract_version : ClassVar[int]
        Version of this contract, starting at 1.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
        json_schema_extra=lambda schema, _: standard_bounds(schema),
    )

    contract_name: ClassVar[str]
    contract_version: ClassVar[int] = 1
