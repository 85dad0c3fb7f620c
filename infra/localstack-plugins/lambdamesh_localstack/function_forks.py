"""Execution environments forked from a process that has imported boto3 already.

:mod:`lambdamesh_localstack.function_zygote` runs once per interpreter and forks one child per
execution environment (see there for what the child is and why). This module is its executor's
side: :class:`Forks` starts it, asks it for children and hears when they end; a child is a
:class:`ForkedProcess`, which the executor drives as it drives a ``subprocess.Popen`` (its
standard input, ``poll``, ``wait``, ``kill``).

A package that holds ``pydantic`` (:data:`LIBRARY_FAMILIES`) is forked from a forking process
of its own kind: one that imported that library, and what it imports, from a copy of the
package's distributions (:func:`package_libraries`, :func:`link_libraries`), and that serves
only packages holding those distributions at those versions. Importing pydantic, with the
submodules behind its public API, was half of a service environment's start: 123-144 ms of CPU
forked with boto3 only, 59-83 ms with pydantic too (``tests/benchmarks/test_environment_start.py``).
A package without it, or with another version of it, is forked from another process and imports
its own, as a new interpreter would; so is one that declares a pydantic plugin.

``LAMBDAMESH_FORKED_ENVIRONMENTS=0`` starts every environment as a new interpreter instead; so
does any failure to start or reach the forking process (logged once): forking only makes a
start cheaper, never changes what starts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Final

from lambdamesh_localstack.function_zygote import (
    LIBRARIES_ENV,
    PRELOAD_ENV,
    dist_info_release,
    distributions,
    importable_name,
)

LOG = logging.getLogger(__name__)

ZYGOTE: Final = Path(__file__).with_name("function_zygote.py")
ENABLED_ENV: Final = "LAMBDAMESH_FORKED_ENVIRONMENTS"
SOCKET_FD_ENV: Final = "LAMBDAMESH_ZYGOTE_FD"
SPAWN_TIMEOUT_S: Final = 10.0
MAX_PACKET: Final = 64 * 1024


@dataclass(frozen=True)
class LibraryFamily:
    """A library of the packages' own that a forking process may import, and its kin.

    Attributes
    ----------
    members
        The top-level names of the distributions it imports, its own first: a package served
        holds each of them that it holds at all at the same version.
    plugin_group
        The entry-point group of the library's plugins, found when it first needs them: a
        package that declares one is not served (the forking process looked with its own path).
    """

    members: tuple[str, ...]
    plugin_group: str


LIBRARY_FAMILIES: Final[Mapping[str, LibraryFamily]] = MappingProxyType(
    {
        "pydantic": LibraryFamily(
            (
                "pydantic",
                "pydantic_core",
                "typing_extensions",
                "annotated_types",
                "typing_inspection",
            ),
            plugin_group="pydantic",
        ),
    }
)
"""Libraries of the packages' own imported once by a forking process, by module name."""


@dataclass(frozen=True)
class Libraries:
    """Libraries a package holds that a forking process can import for it.

    Attributes
    ----------
    preload
        The modules to import (keys of :data:`LIBRARY_FAMILIES`).
    versions
        ``(top-level name, distribution, version)`` of each family member the package holds:
        the packages one forking process serves hold exactly these.
    """

    preload: tuple[str, ...]
    versions: tuple[tuple[str, str, str], ...]


def entry_point_groups(task_root: str) -> set[str]:
    """The entry-point groups the package's ``*.dist-info`` declare (``entry_points.txt``)."""
    groups: set[str] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(task_root):
            if entry.name.endswith(".dist-info"):
                with contextlib.suppress(OSError):
                    text = Path(entry.path, "entry_points.txt").read_text()
                    groups.update(re.findall(r"^\s*\[([^\]]+)\]", text, re.MULTILINE))
    return groups


def package_libraries(task_root: str) -> Libraries | None:
    """The :data:`LIBRARY_FAMILIES` whose library the package in ``task_root`` holds with its
    ``*.dist-info`` and none of whose plugins it declares; ``None`` when there is none."""
    installed = distributions(task_root)
    held = [name for name in LIBRARY_FAMILIES if name in installed]
    if not held:
        return None
    groups = entry_point_groups(task_root)
    preload = tuple(name for name in held if LIBRARY_FAMILIES[name].plugin_group not in groups)
    if not preload:
        return None
    versions = {
        (member, *installed[member])
        for name in preload
        for member in LIBRARY_FAMILIES[name].members
        if member in installed
    }
    return Libraries(preload, tuple(sorted(versions)))


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (same file system: no bytes copied), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_libraries(task_root: str, libraries: Libraries, target: Path) -> None:
    """Put into ``target`` the package's files of every distribution in ``libraries``: each
    top-level module or package, its bytecode, its ``*.dist-info``.

    The forking process imports from this copy, which outlives the package's directory (a
    deleted function's), so that a module the library imports late is still found."""
    names = {name for name, _, _ in libraries.versions}
    wanted = {(distribution, version) for _, distribution, version in libraries.versions}
    target.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(task_root):
        release = dist_info_release(entry.name)
        keep = release in wanted if release is not None else importable_name(entry) in names
        if not keep:
            continue
        if entry.is_dir():
            shutil.copytree(entry.path, target / entry.name, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, str(target / entry.name))
    bytecode = Path(task_root, "__pycache__")
    if bytecode.is_dir():  # single-file modules' (typing_extensions.py)
        for compiled in bytecode.iterdir():
            if compiled.name.split(".", 1)[0] in names:
                (target / "__pycache__").mkdir(exist_ok=True)
                _link_or_copy(str(compiled), str(target / "__pycache__" / compiled.name))


