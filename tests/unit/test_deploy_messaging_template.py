"""The messaging template says what the topology table says (read as data, no AWS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TEMPLATE: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "infra" / "topology" / "messaging.json").read_text()
)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]

SUBSCRIPTIONS = {
    ("OrdersTopic", "PaymentsOrdersQueue"): ["order.placed", "order.cancelled", "order.voided"],
    ("OrdersTopic", "InventoryOrdersQueue"): ["order.placed", "order.cancelled", "order.voided"],
    ("PaymentsTopic", "InventoryPaymentsQueue"): ["payment.failed"],
    ("OrdersTopic", "NotificationsOrdersQueue"): ["order.confirmed", "order.cancelled"],
    ("UsersTopic", "NotificationsUsersQueue"): ["user.created"],
    ("PaymentsTopic", "OrdersOutcomesQueue"): ["payment.processed", "payment.failed"],
    ("InventoryTopic", "OrdersOutcomesQueue"): ["inventory.reserved", "inventory.rejected"],
    ("InventoryTopic", "CatalogInventoryQueue"): ["inventory.stock_changed"],
}
"""(topic, queue) → the event types the subscription lets through."""

FUNCTION_TIMEOUT_S = 10
FOURTEEN_DAYS_S = 14 * 24 * 3600


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {key: value for key, value in RESOURCES.items() if value["Type"] == kind}


def _ref(value: dict[str, Any]) -> str:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` points at."""
    return str(value["Ref"]) if "Ref" in value else str(value["Fn::GetAtt"][0])


def _name(resource: dict[str, Any], key: str) -> str:
    return str(resource["Properties"][key]["Fn::Sub"])


QUEUES = {
    key: value for key, value in _of_type("AWS::SQS::Queue").items() if "DeadLetter" not in key
}

STREAM_DEAD_LETTER_QUEUES = {"InventoryStockChangesDeadLetterQueue": "inventory-stock-changes-dlq"}
"""Dead-letter queues of stream functions (no queue's): logical id → name after the prefix."""


def test_subscriptions_are_raw_and_filter_on_the_type_attribute_as_the_table_says() -> None:
    # GIVEN the template's subscriptions
    found = {
        (_ref(sub["Properties"]["TopicArn"]), _ref(sub["Properties"]["Endpoint"])): sub[
            "Properties"
        ]
        for sub in _of_type("AWS::SNS::Subscription").values()
    }
    # THEN there is one per row of the table, each letting through exactly its types, raw
    assert {key: props["FilterPolicy"]["type"] for key, props in found.items()} == SUBSCRIPTIONS
    for props in found.values():
        assert props["Protocol"] == "sqs"
        assert props["RawMessageDelivery"] is True
        assert props["FilterPolicyScope"] == "MessageAttributes"


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_every_queue_has_its_own_dlq_after_five_receives(queue: str) -> None:
    # GIVEN a consumer queue
    props = QUEUES[queue]["Properties"]
    dlq = RESOURCES[_ref(props["RedrivePolicy"]["deadLetterTargetArn"])]["Properties"]
    # THEN it dead-letters after 5 receives into <name>-dlq (.fifo kept), kept 14 days
    assert props["RedrivePolicy"]["maxReceiveCount"] == 5
    expected = _name(QUEUES[queue], "QueueName").removesuffix(".fifo") + "-dlq"
    assert dlq["QueueName"]["Fn::Sub"] == expected + (".fifo" if props.get("FifoQueue") else "")
    assert dlq["MessageRetentionPeriod"] == FOURTEEN_DAYS_S
    assert dlq.get("FifoQueue", False) == props.get("FifoQueue", False)
    # AND its visibility timeout is 6 x the consumer function's timeout
    assert props["VisibilityTimeout"] == 6 * FUNCTION_TIMEOUT_S


def test_fifo_queues_subscribe_only_to_fifo_topics_and_standard_ones_only_to_standard() -> None:
    # GIVEN every subscription  THEN topic and queue agree on FIFO (LocalStack would not check)
    for topic, queue in SUBSCRIPTIONS:
        topic_fifo = RESOURCES[topic]["Properties"].get("FifoTopic", False)
        assert RESOURCES[queue]["Properties"].get("FifoQueue", False) == topic_fifo
        assert _name(RESOURCES[queue], "QueueName").endswith(".fifo") == topic_fifo


def test_every_queue_admits_send_message_only_from_the_topics_it_subscribes_to() -> None:
    # GIVEN every queue policy
    for policy in _of_type("AWS::SQS::QueuePolicy").values():
        props = policy["Properties"]
        [queue] = [_ref(ref) for ref in props["Queues"]]
        [statement] = props["PolicyDocument"]["Statement"]
        # THEN it allows sqs:SendMessage from SNS, only with its own topics as source
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        sources = {_ref(ref) for ref in statement["Condition"]["ArnEquals"]["aws:SourceArn"]}
        assert sources == {topic for topic, subscriber in SUBSCRIPTIONS if subscriber == queue}
    assert {
        _ref(p["Properties"]["Queues"][0]) for p in _of_type("AWS::SQS::QueuePolicy").values()
    } == set(QUEUES)


def test_outputs_offer_topic_arns_tables_and_queues_by_the_agreed_names() -> None:
    # GIVEN the outputs
    outputs = TEMPLATE["Outputs"]
    # THEN every topic ARN, the consumers' failures table, and every queue's URL and ARN are there
    assert {"UsersTopicArn", "OrdersTopicArn", "PaymentsTopicArn", "InventoryTopicArn"} <= set(
        outputs
    )
    assert "EventFailuresTable" in outputs
    for queue in [*QUEUES, *(q.replace("Queue", "DeadLetterQueue") for q in QUEUES)]:
        assert {f"{queue}Url", f"{queue}Arn"} <= set(outputs)


def test_the_orders_topic_is_fifo_with_explicit_deduplication_ids() -> None:
    # GIVEN the orders topic  THEN it is FIFO, deduplicating by the id the publisher sets
    props = RESOURCES["OrdersTopic"]["Properties"]
    assert props["TopicName"]["Fn::Sub"] == "${NamePrefix}-orders.fifo"
    assert props["FifoTopic"] is True
    assert props["ContentBasedDeduplication"] is False


@pytest.mark.parametrize("logical_id", sorted(STREAM_DEAD_LETTER_QUEUES))
def test_a_stream_functions_dead_letter_queue_is_standard_kept_14_days_and_no_queues_dlq(
    logical_id: str,
) -> None:
    # GIVEN the dead-letter queue of a function that reads a table's stream
    props = RESOURCES[logical_id]["Properties"]
    # THEN it is a standard queue named <prefix>-<name>-dlq, keeping its letters 14 days
    assert props["QueueName"]["Fn::Sub"] == "${NamePrefix}-" + STREAM_DEAD_LETTER_QUEUES[logical_id]
    assert "FifoQueue" not in props
    assert props["MessageRetentionPeriod"] == FOURTEEN_DAYS_S
    # AND no queue may dead-letter into it: nothing would know where to redrive a letter
    assert props["RedriveAllowPolicy"] == {"redrivePermission": "denyAll"}
    dead_letter_targets = [
        _ref(queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for queue in QUEUES.values()
    ]
    assert logical_id not in dead_letter_targets
    # AND its URL and ARN are offered under the names deploy wires into the function's stack
    assert {f"{logical_id}Url", f"{logical_id}Arn"} <= set(TEMPLATE["Outputs"])
    assert TEMPLATE["Outputs"][f"{logical_id}Arn"]["Value"] == {"Fn::GetAtt": [logical_id, "Arn"]}
