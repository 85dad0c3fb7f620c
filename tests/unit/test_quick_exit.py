"""The emulator's process ends once the shutdown it was asked for is done (no LocalStack)."""

from __future__ import annotations

import threading
from types import ModuleType

from lambdamesh_localstack.quick_exit import exiting_when_asked, patch_runtime


class LocalstackRuntime:
    """LocalStack's runtime, as far as its last step goes."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.exit_code = 0
        self.cleaned_up = False

    def _on_return(self) -> None:
        self.cleaned_up = True


def test_after_an_asked_for_shutdown_the_process_ends_with_the_runtimes_exit_code() -> None:
    # GIVEN a runtime whose shutdown was asked for, with exit code 3
    exits: list[int] = []
    on_return = exiting_when_asked(exits.append)(LocalstackRuntime._on_return)
    runtime = LocalstackRuntime()
    runtime.stopping.set()
    runtime.exit_code = 3
    # WHEN its last step runs
    on_return(runtime)
    # THEN it cleaned up first, then ended the process with that code
    assert runtime.cleaned_up
    assert exits == [3]


def test_a_runtime_that_returned_on_its_own_goes_back_to_main() -> None:
    # GIVEN a runtime whose server returned without a shutdown being asked for (a crash)
    exits: list[int] = []
    on_return = exiting_when_asked(exits.append)(LocalstackRuntime._on_return)
    runtime = LocalstackRuntime()
    # WHEN its last step runs  THEN the process does not end there: main reports what happened
    on_return(runtime)
    assert runtime.cleaned_up
    assert exits == []


def test_the_runtime_module_is_patched_once() -> None:
    # GIVEN a module holding a runtime class, patched twice
    module = ModuleType("runtime")
    runtime_class: type[LocalstackRuntime] = type("LocalstackRuntime", (LocalstackRuntime,), {})
    module.LocalstackRuntime = runtime_class  # type: ignore[attr-defined]
    patch_runtime(module)
    first = runtime_class._on_return
    patch_runtime(module)
    # THEN the second patch left the first in place
    assert runtime_class._on_return is first
    assert first is not LocalstackRuntime._on_return
