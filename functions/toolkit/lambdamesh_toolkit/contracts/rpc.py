"""The RPC envelope: what travels in a Lambda ``Invoke`` payload, both ways."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from pydantic import Field, StringConstraints, model_validator

from lambdamesh_toolkit.contracts.base import Contract, StrictInt

MethodName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
]


class RpcRequest(Contract):
    """A call: which method, which version of its request contract, the payload.

    Attributes
    ----------
    method : str
        Method name, e.g. ``GetProduct``.
    version : int
        ``contract_version`` of the payload's model.
    correlation_id : str
        The caller's correlation id; the server adopts it.
    payload : dict
        The request model, as JSON.
    deadline_ms : int | None
        The caller's deadline (epoch milliseconds): the server keeps the earlier of it and
        its own budget for everything it calls.
    traceparent : str | None
        The W3C ``traceparent`` of the caller's ``rpc.call`` hop: the served call's parent
        (:mod:`lambdamesh_toolkit.trace_context`); one that is not valid starts a new trace.
    """

    contract_name: ClassVar[str] = "rpc.RpcRequest"

    method: MethodName
    version: Annotated[StrictInt, Field(ge=1)]
    correlation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    payload: dict[str, Any]
    deadline_ms: Annotated[StrictInt, Field(ge=0)] | None = None
    traceparent: Annotated[str, StringConstraints(max_length=128)] | None = None


class RpcError(Contract):
    """The error of a failed call; ``code`` as in ``lambdamesh_toolkit.errors``."""

    contract_name: ClassVar[str] = "rpc.RpcError"

    code: str
    message: str
    field: str | None = None
    retry_after_s: float | None = None


class RpcResponse(Contract):
    """The answer: ``result`` when ``ok``, else ``error``."""

    contract_name: ClassVar[str] = "rpc.RpcResponse"

    ok: bool
    result: dict[str, Any] | None = None
    error: RpcError | None = None

    @model_validator(mode="after")
    def _result_xor_error(self) -> Self:
        if self.ok and (self.result is None or self.error is not None):
            raise ValueError("an ok response carries a result and no error")
        if not self.ok and (self.error is None or self.result is not None):
            raise ValueError("a failed response carries an error and no result")
        return self
