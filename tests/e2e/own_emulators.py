"""Embedded LocalStacks a test starts for itself, beside the session's shared one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from lambdamesh.emulator.install import ensure_emulator_installed
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import EmbeddedLocalStack
from tests.conftest import free_port


@contextmanager
def own_emulator(
    purpose: str, *, gateway_server: str | None = None
) -> Iterator[EmbeddedLocalStack]:
    """A LocalStack of the test's own on a free port, its run directory named after
    ``purpose``; stopped and removed afterwards. Skips the test against an external LocalStack.
    """
    if os.environ.get("LAMBDAMESH_ENDPOINT"):
        pytest.skip("starts an embedded LocalStack of its own; not applicable to an external one")
    paths = ProjectPaths.discover()
    ensure_emulator_installed(paths)
    port = free_port()
    run_dir = paths.test_runs / f"{purpose}-{port}"
    shutil.rmtree(run_dir, ignore_errors=True)
    embedded = EmbeddedLocalStack(port, run_dir, paths=paths, gateway_server=gateway_server)
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
