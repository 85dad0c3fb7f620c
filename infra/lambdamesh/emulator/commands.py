"""The emulator's subcommands: ``lambdamesh install``, ``up``, ``down``, ``status`` and ``env``.

Each is a :class:`~lambdamesh.command.Command` in :data:`COMMANDS`, in the order
``lambdamesh --help`` lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.arguments import ENDPOINT_ENV, PORT_ENV, add_endpoint, add_port
from lambdamesh.command import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Command, err, say
from lambdamesh.deploy import command as deploy_command
from lambdamesh.deploy.records import load_services
from lambdamesh.deploy.target import Target
from lambdamesh.emulator.clients import emulator_client
from lambdamesh.emulator.install import InstallError, ensure_emulator_installed
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import (
    DEFAULT_START_TIMEOUT,
    EmbeddedLocalStack,
    EmulatorError,
    ExternalLocalStack,
)
from lambdamesh.emulator.settings import (
    ALLOW_NON_LOOPBACK_FLAG,
    DEFAULT_HOST,
    GATEWAY_SERVER_ENV,
    GATEWAY_SERVERS,
    NON_LOOPBACK_WARNING,
    REGION,
    NonLoopbackRefusedError,
    UnknownGatewayServerError,
    check_bind_host,
    is_loopback_host,
)
from lambdamesh.messaging_status import (
    MessagingStatus,
    QueueDepth,
    format_messaging,
    read_messaging,
)
from lambdamesh.permissions_status import (
    PermissionSummary,
    format_permissions,
    read_permissions,
)

# --- install -----------------------------------------------------------------


def _configure_install(parser: argparse.ArgumentParser) -> None:
    """Add ``install``'s arguments: ``--force``."""
    parser.add_argument(
        "--force", action="store_true", help="reinstall even if the install is up to date"
    )


def _run_install(args: argparse.Namespace) -> int:
    """Create or update the emulator's virtualenv; returns the exit code."""
    try:
        python = ensure_emulator_installed(progress=say, force=args.force)
    except InstallError as error:
        err(f"error: {error}")
        return EXIT_FAILURE
    say(f"==> emulator virtualenv is up to date: {python.parent.parent}")
    return EXIT_OK


# --- up ----------------------------------------------------------------------


def _configure_up(parser: argparse.ArgumentParser) -> None:
    """Add ``up``'s arguments: port, bind host, its opt-in, timeout and endpoint."""
    add_port(parser)
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"bind address (default: {DEFAULT_HOST}); only loopback addresses are accepted "
        f"unless {ALLOW_NON_LOOPBACK_FLAG} is given",
    )
    parser.add_argument(
        ALLOW_NON_LOOPBACK_FLAG,
        action="store_true",
        help="allow a non-loopback --host. DANGEROUS: anyone who can reach the port can run "
        "code on this machine through Lambda",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_START_TIMEOUT,
        help=f"seconds to wait for LocalStack to be healthy (default: {DEFAULT_START_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--gateway-server",
        choices=GATEWAY_SERVERS,
        default=None,
        help=f"how the gateway is served (default: ${GATEWAY_SERVER_ENV}, else "
        f"{GATEWAY_SERVERS[0]}): {GATEWAY_SERVERS[0]}, one thread per connection, HTTP/1.1 and "
        f"HTTPS on the one port; {GATEWAY_SERVERS[1]}, LocalStack's twisted server, for HTTP/2 "
        "or WebSocket clients",
    )
    add_endpoint(parser)


def _print_usage_hint(endpoint: str, port: int | None) -> None:
    """Print how to reach the emulator from a shell and, when embedded, how to stop it.

    Parameters
    ----------
    endpoint
        The emulator's URL.
    port
        The embedded emulator's port; ``None`` for an external one, which is not stopped.
    """
    say(f"    endpoint: {endpoint}")
    say('    use it from a shell (or: eval "$(lambdamesh env)"):')
    for line in shell_exports(endpoint):
        say(f"      {line}")
    say("      .venv/bin/awslocal sqs list-queues")
    if port is not None:
        say(f"    stop it with: lambdamesh down --port {port}")


