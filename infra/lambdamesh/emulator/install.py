"""The embedded LocalStack's own virtualenv and the Lambda runtime library.

LocalStack needs its own environment: it depends on ``moto-ext``, which installs the
same ``moto`` module the project's tests use. It also needs Python 3.13. The
install is driven by ``uv`` and keyed by a fingerprint of its inputs, so running
it again is a no-op until ``infra/emulator/requirements.txt`` or the plugin
distribution's ``pyproject.toml`` change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from lambdamesh.emulator.locking import file_lock
from lambdamesh.emulator.paths import ProjectPaths

Progress = Callable[[str], None]

INSTALL_LAYOUT_VERSION = "3"
"""Bump when the install procedure itself changes, so existing installs are redone."""

PYTHON_ENV = "LAMBDAMESH_PYTHON313"
"""Environment variable naming a Python 3.13 interpreter to build the emulator with."""

_REQUIRED_PYTHON = (3, 13)


class InstallError(RuntimeError):
    """The emulator could not be installed."""


def fingerprint(paths: ProjectPaths) -> str:
    """Hash of everything the install depends on.

    Parameters
    ----------
    paths
        The project's paths.

    Returns
    -------
    str
        A hex sha256 over the layout version, the requirements and the plugin pyproject.
    """
    digest = hashlib.sha256(INSTALL_LAYOUT_VERSION.encode())
    for source in (paths.requirements, paths.plugins_dir / "pyproject.toml"):
        digest.update(b"\0" + source.name.encode() + b"\0")
        digest.update(source.read_bytes())
    return digest.hexdigest()


def is_up_to_date(paths: ProjectPaths) -> bool:
    """Whether the marker records the current fingerprint and the venv still exists."""
    try:
        recorded = json.loads(paths.install_marker.read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("fingerprint") == fingerprint(paths)
        and paths.venv_python.exists()
        and paths.lambda_runtime.is_dir()
    )


def pinned_version(requirements: Path, package: str) -> str:
    """Return the ``==`` pin of ``package`` in a compiled requirements file.

    Raises
    ------
    InstallError
        When the package is not pinned there.
    """
    pattern = re.compile(rf"^{re.escape(package)}==([^\s;#]+)", re.IGNORECASE)
    for line in requirements.read_text().splitlines():
        match = pattern.match(line.strip())
        if match:
            return match.group(1)
    raise InstallError(f"{package} is not pinned with == in {requirements}")


def _python_version(interpreter: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [interpreter, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def _candidate_pythons() -> Iterator[str]:
    configured = os.environ.get(PYTHON_ENV, "").strip()
    if configured:
        yield configured
    if sys.version_info[:2] == _REQUIRED_PYTHON:
        # The real interpreter behind the project venv; a venv's own ``python`` would
        # also work but ties the emulator venv to the project venv's lifetime.
        yield getattr(sys, "_base_executable", sys.executable)
        yield sys.executable
    # ``python3.13`` on PATH may be a pyenv shim for a version that is not active,
    # so every candidate is asked for its version rather than trusted by name.
    pyenv_root = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
    yield from sorted(str(p) for p in pyenv_root.glob("versions/3.13*/bin/python3.13"))
    for name in ("python3.13", "/usr/local/bin/python3.13", "/usr/bin/python3.13"):
        found = shutil.which(name)
        if found:
            yield found


def find_python313() -> str:
    """Return a working Python 3.13 interpreter.

    Tries ``$LAMBDAMESH_PYTHON313``, the interpreter running this code (when it is
    3.13), pyenv's installs and ``python3.13`` on ``PATH``, in that order.

    Raises
    ------
    InstallError
        When none of them runs as Python 3.13.
    """
    for candidate in _candidate_pythons():
        if _python_version(candidate) == _REQUIRED_PYTHON:
            return candidate
    raise InstallError(
        f"Python 3.13 not found; install it (e.g. 'pyenv install 3.13') or set ${PYTHON_ENV}"
    )


def find_uv() -> str:
    """Return the ``uv`` executable.

    Prefers the one installed next to the running interpreter (the project venv's),
    then the ``uv`` package's own lookup, then ``PATH``.

    Raises
    ------
    InstallError
        When ``uv`` is nowhere to be found.
    """
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found, unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    raise InstallError("uv not found: run 'make setup' (it installs uv into .venv)")


def _run(command: Sequence[str], progress: Progress) -> None:
    progress(f"    $ {' '.join(command)}")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    # The project venv must not leak into the emulator's: uv would install there.
    env.pop("VIRTUAL_ENV", None)
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise InstallError(f"command failed with exit code {completed.returncode}: {command[0]}")


def _install(paths: ProjectPaths, progress: Progress, *, fresh: bool) -> None:
    uv = find_uv()
    venv_python = str(paths.venv_python)
    if fresh or _python_version(venv_python) != _REQUIRED_PYTHON:
        progress("==> creating emulator virtualenv (one time, ~30-60 s)...")
        _run([uv, "venv", "--clear", "--python", find_python313(), str(paths.venv)], progress)
    # ``sync`` (not ``install``) makes an existing venv match the pins exactly, so an
    # update only touches what changed and never wipes a venv a running emulator uses.
    progress("==> installing LocalStack and its pins into it...")
    # Bytecode compiled at install: without it every start compiles LocalStack from source
    # (measured: Ready after 5.1-5.8 s instead of 1.8 s when PYTHONDONTWRITEBYTECODE is set,
    # as it is on many CI machines and containers).
    _run(
        [
            uv,
            "pip",
            "sync",
            "--compile-bytecode",
            "--python",
            venv_python,
            str(paths.requirements),
        ],
        progress,
    )
    progress("==> installing the lambdamesh LocalStack plugins (editable)...")
    _run(
        [uv, "pip", "install", "--python", venv_python, "--no-deps", "-e", str(paths.plugins_dir)],
        progress,
    )
    boto3 = pinned_version(paths.requirements, "boto3")
    progress(f"==> installing the Lambda runtime library (boto3=={boto3})...")
    shutil.rmtree(paths.lambda_runtime, ignore_errors=True)
    _run(
        [
            uv,
            "pip",
            "install",
            "--python",
            venv_python,
            "--compile-bytecode",
            "--target",
            str(paths.lambda_runtime),
            # botocore & co. at the emulator's versions, as one AWS runtime ships them.
            "--constraint",
            str(paths.requirements),
            f"boto3=={boto3}",
        ],
        progress,
    )


def ensure_emulator_installed(
    paths: ProjectPaths | None = None, progress: Progress = print, *, force: bool = False
) -> Path:
    """Install the emulator's virtualenv unless it is already up to date.

    Safe to call from several processes at once: installs are serialised by a file
    lock and the second caller finds the first one's work done.

    Parameters
    ----------
    paths
        The project's paths; discovered from the package location by default.
    progress
        Receives one line per step.
    force
        Reinstall even when the marker says the install is current.

    Returns
    -------
    Path
        The emulator virtualenv's Python interpreter.

    Raises
    ------
    InstallError
        When a step fails (its output has been shown).
    """
    paths = paths or ProjectPaths.discover()
    if not force and is_up_to_date(paths):
        return paths.venv_python
    with file_lock(paths.install_lock):
        if not force and is_up_to_date(paths):
            progress("==> emulator virtualenv installed by a concurrent run")
            return paths.venv_python
        started = time.monotonic()
        paths.install_marker.unlink(missing_ok=True)
        _install(paths, progress, fresh=force)
        marker = {"fingerprint": fingerprint(paths), "installed_at": time.time()}
        temporary = paths.install_marker.with_suffix(".tmp")
        temporary.write_text(json.dumps(marker, indent=2) + "\n")
        temporary.replace(paths.install_marker)
        progress(f"==> emulator installed in {time.monotonic() - started:.0f} s: {paths.venv}")
    return paths.venv_python
