"""The benchmarks' figures and their wording (no emulator: these run in a blink)."""

from __future__ import annotations

import doctest
from dataclasses import replace

from tests.benchmarks import figures
from tests.benchmarks.figures import (
    OrdersRun,
    RequestRow,
    comparison_lines,
    percentile,
    run_lines,
    system_requests,
)


def _run(rate: float, post_p50_ms: float) -> OrdersRun:
    """A run of 100 orders at ``rate`` orders/s whose POST latencies have ``post_p50_ms`` as p50."""
    posts = tuple([post_p50_ms] * 51 + [post_p50_ms * 2] * 49)
    return OrdersRun(100, 8, "done", 1.0, 100 / rate, posts, (1.0,) * 100)


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run  THEN each gives what it shows
    assert doctest.testmod(figures).failed == 0


def test_percentiles_are_nearest_rank() -> None:
    # GIVEN 500 samples 1..500, shuffled by reversing
    samples = [float(value) for value in range(500, 0, -1)]
    # WHEN their p50, p90 and p99 are taken
    # THEN each is the smallest sample that covers that share of them
    assert (percentile(samples, 0.5), percentile(samples, 0.9), percentile(samples, 0.99)) == (
        250.0,
        450.0,
        495.0,
    )


def test_only_the_benchmarks_own_external_requests_are_taken_out() -> None:
    # GIVEN the benchmark polled with 4 BatchGetItem, and the emulator counted 4 external and
    # 2 internal ones (which the benchmark cannot have sent)
    counts = [
        {"service": "dynamodb", "operation": "BatchGetItem", "internal": False, "count": 4},
        {"service": "dynamodb", "operation": "BatchGetItem", "internal": True, "count": 2},
    ]
    # WHEN the system's requests are taken from the counts
    rows = system_requests(counts, {("dynamodb", "BatchGetItem"): 4})
    # THEN the internal ones stay and the benchmark's own are gone
    assert rows == [RequestRow("dynamodb", "BatchGetItem", True, 2)]


def test_a_ratio_exactly_at_its_target_meets_it() -> None:
    # GIVEN a saga at 0.6 of the floor's throughput and at 1.5 times its POST p50
    saga, floor = _run(6.0, 150.0), _run(10.0, 100.0)
    # WHEN they are compared
    lines = comparison_lines(saga, floor, cores=2)
    # THEN both targets are met, and no CPU budget is printed without a CPU figure
    assert lines == [
        "saga / floor throughput   0.60   (meets the target of >= 0.6)",
        "POST p50 saga / floor     1.50   (meets the target of <= 1.5)",
    ]


def test_a_slower_saga_misses_both_targets() -> None:
    # GIVEN a saga a little under 0.6 of the floor's throughput and over 1.5 times its POST p50
    saga, floor = _run(5.9, 151.0), _run(10.0, 100.0)
    # WHEN they are compared  THEN both targets are missed
    assert [line.split("(")[1] for line in comparison_lines(saga, floor, cores=2)] == [
        "misses the target of >= 0.6)",
        "misses the target of <= 1.5)",
    ]


def test_a_run_prints_retries_cpu_and_requests_when_it_has_them() -> None:
    # GIVEN a run that met 503s, with CPU and request figures
    run = replace(
        _run(4.0, 200.0),
        retried_answers=3,
        retried_orders=2,
        cpu_ms=(200.0, 120.0),
        requests=(RequestRow("sns", "Publish", False, 400),),
    )
    # WHEN it is worded
    text = "\n".join(run_lines("saga", run, 0.25))
    # THEN each of them is there, per order
    assert "503/409 answers       3 (on 2 orders" in text
    assert "LocalStack   200 ms   function processes   120 ms" in text
    assert "requests per order      4.0   (API Gateway's own not counted)" in text
    assert "by the functions      4.0   (meets the target of 25)" in text
    assert "wall time                 25.0 s   (4.0 orders/s)" in text
