"""Every shell block of the README runs as written, against the test session's emulator.

The blocks run in order in one bash, from the repository's root, with ``LAMBDAMESH_ENDPOINT``
naming the session's emulator (so every ``lambdamesh`` command, ``make up`` included, uses it and
none starts or stops another) — the way a reader on another port would follow the README.
Blocks annotated ``skip`` say why in the README itself; see :mod:`tests.support.readme`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from tests.conftest import ENDPOINT_ENV, RunningEmulator
from tests.e2e.conftest import DeployedSystem
from tests.support.readme import as_script, shell_blocks

ROOT = Path(__file__).parents[2]


def test_every_shell_block_of_the_readme_runs_as_written(
    emulator: RunningEmulator, deployed: DeployedSystem, tmp_path: Path
) -> None:
    # GIVEN the README's shell blocks, the deployed system and nothing pointing at port 4566
    blocks = shell_blocks(ROOT / "README.md")
    script = as_script(blocks, tmp_path / "background.log")
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LOCALSTACK_", "LAMBDAMESH_"))
    }
    environment[ENDPOINT_ENV] = emulator.endpoint_url
    # WHEN they run in one shell, in order
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, errors = process.communicate(timeout=600)
    finally:
        # Servers a block started in the background, and anything else left of the run.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    # THEN every command succeeded
    last = [line for line in errors.splitlines() if line.startswith("--- README.md line")]
    assert process.returncode == 0, (
        f"the README block at {last[-1] if last else '?'} failed "
        f"(exit {process.returncode}):\n{errors[-3000:]}\n{out[-2000:]}"
    )
    # AND each block that is not skipped ran
    ran = [block for block in blocks if block.skip_reason is None]
    assert len(last) == len(ran)
