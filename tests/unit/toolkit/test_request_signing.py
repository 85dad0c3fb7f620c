"""Signed calls to a route that requires IAM authorisation (SigV4), against a local HTTP server.

Each signature is checked the way API Gateway checks it: recomputed with botocore from the
request the server received (its method, path, body and the headers the signature names), with
the same credentials, and compared.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

import pytest
from botocore import auth as botocore_auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from lambdamesh_toolkit.aws.signing import EXECUTE_API, SigV4Signer
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.http_client import ServiceHttpClient
from lambdamesh_toolkit.resilience import CircuitBreaker, RetryPolicy
from lambdamesh_toolkit.trace_context import parse_traceparent
from tests.support.circuit_breaker import InMemoryCircuitStore
from tests.unit.toolkit.conftest import ReceivedRequest, ScriptedAnswer, ScriptedServer

REGION = "eu-west-1"
KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-1"
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
T0 = dt.datetime(2026, 12, 3, 14, 59, 58, tzinfo=dt.UTC)


@pytest.fixture
def signing_clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The times botocore signs at, one per signature: T0, then 2 s later each time."""
    used: list[dt.datetime] = []

    def now() -> dt.datetime:
        used.append(T0 + dt.timedelta(seconds=2 * len(used)))
        return used[-1]

    monkeypatch.setattr(botocore_auth, "get_current_datetime", now)
    return used


def signed_client(url: str, credentials: Credentials, *, max_attempts: int) -> ServiceHttpClient:
    name = f"users-api-{uuid.uuid4().hex[:6]}"
    return ServiceHttpClient(
        url,
        name,
        read_timeout_s=30.0,  # beyond any stall of a busy machine: not a test of timeouts
        retry=RetryPolicy(max_attempts=max_attempts, sleep=lambda _: None),
        breaker=CircuitBreaker(name, InMemoryCircuitStore(), failure_threshold=100),
        signer=SigV4Signer(region=REGION, credentials=credentials),
    )


def recomputed_signature(
    server: ScriptedServer, received: ReceivedRequest, credentials: Credentials, signed: str
) -> str:
    """The signature of the request as received, over the headers its signature names."""
    names = set(signed.split(";"))
    headers = {name: value for name, value in received.headers.items() if name.lower() in names}
    assert {name.lower() for name in headers} == names, "a signed header did not arrive"
    origin = server.url.removesuffix("/dev")
    request = AWSRequest(
        method=received.method, url=origin + received.path, headers=headers, data=received.body
    )
    request.context["timestamp"] = received.headers["X-Amz-Date"]
    sigv4 = SigV4Auth(credentials, EXECUTE_API, REGION)
    return sigv4.signature(sigv4.string_to_sign(request, sigv4.canonical_request(request)), request)


@pytest.mark.parametrize(
    ("token", "signed_token"), [(TOKEN, True), (None, False)], ids=["session", "long-term"]
)
def test_every_attempt_of_a_retried_call_carries_a_valid_signature_of_its_own(
    http_server: ScriptedServer,
    signing_clock: list[dt.datetime],
    token: str | None,
    signed_token: bool,
) -> None:
    # GIVEN a dependency that answers 503 once, then 200, and a client signing with credentials
    # (temporary ones, with a session token, as a Lambda role's; or a long-term key)
    http_server.answer(ScriptedAnswer(503), ScriptedAnswer(200, {"id": "u-1"}))
    credentials = Credentials(KEY, SECRET, token)
    client = signed_client(http_server.url, credentials, max_attempts=2)
    use_correlation_id("corr-signed-1")
    # WHEN it GETs a user (retried once)
    assert client.get("/users/u-1").status == 200
    # THEN each attempt was signed at its own time, for execute-api in the region, with the key
    first, second = http_server.received
    dates = [received.headers["X-Amz-Date"] for received in (first, second)]
    assert dates == [moment.strftime("%Y%m%dT%H%M%SZ") for moment in signing_clock]
    for received in (first, second):
        found = AUTHORIZATION.fullmatch(received.headers["Authorization"])
        assert found is not None, received.headers["Authorization"]
        assert (found["key"], found["region"], found["service"]) == (KEY, REGION, EXECUTE_API)
        assert found["date"] == received.headers["X-Amz-Date"][:8]
        # AND the signature covers the host, the date, the correlation id and the token (when
        # there is one), not the traceparent (a hop on the way may rewrite it)
        signed = found["signed"].split(";")
        assert {"host", "x-amz-date", "x-correlation-id"} <= set(signed)
        assert ("x-amz-security-token" in signed) is signed_token
        assert received.headers.get("X-Amz-Security-Token") == token
        assert "traceparent" not in signed
        # AND recomputed from what arrived, it is the signature that was sent
        assert found["signature"] == recomputed_signature(
            http_server, received, credentials, found["signed"]
        )
    # AND the retry carried its own span, and so its own signature
    assert parse_traceparent(first.headers["traceparent"]) != parse_traceparent(
        second.headers["traceparent"]
    )
    assert first.headers["Authorization"] != second.headers["Authorization"]


