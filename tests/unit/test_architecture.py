"""The layout ARCHITECTURE.md describes is the layout of the tree, and the rules it states hold.

- its table names every package and module of the toolkit, the CLI and the LocalStack plugins,
  and nothing that is gone;
- boto3 clients are built in one module only (the toolkit's AWS access layer);
- every example in a docstring runs as a doctest; none is a literal block that nothing runs.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
TOOLKIT = ROOT / "functions/toolkit/lambdamesh_toolkit"
CLI = ROOT / "infra/lambdamesh"
PLUGINS = ROOT / "infra/localstack-plugins/lambdamesh_localstack"
#: Where every module must be named in the table, in the row of its package.
DOCUMENTED_ROOTS = (TOOLKIT, CLI, PLUGINS)
#: The one module allowed to build boto3 clients.
ACCESS_LAYER = TOOLKIT / "aws/clients.py"
#: Code that runs in the project's functions or its CLI (the plugins run inside LocalStack and
#: use its own client factory; tests build clients against moto as they need).
PRODUCTION_CODE = (ROOT / "functions", CLI)


@dataclass(frozen=True)
class Row:
    path: str
    names: tuple[str, ...]


def table_rows() -> list[Row]:
    """The rows of 'Where each thing lives': the path, and every `name` in the description."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Where each thing lives", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        rows.append(Row(cells[0].strip("`"), tuple(re.findall(r"`([^`]+)`", cells[1]))))
    return rows


def module_names(name: str) -> bool:
    """Whether a `name` in the table names a module or package (``x.py``, ``x/``, ``x/y.py``)."""
    return re.fullmatch(r"[a-z_][a-z0-9_/]*(\.py|/)", name) is not None


def python_parts(root: Path) -> list[Path]:
    """Every package and module under ``root`` (``__init__.py`` and caches left out)."""
    parts = [
        path
        for path in root.rglob("*")
        if "__pycache__" not in path.parts
        and (
            (path.suffix == ".py" and path.name != "__init__.py")
            or (path.is_dir() and (path / "__init__.py").exists())
        )
    ]
    return sorted(parts)


def test_every_path_in_the_table_exists() -> None:
    # GIVEN the table's rows
    rows = table_rows()
    assert len(rows) >= 15, "the table was not found or lost its rows"
    # WHEN each concrete path (no <placeholder>, no {alternatives}) is looked up
    missing = [
        row.path
        for row in rows
        if "<" not in row.path and "{" not in row.path and not (ROOT / row.path).exists()
    ]
    # THEN every one is there
    assert missing == []


def test_every_module_named_in_a_package_row_exists() -> None:
    # GIVEN the rows of real directories
    rows = [row for row in table_rows() if row.path.endswith("/") and "<" not in row.path]
    # WHEN the modules each names are looked up under it
    gone = [
        f"{row.path}{name}"
        for row in rows
        for name in row.names
        if module_names(name) and not (ROOT / row.path / name).exists()
    ]
    # THEN nothing listed is gone
    assert gone == []


def test_the_service_rows_name_files_that_some_service_has() -> None:
    # GIVEN the rows about every service's app
    rows = [row for row in table_rows() if row.path.startswith("functions/<service>/")]
    services = [path.parent for path in (ROOT / "functions").glob("*/app.py")]
    assert len(services) >= 7
    # WHEN the files they name are looked for in the services
    gone = [
        f"{row.path}{name}"
        for row in rows
        if row.path.endswith("/")
        for name in row.names
        if module_names(name)
        and not any(
            (service / row.path.split("<service>/", 1)[1] / name).exists() for service in services
        )
    ]
    # THEN each exists in at least one service
    assert gone == []


@pytest.mark.parametrize("root", DOCUMENTED_ROOTS, ids=lambda root: root.name)
def test_every_package_and_module_is_named_in_its_packages_row(root: Path) -> None:
    # GIVEN the table, indexed by row path
    rows = {row.path: row.names for row in table_rows()}
    # WHEN every package and module under the root is looked for in the row of the nearest
    # package that has one (by its path relative to that package)
    unlisted = []
    for part in python_parts(root):
        relative = part.relative_to(ROOT)
        for package in relative.parents:
            names = rows.get(f"{package.as_posix()}/")
            if names is None:
                continue
            if package.as_posix() + "/" == f"{relative.as_posix()}/":
                break
            local = relative.relative_to(package).as_posix() + ("/" if part.is_dir() else "")
            if f"{relative.as_posix()}/" not in rows and local not in names:
                unlisted.append(relative.as_posix())
            break
        else:
            unlisted.append(f"{relative.as_posix()} (no row for any of its packages)")
    # THEN each one is described
    assert unlisted == []


def calls_building_clients(path: Path) -> list[str]:
    """Calls in ``path`` that build a boto3 client, resource or session, or a botocore Config."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            text = ast.unparse(node.func)
            if re.fullmatch(r"boto3\.(client|resource|Session|session\.Session)", text) or (
                text.endswith(("Session().client", "Session().resource"))
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {text}")
        elif isinstance(node, ast.ImportFrom) and node.module == "botocore.config":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} botocore.config")
    return found


def test_boto3_clients_are_built_only_in_the_access_layer() -> None:
    # GIVEN every module of the functions and the CLI (vendored copies are symlinks: skipped)
    modules = [
        path
        for root in PRODUCTION_CODE
        for path in root.rglob("*.py")
        if "vendor" not in path.parts and path != ACCESS_LAYER
    ]
    assert len(modules) > 50
    # WHEN their calls are read
    builders = [call for path in modules for call in calls_building_clients(path)]
    # THEN none builds a client, a session or a client configuration
    assert builders == []
    assert calls_building_clients(ACCESS_LAYER), "the access layer itself must be recognised"


def documented_modules() -> list[str]:
    names = []
    for root, package in ((TOOLKIT, "lambdamesh_toolkit"), (CLI, "lambdamesh")):
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root).with_suffix("")
            parts = [package, *relative.parts]
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return names


@pytest.mark.parametrize("name", documented_modules())
def test_docstring_examples_run(name: str) -> None:
    # GIVEN a module of the toolkit or the CLI
    module = importlib.import_module(name)
    # WHEN its docstrings' examples run
    result = doctest.testmod(module, verbose=False, report=False)
    # THEN every one gives what it shows
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


def test_the_toolkit_shows_its_examples_as_doctests() -> None:
    # GIVEN the toolkit's modules
    # WHEN their doctest examples are counted
    examples = sum(
        doctest.testmod(importlib.import_module(name), report=False).attempted
        for name in documented_modules()
        if name.startswith("lambdamesh_toolkit")
    )
    # THEN there are examples to run (the access layer, the events package, the helpers)
    assert examples >= 15


@pytest.mark.parametrize("root", DOCUMENTED_ROOTS, ids=lambda root: root.name)
def test_no_docstring_holds_an_example_that_nothing_runs(root: Path) -> None:
    # GIVEN every module of the root
    # WHEN its docstrings are searched for reStructuredText literal blocks ("::" then code)
    literal_blocks = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in root.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (docstring := ast.get_docstring(node)) is not None
        for line in docstring.splitlines()
        if line.rstrip().endswith("::")
    ]
    # THEN there are none: examples are doctests, or name a real file that does it
    assert literal_blocks == []
