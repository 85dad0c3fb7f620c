"""The parity suite: what AWS does, as AWS documents it, checked against an emulator.

Every test here is written from AWS's documentation (or, where the documentation is silent,
from a response recorded against AWS, named in the test) and uses only AWS's APIs: no
lambdamesh code, no deployed service, nothing the embedded runtime alone has. So the suite runs
against any LocalStack: the embedded runtime in ``make test``, or the one named by
``LAMBDAMESH_ENDPOINT`` (``make parity LAMBDAMESH_ENDPOINT=http://127.0.0.1:4566``, e.g.
LocalStack in Docker). A failure against another LocalStack is a difference a user of that
LocalStack would meet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PARITY_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``parity`` (select with ``-m parity``)."""
    for item in items:
        if PARITY_DIR in item.path.parents:
            item.add_marker(pytest.mark.parity)
