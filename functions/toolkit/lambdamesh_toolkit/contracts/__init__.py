"""The contracts of lambdamesh: every HTTP and RPC body as a versioned pydantic model.

One module per service (``users``, ``catalog``, ``reviews``, ``orders``), the
RPC envelope in ``rpc``, and :func:`lambdamesh_toolkit.contracts.schemas.export_json_schemas`
to write them all as JSON Schema, the system's equivalent of ``.proto`` files.
"""

from lambdamesh_toolkit.contracts.base import Contract

__all__ = ["Contract"]
