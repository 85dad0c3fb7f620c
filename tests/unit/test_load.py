"""``lambdamesh load``, its pure parts: percentiles, a phase's figures, the report as text and
JSON, the clients' requests, the cold start through the functions' configuration (moto's
Lambda), waiting for decisions, and the exit code (fakes, no network, no LocalStack)."""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import urllib3
from moto import mock_aws

from lambdamesh.chaos import observation
from lambdamesh.chaos.shoppers import Shop
from lambdamesh.cli import build_parser
from lambdamesh.deploy import Target
from lambdamesh.deploy import command as deploy_command
from lambdamesh.load import command
from lambdamesh.load.burst import (
    CONNECTION_ERROR,
    TIMEOUT,
    ClientPlan,
    PostResult,
    place_burst,
    post_order,
)
from lambdamesh.load.coldstart import GENERATION_VARIABLE, make_cold, next_generation
from lambdamesh.load.report import LoadReport, report_document, report_lines
from lambdamesh.load.runner import LoadPlan, decision_time, wait_until_decided
from lambdamesh.load.stats import Decision, Latency, PhaseFigures, percentile, summarise
from tests.support.fake_aws import use_fake_aws
from tests.support.shop_requests import Answer, script

if TYPE_CHECKING:
    from mypy_boto3_lambda.client import LambdaClient

RUN = "load-0123abcd"
T0 = 1_796_292_000.0
"""The first POST of a phase (epoch seconds)."""

# --- percentiles and a phase's figures ---------------------------------------------------------


def test_percentiles_are_nearest_rank_samples_whatever_the_order() -> None:
    # GIVEN 160 latencies, 0.01 s to 1.60 s, shuffled
    samples = [n / 100 for n in range(160, 0, -1)]
    # WHEN their percentiles are taken
    # THEN each is a sample: the smallest with at least that share at or below it
    assert percentile(samples, 0.5) == 0.80
    assert percentile(samples, 0.9) == 1.44
    assert percentile(samples, 0.99) == 1.59
    assert percentile(samples, 1.0) == 1.60
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_a_percentile_outside_the_unit_interval_or_of_nothing_is_refused(fraction: float) -> None:
    # GIVEN a fraction outside (0, 1], or no samples at all
    # WHEN a percentile is asked for  THEN it is refused
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], fraction)
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_latency_of_no_answer_is_all_zero() -> None:
    # GIVEN no samples  WHEN their latency is taken  THEN it is zero, not an error
    assert Latency.of([]) == Latency(0.0, 0.0, 0.0, 0.0)


def answered(key: str, after_s: float, elapsed_s: float, order_id: str | None) -> PostResult:
    return PostResult(key, T0 + after_s, elapsed_s, 201, order_id)


def refused(key: str, after_s: float, elapsed_s: float, status: int | None) -> PostResult:
    failure = TIMEOUT if status is None else None
    return PostResult(key, T0 + after_s, elapsed_s, status, failure=failure)


def test_a_phase_counts_accepted_orders_per_second_of_placing_and_errors_by_status() -> None:
    # GIVEN four orders accepted and three refused (503, 504, no answer), the last answer 10 s
    # after the first POST
    results = [
        answered("k-0", 0.0, 1.0, "o-0"),
        answered("k-1", 0.0, 2.0, "o-1"),
        answered("k-2", 2.0, 1.0, "o-2"),
        answered("k-3", 5.0, 5.0, "o-3"),
        refused("k-4", 0.0, 0.5, 503),
        refused("k-5", 1.0, 3.0, 503),
        refused("k-6", 3.0, 4.0, 504),
    ]
    decisions = {f"o-{n}": Decision("confirmed", T0 + 20.0 + n) for n in range(4)}
    # WHEN the phase is summarised
    phase = summarise("cold", results, decisions)
    # THEN throughput counts accepted orders only, over first POST to last answer
    assert (phase.orders, phase.placed, phase.placing_s) == (7, 4, 10.0)
    assert phase.throughput == 0.4
    # AND every POST is in the latency, refused ones too
    assert phase.latency == Latency(p50=2.0, p90=5.0, p99=5.0, max=5.0)
    # AND the refusals are counted by status
    assert phase.errors == {"503": 2, "504": 1}
    # AND every order was decided 23 s after the first POST, by the last decision's own time
    assert phase.terminal_s == 23.0
    assert phase.decisions == {"confirmed": 4}
    assert not phase.ok


