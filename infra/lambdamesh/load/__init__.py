"""``lambdamesh load``: orders placed by many clients at once, right after every function was
made cold, then again warm; throughput, latency, errors and the time until every order is
decided (:mod:`lambdamesh.load.command`)."""
