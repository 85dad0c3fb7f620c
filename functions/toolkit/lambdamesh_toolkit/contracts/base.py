"""What every contract shares: strictness, a name, a version, common field types."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Identifiers: safe in URLs, DynamoDB keys and log lines.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
]
#: Money is always integer cents, never a float.
Cents = Annotated[int, Field(ge=0, le=1_000_000_000)]
#: ISO 4217 currency code.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
#: Short human text (names), surrounding blanks removed.
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


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

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    contract_name: ClassVar[str]
    contract_version: ClassVar[int] = 1
