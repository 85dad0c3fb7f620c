"""Killing the embedded LocalStack leaves no function process behind; stopping it leaves none of
what it unzipped."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from lambdamesh.emulator.clients import emulator_client
from lambdamesh.emulator.process import EmbeddedLocalStack
from tests.e2e import own_emulators
from tests.e2e.lambda_support import create_function, invoke, wait_until

PID_OF_PROCESS = """
    import os

    def handler(event, context):
        return os.getpid()
"""


@pytest.fixture
def own_emulator() -> Iterator[EmbeddedLocalStack]:
    """A LocalStack of this test's own: it is going to be killed or stopped."""
    with own_emulators.own_emulator("orphans") as embedded:
        yield embedded


def test_sigkill_of_localstack_ends_its_function_processes(
    own_emulator: EmbeddedLocalStack,
) -> None:
    # GIVEN two warm functions, each with its own process
    lambda_client = emulator_client(own_emulator.endpoint_url, "lambda")
    function_pids = []
    for _ in range(2):
        name = create_function(lambda_client, PID_OF_PROCESS)
        pid, error = invoke(lambda_client, name)
        assert error is None
        function_pids.append(pid)
    localstack_pid = own_emulator.pid
    assert localstack_pid is not None
    assert all(psutil.pid_exists(pid) for pid in function_pids)
    # WHEN LocalStack alone is killed without a chance to clean up
    os.kill(localstack_pid, signal.SIGKILL)

    # THEN every function process exits by itself
    def all_gone() -> bool | None:
        alive = [pid for pid in function_pids if _alive(pid)]
        return True if not alive else None

    wait_until(all_gone, timeout_s=15)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_stopped_emulator_leaves_no_unzipped_code_behind(
    own_emulator: EmbeddedLocalStack,
) -> None:
    # GIVEN a function invoked once: its code unzipped in the emulator's scratch directory
    lambda_client = emulator_client(own_emulator.endpoint_url, "lambda")
    _, error = invoke(lambda_client, create_function(lambda_client, PID_OF_PROCESS))
    assert error is None
    scratch = own_emulator.settings.tmp_dir
    assert any(scratch.rglob("app.py"))
    # WHEN the emulator is stopped
    own_emulator.stop()
    # THEN its scratch directory is gone at once, and what it held soon after
    assert not scratch.exists()
    wait_until(lambda: None if any(scratch.parent.glob(".discarded-*")) else True, timeout_s=15)
