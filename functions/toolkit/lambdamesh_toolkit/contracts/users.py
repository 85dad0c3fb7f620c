"""Contracts of the users service."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, StringConstraints

from lambdamesh_toolkit.contracts.base import Contract, Identifier, ShortText

# A pragmatic check (the full grammar needs the email-validator package, one
# more dependency in every function for little gain): one "@", a dot in the
# domain, no blanks, at most 254 characters (RFC 5321).
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
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
