"""Contracts of the users service."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BeforeValidator, StringConstraints

from lambdamesh_toolkit.contracts.base import Contract, Identifier, ShortText, clean_text


def normalise_email(value: object) -> object:
    """An email as it is stored and compared: cleaned (:func:`clean_text`), then case-folded.

    Mail providers treat the whole address case-insensitively in practice, so two
    registrations differing only in case are the same person. Folding can lengthen a text
    (``ß`` → ``ss``), so the address's checks run after it.

    >>> normalise_email("  Ann.Weiß@Example.ORG ")
    'ann.weiss@example.org'
    """
    cleaned = clean_text(value)
    if not isinstance(cleaned, str):
        return cleaned
    return clean_text(cleaned.casefold())


# A pragmatic check (the full grammar needs the email-validator package, one
# more dependency in every function for little gain): one "@", a dot in the
# domain, no blanks, at most 254 characters (RFC 5321), checked on the normalised form.
Email = Annotated[
    str,
    BeforeValidator(normalise_email),
    StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


class CreateUser(Contract):
    """Body of ``POST /users``."""

    contract_name: ClassVar[str] = "users.CreateUser"

    email: Email
    name: ShortText


class User(Contract):
    """A registered user."""

    contract_name: ClassVar[str] = "users.User"

    id: Identifier
    email: Email
    name: ShortText
    created_at: AwareDatetime
