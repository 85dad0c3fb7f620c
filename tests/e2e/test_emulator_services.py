"""The AWS services the system stands on, working together on the embedded LocalStack."""

from __future__ import annotations

import functools
import http.client
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.lambda_support import (
    create_function,
    create_proxy_api,
    stage_url,
    unique_name,
    wait_until,
)
from tests.support.sqs import queue_arn, subscribe_raw

REGION = "us-east-1"

# Forwards whatever event it gets to the queue named in its environment.
FORWARDER = """
    import json, os
    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        sqs.send_message(QueueUrl=os.environ["SINK_URL"], MessageBody=json.dumps(event))
        return {"forwarded": True}
"""


def receive_one(sqs: Any, queue_url: str) -> dict[str, Any] | None:
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    ).get("Messages", [])
    return messages[0] if messages else None


def test_api_gateway_rest_proxy_integration_answers_over_http(emulator: Any) -> None:
    # GIVEN a REST API whose {proxy+} resource is an AWS_PROXY integration of a function
    lambda_client, apigateway = emulator.client("lambda"), emulator.client("apigateway")
    name = create_function(
        lambda_client,
        """
        import json

        def handler(event, context):
            body = {"path": event["path"], "method": event["httpMethod"],
                    "query": event["queryStringParameters"]}
            return {"statusCode": 201, "headers": {"X-Served-By": "lambda"},
                    "body": json.dumps(body)}
        """,
    )
    api_id = create_proxy_api(lambda_client, apigateway, name, stage="test")
    # WHEN the stage is called over plain HTTP
    url = f"{stage_url(emulator.endpoint_url, api_id, 'test')}orders/7?verbose=1"
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        status, served_by, body = response.status, response.headers["X-Served-By"], response.read()
    # THEN the function's proxy response is the HTTP response
    assert status == 201
    assert served_by == "lambda"
    assert json.loads(body) == {"path": "/orders/7", "method": "POST", "query": {"verbose": "1"}}


def test_sns_fans_out_to_every_subscribed_queue(emulator: Any) -> None:
    # GIVEN a topic with two queues subscribed with raw delivery
    sns, sqs = emulator.client("sns"), emulator.client("sqs")
    topic_arn = sns.create_topic(Name=unique_name("orders"))["TopicArn"]
    queue_urls = [sqs.create_queue(QueueName=unique_name(c))["QueueUrl"] for c in ("pay", "stock")]
    for queue_url in queue_urls:
        subscribe_raw(sns, sqs, topic_arn, queue_url)
    # WHEN one event is published
    sns.publish(
        TopicArn=topic_arn,
        Message=json.dumps({"type": "order.placed"}),
        MessageAttributes={"type": {"DataType": "String", "StringValue": "order.placed"}},
    )
    # THEN each queue receives it, body and attributes intact
    for queue_url in queue_urls:
        message = wait_until(functools.partial(receive_one, sqs, queue_url))
        assert json.loads(message["Body"]) == {"type": "order.placed"}
        assert message["MessageAttributes"]["type"]["StringValue"] == "order.placed"


