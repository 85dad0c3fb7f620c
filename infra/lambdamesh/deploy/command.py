"""The ``lambdamesh deploy`` subcommand: arguments, target selection, output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.arguments import add_endpoint, add_port
from lambdamesh.deploy.change_sets import format_changes, preview_all
from lambdamesh.deploy.dry_run import format_plan, plan_all
from lambdamesh.deploy.packaging import PackagingError
from lambdamesh.deploy.runner import DeployError, DeployOptions, DeployReport, deploy_all
from lambdamesh.deploy.stacks import StackError
from lambdamesh.deploy.target import Target
from lambdamesh.deploy.template import UnknownQueueError
from lambdamesh.deploy.wiring import UnresolvedParameterError
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import EmbeddedLocalStack
from lambdamesh_toolkit.aws import clients

NAME = "deploy"
DESCRIPTION = """\
Deploy the shared stack (infra/topology/shared.json: circuit-breaker table, deployment
bucket), the messaging stack (infra/topology/messaging.json: SNS topics, SQS queues and
their dead-letter queues, consumer tables) and then every Chalice app under functions/ in
dependency order (users, catalog, reviews, orders, then any other app): `chalice package
--merge-template resources.json`, the zip to S3, one CloudFormation stack
lambdamesh-<service> per app with parameters from the stacks before it. Unchanged apps are
neither repackaged nor redeployed.

Target: the embedded LocalStack on --port (started by `lambdamesh up`), the LocalStack at
--endpoint / $LAMBDAMESH_ENDPOINT, or real AWS with --aws (credentials and region from the
usual AWS environment and config).

examples:
  lambdamesh deploy
  lambdamesh deploy --only users --only orders
  LAMBDAMESH_ENDPOINT=http://127.0.0.1:4566 lambdamesh deploy   # LocalStack in Docker
  lambdamesh deploy --dry-run                 # what would be deployed, no credentials needed
  lambdamesh deploy --dry-run --aws           # with credentials: every stack's change set
  AWS_PROFILE=dev AWS_REGION=eu-west-1 lambdamesh deploy --aws"""

EXIT_OK = 0
EXIT_FAILURE = 1

Progress = Callable[[str], None]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``deploy``'s arguments."""
    where = parser.add_mutually_exclusive_group()
    add_endpoint(where)
    where.add_argument("--aws", action="store_true", help="deploy to real AWS")
    add_port(parser)
    parser.add_argument(
        "--apps-dir",
        type=Path,
        default=None,
        help="the directory holding the Chalice apps (default: functions/)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SERVICE",
        help="deploy only this service (repeatable); the shared and messaging stacks always are",
    )
    parser.add_argument(
        "--stack-prefix",
        default="lambdamesh",
        help="stacks are named <prefix>-<service>, topics and queues <prefix>-<name> "
        "(default: lambdamesh; the apps consume the queues deployed under the same prefix)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="package and prepare every stack, wire its parameters, and print the stacks with "
        "their resources (no credentials needed); with --endpoint, or --aws and credentials, "
        "print each stack's change set instead (created, read and deleted; none executed)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def build_options(
    paths: ProjectPaths,
    state_dir: Path,
    *,
    apps_dir: Path | None = None,
    stack_prefix: str = "lambdamesh",
    only: frozenset[str] | None = None,
) -> DeployOptions:
    """The project's deploy options: apps under ``functions/``, caches under ``.lambdamesh/``."""
    return DeployOptions(
        apps_dir=(apps_dir or paths.root / "functions").resolve(),
        shared_template=paths.root / "infra" / "topology" / "shared.json",
        messaging_template=paths.root / "infra" / "topology" / "messaging.json",
        cache_dir=paths.state_root / "deploy" / "packages",
        state_dir=state_dir,
        stack_prefix=stack_prefix,
        only=only,
    )


def records_dir(paths: ProjectPaths, target: Target) -> Path:
    """Where deployments to ``target`` are recorded (the embedded emulator uses its run dir)."""
    return paths.state_root / "deployments" / target.slug


