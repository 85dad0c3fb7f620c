"""Product reviews: the rules for writing one and the view of a product with its reviews.

Plain Python: the product lookup (the catalog) and the storage are ports that adapters
implement.

Rules
-----
- A review rates a product that exists in the catalog (else 404 for the product).
- Ratings are whole stars 1..5 (the contract enforces it).
- One review per author per product: authors are compared without case or surrounding
  blanks, and a second review by the same author is a conflict (edit flows are not in
  scope), so a product's average cannot be stuffed by one person.
- A low rating (1 or 2 stars) must say why in at least ``MIN_LOW_RATING_TEXT`` characters:
  "bad" helps no other buyer, and a reason lets the seller answer it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.reviews import CreateReview, ProductReviews, Review
from lambdamesh_toolkit.errors import Conflict, NotFound, Unprocessable
from lambdamesh_toolkit.paging import PageQuery

LOW_RATING = 2
"""Ratings at or below this must explain themselves."""
MIN_LOW_RATING_TEXT = 20
"""Characters of text a low rating needs at least."""


class DuplicateReviewError(Exception):
    """The repository refused a review because the author already reviewed the product."""


class ProductLookup(Protocol):
    """The catalog, as far as reviews need it."""

    def get_product(self, product_id: str) -> Product | None:
        """The product with this id, or ``None`` when the catalog has none."""
        ...


class ReviewRepository(Protocol):
    """Where reviews live."""

    def add(self, review: Review, author_key: str) -> None:
        """Store a review; raise :class:`DuplicateReviewError` if ``author_key`` reviewed it."""
        ...

    def newest(
        self, product_id: str, *, limit: int, after: str | None
    ) -> tuple[list[Review], str | None]:
        """Up to ``limit`` reviews of the product, newest first, after page token ``after``;
        and the token of the next page (``None`` after the last).

        Raises :class:`~lambdamesh_toolkit.errors.InvalidRequest` naming ``next_token`` when
        ``after`` is not a token it handed out.
        """
        ...


def author_key(author: str) -> str:
    """The form authors are compared in: trimmed, case-folded, inner blanks collapsed."""
    return " ".join(author.split()).casefold()


def check_review(request: CreateReview) -> None:
    """Apply the rules the contract cannot express on its own.

    Raises
    ------
    Unprocessable
        Naming ``text`` for a low rating with too short a text.
    """
    if request.rating <= LOW_RATING and len(request.text.strip()) < MIN_LOW_RATING_TEXT:
        raise Unprocessable(
            "text",
            f"a rating of {request.rating} needs at least {MIN_LOW_RATING_TEXT} characters "
            "saying why",
        )


class ReviewBook:
    """Writes and reads reviews of catalog products.

    Parameters
    ----------
    catalog
        Where products are looked up.
    repository
        Where reviews are stored.
    clock, new_id
        Sources of time and ids, injectable so tests are deterministic.
    """

    def __init__(
        self,
        catalog: ProductLookup,
        repository: ReviewRepository,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._catalog = catalog
        self._repository = repository
        self._clock = clock
        self._new_id = new_id

    def add_review(self, product_id: str, request: CreateReview) -> Review:
        """Record a review of a catalog product.

        Raises
        ------
        Unprocessable
            When a rule above is broken.
        NotFound
            When the catalog has no such product.
        Conflict
            When the author already reviewed it.
        """
        check_review(request)
        self._product(product_id)
        review = Review(
            id=self._new_id(),
            product_id=product_id,
            author=" ".join(request.author.split()),
            rating=request.rating,
            text=request.text.strip(),
            created_at=self._clock(),
        )
        try:
            self._repository.add(review, author_key(review.author))
        except DuplicateReviewError:
            raise Conflict(f"{review.author} has already reviewed product {product_id}") from None
        return review

    def product_reviews(self, product_id: str, page: PageQuery | None = None) -> ProductReviews:
        """The product joined with a page of its reviews, newest first.

        Raises
        ------
        NotFound
            When the catalog has no such product.
        InvalidRequest
            Naming ``next_token`` when it is not a token this service handed out.
        """
        page = page or PageQuery.from_query_params(None)
        product = self._product(product_id)
        reviews, next_token = self._repository.newest(
            product_id, limit=page.limit, after=page.next_token
        )
        return ProductReviews(product=product, reviews=reviews, next_token=next_token)

    def _product(self, product_id: str) -> Product:
        product = self._catalog.get_product(product_id)
        if product is None:
            raise NotFound("product", product_id)
        return product