def _run_up_external(endpoint: str, timeout: float) -> int:
    """Wait for an external LocalStack to be healthy; returns the exit code.

    Parameters
    ----------
    endpoint
        The external LocalStack's URL.
    timeout
        Seconds to wait for it to be healthy.
    """
    external = ExternalLocalStack(endpoint)
    say(f"==> using the LocalStack at {external.endpoint_url} (not started by lambdamesh)")
    health = external.wait_healthy(timeout)
    if not health.healthy:
        state = "is not answering" if not health.answering else "is not healthy"
        err(f"error: the LocalStack at {external.endpoint_url} {state} after {timeout:.0f} s")
        return EXIT_FAILURE
    version = health.version or "(version unknown)"
    say(f"==> LocalStack {version} is ready at {external.endpoint_url}")
    _print_usage_hint(external.endpoint_url, None)
    return EXIT_OK


def _run_up(args: argparse.Namespace) -> int:
    """Start (or find) the embedded LocalStack, or check an external one; returns the exit code."""
    if args.endpoint:
        return _run_up_external(args.endpoint, args.timeout)
    try:
        check_bind_host(args.host, allow_non_loopback=args.allow_non_loopback)
    except NonLoopbackRefusedError as refused:
        err(f"error: {refused}")
        return EXIT_USAGE
    if not is_loopback_host(args.host):
        err(NON_LOOPBACK_WARNING.format(host=args.host, port=args.port))
    try:
        ensure_emulator_installed(progress=say)
        emulator = EmbeddedLocalStack(
            args.port,
            host=args.host,
            allow_non_loopback=args.allow_non_loopback,
            gateway_server=args.gateway_server,
        )
        result = emulator.start(timeout=args.timeout, progress=say)
    except UnknownGatewayServerError as unknown:
        err(f"error: {unknown}")
        return EXIT_USAGE
    except (InstallError, EmulatorError) as error:
        err(f"error: {error}")
        return EXIT_FAILURE
    if result.reused:
        say(f"==> LocalStack is already running at {result.endpoint_url} (pid {result.pid})")
    else:
        say(f"==> LocalStack is ready in {result.seconds:.1f} s (pid {result.pid})")
    _print_usage_hint(result.endpoint_url, args.port)
    return EXIT_OK


# --- down --------------------------------------------------------------------


def _configure_down(parser: argparse.ArgumentParser) -> None:
    """Add ``down``'s arguments: port and endpoint."""
    add_port(parser)
    add_endpoint(parser)


def _run_down(args: argparse.Namespace) -> int:
    """Stop the embedded LocalStack on the port, if any; returns the exit code."""
    if args.endpoint:
        say(f"==> the LocalStack at {args.endpoint} is not managed by lambdamesh; left running")
        return EXIT_OK
    emulator = EmbeddedLocalStack(args.port)
    state = emulator.running()
    if state is None:
        say(f"==> no embedded LocalStack is running on port {args.port}")
        return EXIT_OK
    say(f"==> stopping LocalStack on port {args.port} (pid {state.pid})...")
    emulator.stop()
    say("==> stopped")
    return EXIT_OK


# --- status ------------------------------------------------------------------


def _configure_status(parser: argparse.ArgumentParser) -> None:
    """Add ``status``'s arguments: port, ``--json`` and endpoint."""
    add_port(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object, for scripts")
    parser.add_argument(
        "--stack-prefix",
        default="lambdamesh",
        help="the topics and queues shown are <prefix>-* (default: lambdamesh)",
    )
    add_endpoint(parser)


def _format_status(status: dict[str, Any]) -> list[str]:
    """The lines ``lambdamesh status`` prints for a status without ``--json``.

    Parameters
    ----------
    status
        The emulator's status, with what ``lambdamesh deploy`` recorded under ``deployed``.

    Returns
    -------
    list[str]
        The lines, without newlines.
    """
    origin = "external" if status["external"] else "embedded"
    if not status["running"]:
        return [f"{origin} LocalStack at {status['endpoint']}: not running"]
    lines = [f"{origin} LocalStack at {status['endpoint']}: running"]
    if status.get("pid") is not None:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["started_at"]))
        lines += [
            f"  pid      {status['pid']}",
            f"  uptime   {status['uptime_seconds']:.0f} s (since {started})",
            f"  rss      {status['rss_bytes'] / 2**20:.0f} MiB "
            f"({status['rss_with_children_bytes'] / 2**20:.0f} MiB with function processes)",
            f"  log      {status['log']}",
        ]
    lines.append(f"  healthy  {status['healthy']} (version {status.get('version') or '?'})")
    services = status.get("services") or {}
    # Services outside SERVICES are listed as "disabled"; only the others matter here.
    lines += [
        f"    {name:<16} {state}" for name, state in sorted(services.items()) if state != "disabled"
    ]
    deployed = status.get("deployed") or {}
    if deployed:
        lines.append("  deployed (lambdamesh deploy)")
        for name, record in sorted(deployed.items()):
            lines.append(f"    {name:<16} {record.get('api_url') or '(no API)'}")
            lines += [
                f"      {logical_id:<22} {function}"
                for logical_id, function in sorted((record.get("functions") or {}).items())
            ]
    messaging = status.get("messaging")
    if messaging is not None:
        lines += format_messaging(
            MessagingStatus(
                messaging["topics"],
                [QueueDepth(**queue) for queue in messaging["queues"]],
                [QueueDepth(**queue) for queue in messaging["dead_letter_queues"]],
            )
        )
    permissions = status.get("permissions")
    if permissions is not None:
        lines += format_permissions(PermissionSummary(**permissions))
    return lines