def test_a_phase_with_an_undecided_order_has_no_time_until_terminal_and_is_not_ok() -> None:
    # GIVEN two accepted orders, one of which is still placed
    results = [answered("k-0", 0.0, 1.0, "o-0"), answered("k-1", 0.0, 1.0, "o-1")]
    decisions = {"o-0": Decision("cancelled", T0 + 5.0), "o-1": Decision("placed")}
    # WHEN summarised
    phase = summarise("warm", results, decisions, seen_decided_at=T0 + 9.0)
    # THEN it has no time until terminal, counts one undecided order, and is not ok
    assert phase.terminal_s is None
    assert phase.undecided == 1
    assert phase.decisions == {"cancelled": 1, "placed": 1}
    assert phase.errors == {}
    assert not phase.ok


def test_a_decision_whose_time_is_unknown_ends_when_every_order_was_seen_decided() -> None:
    # GIVEN two decided orders, one whose events could not be read
    results = [answered("k-0", 0.0, 1.0, "o-0"), answered("k-1", 1.0, 1.0, "o-1")]
    decisions = {"o-0": Decision("confirmed", T0 + 4.0), "o-1": Decision("confirmed")}
    # WHEN summarised with the moment every order was seen decided
    phase = summarise("warm", results, decisions, seen_decided_at=T0 + 7.5)
    # THEN that moment ends the phase, and with every order accepted and decided it is ok
    assert phase.terminal_s == 7.5
    assert phase.ok


def test_a_timeout_and_a_lost_connection_are_errors_of_their_own() -> None:
    # GIVEN an order that got no answer in time, one whose connection failed, one accepted
    results = [
        refused("k-0", 0.0, 30.0, None),
        PostResult("k-1", T0, 0.1, None, failure=CONNECTION_ERROR),
        answered("k-2", 0.0, 1.0, "o-2"),
    ]
    # WHEN summarised
    phase = summarise("cold", results, {"o-2": Decision("confirmed", T0 + 2.0)})
    # THEN each is named by what happened
    assert phase.errors == {TIMEOUT: 1, CONNECTION_ERROR: 1}


def test_a_phase_without_orders_is_empty_and_not_ok() -> None:
    # GIVEN no POST at all  WHEN summarised  THEN nothing is counted and the phase is not ok
    phase = summarise("cold", [], {})
    assert (phase.orders, phase.placed, phase.throughput) == (0, 0, 0.0)
    assert not phase.ok


# --- the report ---------------------------------------------------------------------------------


def sample_report() -> LoadReport:
    """A run of 16 clients x 10 orders: a clean cold phase, a warm one with refusals."""
    cold = PhaseFigures(
        name="cold",
        orders=160,
        placed=160,
        placing_s=40.0,
        latency=Latency(p50=1.234, p90=1.8, p99=1.95, max=2.4),
        terminal_s=62.31,
        decisions={"confirmed": 150, "cancelled": 10},
    )
    warm = PhaseFigures(
        name="warm",
        orders=160,
        placed=156,
        errors={"503": 3, TIMEOUT: 1},
        placing_s=12.0,
        latency=Latency(p50=0.41, p90=0.9, p99=1.3, max=30.0),
        terminal_s=None,
        decisions={"confirmed": 150, "cancelled": 4, "placed": 2},
    )
    return LoadReport(RUN, 16, 10, 23, 4, [cold, warm])


def test_the_report_shows_each_phase_in_a_table_with_its_errors_and_decisions() -> None:
    # GIVEN a run whose warm phase had refusals and undecided orders
    # WHEN reported as text
    lines = report_lines(sample_report())
    # THEN the run, the table, each phase's details and the verdict are printed
    assert lines == [
        "",
        f"load run {RUN}: 16 clients x 10 orders per phase",
        f"  cold: 23 functions made cold first ({GENERATION_VARIABLE}=4); warm: at once after it",
        "",
        "  phase     placed  orders/s  POST p50      p90      p99      max  errors"
        "  all decided after",
        "  cold     160/160      4.00    1.23 s   1.80 s   1.95 s   2.40 s       0  62.3 s",
        "  warm     156/160     13.00    0.41 s   0.90 s   1.30 s  30.00 s       4  not all",
        "",
        "  cold: no errors; decided: 150 confirmed, 10 cancelled",
        "  warm: errors 503 x3, timeout x1; decided: 150 confirmed, 4 cancelled, 2 placed"
        " (undecided)",
        "",
        "SOME ORDERS WERE REFUSED OR NEVER DECIDED",
    ]


