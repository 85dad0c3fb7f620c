"""Names and email addresses stay out of the logs, the failure records and the CLI's output.

A journey signs a user up, is refused a second sign-up with the same address, places an order
(its mail is sent), and a welcome mail fails for good: a ``user.created`` carrying the same
name and address whose data breaks its contract, dead-lettered with its reason. Then every log
group of the deployed functions and ``lambdamesh dlq show`` are searched for that name and
address; ``--show-personal-data`` shows them, which proves they were there to be found.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3

from tests.conftest import RunningEmulator
from tests.e2e.cli_support import run_lambdamesh
from tests.e2e.conftest import DeployedSystem

NOTIFICATIONS_USERS_DLQ = "lambdamesh-notifications-users-dlq"
_http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=30.0))


def _call(method: str, url: str, body: object) -> tuple[int, Any]:
    response = _http.request(
        method,
        url,
        body=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return response.status, json.loads(response.data)


def _dlq_show(emulator: RunningEmulator, *extra: str) -> str:
    return run_lambdamesh(emulator, "dlq", "show", NOTIFICATIONS_USERS_DLQ, "--max", "100", *extra)


def _log_lines_with(emulator: RunningEmulator, deployed: DeployedSystem, text: str) -> list[str]:
    logs = emulator.client("logs")
    found = []
    for service in deployed.services.values():
        for name in service.functions.values():
            try:
                pages = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=f"/aws/lambda/{name}"
                )
                found += [
                    f"{name}: {event['message'][:200]}"
                    for page in pages
                    for event in page["events"]
                    if text.lower() in event["message"].lower()
                ]
            except logs.exceptions.ResourceNotFoundException:
                continue
    return found


@pytest.mark.timeout(600)
def test_a_journeys_names_and_addresses_appear_in_no_log_record_or_cli_output(
    emulator: RunningEmulator, deployed: DeployedSystem
) -> None:
    # GIVEN a name and an address used nowhere else
    tag = uuid.uuid4().hex[:10]
    email = f"grace.{tag}@example.com"
    name = f"Grace Hopper{tag}"
    # WHEN the user signs up, signs up again (refused), and places an order
    status, user = _call("POST", deployed["users"].url("users"), {"email": email, "name": name})
    assert status == 201, user
    status, refused = _call("POST", deployed["users"].url("users"), {"email": email, "name": name})
    assert status == 409, refused
    _, listing = _call("GET", deployed["catalog"].url("products?limit=10"), None)
    product = next(p for p in listing["products"] if p["stock"] > 0)
    status, order = _call(
        "POST",
        deployed["orders"].url("orders"),
        {"user_id": user["id"], "items": [{"product_id": product["id"], "quantity": 1}]},
    )
    assert status == 201, order
    # AND a welcome mail fails for good: user.created with that name and address, data refused
    poison = {  # data first: dlq show previews the start of a body
        "data": {"user_id": f"u-{tag}", "email": email, "name": name * 20},
        "id": str(uuid.uuid4()),
        "type": "user.created",
        "version": 1,
        "source": "users",
        "time": datetime.now(UTC).isoformat(),
        "correlation_id": f"privacy-{tag}",
    }
    emulator.client("sns").publish(
        TopicArn=deployed.messaging_outputs["UsersTopicArn"],
        Message=json.dumps(poison),
        MessageAttributes={"type": {"DataType": "String", "StringValue": "user.created"}},
    )
    deadline = time.monotonic() + 120
    revealed = ""
    while time.monotonic() < deadline and email not in revealed:
        time.sleep(2)
        revealed = _dlq_show(emulator, "--show-personal-data")
    decided: dict[str, Any] = {"status": "placed"}
    while time.monotonic() < deadline and decided["status"] == "placed":
        _, decided = _call("GET", deployed["orders"].url(f"orders/{order['id']}"), None)
        time.sleep(1)
    time.sleep(3)  # the functions' last log lines reach CloudWatch Logs

    # THEN the failed mail's letter, asked for with --show-personal-data, does hold them
    assert email in revealed, "the poison never reached its DLQ"
    assert name in revealed
    # AND without the flag dlq show masks both
    shown = _dlq_show(emulator)
    assert email not in shown
    assert name not in shown
    assert "g***@example.com" in shown
    # AND no log line of any function carries the address or the name
    assert _log_lines_with(emulator, deployed, email) == []
    assert _log_lines_with(emulator, deployed, name) == []
    # AND the journey did reach every service that saw them: the order was decided and mailed
    assert decided["status"] in ("confirmed", "cancelled")
