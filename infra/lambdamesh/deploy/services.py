"""Which apps deploy, and in which order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SHARED = "shared"
"""The stack every service depends on (circuit-breaker table, deployment bucket)."""

MESSAGING = "messaging"
"""The messaging topology's stack (topics, queues, dead-letter queues, consumer tables)."""

TOPOLOGY: tuple[str, ...] = (SHARED, MESSAGING)
"""Stacks without a Chalice app, deployed first, in this order; their Outputs are offered to
every app's Parameters by name."""

DEPLOY_ORDER: tuple[str, ...] = ("users", "catalog", "reviews", "orders")
"""Services in dependency order: each may take Parameters from the Outputs of those before it.

``reviews`` calls ``catalog`` by RPC; ``orders`` calls ``users`` over HTTP and ``catalog``
by RPC. Apps not named here (examples, tests) deploy after these, alphabetically.
"""

STAGE = "dev"
"""The Chalice stage every app is packaged for."""

DEFAULT_API_STAGE = "api"
"""Chalice's API Gateway stage name unless ``api_gateway_stage`` says otherwise."""


@dataclass(frozen=True)
class ServiceApp:
    """A Chalice app that deploys as one stack.

    Attributes
    ----------
    name
        The service name: the app's directory name (``users``).
    path
        The app's directory (holds ``app.py`` and ``.chalice/config.json``).
    """

    name: str
    path: Path

    @property
    def config_file(self) -> Path:
        """Chalice's ``.chalice/config.json``."""
        return self.path / ".chalice" / "config.json"

    @property
    def merge_template(self) -> Path | None:
        """``resources.json``, the CloudFormation fragment merged into Chalice's template."""
        candidate = self.path / "resources.json"
        return candidate if candidate.is_file() else None

    def api_stage(self) -> str:
        """The API Gateway stage of the ``dev`` Chalice stage (``api`` by default)."""
        config = json.loads(self.config_file.read_text())
        stage_config = config.get("stages", {}).get(STAGE, {})
        stage = stage_config.get("api_gateway_stage", config.get("api_gateway_stage"))
        return str(stage or DEFAULT_API_STAGE)


def discover_apps(apps_dir: Path, only: frozenset[str] | None = None) -> list[ServiceApp]:
    """The Chalice apps under ``apps_dir``, in deploy order.

    Parameters
    ----------
    apps_dir
        Holds one directory per app; directories without ``.chalice/config.json`` (the shared
        toolkit) are not apps.
    only
        Deploy only these service names (``None``: all).

    Returns
    -------
    list[ServiceApp]
        :data:`DEPLOY_ORDER` first, then any other app alphabetically.
    """
    found = {
        child.name: ServiceApp(child.name, child)
        for child in sorted(apps_dir.iterdir())
        if (child / ".chalice" / "config.json").is_file()
    }
    if only is not None:
        unknown = only - found.keys()
        if unknown:
            raise ValueError(f"no app named {', '.join(sorted(unknown))} in {apps_dir}")
        found = {name: app for name, app in found.items() if name in only}
    ordered = [found[name] for name in DEPLOY_ORDER if name in found]
    ordered += [app for name, app in found.items() if name not in DEPLOY_ORDER]
    return ordered