def test_a_signed_post_signs_its_body(
    http_server: ScriptedServer, signing_clock: list[dt.datetime]
) -> None:
    # GIVEN a client signing its requests
    credentials = Credentials(KEY, SECRET, TOKEN)
    client = signed_client(http_server.url, credentials, max_attempts=1)
    # WHEN it POSTs a JSON body
    client.post("/users", {"email": "ann@example.com", "name": "Ann"})
    # THEN the signature, recomputed over the body that arrived, is the one sent
    [received] = http_server.received
    found = AUTHORIZATION.fullmatch(received.headers["Authorization"])
    assert found is not None
    assert "content-type" in found["signed"].split(";")
    assert found["signature"] == recomputed_signature(
        http_server, received, credentials, found["signed"]
    )
    # AND another body would not carry that signature
    received.body = b'{"email":"eve@example.com","name":"Eve"}'
    assert found["signature"] != recomputed_signature(
        http_server, received, credentials, found["signed"]
    )


def test_an_unsigned_client_sends_no_signature(http_server: ScriptedServer) -> None:
    # GIVEN a client without a signer (every public route's caller)
    name = f"users-api-{uuid.uuid4().hex[:6]}"
    client = ServiceHttpClient(
        http_server.url,
        name,
        read_timeout_s=30.0,  # beyond any stall of a busy machine: not a test of timeouts
        breaker=CircuitBreaker(name, InMemoryCircuitStore()),
    )
    # WHEN it GETs  THEN no signature header is sent
    client.get("/users/u-1")
    [received] = http_server.received
    assert not {"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} & set(received.headers)


def test_by_default_the_signer_signs_with_the_environments_credentials_and_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a function's environment: its role's temporary credentials and its region
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAROLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "role-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "role-token")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    # WHEN a signer made without arguments signs a request
    signer = SigV4Signer()
    headers = signer.sign("GET", "https://abc.execute-api.example/api/users/u-1", {}, None)
    # THEN it used those credentials, token included, for execute-api in that region
    found = AUTHORIZATION.fullmatch(headers["Authorization"])
    assert found is not None
    assert (found["key"], found["region"], found["service"]) == (
        "ASIAROLEKEY",
        "ap-southeast-2",
        EXECUTE_API,
    )
    assert headers["X-Amz-Security-Token"] == "role-token"


def test_credentials_refreshed_by_botocore_sign_the_next_request() -> None:
    # GIVEN refreshable credentials valid for an hour, and a clock botocore reads them by
    now = [dt.datetime.now(dt.UTC)]
    issued = iter(["ASIASECOND"])

    def refresh() -> dict[str, str]:
        later = now[0] + dt.timedelta(hours=1)
        return {
            "access_key": next(issued),
            "secret_key": "s2",
            "token": "t2",
            "expiry_time": later.isoformat(),
        }

    credentials = RefreshableCredentials(
        "ASIAFIRST", "s1", "t1", now[0] + dt.timedelta(hours=1), refresh, "test", lambda: now[0]
    )
    signer = SigV4Signer(region=REGION, credentials=credentials)
    url = "https://abc.execute-api.example/api/users/u-1"
    first = signer.sign("GET", url, {}, None)
    # WHEN the credentials near their expiry and the next request is signed
    now[0] += dt.timedelta(minutes=55)
    second = signer.sign("GET", url, {}, None)
    # THEN it is signed with the refreshed ones: nothing of the first signature was kept
    assert "Credential=ASIAFIRST/" in first["Authorization"]
    assert first["X-Amz-Security-Token"] == "t1"
    assert "Credential=ASIASECOND/" in second["Authorization"]
    assert second["X-Amz-Security-Token"] == "t2"


def test_a_signer_needs_a_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN an environment that names no region
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    # WHEN a signer is made without one  THEN it says what is missing
    with pytest.raises(ValueError, match="no region"):
        SigV4Signer(credentials=Credentials(KEY, SECRET))
