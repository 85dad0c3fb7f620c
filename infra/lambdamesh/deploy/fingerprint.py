"""Content hashes that decide what to rebuild and what to redeploy."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_IGNORED_DIRS = frozenset(
    {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "deployments", "deployed"}
)
"""Generated directories: caches, and Chalice's own ``.chalice/deployments`` / ``deployed``."""

_IGNORED_SUFFIXES = (".pyc", ".pyo")


def _files(root: Path) -> Iterator[Path]:
    # os.walk with followlinks: vendor/lambdamesh_toolkit is a symlink to the shared toolkit,
    # and a change there must repackage every app that vendors it.
    for directory, subdirs, names in os.walk(root, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if d not in _IGNORED_DIRS)
        for name in sorted(names):
            if not name.endswith(_IGNORED_SUFFIXES):
                yield Path(directory) / name


def source_hash(app_dir: Path, *extra: str) -> str:
    """A SHA-256 over every file of an app (symlinked vendor packages followed) and ``extra``.

    Parameters
    ----------
    app_dir
        The Chalice app: ``app.py``, ``chalicelib/``, ``vendor/``, ``requirements.txt``,
        ``resources.json``, ``.chalice/config.json``.
    extra
        Other inputs of the build (the Chalice version, the Python version).

    Returns
    -------
    str
        Hex digest; equal digests mean ``chalice package`` would produce the same package.
    """
    digest = hashlib.sha256()
    for item in extra:
        digest.update(item.encode() + b"\0")
    for path in _files(app_dir):
        digest.update(path.relative_to(app_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of one file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stack_fingerprint(template: Mapping[str, Any], parameters: Mapping[str, str]) -> str:
    """What a stack was deployed from: its final template and its parameter values.

    The template already names the package by content (its ``CodeUri``), so any change of
    code, resources, transformation or wiring changes this value.
    """
    canonical = json.dumps([template, dict(parameters)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
