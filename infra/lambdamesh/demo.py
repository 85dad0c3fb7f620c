"""``lambdamesh demo``: the whole system on the embedded LocalStack, an order journey traced.

Starts (or finds) the emulator, deploys every service through the same CloudFormation path AWS
takes, then plays the journey a client would — sign up, browse, order, order again with the same
idempotency key, review — over real HTTP through API Gateway, every request under one correlation
id. The order then runs through the asynchronous saga (SNS → SQS fan-out to payments and
inventory, outcomes back to orders, mail through SES); a second order is declined and compensated;
a poison event goes to a dead-letter queue and is redriven once its cause is fixed. Last, it reads
the hop records the functions logged to CloudWatch Logs under the journey's correlation id and
draws the trace of each order as a tree (:mod:`lambdamesh.trace`): the request, the calls it
made, the events it caused and their consumers, across HTTP, RPC, SNS and SQS. The demo is the
orders' client, so it starts each order's trace itself (a ``traceparent`` header on the
``POST /orders``), as a client instrumented with OpenTelemetry would.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3

from lambdamesh.arguments import add_endpoint, add_port
from lambdamesh.deploy import DeployError, DeployReport, Target, deploy_all
from lambdamesh.deploy import command as deploy_command
from lambdamesh.deploy.stacks import StackError, existing_stack_outputs
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import EmbeddedLocalStack, EmulatorError, ExternalLocalStack
from lambdamesh.trace.logs import hops_in, lines_for, log_groups, wait_for_lines
from lambdamesh.trace.rendering import tree_text
from lambdamesh.trace.tree import build_forest, in_trace
from lambdamesh_toolkit.contracts.events import OrderConfirmed, UserCreated
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import Publisher
from lambdamesh_toolkit.trace_context import TRACEPARENT, SpanContext

NAME = "demo"
DESCRIPTION = (
    "Start the embedded LocalStack (or use --endpoint / $LAMBDAMESH_ENDPOINT), deploy every\n"
    "service with 'lambdamesh deploy', play an order journey over HTTP through API Gateway\n"
    "under one correlation id, and draw each order's trace from the hops the services logged.\n"
    "The emulator keeps running afterwards so that you can explore; 'lambdamesh down' stops\n"
    "it, 'lambdamesh trace ID' draws the journey again.\n\n"
    "examples:\n"
    "  lambdamesh demo\n"
    "  lambdamesh demo --port 4567\n"
    "  LAMBDAMESH_ENDPOINT=http://127.0.0.1:4566 lambdamesh demo   # LocalStack in Docker"
)

EXIT_OK = 0
EXIT_FAILURE = 1
LOG_WAIT_S = 15.0
"""How long to wait, at most, for the journey's last log lines to reach CloudWatch Logs."""

SAGA_WAIT_S = 60.0
"""How long to wait for an order to leave ``placed`` (cold starts of four consumers included)."""
DLQ_WAIT_S = 120.0
"""How long a poison event may take to exhaust its five receives (backoff 1+2+4+8 s)."""
MESSAGING_STACK = "lambdamesh-messaging"

Say = Callable[[str], None]


def configure(parser: argparse.ArgumentParser) -> None:
    """The demo's arguments (the same emulator selection as ``up``)."""
    add_port(parser)
    add_endpoint(parser)


@dataclass
class Step:
    """One HTTP exchange of the journey."""

    title: str
    method: str
    url: str
    status: int
    millis: float
    body: Any


@dataclass
class TracedOrder:
    """An order the journey placed, the trace its placing started, and the saga's decision."""

    order_id: str
    trace_id: str
    status: str = "placed"


