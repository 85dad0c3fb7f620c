"""The reviews functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from lambdamesh_toolkit.deadline import DeadlineSettings, within_budget


class ReviewsSettings(DeadlineSettings):
    """Where the reviews table and the catalog are.

    The catalog's per-attempt timeout holds a cold start of its RPC function, and is shorter
    than the request budget (``REQUEST_DEADLINE_S``, inherited), as for orders: both share the
    ``catalog-rpc`` circuit (``lambdamesh_toolkit.resilience``).

    Attributes
    ----------
    reviews_table
        ``REVIEWS_TABLE``.
    catalog_rpc_function
        ``CATALOG_RPC_FUNCTION``: name or ARN of the catalog's RPC function.
    catalog_timeout_s
        ``CATALOG_RPC_TIMEOUT_S``: how long one ``GetProduct`` invocation may take.
    request_deadline_s
        ``REQUEST_DEADLINE_S``: the budget of a request (``DeadlineSettings``).
    """

    reviews_table: str = Field(alias="REVIEWS_TABLE", min_length=1)
    catalog_rpc_function: str = Field(alias="CATALOG_RPC_FUNCTION", min_length=1)
    catalog_timeout_s: float = Field(5.0, alias="CATALOG_RPC_TIMEOUT_S", gt=0)

    @field_validator("catalog_timeout_s")
    @classmethod
    def _shorter_than_the_budget(cls, timeout_s: float, info: ValidationInfo) -> float:
        return within_budget(timeout_s, info.data.get("request_deadline_s"))