class ForkUnavailableError(Exception):
    """No child could be forked: start a new interpreter instead."""


def forking_enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether environments are forked (``LAMBDAMESH_FORKED_ENVIRONMENTS``, on by default).

    >>> forking_enabled({}), forking_enabled({"LAMBDAMESH_FORKED_ENVIRONMENTS": "0"})
    (True, False)
    """
    return environ.get(ENABLED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class ForkedProcess:
    """A forked execution environment, driven like ``subprocess.Popen``.

    Parameters
    ----------
    pid
        The child's process id.
    stdin
        The executor's end of the child's standard input.
    """

    def __init__(self, pid: int, stdin: IO[bytes]) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.returncode: int | None = None
        self._ended = threading.Event()

    def ended(self, code: int) -> None:
        """The forking process reported the child's end."""
        self.returncode = code
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"forked environment {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _watch(child: ForkedProcess) -> None:
    """Wait for the end of a child whose forking process is gone; its code is unknown (-1)."""
    try:
        pidfd = os.pidfd_open(child.pid)
    except OSError:  # already ended and reaped
        child.ended(-1)
        return
    try:
        select.select([pidfd], [], [])
    finally:
        os.close(pidfd)
    child.ended(-1)


class Forks:
    """The forking process of one interpreter, and the children it forked.

    Parameters
    ----------
    interpreter
        The Python the children run (the function's runtime).
    runtime_dir
        The runtime's library directory (boto3), imported once in the forking process.
    libraries
        Libraries of the packages' own imported once too, copied from ``task_root``'s package;
        the packages served hold these (see :func:`package_libraries`).
    task_root
        The package to copy ``libraries`` from.
    """

    def __init__(
        self,
        interpreter: str,
        runtime_dir: str,
        libraries: Libraries | None = None,
        task_root: str = "",
    ) -> None:
        self._interpreter = interpreter
        self._runtime_dir = runtime_dir
        self._libraries = libraries
        self._libraries_source = task_root
        self._libraries_dir: Path | None = None
        self._lock = threading.Lock()
        self._refs = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._replied = threading.Condition(self._lock)
        self._children: dict[int, ForkedProcess] = {}
        self._ended_early: dict[int, int] = {}
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def libraries(self) -> Libraries | None:
        """The packages' libraries this forking process imports, if any."""
        return self._libraries

    def spawn(self, env: dict[str, str], cwd: str, output: int, results: int) -> ForkedProcess:
        """Fork a child with these variables and working directory, its standard output and
        error going to ``output`` and its results to ``results`` (the write end of the result
        pipe; the caller closes its own copies of both).

        Raises
        ------
        ForkUnavailableError
            When the forking process cannot be started or does not answer.
        """
        stdin_read, stdin_write = os.pipe()
        try:
            with self._lock:
                pid = self._fork(env, cwd, (stdin_read, output, results))
                child = ForkedProcess(pid, os.fdopen(stdin_write, "wb"))
                code = self._ended_early.pop(pid, None)
                if code is None:
                    self._children[pid] = child
        except BaseException:
            os.close(stdin_write)
            raise
        finally:
            os.close(stdin_read)
        if code is not None:
            child.ended(code)
        return child

    def _fork(self, env: dict[str, str], cwd: str, fds: tuple[int, int, int]) -> int:
        """Ask for a child (under the lock); its process id."""
        server = self._started()
        ref = next(self._refs)
        request = json.dumps({"ref": ref, "env": env, "cwd": cwd}).encode()
        try:
            socket.send_fds(server, [request], list(fds))
        except OSError as error:
            raise ForkUnavailableError(f"the forking process is gone: {error}") from error
        if not self._replied.wait_for(
            lambda: ref in self._replies or self._socket is not server, SPAWN_TIMEOUT_S
        ):
            raise ForkUnavailableError("the forking process did not answer")
        reply = self._replies.pop(ref, None)
        if reply is None or "pid" not in reply:
            detail = reply.get("error") if reply else "it exited"
            raise ForkUnavailableError(f"no fork: {detail}")
        return int(reply["pid"])

    def close(self) -> None:
        """End the forking process (the children it forked go on)."""
        with self._lock:
            server, process = self._socket, self._process
            self._socket = None
        if server is not None:
            # shutdown, not close alone: it wakes the listener blocked in recv, and the forking
            # process sees the end at once.
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        if process is not None:
            process.wait(timeout=10)
        if self._libraries_dir is not None:
            shutil.rmtree(self._libraries_dir.parent, ignore_errors=True)
            self._libraries_dir = None  # copied again if it is started again

    def _library_environment(self) -> dict[str, str]:
        """The variables that make the forking process import :attr:`_libraries` (their copy
        made first, once)."""
        if self._libraries is None:
            return {}
        if self._libraries_dir is None:
            root = Path(tempfile.gettempdir()) / "lambdamesh-libraries"
            root.mkdir(parents=True, exist_ok=True)
            copy = Path(tempfile.mkdtemp(dir=root)) / "lib"
            try:
                link_libraries(self._libraries_source, self._libraries, copy)
            except OSError as error:
                shutil.rmtree(copy.parent, ignore_errors=True)
                raise ForkUnavailableError(f"cannot copy the libraries: {error}") from error
            self._libraries_dir = copy
        return {
            LIBRARIES_ENV: str(self._libraries_dir),
            PRELOAD_ENV: ",".join(self._libraries.preload),
        }

    def _started(self) -> socket.socket:
        """The socket to the forking process, started first if need be (under the lock)."""
        if self._socket is not None and self._process is not None and self._process.poll() is None:
            return self._socket
        libraries = self._library_environment()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [self._interpreter, "-I", "-S", str(ZYGOTE)],
                env={
                    "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "LANG": "en_US.UTF-8",
                    "LAMBDA_RUNTIME_DIR": self._runtime_dir,
                    SOCKET_FD_ENV: str(theirs.fileno()),
                    **libraries,
                },
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                pass_fds=(theirs.fileno(),),
            )
        except OSError as error:
            ours.close()
            raise ForkUnavailableError(f"cannot start {ZYGOTE.name}: {error}") from error
        finally:
            theirs.close()
        self._socket = ours
        threading.Thread(
            target=self._listen, args=(ours,), name="function-forks", daemon=True
        ).start()
        return ours

    def _listen(self, server: socket.socket) -> None:
        """Hear the forking process: spawn replies and children's ends."""
        while True:
            try:
                data = server.recv(MAX_PACKET)
            except OSError:
                data = b""
            if not data:
                with self._lock:
                    if self._socket is server:
                        self._socket = None
                    self._replied.notify_all()
                    orphans, self._children = list(self._children.values()), {}
                for orphan in orphans:  # no one will report their end: watch it here
                    threading.Thread(target=_watch, args=(orphan,), daemon=True).start()
                return
            message = json.loads(data)
            with self._lock:
                if "ref" in message:
                    self._replies[int(message["ref"])] = message
                    self._replied.notify_all()
                    continue
                pid, code = int(message["exited"]), int(message["code"])
                child = self._children.pop(pid) if pid in self._children else None
                if child is None:  # its spawn has not registered it yet
                    self._ended_early[pid] = code
            if child is not None:
                child.ended(code)


