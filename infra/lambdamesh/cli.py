"""``lambdamesh``: the project's command line.

A small dispatcher: every subcommand is a :class:`~lambdamesh.command.Command` (a name, a
parser set-up and a handler) listed in :data:`COMMANDS`; adding one is adding an entry. The
commands' work lives in their packages: the emulator's in :mod:`lambdamesh.emulator.commands`,
the others in :mod:`lambdamesh.deploy.command`, :mod:`lambdamesh.dlq.command`,
:mod:`lambdamesh.openapi_command`, :mod:`lambdamesh.trace.command`,
:mod:`lambdamesh.dashboard.command`, :mod:`lambdamesh.topology.command`,
:mod:`lambdamesh.demo`, :mod:`lambdamesh.chaos.command` and :mod:`lambdamesh.load.command`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lambdamesh import demo, openapi_command
from lambdamesh.chaos import command as chaos_command
from lambdamesh.command import Command, err
from lambdamesh.dashboard import command as dashboard_command
from lambdamesh.deploy import command as deploy_command
from lambdamesh.dlq import command as dlq_command
from lambdamesh.emulator import commands as emulator_commands
from lambdamesh.load import command as load_command
from lambdamesh.orders import command as orders_command
from lambdamesh.topology import command as topology_command
from lambdamesh.trace import command as trace_command

COMMANDS: list[Command] = [
    *emulator_commands.COMMANDS,
    *(
        Command.of_module(module)
        for module in (
            deploy_command,
            dlq_command,
            orders_command,
            trace_command,
            dashboard_command,
            topology_command,
            openapi_command,
            demo,
            chaos_command,
            load_command,
        )
    ),
]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="lambdamesh",
        description="Run the lambdamesh serverless e-commerce system on LocalStack, no Docker.",
        epilog="run 'lambdamesh <command> --help' for a command's options and examples",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for command in commands:
        subparser = subparsers.add_parser(
            command.name,
            help=command.summary,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(subparser)
        subparser.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` by default.
    """
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
