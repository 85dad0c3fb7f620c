"""What has been deployed where: API URLs and function names, for ``lambdamesh status``.

One JSON file per target. For the embedded LocalStack it lives in that emulator's run
directory (``.lambdamesh/run/<port>/deployments.json``), beside ``emulator.json``, so it goes
away with the emulator's state; for other targets under ``.lambdamesh/deployments/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEPLOYMENTS_FILE_NAME = "deployments.json"


@dataclass(frozen=True)
class ServiceRecord:
    """One deployed service.

    Attributes
    ----------
    stack
        The CloudFormation stack name.
    api_url
        Base URL of its REST API (``None`` without routes).
    functions
        Logical id → physical function name.
    outputs
        The stack's Outputs.
    source_hash
        The fingerprint the stack was deployed from.
    deployed_at
        Unix time of the deploy run that last touched it.
    """

    stack: str
    api_url: str | None
    functions: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    source_hash: str = ""
    deployed_at: float = 0.0


def deployments_file(state_dir: Path) -> Path:
    """The record file in ``state_dir``."""
    return state_dir / DEPLOYMENTS_FILE_NAME


def load_services(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The recorded services (JSON-ready), e.g. for ``status --json``'s ``services``.

    Returns
    -------
    dict[str, dict[str, Any]]
        Service name → ``{"api_url", "functions", "stack", ...}``; empty when nothing is
        recorded or the file is unreadable.
    """
    try:
        raw = json.loads(deployments_file(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    services = raw.get("services") if isinstance(raw, dict) else None
    return services if isinstance(services, dict) else {}


def save_services(state_dir: Path, target: str, records: dict[str, ServiceRecord]) -> Path:
    """Merge ``records`` into the file (other services' entries are kept); atomic write."""
    services = load_services(state_dir)
    services.update({name: asdict(record) for name, record in records.items()})
    path = deployments_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    document = {"target": target, "updated_at": time.time(), "services": services}
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
    return path
