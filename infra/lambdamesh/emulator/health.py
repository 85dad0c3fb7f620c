"""LocalStack's health and readiness, read over HTTP.

Only the standard library is used: the launcher must work before anything but
the project venv exists, and these are two GET requests to loopback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from lambdamesh.emulator.settings import READY_SERVICES

HEALTH_PATH = "/_localstack/health"
READY_PATH = "/_localstack/init/ready"

# A service is "available" until its first request loads it, then "running".
_USABLE_STATES = frozenset({"available", "running"})

# Proxies from the environment must never see requests to a local emulator.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """GET ``url`` and decode a JSON object; ``None`` on any failure."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


@dataclass(frozen=True)
class Health:
    """A snapshot of LocalStack's health endpoints.

    Attributes
    ----------
    answering
        ``/_localstack/health`` answered.
    services
        Service name to state (``available``, ``running``, ...).
    ready
        The READY init stage completed: LocalStack printed "Ready." and ran its hooks.
    version
        LocalStack's version, when known.
    """

    answering: bool
    services: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    version: str | None = None

    @property
    def healthy(self) -> bool:
        """Ready, and the services the system cannot do without are present."""
        return self.ready and all(
            self.services.get(name) in _USABLE_STATES for name in READY_SERVICES
        )


def check_health(endpoint: str, timeout: float = 2.0) -> Health:
    """Read the health of the LocalStack at ``endpoint``.

    Parameters
    ----------
    endpoint
        Base URL, e.g. ``http://127.0.0.1:4566``.
    timeout
        Per-request time limit in seconds.
    """
    base = endpoint.rstrip("/")
    health = fetch_json(base + HEALTH_PATH, timeout)
    if health is None:
        return Health(answering=False)
    raw_services = health.get("services")
    services = (
        {str(name): str(state) for name, state in raw_services.items()}
        if isinstance(raw_services, dict)
        else {}
    )
    ready = fetch_json(base + READY_PATH, timeout) or {}
    version = health.get("version")
    return Health(
        answering=True,
        services=services,
        ready=ready.get("completed") is True,
        version=str(version) if version is not None else None,
    )
