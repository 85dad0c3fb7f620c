"""Command-line arguments shared by several ``lambdamesh`` subcommands."""

from __future__ import annotations

import argparse
import os

from lambdamesh.emulator.settings import DEFAULT_PORT

ENDPOINT_ENV = "LAMBDAMESH_ENDPOINT"
"""Names a LocalStack someone else runs (e.g. in Docker); the CLI then never starts one."""

PORT_ENV = "LAMBDAMESH_PORT"
"""The embedded emulator's port when ``--port`` is not given (``DEFAULT_PORT`` without it)."""


def default_port() -> int:
    """``$LAMBDAMESH_PORT``, or :data:`DEFAULT_PORT` when it is unset or empty.

    Raises
    ------
    SystemExit
        With a one-line message when the variable is not a port number.
    """
    text = os.environ.get(PORT_ENV, "").strip()
    if not text:
        return DEFAULT_PORT
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise SystemExit(f"error: {PORT_ENV}={text!r} is not a port number (1-65535)")
    return port


def add_port(parser: argparse.ArgumentParser) -> None:
    """``--port``: the embedded emulator's gateway port."""
    parser.add_argument(
        "--port",
        type=int,
        default=default_port(),
        help=f"the embedded LocalStack's gateway port (default: ${PORT_ENV}, else {DEFAULT_PORT})",
    )


def add_endpoint(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
    """``--endpoint URL``: an existing LocalStack instead of the embedded one."""
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        default=os.environ.get(ENDPOINT_ENV) or None,
        help=f"use the LocalStack at URL instead of the embedded one "
        f"(default: ${ENDPOINT_ENV} when set)",
    )


def add_target(
    parser: argparse.ArgumentParser,
    *,
    aws_help: str = "use real AWS",
    prefix_help: str = "the prefix deploy used (default: lambdamesh)",
) -> argparse._MutuallyExclusiveGroup:
    """Where a command finds the deployed system: ``--endpoint URL`` or ``--aws`` (one of
    them), ``--port`` of the embedded emulator otherwise, and ``--stack-prefix``.

    Returns
    -------
    argparse._MutuallyExclusiveGroup
        The ``--endpoint`` / ``--aws`` group, for a command with another source to add to it.
    """
    where = parser.add_mutually_exclusive_group()
    add_endpoint(where)
    where.add_argument("--aws", action="store_true", help=aws_help)
    add_port(parser)
    parser.add_argument("--stack-prefix", default="lambdamesh", help=prefix_help)
    return where


def positive(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1.

    >>> positive("3")
    3
    """
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
