"""A minimal Chalice app that exercises every part of ``lambdamesh deploy``.

One route (API Gateway → Lambda), one ``lambda_function`` (direct invoke), a table from
``resources.json`` and a parameter wired from the shared stack.
"""

import os
from typing import Any

# chalice.app, not chalice: the package root does not re-export it for strict type checking.
from chalice.app import Chalice

app = Chalice(app_name="lambdamesh-hello")

GREETING = "hello"


@app.route("/hello/{name}")
def hello(name: str) -> dict[str, Any]:
    return {"greeting": f"{GREETING}, {name}", "table": os.environ.get("HELLO_TABLE")}


@app.lambda_function(name="greet")
def greet(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "greeting": f"{GREETING}, {event.get('name', 'nobody')}",
        "breaker_table": os.environ.get("CIRCUIT_BREAKER_TABLE"),
    }
