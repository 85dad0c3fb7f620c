"""``lambdamesh deploy --dry-run --endpoint``: the change set of every stack of the deployed
system, created, read and deleted on the emulator; nothing executed, nothing left behind."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import RunningEmulator
from tests.e2e.cli_support import run_lambdamesh
from tests.e2e.conftest import SERVICES, DeployedSystem


def _stacks(cfn: Any) -> dict[str, tuple[str, str]]:
    """Every live stack of the system: status and last update time."""
    found = {}
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            if stack["StackName"].startswith("lambdamesh-"):
                updated = str(stack.get("LastUpdatedTime", stack["CreationTime"]))
                found[stack["StackName"]] = (stack["StackStatus"], updated)
    return found


def test_a_dry_run_on_the_deployed_system_previews_every_stack_and_changes_none(
    emulator: RunningEmulator, deployed: DeployedSystem
) -> None:
    # GIVEN the deployed system
    cfn = emulator.client("cloudformation")
    before = _stacks(cfn)
    # WHEN a dry run previews it against the emulator
    previews = json.loads(run_lambdamesh(emulator, "deploy", "--dry-run", "--json"))
    # THEN every stack has a preview, as an update of what is there (the templates of the
    # topology, unchanged, would change nothing)
    by_stack = {preview["stack"]: preview for preview in previews}
    expected = {"lambdamesh-shared", "lambdamesh-messaging"} | {
        f"lambdamesh-{service}" for service in SERVICES
    }
    assert set(by_stack) == expected
    assert all(preview["action"] in ("update", "none") for preview in previews), previews
    assert by_stack["lambdamesh-shared"]["action"] == "none"
    assert by_stack["lambdamesh-messaging"]["action"] == "none"
    # AND no stack was touched and no change set is left
    assert _stacks(cfn) == before
    for stack in expected:
        assert cfn.list_change_sets(StackName=stack)["Summaries"] == [], stack
