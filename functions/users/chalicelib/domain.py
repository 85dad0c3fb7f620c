"""The user registry: registering users, announcing them (``user.created``), looking them up.

Plain Python: the storage (:class:`UserRepository`) and the users topic
(:class:`EventPublisher`) are ports that adapters implement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from lambdamesh_toolkit.contracts.events import EventEnvelope, UserCreated
from lambdamesh_toolkit.contracts.users import CreateUser, User
from lambdamesh_toolkit.errors import Conflict, NotFound
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import EventPublisher, Outbox, UnpublishedEventsError

SOURCE = "users"
"""The ``source`` of the events users publish."""


class EmailAlreadyRegisteredError(Exception):
    """The repository refused a user because another one owns the email."""


class AnnouncementFailedError(Exception):
    """The user is registered, but ``user.created`` could not be published.

    Parameters
    ----------
    user
        The registered user.
    event
        The event that was not published.
    """

    def __init__(self, user: User, event: EventEnvelope) -> None:
        super().__init__(f"user {user.id} registered; user.created {event.id} not published")
        self.user = user
        self.event = event


class UserRepository(Protocol):
    """Where users live."""

    def add(self, user: User, announcement: EventEnvelope) -> None:
        """Store a new user with its unpublished ``user.created``, atomically.

        Raises :class:`EmailAlreadyRegisteredError` if the email is taken.
        """
        ...

    def mark_announced(self, user_id: str) -> None:
        """Forget the stored ``user.created`` of a user: it was published."""
        ...

    def get(self, user_id: str) -> User | None:
        """The user with this id, or ``None``."""
        ...


def new_user_id() -> str:
    """A fresh, unguessable user id."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


class UserRegistry:
    """Registers users (one per email) and finds them by id.

    Parameters
    ----------
    repository
        Where users are stored.
    events
        The users topic, told of every new user (``user.created``).
    clock, new_id
        Sources of time and ids, injectable so tests are deterministic.
    """

    def __init__(
        self,
        repository: UserRepository,
        events: EventPublisher,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_user_id,
    ) -> None:
        self._repository = repository
        self._outbox = Outbox(events)
        self._clock = clock
        self._new_id = new_id

    def register(self, request: CreateUser) -> User:
        """Create a user with its ``user.created`` (one write), then publish it.

        Raises
        ------
        Conflict
            When a user with the same email (compared case-insensitively) exists.
        AnnouncementFailedError
            When the user was stored but ``user.created`` could not be published. The
            registration stands (retrying it would only meet the taken email), so the
            caller answers with the user and reports the lost event.
        """
        user = User(
            id=self._new_id(),
            # Both arrive normalised by the contract: NFC, trimmed, the email case-folded,
            # so that two spellings of one address are one user.
            email=request.email,
            name=request.name,
            created_at=self._clock(),
        )
        data = UserCreated(user_id=user.id, email=user.email, name=user.name)
        event = new_event(UserCreated.event_type, data, source=SOURCE)
        try:
            self._repository.add(user, event)
        except EmailAlreadyRegisteredError:
            raise Conflict(
                f"a user with email {user.email} is already registered", field="email"
            ) from None
        try:
            self._outbox.publish([event], then=lambda: self._repository.mark_announced(user.id))
        except UnpublishedEventsError as error:
            # Whatever failed (SNS down, throttled, refused), the user exists and the event
            # stays stored with it: say so.
            raise AnnouncementFailedError(user, event) from error.__cause__
        return user

    def get(self, user_id: str) -> User:
        """The user with this id.

        Raises
        ------
        NotFound
            When there is none.
        """
        user = self._repository.get(user_id)
        if user is None:
            raise NotFound("user", user_id)
        return user
