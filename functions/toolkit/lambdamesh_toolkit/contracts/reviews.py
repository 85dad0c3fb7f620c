"""Contracts of the reviews service."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field, StringConstraints

from lambdamesh_toolkit.contracts.base import (
    Contract,
    Identifier,
    MultilineText,
    ShortText,
    StrictInt,
)
from lambdamesh_toolkit.contracts.catalog import Product

Rating = Annotated[StrictInt, Field(ge=1, le=5)]
ReviewText = Annotated[MultilineText, StringConstraints(min_length=1, max_length=4000)]


class CreateReview(Contract):
    """Body of ``POST /products/{product_id}/reviews``."""

    contract_name: ClassVar[str] = "reviews.CreateReview"

    author: ShortText
    rating: Rating
    text: ReviewText


class Review(Contract):
    """A stored review of one product."""

    contract_name: ClassVar[str] = "reviews.Review"

    id: Identifier
    product_id: Identifier
    author: ShortText
    rating: Rating
    text: ReviewText
    created_at: AwareDatetime


class ProductReviews(Contract):
    """Body of ``GET /products/{product_id}/reviews``: the product and a page of its reviews,
    newest first; ``next_token`` leads to the next page."""

    contract_name: ClassVar[str] = "reviews.ProductReviews"

    product: Product
    reviews: list[Review]
    next_token: str | None = None
