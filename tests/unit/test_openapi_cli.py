"""``lambdamesh openapi``: every API service's document, written to files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdamesh import cli


def test_openapi_writes_a_document_per_api_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the project's apps
    # WHEN the documents are written
    code = cli.main(["openapi", "--out", str(tmp_path)])
    # THEN one OpenAPI 3.1 document per service with routes, each naming its paths
    assert code == 0
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == [f"{name}.openapi.json" for name in ("catalog", "orders", "reviews", "users")]
    orders = json.loads((tmp_path / "orders.openapi.json").read_text())
    assert orders["openapi"] == "3.1.0"
    assert {
        "/orders",
        "/orders/{order_id}",
        "/orders/{order_id}/events",
        "/users/{user_id}/orders",
    } == set(orders["paths"])
    assert "orders" in capsys.readouterr().out


def test_openapi_of_an_unknown_service_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN / WHEN the document of a service that does not exist is asked for
    code = cli.main(["openapi", "--out", str(tmp_path), "--only", "billing"])
    # THEN it fails, naming it
    assert code == 1
    assert "billing" in capsys.readouterr().err
