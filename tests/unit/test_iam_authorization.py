"""IAM authorisation in the emulator: an OpenAPI import keeps it (the methods a sigv4 scheme
guards become AWS_IAM), and a request to such a method is checked as API Gateway checks it
(signed with SigV4 by a role allowed to invoke it; moto's IAM and STS, in process)."""

from __future__ import annotations

import doctest
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials
from moto import mock_aws

from lambdamesh.deploy.template import LAMBDA_TRUST_POLICY
from lambdamesh_localstack import iam_authorization
from lambdamesh_localstack.iam_authorization import (
    RefusalError,
    authorize,
    iam_methods,
    importing_iam_authorization,
    signature_matches,
)
from lambdamesh_localstack.permission_audit import DECISIONS
from lambdamesh_toolkit.aws.signing import SigV4Signer

SIGV4 = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "x-amazon-apigateway-authtype": "awsSigv4",
}
CUSTOM = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "x-amazon-apigateway-authtype": "custom",
    "x-amazon-apigateway-authorizer": {"type": "token"},
}


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run  THEN each gives what it shows
    assert doctest.testmod(iam_authorization).failed == 0


def test_an_openapi_3_document_s_default_security_applies_unless_a_method_says_otherwise() -> None:
    # GIVEN an OpenAPI 3 document requiring sigv4 by default, one method opting out (empty
    # security) and one using a custom authorizer
    document: dict[str, Any] = {
        "openapi": "3.0.1",
        "components": {"securitySchemes": {"iam": SIGV4, "token": CUSTOM}},
        "security": [{"iam": []}],
        "paths": {
            "/internal": {"get": {}, "post": {"security": [{"token": []}]}},
            "/public": {"get": {"security": []}},
            "/other": {"parameters": [], "put": {}},
        },
    }
    # WHEN its IAM methods are found  THEN they are the ones the default covers
    assert iam_methods(document) == {("/internal", "GET"), ("/other", "PUT")}


@dataclass
class _Method:
    authorization_type: str = "NONE"


@dataclass
class _Resource:
    path: str
    resource_methods: dict[str, _Method] = field(default_factory=dict)

    def get_path(self) -> str:
        return self.path


@dataclass
class _RestApi:
    resources: dict[str, _Resource]
    id: str = "api"


def test_the_import_makes_the_guarded_methods_aws_iam_and_leaves_the_others() -> None:
    # GIVEN an import that creates the document's methods as LocalStack's does (all NONE, a
    # custom-authorised one CUSTOM)
    document = {
        "swagger": "2.0",
        "securityDefinitions": {"sigv4": SIGV4},
        "paths": {
            "/users": {"post": {}},
            "/users/{user_id}": {"get": {"security": [{"sigv4": []}]}},
        },
    }
    api = _RestApi(
        {
            "a": _Resource("/users", {"POST": _Method()}),
            "b": _Resource("/users/{user_id}", {"GET": _Method(), "OPTIONS": _Method()}),
        }
    )

    def import_api(rest_api: Any, **_: Any) -> tuple[Any, list[str]]:
        return rest_api, []

    # WHEN the wrapped import runs
    result = importing_iam_authorization(import_api)(
        api, context=None, open_api_spec=document, mode="overwrite"
    )
    # THEN the lookup requires IAM, sign-up and the preflight stay public, and the import's
    # result is returned as it was
    assert result == (api, [])
    assert api.resources["b"].resource_methods["GET"].authorization_type == "AWS_IAM"
    assert api.resources["b"].resource_methods["OPTIONS"].authorization_type == "NONE"
    assert api.resources["a"].resource_methods["POST"].authorization_type == "NONE"


# --- the check of a request to an AWS_IAM method --------------------------------------------

ACCOUNT = "123456789012"
REGION = "us-east-1"
URL = "http://127.0.0.1:4566/_aws/execute-api/abc123/api/users/u-1?view=full"
LOOKUP_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/api/GET/users/u-1"


