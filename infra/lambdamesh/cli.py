"""``lambdamesh``: the project's command line.

A small dispatcher: every subcommand is a :class:`~lambdamesh.command.Command` (a name, a
parser set-up and a handler) defined in its own module and listed in :data:`COMMANDS` with
its one-line summary; adding one is adding an entry. The commands' work lives in their
packages: the emulator's in :mod:`lambdamesh.emulator.commands`, the others in
:mod:`lambdamesh.deploy.command`, :mod:`lambdamesh.dlq.command`,
:mod:`lambdamesh.orders.command`, :mod:`lambdamesh.trace.command`,
:mod:`lambdamesh.dashboard.command`, :mod:`lambdamesh.topology.command`,
:mod:`lambdamesh.openapi_command`, :mod:`lambdamesh.demo`, :mod:`lambdamesh.chaos.command`
and :mod:`lambdamesh.load.command`.

Only the command being run is imported (with what it needs: boto3, pydantic, the event
contracts): ``lambdamesh --help`` imports none, ``lambdamesh env`` the emulator's commands
alone. Importing all of them took ≈ 0.9 s of CPU, paid by every command before.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lambdamesh.command import Command, err


@dataclass(frozen=True)
class ListedCommand:
    """A subcommand as ``lambdamesh --help`` lists it, and where it is defined.

    Attributes
    ----------
    name
        What is typed after ``lambdamesh``.
    summary
        One line for ``lambdamesh --help``.
    module
        The module defining it: with ``COMMANDS`` (a list of :class:`Command`, one of them
        named ``name``) or as :meth:`Command.of_module` reads it.
    """

    name: str
    summary: str
    module: str

    def command(self) -> Command:
        """Import the defining module and return the command."""
        module = importlib.import_module(self.module)
        defined: list[Command] | None = getattr(module, "COMMANDS", None)
        if defined is None:
            return Command.of_module(module)
        return next(command for command in defined if command.name == self.name)


_EMULATOR = "lambdamesh.emulator.commands"

COMMANDS: tuple[ListedCommand, ...] = (
    ListedCommand("install", "create the embedded LocalStack's own virtualenv (once)", _EMULATOR),
    ListedCommand(
        "up", "start the embedded LocalStack (or check LAMBDAMESH_ENDPOINT's)", _EMULATOR
    ),
    ListedCommand("down", "stop the embedded LocalStack and every function process", _EMULATOR),
    ListedCommand(
        "status",
        "show the emulator, the deployed services, topics, queues and DLQ depths",
        _EMULATOR,
    ),
    ListedCommand(
        "env", "print the exports that point aws, awslocal and boto3 at the emulator", _EMULATOR
    ),
    ListedCommand(
        "deploy",
        "package every Chalice app and deploy it as a CloudFormation stack",
        "lambdamesh.deploy.command",
    ),
    ListedCommand(
        "dlq",
        "list dead-letter queues, show their messages and why they failed, redrive them",
        "lambdamesh.dlq.command",
    ),
    ListedCommand(
        "orders",
        "rebuild the orders' read model from their events and report what differs",
        "lambdamesh.orders.command",
    ),
    ListedCommand(
        "trace",
        "draw one request's hops across the services from their logs (tree, Mermaid, JSON)",
        "lambdamesh.trace.command",
    ),
    ListedCommand(
        "dashboard",
        "a live local web page: topology, queue and DLQ depths, orders, timelines, traces",
        "lambdamesh.dashboard.command",
    ),
    ListedCommand(
        "topology",
        "draw the deployed system: services, topics, queues, DLQs and what connects them",
        "lambdamesh.topology.command",
    ),
    ListedCommand(
        "openapi",
        "write every API service's OpenAPI 3.1 document, generated from its routes",
        "lambdamesh.openapi_command",
    ),
    ListedCommand(
        "demo",
        "start the emulator, deploy every service and trace an order journey",
        "lambdamesh.demo",
    ),
    ListedCommand(
        "chaos",
        "place orders while faults are switched on, then check every invariant",
        "lambdamesh.chaos.command",
    ),
    ListedCommand(
        "load",
        "place orders from many clients at once, cold then warm, and print what it took",
        "lambdamesh.load.command",
    ),
)


def build_parser(
    commands: Sequence[ListedCommand] = COMMANDS, chosen: str | None = None
) -> argparse.ArgumentParser:
    """The argument parser with one subparser per command.

    Parameters
    ----------
    commands
        The commands to offer.
    chosen
        The command about to run: only its module is imported and its arguments added; the
        others are only listed. ``None`` sets up every command.
    """
    parser = argparse.ArgumentParser(
        prog="lambdamesh",
        description="Run the lambdamesh serverless e-commerce system on LocalStack, no Docker.",
        epilog="run 'lambdamesh <command> --help' for a command's options and examples",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for listed in commands:
        if chosen is not None and listed.name != chosen:
            subparsers.add_parser(listed.name, help=listed.summary)
            continue
        command = listed.command()
        subparser = subparsers.add_parser(
            listed.name,
            help=listed.summary,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(subparser)
        subparser.set_defaults(handler=command.run)
    return parser


def chosen_command(argv: Sequence[str]) -> str:
    """The command named on a command line: its first word not an option (``""`` if none)."""
    return next((word for word in argv if not word.startswith("-")), "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` by default.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(chosen=chosen_command(arguments)).parse_args(arguments)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
