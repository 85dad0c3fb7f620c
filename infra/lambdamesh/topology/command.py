"""``lambdamesh topology``: draw the system as deployed, as mermaid, SVG or JSON.

By default the picture is read from what is deployed on the target (the embedded emulator,
``--endpoint``, or ``--aws``), through the services' own APIs
(:mod:`~lambdamesh.topology.deployed`); ``--from-templates`` draws what ``lambdamesh deploy``
would create instead, from the templates its dry run prepares, with no AWS at all
(:mod:`~lambdamesh.topology.templates`). ``--write-docs`` rewrites the checked-in pictures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.arguments import add_target
from lambdamesh.command import EXIT_FAILURE, EXIT_OK, err, say
from lambdamesh.deploy.command import build_options, select_target
from lambdamesh.deploy.dry_run import prepare_all
from lambdamesh.deploy.packaging import PackagingError
from lambdamesh.deploy.runner import DeployError
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.topology.deployed import NothingDeployedError, read_deployed
from lambdamesh.topology.docs import DocsFiles, MissingBlockError, write_docs
from lambdamesh.topology.mermaid import render_mermaid
from lambdamesh.topology.model import Topology
from lambdamesh.topology.svg import render_svg
from lambdamesh.topology.templates import read_templates

NAME = "topology"
DESCRIPTION = """\
Read the deployed stacks (lambdamesh-<service>, as `lambdamesh deploy` made them) and the
services behind them - SNS subscriptions and their filter policies, SQS redrive policies, Lambda
event source mappings and environments, API Gateway integrations - and draw the system: each
service with its REST API, streams and functions; the SNS topics; the SQS queues; the dead-letter
queues; and what connects them (publishes, delivers with its filter policy, triggers with its
batch size, redrives after maxReceiveCount, on-failure destinations, HTTP and RPC calls). Names
are logical (orders.APIHandler, orders-outcomes), so the picture stays the same from one
deployment to the next; the picture carries the model's sha256.

--write-docs rewrites docs/topology.mmd, docs/topology.svg and the mermaid block of
docs/topology.md; a test fails when the checked-in picture no longer matches what deploys.

Target: the embedded LocalStack on --port, the LocalStack at --endpoint / $LAMBDAMESH_ENDPOINT,
or real AWS with --aws; --from-templates reads no target but the templates `lambdamesh deploy
--dry-run` prepares (what a deploy would create; no credentials needed).

examples:
  lambdamesh topology                              # mermaid on standard output
  lambdamesh topology --format svg --output topology.svg
  lambdamesh topology --format json | jq '.edges[] | select(.kind == "delivers")'
  lambdamesh topology --write-docs                 # then commit docs/
  lambdamesh topology --from-templates --write-docs"""

FORMATS = ("mermaid", "svg", "json")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``topology``'s arguments."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="mermaid",
        help="mermaid (default), svg, or json (the model itself)",
    )
    written = parser.add_mutually_exclusive_group()
    written.add_argument(
        "--output", type=Path, metavar="PATH", help="write to PATH instead of standard output"
    )
    written.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite docs/topology.mmd, docs/topology.svg and docs/topology.md's mermaid block",
    )
    where = add_target(
        parser,
        aws_help="read what is deployed on real AWS",
        prefix_help="the prefix deploy used: stacks <prefix>-<service> (default: lambdamesh)",
    )
    where.add_argument(
        "--from-templates",
        action="store_true",
        help="draw what `lambdamesh deploy` would create, from the templates its dry run "
        "prepares (no target, no credentials)",
    )


def render(topology: Topology, output_format: str) -> str:
    """The topology in ``output_format`` (one of :data:`FORMATS`), ending in a newline."""
    if output_format == "svg":
        return render_svg(topology)
    if output_format == "json":
        document = {"sha256": topology.content_hash(), **topology.as_dict()}
        return json.dumps(document, indent=2) + "\n"
    return render_mermaid(topology)


def _from_templates(args: argparse.Namespace, paths: ProjectPaths) -> Topology | str:
    options = build_options(
        paths, paths.state_root / "deployments" / "dry-run", stack_prefix=args.stack_prefix
    )
    try:
        stacks = prepare_all(options, err)
    except (DeployError, PackagingError, OSError, ValueError) as error:
        # ValueError covers a parameter no stack provides and a queue the messaging stack
        # lacks (UnresolvedParameterError, UnknownQueueError), and a template that is no JSON.
        return str(error)
    return read_templates(stacks, args.stack_prefix)


def _from_deployed(args: argparse.Namespace, paths: ProjectPaths) -> Topology | str:
    chosen = select_target(args, paths)
    if isinstance(chosen, str):
        return chosen
    target, _ = chosen
    try:
        return read_deployed(target.client, args.stack_prefix)
    except NothingDeployedError as error:
        return (
            f"nothing deployed on {target.label}: {error}; run `lambdamesh deploy` first "
            f"(or draw what it would deploy with --from-templates)"
        )
    except (ClientError, BotoCoreError) as error:
        return f"{target.label}: {error}"


def _write_docs(topology: Topology, paths: ProjectPaths) -> int:
    try:
        written = write_docs(topology, DocsFiles(paths.root))
    except (MissingBlockError, OSError) as error:
        err(f"error: {error}")
        return EXIT_FAILURE
    for path in written:
        say(f"wrote {path.relative_to(paths.root)}")
    say(f"model sha256 {topology.content_hash()}: commit docs/")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run ``topology``; returns the exit code."""
    paths = ProjectPaths.discover()
    read = _from_templates if args.from_templates else _from_deployed
    topology = read(args, paths)
    if isinstance(topology, str):
        err(f"error: {topology}")
        return EXIT_FAILURE
    if args.write_docs:
        return _write_docs(topology, paths)
    text = render(topology, args.format)
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return EXIT_OK
    try:
        args.output.write_text(text)
    except OSError as error:
        err(f"error: cannot write {args.output}: {error.strerror or error}")
        return EXIT_FAILURE
    err(f"wrote {args.output} ({args.format}, model sha256 {topology.content_hash()[:12]})")
    return EXIT_OK