@dataclass
class Journey:
    """Plays requests against the deployed APIs under one correlation id."""

    report: DeployReport
    say: Say
    correlation_id: str = field(default_factory=lambda: f"demo-{uuid.uuid4().hex[:12]}")
    orders: list[TracedOrder] = field(default_factory=list)
    http: urllib3.PoolManager = field(
        default_factory=lambda: urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=30.0), retries=False
        )
    )

    def api(self, service: str) -> str:
        return self.report.api_base_url(service)

    def call(
        self,
        title: str,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Step:
        all_headers = {"X-Correlation-Id": self.correlation_id, **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        response = self.http.request(
            method,
            url,
            body=json.dumps(body).encode() if body is not None else None,
            headers=all_headers,
        )
        millis = (time.perf_counter() - started) * 1000
        try:
            decoded = json.loads(response.data) if response.data else None
        except ValueError:
            decoded = response.data.decode(errors="replace")
        step = Step(title, method, url, response.status, millis, decoded)
        self.say(f"\n── {title}")
        self.say(f"   {method} {url}")
        self.say(f"   → {response.status} in {millis:.0f} ms")
        for line in json.dumps(decoded, indent=2).splitlines()[:14]:
            self.say(f"     {line}")
        return step


def play(journey: Journey) -> tuple[str, dict[str, Any]]:
    """The synchronous journey; returns the order id it created and the user."""
    users, catalog = journey.api("users"), journey.api("catalog")
    orders, reviews = journey.api("orders"), journey.api("reviews")
    user = journey.call(
        "1. sign up (users service)",
        "POST",
        f"{users}/users",
        {"email": f"ada+{journey.correlation_id}@example.com", "name": "Ada Lovelace"},
    )
    products = journey.call("2. browse (catalog service)", "GET", f"{catalog}/products?limit=3")
    in_stock = [p for p in products.body["products"] if p["stock"] > 0][:2]
    key = f"checkout-{uuid.uuid4().hex[:8]}"
    order_body = {
        "user_id": user.body["id"],
        "items": [{"product_id": p["id"], "quantity": n + 1} for n, p in enumerate(in_stock)],
    }
    # The checkout is a trace of its own, started here: the client's try and its retry.
    checkout = SpanContext.new_trace()
    order = journey.call(
        "3. place an order (orders → users over HTTP, → catalog by RPC per item)",
        "POST",
        f"{orders}/orders",
        order_body,
        {"Idempotency-Key": key, TRACEPARENT: checkout.traceparent()},
    )
    journey.orders.append(TracedOrder(str(order.body["id"]), checkout.trace_id))
    journey.call(
        "4. the client retries with the same Idempotency-Key: the same order, no second one",
        "POST",
        f"{orders}/orders",
        order_body,
        {"Idempotency-Key": key, TRACEPARENT: checkout.child().traceparent()},
    )
    journey.call("5. read the order back", "GET", f"{orders}/orders/{order.body['id']}")
    product_id = in_stock[0]["id"]
    journey.call(
        "6. review a product (reviews service)",
        "POST",
        f"{reviews}/products/{product_id}/reviews",
        {"author": "Ada", "rating": 5, "text": "Works exactly as the contract says."},
    )
    journey.call(
        "7. read reviews joined with the product (reviews → catalog by RPC)",
        "GET",
        f"{reviews}/products/{product_id}/reviews",
    )
    journey.call(
        "8. bad input is refused with the field named",
        "POST",
        f"{orders}/orders",
        {"user_id": user.body["id"], "items": [{"product_id": product_id, "quantity": 0}]},
    )
    journey.call(
        "9. an unknown user is refused (checked with the users service)",
        "POST",
        f"{orders}/orders",
        {"user_id": "no-such-user", "items": [{"product_id": product_id, "quantity": 1}]},
    )
    return str(order.body["id"]), user.body


def wait_for_saga(journey: Journey, order_id: str, title: str) -> dict[str, Any]:
    """Poll ``GET /orders/{id}`` until the saga decided; print the decision."""
    url = f"{journey.api('orders')}/orders/{order_id}"
    started = time.monotonic()
    while True:
        response = journey.http.request(
            "GET", url, headers={"X-Correlation-Id": journey.correlation_id}
        )
        order: dict[str, Any] = json.loads(response.data)
        if order.get("status") != "placed" or time.monotonic() - started > SAGA_WAIT_S:
            break
        time.sleep(0.2)
    waited = time.monotonic() - started
    journey.say(f"\n── {title}")
    journey.say(
        f"   order {order_id}: {order.get('status')} after {waited:.1f} s"
        + (f" — {order['cancel_reason']}" if order.get("cancel_reason") else "")
    )
    return order


def play_saga(journey: Journey, order_id: str, user: dict[str, Any]) -> None:
    """The asynchronous part: the first order's outcome, a declined order, the mail sent."""
    decided = wait_for_saga(
        journey,
        order_id,
        "10. the saga: order.placed fanned out to payments and inventory, both outcomes "
        "back to orders",
    )
    journey.orders[0].status = str(decided.get("status"))
    catalog = journey.call(
        "11. pick the dearest product", "GET", f"{journey.api('catalog')}/products"
    )
    dearest = max(
        (p for p in catalog.body["products"] if p["stock"] > 0), key=lambda p: p["price_cents"]
    )
    quantity = 100_000 // dearest["price_cents"] + 1  # above the payment provider's limit
    refused = SpanContext.new_trace()
    declined = journey.call(
        f"12. an order the payment provider declines ({quantity} x {dearest['name']})",
        "POST",
        f"{journey.api('orders')}/orders",
        {"user_id": user["id"], "items": [{"product_id": dearest["id"], "quantity": quantity}]},
        {TRACEPARENT: refused.traceparent()},
    )
    decided = wait_for_saga(
        journey,
        declined.body["id"],
        "13. payment.failed → order.cancelled → inventory releases the reserved stock",
    )
    journey.orders.append(
        TracedOrder(str(declined.body["id"]), refused.trace_id, str(decided.get("status")))
    )


def mails_to(journey: Journey, endpoint: str, email: str, expected: int) -> list[Any]:
    """The mails SES accepted for ``email`` (LocalStack keeps them at ``/_aws/ses``), once the
    ``expected`` number of them is there (or 15 s have passed)."""
    deadline = time.monotonic() + 15
    while True:
        response = journey.http.request("GET", f"{endpoint}/_aws/ses")
        messages = [
            m
            for m in json.loads(response.data).get("messages", [])
            if email in m.get("Destination", {}).get("ToAddresses", [])
        ]
        if len(messages) >= expected or time.monotonic() > deadline:
            return messages
        time.sleep(0.25)


def show_mail(journey: Journey, endpoint: str, email: str, title: str, expected: int) -> None:
    """The mails SES accepted for ``email``, once the ``expected`` number of them is there."""
    messages = mails_to(journey, endpoint, email, expected)
    journey.say(f"\n── {title}: mail sent through SES to {email}")
    for message in messages:
        journey.say(f"   {message.get('Timestamp', '')[:19]}  {message.get('Subject', '')}")


def dead_letter_round_trip(journey: Journey, target: Target) -> None:
    """A poison event reaches its DLQ; once its cause is fixed a redrive delivers it."""
    from lambdamesh.dlq import command as dlq_command  # the dlq CLI, reused as is

    outputs = existing_stack_outputs(target.client("cloudformation"), MESSAGING_STACK)
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    order_id = f"o-demo-{uuid.uuid4().hex[:8]}"
    say = journey.say
    say("\n── 15. poison: order.confirmed for a user the notifications service never heard of")
    use_correlation_id(journey.correlation_id)
    confirmed = new_event(
        "order.confirmed", OrderConfirmed(order_id=order_id, user_id=stranger), source="demo"
    )
    Publisher(outputs["OrdersTopicArn"], sns_client=target.client("sns")).publish(
        confirmed, group_id=order_id
    )
    dlq = "lambdamesh-notifications-orders-dlq.fifo"
    say(f"   published {confirmed.id}; it fails, backs off (1, 2, 4, 8 s) and after 5 receives")
    say(f"   lands in {dlq} ...")
    sqs = target.client("sqs")
    dlq_url = sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
    deadline = time.monotonic() + DLQ_WAIT_S
    while _depth(sqs, dlq_url) == 0 and time.monotonic() < deadline:
        time.sleep(0.25)

    def cli(*words: str) -> None:
        parser = argparse.ArgumentParser(prog="lambdamesh dlq")
        dlq_command.configure(parser)
        say(f"\n   $ lambdamesh dlq {' '.join(words)}")
        dlq_command.run(parser.parse_args([*words, "--endpoint", target.endpoint_url or ""]))

    cli("list")
    cli("show", dlq)
    say("\n── 16. fix the cause: user.created for that user reaches notifications, then redrive")
    created = new_event(
        "user.created",
        UserCreated(user_id=stranger, email=f"{stranger}@example.com", name="Late Comer"),
        source="demo",
    )
    Publisher(outputs["UsersTopicArn"], sns_client=target.client("sns")).publish(created)
    # The consumer stores the contact, then sends the welcome mail: once the mail is there the
    # redriven order.confirmed finds its recipient.
    mails_to(journey, target.endpoint_url or "", f"{stranger}@example.com", expected=1)
    cli("redrive", dlq)
    # The welcome mail of the late user.created, and the redriven order's confirmation.
    show_mail(
        journey,
        target.endpoint_url or "",
        f"{stranger}@example.com",
        "17. redriven and delivered",
        expected=2,
    )


def _depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def trace_orders(target: Target, report: DeployReport, journey: Journey) -> int:
    """Draw the trace of each order the journey placed; the number of hops of the journey.

    The hops are read back from the functions' log groups (:mod:`lambdamesh.trace.logs`), the
    way ``lambdamesh trace`` reads them, until no more arrive.
    """
    logs = target.client("logs")
    groups = log_groups({service.service: service.functions for service in report.services})
    lines = wait_for_lines(
        lambda: lines_for(logs, groups, journey.correlation_id), wait_s=LOG_WAIT_S
    )
    hops = hops_in(lines)
    for number, order in enumerate(journey.orders, start=18):
        journey.say(
            f"\n── {number}. the {order.status} order {order.order_id}, as the services logged it"
        )
        forest = build_forest(in_trace(hops, order.trace_id))
        title = f"trace {order.trace_id} (correlation id {journey.correlation_id})"
        for line in tree_text(forest, title).splitlines():
            journey.say(f"   {line}")
    return len(hops)


def start_target(args: argparse.Namespace, paths: ProjectPaths, say: Say) -> tuple[Target, Any]:
    """Start or find the emulator; returns the deploy target and its records directory."""
    if args.endpoint:
        external = ExternalLocalStack(args.endpoint)
        if not external.wait_healthy(timeout=30).healthy:
            raise EmulatorError(f"LocalStack at {args.endpoint} is not healthy")
        target = Target.localstack(external.endpoint_url)
        return target, deploy_command.records_dir(paths, target)
    embedded = EmbeddedLocalStack(args.port, paths=paths)
    result = embedded.start(progress=say)
    say(
        f"==> embedded LocalStack {'already running' if result.reused else 'started'} "
        f"at {result.endpoint_url} (pid {result.pid})"
    )
    return Target.localstack(result.endpoint_url), embedded.home


def run(args: argparse.Namespace, say: Say = print) -> int:
    """Run the demo; returns the exit code."""
    paths = ProjectPaths.discover()
    try:
        target, state_dir = start_target(args, paths, say)
        say(f"==> deploying every service to {target.label}")
        report = deploy_all(target, deploy_command.build_options(paths, state_dir), say)
        journey = Journey(report, say)
        say(f"==> order journey, correlation id {journey.correlation_id}")
        order_id, user = play(journey)
        play_saga(journey, order_id, user)
        # Welcome, the confirmed order's and the cancelled order's mails.
        show_mail(
            journey, target.endpoint_url or "", user["email"], "14. notifications", expected=3
        )
        dead_letter_round_trip(journey, target)
        traced = trace_orders(target, report, journey)
    except (
        DeployError,
        StackError,
        EmulatorError,
        urllib3.exceptions.HTTPError,
        KeyError,
    ) as error:
        say(f"error: {error}")
        return EXIT_FAILURE
    say(f"\n==> done: order {order_id}, {traced} hops traced across services")
    say(f"    every hop of the journey: lambdamesh trace {journey.correlation_id}")
    say("    explore: lambdamesh status   ·   stop: lambdamesh down (or make down)")
    return EXIT_OK
