"""Parameter wiring from earlier stacks' Outputs, and API URLs per target."""

from __future__ import annotations

import pytest

from lambdamesh.deploy.target import Target
from lambdamesh.deploy.wiring import DeployedStack, UnresolvedParameterError, resolve_parameters
from tests.unit.services.service_loader import service_resources

DEPLOYED = {
    "shared": DeployedStack("shared", {"CircuitBreakerTable": "cb-table", "DeploymentBucket": "b"}),
    "users": DeployedStack(
        "users", {"RestAPIId": "u123"}, "http://127.0.0.1:4566/_aws/execute-api/u123/api/"
    ),
    "catalog": DeployedStack("catalog", {"RpcFunctionName": "lambdamesh-catalog-Rpc-1"}),
    "reviews": DeployedStack("reviews", {"TableName": "reviews-table"}),
}


def test_orders_parameters_come_from_shared_users_and_catalog() -> None:
    # GIVEN the orders template's parameters, after shared, users and catalog are deployed
    declared = {
        "CircuitBreakerTable": {"Type": "String"},
        "UsersApiUrl": {"Type": "String"},
        "CatalogFunctionName": {"Type": "String"},
    }
    # WHEN resolved
    values = resolve_parameters("orders", declared, DEPLOYED)
    # THEN each comes from the stack its name points at; the API URL without its final slash
    assert values == {
        "CircuitBreakerTable": "cb-table",
        "UsersApiUrl": "http://127.0.0.1:4566/_aws/execute-api/u123/api",
        "CatalogFunctionName": "lambdamesh-catalog-Rpc-1",
    }


def test_the_users_api_orders_may_invoke_is_the_users_stacks_rest_api_by_convention() -> None:
    # GIVEN the orders fragment's UsersRestAPIId (the API its role may invoke), and the users
    # stack's Outputs as Chalice's template names them (RestAPIId)
    declared = service_resources("orders")["Parameters"]
    # WHEN resolved after the users stack
    values = resolve_parameters("orders", {"UsersRestAPIId": declared["UsersRestAPIId"]}, DEPLOYED)
    # THEN it is that stack's RestAPIId, by the <Service><OutputKey> convention alone
    assert values == {"UsersRestAPIId": "u123"}


def test_service_prefixed_parameters_take_that_services_output() -> None:
    # GIVEN a parameter named <Service><OutputKey>
    declared = {"ReviewsTableName": {"Type": "String"}}
    # WHEN resolved  THEN the reviews stack's TableName output is used
    assert resolve_parameters("x", declared, DEPLOYED) == {"ReviewsTableName": "reviews-table"}


def test_a_parameter_with_a_default_and_no_source_is_left_to_cloudformation() -> None:
    # GIVEN a parameter no stack provides, with a default
    declared = {"LogLevel": {"Type": "String", "Default": "INFO"}}
    # WHEN resolved  THEN it is not passed
    assert resolve_parameters("users", declared, DEPLOYED) == {}


def test_a_parameter_without_source_or_default_is_an_error_naming_it() -> None:
    # GIVEN reviews needing catalog's RPC function before catalog is deployed
    declared = {"CatalogFunctionName": {"Type": "String"}}
    # WHEN resolved  THEN the error names the service and the parameter
    with pytest.raises(UnresolvedParameterError, match=r"reviews: .*CatalogFunctionName"):
        resolve_parameters("reviews", declared, {"shared": DEPLOYED["shared"]})


def test_api_url_takes_the_path_form_on_localstack_and_the_host_form_on_aws() -> None:
    # GIVEN a LocalStack target and an AWS target
    localstack = Target.localstack("http://127.0.0.1:4566/")
    aws = Target(None, "eu-west-1")
    # THEN LocalStack's URL goes through /_aws/execute-api, AWS's through the API's host
    assert localstack.api_url("abc", "api") == "http://127.0.0.1:4566/_aws/execute-api/abc/api/"
    assert aws.api_url("abc", "api") == "https://abc.execute-api.eu-west-1.amazonaws.com/api/"
    assert localstack.is_localstack
    assert not aws.is_localstack
