"""Where the embedded LocalStack keeps its virtualenv, its state and its logs.

Everything lives under ``<project root>/.lambdamesh/`` (gitignored), never in
``/var/lib/localstack`` or ``/tmp/localstack``, so several checkouts and several
emulators (one per port) never share files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "LAMBDAMESH_HOME"
"""Environment variable naming the project root (the directory holding ``infra/``)."""

_REQUIREMENTS = Path("infra/emulator/requirements.txt")


class ProjectRootNotFoundError(RuntimeError):
    """The project root (holding ``infra/emulator/requirements.txt``) cannot be found."""


def find_project_root(start: Path | None = None) -> Path:
    """Return the project root.

    ``$LAMBDAMESH_HOME`` wins when set; otherwise the root is the nearest parent of
    this package's location that holds ``infra/emulator/requirements.txt``.

    Parameters
    ----------
    start
        Where to start looking upwards; this module's directory by default.

    Raises
    ------
    ProjectRootNotFoundError
        When no such directory exists.
    """
    configured = os.environ.get(HOME_ENV, "").strip()
    if configured:
        root = Path(configured).expanduser().resolve()
        if not (root / _REQUIREMENTS).is_file():
            raise ProjectRootNotFoundError(
                f"${HOME_ENV}={configured} does not contain {_REQUIREMENTS}"
            )
        return root
    here = (start or Path(__file__)).resolve()
    for candidate in (here, *here.parents):
        if (candidate / _REQUIREMENTS).is_file():
            return candidate
    raise ProjectRootNotFoundError(
        f"no {_REQUIREMENTS} above {here}; set ${HOME_ENV} to the project's root directory"
    )


@dataclass(frozen=True)
class ProjectPaths:
    """The project-local files and directories the launcher reads and writes.

    Attributes
    ----------
    root
        The project root (holds ``pyproject.toml`` and ``infra/``).
    """

    root: Path

    @classmethod
    def discover(cls) -> ProjectPaths:
        """Paths of the project this package belongs to (or ``$LAMBDAMESH_HOME``)."""
        return cls(find_project_root())

    @property
    def requirements(self) -> Path:
        """The emulator's pinned requirements (``localstack-core`` and its pins)."""
        return self.root / _REQUIREMENTS

    @property
    def plugins_dir(self) -> Path:
        """The ``lambdamesh-localstack`` plugin distribution, installed editable."""
        return self.root / "infra" / "localstack-plugins"

    @property
    def compose_file(self) -> Path:
        """``localstack-compose.yml``: the same emulator in Docker."""
        return self.root / "localstack-compose.yml"

    @property
    def state_root(self) -> Path:
        """``.lambdamesh/``: everything generated, gitignored."""
        return self.root / ".lambdamesh"

    @property
    def emulator_dir(self) -> Path:
        """Holds the emulator's virtualenv, the Lambda runtime library and the install marker."""
        return self.state_root / "emulator"

    @property
    def venv(self) -> Path:
        """The emulator's own Python 3.13 virtualenv."""
        return self.emulator_dir / "venv"

    @property
    def venv_python(self) -> Path:
        """The emulator virtualenv's interpreter."""
        return self.venv / "bin" / "python"

    @property
    def lambda_runtime(self) -> Path:
        """Libraries every function may import besides its own package (boto3, as on AWS)."""
        return self.emulator_dir / "lambda-runtime"

    @property
    def install_marker(self) -> Path:
        """Records the fingerprint of the inputs of the last complete install."""
        return self.emulator_dir / "installed.json"

    @property
    def install_lock(self) -> Path:
        """Serialises concurrent installs."""
        return self.state_root / "emulator.lock"

    @property
    def run_root(self) -> Path:
        """Parent of the per-port run directories of ``lambdamesh up``."""
        return self.state_root / "run"

    @property
    def test_runs(self) -> Path:
        """Parent of the run directories of emulators started by the test suite."""
        return self.state_root / "test-runs"

    def run_dir(self, port: int) -> Path:
        """The run directory (state, logs, tmp, cache) of the emulator on ``port``."""
        return self.run_root / str(port)