def _deployed_services(args: argparse.Namespace, run_dir: Path | None) -> dict[str, Any]:
    """What ``lambdamesh deploy`` recorded for this emulator: API URLs and function names
    (the embedded emulator's records are in its ``run_dir``)."""
    if args.endpoint or run_dir is None:
        target = Target.localstack(args.endpoint)
        return load_services(deploy_command.records_dir(ProjectPaths.discover(), target))
    return load_services(run_dir)


def _run_status(args: argparse.Namespace) -> int:
    """Print the emulator's status, as lines or as one JSON object; returns the exit code."""
    status = (
        ExternalLocalStack(args.endpoint).status()
        if args.endpoint
        else EmbeddedLocalStack(args.port).status()
    )
    run_dir = status.get("run_dir")
    status["deployed"] = _deployed_services(args, Path(run_dir) if run_dir else None)
    if status["running"] and status.get("healthy"):
        endpoint = status["endpoint"]
        try:
            messaging = read_messaging(
                emulator_client(endpoint, "sns", REGION),
                emulator_client(endpoint, "sqs", REGION),
                args.stack_prefix,
            )
        except (BotoCoreError, ClientError) as error:
            err(f"could not read the topics and queues: {error}")
        else:
            status["messaging"] = dataclasses.asdict(messaging)
        permissions = read_permissions(endpoint)
        if permissions is not None:
            status["permissions"] = dataclasses.asdict(permissions)
    if args.json:
        say(json.dumps(status, sort_keys=True))
    else:
        for line in _format_status(status):
            say(line)
    return EXIT_OK


# --- env ---------------------------------------------------------------------


def _configure_env(parser: argparse.ArgumentParser) -> None:
    """Add ``env``'s arguments: port, endpoint and ``--service``."""
    add_port(parser)
    parser.add_argument(
        "--service",
        metavar="NAME",
        help="also export the settings of that deployed service's API function (its tables, "
        "topics, ...), e.g. to run it with `chalice local`",
    )
    add_endpoint(parser)


def _service_settings(
    args: argparse.Namespace, endpoint: str, run_dir: Path | None
) -> dict[str, str]:
    """The environment of ``args.service``'s deployed API function (first function otherwise).

    Raises
    ------
    LookupError
        With a message to print when the service is not deployed there.
    """
    records = _deployed_services(args, run_dir)
    record = records.get(args.service)
    if record is None:
        known = ", ".join(sorted(records)) or "none: run `lambdamesh deploy` first"
        raise LookupError(f"service {args.service!r} is not deployed at {endpoint} ({known})")
    functions: dict[str, str] = record.get("functions") or {}
    function = functions.get("APIHandler") or next(iter(functions.values()), None)
    if function is None:
        raise LookupError(f"service {args.service!r} has no function")
    configuration = emulator_client(endpoint, "lambda", REGION).get_function_configuration(
        FunctionName=function
    )
    variables: dict[str, str] = configuration.get("Environment", {}).get("Variables", {})
    return variables


def shell_exports(endpoint: str) -> list[str]:
    """The ``export`` lines that point AWS tools at ``endpoint`` with the emulator's test
    credentials.

    >>> shell_exports("http://127.0.0.1:4600")[:2]
    ['export AWS_ENDPOINT_URL=http://127.0.0.1:4600', 'export LOCALSTACK_HOST=127.0.0.1:4600']
    """
    host_port = endpoint.removeprefix("http://").removeprefix("https://").rstrip("/")
    return [
        f"export AWS_ENDPOINT_URL={endpoint}",
        f"export LOCALSTACK_HOST={host_port}",
        f"export AWS_DEFAULT_REGION={REGION} AWS_REGION={REGION}",
        "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test",
    ]


