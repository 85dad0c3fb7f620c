"""The internal route on the deployed system: ``GET /users/{user_id}`` requires IAM authorisation
and orders signs its calls; ``POST /users`` stays public.

The emulator imports the route as ``AWS_IAM`` and checks a request to it as API Gateway does
(``lambdamesh_localstack/iam_authorization.py``): unsigned, it meets
``MISSING_AUTHENTICATION_TOKEN`` (which deploy's gateway responses make the ``404`` of a route that
does not exist, as on AWS); badly signed, or signed by a role without ``execute-api:Invoke`` on
it, a ``403``. Roles here are made in the emulator's IAM and assumed through its STS, as Lambda
assumes a function's.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from botocore.credentials import Credentials

from lambdamesh.deploy.template import LAMBDA_TRUST_POLICY
from lambdamesh_toolkit.aws.signing import SigV4Signer
from tests.conftest import RunningEmulator
from tests.e2e.conftest import DeployedSystem
from tests.e2e.lambda_support import wait_until
from tests.e2e.test_sync_journey import (
    CORRELATION_HEADER,
    MUG,
    call,
    log_lines_with,
    new_user,
    place_order,
)

LOOKUP = ("/users/{user_id}", "GET")
SIGN_UP = ("/users", "POST")
LOOKUP_ROUTE = "GET /users/{user_id}"
"""The users function's ``api`` hop names the route it served so."""
SIGV4_PREFIX = "AWS4-HMAC-SHA256"


def method_of(emulator: RunningEmulator, api_id: str, path: str, http_method: str) -> Any:
    """API Gateway's method ``http_method`` on the resource ``path`` of the REST API."""
    apigateway = emulator.client("apigateway")
    pages = apigateway.get_paginator("get_resources").paginate(restApiId=api_id)
    [resource] = [item for page in pages for item in page["items"] if item["path"] == path]
    return apigateway.get_method(
        restApiId=api_id, resourceId=resource["id"], httpMethod=http_method
    )


def lookup_hops(
    emulator: RunningEmulator, deployed: DeployedSystem, correlation_id: str
) -> list[dict[str, Any]] | None:
    """The users function's ``api`` hop records of lookups under ``correlation_id`` (or None)."""
    lines = log_lines_with(emulator, deployed["users"].functions["APIHandler"], correlation_id)
    hops = [
        line
        for line in lines
        if line.get("message") == "hop" and line.get("hop") == "api"
        if line.get("peer") == LOOKUP_ROUTE
    ]
    return hops or None


def test_sign_up_stays_public(deployed: DeployedSystem, emulator: RunningEmulator) -> None:
    # GIVEN the users REST API as deployed
    api_id = deployed["users"].outputs["RestAPIId"]
    # WHEN its sign-up method is read  THEN it requires no authorisation
    assert method_of(emulator, api_id, *SIGN_UP)["authorizationType"] == "NONE"


def test_the_user_lookup_requires_aws_iam(
    deployed: DeployedSystem, emulator: RunningEmulator
) -> None:
    # GIVEN the users REST API as deployed
    api_id = deployed["users"].outputs["RestAPIId"]
    # WHEN the lookup's method is read  THEN it requires IAM authorisation
    assert method_of(emulator, api_id, *LOOKUP)["authorizationType"] == "AWS_IAM"


def test_orders_signs_its_lookup_and_the_signature_reaches_users_unlogged(
    deployed: DeployedSystem, emulator: RunningEmulator
) -> None:
    # GIVEN a registered user and a correlation id chosen by the client
    user = new_user(deployed)
    correlation_id = f"signed-{uuid.uuid4()}"
    # WHEN an order is placed for them (orders looks the user up over HTTP)
    placed = place_order(deployed, user["id"], (MUG, 1), correlation_id=correlation_id)
    assert placed.status == 201, placed.body

    # THEN the users function served the lookup of a request that carried a SigV4 signature
    def served() -> list[dict[str, Any]] | None:
        return lookup_hops(emulator, deployed, correlation_id)

    hops = wait_until(served, timeout_s=30.0, interval_s=0.5)
    assert [hop["signed"] for hop in hops] == [True] * len(hops)
    assert {hop["status"] for hop in hops} == {"200"}
    # AND no line the users function wrote under that id holds the signature
    lines = log_lines_with(emulator, deployed["users"].functions["APIHandler"], correlation_id)
    assert all(SIGV4_PREFIX not in json.dumps(line) for line in lines)


