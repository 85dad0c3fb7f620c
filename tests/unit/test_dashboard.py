"""The dashboard: its page and JSON routes, on loopback only, and the data it reads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import urllib3
from moto import mock_aws

from lambdamesh.dashboard.data import Deployment, order_history, recent_orders, system_status
from lambdamesh.dashboard.server import DashboardServer, NotLoopbackError, Providers

REGION = "us-east-1"


def _refuse(_: Any = None) -> Any:
    raise RuntimeError("the service is down")


def _unknown(order_id: str) -> Any:
    raise LookupError(f"no order {order_id}")


@pytest.fixture
def dashboard() -> Iterator[DashboardServer]:
    providers = Providers(
        status=lambda: {"dead_letters": 1},
        orders=lambda limit: [{"id": f"o-{n}"} for n in range(limit)],
        history=_unknown,
        trace=lambda cid: {"correlation_id": cid, "roots": []},
        topology=_refuse,
    )
    server = DashboardServer("127.0.0.1", 0, providers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _get(server: DashboardServer, path: str, **headers: str) -> urllib3.BaseHTTPResponse:
    return urllib3.request("GET", server.url.rstrip("/") + path, headers=headers, retries=False)


def test_the_page_and_its_script_are_served_with_a_policy_forbidding_inline_scripts(
    dashboard: DashboardServer,
) -> None:
    # GIVEN the dashboard  WHEN the page and its script are asked for
    page, script = _get(dashboard, "/"), _get(dashboard, "/app.js")
    # THEN both are there, the page loads the script from its own origin only
    assert page.status == 200
    assert b'<script src="/app.js">' in page.data
    assert script.status == 200
    assert script.headers["Content-Type"] == "text/javascript"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"].split("style-src")[0]


def test_json_routes_answer_from_their_providers(dashboard: DashboardServer) -> None:
    # GIVEN the dashboard  WHEN its JSON routes are asked
    status = _get(dashboard, "/api/status")
    orders = _get(dashboard, "/api/orders?limit=3")
    trace = _get(dashboard, "/api/trace/try%201")
    # THEN each is its provider's answer (the limit passed, the id decoded)
    assert json.loads(status.data) == {"dead_letters": 1}
    assert [order["id"] for order in json.loads(orders.data)] == ["o-0", "o-1", "o-2"]
    assert json.loads(trace.data)["correlation_id"] == "try 1"


def test_an_order_limit_out_of_range_is_brought_into_range(dashboard: DashboardServer) -> None:
    # GIVEN / WHEN too many orders, or not a number, are asked for
    many, garbled = (
        _get(dashboard, "/api/orders?limit=100000"),
        _get(dashboard, "/api/orders?limit=x"),
    )
    # THEN at most 100 come back, and the default 20 for a limit that is not a number
    assert len(json.loads(many.data)) == 100
    assert len(json.loads(garbled.data)) == 20


def test_what_a_provider_cannot_find_is_404_and_what_fails_is_502_with_the_reason(
    dashboard: DashboardServer,
) -> None:
    # GIVEN providers that do not know the order, or fail
    # WHEN they are asked
    missing, failed = _get(dashboard, "/api/orders/o-9/events"), _get(dashboard, "/api/topology")
    unknown = _get(dashboard, "/nowhere")
    # THEN the page is told why, as JSON
    assert (missing.status, json.loads(missing.data)) == (404, {"error": "no order o-9"})
    assert failed.status == 502
    assert "the service is down" in json.loads(failed.data)["error"]
    assert unknown.status == 404


def test_a_request_for_a_host_that_is_not_this_machine_is_refused(
    dashboard: DashboardServer,
) -> None:
    # GIVEN a request naming another host (DNS rebinding)
    answer = _get(dashboard, "/api/status", Host="evil.example.com")
    # THEN it is refused before any data is read
    assert answer.status == 403


def test_the_dashboard_only_reads(dashboard: DashboardServer) -> None:
    # GIVEN / WHEN a POST
    answer = urllib3.request("POST", dashboard.url + "api/status", retries=False)
    # THEN it is refused
    assert answer.status == 405


def test_the_dashboard_refuses_to_listen_beyond_loopback() -> None:
    # GIVEN / WHEN the dashboard is asked to listen on every address
    # THEN it refuses, saying where it can listen
    with pytest.raises(NotLoopbackError, match="loopback only"):
        DashboardServer("0.0.0.0", 0, Providers(_refuse, _refuse, _refuse, _refuse, _refuse))


@mock_aws
def test_system_status_shows_services_queues_and_counts_dead_letters() -> None:
    # GIVEN a topic, a queue and its DLQ holding one message, and a recorded service
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    sns.create_topic(Name="lambdamesh-orders")
    sqs.create_queue(QueueName="lambdamesh-payments-orders")
    dlq = sqs.create_queue(QueueName="lambdamesh-payments-orders-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody="poison")
    deployment = Deployment({"orders": {"api_url": "http://x/", "functions": {"APIHandler": "f"}}})
    # WHEN the status is read
    status = system_status(deployment, sns, sqs, "lambdamesh")
    # THEN it has the service, the topic, the queue, and the DLQ's message counted
    assert status["services"] == {
        "orders": {"api_url": "http://x/", "functions": {"APIHandler": "f"}}
    }
    assert status["messaging"]["topics"] == ["lambdamesh-orders"]
    dead = {queue["name"]: queue for queue in status["messaging"]["dead_letter_queues"]}
    assert dead["lambdamesh-payments-orders-dlq"]["waiting"] == 1
    assert status["dead_letters"] == 1


@mock_aws
def test_recent_orders_are_the_newest_first() -> None:
    # GIVEN a read model holding three orders placed at different times
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for order_id, placed in (("o-1", "2026-01-01"), ("o-3", "2026-03-01"), ("o-2", "2026-02-01")):
        dynamodb.put_item(
            TableName="orders",
            Item={
                "id": {"S": order_id},
                "user_id": {"S": "u-1"},
                "status": {"S": "placed"},
                "placed_at": {"S": f"{placed}T00:00:00.000000Z#{order_id}"},
                "total_cents": {"N": "1250"},
                "currency": {"S": "EUR"},
            },
        )
    # WHEN the two newest are read
    orders = recent_orders(dynamodb, "orders", 2)
    # THEN they come newest first, with their fields
    assert [order["id"] for order in orders] == ["o-3", "o-2"]
    assert orders[0]["total_cents"] == 1250
    assert orders[0]["status"] == "placed"


class _OrdersApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        known = self.path == "/api/orders/o-1/events"
        body = json.dumps({"events": [{"type": "order.placed"}]} if known else {}).encode()
        self.send_response(200 if known else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_orders_history_is_asked_of_the_orders_service() -> None:
    # GIVEN an orders API that knows order o-1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OrdersApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/api/"
    try:
        http = urllib3.PoolManager()
        # WHEN the history of o-1, then of an unknown order, is asked
        history = order_history(http, base, "o-1")
        # THEN the first is the service's answer, the second a LookupError naming the status
        assert history == {"events": [{"type": "order.placed"}]}
        with pytest.raises(LookupError, match="404"):
            order_history(http, base, "o-404")
    finally:
        server.shutdown()
        server.server_close()
