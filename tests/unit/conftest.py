"""Fixtures shared by the unit tests of the command line."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with nothing installed or running, selected by LAMBDAMESH_HOME."""
    requirements = tmp_path / "infra" / "emulator" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("localstack-core==4.14.0\n")
    monkeypatch.setenv("LAMBDAMESH_HOME", str(tmp_path))
    monkeypatch.delenv("LAMBDAMESH_ENDPOINT", raising=False)
    return tmp_path
