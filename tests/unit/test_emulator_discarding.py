"""An emulator's scratch directory is removed without the caller waiting for it
(``lambdamesh/emulator/discarding.py``)."""

from __future__ import annotations

import time
from pathlib import Path

from lambdamesh.emulator.discarding import DISCARDED_PREFIX, discard, discard_leftovers


def filled(directory: Path) -> Path:
    (directory / "lambda" / "code").mkdir(parents=True)
    for number in range(50):
        (directory / "lambda" / "code" / f"module{number}.py").write_text("x = 1\n")
    return directory


def gone_soon(parent: Path) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not any(parent.iterdir()):
            return True
        time.sleep(0.05)
    return False


def test_a_discarded_directory_is_gone_at_once_and_its_files_soon_after(tmp_path: Path) -> None:
    # GIVEN an emulator's scratch directory full of unzipped code
    run_dir = tmp_path / "run"
    scratch = filled(run_dir / "tmp")
    # WHEN it is discarded
    discard(scratch)
    # THEN it is no longer there when the call returns, and nothing of it is left soon after
    assert not scratch.exists()
    assert gone_soon(run_dir)


def test_discarding_a_directory_that_is_not_there_does_nothing(tmp_path: Path) -> None:
    # GIVEN no scratch directory  WHEN it is discarded  THEN nothing happens, nothing fails
    discard(tmp_path / "tmp")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_discard_cut_short_are_removed(tmp_path: Path) -> None:
    # GIVEN a directory renamed for removal whose removal never ran, beside one to keep
    filled(tmp_path / f"{DISCARDED_PREFIX}tmp-0123abcd")
    kept = filled(tmp_path / "cache")
    # WHEN the leftovers are removed
    discard_leftovers(tmp_path)
    # THEN the renamed one goes, the other stays
    deadline = time.monotonic() + 10
    while (tmp_path / f"{DISCARDED_PREFIX}tmp-0123abcd").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache"]
    assert (kept / "lambda" / "code" / "module0.py").exists()