def test_the_report_says_so_when_every_order_was_accepted_and_decided() -> None:
    # GIVEN a run whose phases were both clean
    report = sample_report()
    clean = replace(report, phases=[report.phases[0], replace(report.phases[0], name="warm")])
    # WHEN reported  THEN it ends with the good news
    assert report_lines(clean)[-1] == "every order was accepted and decided"
    assert clean.ok


def test_the_report_document_is_one_json_document_with_every_figure() -> None:
    # GIVEN the run  WHEN turned into a document and through JSON
    document = json.loads(json.dumps(report_document(sample_report())))
    # THEN it carries the set-up, the verdict and each phase's figures
    assert {key: document[key] for key in ("run_id", "clients", "orders_per_client")} == {
        "run_id": RUN,
        "clients": 16,
        "orders_per_client": 10,
    }
    assert (document["functions_made_cold"], document["generation"]) == (23, 4)
    assert document["ok"] is False
    cold, warm = document["phases"]
    assert cold == {
        "phase": "cold",
        "ok": True,
        "orders": 160,
        "placed": 160,
        "errors": {},
        "placing_s": 40.0,
        "orders_per_s": 4.0,
        "post_latency_s": {"p50": 1.234, "p90": 1.8, "p99": 1.95, "max": 2.4},
        "terminal_s": 62.31,
        "decisions": {"confirmed": 150, "cancelled": 10},
        "undecided": 0,
    }
    assert (warm["ok"], warm["terminal_s"], warm["undecided"]) == (False, None, 2)
    assert warm["errors"] == {"503": 3, "timeout": 1}


# --- the clients --------------------------------------------------------------------------------


@pytest.fixture
def shop() -> Shop:
    return Shop("http://users", "http://catalog", "http://orders", RUN, clients=3)


def test_an_order_is_posted_once_with_its_key_and_timed(
    monkeypatch: pytest.MonkeyPatch, shop: Shop
) -> None:
    # GIVEN the orders API answering 201
    orders = script(monkeypatch, shop, (201, {"id": "o-1", "status": "placed"}, {}))
    ticks = iter([10.0, 10.75])
    # WHEN an order is placed
    result = post_order(
        shop, "k-1", "u-1", (("p-1", 2),), clock=lambda: T0, timer=lambda: next(ticks)
    )
    # THEN one POST carried the basket, the key and the correlation id
    assert orders.requests == [
        (
            "POST",
            "http://orders/orders",
            {"user_id": "u-1", "items": [{"product_id": "p-1", "quantity": 2}]},
            {"Idempotency-Key": "k-1", "X-Correlation-Id": "k-1"},
        )
    ]
    # AND the result is the accepted order, sent at T0, answered 0.75 s later
    assert result == PostResult("k-1", T0, 0.75, 201, "o-1")
    assert result.accepted


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ((503, {"error": {"code": "dependency_unavailable"}}, {"Retry-After": "1"}), "503"),
        ((500, {"error": {"code": "internal"}}, {}), "500"),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"), TIMEOUT),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("connection aborted"), CONNECTION_ERROR),
        (urllib3.exceptions.NewConnectionError(None, "refused"), CONNECTION_ERROR),  # type: ignore[arg-type]
    ],
)
def test_a_refused_or_unanswered_order_is_not_retried_and_keeps_its_outcome(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, answer: Answer, outcome: str
) -> None:
    # GIVEN the orders API refusing, or no answer at all
    orders = script(monkeypatch, shop, answer)
    # WHEN an order is placed
    result = post_order(shop, "k-1", "u-1", (("p-1", 1),))
    # THEN it was sent once, is not accepted, and says what happened
    assert len(orders.requests) == 1
    assert not result.accepted
    assert result.outcome == outcome


