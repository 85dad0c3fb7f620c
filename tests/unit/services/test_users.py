"""The users service: its routes under moto, and the registry's rules without AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice.app import IAMAuthorizer
from chalice.test import Client

from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.events import EventEnvelope, UserCreated
from lambdamesh_toolkit.contracts.users import CreateUser, User
from lambdamesh_toolkit.errors import Conflict, NotFound
from lambdamesh_toolkit.hops import HOP_MESSAGE
from lambdamesh_toolkit.trace_context import parse_traceparent
from tests.unit.services.conftest import ServiceFactory, TopicFactory, TopicInbox
from tests.unit.services.service_loader import LoadedService, load_service
from tests.unit.services.support import captured_log, json_body, post_json

ANN = {"email": "Ann.Lee@Example.com", "name": "Ann Lee"}
LOCAL_IAM_WARNING = "IAMAuthorizer is not a supported in local mode"
"""What Chalice's test client warns each time it lets a request through an IAM-authorised route
without checking anything (its words)."""

# Chalice's test client admits requests to IAM-authorised routes, warning each time; the test of
# that says so once, the others need not.
pytestmark = pytest.mark.filterwarnings(f"ignore:{LOCAL_IAM_WARNING}:UserWarning")


@pytest.fixture
def users_topic(topic_inbox: TopicFactory) -> TopicInbox:
    """The users topic, with a queue that receives whatever is published on it."""
    return topic_inbox("lambdamesh-users")


@pytest.fixture
def users(deployed_service: ServiceFactory, users_topic: TopicInbox) -> LoadedService:
    return deployed_service("users", UsersTopicArn=users_topic.topic_arn)


@pytest.fixture
def client(users: LoadedService) -> Client:
    return users.client()


def test_post_users_creates_a_user_and_answers_201_with_it(client: Client) -> None:
    # GIVEN a new person
    # WHEN they register
    response = post_json(client, "/users", ANN)
    # THEN the answer is 201 with the user, email normalised, id assigned
    assert response.status_code == 201
    body = json_body(response)
    assert body["email"] == "ann.lee@example.com"
    assert body["name"] == "Ann Lee"
    assert body["id"]
    User.model_validate(body)


def test_get_user_returns_the_registered_user(client: Client) -> None:
    # GIVEN a registered user
    created = json_body(post_json(client, "/users", ANN))
    # WHEN it is fetched by id
    response = client.http.get(f"/users/{created['id']}")
    # THEN the same user comes back
    assert response.status_code == 200
    assert json_body(response) == created


def test_the_lookup_requires_iam_authorisation_and_sign_up_stays_public(
    users: LoadedService,
) -> None:
    # GIVEN the users app  WHEN its routes are read
    routes = users.app.routes
    # THEN the lookup other services make (it answers a user's name and email) requires IAM
    # authorisation, SigV4 as API Gateway declares it; signing up needs none
    lookup = routes["/users/{user_id}"]["GET"].authorizer
    assert isinstance(lookup, IAMAuthorizer)
    assert lookup.to_swagger()["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert routes["/users"]["POST"].authorizer is None


def test_an_unsigned_lookup_is_answered_by_the_test_client_which_checks_no_iam(
    users: LoadedService, client: Client
) -> None:
    # GIVEN a registered user
    created = json_body(post_json(client, "/users", ANN))
    # WHEN they are looked up without a signature, through Chalice's test client
    with captured_log(users) as log, pytest.warns(UserWarning, match=LOCAL_IAM_WARNING):
        response = client.http.get(f"/users/{created['id']}")
    # THEN the client lets it through, saying so (API Gateway on AWS would refuse it; the
    # emulator, like this client, checks nothing)
    assert response.status_code == 200
    # AND the request's hop record says it was not signed
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    [served] = [line for line in lines if line["message"] == HOP_MESSAGE]
    assert (served["peer"], served["signed"]) == ("GET /users/{user_id}", False)


def test_get_unknown_user_is_404(client: Client) -> None:
    # GIVEN no user with that id
    # WHEN it is fetched
    response = client.http.get("/users/does-not-exist")
    # THEN 404 with the JSON error body
    assert response.status_code == 404
    assert json_body(response)["error"]["code"] == "not_found"


def test_second_registration_of_an_email_in_any_case_is_409_naming_email(client: Client) -> None:
    # GIVEN a registered email
    post_json(client, "/users", ANN)
    # WHEN someone registers it again in another case
    response = post_json(client, "/users", {**ANN, "email": "ANN.LEE@example.COM"})
    # THEN 409 naming the email field
    assert response.status_code == 409
    assert json_body(response)["error"]["field"] == "email"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Ann"}, "email"),
        ({"email": "not-an-email", "name": "Ann"}, "email"),
        ({"email": "ann@example.com", "name": ""}, "name"),
        ({**ANN, "admin": True}, "admin"),
    ],
)
def test_invalid_body_is_400_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    # GIVEN a body breaking the CreateUser contract
    # WHEN it is posted
    response = post_json(client, "/users", body)
    # THEN 400 naming the field at fault
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == field


def test_body_that_is_not_json_is_400_naming_the_body(client: Client) -> None:
    # GIVEN a body that is not JSON
    # WHEN it is posted
    response = client.http.post(
        "/users", headers={"Content-Type": "application/json"}, body=b"{email:"
    )
    # THEN 400 naming the body
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == "body"


def test_correlation_id_is_echoed_or_started(client: Client) -> None:
    # GIVEN one request with a correlation id and one without
    # WHEN both are served
    given = post_json(client, "/users", ANN, headers={"X-Correlation-Id": "trace-42"})
    started = client.http.get("/users/nobody")
    # THEN the first answer carries the caller's id, the second a fresh one
    assert given.headers["X-Correlation-Id"] == "trace-42"
    assert started.headers["X-Correlation-Id"]
    assert started.headers["X-Correlation-Id"] != "trace-42"


def test_every_log_line_carries_the_correlation_id(users: LoadedService, client: Client) -> None:
    # GIVEN a request with a correlation id, and the service's log captured
    with captured_log(users) as log:
        # WHEN it is served (a success and a refusal both log)
        post_json(client, "/users", ANN, headers={"X-Correlation-Id": "trace-logs"})
        post_json(client, "/users", ANN, headers={"X-Correlation-Id": "trace-logs"})
    # THEN every JSON line names the service and that correlation id, the hop records too
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert len([line for line in lines if line["message"] != HOP_MESSAGE]) == 2
    assert {line["correlation_id"] for line in lines} == {"trace-logs"}
    assert {line["service"] for line in lines} == {"users"}


# --- the registry, without AWS -------------------------------------------------------


class MemoryEvents:
    """The users topic as a list of what was published."""

    def __init__(self) -> None:
        self.published: list[EventEnvelope] = []

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        assert group_id is None, "the users topic is a standard topic"
        self.published.append(envelope)
        return f"m-{len(self.published)}"


class MemoryUsers:
    def __init__(self, email_taken_error: type[Exception]) -> None:
        self.users: dict[str, User] = {}
        self.announcements: dict[str, EventEnvelope] = {}
        self._taken = email_taken_error

    def add(self, user: User, announcement: EventEnvelope) -> None:
        if any(existing.email == user.email for existing in self.users.values()):
            raise self._taken(user.email)
        self.users[user.id] = user
        self.announcements[user.id] = announcement

    def mark_announced(self, user_id: str) -> None:
        del self.announcements[user_id]

    def get(self, user_id: str) -> User | None:
        return self.users.get(user_id)


@pytest.fixture
def domain() -> Any:
    return load_service("users").module("chalicelib.domain")


def test_registry_normalises_email_and_name(domain: Any) -> None:
    # GIVEN a registry with a fixed clock and id
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    repository = MemoryUsers(domain.EmailAlreadyRegisteredError)
    registry = domain.UserRegistry(
        repository, MemoryEvents(), clock=lambda: now, new_id=lambda: "u-1"
    )
    # WHEN a user registers with blanks and capitals
    user = registry.register(CreateUser(email="  Bob@Example.ORG ", name="  Bob  "))
    # THEN the stored user is normalised
    assert user == User(id="u-1", email="bob@example.org", name="Bob", created_at=now)
    assert repository.users["u-1"] == user


def test_registry_refuses_a_taken_email_with_conflict(domain: Any) -> None:
    # GIVEN a registry with a user
    registry = domain.UserRegistry(MemoryUsers(domain.EmailAlreadyRegisteredError), MemoryEvents())
    registry.register(CreateUser(email="bob@example.org", name="Bob"))
    # WHEN the email registers again
    # THEN Conflict naming the email
    with pytest.raises(Conflict) as refused:
        registry.register(CreateUser(email="BOB@example.org", name="Robert"))
    assert refused.value.field == "email"


def test_registry_get_of_unknown_id_raises_not_found(domain: Any) -> None:
    # GIVEN an empty registry
    registry = domain.UserRegistry(MemoryUsers(domain.EmailAlreadyRegisteredError), MemoryEvents())
    # WHEN an id is looked up
    # THEN NotFound
    with pytest.raises(NotFound):
        registry.get("u-404")


def test_registry_announces_the_registered_user(domain: Any) -> None:
    # GIVEN a registry and its topic
    events = MemoryEvents()
    registry = domain.UserRegistry(MemoryUsers(domain.EmailAlreadyRegisteredError), events)
    # WHEN a user registers
    user = registry.register(CreateUser(email=" Cy@Example.org", name="Cy"))
    # THEN one user.created names the stored user, normalised email included
    [event] = events.published
    assert registry._repository.announcements == {}
    assert (event.type, event.version, event.source) == ("user.created", 1, "users")
    assert UserCreated.model_validate(event.data) == UserCreated(
        user_id=user.id, email="cy@example.org", name="Cy"
    )


def test_registry_announces_nothing_when_the_email_is_taken(domain: Any) -> None:
    # GIVEN a registered email
    events = MemoryEvents()
    registry = domain.UserRegistry(MemoryUsers(domain.EmailAlreadyRegisteredError), events)
    registry.register(CreateUser(email="dee@example.org", name="Dee"))
    # WHEN it registers again
    with pytest.raises(Conflict):
        registry.register(CreateUser(email="dee@example.org", name="Dee"))
    # THEN only the first registration was announced
    assert len(events.published) == 1


# --- user.created on the topic -------------------------------------------------------


def test_registering_publishes_user_created_with_the_correlation_id(
    client: Client, users_topic: TopicInbox
) -> None:
    # GIVEN a request carrying a correlation id
    # WHEN a user registers
    user = json_body(post_json(client, "/users", ANN, headers={"X-Correlation-Id": "trace-u1"}))
    # THEN one user.created reaches the topic: the envelope and its message attributes
    [message] = users_topic.messages()
    envelope = EventEnvelope.model_validate(message["body"])
    assert (envelope.type, envelope.version, envelope.source) == ("user.created", 1, "users")
    assert (envelope.correlation_id, envelope.causation_id) == ("trace-u1", None)
    assert envelope.data == {"user_id": user["id"], "email": user["email"], "name": user["name"]}
    attributes = dict(message["attributes"])
    assert parse_traceparent(attributes.pop("traceparent"))  # the trace context of its publish
    assert attributes == {
        "type": "user.created",
        "version": "1",
        "correlation_id": "trace-u1",
    }
    assert message["group_id"] is None


def test_a_refused_registration_publishes_nothing(client: Client, users_topic: TopicInbox) -> None:
    # GIVEN a registered user, their event read
    post_json(client, "/users", ANN)
    users_topic.messages()
    # WHEN the email registers again
    response = post_json(client, "/users", ANN)
    # THEN 409 and no event
    assert response.status_code == 409
    assert users_topic.messages() == []


def test_a_lost_announcement_still_registers_the_user_and_logs_the_event(
    users: LoadedService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a users topic that cannot be reached
    class DownTopic:
        def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
            raise ConnectionError("SNS endpoint unreachable")

    settings = load_settings(users.module("chalicelib.settings").UsersSettings)
    registry = users.module("chalicelib.wiring").build_registry(settings, publisher=DownTopic())
    monkeypatch.setattr(users.app_module, "registry", lambda: registry)
    # WHEN a user registers
    with captured_log(users) as log:
        response = post_json(users.client(), "/users", ANN)
    # THEN the registration stands (201, the user can be fetched)
    assert response.status_code == 201
    user = json_body(response)
    assert users.client().http.get(f"/users/{user['id']}").status_code == 200
    # AND the lost event is reported with its id, at error level
    lines = [json.loads(text) for text in log.getvalue().splitlines()]
    [line] = [line for line in lines if line["message"] != HOP_MESSAGE]
    assert line["level"] == "ERROR"
    assert line["user_id"] == user["id"]
    assert line["event_id"]
    # AND it stays stored with the user, to be published later
    stored = registry._repository.unpublished_announcement(user["id"])
    assert stored is not None
    assert stored.id == line["event_id"]


def test_a_published_announcement_is_no_longer_stored_with_the_user(
    users: LoadedService, client: Client, users_topic: TopicInbox
) -> None:
    # GIVEN a registration whose user.created was published
    user = json_body(post_json(client, "/users", ANN))
    assert len(users_topic.messages()) == 1
    # WHEN the user's stored announcement is read
    settings = load_settings(users.module("chalicelib.settings").UsersSettings)
    registry = users.module("chalicelib.wiring").build_registry(settings)
    # THEN the outbox is empty
    assert registry._repository.unpublished_announcement(user["id"]) is None
