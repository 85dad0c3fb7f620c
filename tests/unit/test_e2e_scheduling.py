"""The e2e tier hands its longest modules to the workers first (``tests/e2e/scheduling.py``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.e2e.scheduling import LongestFirstScheduling


class Config:
    """What xdist's scheduler reads of pytest's configuration: two workers, ``loadscope``."""

    option = SimpleNamespace(tx=["2*popen"], dist="loadscope", loadscopereorder=True)

    def getvalue(self, name: str) -> Any:
        return getattr(self.option, name)


class Worker:
    """A worker as the scheduler drives it: the tests it was sent, by their index."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[list[int]] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.append(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_the_longest_modules_go_out_first_though_others_have_more_tests() -> None:
    # GIVEN a collection where two modules have more tests than the chaos run's and the
    # README's one each
    collection = [
        *(f"tests/e2e/test_status.py::t{n}" for n in range(5)),
        *(f"tests/e2e/test_dlq_cli.py::t{n}" for n in range(3)),
        "tests/e2e/test_readme.py::test_blocks",
        "tests/e2e/test_chaos.py::test_a_small_chaos_run",
    ]
    scheduler = LongestFirstScheduling(Config())
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
    for worker in workers:
        scheduler.add_node_collection(worker, collection)
    # WHEN the scheduler hands out the first modules
    scheduler.schedule()
    # THEN the first worker starts with the chaos run, the second with the README's blocks
    first_units = [[collection[i].split("::")[0] for i in worker.sent[0]] for worker in workers]
    assert first_units == [["tests/e2e/test_chaos.py"], ["tests/e2e/test_readme.py"]]
    # AND no test is sent twice
    sent = sorted(i for worker in workers for unit in worker.sent for i in unit)
    assert sent == sorted(set(sent))
