"""An exclusive lock between processes on one machine."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` for the duration of the block.

    ``fcntl.flock`` is enough here (one machine, POSIX only, released by the kernel
    when the holder dies), so no file-lock library is added for it.

    Parameters
    ----------
    lock_file
        Created if missing; its content is never used.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
