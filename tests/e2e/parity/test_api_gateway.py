"""API Gateway REST APIs as AWS builds a Lambda proxy event and enforces its body limit.

Sources: "Input format of a Lambda function for proxy integration" (the event's fields,
``multiValueHeaders`` and ``multiValueQueryStringParameters`` holding every value of a repeated
key and ``headers`` / ``queryStringParameters`` the last one, ``requestContext``), "Amazon API
Gateway quotas" (10 MB payload) and "Gateway response types" (``REQUEST_TOO_LARGE``, 413).
Where the documentation does not say how a value is encoded, the expected value is the one AWS
answered in LocalStack's recorded parity test
(``tests/aws/services/apigateway/test_apigateway_lambda.py::test_lambda_aws_proxy_integration``
at v4.14.0): a REST API hands the function the path, and a greedy path parameter, still
percent-encoded, and the query string decoded, ``+`` read as a space.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.lambda_support import create_function, create_proxy_api, unique_name

STAGE = "stage"

# Answers with the proxy event it was given, as the response body.
EVENT_ECHO = """
    import json

    def handler(event, context):
        return {"statusCode": 200, "body": json.dumps(event)}
"""

REQUEST_CONTEXT_KEYS = {
    "accountId",
    "apiId",
    "deploymentId",
    "domainName",
    "domainPrefix",
    "extendedRequestId",
    "httpMethod",
    "identity",
    "path",
    "protocol",
    "requestId",
    "requestTime",
    "requestTimeEpoch",
    "resourceId",
    "resourcePath",
    "stage",
}
IDENTITY_KEYS = {
    "accessKey",
    "accountId",
    "caller",
    "cognitoAuthenticationProvider",
    "cognitoAuthenticationType",
    "cognitoIdentityId",
    "cognitoIdentityPoolId",
    "principalOrgId",
    "sourceIp",
    "user",
    "userAgent",
    "userArn",
}


@dataclass(frozen=True)
class ProxyApi:
    """A REST API whose ``/{proxy+}`` resource is a Lambda proxy integration, deployed."""

    endpoint_url: str
    api_id: str

    @property
    def host(self) -> str:
        """The API's host name, with the emulator's port."""
        port = urllib.parse.urlsplit(self.endpoint_url).port
        return f"{self.api_id}.execute-api.localhost.localstack.cloud:{port}"

    def request(
        self,
        method: str,
        path_and_query: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        """Send one request to the stage, headers exactly as given (repeats included)."""
        url = urllib.parse.urlsplit(self.endpoint_url)
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
        try:
            # Addressed as on AWS, by the API's own host name; LocalStack routes
            # <api id>.execute-api.localhost.localstack.cloud to the API.
            connection.putrequest(method, f"/{STAGE}{path_and_query}", skip_host=True)
            connection.putheader("Host", self.host)
            for name, value in headers or []:
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def event(self, method: str, path_and_query: str, **kwargs: Any) -> dict[str, Any]:
        """The proxy event the function received for one request."""
        status, body = self.request(method, path_and_query, **kwargs)
        assert status == 200, body[:500]
        event: dict[str, Any] = json.loads(body)
        return event


@pytest.fixture(scope="module")
def proxy_api(emulator: Any) -> Iterator[ProxyApi]:
    lambda_client, apigateway = emulator.client("lambda"), emulator.client("apigateway")
    function = create_function(lambda_client, EVENT_ECHO)
    api_id = create_proxy_api(
        lambda_client, apigateway, function, stage=STAGE, name=unique_name("parity-api")
    )
    yield ProxyApi(emulator.endpoint_url, api_id)
    apigateway.delete_rest_api(restApiId=api_id)
    lambda_client.delete_function(FunctionName=function)


def test_the_path_and_a_greedy_path_parameter_arrive_percent_encoded(proxy_api: ProxyApi) -> None:
    # GIVEN a path holding an encoded plus (%2B) and a literal one
    path = "/proxy-value/api/user/test%2Balias@gmail.com/plus/test+alias@gmail.com"
    # WHEN it is requested
    event = proxy_api.event("GET", path, headers=[("User-Agent", "parity/1")])
    # THEN path, proxy parameter and the context's path are the path as sent, as on AWS
    assert event["path"] == path
    assert event["pathParameters"] == {"proxy": path.lstrip("/")}
    assert event["resource"] == "/{proxy+}"
    assert event["requestContext"]["path"] == f"/{STAGE}{path}"
    assert event["requestContext"]["resourcePath"] == "/{proxy+}"


def test_query_string_values_arrive_decoded_with_every_value_of_a_repeated_key(
    proxy_api: ProxyApi,
) -> None:
    # GIVEN a query string with encoded characters, a literal plus and repeated keys
    query = "&".join(
        [
            "email=test%2Balias@gmail.com",
            "plus=test+alias@gmail.com",
            "url=https://www.google.com/",
            "whitespace=foo%20bar",
            "category=electronics",
            "category=books",
        ]
    )
    # WHEN it is sent
    event = proxy_api.event("GET", f"/proxy-value/api?{query}")
    # THEN every value is decoded (a plus is a space); the single-value map keeps the last value
    assert event["queryStringParameters"] == {
        "email": "test+alias@gmail.com",
        "plus": "test alias@gmail.com",
        "url": "https://www.google.com/",
        "whitespace": "foo bar",
        "category": "books",
    }
    assert event["multiValueQueryStringParameters"] == {
        "email": ["test+alias@gmail.com"],
        "plus": ["test alias@gmail.com"],
        "url": ["https://www.google.com/"],
        "whitespace": ["foo bar"],
        "category": ["electronics", "books"],
    }


def test_a_request_without_a_query_string_or_body_has_nulls_for_them(proxy_api: ProxyApi) -> None:
    # GIVEN / WHEN a bare GET
    event = proxy_api.event("GET", "/proxy-value")
    # THEN the absent parts are null, not empty maps, and the body is not base64
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert event["stageVariables"] is None


def test_headers_keep_their_casing_and_a_repeated_header_keeps_every_value(
    proxy_api: ProxyApi,
) -> None:
    # GIVEN a request with a mixed-case header and a header sent twice
    headers = [("tEsT-HEADeR", "aValUE"), ("X-Repeated", "first"), ("X-Repeated", "second")]
    # WHEN it is sent
    event = proxy_api.event("GET", "/proxy-value", headers=headers)
    # THEN the header's name is as sent; multiValueHeaders holds both values of the repeated
    # one, headers its last
    assert event["headers"]["tEsT-HEADeR"] == "aValUE"
    assert event["multiValueHeaders"]["tEsT-HEADeR"] == ["aValUE"]
    assert event["multiValueHeaders"]["X-Repeated"] == ["first", "second"]
    assert event["headers"]["X-Repeated"] == "second"


def test_a_post_body_arrives_as_text_with_the_method_and_context(proxy_api: ProxyApi) -> None:
    # GIVEN a JSON body
    body = json.dumps({"message": "hello world"}).encode()
    # WHEN it is posted
    event = proxy_api.event(
        "POST",
        "/proxy-value",
        headers=[("Content-Type", "application/json;charset=utf-8"), ("User-Agent", "parity/1")],
        body=body,
    )
    # THEN the body is the text sent, and the request context has AWS's fields
    assert event["body"] == body.decode()
    assert event["httpMethod"] == "POST"
    context = event["requestContext"]
    assert set(context) == REQUEST_CONTEXT_KEYS
    assert set(context["identity"]) == IDENTITY_KEYS
    assert context["httpMethod"] == "POST"
    assert context["stage"] == STAGE
    assert context["apiId"] == proxy_api.api_id
    assert context["domainName"] == proxy_api.host
    assert context["domainPrefix"] == proxy_api.api_id
    assert context["protocol"] == "HTTP/1.1"
    assert context["identity"]["userAgent"] == "parity/1"
    assert context["identity"]["sourceIp"]
    assert isinstance(context["requestTimeEpoch"], int)


def test_a_body_over_ten_megabytes_is_refused_with_413(proxy_api: ProxyApi) -> None:
    # GIVEN a body one byte over API Gateway's 10 MB limit
    body = b"x" * (10 * 1024 * 1024 + 1)
    # WHEN it is posted
    status, answer = proxy_api.request(
        "POST", "/proxy-value", headers=[("Content-Type", "text/plain")], body=body
    )
    # THEN API Gateway refuses it with its REQUEST_TOO_LARGE response
    assert status == 413
    assert json.loads(answer) == {"message": "Request Too Long"}
