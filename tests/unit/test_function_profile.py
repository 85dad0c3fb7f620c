"""Function processes' samples sorted into kinds of work (the function CPU benchmark's figures)."""

from __future__ import annotations

import doctest
from collections import Counter

import pytest

from tests.benchmarks import function_profile
from tests.benchmarks.function_profile import (
    CLIENTS,
    IMPORT,
    functions_cpu,
    kind_of_work,
    profile_lines,
    samples_by_process,
)

LOCALSTACK = 'process 100:"python -m localstack.runtime.main"'
BOOT = "main (lambdamesh_localstack/function_bootstrap.py:406)"
RUN = "Runtime._run (lambdamesh_localstack/function_bootstrap.py:259)"


def _function(pid: int) -> str:
    return f'process {pid}:"python -I -S /x/lambdamesh_localstack/function_bootstrap.py"'


def _forked(pid: int) -> str:
    return f'process {pid}:"python -I -S /x/lambdamesh_localstack/function_zygote.py"'


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run  THEN each gives what it shows
    assert doctest.testmod(function_profile).failed == 0


@pytest.mark.parametrize(
    ("leaf", "kind"),
    [
        ("_make_api_call (botocore/client.py:1)", "AWS SDK and HTTP"),
        ("recv_into (socket.py:2)", "AWS SDK and HTTP"),
        ("validate_python (pydantic/type_adapter.py:3)", "validation (pydantic)"),
        ("format (aws_lambda_powertools/logging/formatter.py:4)", "logging"),
        ("emit (logging/__init__.py:5)", "logging"),
        ("dumps (json/__init__.py:6)", "JSON"),
        ("add_metric (aws_lambda_powertools/metrics/base.py:7)", "tracing and metrics"),
        ("place (chalicelib/placing.py:8)", "the services' own code"),
        ("__call__ (chalice/app.py:9)", "runtime (bootstrap, Chalice)"),
        # the standard library, called by a service's handler (app.py): the handler's work
        ("strftime (datetime.py:10)", "the services' own code"),
    ],
)
def test_a_stack_is_the_kind_of_its_innermost_frame_that_names_one(leaf: str, kind: str) -> None:
    # GIVEN an invocation's stack ending in ``leaf`` WHEN it is sorted THEN it is ``kind``
    assert kind_of_work([BOOT, RUN, "handler (app.py:1)", leaf]) == kind


def test_a_stack_naming_no_kind_is_other() -> None:
    # GIVEN a thread's stack of the standard library alone WHEN sorted THEN it is other
    stack = ["Thread._bootstrap (threading.py:1)", "wait (threading.py:2)"]
    assert kind_of_work(stack) == "other (standard library, threads)"


def test_the_sdk_logging_is_logging_and_an_import_is_an_import_whatever_it_runs() -> None:
    # GIVEN botocore logging, an import that runs botocore, and a module imported at first use
    logging_in_sdk = [RUN, "_send (botocore/endpoint.py:1)", "debug (logging/__init__.py:2)"]
    importing = [BOOT, "Runtime.initialise (x:1)", "<module> (botocore/session.py:1)"]
    first_use = [
        RUN,
        "client (boto3/session.py:1)",
        "_find_and_load (<frozen importlib._bootstrap>)",
    ]
    making_a_client = [RUN, "client (boto3/__init__.py:1)", "create_client (botocore/session.py:2)"]
    # WHEN sorted THEN the innermost kind wins, except under an import or a client being made
    assert kind_of_work(logging_in_sdk) == "logging"
    assert kind_of_work(importing) == IMPORT
    assert kind_of_work(first_use) == IMPORT
    assert kind_of_work(making_a_client) == CLIENTS


def test_samples_are_kept_by_function_process_and_localstacks_own_are_left_out() -> None:
    # GIVEN py-spy's raw lines: LocalStack's own stack, two function processes', threads of one
    # waiting for a response and for the next invocation, a forked function process's and the
    # idle process it was forked from
    raw = [
        f"{LOCALSTACK};run (twisted/internet/base.py:1) 40",
        f"{LOCALSTACK};{_function(7)};{BOOT};{RUN};x (botocore/client.py:1) 3",
        f"{LOCALSTACK};{_function(7)};{BOOT};{RUN};y (pydantic/main.py:1) 2",
        f"{LOCALSTACK};{_function(8)};{BOOT};Runtime.initialise (b.py:1);z (q.py:1) 5",
        f"{LOCALSTACK};{_function(8)};{BOOT};{RUN};x (botocore/e.py:1);SocketIO.readinto (s:1) 9",
        f"{LOCALSTACK};{_function(8)};{BOOT};Runtime.serve (b.py:1);Channel.receive (b.py:2) 50",
        f"{LOCALSTACK};{_forked(6)};{_forked(9)};{BOOT};{RUN};y (pydantic/m.py:1) 4",
        f"{LOCALSTACK};{_forked(6)};serve (function_zygote.py:1);select (function_zygote.py:2) 70",
        "",
    ]
    # WHEN they are read THEN only the function processes' working samples remain, by kind
    assert samples_by_process(raw) == {
        7: Counter({"AWS SDK and HTTP": 3, "validation (pydantic)": 2}),
        8: Counter({IMPORT: 5}),
        9: Counter({"validation (pydantic)": 4}),
    }


def test_cpu_is_shared_out_by_samples_and_cold_starts_counted_by_new_processes() -> None:
    # GIVEN two processes of one function, one started during the run, 10 invocations
    samples = {
        1: Counter({"AWS SDK and HTTP": 6, "logging": 2}),
        2: Counter({IMPORT: 2}),
    }
    functions = functions_cpu(
        names={1: "orders/APIHandler", 2: "orders/APIHandler"},
        cpu_s={1: 0.6, 2: 0.4},
        invocations={"orders/APIHandler": 10},
        samples=samples,
        started=[2],
    )
    # WHEN the figures are worked out
    (orders,) = functions
    # THEN 1 s of CPU is split 6:2:2; the import is per cold start, the rest per invocation
    assert orders.cold_starts == 1
    assert orders.once_ms() == pytest.approx(200.0)
    assert orders.per_invocation_ms() == pytest.approx({"AWS SDK and HTTP": 60.0, "logging": 20.0})
    lines = profile_lines(functions, orders=5)
    assert "orders/APIHandler" in lines[1]
    assert "80.0 ms" in lines[1]
    assert any(line.strip().startswith(IMPORT) for line in lines)
