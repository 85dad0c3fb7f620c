"""The emulator's CloudFormation polls a resource still being made every 50 ms (no LocalStack)."""

from __future__ import annotations

import doctest
from types import ModuleType
from typing import Any

from lambdamesh_localstack import resource_polling
from lambdamesh_localstack.resource_polling import POLL_INTERVAL_S, patch_resource_provider


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run  THEN each gives what it shows
    assert doctest.testmod(resource_polling).failed == 0


def test_the_executors_loop_pauses_briefly_unless_its_caller_chooses_the_pause() -> None:
    # GIVEN a module whose executor's loop reports the pause it was given
    class ResourceProviderExecutor:
        def deploy_loop(
            self,
            provider: Any,
            resource: Any,
            payload: Any,
            max_timeout: int = 300,
            sleep_time: float = 1,
        ) -> float:
            return sleep_time

    module = ModuleType("resource_provider")
    module.ResourceProviderExecutor = ResourceProviderExecutor  # type: ignore[attr-defined]
    # WHEN the module is patched, twice
    patch_resource_provider(module)
    patch_resource_provider(module)
    executor = ResourceProviderExecutor()
    # THEN the engine's calls (which choose no pause) pause 50 ms; a chosen pause is kept,
    # by keyword or by position
    assert executor.deploy_loop("p", {}, {}) == POLL_INTERVAL_S == 0.05
    assert executor.deploy_loop("p", {}, {}, sleep_time=2.0) == 2.0
    assert executor.deploy_loop("p", {}, {}, 300, 3.0) == 3.0
