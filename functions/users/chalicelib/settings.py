"""The users functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings


class UsersSettings(EnvSettings):
    """Where the users table and the users topic are.

    Attributes
    ----------
    users_table
        ``USERS_TABLE``.
    users_topic_arn
        ``USERS_TOPIC_ARN``: where ``user.created`` is published.
    """

    users_table: str = Field(alias="USERS_TABLE", min_length=1)
    users_topic_arn: str = Field(alias="USERS_TOPIC_ARN", min_length=1)
