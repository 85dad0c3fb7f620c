"""The gateway refuses requests for a host that is not this machine (DNS rebinding)."""

from __future__ import annotations

from typing import Any

import pytest

from lambdamesh_localstack.host_check import allowed_host, refuse_foreign_host


class Chain:
    def __init__(self) -> None:
        self.answer: tuple[int, Any] | None = None

    def respond(self, status_code: int, payload: Any) -> None:
        self.answer = (status_code, payload)


class Request:
    def __init__(self, host: str | None) -> None:
        self.headers = {} if host is None else {"Host": host}


class Context:
    def __init__(self, host: str | None) -> None:
        self.request = Request(host)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:4566",
        "127.3.4.5",
        "[::1]:4566",
        "[::ffff:127.0.0.1]:4566",
        "localhost",
        "Localhost:4566",
        "sqs.localhost.localstack.cloud:4566",
        "localhost.",
        None,
    ],
)
def test_names_of_this_machine_pass_untouched(host: str | None) -> None:
    # GIVEN a request for this machine  WHEN the handler sees it
    chain = Chain()
    refuse_foreign_host(chain, Context(host), None)
    # THEN it does nothing: the request goes on
    assert allowed_host(host)
    assert chain.answer is None


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "10.0.0.5:4566",
        "[fe80::1]:4566",
        "localstack.cloud",
    ],
)
def test_any_other_host_is_answered_403_naming_it(host: str) -> None:
    # GIVEN a request naming another host, as a DNS-rebinding page's would
    chain = Chain()
    # WHEN the handler sees it
    refuse_foreign_host(chain, Context(host), None)
    # THEN it answers 403 itself, naming the host and what to use instead
    assert chain.answer is not None
    status, body = chain.answer
    assert status == 403
    assert repr(host) in body["message"]
    assert "localhost" in body["message"]
