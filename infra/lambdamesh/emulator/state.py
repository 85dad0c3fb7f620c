"""The state file of a running embedded LocalStack and the process it names."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

STATE_FILE_NAME = "emulator.json"


@dataclass(frozen=True)
class RunState:
    """What ``lambdamesh up`` records about the LocalStack it started.

    Attributes
    ----------
    pid
        LocalStack's process id (also its process group and session id).
    port
        The gateway port.
    host
        The bind address.
    endpoint
        The URL clients use.
    started_at
        Unix time of the start.
    run_dir
        Holds state, logs, tmp and cache of this emulator.
    create_time
        The process's creation time as psutil reports it; tells a recycled pid apart.
    """

    pid: int
    port: int
    host: str
    endpoint: str
    started_at: float
    run_dir: str
    create_time: float

    def write(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n")
        temporary.replace(path)

    @classmethod
    def read(cls, path: Path) -> RunState | None:
        """Read a state file; ``None`` when it is missing or unreadable."""
        try:
            raw = json.loads(path.read_text())
            return cls(
                pid=int(raw["pid"]),
                port=int(raw["port"]),
                host=str(raw["host"]),
                endpoint=str(raw["endpoint"]),
                started_at=float(raw["started_at"]),
                run_dir=str(raw["run_dir"]),
                create_time=float(raw["create_time"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def process(self) -> psutil.Process | None:
        """The live process this state names, or ``None`` if it has gone.

        A zombie counts as gone, and so does a process whose creation time differs
        (the pid was recycled by an unrelated program).
        """
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 1.0:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return process


def load_live_state(path: Path) -> RunState | None:
    """Return the state at ``path`` if its process is alive; remove a stale file.

    Parameters
    ----------
    path
        The state file.

    Returns
    -------
    RunState | None
        The state of a live process, else ``None`` (and the stale file is gone).
    """
    state = RunState.read(path)
    if state is not None and state.process() is not None:
        return state
    path.unlink(missing_ok=True)
    return None
