"""``lambdamesh dashboard``: the system on one local web page, live.

The page shows the topology picture, every service with its API and functions, the queues and
dead-letter queues with their depths (a DLQ holding messages highlighted), the newest orders,
an order's timeline (its events, from the orders service's own ``GET /orders/{id}/events``) and
the trace of any of its correlation ids (``lambdamesh trace``'s tree). It reads the target each
time the page asks (the depths every 2 s): nothing is cached, nothing is written.

It listens on loopback only and refuses requests whose ``Host`` is not a name of this machine.
"""

from __future__ import annotations

import argparse
import functools
import time
import webbrowser
from pathlib import Path
from typing import Any

import urllib3

from lambdamesh.arguments import add_target
from lambdamesh.command import EXIT_FAILURE, EXIT_OK, err, say
from lambdamesh.dashboard.data import Deployment, order_history, recent_orders, system_status
from lambdamesh.dashboard.server import DashboardServer, NotLoopbackError, Providers
from lambdamesh.deploy.command import select_target
from lambdamesh.deploy.records import load_services
from lambdamesh.deploy.target import Target
from lambdamesh.emulator.paths import ProjectPaths

NAME = "dashboard"
DESCRIPTION = """\
Serve a web page on 127.0.0.1 showing the deployed system as it runs: the topology picture,
services, topics, queues and dead-letter queues with their depths (refreshed every 2 s, a DLQ
holding messages highlighted), the newest orders, an order's timeline and the trace of any of
its correlation ids. Read-only; loopback only. Stop it with Ctrl-C.

examples:
  lambdamesh dashboard
  lambdamesh dashboard --open
  lambdamesh dashboard --listen-port 0        # any free port"""

DEFAULT_LISTEN_PORT = 8765
TOPOLOGY_TTL_S = 30.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``dashboard``'s arguments."""
    parser.add_argument(
        "--listen-host",
        default="127.0.0.1",
        help="the loopback address to listen on (127.0.0.1 or ::1; default: 127.0.0.1)",
    )
    parser.add_argument(
        "--listen-port",
        type=int,
        default=DEFAULT_LISTEN_PORT,
        help=f"the page's port (default: {DEFAULT_LISTEN_PORT}; 0 for any free one)",
    )
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    add_target(parser, aws_help="show the system deployed on AWS")


def build_providers(target: Target, records: Path, prefix: str) -> Providers:
    """The page's data, read from ``target`` and what deploy recorded for it in ``records``."""
    http = urllib3.PoolManager()

    def deployment() -> Deployment:
        return Deployment(load_services(records))

    def status() -> Any:
        return system_status(deployment(), target.client("sns"), target.client("sqs"), prefix)

    def orders(limit: int) -> Any:
        table = deployment().output("orders", "OrdersTableName")
        if table is None:
            raise LookupError("the orders service is not deployed: run `lambdamesh deploy`")
        return recent_orders(target.client("dynamodb"), table, limit)

    def history(order_id: str) -> Any:
        api = deployment().api_url("orders")
        if api is None:
            raise LookupError("the orders service is not deployed: run `lambdamesh deploy`")
        return order_history(http, api, order_id)

    def trace(correlation_id: str) -> Any:
        from lambdamesh.trace.command import gather
        from lambdamesh.trace.rendering import json_document
        from lambdamesh.trace.tree import build_forest

        findings = gather(
            target, records, correlation_id, stack_prefix=prefix, since_minutes=24 * 60
        )
        return json_document(correlation_id, build_forest(findings.hops))

    @functools.lru_cache(maxsize=1)  # the current time bucket's picture only
    def picture(_: int) -> Any:
        from lambdamesh.topology.deployed import read_deployed
        from lambdamesh.topology.mermaid import render_mermaid
        from lambdamesh.topology.svg import render_svg

        topology = read_deployed(target.client, prefix)
        return {"svg": render_svg(topology), "mermaid": render_mermaid(topology)}

    def topology() -> Any:
        # Read again at most every TOPOLOGY_TTL_S: it changes only with a deploy.
        return picture(int(time.monotonic() // TOPOLOGY_TTL_S))

    return Providers(status, orders, history, trace, topology)


def run(args: argparse.Namespace) -> int:
    """Serve the dashboard until interrupted; the exit code."""
    chosen = select_target(args, ProjectPaths.discover())
    if isinstance(chosen, str):
        err(f"error: {chosen}")
        return EXIT_FAILURE
    target, records = chosen
    providers = build_providers(target, records, args.stack_prefix)
    try:
        server = DashboardServer(args.listen_host, args.listen_port, providers)
    except NotLoopbackError as error:
        err(f"error: {error}")
        return EXIT_FAILURE
    except OSError as error:
        err(
            f"error: cannot listen on {args.listen_host}:{args.listen_port} ({error.strerror}); "
            "choose another with --listen-port (0 for any free one)"
        )
        return EXIT_FAILURE
    say(f"==> dashboard of {target.label} at {server.url}  (Ctrl-C to stop)")
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("==> dashboard stopped")
    finally:
        server.server_close()
    return EXIT_OK