def test_sns_invokes_a_subscribed_function(emulator: Any) -> None:
    # GIVEN a function subscribed to a topic, forwarding what it receives to a queue
    sns, sqs, lambda_client = (
        emulator.client("sns"),
        emulator.client("sqs"),
        emulator.client("lambda"),
    )
    sink_url = sqs.create_queue(QueueName=unique_name("sink"))["QueueUrl"]
    name = create_function(lambda_client, FORWARDER, environment={"SINK_URL": sink_url})
    function_arn = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    topic_arn = sns.create_topic(Name=unique_name("users"))["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="lambda", Endpoint=function_arn)
    # WHEN an event is published
    sns.publish(TopicArn=topic_arn, Message="user.created")
    # THEN the function received the SNS notification
    message = wait_until(lambda: receive_one(sqs, sink_url))
    record = json.loads(message["Body"])["Records"][0]
    assert record["EventSource"] == "aws:sns"
    assert record["Sns"]["Message"] == "user.created"


def test_sqs_event_source_mapping_drives_a_function(emulator: Any) -> None:
    # GIVEN a queue mapped to a function that forwards its batch to a sink queue
    sqs, lambda_client = emulator.client("sqs"), emulator.client("lambda")
    sink_url = sqs.create_queue(QueueName=unique_name("sink"))["QueueUrl"]
    source_url = sqs.create_queue(QueueName=unique_name("source"))["QueueUrl"]
    source_arn = queue_arn(sqs, source_url)
    name = create_function(lambda_client, FORWARDER, environment={"SINK_URL": sink_url})
    lambda_client.create_event_source_mapping(
        EventSourceArn=source_arn, FunctionName=name, BatchSize=10
    )
    # WHEN a message is sent to the queue
    sqs.send_message(QueueUrl=source_url, MessageBody="payment please")
    # THEN the function ran with it as an SQS record
    message = wait_until(lambda: receive_one(sqs, sink_url))
    record = json.loads(message["Body"])["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["body"] == "payment please"


def test_awslocal_invokes_a_function_on_the_embedded_endpoint(
    emulator: Any, tmp_path: Path
) -> None:
    # GIVEN a deployed function and awslocal pointed at the embedded endpoint
    name = create_function(
        emulator.client("lambda"),
        """
        def handler(event, context):
            return {"greeting": "hello " + event["who"]}
        """,
    )
    awslocal = Path(sys.executable).with_name("awslocal")
    host = emulator.endpoint_url.removeprefix("http://")
    env = {
        **os.environ,
        "LOCALSTACK_HOST": host,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "DISABLE_DEPRECATION_NOTICE": "1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    out = tmp_path / "out.json"
    # WHEN `awslocal lambda invoke` runs
    completed = subprocess.run(
        [
            str(awslocal), "lambda", "invoke", "--function-name", name,
            "--payload", '{"who": "mesh"}', str(out),
        ],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # THEN it succeeds and writes the function's answer
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text()) == {"greeting": "hello mesh"}


def test_cloudformation_creates_and_deletes_a_stack(emulator: Any) -> None:
    # GIVEN a template with a topic and a queue subscribed to it
    cloudformation = emulator.client("cloudformation")
    template = {
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic"},
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Subscription": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "sqs",
                    "Endpoint": {"Fn::GetAtt": ["Queue", "Arn"]},
                },
            },
        }
    }
    stack = unique_name("stack")
    # WHEN the stack is created
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    # THEN all its resources exist, and deleting it completes
    resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    assert {r["ResourceStatus"] for r in resources} == {"CREATE_COMPLETE"}
    assert len(resources) == 3
    cloudformation.delete_stack(StackName=stack)
    cloudformation.get_waiter("stack_delete_complete").wait(
        StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def test_a_large_body_arrives_whole_and_in_order_both_ways(emulator: Any) -> None:
    # GIVEN an object of 24 MB of random bytes (the gateway writes a response body in many
    # chunks: see connection_threads.py)
    s3 = emulator.client("s3")
    bucket = unique_name("bodies")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(24 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="large", Body=body)
    # WHEN it is read back, whole and by a range
    whole = s3.get_object(Bucket=bucket, Key="large")["Body"].read()
    part = s3.get_object(Bucket=bucket, Key="large", Range="bytes=5000000-5999999")["Body"].read()
    # THEN every byte is there, in its place
    assert len(whole) == len(body)
    assert whole == body
    assert part == body[5_000_000:6_000_000]


def test_a_body_sent_in_chunks_without_a_length_is_stored_whole(emulator: Any) -> None:
    # GIVEN a bucket, and 3 MB sent with chunked transfer coding (no Content-Length)
    s3 = emulator.client("s3")
    bucket = unique_name("chunked")
    s3.create_bucket(Bucket=bucket)
    pieces = [os.urandom(1024 * 1024) for _ in range(3)]
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=60)
    # WHEN it is put, unsigned, as a client streaming a body of unknown length does
    connection.request("PUT", f"/{bucket}/streamed", body=iter(pieces), encode_chunked=True)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    # THEN the object holds every byte, in order
    assert answer.status == 200
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == b"".join(pieces)


def test_the_gateway_serves_https_on_its_http_port(emulator: Any) -> None:
    # GIVEN the emulator's port, spoken to over TLS (LocalStack's own certificate)
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{emulator.port}/_localstack/health"
    # WHEN its health is asked for
    with urllib.request.urlopen(url, context=unverified, timeout=30) as answer:
        health = json.load(answer)
    # THEN it answers as over plain HTTP
    assert health["services"]["sqs"] in ("available", "running")
