"""The embedded LocalStack: its virtualenv, its settings and its process.

Used by the ``lambdamesh`` command line and by the test suite's ``emulator`` fixture.
boto3 clients for an emulator come from :mod:`lambdamesh.emulator.clients` (not
imported here: boto3 takes a second to import and the CLI must answer at once).
"""

from lambdamesh.emulator.install import InstallError, ensure_emulator_installed
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import (
    EmbeddedLocalStack,
    EmulatorError,
    ExternalLocalStack,
    StartResult,
    StartupFailedError,
)
from lambdamesh.emulator.settings import NonLoopbackRefusedError

__all__ = [
    "EmbeddedLocalStack",
    "EmulatorError",
    "ExternalLocalStack",
    "InstallError",
    "NonLoopbackRefusedError",
    "ProjectPaths",
    "StartResult",
    "StartupFailedError",
    "ensure_emulator_installed",
]
