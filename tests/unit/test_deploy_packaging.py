"""Packaging cache: ``chalice package`` runs only when an app's inputs change."""

from __future__ import annotations

import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lambdamesh.deploy import packaging
from lambdamesh.deploy.fingerprint import source_hash
from lambdamesh.deploy.packaging import build_inputs, package_app
from lambdamesh.deploy.services import ServiceApp, discover_apps
from tests.unit.test_deploy_template import APP_SOURCE, write_app


def test_an_unchanged_app_reuses_its_package_and_a_changed_one_is_rebuilt(
    tmp_path: Path,
) -> None:
    # GIVEN an app packaged once
    app = write_app(tmp_path / "apps" / "consumer")
    cache = tmp_path / "cache"
    first = package_app(app, cache, "us-east-1")
    assert not first.reused
    # WHEN packaged again unchanged
    second = package_app(app, cache, "us-east-1")
    # THEN the cached package is reused
    assert second.reused
    assert second.directory == first.directory
    # WHEN its source changes
    write_app(app.path, APP_SOURCE.replace('{"ok": True}', '{"ok": False}'))
    third = package_app(app, cache, "us-east-1")
    # THEN it is rebuilt, and the stale package is gone from the cache
    assert not third.reused
    assert third.source_hash != first.source_hash
    assert not first.directory.exists()
    assert third.package_file.is_file()


def test_a_package_another_process_built_meanwhile_is_taken_as_this_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an app whose package another process finishes while this one builds it
    app = write_app(tmp_path / "apps" / "consumer")
    cache = tmp_path / "cache"
    target = cache / app.name / source_hash(app.path, *build_inputs())

    def build(app: object, output: Path, region: str) -> None:
        for directory, template in ((output, "{}"), (target, '{"built": "elsewhere"}')):
            directory.mkdir(parents=True)
            (directory / packaging.TEMPLATE_NAME).write_text(template)
            with zipfile.ZipFile(directory / packaging.PACKAGE_NAME, "w") as archive:
                archive.writestr("app.py", "VALUE = 1\n")

    monkeypatch.setattr(packaging, "_run_chalice_package", build)
    # WHEN it is packaged
    packaged = package_app(app, cache, "us-east-1")
    # THEN the other process's package is the one used, and nothing else is left in the cache
    assert packaged.directory == target
    assert packaged.template_file.read_text() == '{"built": "elsewhere"}'
    assert [entry.name for entry in (cache / app.name).iterdir()] == [target.name]


def test_two_deploys_packaging_one_app_at_once_build_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an app, and a build slow enough for a second deploy to ask for it meanwhile
    app = write_app(tmp_path / "apps" / "consumer")
    cache = tmp_path / "cache"
    builds: list[Path] = []
    building = threading.Event()

    def build(app: object, output: Path, region: str) -> None:
        builds.append(output)
        building.set()
        time.sleep(0.2)  # the other deploy asks while this one builds
        output.mkdir(parents=True)
        (output / packaging.TEMPLATE_NAME).write_text("{}")
        with zipfile.ZipFile(output / packaging.PACKAGE_NAME, "w") as archive:
            archive.writestr("app.py", "VALUE = 1\n")

    monkeypatch.setattr(packaging, "_run_chalice_package", build)
    # WHEN two deploys package it at once
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(package_app, app, cache, "us-east-1")
        building.wait(timeout=30)
        second = pool.submit(package_app, app, cache, "us-east-1")
        results = [first.result(), second.result()]
    # THEN Chalice ran once: the second deploy waited for the first and took its package
    assert len(builds) == 1
    assert [result.reused for result in results] == [False, True]
    assert results[0].directory == results[1].directory


def test_source_hash_follows_vendored_symlinks_and_ignores_generated_files(
    tmp_path: Path,
) -> None:
    # GIVEN an app vendoring a shared package through a symlink
    toolkit = tmp_path / "toolkit" / "shared_pkg"
    toolkit.mkdir(parents=True)
    (toolkit / "__init__.py").write_text("VALUE = 1\n")
    app = write_app(tmp_path / "apps" / "svc").path
    (app / "vendor").mkdir()
    (app / "vendor" / "shared_pkg").symlink_to(toolkit)
    before = source_hash(app)
    # WHEN Chalice's and Python's caches appear
    (app / ".chalice" / "deployments").mkdir()
    (app / ".chalice" / "deployments" / "x.zip").write_bytes(b"zip")
    (toolkit / "__pycache__").mkdir()
    (toolkit / "__pycache__" / "m.pyc").write_bytes(b"pyc")
    # THEN the hash is the same
    assert source_hash(app) == before
    # WHEN the vendored package changes  THEN the hash changes
    (toolkit / "__init__.py").write_text("VALUE = 2\n")
    assert source_hash(app) != before


def test_apps_deploy_in_dependency_order_with_other_apps_last(tmp_path: Path) -> None:
    # GIVEN apps in alphabetical disorder, a non-app directory and an extra app
    for name in ("orders", "users", "reviews", "catalog", "hello"):
        write_app(tmp_path / name)
    (tmp_path / "toolkit").mkdir()
    # WHEN discovered
    apps = discover_apps(tmp_path)
    # THEN the declared order comes first, the toolkit is not an app
    assert [app.name for app in apps] == ["users", "catalog", "reviews", "orders", "hello"]
    # WHEN only some are asked for  THEN only those, still in order
    only = discover_apps(tmp_path, frozenset({"orders", "users"}))
    assert [app.name for app in only] == ["users", "orders"]


def test_api_stage_comes_from_the_chalice_config(tmp_path: Path) -> None:
    # GIVEN an app whose dev stage names its API stage, and one that does not
    named = write_app(tmp_path / "named")
    named.config_file.write_text(
        '{"version": "2.0", "app_name": "x", "stages": {"dev": {"api_gateway_stage": "v1"}}}'
    )
    default = write_app(tmp_path / "default")
    # THEN the first uses its stage and the second Chalice's default
    assert ServiceApp("named", named.path).api_stage() == "v1"
    assert default.api_stage() == "api"
