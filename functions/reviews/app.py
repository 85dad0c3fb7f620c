"""The reviews service: ``POST`` and ``GET /products/{product_id}/reviews``.

The product comes from the catalog by RPC (``GetProduct``) and is joined with its reviews.
"""

from __future__ import annotations

import functools

from chalicelib.domain import ReviewBook
from chalicelib.settings import ReviewsSettings
from chalicelib.wiring import build_review_book
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.reviews import CreateReview, ProductReviews, Review
from lambdamesh_toolkit.http_api import ApiApp, HttpApi
from lambdamesh_toolkit.logging import get_logger
from lambdamesh_toolkit.paging import PageQuery

app = ApiApp(app_name="lambdamesh-reviews")
logger = get_logger("reviews")
api = HttpApi(app, logger)


@functools.cache
def review_book() -> ReviewBook:
    """The review book, built on first use and kept by the warm container.

    Built lazily rather than at import so that ``chalice package`` (which imports this
    module to find the routes) needs no environment.
    """
    return build_review_book(load_settings(ReviewsSettings))


@app.route("/products/{product_id}/reviews", methods=["POST"])
@api.endpoint(status=201, body=CreateReview, errors=(404, 409, 422, 503))
def add_review(product_id: str) -> Review:
    """Review a catalog product (404 unknown product, 409 second review by an author)."""
    review = review_book().add_review(product_id, api.parse_body(CreateReview))
    logger.info("review added", extra={"product_id": product_id, "review_id": review.id})
    return review


@app.route("/products/{product_id}/reviews", methods=["GET"])
@api.endpoint(query=PageQuery, errors=(404, 503))
def product_reviews(product_id: str) -> ProductReviews:
    """The product with a page of its reviews, newest first (``?limit=1..100&next_token=``;
    404 unknown product)."""
    page = PageQuery.from_query_params(api.request.query_params)
    return review_book().product_reviews(product_id, page)
