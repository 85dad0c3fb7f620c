"""The checked-in topology picture (``docs/``) is the picture of what ``lambdamesh deploy``
deploys, read back from the deployed stacks."""

from __future__ import annotations

from pathlib import Path

from lambdamesh.topology.deployed import read_deployed
from lambdamesh.topology.docs import DocsFiles
from lambdamesh.topology.mermaid import render_mermaid
from lambdamesh.topology.svg import svg_hash
from tests.conftest import RunningEmulator
from tests.e2e.cli_support import run_lambdamesh
from tests.e2e.conftest import DeployedSystem

ROOT = Path(__file__).resolve().parents[2]
STALE = "the topology changed: run `lambdamesh topology --write-docs` and commit docs/"


def test_the_checked_in_picture_is_the_deployed_topology(
    emulator: RunningEmulator, deployed: DeployedSystem
) -> None:
    # GIVEN every service deployed under the default prefix
    # WHEN the topology is read back from the deployed stacks and drawn
    topology = read_deployed(emulator.client, "lambdamesh")
    # THEN docs/topology.mmd is that drawing, and docs/topology.svg carries that model's hash
    files = DocsFiles(ROOT)
    assert files.mermaid.read_text() == render_mermaid(topology), STALE
    assert svg_hash(files.svg.read_text()) == topology.content_hash(), STALE


def test_the_command_prints_the_deployed_topology(
    emulator: RunningEmulator, deployed: DeployedSystem
) -> None:
    # GIVEN every service deployed  WHEN `lambdamesh topology` runs against the emulator
    printed = run_lambdamesh(emulator, "topology")
    # THEN it prints the mermaid of what is deployed
    assert printed == render_mermaid(read_deployed(emulator.client, "lambdamesh"))
