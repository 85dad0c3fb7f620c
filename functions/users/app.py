"""The users service: ``POST /users`` and ``GET /users/{user_id}``.

Every registration is announced on the users topic as ``user.created``.

``POST /users`` (signing up) is public. ``GET /users/{user_id}`` is internal: it answers a
user's name and email to whoever asks, so it requires IAM authorisation (``AWS_IAM``: a
Signature Version 4 request by a principal allowed ``execute-api:Invoke`` on it, the orders
functions' role alone). The lookup itself is the internal route, rather than a copy of it under
``/internal/``: a public twin would leave the personal data as open as before. On the emulator
nothing is checked (LocalStack community verifies no signature), so an unsigned call is answered
there; orders signs all the same.
"""

from __future__ import annotations

import functools

from chalice.app import IAMAuthorizer

from chalicelib.domain import AnnouncementFailedError, UserRegistry
from chalicelib.settings import UsersSettings
from chalicelib.wiring import build_registry
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.users import CreateUser, User
from lambdamesh_toolkit.http_api import ApiApp, HttpApi
from lambdamesh_toolkit.logging import get_logger

app = ApiApp(app_name="lambdamesh-users")
logger = get_logger("users")
api = HttpApi(app, logger)
internal = IAMAuthorizer()
"""The authorisation of routes only other services call: IAM (SigV4-signed requests)."""


@functools.cache
def registry() -> UserRegistry:
    """The registry, built on first use and kept by the warm container.

    Built lazily rather than at import so that ``chalice package`` (which imports this
    module to find the routes) needs no environment.
    """
    return build_registry(load_settings(UsersSettings))


@app.route("/users", methods=["POST"])
@api.endpoint(status=201, body=CreateUser, errors=(409,))
def create_user() -> User:
    """Register a user (409 when the email is taken)."""
    try:
        user = registry().register(api.parse_body(CreateUser))
    except AnnouncementFailedError as failure:
        # Registered all the same; the lost event is reported for someone to republish.
        logger.exception(
            "user registered, user.created not published",
            extra={"user_id": failure.user.id, "event_id": failure.event.id},
        )
        return failure.user
    logger.info("user registered", extra={"user_id": user.id})
    return user


@app.route("/users/{user_id}", methods=["GET"], authorizer=internal)
@api.endpoint(errors=(404,))
def get_user(user_id: str) -> User:
    """The user with this id (404 when there is none); for services, signed (IAM)."""
    user = registry().get(user_id)
    # One line per lookup, so a caller's correlation id can be followed into this service.
    logger.info("user looked up", extra={"user_id": user_id})
    return user
