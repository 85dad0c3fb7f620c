"""Transformations of Chalice's SAM template: CodeUri, partial batch responses, functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambdamesh.deploy.packaging import PackagedApp, package_app
from lambdamesh.deploy.services import ServiceApp
from lambdamesh.deploy.template import (
    REPORT_BATCH_ITEM_FAILURES,
    add_partial_batch_responses,
    function_logical_ids,
    has_rest_api,
    prepare_template,
    rewrite_code_uris,
)

APP_SOURCE = """\
from chalice import Chalice

app = Chalice(app_name="lambdamesh-consumer")


@app.route("/ping")
def ping():
    return {"ok": True}


@app.lambda_function(name="rpc")
def rpc(event, context):
    return event


@app.on_sqs_message(queue="orders-placed", batch_size=5)
def on_order_placed(event):
    return None
"""

CONFIG = (
    '{"version": "2.0", "app_name": "lambdamesh-consumer", "automatic_layer": false,'
    ' "stages": {"dev": {"autogen_policy": true}}}'
)


def write_app(root: Path, source: str = APP_SOURCE) -> ServiceApp:
    """A Chalice app with a route, a lambda_function and an SQS handler at ``root``."""
    (root / ".chalice").mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(source)
    (root / "requirements.txt").write_text("")
    (root / ".chalice" / "config.json").write_text(CONFIG)
    return ServiceApp(root.name, root)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> PackagedApp:
    """Chalice's real output (``chalice package``, no network) for :data:`APP_SOURCE`."""
    app = write_app(tmp_path_factory.mktemp("apps") / "consumer")
    return package_app(app, tmp_path_factory.mktemp("cache"), "us-east-1")


@pytest.fixture
def template(packaged: PackagedApp) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(packaged.template_file.read_text())
    return loaded


def _sqs_events(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        event
        for resource in template["Resources"].values()
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event["Type"] == "SQS"
    ]


def test_rewrite_code_uris_points_every_function_at_the_s3_object(
    template: dict[str, Any],
) -> None:
    # GIVEN Chalice's template, whose functions name ./deployment.zip
    assert {
        resource["Properties"]["CodeUri"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    } == {"./deployment.zip"}
    # WHEN the CodeUris are rewritten
    rewritten = rewrite_code_uris(template, "bucket", "lambdamesh/consumer/abc.zip")
    # THEN all three functions load from S3, and the input is unchanged
    uris = {
        logical_id: resource["Properties"]["CodeUri"]
        for logical_id, resource in rewritten["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert set(uris) == {"APIHandler", "Rpc", "OnOrderPlaced"}
    assert set(uris.values()) == {"s3://bucket/lambdamesh/consumer/abc.zip"}
    assert template["Resources"]["APIHandler"]["Properties"]["CodeUri"] == "./deployment.zip"


def test_sqs_event_sources_report_batch_item_failures(template: dict[str, Any]) -> None:
    # GIVEN Chalice's template for an on_sqs_message handler, which has no response types
    assert [
        event["Properties"].get("FunctionResponseTypes") for event in _sqs_events(template)
    ] == [None]
    # WHEN partial batch responses are added
    transformed = add_partial_batch_responses(template)
    # THEN the SQS event source reports item failures and keeps Chalice's other settings
    (event,) = _sqs_events(transformed)
    assert event["Properties"]["FunctionResponseTypes"] == [REPORT_BATCH_ITEM_FAILURES]
    assert event["Properties"]["BatchSize"] == 5


def test_partial_batch_responses_are_added_once_when_applied_twice(
    template: dict[str, Any],
) -> None:
    # GIVEN a template already transformed  WHEN transformed again
    twice = add_partial_batch_responses(add_partial_batch_responses(template))
    # THEN the response type is listed once
    (event,) = _sqs_events(twice)
    assert event["Properties"]["FunctionResponseTypes"] == [REPORT_BATCH_ITEM_FAILURES]


def test_plain_event_source_mappings_on_a_queue_report_batch_item_failures() -> None:
    # GIVEN a merge template with mappings on a queue of the template, on a literal queue ARN
    # and on a DynamoDB stream
    template: dict[str, Any] = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "FromQueue": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}},
            },
            "FromArn": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:q"},
            },
            "FromStream": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]}},
            },
            "Table": {"Type": "AWS::DynamoDB::Table"},
        }
    }
    # WHEN partial batch responses are added
    resources = add_partial_batch_responses(template)["Resources"]
    # THEN only the queue mappings get them
    assert resources["FromQueue"]["Properties"]["FunctionResponseTypes"] == [
        REPORT_BATCH_ITEM_FAILURES
    ]
    assert resources["FromArn"]["Properties"]["FunctionResponseTypes"] == [
        REPORT_BATCH_ITEM_FAILURES
    ]
    assert "FunctionResponseTypes" not in resources["FromStream"]["Properties"]


def test_prepare_template_applies_every_transformation(template: dict[str, Any]) -> None:
    # GIVEN Chalice's template  WHEN prepared for deploy
    prepared = prepare_template(template, "b", "k.zip")
    # THEN CodeUris are in S3 and the SQS source reports item failures
    assert prepared["Resources"]["Rpc"]["Properties"]["CodeUri"] == "s3://b/k.zip"
    (event,) = _sqs_events(prepared)
    assert event["Properties"]["FunctionResponseTypes"] == [REPORT_BATCH_ITEM_FAILURES]
    assert has_rest_api(prepared)
    assert function_logical_ids(prepared) == ["APIHandler", "OnOrderPlaced", "Rpc"]
