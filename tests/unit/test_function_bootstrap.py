"""The ``process`` executor's function-side runtime, speaking LocalStack's runtime-init protocol.

The executor endpoint is played by a small HTTP server recording what the runtime posts; the
runtime itself is the real bootstrap in a real subprocess.
"""

from __future__ import annotations

import http.server
import json
import queue
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lambdamesh_localstack import function_bootstrap
from lambdamesh_localstack.interpreters import (
    UnsupportedRuntimeError,
    find_interpreter,
    parse_python_runtime,
)

RUNTIME_ID = "0123456789abcdef"


@dataclass
class RecordingEndpoint:
    """What the runtime posted, by path suffix, in arrival order."""

    posts: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)

    def next(self, timeout: float = 20) -> tuple[str, Any]:
        return self.posts.get(timeout=timeout)


def _handler_class(endpoint: RecordingEndpoint) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            endpoint.posts.put((self.path, json.loads(body)))
            self.send_response(202)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class RunningRuntime:
    process: subprocess.Popen[bytes]
    endpoint: RecordingEndpoint
    port: int

    def invoke(self, request_id: str, event: Any) -> None:
        body = json.dumps(
            {
                "invoke-id": request_id,
                "invoked-function-arn": "arn:aws:lambda:us-east-1:000000000000:function:f",
                "payload": json.dumps(event),
                "trace-id": "Root=1-0-0",
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/invoke", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 202


def start_runtime(tmp_path: Path, source: str) -> Iterator[RunningRuntime]:
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(textwrap.dedent(source))
    endpoint = RecordingEndpoint()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(endpoint))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "LOCALSTACK_RUNTIME_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}/_ls/{RUNTIME_ID}",
        "LOCALSTACK_RUNTIME_ID": RUNTIME_ID,
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDAMESH_LOG_FILE": str(tmp_path / "function.log"),
        "_HANDLER": "app.handler",
        "AWS_LAMBDA_FUNCTION_NAME": "f",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "3",
    }
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", function_bootstrap.__file__], env=env, stdin=subprocess.PIPE
    )
    try:
        path, document = endpoint.next()
        assert path == f"/_ls/{RUNTIME_ID}/status/{RUNTIME_ID}/ready"
        yield RunningRuntime(process, endpoint, int(document["port"]))
    finally:
        process.kill()
        process.wait()
        server.shutdown()


@pytest.fixture
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningRuntime]:
    yield from start_runtime(tmp_path, request.param)


ECHO = """
    print("init")

    def handler(event, context):
        print("got", event["n"])
        return {"n": event["n"], "request_id": context.aws_request_id}
"""


@pytest.mark.parametrize("runtime", [ECHO], indirect=True)
def test_result_is_posted_after_logs_with_start_end_report(runtime: RunningRuntime) -> None:
    # GIVEN a ready runtime WHEN an invocation arrives
    runtime.invoke("req-1", {"n": 7})
    # THEN its logs come first, framed by START/END/REPORT, then its JSON result
    logs_path, logs = runtime.endpoint.next()
    result_path, result = runtime.endpoint.next()
    assert logs_path.endswith("/invocations/req-1/logs")
    lines = logs["logs"].splitlines()
    assert lines[0] == "init"
    assert lines[1] == "START RequestId: req-1 Version: $LATEST"
    assert "got 7" in lines
    assert lines[-2] == "END RequestId: req-1"
    assert lines[-1].startswith("REPORT RequestId: req-1\tDuration: ")
    assert "Init Duration:" in lines[-1]
    assert result_path.endswith("/invocations/req-1/response")
    assert result == {"n": 7, "request_id": "req-1"}


@pytest.mark.parametrize("runtime", [ECHO], indirect=True)
def test_second_invocation_logs_only_its_own_output(runtime: RunningRuntime) -> None:
    # GIVEN a runtime that served one invocation
    runtime.invoke("req-1", {"n": 1})
    runtime.endpoint.next(), runtime.endpoint.next()
    # WHEN a second one arrives
    runtime.invoke("req-2", {"n": 2})
    _, logs = runtime.endpoint.next()
    # THEN its logs hold neither initialisation output nor the first invocation's lines
    text = logs["logs"]
    assert "init" not in text.splitlines()
    assert "req-1" not in text
    assert "got 2" in text
    assert "Init Duration" not in text


@pytest.mark.parametrize(
    "runtime", ["def handler(event, context):\n    raise KeyError('sku')\n"], indirect=True
)
def test_exception_is_posted_as_error_document(runtime: RunningRuntime) -> None:
    # GIVEN a handler that raises WHEN it is invoked
    runtime.invoke("req-1", {})
    runtime.endpoint.next()
    path, error = runtime.endpoint.next()
    # THEN the error path receives Lambda's error document with only the user's frames
    assert path.endswith("/invocations/req-1/error")
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'sku'"
    assert error["requestId"] == "req-1"
    assert all("function_bootstrap" not in frame for frame in error["stackTrace"])


@pytest.mark.parametrize(
    "runtime", ["def handler(event, context):\n    return {1, 2}\n"], indirect=True
)
def test_unserialisable_result_is_a_marshal_error(runtime: RunningRuntime) -> None:
    # GIVEN a handler returning a set WHEN it is invoked
    runtime.invoke("req-1", {})
    runtime.endpoint.next()
    path, error = runtime.endpoint.next()
    # THEN the invocation fails as Lambda's runtime fails it
    assert path.endswith("/error")
    assert error["errorType"] == "Runtime.MarshalError"


@pytest.mark.parametrize(
    "runtime", ["import not_shipped_anywhere\ndef handler(e, c):\n    pass\n"], indirect=True
)
def test_import_error_is_reported_on_every_invocation(runtime: RunningRuntime) -> None:
    # GIVEN a package whose module fails to import (the runtime still reports ready)
    for request_id in ("req-1", "req-2"):
        # WHEN it is invoked
        runtime.invoke(request_id, {})
        runtime.endpoint.next()
        _, error = runtime.endpoint.next()
        # THEN each invocation fails with Runtime.ImportModuleError naming the module
        assert error["errorType"] == "Runtime.ImportModuleError"
        assert error["errorMessage"] == (
            "Unable to import module 'app': No module named 'not_shipped_anywhere'"
        )


@pytest.mark.parametrize("runtime", [ECHO], indirect=True)
def test_runtime_exits_when_its_stdin_closes(runtime: RunningRuntime) -> None:
    # GIVEN a running runtime WHEN the executor's end of its stdin closes (LocalStack gone)
    assert runtime.process.stdin is not None
    runtime.process.stdin.close()
    # THEN the process exits by itself
    assert runtime.process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [("python3.12", (3, 12)), ("python3.13", (3, 13)), ("nodejs20.x", None), ("python", None)],
)
def test_python_runtimes_are_parsed(runtime: str, expected: tuple[int, int] | None) -> None:
    assert parse_python_runtime(runtime) == expected


def test_non_python_runtime_is_refused_with_the_docker_alternative() -> None:
    with pytest.raises(UnsupportedRuntimeError, match=r"localstack-compose\.yml"):
        find_interpreter("provided.al2023")


def test_interpreter_override_that_does_not_run_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an override pointing at no interpreter
    monkeypatch.setenv("LAMBDAMESH_PYTHON_3_11", "/nonexistent/python3.11")
    find_interpreter.cache_clear()
    try:
        # WHEN the runtime's interpreter is looked up THEN the error says how to fix it
        with pytest.raises(UnsupportedRuntimeError, match="LAMBDAMESH_PYTHON_3_11"):
            find_interpreter("python3.11")
    finally:
        find_interpreter.cache_clear()
