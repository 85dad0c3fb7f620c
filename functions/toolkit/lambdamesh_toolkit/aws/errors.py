"""What an AWS refusal says: the code of a botocore ``ClientError``.

>>> from botocore.exceptions import ClientError
>>> error_code(ClientError({"Error": {"Code": "Throttling"}}, "SendEmail"))
'Throttling'
>>> error_code(ClientError({}, "SendEmail"))
''
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    """The error's code (``ConditionalCheckFailedException``, ``NoSuchKey``, ...); ``""``
    when the answer carried none."""
    code = error.response.get("Error", {}).get("Code")
    return code if isinstance(code, str) else ""