def select_target(args: argparse.Namespace, paths: ProjectPaths) -> tuple[Target, Path] | str:
    """The target chosen by ``--aws``, ``--endpoint`` or ``--port``, and its records directory.

    Returns
    -------
    tuple[Target, Path] | str
        The target and where deployments to it are recorded, or an error message to print.
    """
    if args.aws:
        try:
            target = Target.aws()
        except ValueError as error:
            return str(error)
        return target, records_dir(paths, target)
    if args.endpoint:
        target = Target.localstack(args.endpoint)
        return target, records_dir(paths, target)
    state = EmbeddedLocalStack(args.port, paths=paths).running()
    if state is None:
        return (
            f"no embedded LocalStack runs on port {args.port}: start it with "
            f"`lambdamesh up --port {args.port}`, or pass --endpoint URL or --aws"
        )
    return Target.localstack(state.endpoint), Path(state.run_dir)


def _dry_run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    options = build_options(
        paths,
        paths.state_root / "deployments" / "dry-run",
        apps_dir=args.apps_dir,
        stack_prefix=args.stack_prefix,
        only=frozenset(args.only) if args.only else None,
    )
    stream = sys.stderr if args.json else sys.stdout

    def progress(line: str) -> None:
        print(line, file=stream, flush=True)

    target = _change_set_target(args, progress)
    if isinstance(target, str):
        print(f"error: {target}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    try:
        if target is not None:
            progress(f"==> dry run on {target.label}: the change set of every stack, none executed")
            previews = preview_all(target, options, progress)
            document: list[dict[str, Any]] = [asdict(stack) for stack in previews]
            lines = format_changes(previews)
        else:
            progress("==> dry run: every stack prepared and wired, none deployed")
            planned = plan_all(options, progress)
            document = [asdict(stack) for stack in planned]
            lines = format_plan(planned)
    except (
        DeployError,
        PackagingError,
        UnresolvedParameterError,
        UnknownQueueError,
        StackError,
    ) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except (BotoCoreError, ClientError) as error:
        print(f"error: {target.label if target else 'dry run'}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(document, sort_keys=True), flush=True)
    else:
        for line in lines:
            print(line, flush=True)
    return EXIT_OK


def _change_set_target(args: argparse.Namespace, progress: Progress) -> Target | str | None:
    """Where a dry run previews change sets: ``--endpoint`` (or ``$LAMBDAMESH_ENDPOINT``), or
    ``--aws`` when credentials are found; ``None`` for the plan alone; an error to print."""
    if args.endpoint:
        return Target.localstack(args.endpoint)
    if not args.aws:
        return None
    try:
        target = Target.aws()
        credentials = clients.has_credentials()
    except ValueError as error:
        return str(error)
    except BotoCoreError as error:
        return f"{error}: check AWS_PROFILE and ~/.aws/config"
    if not credentials:
        progress("==> no AWS credentials found: the plan alone (with credentials, the change sets)")
        return None
    return target


def run(args: argparse.Namespace) -> int:
    """Run ``deploy``; returns the exit code."""
    paths = ProjectPaths.discover()
    if args.dry_run:
        return _dry_run(args, paths)
    chosen = select_target(args, paths)
    if isinstance(chosen, str):
        print(f"error: {chosen}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    target, state_dir = chosen
    options = build_options(
        paths,
        state_dir,
        apps_dir=args.apps_dir,
        stack_prefix=args.stack_prefix,
        only=frozenset(args.only) if args.only else None,
    )
    # With --json, progress goes to stderr so that stdout stays one JSON document.
    stream = sys.stderr if args.json else sys.stdout
    print(f"==> deploying to {target.label}", file=stream, flush=True)
    try:
        report = deploy_all(target, options, lambda line: print(line, file=stream, flush=True))
    except (DeployError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(asdict(report), default=str, sort_keys=True), flush=True)
    else:
        _print_summary(report)
    return EXIT_OK


def _print_summary(report: DeployReport) -> None:
    print(f"==> done in {report.seconds:.1f} s", flush=True)
    for service in report.services:
        if service.api_url:
            print(f"    {service.service:<12} {service.api_url}", flush=True)
    if report.records_file is not None:
        print(f"    recorded in {report.records_file}", flush=True)
