"""The proxy event's ``headers`` hold each header's last value, as on AWS."""

from __future__ import annotations

import types
from typing import Any

from lambdamesh_localstack.proxy_events import last_values, patch_integration


class FakeIntegration:
    """Stands in for LocalStack's ``RestApiAwsProxyIntegration``: builds the event it is given."""

    def create_lambda_input_event(self, context: Any) -> dict[str, Any]:
        return dict(context)


def test_a_repeated_header_keeps_its_last_value_and_names_keep_their_casing() -> None:
    # GIVEN / WHEN the single values of headers, one sent twice
    single = last_values({"tEsT-HEADeR": ["aValUE"], "X-Repeated": ["first", "second"]})
    # THEN each is the last value, under the name as sent
    assert single == {"tEsT-HEADeR": "aValUE", "X-Repeated": "second"}


def test_the_patched_integration_builds_headers_from_the_multi_value_headers() -> None:
    # GIVEN a module holding the integration, patched twice (idempotent)
    module = types.ModuleType("integrations")
    module.RestApiAwsProxyIntegration = FakeIntegration  # type: ignore[attr-defined]
    patch_integration(module)
    patch_integration(module)
    # WHEN an event is built with a repeated header
    event = FakeIntegration().create_lambda_input_event(
        {
            "headers": {"X-Repeated": "first"},
            "multiValueHeaders": {"X-Repeated": ["first", "second"]},
        }
    )
    # THEN headers has the last value, and the multi-value form is untouched
    assert event["headers"] == {"X-Repeated": "second"}
    assert event["multiValueHeaders"] == {"X-Repeated": ["first", "second"]}
    assert hasattr(FakeIntegration.create_lambda_input_event, "__wrapped__")
    assert not hasattr(
        vars(FakeIntegration)["create_lambda_input_event"].__wrapped__, "__wrapped__"
    )
