"""The user service as orders see it: ``GET /users/{id}`` over HTTP (API Gateway).

That route requires IAM authorisation; the client this adapter is given signs every request
(:func:`chalicelib.wiring.build_users_client`).
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from lambdamesh_toolkit.errors import DependencyUnavailable, NotFound


class HttpAnswer(Protocol):
    """What this adapter reads of an answer (``lambdamesh_toolkit.http_client.HttpResult``)."""

    @property
    def status(self) -> int:
        """The HTTP status code."""
        ...

    def json(self) -> Any:
        """The body decoded as JSON (raises ``DependencyUnavailable`` if it is not)."""
        ...


class HttpGetter(Protocol):
    """What this adapter needs of an HTTP client (``ServiceHttpClient``)."""

    def get(self, path: str) -> HttpAnswer:
        """GET ``path``; 4xx answers come back, unavailability raises."""
        ...


class UsersHttpDirectory:
    """Asks the user service whether a user exists.

    Parameters
    ----------
    http
        A client for the users API (timeouts, retries and breaker included).
    dependency_name
        The name the user service goes by in errors.
    """

    def __init__(self, http: HttpGetter, dependency_name: str = "users") -> None:
        self._http = http
        self._dependency = dependency_name

    def user_exists(self, user_id: str) -> bool:
        """Whether the user exists.

        Raises
        ------
        DependencyUnavailable
            When the user service cannot be reached, or answers something other than the
            user or "no such user" (then it cannot do its job for us either).
        """
        try:
            answer = self._http.get(f"/users/{quote(user_id, safe='')}")
        except DependencyUnavailable as error:
            raise _with_retry_hint(error) from error
        if 200 <= answer.status < 300:
            return True
        if answer.status == 404 and _is_not_found_error(answer.json()):
            return False
        # Anything else, a 404 from API Gateway itself included (no such route: a wrong
        # USERS_API_URL), means the user service cannot tell us; it must not pass for
        # "no such user", which would refuse orders of real users with a 422.
        raise DependencyUnavailable(
            self._dependency,
            DEFAULT_RETRY_AFTER_S,
            reason=f"GET /users/{{id}} answered HTTP {answer.status}",
        )


def _is_not_found_error(body: Any) -> bool:
    """Whether ``body`` is the user service's own "not found" error body."""
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    return isinstance(error, dict) and error.get("code") == NotFound.code


DEFAULT_RETRY_AFTER_S = 1.0
"""The ``Retry-After`` hint when the client gave none (retries exhausted, not a breaker)."""


def _with_retry_hint(error: DependencyUnavailable) -> DependencyUnavailable:
    """``error``, with a retry hint if it had none: a 503 always tells when to come back."""
    if error.retry_after_s is not None:
        return error
    return DependencyUnavailable(error.dependency, DEFAULT_RETRY_AFTER_S, reason=error.reason)
