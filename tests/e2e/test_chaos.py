"""The small chaos run on the deployed system: faults on, orders placed, every invariant holds.

The same code path as ``lambdamesh chaos --small`` (``make chaos`` runs the full 1 000 orders):
card declines, consumer processes killed mid-batch, inventory slower than its timeout, a users
outage answering 503, duplicate events and poison events, all switched on through the functions'
configuration; then faults off, every dead-letter queue redriven, and the invariants checked.
"""

from __future__ import annotations

import pytest

from lambdamesh.chaos.command import report_lines
from lambdamesh.chaos.plan import ChaosPlan
from lambdamesh.chaos.runner import run_chaos
from lambdamesh.deploy import Target
from lambdamesh_toolkit.faults import FAULTS_VARIABLE
from tests.conftest import RunningEmulator
from tests.e2e.conftest import DeployedSystem


@pytest.mark.timeout(900)  # a killed or timed-out batch waits out its 60 s visibility timeout
def test_a_small_chaos_run_leaves_every_invariant_intact(
    emulator: RunningEmulator, deployed: DeployedSystem
) -> None:
    # GIVEN the deployed system and the small plan: every fault switched on, rates raised
    target = Target.localstack(emulator.endpoint_url)
    plan = ChaosPlan.small()

    # WHEN orders are placed under the faults, the faults go off and the DLQs are redriven
    chaos = run_chaos(target, deployed.report, plan, seed=7)
    for line in report_lines(chaos):
        print(line)

    # THEN every invariant holds: orders terminal, money and stock and mail right, poison kept
    assert chaos.checks, "no invariant was checked"
    broken = [f"{c.name}: {c.figures} {list(c.examples)}" for c in chaos.checks if not c.holds]
    assert not broken, broken
    # AND the faults really happened: the users API answered 503 during its outage (which
    # orders' own retries or the clients' then rode out: whose, depends on how much of the
    # outage was left when the first orders came), the poison was published, and the
    # functions logged the faults they injected
    assert chaos.faults.get("unavailable", 0) > 0
    assert chaos.poison == plan.poison
    assert sum(chaos.faults.values()) > 0
    # AND no function is left with faults in its configuration
    lambda_client = emulator.client("lambda")
    for service in deployed.services.values():
        for name in service.functions.values():
            configuration = lambda_client.get_function_configuration(FunctionName=name)
            assert FAULTS_VARIABLE not in configuration.get("Environment", {}).get("Variables", {})
