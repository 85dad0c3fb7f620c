"""Which interpreter on this machine runs a Lambda ``pythonX.Y`` runtime.

The lookup order for ``pythonX.Y``:

1. ``LAMBDAMESH_PYTHON_X_Y`` (e.g. ``LAMBDAMESH_PYTHON_3_12=/usr/bin/python3.12``);
2. the interpreter LocalStack itself runs on, when its version matches;
3. ``pythonX.Y`` on ``PATH``, then pyenv's and the usual system locations.

Every candidate is run once to confirm its version: a pyenv shim for an inactive version exists
on ``PATH`` but fails when run.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import sys

PYTHON_RUNTIME = re.compile(r"^python(?P<major>3)\.(?P<minor>\d+)$")


class UnsupportedRuntimeError(Exception):
    """The process executor cannot run this runtime on this machine."""


def parse_python_runtime(runtime: str | None) -> tuple[int, int] | None:
    """``"python3.12"`` → ``(3, 12)``; anything that is not a Python runtime → ``None``."""
    match = PYTHON_RUNTIME.match(runtime or "")
    if not match:
        return None
    return int(match["major"]), int(match["minor"])


def _reports_version(executable: str, version: tuple[int, int]) -> bool:
    probe = f"import sys; sys.exit(sys.version_info[:2] != {version!r})"
    try:
        completed = subprocess.run(
            [executable, "-I", "-S", "-c", probe], capture_output=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def _candidates(version: tuple[int, int]) -> list[str]:
    major, minor = version
    override = os.environ.get(f"LAMBDAMESH_PYTHON_{major}_{minor}")
    if override:
        return [override]
    name = f"python{major}.{minor}"
    found: list[str] = []
    if sys.version_info[:2] == version:
        found.append(sys.executable)
    if on_path := shutil.which(name):
        found.append(on_path)
    home = os.path.expanduser("~")
    found.extend(sorted(glob.glob(f"{home}/.pyenv/versions/{major}.{minor}*/bin/{name}")))
    found.extend(f"{prefix}/bin/{name}" for prefix in ("/usr/local", "/usr"))
    return found


@functools.cache
def find_interpreter(runtime: str) -> str:
    """Return the path of an interpreter for ``runtime`` or raise `UnsupportedRuntimeError`."""
    version = parse_python_runtime(runtime)
    if version is None:
        raise UnsupportedRuntimeError(
            f"runtime '{runtime}' is not supported by the embedded LocalStack: its process "
            "executor runs Python runtimes (python3.x) only. Use LocalStack in Docker "
            "(localstack-compose.yml) for other runtimes and container images."
        )
    for candidate in _candidates(version):
        if os.access(candidate, os.X_OK) and _reports_version(candidate, version):
            return candidate
    major, minor = version
    raise UnsupportedRuntimeError(
        f"runtime '{runtime}' needs a python{major}.{minor} interpreter on this machine and none "
        f"was found; install one (e.g. 'pyenv install {major}.{minor}') or point "
        f"LAMBDAMESH_PYTHON_{major}_{minor} at it."
    )
