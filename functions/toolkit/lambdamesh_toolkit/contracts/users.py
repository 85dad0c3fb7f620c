"""Contracts of the users service."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BeforeValidator, Field, StringConstraints

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


#: An address every mail service takes: the WHATWG form of HTML's ``type=email`` (7-bit local
#: part without quotes or comments, LDH domain labels), with a dot in the domain, at most 254
#: characters (RFC 5321), checked on the normalised form. Written here: the full grammar needs
#: the email-validator package, and SES refuses much of what that grammar allows (quoted or
#: non-ASCII local parts), so a sign-up that SES could never mail is a 400 at once.
EMAIL_PATTERN = (
    r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
Email = Annotated[
    str,
    BeforeValidator(normalise_email),
    StringConstraints(max_length=254, pattern=EMAIL_PATTERN),
    # Said again for the JSON Schema: behind a before-validator pydantic leaves the pattern out.
    Field(json_schema_extra={"pattern": EMAIL_PATTERN}),
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