def _run_env(args: argparse.Namespace) -> int:
    """Print the exports for the emulator in use; returns the exit code."""
    embedded = None if args.endpoint else EmbeddedLocalStack(args.port)
    endpoint = embedded.endpoint_url if embedded else ExternalLocalStack(args.endpoint).endpoint_url
    if not ExternalLocalStack(endpoint).health().answering:
        how = "is it running?" if args.endpoint else "start it with `lambdamesh up` (or `make up`)"
        err(f"error: no LocalStack answers at {endpoint}; {how}")
        return EXIT_FAILURE
    lines = shell_exports(endpoint)
    if args.service:
        try:
            settings = _service_settings(args, endpoint, embedded.home if embedded else None)
        except (LookupError, BotoCoreError, ClientError) as error:
            err(f"error: {error}")
            return EXIT_FAILURE
        lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(settings.items())]
    for line in lines:
        say(line)
    return EXIT_OK


COMMANDS: list[Command] = [
    Command(
        name="install",
        description=(
            "Create .lambdamesh/emulator/venv (Python 3.13, localstack-core and the\n"
            "lambdamesh LocalStack plugins) and the Lambda runtime library. Does nothing\n"
            "when infra/emulator/requirements.txt and the plugins' pyproject.toml are\n"
            "unchanged since the last install.\n\n"
            "examples:\n"
            "  lambdamesh install\n"
            "  lambdamesh install --force"
        ),
        configure=_configure_install,
        run=_run_install,
    ),
    Command(
        name="up",
        description=(
            "Start LocalStack without Docker in the background, listening on loopback\n"
            "only, with state and logs under .lambdamesh/run/<port>/, and wait until it\n"
            "is healthy. Finds and reports an emulator already running on the port.\n"
            f"With --endpoint (or ${ENDPOINT_ENV}) only checks that LocalStack's health.\n\n"
            "examples:\n"
            "  lambdamesh up\n"
            "  lambdamesh up --port 4567\n"
            f"  {ENDPOINT_ENV}=http://127.0.0.1:4566 lambdamesh up   # LocalStack in Docker"
        ),
        configure=_configure_up,
        run=_run_up,
    ),
    Command(
        name="down",
        description=(
            "Stop the embedded LocalStack on --port: SIGTERM to its process group, SIGKILL\n"
            "after 10 s, and no function process left behind. An external LocalStack\n"
            "(--endpoint) is never stopped.\n\n"
            "examples:\n"
            "  lambdamesh down\n"
            "  lambdamesh down --port 4567"
        ),
        configure=_configure_down,
        run=_run_down,
    ),
    Command(
        name="status",
        description=(
            "Show whether the emulator runs, where, since when, how much memory it uses and\n"
            "the state of every service; what `lambdamesh deploy` deployed (API URLs and\n"
            "functions); the topics; every queue and dead-letter queue with its waiting and\n"
            "in-flight messages, a DLQ holding messages flagged with the command to look.\n\n"
            "examples:\n"
            "  lambdamesh status\n"
            "  lambdamesh status --json | jq '.messaging.dead_letter_queues[] | select(.waiting)'"
        ),
        configure=_configure_status,
        run=_run_status,
    ),
    Command(
        name="env",
        description=(
            "Print shell `export` lines for the emulator in use (the embedded one on\n"
            f"--port / ${PORT_ENV}, or ${ENDPOINT_ENV}'s): AWS_ENDPOINT_URL, LOCALSTACK_HOST,\n"
            "the region and LocalStack's test credentials. Fails, printing nothing, when no\n"
            "LocalStack answers there.\n\n"
            "examples:\n"
            '  eval "$(lambdamesh env)" && awslocal sqs list-queues\n'
            '  eval "$(lambdamesh env --service users)"   # + the users function\'s settings\n'
            "  LAMBDAMESH_PORT=4600 lambdamesh env"
        ),
        configure=_configure_env,
        run=_run_env,
    ),
]
"""``install``, ``up``, ``down``, ``status`` and ``env``, in that order."""
