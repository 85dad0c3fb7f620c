"""Start, find, stop and describe the embedded LocalStack process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from lambdamesh.emulator.discarding import discard, discard_leftovers
from lambdamesh.emulator.health import Health, check_health
from lambdamesh.emulator.locking import file_lock
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    EmulatorSettings,
    emulator_environment,
    gateway_server_from,
)
from lambdamesh.emulator.state import STATE_FILE_NAME, RunState, load_live_state

Progress = Callable[[str], None]

LOG_FILE_NAME = "localstack.log"
DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.25
_PROGRESS_EVERY = 5.0
LOCALSTACK_MAIN = "localstack.runtime.main"
"""The module an embedded LocalStack runs as (``python -m localstack.runtime.main``)."""


class EmulatorError(RuntimeError):
    """The emulator could not be started or stopped."""


class StartupFailedError(EmulatorError):
    """LocalStack did not become healthy; carries the end of its log."""

    def __init__(self, reason: str, log_path: Path, log_tail: str) -> None:
        super().__init__(f"{reason}\n--- last lines of {log_path} ---\n{log_tail}")
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail


@dataclass(frozen=True)
class StartResult:
    """The outcome of :meth:`EmbeddedLocalStack.start`.

    Attributes
    ----------
    endpoint_url
        Where the emulator answers.
    pid
        LocalStack's process id.
    reused
        An emulator was already running on the port; nothing was started.
    seconds
        Time from start to healthy (0 when reused).
    """

    endpoint_url: str
    pid: int
    reused: bool
    seconds: float


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    try:
        with path.open(errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return ""


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` (nor on the wildcard address)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    bind_host = "127.0.0.1" if host == "localhost" else host.strip("[]")
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR ignores TIME_WAIT leftovers of a previous run but still
        # fails on a live listener, which is what matters.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind_host, port))
        except OSError:
            return False
    return True


def terminate_process_tree(pid: int, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
    """Stop a session leader, its process group and every descendant.

    SIGTERM first (LocalStack shuts its function processes down itself), SIGKILL
    for whatever is left after ``timeout`` seconds. Descendants are collected
    before signalling, because once LocalStack exits they are re-parented and a
    function process that started its own session is outside the group.

    Parameters
    ----------
    pid
        The session leader (started with ``start_new_session=True``).
    timeout
        Seconds to wait after SIGTERM.
    """
    members: list[psutil.Process] = []
    try:
        leader = psutil.Process(pid)
        members = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        pass
    _signal_group(pid, signal.SIGTERM)
    for member in members:
        _signal_quietly(member, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=timeout)
    _signal_group(pid, signal.SIGKILL)
    for member in alive:
        _signal_quietly(member, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _signal_quietly(process: psutil.Process, signum: signal.Signals) -> None:
    with contextlib.suppress(psutil.Error):
        process.send_signal(signum)


def _rss(process: psutil.Process) -> tuple[int, int]:
    """RSS of the process alone, and of it plus all its descendants."""
    own = process.memory_info().rss
    total = own
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return own, total


def _health_fields(health: Health) -> dict[str, Any]:
    return {
        "healthy": health.healthy,
        "ready": health.ready,
        "version": health.version,
        "services": health.services,
    }


class EmbeddedLocalStack:
    """LocalStack running on this machine, without Docker, in its own venv.

    Parameters
    ----------
    port
        Gateway port.
    run_dir
        State, logs, tmp and cache; ``.lambdamesh/run/<port>/`` by default.
    host
        Bind address; loopback unless ``allow_non_loopback``.
    allow_non_loopback
        Opt in to a non-loopback ``host`` (remote code execution risk).
    paths
        The project's paths; discovered from the package location by default.
    gateway_server
        LocalStack's gateway server plugin; ``$LAMBDAMESH_GATEWAY_SERVER``, else ``loopback``
        (see :data:`lambdamesh.emulator.settings.GATEWAY_SERVERS`).

    Raises
    ------
    lambdamesh.emulator.settings.NonLoopbackRefusedError
        For a non-loopback ``host`` without ``allow_non_loopback``.
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        run_dir: Path | None = None,
        *,
        host: str = DEFAULT_HOST,
        allow_non_loopback: bool = False,
        paths: ProjectPaths | None = None,
        gateway_server: str | None = None,
    ) -> None:
        self.paths = paths or ProjectPaths.discover()
        self.settings = EmulatorSettings(
            port=port,
            run_dir=(run_dir or self.paths.run_dir(port)).resolve(),
            lambda_runtime_dir=self.paths.lambda_runtime,
            host=host,
            allow_non_loopback=allow_non_loopback,
            gateway_server=gateway_server or gateway_server_from(os.environ),
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The gateway port."""
        return self.settings.port

    @property
    def endpoint_url(self) -> str:
        """Where clients reach this emulator."""
        return self.settings.endpoint_url

    @property
    def home(self) -> Path:
        """The run directory: state, logs, tmp and cache."""
        return self.settings.run_dir

    @property
    def log_path(self) -> Path:
        """LocalStack's stdout and stderr."""
        return self.home / LOG_FILE_NAME

    @property
    def state_file(self) -> Path:
        """Records pid, port, endpoint and start time while it runs."""
        return self.home / STATE_FILE_NAME

    @property
    def pid(self) -> int | None:
        """LocalStack's pid while it runs."""
        state = self.running()
        return state.pid if state else None

    def running(self) -> RunState | None:
        """The state of the live LocalStack of this run dir; removes a stale state file."""
        return load_live_state(self.state_file)

    def start(
        self, timeout: float = DEFAULT_START_TIMEOUT, progress: Progress = print
    ) -> StartResult:
        """Start LocalStack, or find the one already running here, and wait until healthy.

        Parameters
        ----------
        timeout
            Seconds to wait for health.
        progress
            Receives progress lines.

        Raises
        ------
        EmulatorError
            When the emulator is not installed or the port is taken by something else.
        StartupFailedError
            When LocalStack exits or is not healthy in time (it is then stopped).
        """
        # Two concurrent ``up`` on one port: the second waits and then finds the first.
        with file_lock(self.home / "start.lock"):
            existing = self.running()
            if existing is not None:
                seconds = self._wait_healthy(existing.pid, time.monotonic(), timeout, progress)
                return StartResult(existing.endpoint, existing.pid, reused=True, seconds=seconds)
            return self._launch(timeout, progress)

    def _launch(self, timeout: float, progress: Progress) -> StartResult:
        python = self.paths.venv_python
        if not python.exists():
            raise EmulatorError(f"the emulator is not installed ({python} missing): run install")
        if not port_is_free(self.settings.host, self.port):
            raise EmulatorError(
                f"port {self.port} is in use by another program; choose one with --port"
            )
        # A fresh emulator: what an earlier one on this port unzipped is garbage (see stop).
        discard_leftovers(self.settings.tmp_dir.parent)
        discard(self.settings.tmp_dir)
        for directory in (
            self.settings.tmp_dir,
            self.settings.cache_dir,
            self.settings.filesystem_root,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        # plux caches entry points; a stale cache hides newly installed plugins.
        shutil.rmtree(self.settings.plux_cache, ignore_errors=True)
        progress(f"==> starting LocalStack on {self.endpoint_url} (log: {self.log_path})")
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(python), "-m", LOCALSTACK_MAIN],
                env=emulator_environment(self.settings),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid = self._process.pid
        try:
            RunState(
                pid=pid,
                port=self.port,
                host=self.settings.host,
                endpoint=self.endpoint_url,
                started_at=time.time(),
                run_dir=str(self.home),
                create_time=psutil.Process(pid).create_time(),
            ).write(self.state_file)
            seconds = self._wait_healthy(pid, started, timeout, progress)
        except psutil.NoSuchProcess:
            self.stop()
            raise StartupFailedError(
                "LocalStack exited at once", self.log_path, tail(self.log_path)
            ) from None
        except StartupFailedError:
            self.stop()
            raise
        return StartResult(self.endpoint_url, pid, reused=False, seconds=seconds)

    def _wait_healthy(self, pid: int, started: float, timeout: float, progress: Progress) -> float:
        next_report = started + _PROGRESS_EVERY
        while True:
            if not self._alive(pid):
                raise StartupFailedError(
                    "LocalStack exited during startup", self.log_path, tail(self.log_path)
                )
            if check_health(self.endpoint_url, timeout=1.0).healthy:
                return time.monotonic() - started
            now = time.monotonic()
            if now - started > timeout:
                raise StartupFailedError(
                    f"LocalStack was not healthy after {timeout:.0f} s",
                    self.log_path,
                    tail(self.log_path),
                )
            if now >= next_report:
                progress(f"    ... waiting for LocalStack to be ready ({now - started:.0f} s)")
                next_report = now + _PROGRESS_EVERY
            time.sleep(_POLL_INTERVAL)

    def _alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        return self.running() is not None

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
        """Stop LocalStack and every process it started; remove the state file and its
        scratch directory (every function's unzipped code: :mod:`lambdamesh.emulator.discarding`).

        Returns
        -------
        bool
            Whether there was something to stop.
        """
        state = self.running()
        pid = state.pid if state else None
        if pid is None and self._process is not None and self._process.poll() is None:
            pid = self._process.pid
        if pid is not None:
            terminate_process_tree(pid, timeout)
        if self._process is not None:
            # Reap our own child so that it does not linger as a zombie.
            self._process.wait()
            self._process = None
        self.state_file.unlink(missing_ok=True)
        if pid is not None:
            discard(self.settings.tmp_dir)
        return pid is not None

    def status(self) -> dict[str, Any]:
        """A JSON-ready description: running, endpoint, pid, uptime, RSS, services' health."""
        state = self.running()
        description: dict[str, Any] = {
            "running": False,
            "external": False,
            "endpoint": self.endpoint_url,
            "port": self.port,
            "pid": None,
            "run_dir": str(self.home),
            "log": str(self.log_path),
        }
        process = state.process() if state else None
        if state is None or process is None:
            return description
        try:
            rss, rss_total = _rss(process)
        except psutil.Error:
            return description
        description.update(
            running=True,
            endpoint=state.endpoint,
            pid=state.pid,
            started_at=state.started_at,
            uptime_seconds=round(time.time() - state.started_at, 1),
            rss_bytes=rss,
            rss_with_children_bytes=rss_total,
        )
        description.update(_health_fields(check_health(state.endpoint)))
        return description


class ExternalLocalStack:
    """A LocalStack someone else runs (Docker, another machine): checked, never managed.

    Parameters
    ----------
    endpoint_url
        Its base URL, e.g. ``http://127.0.0.1:4566``.
    """

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")

    def health(self) -> Health:
        """Its current health."""
        return check_health(self.endpoint_url)

    def wait_healthy(self, timeout: float = DEFAULT_START_TIMEOUT) -> Health:
        """Wait up to ``timeout`` seconds for it to be healthy; return the last health read."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if health.healthy or time.monotonic() >= deadline:
                return health
            time.sleep(_POLL_INTERVAL)

    def status(self) -> dict[str, Any]:
        """A JSON-ready description, in the same shape as the embedded one's."""
        health = self.health()
        description: dict[str, Any] = {
            "running": health.answering,
            "external": True,
            "endpoint": self.endpoint_url,
            "port": _port_of(self.endpoint_url),
            "pid": None,
        }
        description.update(_health_fields(health))
        return description


def _port_of(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None
