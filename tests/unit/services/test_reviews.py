"""The reviews service under moto, the catalog faked at the RPC client boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from chalice.test import Client

from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.reviews import CreateReview, ProductReviews
from lambdamesh_toolkit.errors import Conflict, DependencyUnavailable, Unprocessable
from lambdamesh_toolkit.resilience import CircuitBreaker, RetryPolicy
from lambdamesh_toolkit.rpc import RpcClient
from tests.support.breaker_clock import freeze_breaker_clock
from tests.support.circuit_breaker import InMemoryCircuitStore
from tests.unit.services.conftest import ServiceFactory
from tests.unit.services.service_loader import LoadedService, load_service
from tests.unit.services.support import FakeCatalogRpc, json_body, post_json

GOOD = {"author": "Ann", "rating": 5, "text": "Boils fast, pours well."}


@pytest.fixture
def reviews(deployed_service: ServiceFactory) -> LoadedService:
    return deployed_service(
        "reviews", CatalogFunctionName="lambdamesh-catalog-dev-rpc", CircuitBreakerTable="breaker"
    )


def serve_with(reviews: LoadedService, monkeypatch: pytest.MonkeyPatch, catalog_rpc: Any) -> Client:
    """The app, its catalog RPC client replaced by ``catalog_rpc``."""
    wiring = reviews.module("chalicelib.wiring")
    settings = load_settings(reviews.module("chalicelib.settings").ReviewsSettings)
    book = wiring.build_review_book(settings, catalog_rpc=catalog_rpc)
    monkeypatch.setattr(reviews.app_module, "review_book", lambda: book)
    return reviews.client()


@pytest.fixture
def catalog_rpc() -> FakeCatalogRpc:
    return FakeCatalogRpc()


@pytest.fixture
def client(
    reviews: LoadedService, monkeypatch: pytest.MonkeyPatch, catalog_rpc: FakeCatalogRpc
) -> Client:
    return serve_with(reviews, monkeypatch, catalog_rpc)


def test_post_review_of_a_catalog_product_is_201(client: Client) -> None:
    # GIVEN a product in the catalog
    # WHEN it is reviewed
    response = post_json(client, "/products/p-kettle/reviews", GOOD)
    # THEN 201 with the stored review
    assert response.status_code == 201
    body = json_body(response)
    assert (body["product_id"], body["author"], body["rating"]) == ("p-kettle", "Ann", 5)


def test_get_reviews_joins_the_catalog_product_with_its_reviews(client: Client) -> None:
    # GIVEN two reviews of one product and one of another
    post_json(client, "/products/p-kettle/reviews", GOOD)
    post_json(client, "/products/p-kettle/reviews", {**GOOD, "author": "Bob", "rating": 4})
    post_json(client, "/products/p-beans/reviews", GOOD)
    # WHEN the first product's reviews are read
    response = client.http.get("/products/p-kettle/reviews")
    # THEN the catalog's product comes with exactly its two reviews, newest first
    assert response.status_code == 200
    joined = ProductReviews.model_validate(json_body(response))
    assert joined.product.name == "Kettle"
    assert [review.author for review in joined.reviews] == ["Bob", "Ann"]


def test_review_of_unknown_product_is_404(client: Client) -> None:
    # GIVEN a product the catalog does not have
    # WHEN it is reviewed, and its reviews read
    posted = post_json(client, "/products/p-unicorn/reviews", GOOD)
    read = client.http.get("/products/p-unicorn/reviews")
    # THEN both are 404
    assert (posted.status_code, read.status_code) == (404, 404)


def test_malformed_product_id_is_404_without_asking_the_catalog(
    client: Client, catalog_rpc: FakeCatalogRpc
) -> None:
    # GIVEN a path id no product can have
    # WHEN its reviews are read
    response = client.http.get("/products/not%20an%20id/reviews")
    # THEN 404, and the catalog was not called
    assert response.status_code == 404
    assert catalog_rpc.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "rating": 6}, "rating"),
        ({**GOOD, "rating": "five"}, "rating"),
        ({"author": "Ann", "rating": 4}, "text"),
        ({**GOOD, "author": "   "}, "author"),
    ],
)
def test_invalid_review_is_400_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    # GIVEN a body breaking the CreateReview contract
    # WHEN it is posted
    response = post_json(client, "/products/p-kettle/reviews", body)
    # THEN 400 naming the field
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == field


def test_low_rating_without_a_reason_is_422_naming_text(client: Client) -> None:
    # GIVEN a one-star review that does not say why
    # WHEN it is posted
    response = post_json(client, "/products/p-kettle/reviews", {**GOOD, "rating": 1, "text": "Bad"})
    # THEN 422 naming the text
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "text"


def test_second_review_by_the_same_author_is_409(client: Client) -> None:
    # GIVEN a review by Ann
    post_json(client, "/products/p-kettle/reviews", GOOD)
    # WHEN "ann" (other case, extra blanks) reviews the same product again
    response = post_json(client, "/products/p-kettle/reviews", {**GOOD, "author": " ANN "})
    # THEN 409
    assert response.status_code == 409


def test_catalog_down_is_503_with_retry_after(client: Client, catalog_rpc: FakeCatalogRpc) -> None:
    # GIVEN a catalog that cannot be reached
    catalog_rpc.failure = DependencyUnavailable("catalog-rpc", 4.2, reason="circuit open")
    # WHEN a product's reviews are read
    response = client.http.get("/products/p-kettle/reviews")
    # THEN 503 with Retry-After, never a 500
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert json_body(response)["error"]["code"] == "dependency_unavailable"


def test_correlation_id_travels_to_the_catalog_and_back(
    client: Client, catalog_rpc: FakeCatalogRpc
) -> None:
    # GIVEN a request with a correlation id
    # WHEN it is served
    response = client.http.get(
        "/products/p-kettle/reviews", headers={"X-Correlation-Id": "trace-r1"}
    )
    # THEN the RPC call ran under that id, and the answer carries it
    assert catalog_rpc.calls == [("GetProduct", "p-kettle", "trace-r1")]
    assert response.headers["X-Correlation-Id"] == "trace-r1"


class TimingOutLambda:
    """A Lambda client whose every invoke times out."""

    def __init__(self) -> None:
        self.invokes = 0

    def invoke(self, **_: Any) -> Any:
        self.invokes += 1
        raise ReadTimeoutError(endpoint_url="http://lambda.test")


def test_timeouts_open_the_breaker_and_then_no_call_is_made(
    reviews: LoadedService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the real RPC client, its catalog timing out, a breaker opening after 2 failures,
    # on a breaker clock that stands still (no second passes between opening and answering)
    freeze_breaker_clock(monkeypatch)
    lambda_client = TimingOutLambda()
    rpc = RpcClient(
        "lambdamesh-catalog-dev-rpc",
        "catalog-rpc",
        lambda_client=lambda_client,  # type: ignore[arg-type]
        retry=RetryPolicy(max_attempts=2, sleep=lambda _: None),
        breaker=CircuitBreaker("catalog-rpc", InMemoryCircuitStore(), failure_threshold=2),
    )
    client = serve_with(reviews, monkeypatch, rpc)
    # WHEN reviews are read twice
    first = client.http.get("/products/p-kettle/reviews")
    second = client.http.get("/products/p-kettle/reviews")
    # THEN both are 503 with Retry-After; the second made no call (circuit open)
    assert (first.status_code, second.status_code) == (503, 503)
    # AND both tell the breaker's truth: come back when it lets a probe through (10 s)
    assert first.headers["Retry-After"] == str(rpc.breaker.config.recovery_timeout)
    assert 1 <= int(second.headers["Retry-After"]) <= rpc.breaker.config.recovery_timeout
    assert "circuit open" in json_body(second)["error"]["message"]
    assert lambda_client.invokes == 2


# --- the rules, without AWS ----------------------------------------------------------


class MemoryReviews:
    def __init__(self, duplicate_error: type[Exception]) -> None:
        self.rows: dict[tuple[str, str], Any] = {}
        self._duplicate = duplicate_error

    def add(self, review: Any, author_key: str) -> None:
        if (review.product_id, author_key) in self.rows:
            raise self._duplicate(author_key)
        self.rows[(review.product_id, author_key)] = review

    def newest(self, product_id: str, *, limit: int, after: str | None) -> tuple[list[Any], None]:
        mine = [review for (product, _), review in self.rows.items() if product == product_id]
        return sorted(mine, key=lambda review: review.created_at, reverse=True)[:limit], None


class CatalogLookup:
    def get_product(self, product_id: str) -> Any:
        return FakeCatalogRpc().products.get(product_id)


@pytest.fixture
def domain() -> Any:
    return load_service("reviews").module("chalicelib.domain")


def book(domain: Any, clock: Any = None) -> Any:
    kwargs = {"clock": clock} if clock else {}
    return domain.ReviewBook(CatalogLookup(), MemoryReviews(domain.DuplicateReviewError), **kwargs)


@pytest.mark.parametrize("rating", [1, 2])
def test_low_ratings_need_a_reason(domain: Any, rating: int) -> None:
    # GIVEN a low rating with a short text
    # WHEN it is checked
    # THEN Unprocessable naming text
    with pytest.raises(Unprocessable) as refused:
        domain.check_review(CreateReview(author="A", rating=rating, text="meh"))
    assert refused.value.field == "text"


@pytest.mark.parametrize("rating", [3, 4, 5])
def test_other_ratings_may_be_short(domain: Any, rating: int) -> None:
    # GIVEN a rating of 3 or more with a short text
    # WHEN it is checked
    # THEN it passes
    domain.check_review(CreateReview(author="A", rating=rating, text="ok"))


def test_author_key_ignores_case_and_blanks(domain: Any) -> None:
    # GIVEN two spellings of one author
    # THEN they compare equal
    assert domain.author_key("  Ann   Lee ") == domain.author_key("ann lee")


def test_one_review_per_author_per_product(domain: Any) -> None:
    # GIVEN Ann reviewed the kettle
    reviews = book(domain)
    reviews.add_review("p-kettle", CreateReview(author="Ann", rating=5, text="Great"))
    # WHEN she reviews it again, and reviews the beans
    # THEN the second kettle review conflicts; the beans review is fine
    with pytest.raises(Conflict):
        reviews.add_review("p-kettle", CreateReview(author="ANN", rating=4, text="Good"))
    reviews.add_review("p-beans", CreateReview(author="Ann", rating=4, text="Good"))


def test_product_reviews_are_newest_first_a_page_at_a_time(
    client: Client, monkeypatch: pytest.MonkeyPatch, reviews: LoadedService
) -> None:
    # GIVEN five reviews of one product written a minute apart
    times = iter(datetime(2026, 5, 1, 12, minute, tzinfo=UTC) for minute in range(5))
    book = reviews.app_module.review_book()
    monkeypatch.setattr(book, "_clock", lambda: next(times))
    for author in ("A", "B", "C", "D", "E"):
        post_json(client, "/products/p-beans/reviews", {**GOOD, "author": author})
    # WHEN they are read two at a time, following next_token
    pages: list[list[str]] = []
    token: str | None = None
    for _ in range(5):
        query = "?limit=2" + (f"&next_token={token}" if token else "")
        page = ProductReviews.model_validate(
            json_body(client.http.get(f"/products/p-beans/reviews{query}"))
        )
        pages.append([review.author for review in page.reviews])
        token = page.next_token
        if token is None:
            break
    # THEN every review comes once, newest first, in pages of at most two
    assert [author for page in pages for author in page] == ["E", "D", "C", "B", "A"]
    assert all(len(page) <= 2 for page in pages)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=all", "limit"),
        ("?next_token=bm90LWEtdG9rZW4", "next_token"),
        ("?next_token=%C3%A9", "next_token"),
        ("?next_token=e30", "next_token"),
        ("?sort=oldest", "sort"),
    ],
)
def test_a_bad_page_query_is_400_naming_the_parameter(
    client: Client, query: str, field: str
) -> None:
    # GIVEN a reviewed product
    post_json(client, "/products/p-beans/reviews", GOOD)
    # WHEN its reviews are read with a query the listing cannot honour
    response = client.http.get(f"/products/p-beans/reviews{query}")
    # THEN 400 naming the parameter
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == field


def test_a_long_list_of_reviews_is_answered_a_page_at_a_time(client: Client) -> None:
    # GIVEN more reviews than a page holds by default
    for number in range(25):
        post_json(client, "/products/p-beans/reviews", {**GOOD, "author": f"Author {number}"})
    # WHEN they are read without a limit
    page = ProductReviews.model_validate(json_body(client.http.get("/products/p-beans/reviews")))
    # THEN one page of the default size comes, with a token to the rest
    assert len(page.reviews) == 20
    assert page.next_token is not None
