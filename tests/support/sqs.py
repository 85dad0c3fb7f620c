"""SQS and SNS wiring the tests of every tier repeat: a queue's ARN, a raw-delivery subscription.

Works with any boto3 client: moto in-process, the embedded LocalStack, or LocalStack in Docker.
"""

from __future__ import annotations

from typing import Any


def queue_arn(sqs: Any, queue_url: str) -> str:
    """The ARN of the queue at ``queue_url``."""
    arn: str = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    return arn


def subscribe_raw(sns: Any, sqs: Any, topic_arn: str, queue_url: str) -> str:
    """Subscribe the queue to the topic with raw message delivery; the queue's ARN."""
    arn = queue_arn(sqs, queue_url)
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return arn
