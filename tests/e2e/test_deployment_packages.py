"""The deployed zips carry what runs on Lambda and nothing else: no test doubles, no tests."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

from lambdamesh.deploy.packaging import package_app
from lambdamesh.deploy.services import discover_apps
from lambdamesh.emulator.settings import REGION
from tests.e2e.conftest import SERVICES, DeployedSystem

ROOT = Path(__file__).resolve().parents[2]
TOOLKIT = ROOT / "functions/toolkit/lambdamesh_toolkit"
SUPPORT = ROOT / "tests/support"


def shipped_modules(package: Path) -> dict[str, str]:
    """Path → source of every Python module in a deployment zip."""
    with zipfile.ZipFile(package) as archive:
        return {
            name: archive.read(name).decode() for name in archive.namelist() if name.endswith(".py")
        }


def classes_of(source: str) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)}


def test_doubles_exist_only_in_the_tests_support_package() -> None:
    # GIVEN the test doubles the unit tests use
    doubles = set().union(*(classes_of(path.read_text()) for path in SUPPORT.glob("*.py")))
    # WHEN the toolkit's sources are searched for them
    in_toolkit = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in TOOLKIT.rglob("*.py")
        for name in classes_of(path.read_text()) & doubles
    }
    # THEN none is defined there
    assert {"InMemoryCircuitStore", "InMemoryIdempotencyStore"} <= doubles
    assert in_toolkit == set()


@pytest.mark.parametrize("service", SERVICES)
def test_a_deployed_package_holds_only_the_app_its_library_and_the_toolkit(
    deployed: DeployedSystem, service: str
) -> None:
    # GIVEN the zip deploy builds for the service (the one deployed, from the package cache
    # keyed by the sources' hash, unless the sources changed since)
    [app] = discover_apps(ROOT / "functions", frozenset({service}))
    packaged = package_app(app, deployed.cache_dir, REGION)
    modules = shipped_modules(packaged.package_file)
    # WHEN the project's own modules are picked out (the rest are requirements.txt's packages)
    tops = {name.split("/", 1)[0] for name in modules}
    own = {
        name: source
        for name, source in modules.items()
        if name.split("/", 1)[0] in {"app.py", "chalicelib", "lambdamesh_toolkit", "tests"}
    }
    doubles = set().union(*(classes_of(path.read_text()) for path in SUPPORT.glob("*.py")))
    shipped_doubles = {
        f"{name}: {cls}" for name, source in own.items() for cls in classes_of(source) & doubles
    }
    # THEN they are the app, its chalicelib and the toolkit, with no test double or test module
    assert {"app.py", "chalicelib", "lambdamesh_toolkit"} <= tops
    assert "tests" not in tops
    assert shipped_doubles == set()
    assert not [name for name in own if Path(name).name.startswith(("test_", "conftest"))]
    # AND the toolkit is shipped whole, module for module
    toolkit = {
        f"lambdamesh_toolkit/{path.relative_to(TOOLKIT).as_posix()}"
        for path in TOOLKIT.rglob("*.py")
    }
    assert {name for name in modules if name.startswith("lambdamesh_toolkit/")} == toolkit
