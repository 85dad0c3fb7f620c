"""Execution environments forked from a process that imported the runtime's libraries once
(``function_forks.py`` and ``function_zygote.py``): real processes, a stand-in runtime library."""

from __future__ import annotations

import doctest
import json
import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from lambdamesh_localstack import (
    function_bootstrap,
    function_forks,
    function_zygote,
)
from lambdamesh_localstack.function_forks import (
    ForkedProcess,
    Forks,
    ForkUnavailableError,
    Libraries,
    package_libraries,
)
from lambdamesh_localstack.function_zygote import distributions, shadowed

HANDLER = """
import os

import boto3

def handle(event, context):
    return {
        "imported_in": boto3.IMPORTED_IN,
        "pid": os.getpid(),
        "setting": os.environ.get("SETTING"),
        "cwd": os.getcwd(),
    }
"""


def write_library(runtime: Path, version: str) -> None:
    """A stand-in for the runtime's boto3: a package that says which process imported it."""
    (runtime / "boto3").mkdir(parents=True)
    (runtime / "boto3" / "__init__.py").write_text("import os\nIMPORTED_IN = os.getpid()\n")
    dist_info = runtime / f"boto3-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "top_level.txt").write_text("boto3\n")


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    directory = tmp_path / "runtime"
    write_library(directory, "1.0.0")
    return directory


@pytest.fixture
def forks(runtime: Path) -> Iterator[Forks]:
    forking = Forks(sys.executable, str(runtime))
    yield forking
    forking.close()


