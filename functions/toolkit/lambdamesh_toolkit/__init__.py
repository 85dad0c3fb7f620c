"""The shared runtime library of every lambdamesh service.

One package, vendored into each Chalice app, holding what the services must
agree on: contracts (pydantic models exported as JSON Schema), typed errors,
correlation ids and JSON logging, configuration from the environment, and the
synchronous clients (HTTP through API Gateway, typed RPC by Lambda invocation)
with timeouts, retries and a shared circuit breaker.

Modules import their heavy dependencies (boto3, urllib3, tenacity, the circuit
breaker) only when first used, because this code runs in every cold start.
"""

__version__ = "0.1.0"
