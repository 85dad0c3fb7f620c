"""A process that has imported the Lambda runtime's boto3 and forks execution environments.

Every execution environment of the ``process`` executor is a new interpreter, and most of what
one costs before its handler runs is importing botocore: 220-280 ms of CPU of the 300-450 ms a
service's environment takes to start, on the same cores as everything else. This process
(``<pythonX.Y> -I -S function_zygote.py``, one per interpreter, started by
:mod:`lambdamesh_localstack.function_forks`) imports the runtime's libraries once, then forks a
child for each environment the executor asks for. The child is what ``python -I -S
function_bootstrap.py`` would have been, with boto3 already imported: it takes the
environment's variables, working directory and standard input, output and result pipe, then
runs :mod:`lambdamesh_localstack.function_bootstrap` as its main module.

As on AWS, a deployment package's own copy of a library comes before the runtime's: when the
package holds one of the libraries imported here at another version than the runtime's (or at
a version it does not declare), the child forgets every one of them before the handler is
imported, so the handler imports them from its package as a fresh process would. A package that
carries the runtime's own version of a library (``urllib3``, ``jmespath`` as dependencies of
the services' own) keeps the imported one: the same code.

A forking process may also import libraries of the packages' own (``pydantic`` and what it
imports: ``$LAMBDAMESH_ZYGOTE_PRELOAD`` from ``$LAMBDAMESH_ZYGOTE_LIBRARIES``, a copy of those
libraries made from a package by :mod:`lambdamesh_localstack.function_forks`). It serves only
packages that hold exactly those distributions at exactly those versions (the executor keeps one
forking process per set), so a package without them, or with others, never sees them. Such a
library cannot be forgotten and imported again (``pydantic_core``, as any PyO3 extension, can be
initialised once per process): the directory is off the path again before any child is forked,
and a library that pulled in a module from the runtime's directory ends the process (the
executor then forks from the process without them).

Whatever else the imports brought in (standard-library modules above all) a package may hold a
module of the same name, which a new interpreter would import from the package instead: such a
child replaces itself with a new interpreter running the bootstrap (``exec``: same process, same
descriptors), the one case where forking cannot give what a new process would.

Protocol, on a ``SOCK_SEQPACKET`` socket whose descriptor is ``$LAMBDAMESH_ZYGOTE_FD``, one JSON
document per packet:

- in: ``{"ref": n, "env": {...}, "cwd": "..."}`` with three descriptors (the environment's
  standard input, its standard output and error, its result pipe);
- out: ``{"ref": n, "pid": p}`` once forked (``{"ref": n, "error": "..."}`` if it could not
  be), and ``{"exited": p, "code": c}`` when a child ends (``-N`` for a signal, as
  ``subprocess`` reports it).

Standard library only, as the bootstrap: it runs under whatever interpreter a runtime maps to.
The process exits when the executor's end of the socket closes; the children do not depend on
it (each exits when its own pipes close, as before).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import runpy
import select
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOCKET_FD_ENV = "LAMBDAMESH_ZYGOTE_FD"
RESULT_FD_ENV = "LAMBDAMESH_RESULT_FD"
"""The bootstrap's (``function_bootstrap.RESULT_FD_ENV``): this process imports nothing of the
plugins' package, which its interpreter cannot see."""
RUNTIME_DIR_ENV = "LAMBDA_RUNTIME_DIR"
LIBRARIES_ENV = "LAMBDAMESH_ZYGOTE_LIBRARIES"
PRELOAD_ENV = "LAMBDAMESH_ZYGOTE_PRELOAD"
IMPURE_LIBRARIES_EXIT = 3
"""Exit code of a forking process whose libraries could not be imported, or imported a module of
the runtime's directory."""
BOOTSTRAP = Path(__file__).with_name("function_bootstrap.py")
PRELOADED = ("boto3",)
"""What is imported once, with everything it imports (botocore, urllib3, dateutil, ...)."""
MAX_PACKET = 1024 * 1024


def normalized(distribution: str) -> str:
    """A distribution's name as wheels spell it in ``*.dist-info`` (PEP 503, underscores)."""
    return re.sub(r"[-_.]+", "_", distribution).lower()


def distributions(directory: str) -> dict[str, tuple[str, str]]:
    """The distributions installed in ``directory``, by their top-level names: (normalized
    distribution name, version), from their ``*.dist-info`` (``top_level.txt``, else
    ``RECORD``)."""
    found: dict[str, tuple[str, str]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            release = dist_info_release(entry.name)
            if release is None:
                continue
            for top in _top_level_names(Path(entry.path)):
                found[top] = release
    return found


def dist_info_release(entry_name: str) -> tuple[str, str] | None:
    """(normalized distribution name, version) of a ``<name>-<version>.dist-info`` directory's
    name; ``None`` for any other name.

    >>> dist_info_release("pydantic_core-2.50.4.dist-info"), dist_info_release("app.py")
    (('pydantic_core', '2.50.4'), None)
    """
    if not entry_name.endswith(".dist-info") or "-" not in entry_name:
        return None
    name, version = entry_name[: -len(".dist-info")].split("-", 1)
    return normalized(name), version


def importable_name(entry: os.DirEntry[str]) -> str:
    """The name a package's directory entry is imported by: a directory's own, a file's up to
    its first dot (``app.py``, ``fast.cpython-313-x86_64-linux-gnu.so``)."""
    return entry.name.split(".", 1)[0] if entry.is_file() else entry.name


def _top_level_names(dist_info: Path) -> set[str]:
    with contextlib.suppress(OSError):
        return {line.strip() for line in (dist_info / "top_level.txt").read_text().splitlines()} - {
            ""
        }
    names: set[str] = set()
    with contextlib.suppress(OSError):
        for line in (dist_info / "RECORD").read_text().splitlines():
            first = line.split(",", 1)[0].split("/", 1)[0]
            if first and not first.endswith((".dist-info", ".data")) and first != "..":
                names.add(first.removesuffix(".py"))
    return names


def preloaded_names(directory: str) -> set[str]:
    """The top-level names of the modules imported from ``directory``."""
    names = set()
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if directory and origin.startswith(directory.rstrip("/") + "/"):
            names.add(name.split(".", 1)[0])
    return names


def imported_names() -> set[str]:
    """The top-level names of every module imported so far."""
    return {name.split(".", 1)[0] for name in list(sys.modules)}


def top_level_names(task_root: str) -> set[str]:
    """The names the package in ``task_root`` could be imported by (:func:`importable_name`)."""
    names = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(task_root):
            names.add(importable_name(entry))
    return names


def shadowed(
    names: set[str],
    runtime: dict[str, tuple[str, str]],
    task_root: str,
    present: set[str] | None = None,
) -> set[str]:
    """Those of ``names`` the package in ``task_root`` holds at another version than the
    runtime's (``runtime``: its :func:`distributions`), or at one it does not declare.
    ``present``: the package's :func:`top_level_names`, when already read."""
    if not task_root or not names:
        return set()
    present = (top_level_names(task_root) if present is None else present) & names
    if not present:
        return set()
    package = distributions(task_root)
    return {
        name
        for name in present
        if runtime.get(name) is None or package.get(name) != runtime.get(name)
    }


def forget(names: set[str]) -> None:
    """Drop every module under the top-level ``names`` from ``sys.modules``."""
    for name in list(sys.modules):
        if name.split(".", 1)[0] in names:
            del sys.modules[name]


@dataclass(frozen=True)
class Preloaded:
    """What this process imported from the runtime's directory, read once after the imports.

    Attributes
    ----------
    names : set[str]
        The top-level names of those modules (:func:`preloaded_names`).
    runtime : dict[str, tuple[str, str]]
        The runtime directory's distributions (:func:`distributions`).
    others : frozenset[str]
        The top-level names of everything else the imports brought in, but for the libraries
        of ``$LAMBDAMESH_ZYGOTE_LIBRARIES`` (whose versions every package served holds): a
        package holding one of them is run by a new interpreter.
    """

    names: set[str]
    runtime: dict[str, tuple[str, str]]
    others: frozenset[str] = frozenset()


def _child(
    request: dict[str, Any],
    fds: list[int],
    server: socket.socket,
    wakeup: tuple[int, int],
    preloaded: Preloaded,
) -> None:
    """In the forked child: become the environment's process, run the bootstrap; never
    returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in wakeup:
            os.close(fd)
        server.close()
        stdin_fd, output_fd, result_fd = fds
        os.dup2(stdin_fd, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(stdin_fd)
        os.close(output_fd)
        os.set_inheritable(result_fd, True)
        env: dict[str, str] = request["env"]
        env[RESULT_FD_ENV] = str(result_fd)
        os.environ.clear()
        os.environ.update(env)
        if hasattr(time, "tzset") and "TZ" in env:
            time.tzset()
        os.chdir(request["cwd"])
        task_root = env.get("LAMBDA_TASK_ROOT", "")
        present = top_level_names(task_root) if task_root else set()
        if present & preloaded.others:
            _new_interpreter()
        if shadowed(preloaded.names, preloaded.runtime, task_root, present):
            forget(preloaded.names)
        sys.argv = [str(BOOTSTRAP)]
        runpy.run_path(str(BOOTSTRAP), run_name="__main__")
        code = 0
    except SystemExit as exiting:
        code = exiting.code if isinstance(exiting.code, int) else (0 if exiting.code is None else 1)
    except BaseException:  # the bootstrap's own errors: as an interpreter would, on stderr
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _new_interpreter() -> None:
    """Become what the executor starts without forking: a new interpreter running the bootstrap,
    with this process's variables, directory and descriptors. Returns only if ``exec`` fails."""
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
        # The executor's own command for an environment (process_executor.py), no shell.
        argv = [sys.executable, "-I", "-S", str(BOOTSTRAP)]
        os.execve(sys.executable, argv, dict(os.environ))  # noqa: S606


def _reap(server: socket.socket) -> None:
    """Report every child that ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            server.send(json.dumps({"exited": pid, "code": code}).encode())


def serve(server: socket.socket, preloaded: Preloaded) -> None:
    """Fork a child for each request until the executor's end of ``server`` closes."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready, _, _ = select.select([server.fileno(), wake_read], [], [])
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
            _reap(server)
        if server.fileno() not in ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(server, MAX_PACKET, 3)
        except InterruptedError:
            continue
        if not data:
            return
        request = json.loads(data)
        try:
            pid = os.fork()
        except OSError as error:
            for fd in fds:
                os.close(fd)
            server.send(json.dumps({"ref": request["ref"], "error": str(error)}).encode())
            continue
        if pid == 0:
            _child(request, fds, server, (wake_read, wake_write), preloaded)
        for fd in fds:
            os.close(fd)
        server.send(json.dumps({"ref": request["ref"], "pid": pid}).encode())


def preload_libraries(libraries_dir: str, modules: list[str], runtime_dir: str) -> set[str]:
    """Import ``modules`` from ``libraries_dir``, off the path again afterwards; the top-level
    names imported from it.

    Raises
    ------
    ImportError
        When one of them cannot be imported, or imported a module from ``runtime_dir``: a
        package would import its own copy of that module instead (none is forgotten: see the
        module's text).
    """
    from_runtime = preloaded_names(runtime_dir)
    sys.path.insert(0, libraries_dir)
    try:
        for name in modules:
            module = importlib.import_module(name)
            # Its public API too: pydantic imports the submodules behind its names lazily
            # (BaseModel: pydantic.main, ...), 40-60 ms at a service's first import.
            for attribute in getattr(module, "__all__", ()):
                with contextlib.suppress(AttributeError, ImportError):
                    getattr(module, attribute)
    finally:
        sys.path.remove(libraries_dir)
    pulled = preloaded_names(runtime_dir) - from_runtime
    if pulled:
        raise ImportError(f"{', '.join(sorted(pulled))} imported from the runtime's directory")
    return preloaded_names(libraries_dir)


def main() -> None:
    runtime_dir = os.environ.get(RUNTIME_DIR_ENV, "")
    libraries_dir = os.environ.get(LIBRARIES_ENV, "")
    before = imported_names()
    if runtime_dir:
        sys.path.insert(0, runtime_dir)
    for name in PRELOADED:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    libraries: set[str] = set()
    if libraries_dir:
        modules = [name for name in os.environ.get(PRELOAD_ENV, "").split(",") if name]
        try:
            libraries = preload_libraries(libraries_dir, modules, runtime_dir)
        except ImportError:
            traceback.print_exc()
            sys.exit(IMPURE_LIBRARIES_EXIT)
    runtime = preloaded_names(runtime_dir)
    others = frozenset(imported_names() - before - runtime - libraries)
    server = socket.socket(fileno=int(os.environ[SOCKET_FD_ENV]))
    serve(server, Preloaded(runtime, distributions(runtime_dir), others))


if __name__ == "__main__":
    main()
