"""Running the ``lambdamesh`` command line against the emulator, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import RunningEmulator

LAMBDAMESH = Path(sys.executable).with_name("lambdamesh")
"""The project virtualenv's ``lambdamesh``."""


def run_lambdamesh(emulator: RunningEmulator, *args: str) -> str:
    """Run ``lambdamesh ARGS --endpoint <emulator>``, which must succeed; its standard output."""
    completed = subprocess.run(
        [str(LAMBDAMESH), *args, "--endpoint", emulator.endpoint_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout
