"""The ``process`` executor's function-side runtime: invocations in on stdin, results out on a pipe.

The executor is played by the test: it writes invocation documents to the runtime's standard
input and reads result documents from the result pipe; the runtime itself is the real bootstrap
in a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from lambdamesh_localstack import function_bootstrap
from lambdamesh_localstack.interpreters import (
    UnsupportedRuntimeError,
    find_interpreter,
    parse_python_runtime,
)


@dataclass
class RunningRuntime:
    process: subprocess.Popen[bytes]
    results: IO[bytes]
    ready: dict[str, Any] = field(default_factory=dict)
    """The document the runtime sent when it was ready."""

    def invoke(self, request_id: str, event: Any) -> dict[str, Any]:
        """Send one invocation; the result document the runtime answers with."""
        document = {
            "invoke-id": request_id,
            "invoked-function-arn": "arn:aws:lambda:us-east-1:000000000000:function:f",
            "payload": json.dumps(event),
            "trace-id": "Root=1-0-0",
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(document).encode() + b"\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> dict[str, Any]:
        line = self.results.readline()
        assert line, "the runtime closed its result pipe"
        answer: dict[str, Any] = json.loads(line)
        return answer


def start_runtime(tmp_path: Path, source: str) -> Iterator[RunningRuntime]:
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(textwrap.dedent(source))
    read_end, write_end = os.pipe()
    env = {
        function_bootstrap.RESULT_FD_ENV: str(write_end),
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDAMESH_LOG_FILE": str(tmp_path / "function.log"),
        "_HANDLER": "app.handler",
        "AWS_LAMBDA_FUNCTION_NAME": "f",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "3",
    }
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", function_bootstrap.__file__],
        env=env,
        stdin=subprocess.PIPE,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    results = os.fdopen(read_end, "rb")
    try:
        runtime = RunningRuntime(process, results)
        runtime.ready = runtime.read()
        assert runtime.ready["ready"] is True
        yield runtime
    finally:
        process.kill()
        process.wait()
        results.close()


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
def test_result_comes_back_with_its_logs_framed_by_start_end_report(
    runtime: RunningRuntime,
) -> None:
    # GIVEN a ready runtime WHEN an invocation arrives
    answer = runtime.invoke("req-1", {"n": 7})
    # THEN its JSON result comes back with its logs, framed by START/END/REPORT
    lines = answer["logs"].splitlines()
    assert lines[0] == "init"
    assert lines[1] == "START RequestId: req-1 Version: $LATEST"
    assert "got 7" in lines
    assert lines[-2] == "END RequestId: req-1"
    assert lines[-1].startswith("REPORT RequestId: req-1\tDuration: ")
    assert "Init Duration:" in lines[-1]
    assert answer["outcome"] == "response"
    assert json.loads(answer["body"]) == {"n": 7, "request_id": "req-1"}


@pytest.mark.parametrize("runtime", [ECHO], indirect=True)
def test_second_invocation_logs_only_its_own_output(runtime: RunningRuntime) -> None:
    # GIVEN a runtime that served one invocation
    runtime.invoke("req-1", {"n": 1})
    # WHEN a second one arrives
    answer = runtime.invoke("req-2", {"n": 2})
    # THEN its logs hold neither initialisation output nor the first invocation's lines
    text = answer["logs"]
    assert "init" not in text.splitlines()
    assert "req-1" not in text
    assert "got 2" in text
    assert "Init Duration" not in text


@pytest.mark.parametrize(
    "runtime", ["def handler(event, context):\n    raise KeyError('sku')\n"], indirect=True
)
def test_exception_comes_back_as_error_document(runtime: RunningRuntime) -> None:
    # GIVEN a handler that raises WHEN it is invoked
    answer = runtime.invoke("req-1", {})
    # THEN the answer is an error: Lambda's error document with only the user's frames
    assert answer["outcome"] == "error"
    error = json.loads(answer["body"])
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'sku'"
    assert error["requestId"] == "req-1"
    assert all("function_bootstrap" not in frame for frame in error["stackTrace"])


@pytest.mark.parametrize(
    "runtime", ["def handler(event, context):\n    return {1, 2}\n"], indirect=True
)
def test_unserialisable_result_is_a_marshal_error(runtime: RunningRuntime) -> None:
    # GIVEN a handler returning a set WHEN it is invoked
    answer = runtime.invoke("req-1", {})
    # THEN the invocation fails as Lambda's runtime fails it
    assert answer["outcome"] == "error"
    assert json.loads(answer["body"])["errorType"] == "Runtime.MarshalError"


@pytest.mark.parametrize(
    "runtime", ["import not_shipped_anywhere\ndef handler(e, c):\n    pass\n"], indirect=True
)
def test_import_error_is_reported_on_every_invocation(runtime: RunningRuntime) -> None:
    # GIVEN a package whose module fails to import: the runtime still reports ready, with the
    # error (a provisioned-concurrency environment fails to start on it)
    assert runtime.ready["init_error"]["errorType"] == "Runtime.ImportModuleError"
    for request_id in ("req-1", "req-2"):
        # WHEN it is invoked
        answer = runtime.invoke(request_id, {})
        error = json.loads(answer["body"])
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


SLEEPER = """
    import time

    def handler(event, context):
        time.sleep(60)
"""


@pytest.mark.parametrize("runtime", [SLEEPER], indirect=True)
def test_runtime_busy_in_a_handler_exits_when_the_executor_closes_its_result_pipe(
    runtime: RunningRuntime,
) -> None:
    # GIVEN a runtime busy in a long handler
    assert runtime.process.stdin is not None
    runtime.process.stdin.write(b'{"invoke-id": "req-1", "payload": "{}"}\n')
    runtime.process.stdin.flush()
    # WHEN the executor's end of the result pipe closes (LocalStack killed, say)
    runtime.results.close()
    # THEN the process exits at once, not after the handler
    assert runtime.process.wait(timeout=10) == 0


PIPE_PROBE = """
    import os, sys

    def handler(event, context):
        fd = int(os.environ["LAMBDAMESH_RESULT_FD"])
        return {"stdin": sys.stdin.read(), "result_fd_inherited": os.get_inheritable(fd)}
"""


@pytest.mark.parametrize("runtime", [PIPE_PROBE], indirect=True)
def test_handler_reaches_neither_the_invocations_nor_passes_the_result_pipe_on(
    runtime: RunningRuntime,
) -> None:
    # GIVEN / WHEN a handler reads its standard input and looks at the result descriptor
    answer = runtime.invoke("req-1", {})
    # THEN stdin is empty (/dev/null) and processes it starts would not inherit the pipe
    assert json.loads(answer["body"]) == {"stdin": "", "result_fd_inherited": False}


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
