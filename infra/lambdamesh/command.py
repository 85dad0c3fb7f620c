"""What every ``lambdamesh`` subcommand shares: its description, exit codes and printing.

A subcommand is a :class:`Command`; :mod:`lambdamesh.cli` turns a list of them into the
argument parser and dispatches to the chosen one's ``run``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Command:
    """A subcommand.

    Attributes
    ----------
    name
        What is typed after ``lambdamesh``.
    description
        The subcommand's ``--help`` text, examples included.
    configure
        Adds the subcommand's arguments.
    run
        Does the work; returns the exit code.
    """

    name: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    @classmethod
    def of_module(cls, module: ModuleType) -> Command:
        """The command a module defines with ``NAME``, ``DESCRIPTION``, ``configure`` and
        ``run`` (as ``lambdamesh.deploy.command`` does); its one-line summary is listed in
        :data:`lambdamesh.cli.COMMANDS`, so that ``lambdamesh --help`` imports no command."""
        return cls(
            name=module.NAME,
            description=module.DESCRIPTION,
            configure=module.configure,
            run=module.run,
        )


def say(message: str) -> None:
    """Print a line to standard output at once.

    Parameters
    ----------
    message
        The line, without its newline.
    """
    print(message, flush=True)


def err(message: str) -> None:
    """Print a line to standard error at once.

    Parameters
    ----------
    message
        The line, without its newline.
    """
    print(message, file=sys.stderr, flush=True)