_FORKS: dict[tuple[str, str, Libraries | None], Forks] = {}
_FORKS_LOCK = threading.Lock()
_UNFORKABLE: set[tuple[str, str, Libraries]] = set()
"""Library sets whose forking process could not start or import them: forked without them."""


def forks_for(interpreter: str, runtime_dir: str, task_root: str) -> list[Forks]:
    """The forking processes to try for a package, best first: the one that imported its
    libraries too (:func:`package_libraries`), then the one that imported the runtime's only."""
    libraries = package_libraries(task_root)
    keys: list[tuple[str, str, Libraries | None]] = [(interpreter, runtime_dir, None)]
    if libraries is not None and (interpreter, runtime_dir, libraries) not in _UNFORKABLE:
        keys.insert(0, (interpreter, runtime_dir, libraries))
    with _FORKS_LOCK:
        for key in keys:
            if key not in _FORKS:
                _FORKS[key] = Forks(*key, task_root)
        return [_FORKS[key] for key in keys]


def fork_environment(
    interpreter: str, env: dict[str, str], output: int, results: int
) -> ForkedProcess | None:
    """An execution environment forked from the best forking process for its package
    (:func:`forks_for`), or ``None`` when none could fork it (logged): start a new
    interpreter then."""
    runtime_dir, task_root = env.get("LAMBDA_RUNTIME_DIR", ""), env["LAMBDA_TASK_ROOT"]
    for forks in forks_for(interpreter, runtime_dir, task_root):
        try:
            return forks.spawn(env, task_root, output, results)
        except ForkUnavailableError as error:
            if forks.libraries is None:
                LOG.warning("Starting a new interpreter for an execution environment: %s", error)
                return None
            LOG.warning("Forking without the package's libraries imported: %s", error)
            with _FORKS_LOCK:
                _UNFORKABLE.add((interpreter, runtime_dir, forks.libraries))
    return None
