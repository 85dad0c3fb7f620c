"""The emulator install: fingerprint, marker, pins and concurrent installs."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from lambdamesh.emulator import install
from lambdamesh.emulator.install import (
    InstallError,
    ensure_emulator_installed,
    find_python313,
    fingerprint,
    is_up_to_date,
    pinned_version,
)
from lambdamesh.emulator.paths import ProjectPaths

REQUIREMENTS = "boto3==1.42.54            # via localstack-core\nlocalstack-core==4.14.0\n"


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    """A project tree with the two files the install depends on."""
    paths = ProjectPaths(tmp_path)
    paths.requirements.parent.mkdir(parents=True)
    paths.requirements.write_text(REQUIREMENTS)
    paths.plugins_dir.mkdir(parents=True)
    (paths.plugins_dir / "pyproject.toml").write_text('[project]\nname = "plugins"\n')
    return paths


class FakeInstall:
    """Stands in for the uv steps: creates what a real install leaves behind."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls = 0
        self.seconds = seconds
        self._lock = threading.Lock()

    def __call__(self, paths: ProjectPaths, progress: object, *, fresh: bool) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        paths.venv_python.parent.mkdir(parents=True, exist_ok=True)
        paths.venv_python.touch()
        paths.lambda_runtime.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def fake_install(monkeypatch: pytest.MonkeyPatch) -> FakeInstall:
    fake = FakeInstall(seconds=0.2)
    monkeypatch.setattr(install, "_install", fake)
    return fake


def test_fingerprint_changes_with_requirements_and_plugin_pyproject(project: ProjectPaths) -> None:
    # GIVEN a fingerprint of the current inputs
    before = fingerprint(project)
    # WHEN the requirements change  THEN so does the fingerprint
    project.requirements.write_text(REQUIREMENTS + "cbor2==5.9.0\n")
    after_requirements = fingerprint(project)
    assert after_requirements != before
    # WHEN the plugins' pyproject changes  THEN so does the fingerprint
    (project.plugins_dir / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert fingerprint(project) != after_requirements


def test_nothing_installed_is_not_up_to_date(project: ProjectPaths) -> None:
    # GIVEN no marker  WHEN checked  THEN an install is needed
    assert not is_up_to_date(project)


def test_install_runs_once_then_is_a_no_op(
    project: ProjectPaths, fake_install: FakeInstall
) -> None:
    # GIVEN a fresh project
    lines: list[str] = []
    # WHEN installed twice
    ensure_emulator_installed(project, progress=lines.append)
    python = ensure_emulator_installed(project, progress=lines.append)
    # THEN the steps ran once, the marker records the fingerprint, and the venv python is returned
    assert fake_install.calls == 1
    assert json.loads(project.install_marker.read_text())["fingerprint"] == fingerprint(project)
    assert python == project.venv_python
    assert any(line.startswith("==> emulator installed") for line in lines)


def test_changed_requirements_trigger_a_reinstall(
    project: ProjectPaths, fake_install: FakeInstall
) -> None:
    # GIVEN an installed emulator
    ensure_emulator_installed(project, progress=lambda _: None)
    # WHEN the requirements change and install runs again
    project.requirements.write_text(REQUIREMENTS.replace("4.14.0", "4.14.1"))
    ensure_emulator_installed(project, progress=lambda _: None)
    # THEN the steps ran again
    assert fake_install.calls == 2


def test_deleted_venv_triggers_a_reinstall(
    project: ProjectPaths, fake_install: FakeInstall
) -> None:
    # GIVEN an installed emulator whose venv was deleted
    ensure_emulator_installed(project, progress=lambda _: None)
    project.venv_python.unlink()
    # WHEN install runs again  THEN the steps ran again
    ensure_emulator_installed(project, progress=lambda _: None)
    assert fake_install.calls == 2


def test_force_reinstalls_an_up_to_date_emulator(
    project: ProjectPaths, fake_install: FakeInstall
) -> None:
    # GIVEN an installed emulator  WHEN install is forced  THEN the steps run again
    ensure_emulator_installed(project, progress=lambda _: None)
    ensure_emulator_installed(project, progress=lambda _: None, force=True)
    assert fake_install.calls == 2


def test_concurrent_installs_install_once(project: ProjectPaths, fake_install: FakeInstall) -> None:
    # GIVEN three installs started together on a fresh project
    threads = [
        threading.Thread(target=ensure_emulator_installed, args=(project, lambda _: None))
        for _ in range(3)
    ]
    # WHEN they all finish
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN the file lock let only the first one do the work
    assert fake_install.calls == 1
    assert is_up_to_date(project)


def test_a_failed_install_leaves_no_marker(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an install step that fails
    def failing(paths: ProjectPaths, progress: object, *, fresh: bool) -> None:
        raise InstallError("uv failed")

    monkeypatch.setattr(install, "_install", failing)
    # WHEN installing  THEN the error surfaces and nothing claims to be installed
    with pytest.raises(InstallError):
        ensure_emulator_installed(project, progress=lambda _: None)
    assert not project.install_marker.exists()


def test_boto3_pin_is_read_from_compiled_requirements(project: ProjectPaths) -> None:
    # GIVEN compiled requirements with annotations  WHEN the pin is read  THEN it is exact
    assert pinned_version(project.requirements, "boto3") == "1.42.54"
    assert pinned_version(project.requirements, "localstack-core") == "4.14.0"


def test_missing_pin_is_an_error(project: ProjectPaths) -> None:
    # GIVEN requirements without the package  WHEN its pin is read  THEN it is an error
    with pytest.raises(InstallError, match="requests"):
        pinned_version(project.requirements, "requests")


def test_python313_is_found_and_really_is_313() -> None:
    # GIVEN this machine  WHEN a Python 3.13 is looked for
    python = find_python313()
    # THEN it exists (the project itself runs on 3.13)
    assert Path(python).exists()
    assert sys.version_info[:2] == (3, 13)


def test_project_paths_keep_everything_under_dot_lambdamesh(tmp_path: Path) -> None:
    # GIVEN a project root  WHEN its generated paths are listed
    paths = ProjectPaths(tmp_path)
    generated = [
        paths.venv,
        paths.lambda_runtime,
        paths.install_marker,
        paths.install_lock,
        paths.run_dir(4566),
        paths.test_runs,
    ]
    # THEN every one of them is below .lambdamesh/
    assert all(path.is_relative_to(tmp_path / ".lambdamesh") for path in generated)
    assert paths.run_dir(4566) == tmp_path / ".lambdamesh" / "run" / "4566"
