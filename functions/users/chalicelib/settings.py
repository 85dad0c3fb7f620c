"""The users functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings


class UsersSettings(EnvSettings):
    """Where the users table is.

    Attributes
    ----------
    users_table
        ``USERS_TABLE``.
    """

    users_table: str = Field(alias="USERS_TABLE", min_length=1)
