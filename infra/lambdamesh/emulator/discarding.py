"""Removing an emulator's scratch directory without waiting for it.

An embedded LocalStack unzips every function's code below its ``TMPDIR`` (20-25 MB a service)
and gives each execution environment a temporary directory there; nothing of it outlives the
emulator (no state is persisted), yet nothing removed it either: run after run on one port, it
held 3.7 GB here after a day, and every test session left 370 MB behind. Removing 24 000 files
takes about 2 s of mostly I/O, so :func:`discard` renames the directory out of the way (at once)
and leaves the removal to a detached ``rm -rf``; :func:`discard_leftovers` finishes whatever an
earlier discard left, if it was cut short.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

DISCARDED_PREFIX = ".discarded-"
"""Name prefix of a directory renamed away for removal, beside where it was."""


def discard(directory: Path) -> None:
    """Remove ``directory`` (if any) without waiting for its files to be deleted.

    After the call ``directory`` no longer exists; its contents are deleted in the background
    (or here, when ``rm`` is not to be found).
    """
    if not directory.exists():
        return
    doomed = directory.with_name(f"{DISCARDED_PREFIX}{directory.name}-{uuid.uuid4().hex[:8]}")
    directory.rename(doomed)
    _remove_in_background(doomed)


def discard_leftovers(parent: Path) -> None:
    """Remove what earlier :func:`discard` calls in ``parent`` left behind."""
    if parent.is_dir():
        for leftover in parent.glob(f"{DISCARDED_PREFIX}*"):
            _remove_in_background(leftover)


def _remove_in_background(path: Path) -> None:
    rm = shutil.which("rm")
    if rm is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    # Detached (its own session, no standard streams): it goes on after this process ends.
    subprocess.Popen(
        [rm, "-rf", "--", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