def test_every_client_places_its_orders_in_turn_all_clients_at_once(
    monkeypatch: pytest.MonkeyPatch, shop: Shop
) -> None:
    # GIVEN three clients with two orders each, and an API accepting everything
    orders = script(monkeypatch, shop, otherwise=(201, {"id": "o-x"}, {}))
    clients = [ClientPlan(f"u-{n}", ((("p-1", 1),), (("p-2", 2), ("p-3", 1)))) for n in range(3)]
    # WHEN the burst is placed
    results = place_burst(shop, clients, "cold")
    # THEN every order was posted once, under a key naming the run, phase, client and order
    keys = sorted(result.key for result in results)
    assert keys == sorted(f"{RUN}-cold-{c}-{n}" for c in range(3) for n in range(2))
    assert sorted(r[3]["Idempotency-Key"] for r in orders.requests) == keys
    # AND each client posted for its own user, its orders in turn
    for client in range(3):
        own = [
            r
            for r in orders.requests
            if r[3]["Idempotency-Key"].startswith(f"{RUN}-cold-{client}-")
        ]
        assert [r[3]["Idempotency-Key"][-1] for r in own] == ["0", "1"]
        assert {r[2]["user_id"] for r in own} == {f"u-{client}"}
    assert all(result.accepted for result in results)


# --- the cold start -----------------------------------------------------------------------------


def test_the_next_generation_is_one_more_than_any_function_carries() -> None:
    # GIVEN functions carrying generations 2 and 7, one without, one with a stray value
    environments = [
        {GENERATION_VARIABLE: "2"},
        {GENERATION_VARIABLE: "7", "A": "1"},
        {},
        {GENERATION_VARIABLE: "-3"},
    ]
    # WHEN the next generation is chosen  THEN it is 8 (1 for functions never made cold)
    assert next_generation(environments) == 8
    assert next_generation([{}, {"A": "1"}]) == 1


@pytest.fixture
def lambda_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaClient]:
    """moto's Lambda with three functions (it stores them; it does not run them)."""
    use_fake_aws(monkeypatch)
    with mock_aws():
        role = boto3.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return event\n")
        client = boto3.client("lambda")
        for name, variables in {
            "orders-api": {"ORDERS_TABLE": "orders", GENERATION_VARIABLE: "3"},
            "users-api": {"USERS_TABLE": "users"},
            "catalog-rpc": {},
        }.items():
            client.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role["Role"]["Arn"],
                Handler="app.handler",
                Code={"ZipFile": code.getvalue()},
                Environment={"Variables": variables},
            )
        yield client


def variables(client: LambdaClient, name: str) -> dict[str, str]:
    configuration = client.get_function_configuration(FunctionName=name)
    return dict(configuration.get("Environment", {}).get("Variables", {}))


def test_making_functions_cold_changes_each_configuration_and_keeps_every_variable(
    lambda_client: LambdaClient,
) -> None:
    # GIVEN three deployed functions, one of which a run made cold before (generation 3)
    names = ["orders-api", "users-api", "catalog-rpc"]
    # WHEN they are made cold
    said: list[str] = []
    generation = make_cold(lambda_client, names, said.append)
    # THEN each carries generation 4 beside its own variables, its update done
    assert generation == 4
    assert variables(lambda_client, "orders-api") == {
        "ORDERS_TABLE": "orders",
        GENERATION_VARIABLE: "4",
    }
    assert variables(lambda_client, "users-api") == {
        "USERS_TABLE": "users",
        GENERATION_VARIABLE: "4",
    }
    assert variables(lambda_client, "catalog-rpc") == {GENERATION_VARIABLE: "4"}
    for name in names:
        configuration = lambda_client.get_function_configuration(FunctionName=name)
        assert configuration["LastUpdateStatus"] == "Successful"
    assert said == ["   changing the configuration of 3 function(s)"]
    # AND the next run changes them again
    assert make_cold(lambda_client, names, said.append) == 5


