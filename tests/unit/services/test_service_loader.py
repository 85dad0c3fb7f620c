"""The loader that lets the four Chalice apps (each with its own ``chalicelib``) coexist."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from chalice.app import Chalice

from tests.unit.services.service_loader import LoadedService, load_service


def test_services_load_side_by_side_each_with_its_own_chalicelib() -> None:
    # GIVEN two services whose packages are both called chalicelib
    # WHEN both are loaded
    users = load_service("users")
    catalog = load_service("catalog")
    # THEN each app holds its own domain module, and none is left in sys.modules
    assert str(users.module("chalicelib.domain").__file__).endswith("users/chalicelib/domain.py")
    assert str(catalog.module("chalicelib.domain").__file__).endswith(
        "catalog/chalicelib/domain.py"
    )
    assert users.app.app_name == "lambdamesh-users"
    assert catalog.app.app_name == "lambdamesh-catalog"
    assert "chalicelib" not in sys.modules


def test_every_service_app_imports_without_any_environment() -> None:
    # GIVEN no settings in the environment (as when chalice package imports the app)
    # WHEN each service's app is imported
    # THEN it loads; settings are only read on the first request
    for name in ("users", "catalog", "reviews", "orders"):
        assert load_service(name).app.routes


def test_an_invoked_function_keeps_its_whole_configured_timeout_however_long_it_runs(
    tmp_path: Path,
) -> None:
    # GIVEN an app whose function is configured with a 10 s timeout, and reads its time left
    # before and after some work that takes wall-clock time
    (tmp_path / ".chalice").mkdir()
    config = {"version": "2.0", "app_name": "timed", "stages": {"dev": {"lambda_timeout": 10}}}
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    app = Chalice(app_name="timed")

    @app.lambda_function(name="remaining")
    def remaining(event: dict[str, Any], context: Any) -> list[int]:
        before: int = context.get_remaining_time_in_millis()
        time.sleep(0.05)
        return [before, context.get_remaining_time_in_millis()]

    service = LoadedService(name="timed", root=tmp_path, app_module=ModuleType("m"), library={})
    object.__setattr__(service.app_module, "app", app)
    # WHEN it is invoked through the services' test client
    left_ms = service.client().lambda_.invoke("remaining").payload
    # THEN it has its 10 s, where Chalice's own client gives every function 3 s, and its clock
    # stands still: a busy test machine cannot make a consumer put records off
    assert left_ms == [10_000, 10_000]
