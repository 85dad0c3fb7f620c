"""The reviews functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings


class ReviewsSettings(EnvSettings):
    """Where the reviews table and the catalog are.

    Attributes
    ----------
    reviews_table
        ``REVIEWS_TABLE``.
    catalog_rpc_function
        ``CATALOG_RPC_FUNCTION``: name or ARN of the catalog's RPC function.
    catalog_timeout_s
        ``CATALOG_RPC_TIMEOUT_S``: how long one ``GetProduct`` invocation may take.
    """

    reviews_table: str = Field(alias="REVIEWS_TABLE", min_length=1)
    catalog_rpc_function: str = Field(alias="CATALOG_RPC_FUNCTION", min_length=1)
    catalog_timeout_s: float = Field(3.0, alias="CATALOG_RPC_TIMEOUT_S", gt=0)