def test_an_unsigned_lookup_is_answered_as_a_route_that_does_not_exist_and_never_served(
    deployed: DeployedSystem, emulator: RunningEmulator
) -> None:
    # GIVEN a registered user, and a client that does not sign
    user = new_user(deployed)
    correlation_id = f"unsigned-{uuid.uuid4()}"
    # WHEN it looks the user up
    answer = call(
        "GET",
        deployed["users"].url(f"users/{user['id']}"),
        headers={CORRELATION_HEADER: correlation_id},
    )
    # THEN API Gateway refuses it before the function: MISSING_AUTHENTICATION_TOKEN, as for a
    # route that does not exist (AWS answers both alike), in the services' error shape
    assert answer.status == 404, answer.body
    assert answer.body["error"]["code"] == "not_found"
    assert user["email"] not in json.dumps(answer.body)
    # AND the users function never saw it
    assert lookup_hops(emulator, deployed, correlation_id) is None


def assumed_credentials(emulator: RunningEmulator, grants: list[str]) -> Credentials:
    """Credentials of a new role allowed ``execute-api:Invoke`` on ``grants`` (none: nothing)."""
    iam = emulator.client("iam")
    name = f"lookup-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))[
        "Role"
    ]
    if grants:
        statement = {"Effect": "Allow", "Action": ["execute-api:Invoke"], "Resource": grants}
        iam.put_role_policy(
            RoleName=name,
            PolicyName="invoke",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )
    issued = emulator.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=name)
    credentials = issued["Credentials"]
    return Credentials(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )


def signed_lookup(url: str, credentials: Credentials, **changed: str) -> Any:
    """A lookup signed with ``credentials``, then with the ``changed`` headers replaced."""
    headers = {"Content-Type": "application/json", CORRELATION_HEADER: f"signed-{uuid.uuid4()}"}
    signed = SigV4Signer(region="us-east-1", credentials=credentials).sign(
        "GET", url, headers, None
    )
    return call("GET", url, headers={**signed, **changed})


def test_a_lookup_signed_by_a_role_allowed_to_invoke_it_is_answered(
    deployed: DeployedSystem, emulator: RunningEmulator
) -> None:
    # GIVEN a user, and a role allowed to invoke GET /users/* of the users API (orders' grant)
    user = new_user(deployed)
    api_id = deployed["users"].outputs["RestAPIId"]
    credentials = assumed_credentials(
        emulator, [f"arn:aws:execute-api:us-east-1:000000000000:{api_id}/*/GET/users/*"]
    )
    # WHEN a lookup signed with its credentials is sent  THEN the user is answered
    answer = signed_lookup(deployed["users"].url(f"users/{user['id']}"), credentials)
    assert answer.status == 200, answer.body
    assert answer.body["id"] == user["id"]


def test_a_lookup_by_a_role_without_the_grant_or_with_a_broken_signature_is_forbidden(
    deployed: DeployedSystem, emulator: RunningEmulator
) -> None:
    # GIVEN a user, a role allowed only another API's lookups, and one allowed this one's
    user = new_user(deployed)
    url = deployed["users"].url(f"users/{user['id']}")
    api_id = deployed["users"].outputs["RestAPIId"]
    elsewhere = assumed_credentials(
        emulator, ["arn:aws:execute-api:us-east-1:000000000000:other/*/GET/users/*"]
    )
    allowed = assumed_credentials(
        emulator, [f"arn:aws:execute-api:us-east-1:000000000000:{api_id}/*/GET/users/*"]
    )
    # WHEN the first signs a lookup, and the second signs one whose correlation id is then
    # changed, or whose signature is not SigV4
    answers = [
        signed_lookup(url, elsewhere),
        signed_lookup(url, allowed, **{CORRELATION_HEADER: "changed-after-signing"}),
        signed_lookup(url, allowed, Authorization="Bearer not-a-signature"),
    ]
    # THEN each is refused with 403 in the services' error shape, the user not given away
    for answer in answers:
        assert answer.status == 403, answer.body
        assert answer.body["error"]["code"] == "forbidden"
        assert user["email"] not in json.dumps(answer.body)
