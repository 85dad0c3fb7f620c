"""Lambda's invocation payload limits and API Gateway's body limit, enforced as AWS enforces them.

AWS refuses an ``Invoke`` whose payload is over 6 MB (6 291 456 bytes) for a synchronous call
and over 256 KB (262 144 bytes) for an asynchronous one (``InvocationType=Event``), with
``413 RequestTooLargeException``; the function never runs. LocalStack 4.14.0 leaves the request
limit to its Go runtime-init, which the ``process`` executor does not use, so any size passed.
(The response limit, 6 MB, is the function bootstrap's: ``Function.ResponseSizeTooLarge``.)

:func:`apply_payload_limits`, an ``on_infra_start`` hook, has ``LambdaProvider.invoke`` wrapped
when its module is imported, to refuse an oversized payload before anything else happens.

A REST API refuses a request body over 10 MB (10 485 760 bytes) with its ``REQUEST_TOO_LARGE``
gateway response (413; the API's own template when it has one, as lambdamesh's APIs do:
``payload_too_large`` in the error shape). LocalStack 4.14.0 passes any size on to the
integration. The same hook wraps API Gateway's request parser to refuse it once the request is
parsed (so the response's ``$context`` variables, the request id among them, are known).

>>> body_too_large(10 * 1024 * 1024), body_too_large(10 * 1024 * 1024 + 1)
(False, True)

>>> payload_problem(b"x" * 300_000, "Event")
'Request must be smaller than 262144 bytes for the InvokeFunction operation'
>>> payload_problem(b"x" * 300_000, "RequestResponse") is None
True
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

SYNC_LIMIT_BYTES: Final = 6 * 1024 * 1024
ASYNC_LIMIT_BYTES: Final = 256 * 1024
PROVIDER_MODULE: Final = "localstack.services.lambda_.provider"
API_GATEWAY_BODY_LIMIT_BYTES: Final = 10 * 1024 * 1024
PARSER_MODULE: Final = "localstack.services.apigateway.next_gen.execute_api.handlers.parse"


def payload_problem(payload: bytes, invocation_type: str | None) -> str | None:
    """AWS's refusal of ``payload`` for this invocation type, or ``None`` when it fits."""
    limit = ASYNC_LIMIT_BYTES if invocation_type == "Event" else SYNC_LIMIT_BYTES
    if len(payload) <= limit:
        return None
    return f"Request must be smaller than {limit} bytes for the InvokeFunction operation"


def body_too_large(size: int) -> bool:
    """Whether a REST API refuses a request body of ``size`` bytes."""
    return size > API_GATEWAY_BODY_LIMIT_BYTES


def body_limited(
    parse: Callable[..., Any], refuse: Callable[[str], Exception]
) -> Callable[..., Any]:
    """API Gateway's request parser (a handler), refusing a body over the limit once parsed."""

    @functools.wraps(parse)
    def wrapped(self: Any, chain: Any, context: Any, response: Any) -> Any:
        answer = parse(self, chain, context, response)
        body = (getattr(context, "invocation_request", None) or {}).get("body") or b""
        if body_too_large(len(body)):
            raise refuse("Request Too Long")
        return answer

    return wrapped


def limited(invoke: Callable[..., Any], refuse: Callable[[str], Exception]) -> Callable[..., Any]:
    """``invoke`` (the provider's) refusing an oversized payload with ``refuse(message)``."""

    @functools.wraps(invoke)
    def wrapped(self: Any, context: Any, function_name: Any, *args: Any, **kwargs: Any) -> Any:
        payload = kwargs.get("payload")
        if payload is not None:
            data = payload.read()
            problem = payload_problem(data, kwargs.get("invocation_type"))
            if problem is not None:
                raise refuse(problem)
            kwargs["payload"] = io.BytesIO(data)
        return invoke(self, context, function_name, *args, **kwargs)

    return wrapped


def patch_provider(module: ModuleType) -> None:
    """Make the module's ``LambdaProvider.invoke`` refuse oversized payloads (idempotent)."""
    from localstack.aws.api.lambda_ import (  # type: ignore[import-not-found,unused-ignore]
        RequestTooLargeException,
    )

    wrap_once(
        getattr(module, "LambdaProvider", None),
        "invoke",
        lambda invoke: limited(invoke, RequestTooLargeException),
        "payload limits",
    )


def patch_request_parser(module: ModuleType) -> None:
    """Make API Gateway's ``InvocationRequestParser`` refuse a body over 10 MB (idempotent)."""
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (  # type: ignore[import-not-found,unused-ignore]
        RequestTooLargeError,
    )

    wrap_once(
        getattr(module, "InvocationRequestParser", None),
        "__call__",
        lambda parse: body_limited(parse, RequestTooLargeError),
        "API Gateway's body limit",
        own=True,
    )


def apply_payload_limits() -> None:
    """Patch ``LambdaProvider.invoke`` and API Gateway's request parser when their modules are
    imported (idempotent).

    Not imported here: the provider's module costs about a second, which LocalStack otherwise
    spends only when the first Lambda request comes.
    """
    patch_when_imported(
        {PROVIDER_MODULE: patch_provider, PARSER_MODULE: patch_request_parser},
        "payload limits",
    )


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_payload_limits")(apply_payload_limits)