@pytest.fixture
def caller() -> Iterator[Credentials]:
    """Credentials of a role allowed to invoke ``GET /users/*`` of API abc123, as a function's."""
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        trust = json.dumps(LAMBDA_TRUST_POLICY)
        role = iam.create_role(RoleName="OrdersRole", AssumeRolePolicyDocument=trust)
        grant = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["execute-api:Invoke"],
                    "Resource": [f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*/GET/users/*"],
                }
            ],
        }
        iam.put_role_policy(
            RoleName="OrdersRole", PolicyName="lookup", PolicyDocument=json.dumps(grant)
        )
        issued = boto3.client("sts", region_name=REGION).assume_role(
            RoleArn=role["Role"]["Arn"], RoleSessionName="orders-api"
        )["Credentials"]
        yield Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])


def _signed(credentials: Credentials, url: str = URL, body: bytes | None = None) -> dict[str, str]:
    headers = {"Host": "127.0.0.1:4566", "X-Correlation-Id": "c-1"}
    signer = SigV4Signer(region=REGION, credentials=credentials)
    return signer.sign("GET", url, headers, body)


def _authorize(headers: dict[str, str], *, resource: str = LOOKUP_ARN, body: bytes = b"") -> None:
    authorize(method="GET", url=URL, headers=headers, body=body, resource=resource, account=ACCOUNT)


def test_a_request_signed_by_a_role_allowed_to_invoke_the_method_passes(
    caller: Credentials,
) -> None:
    # GIVEN a lookup signed by the orders role, as orders' users client signs it
    headers = _signed(caller)
    # WHEN API Gateway checks it  THEN it passes, and the signature is the one the secret gives
    _authorize(headers)
    assert signature_matches(
        "GET",
        URL,
        headers,
        b"",
        secret_key=caller.secret_key,
        session_token=caller.token,
    )


@pytest.mark.parametrize(
    ("change", "response_type"),
    [
        (
            lambda h: {k: v for k, v in h.items() if k != "Authorization"},
            "MISSING_AUTHENTICATION_TOKEN",
        ),
        (lambda h: {**h, "Authorization": "Bearer a-token"}, "INVALID_SIGNATURE"),
        (lambda h: {**h, "X-Correlation-Id": "c-2"}, "INVALID_SIGNATURE"),
        (
            lambda h: {**h, "Authorization": h["Authorization"].replace("execute-api", "lambda")},
            "INVALID_SIGNATURE",
        ),
    ],
    ids=["unsigned", "not SigV4", "a signed header changed", "signed for another service"],
)
def test_a_request_without_a_valid_signature_is_refused_as_api_gateway_refuses_it(
    caller: Credentials, change: Callable[[dict[str, str]], dict[str, str]], response_type: str
) -> None:
    # GIVEN a lookup signed by the orders role, then changed
    headers = change(_signed(caller))
    # WHEN API Gateway checks it  THEN it is refused with the response type AWS gives
    with pytest.raises(RefusalError) as refused:
        _authorize(headers)
    assert refused.value.response_type == response_type


def test_a_signer_whose_role_may_not_invoke_the_method_is_denied_and_the_decision_recorded(
    caller: Credentials,
) -> None:
    # GIVEN a correctly signed request for a method the role has no grant on
    DECISIONS.reset()
    other = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/api/DELETE/users/u-1"
    # WHEN API Gateway checks it  THEN access is denied, naming the session and the resource
    with pytest.raises(RefusalError, match=r"assumed-role/OrdersRole/orders-api is not author"):
        _authorize(_signed(caller), resource=other)
    # AND the audit recorded it, with the allowed lookup after it
    _authorize(_signed(caller))
    assert [(d["resource"], d["allowed"]) for d in DECISIONS.snapshot()] == [
        (other, False),
        (LOOKUP_ARN, True),
    ]
    DECISIONS.reset()


def test_a_request_signed_with_the_accounts_own_keys_is_let_through(caller: Credentials) -> None:
    # GIVEN a request signed with LocalStack's account keys (no assumed role: no secret known)
    headers = _signed(Credentials("test", "test"))
    # WHEN API Gateway checks it  THEN it passes
    _authorize(headers)
