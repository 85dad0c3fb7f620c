"""API Gateway's Lambda proxy event with a repeated header as AWS builds it.

A REST API's proxy event carries every value of a request header in ``multiValueHeaders`` and
one value in ``headers``: the last one, as for query strings (AWS's recorded answer keeps the
last value of a repeated query key in ``queryStringParameters``; LocalStack 4.14.0 does so for
query strings but puts a repeated header's *first* value in ``headers``). A function reading
``event["headers"]`` — Chalice's ``current_request.headers`` among them — would see another
value than on AWS.

:func:`apply_proxy_event_headers`, an ``on_infra_start`` hook, has
``RestApiAwsProxyIntegration.create_lambda_input_event`` wrapped when API Gateway's integration
module is imported, so ``headers`` takes each header's last value.

>>> last_values({"Accept": ["*/*"], "X-Repeated": ["first", "second"]})
{'Accept': '*/*', 'X-Repeated': 'second'}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

INTEGRATION_MODULE: Final = "localstack.services.apigateway.next_gen.execute_api.integrations.aws"


def last_values(multi_value_headers: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Each header's last value, names as they are."""
    return {name: values[-1] for name, values in multi_value_headers.items() if values}


def with_last_header_values(create: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``create_lambda_input_event`` so the event's ``headers`` hold last values."""

    @functools.wraps(create)
    def wrapped(self: Any, context: Any) -> Any:
        event = create(self, context)
        multi = event.get("multiValueHeaders")
        if multi:
            event["headers"] = last_values(multi)
        return event

    return wrapped


def patch_integration(module: ModuleType) -> None:
    """Patch the module's ``RestApiAwsProxyIntegration`` (idempotent)."""
    wrap_once(
        getattr(module, "RestApiAwsProxyIntegration", None),
        "create_lambda_input_event",
        with_last_header_values,
        "proxy event headers",
    )


def apply_proxy_event_headers() -> None:
    """Patch API Gateway's proxy integration when its module is imported (idempotent)."""
    patch_when_imported({INTEGRATION_MODULE: patch_integration}, "proxy event headers")


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_proxy_event_headers")(
        apply_proxy_event_headers
    )
