"""The AWS access layer: clients from named profiles, DynamoDB's refusals read once."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.dynamodb import (
    cancellation_reasons,
    condition_failed,
    failed_items,
)


@pytest.fixture(autouse=True)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.mark.parametrize("profile", [clients.REQUEST, clients.CONSUMER, clients.CLI])
def test_a_client_waits_and_retries_as_its_profile_says(profile: clients.ClientProfile) -> None:
    # GIVEN a named profile
    # WHEN a client is built with it
    client: Any = clients.client("sqs", profile)
    # THEN its timeouts and retries are the profile's, in botocore's standard mode
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (
        profile.connect_timeout_s,
        profile.read_timeout_s,
    )
    assert config.retries == {"mode": "standard", "total_max_attempts": profile.max_attempts}


def test_the_profiles_are_ordered_by_patience() -> None:
    # GIVEN the three profiles
    # WHEN their read timeouts are compared
    # THEN a request waits least and the command line most
    assert clients.REQUEST.read_timeout_s < clients.CONSUMER.read_timeout_s
    assert clients.CONSUMER.read_timeout_s < clients.CLI.read_timeout_s
    assert clients.CLI.max_attempts >= clients.REQUEST.max_attempts


def test_a_caller_narrows_a_profile_to_its_own_deadline() -> None:
    # GIVEN the request profile
    # WHEN an RPC caller narrows it to its call's timeout without retries
    narrowed = clients.REQUEST.but(read_timeout_s=0.5, max_attempts=1)
    # THEN only what it named changed
    assert (narrowed.name, narrowed.connect_timeout_s) == ("request", 1.0)
    assert (narrowed.read_timeout_s, narrowed.max_attempts) == (0.5, 1)


@pytest.mark.parametrize(
    "values", [{"read_timeout_s": 0.0}, {"connect_timeout_s": -1.0}, {"max_attempts": 0}]
)
def test_a_profile_refuses_a_timeout_or_attempts_that_cannot_work(values: Any) -> None:
    # GIVEN a profile WHEN narrowed to a value that cannot work THEN it is refused
    with pytest.raises(ValueError, match="request"):
        clients.REQUEST.but(**values)


def test_the_endpoint_comes_from_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the environment pointing at an emulator
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4599")
    # WHEN a client is built
    client: Any = clients.client("dynamodb")
    # THEN it talks to that endpoint, in the environment's region
    assert client.meta.endpoint_url == "http://127.0.0.1:4599"
    assert client.meta.region_name == "eu-west-1"


def test_an_explicit_endpoint_and_region_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the environment naming another endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4599")
    # WHEN the CLI builds a client for a given emulator and region
    client: Any = clients.client(
        "sqs", clients.CLI, endpoint_url="http://127.0.0.1:4600", region="us-east-1"
    )
    # THEN the given ones are used
    assert client.meta.endpoint_url == "http://127.0.0.1:4600"
    assert client.meta.region_name == "us-east-1"


def test_static_credentials_never_take_the_callers_own() -> None:
    # GIVEN credentials in the environment
    # WHEN a client is built with the emulator's fixed credentials
    client: Any = clients.client(
        "sqs", clients.CLI, credentials=clients.StaticCredentials("test", "test")
    )
    # THEN it signs with those
    assert client._request_signer._credentials.access_key == "test"


def test_clients_with_the_same_static_credentials_share_one_session_and_its_models() -> None:
    # GIVEN two clients of one service and another service's, with the emulator's key pair,
    # and one with another key pair
    test_keys = clients.StaticCredentials("test", "test")
    first: Any = clients.client("sqs", clients.CLI, region="us-east-1", credentials=test_keys)
    second: Any = clients.client("sqs", clients.CLI, region="us-east-1", credentials=test_keys)
    other_service: Any = clients.client(
        "sns", clients.CLI, region="us-east-1", credentials=test_keys
    )
    other_keys: Any = clients.client(
        "sqs", clients.CLI, region="us-east-1", credentials=clients.StaticCredentials("a", "b")
    )
    # THEN the clients are distinct but the key pair's loaded service models are shared
    assert first is not second
    assert first._loader is second._loader is other_service._loader
    assert other_keys._loader is not first._loader
    assert other_keys._request_signer._credentials.access_key == "a"


def test_a_process_shares_one_client_per_service_and_profile() -> None:
    # GIVEN nothing built yet
    # WHEN the same client is asked for twice, and another profile once
    first = clients.dynamodb(clients.REQUEST)
    again = clients.dynamodb(clients.REQUEST)
    consumer = clients.dynamodb(clients.CONSUMER)
    # THEN the first is reused and the other profile has its own
    assert first is again
    assert consumer is not first


def refusal(code: str, reasons: list[dict[str, Any]] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "refused"}}
    if reasons is not None:
        response["CancellationReasons"] = reasons
    return ClientError(response, "Write")  # type: ignore[arg-type]


def test_a_failed_condition_is_recognised_on_a_write_and_in_a_transaction() -> None:
    # GIVEN a refused conditional write and a transaction cancelled by its second item
    write = refusal("ConditionalCheckFailedException")
    transaction = refusal(
        "TransactionCanceledException",
        [{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Item": {"stock": {"N": "1"}}}],
    )
    # WHEN they are read
    # THEN both are failed conditions, and the transaction names its item with its old image
    assert condition_failed(write)
    assert condition_failed(transaction)
    assert failed_items(transaction) == [1]
    reasons = cancellation_reasons(transaction)
    assert reasons is not None
    assert reasons[1].item == {"stock": {"N": "1"}}
    assert not reasons[0].condition_failed


def test_other_refusals_are_not_failed_conditions() -> None:
    # GIVEN a transaction cancelled by a conflict, and a throttled write
    conflict = refusal("TransactionCanceledException", [{"Code": "TransactionConflict"}])
    throttled = refusal("ProvisionedThroughputExceededException")
    # WHEN they are read
    # THEN neither is a failed condition; only the transaction has reasons
    assert not condition_failed(conflict)
    assert not condition_failed(throttled)
    assert cancellation_reasons(throttled) is None
    assert failed_items(conflict) == []
