"""The order in which the e2e tier's modules go to its workers: the longest first.

``--dist loadscope`` gives each worker whole modules (each worker has its own emulator and
deploy, and a module's tests share its fixtures), the module with the most tests first. That
is not the longest: the small chaos run is one test and the longest module (115-150 s, 60 s of
it a killed batch's visibility timeout), the README's blocks one test of 60 s. Handed out among
the last, they left one worker running alone for 50-60 s after the other had finished. Handed
out longest first (the longest-processing-time rule), the small modules fill in at the end.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

LONGEST_FIRST = (
    "tests/e2e/test_chaos.py",
    "tests/e2e/test_order_saga.py",
    "tests/e2e/test_readme.py",
    "tests/e2e/test_iam_least_privilege.py",
    "tests/e2e/test_launcher.py",
)
"""Modules handed out before every other, in this order: the longest of a measured run (each
module's tests' time on a worker: 147, 89, 69, 43 and 28 s of 601 s in all); the others
follow in ``loadscope``'s order. A module missing here costs only time."""


class LongestFirstScheduling(LoadScopeScheduling):
    """``loadscope``, with the modules of :data:`LONGEST_FIRST` handed out first."""

    def _assign_work_unit(self, node: Any) -> None:
        for scope in reversed(LONGEST_FIRST):
            if scope in self.workqueue:
                self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)