def test_a_configuration_update_that_fails_names_its_function(
    lambda_client: LambdaClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a function whose update never succeeds
    from botocore.exceptions import WaiterError

    class FailingWaiter:
        def wait(self, **kwargs: Any) -> None:
            raise WaiterError("FunctionUpdatedV2", "LastUpdateStatus Failed", {})

    monkeypatch.setattr(lambda_client, "get_waiter", lambda _: FailingWaiter())
    # WHEN it is made cold  THEN the error names it
    with pytest.raises(RuntimeError, match="function users-api: its configuration update failed"):
        make_cold(lambda_client, ["users-api"], lambda _: None)


# --- waiting for decisions ------------------------------------------------------------------


def test_the_decision_time_is_the_newest_confirming_or_cancelling_events() -> None:
    # GIVEN an order's events, its decision among them
    events = [
        {"type": "order.placed", "time": "2026-12-03T10:00:00+00:00"},
        {"type": "order.payment_recorded", "time": "2026-12-03T10:00:01+00:00"},
        {"type": "order.cancelled", "time": "2026-12-03T10:00:02.250000+00:00"},
    ]
    # WHEN its decision time is read  THEN it is the cancellation's
    assert decision_time(events) == 1_796_292_002.25
    assert decision_time(events[:2]) is None


def test_waiting_reads_only_undecided_orders_once_quiet_then_when_each_was_decided(
    monkeypatch: pytest.MonkeyPatch, shop: Shop
) -> None:
    # GIVEN two orders: o-1 decided at once, o-2 on the second look
    looks: list[list[str]] = []
    states = iter([{"o-1": "confirmed", "o-2": "placed"}, {"o-2": "cancelled"}])

    def order_statuses(_: Shop, order_ids: list[str]) -> dict[str, str]:
        looks.append(list(order_ids))
        return next(states)

    def wait_until_quiet(*_: Any, done: Any, **__: Any) -> float:
        while not done():
            pass
        return 0.0

    monkeypatch.setattr(observation, "order_statuses", order_statuses)
    monkeypatch.setattr(observation, "wait_until_quiet", wait_until_quiet)
    events = {
        "o-1": [{"type": "order.confirmed", "time": "2026-12-03T10:00:03+00:00"}],
        "o-2": [{"type": "order.cancelled", "time": "2026-12-03T10:00:05+00:00"}],
    }
    script(
        monkeypatch,
        shop,
        *[(200, {"order_id": o, "events": events[o]}, {}) for o in ("o-1", "o-2")],
    )
    monkeypatch.setattr(shop, "clients", 1)  # one reader: answers in the order asked
    # WHEN the phase waits until every order is decided
    decisions, seen_at = wait_until_decided(shop, None, "lambdamesh", ["o-1", "o-2"], 60.0, print)  # type: ignore[arg-type]
    # THEN the second look asked only for the undecided order
    assert looks == [["o-1", "o-2"], ["o-2"]]
    # AND each decision carries its event's time, and the moment all were seen decided is kept
    assert decisions == {
        "o-1": Decision("confirmed", 1_796_292_003.0),
        "o-2": Decision("cancelled", 1_796_292_005.0),
    }
    assert seen_at is not None


# --- the command --------------------------------------------------------------------------------


def test_load_is_a_command_with_its_defaults() -> None:
    # GIVEN the command line  WHEN `lambdamesh load` is parsed without options
    args = build_parser().parse_args(["load"])
    # THEN 16 clients place 10 orders each, as text
    assert (args.clients, args.orders_per_client, args.json) == (16, 10, False)
    assert command.plan_from(args) == LoadPlan(clients=16, orders_per_client=10)


def test_the_run_size_and_json_are_options() -> None:
    # GIVEN options  WHEN parsed  THEN the plan follows them
    args = build_parser().parse_args(
        ["load", "--clients", "4", "--orders-per-client", "3", "--json"]
    )
    assert command.plan_from(args).orders_per_phase == 12
    assert args.json
    with pytest.raises(SystemExit):
        build_parser().parse_args(["load", "--clients", "0"])


@pytest.mark.parametrize(("clean", "code"), [(True, 0), (False, 1)])
def test_the_exit_code_says_whether_every_order_was_accepted_and_decided(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean: bool,
    code: int,
) -> None:
    # GIVEN a run that went well, or one with refusals
    report = sample_report()
    if clean:
        report = replace(report, phases=[report.phases[0], replace(report.phases[0], name="warm")])
    target = Target.localstack("http://127.0.0.1:4566")
    monkeypatch.setattr(command, "start_target", lambda *_: (target, None))
    monkeypatch.setattr(command, "deploy_all", lambda *_: object())
    monkeypatch.setattr(deploy_command, "build_options", lambda *_: None)
    monkeypatch.setattr(command, "run_load", lambda *_, **__: report)
    # WHEN the command runs with --json
    args = argparse.Namespace(clients=16, orders_per_client=10, json=True, port=0, endpoint=None)
    exit_code = command.run(args)
    # THEN the exit code follows the verdict, and standard output is one JSON document
    assert exit_code == code
    assert json.loads(capsys.readouterr().out)["ok"] is clean
