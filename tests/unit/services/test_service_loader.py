"""The loader that lets the four Chalice apps (each with its own ``chalicelib``) coexist."""

from __future__ import annotations

import sys

from tests.unit.services.service_loader import load_service


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