class Environment:
    """A forked environment as the executor drives it: invocations in, results out."""

    def __init__(self, forks: Forks, task_root: Path, **variables: str) -> None:
        read_end, write_end = os.pipe()
        env = {
            "LAMBDA_TASK_ROOT": str(task_root),
            "LAMBDA_RUNTIME_DIR": forks_runtime(forks),
            "_HANDLER": "app.handle",
            "LAMBDAMESH_LOG_FILE": str(task_root.parent / "function.log"),
            "PATH": "/usr/bin:/bin",
            **variables,
        }
        with (task_root.parent / "output.log").open("ab") as output:
            self.process: ForkedProcess = forks.spawn(
                env, str(task_root), output.fileno(), write_end
            )
        os.close(write_end)
        self.results = os.fdopen(read_end, "rb")
        self.ready = json.loads(self.results.readline())

    def invoke(self) -> dict[str, Any]:
        document = {
            "invoke-id": "r-1",
            "invoked-function-arn": "arn:aws:lambda:us-east-1:000000000000:function:f",
            "payload": "{}",
            "trace-id": "",
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(document).encode() + b"\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(json.loads(self.results.readline())["body"])
        return answer


def forks_runtime(forks: Forks) -> str:
    return forks._runtime_dir


def task_root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name / "task"
    root.mkdir(parents=True)
    (root / "app.py").write_text(textwrap.dedent(HANDLER))
    return root


def test_a_forked_environment_runs_its_handler_with_the_library_imported_before_it(
    forks: Forks, tmp_path: Path
) -> None:
    # GIVEN two environments forked with variables of their own
    first = Environment(forks, task_root(tmp_path, "a"), SETTING="one")
    second = Environment(forks, task_root(tmp_path, "b"), SETTING="two")
    # WHEN each is invoked
    answers = [first.invoke(), second.invoke()]
    # THEN each is a process of its own, in its package's directory, with its own variables ...
    assert first.ready == {"ready": True, "init_error": None}
    assert [a["setting"] for a in answers] == ["one", "two"]
    assert [a["cwd"] for a in answers] == [str(tmp_path / n / "task") for n in "ab"]
    assert answers[0]["pid"] != answers[1]["pid"]
    # AND the library was imported once, by the process both were forked from
    assert answers[0]["imported_in"] == answers[1]["imported_in"]
    assert answers[0]["imported_in"] not in (answers[0]["pid"], answers[1]["pid"])
    # AND an environment whose standard input closes exits 0, as a new interpreter does
    assert first.process.stdin is not None
    first.process.stdin.close()
    assert first.process.wait(timeout=10) == 0


def test_a_killed_environment_reports_the_signal_as_a_process_would(
    forks: Forks, tmp_path: Path
) -> None:
    # GIVEN a forked environment
    environment = Environment(forks, task_root(tmp_path, "a"))
    # WHEN it is killed (a function's timeout)
    environment.process.kill()
    # THEN its end is reported with the signal, as subprocess reports it
    assert environment.process.wait(timeout=10) == -signal.SIGKILL
    assert environment.process.poll() == -signal.SIGKILL


def test_a_package_with_its_own_version_of_the_library_imports_its_own(
    forks: Forks, tmp_path: Path
) -> None:
    # GIVEN a package that carries the library at another version than the runtime's
    root = task_root(tmp_path, "a")
    write_library(root, "2.0.0")
    # WHEN it is forked and invoked
    answer = Environment(forks, root).invoke()
    # THEN the handler sees its package's copy, imported in its own process
    assert answer["imported_in"] == answer["pid"]


@pytest.mark.parametrize(
    ("package_version", "expected"),
    [("1.0.0", set()), ("2.0.0", {"boto3"}), (None, {"boto3"})],
    ids=["same version", "another version", "no version declared"],
)
def test_a_library_in_the_package_shadows_the_runtimes_unless_it_is_the_same_version(
    runtime: Path, tmp_path: Path, package_version: str | None, expected: set[str]
) -> None:
    # GIVEN a package holding the library, at a version or at none it declares
    package = tmp_path / "package"
    if package_version is None:
        (package / "boto3").mkdir(parents=True)
    else:
        write_library(package, package_version)
    # WHEN the preloaded names are checked against it  THEN only another version shadows
    assert shadowed({"boto3", "jmespath"}, distributions(str(runtime)), str(package)) == expected


def test_an_interpreter_that_cannot_start_leaves_the_executor_to_start_one_itself(
    runtime: Path, tmp_path: Path
) -> None:
    # GIVEN a forking process whose interpreter does not exist
    forks = Forks(str(tmp_path / "no-python"), str(runtime))
    read_end, write_end = os.pipe()
    # WHEN an environment is asked for  THEN it says no fork is to be had
    with pytest.raises(ForkUnavailableError):
        forks.spawn({}, str(tmp_path), write_end, write_end)
    os.close(read_end)
    os.close(write_end)


def test_the_forking_process_and_the_executor_name_the_same_descriptors() -> None:
    # GIVEN the forking process, which cannot import the plugins' package, and the executor
    # WHEN they name the variables that carry descriptors  THEN they name the same ones
    assert function_zygote.RESULT_FD_ENV == function_bootstrap.RESULT_FD_ENV
    assert function_zygote.SOCKET_FD_ENV == function_forks.SOCKET_FD_ENV


LIBRARY_HANDLER = """
import os
import sys

LOADED_BEFORE = "pydantic" in sys.modules and "pydantic.main" in sys.modules
import pydantic

def handle(event, context):
    return {
        "loaded_before": LOADED_BEFORE, "origin": pydantic.__file__, "version": pydantic.VERSION
    }
"""

PYDANTIC_FAMILY = (
    "pydantic",
    "pydantic_core",
    "typing_extensions",
    "annotated_types",
    "typing_inspection",
)


def with_pydantic(root: Path) -> Path:
    """Make the package hold pydantic and what it imports, as the services' packages do (links
    to this interpreter's own copies, with their ``*.dist-info``)."""
    site_packages = Path(pydantic.__file__).parent.parent
    for entry in site_packages.iterdir():
        if entry.name.split(".", 1)[0].split("-", 1)[0] in PYDANTIC_FAMILY:
            (root / entry.name).symlink_to(entry)
    return root


def library_root(tmp_path: Path, name: str) -> Path:
    root = task_root(tmp_path, name)
    (root / "app.py").write_text(textwrap.dedent(LIBRARY_HANDLER))
    return root


def test_a_package_holding_pydantic_is_forked_with_it_imported_from_a_copy_of_its_own(
    runtime: Path, tmp_path: Path
) -> None:
    # GIVEN a package holding pydantic, and a forking process for the libraries it holds
    root = with_pydantic(library_root(tmp_path, "a"))
    libraries = package_libraries(str(root))
    assert libraries is not None
    assert libraries.preload == ("pydantic",)
    forks = Forks(sys.executable, str(runtime), libraries, str(root))
    try:
        # WHEN an environment of it is forked and invoked
        answer = Environment(forks, root).invoke()
    finally:
        forks.close()
    # THEN pydantic was imported before the handler, with what its names import lazily (its
    # models' module), at the package's version
    assert answer["loaded_before"] is True
    assert answer["version"] == pydantic.VERSION
    # AND from the forking process's copy, which outlives the package's directory
    assert not answer["origin"].startswith(str(root))
    assert Path(answer["origin"]).parent.name == "pydantic"


def test_a_package_without_pydantic_cannot_import_it_though_other_packages_were_forked_with_it(
    runtime: Path, tmp_path: Path
) -> None:
    # GIVEN environments of a package holding pydantic and of one that does not, forked as the
    # executor forks them
    env = {"PATH": "/usr/bin:/bin", "_HANDLER": "app.handle"}
    with_library = with_pydantic(library_root(tmp_path, "a"))
    without = library_root(tmp_path, "b")
    chosen = [
        function_forks.forks_for(sys.executable, str(runtime), str(root))[0]
        for root in (with_library, without)
    ]
    try:
        # WHEN each is invoked
        loaded = Environment(chosen[0], with_library, **env).invoke()
        missing = Environment(chosen[1], without, **env)
    finally:
        for forks in chosen:
            forks.close()
    # THEN the first had it imported already, the second fails to import it, as a new
    # interpreter would
    assert loaded["loaded_before"] is True
    assert chosen[1].libraries is None
    assert missing.ready["init_error"]["errorType"] == "Runtime.ImportModuleError"
    assert "pydantic" in missing.ready["init_error"]["errorMessage"]


def test_packages_holding_another_version_of_a_library_family_member_get_another_forking_process(
    tmp_path: Path,
) -> None:
    # GIVEN two packages holding pydantic, the second with another typing_extensions
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with_pydantic(first)
    for entry in first.iterdir():
        if not entry.name.startswith("typing_extensions-"):
            (second / entry.name).symlink_to(entry.resolve())
    (second / "typing_extensions-0.1.dist-info").mkdir()
    (second / "typing_extensions-0.1.dist-info" / "top_level.txt").write_text("typing_extensions\n")
    # WHEN their libraries are read
    one, other = package_libraries(str(first)), package_libraries(str(second))
    # THEN they differ, in that member only
    assert one is not None
    assert other is not None
    assert {name for name, _, _ in set(one.versions) ^ set(other.versions)} == {"typing_extensions"}
    assert ("typing_extensions", "typing_extensions", "0.1") in other.versions
    # AND a package without any of them has none
    assert package_libraries(str(tmp_path / "nowhere")) is None


def test_a_package_holding_a_module_the_preloading_imported_gets_a_new_interpreter(
    tmp_path: Path,
) -> None:
    # GIVEN a runtime library that imports a standard module, and a package holding a module of
    # that name (a new interpreter would import the package's)
    runtime = tmp_path / "runtime"
    write_library(runtime, "1.0.0")
    (runtime / "boto3" / "__init__.py").write_text(
        "import os\nimport fractions\nIMPORTED_IN = os.getpid()\n"
    )
    root = task_root(tmp_path, "a")
    (root / "fractions.py").write_text("WHERE = 'package'\n")
    (root / "app.py").write_text(
        "import os\nimport fractions\nimport boto3\n"
        "def handle(event, context):\n"
        "    return {'where': getattr(fractions, 'WHERE', 'standard library'),"
        " 'pid': os.getpid(), 'imported_in': boto3.IMPORTED_IN}\n"
    )
    forks = Forks(sys.executable, str(runtime))
    try:
        # WHEN an environment of it is forked and invoked
        answer = Environment(forks, root).invoke()
    finally:
        forks.close()
    # THEN it imported the package's module, and the library itself, as a new process would
    assert answer["where"] == "package"
    assert answer["imported_in"] == answer["pid"]


def test_libraries_that_import_a_module_of_the_runtimes_are_not_preloaded(
    runtime: Path, tmp_path: Path
) -> None:
    # GIVEN a library that imports a module of the runtime's directory, which a package could
    # hold at another version
    (runtime / "helper.py").write_text("X = 1\n")
    root = task_root(tmp_path, "a")
    (root / "lib.py").write_text("import helper\n")
    forks = Forks(
        sys.executable, str(runtime), Libraries(("lib",), (("lib", "lib", "1"),)), str(root)
    )
    read_end, write_end = os.pipe()
    try:
        # WHEN an environment is asked of its forking process  THEN there is none
        with pytest.raises(ForkUnavailableError):
            forks.spawn({}, str(root), write_end, write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
        forks.close()


def test_a_package_declaring_a_pydantic_plugin_is_not_forked_with_pydantic_imported(
    tmp_path: Path,
) -> None:
    # GIVEN a package holding pydantic and a distribution that declares a pydantic plugin
    # (pydantic looks for plugins once, on the path of the process that first needs them)
    root = with_pydantic(library_root(tmp_path, "a"))
    plugin = root / "audit_plugin-1.0.dist-info"
    plugin.mkdir()
    (plugin / "top_level.txt").write_text("audit_plugin\n")
    (plugin / "entry_points.txt").write_text("[pydantic]\naudit = audit_plugin:plugin\n")
    # WHEN its libraries are read  THEN none is to be imported for it
    assert package_libraries(str(root)) is None


def test_the_forking_process_modules_examples_run() -> None:
    # GIVEN function_zygote's docstring examples WHEN they run THEN each gives what it shows
    assert doctest.testmod(function_zygote).failed == 0
