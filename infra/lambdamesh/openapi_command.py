"""``lambdamesh openapi``: write every API service's OpenAPI document to files.

Each service's Chalice app is imported on its own (its ``chalicelib`` is a package of the same
name in every service, so each import starts with none in ``sys.modules`` and leaves none), and
:func:`lambdamesh_toolkit.openapi.openapi_document` turns its routes into the document.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalice.app import Chalice

from lambdamesh.command import EXIT_FAILURE, EXIT_OK, err, say
from lambdamesh.deploy.services import ServiceApp, discover_apps
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh_toolkit.openapi import openapi_document

NAME = "openapi"
DESCRIPTION = """\
Import each Chalice app under functions/ that serves HTTP routes and write its OpenAPI 3.1
document (routes, parameters, bodies and answers from the contracts, one error shape) to
OUT_DIR/<service>.openapi.json (default .lambdamesh/openapi/). The same documents drive the
fuzz tests (make fuzz).

examples:
  lambdamesh openapi
  lambdamesh openapi --out /tmp/openapi --only orders"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``openapi``'s arguments."""
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory to write the documents to (default: .lambdamesh/openapi/)",
    )
    parser.add_argument(
        "--only", action="append", metavar="SERVICE", help="only this service (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the documents; the exit code."""
    paths = ProjectPaths.discover()
    apps_dir = paths.root / "functions"
    out: Path = args.out or paths.state_root / "openapi"
    try:
        apps = discover_apps(apps_dir, frozenset(args.only) if args.only else None)
    except ValueError as error:
        err(f"error: {error}")
        return EXIT_FAILURE
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for service in apps:
        app = load_app(service)
        if not app.routes:
            continue
        document = openapi_document(app, title=f"lambdamesh {service.name}")
        target = out / f"{service.name}.openapi.json"
        target.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        say(f"==> {service.name}: {len(document['paths'])} path(s) → {target}")
        written += 1
    if not written:
        err("error: no service serves HTTP routes")
        return EXIT_FAILURE
    return EXIT_OK


def load_app(service: ServiceApp) -> Chalice:
    """Import ``service``'s ``app.py`` on its own and return its Chalice app."""
    with _isolated_library(service.path):
        spec = importlib.util.spec_from_file_location(
            f"lambdamesh_openapi_{service.name}_app", service.path / "app.py"
        )
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {service.path / 'app.py'}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    app: Any = getattr(module, "app", None)
    if not isinstance(app, Chalice):
        raise ImportError(f"{service.path / 'app.py'} has no Chalice app named 'app'")
    return app


@contextmanager
def _isolated_library(root: Path) -> Iterator[None]:
    """Import with ``root`` first on the path and no other service's ``chalicelib`` around."""
    saved = {name: module for name, module in sys.modules.items() if _is_library(name)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if _is_library(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


def _is_library(name: str) -> bool:
    return name == "chalicelib" or name.startswith("chalicelib.")
