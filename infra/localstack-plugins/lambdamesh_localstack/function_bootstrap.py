"""The Python runtime of one execution environment of the ``process`` executor.

Runs as ``<pythonX.Y> -I -S function_bootstrap.py`` in its own process, with the standard
library only (it must work on every Python the executor maps a runtime to, with nothing but the
function's package and boto3 importable). It speaks LocalStack's runtime-init protocol:

1. listen on ``127.0.0.1`` (an ephemeral port, loopback only) for ``POST /invoke``;
2. import the handler, then post
   ``{LOCALSTACK_RUNTIME_ENDPOINT}/status/{LOCALSTACK_RUNTIME_ID}/ready`` with the chosen port;
3. per invocation: run the handler, post its logs (with Lambda's START/END/REPORT lines) to
   ``/invocations/{id}/logs`` and its result to ``/response`` or ``/error``.

LocalStack's own runtime-init is a Go binary built for its Lambda container images, and AWS's
``awslambdaric`` needs a Runtime API server and native extensions; neither runs a bare host
process, hence this small implementation of the same protocol.

The process exits when its standard input reaches end-of-file: the executor holds the other end,
so when LocalStack exits or is killed, no function process is left behind.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import importlib
import json
import math
import os
import queue
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from typing import Any

ENV = os.environ


class ExecutorConnection:
    """A kept-alive HTTP connection to the executor endpoint, with Nagle's algorithm off.

    ``http.client`` writes headers and body in two sends; with Nagle on, loopback delayed ACKs
    add ~40 ms to every post, which would dominate a warm invoke.
    """

    def __init__(self, endpoint: str) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.prefix = parsed.path
        self.connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        connection.connect()
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def post(self, path: str, body: bytes) -> None:
        """POST ``body`` to ``path`` (relative to the endpoint), reconnecting once if needed."""
        headers = {"Content-Type": "application/json"}
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = self._connect()
            try:
                self.connection.request("POST", self.prefix + path, body=body, headers=headers)
                self.connection.getresponse().read()
                return
            except (OSError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise


EXECUTOR = ExecutorConnection(ENV.get("LOCALSTACK_RUNTIME_ENDPOINT", "http://127.0.0.1"))


def _post(path: str, body: bytes) -> None:
    EXECUTOR.post(path, body)


def _post_json(path: str, document: dict[str, Any]) -> None:
    _post(path, json.dumps(document).encode())


class LambdaContext:
    """The ``context`` argument of a handler, with the attributes AWS's Python runtime sets."""

    def __init__(self, request_id: str, invoked_function_arn: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = ENV.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = ENV.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = ENV.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = ENV.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = ENV.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class InvokeHandler(http.server.BaseHTTPRequestHandler):
    """Accepts ``POST /invoke`` from LocalStack and queues it for the main thread."""

    invocations: queue.Queue[dict[str, Any]] = queue.Queue()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/invoke":
            self.send_response(404)
            self.end_headers()
            return
        self.invocations.put(json.loads(body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the function's log free of access lines."""


def _error_document(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    # Only the function's own frames, as AWS's runtime reports them.
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename != __file__ and not frame.filename.startswith("<frozen importlib")
    ]
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": [line.rstrip("\n") for line in traceback.format_list(frames)],
    }


def _load_handler() -> tuple[Any, dict[str, Any] | None]:
    """Import ``_HANDLER`` (``module.function``, ``pkg/module.function`` also accepted).

    Returns the handler, or ``None`` and the error document AWS's runtime reports for it.
    """
    spec = ENV.get("_HANDLER", "")
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        return None, {
            "errorMessage": f"Bad handler '{spec}': not enough values to unpack",
            "errorType": "Runtime.MalformedHandlerName",
            "requestId": "",
            "stackTrace": [],
        }
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        document = _error_document(exc, "Runtime.UserCodeSyntaxError")
        document["errorMessage"] = f"Syntax error in module '{module_name}': {exc}"
        return None, document
    except Exception as exc:
        document = _error_document(exc, "Runtime.ImportModuleError")
        document["errorMessage"] = f"Unable to import module '{module_name}': {exc}"
        return None, document
    handler = getattr(module, function_name, None)
    if handler is None:
        return None, {
            "errorMessage": f"Handler '{function_name}' missing on module '{module_name}'",
            "errorType": "Runtime.HandlerNotFound",
            "requestId": "",
            "stackTrace": [],
        }
    return handler, None


class LogFile:
    """The process's stdout and stderr, both redirected at fd level into one file.

    Reading the file from an offset after flushing gives exactly what one invocation wrote, in
    order, including output of C extensions and subprocesses.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def offset(self) -> int:
        self.flush()
        return os.path.getsize(self.path)

    def write(self, text: str) -> None:
        self.flush()
        os.write(1, text.encode())

    def read_from(self, offset: int) -> str:
        self.flush()
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    @staticmethod
    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()


def _exit_when_parent_goes() -> None:
    """Exit as soon as standard input (held open by the executor) reaches end-of-file."""
    try:
        while os.read(0, 1024):
            pass
    finally:
        os._exit(0)


class Runtime:
    """One execution environment: initialise once, then invoke the handler per request."""

    def __init__(self, log: LogFile) -> None:
        self.log = log
        self.handler: Any = None
        self.init_error: dict[str, Any] | None = None
        self.init_duration_ms: float | None = None
        self.init_offset = 0
        self.timeout_s = float(ENV.get("AWS_LAMBDA_FUNCTION_TIMEOUT") or 3)
        self.memory_mb = ENV.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.version = ENV.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")

    def initialise(self) -> None:
        self.init_offset = self.log.offset()
        started = time.perf_counter()
        self.handler, self.init_error = _load_handler()
        self.init_duration_ms = (time.perf_counter() - started) * 1000
        if self.init_error:
            self.log.write(_format_error_log(self.init_error))

    def serve_forever(self) -> None:
        while True:
            self.invoke(InvokeHandler.invocations.get())

    def invoke(self, invocation: dict[str, Any]) -> None:
        request_id = str(invocation["invoke-id"])
        # The first invocation's log starts with what initialisation printed, as on AWS.
        offset = self.init_offset if self.init_duration_ms is not None else self.log.offset()
        init_duration, self.init_duration_ms = self.init_duration_ms, None
        self.log.write(f"START RequestId: {request_id} Version: {self.version}\n")
        os.environ["_X_AMZN_TRACE_ID"] = str(invocation.get("trace-id") or "")
        started = time.perf_counter()
        outcome, body = self._run(invocation, request_id, started)
        duration_ms = (time.perf_counter() - started) * 1000
        self.log.write(self._end_lines(request_id, duration_ms, init_duration))
        _post_json(f"/invocations/{request_id}/logs", {"logs": self.log.read_from(offset)})
        _post(f"/invocations/{request_id}/{outcome}", body)

    def _run(
        self, invocation: dict[str, Any], request_id: str, started: float
    ) -> tuple[str, bytes]:
        if self.init_error is not None:
            return "error", json.dumps({**self.init_error, "requestId": request_id}).encode()
        deadline = time.monotonic() + self.timeout_s - (time.perf_counter() - started)
        context = LambdaContext(request_id, str(invocation.get("invoked-function-arn")), deadline)
        try:
            raw = invocation.get("payload") or "{}"
            event = json.loads(raw) if isinstance(raw, str) else raw
            result = self.handler(event, context)
        except Exception as exc:
            document = {**_error_document(exc), "requestId": request_id}
            self.log.write(_format_error_log(document))
            return "error", json.dumps(document).encode()
        try:
            return "response", json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            document = {
                "errorMessage": f"Unable to marshal response: {exc}",
                "errorType": "Runtime.MarshalError",
                "requestId": request_id,
                "stackTrace": [],
            }
            self.log.write(_format_error_log(document))
            return "error", json.dumps(document).encode()

    def _end_lines(self, request_id: str, duration_ms: float, init_ms: float | None) -> str:
        max_rss_mb = _peak_rss_mb()
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {self.memory_mb} MB\t"
            f"Max Memory Used: {max_rss_mb} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        return f"END RequestId: {request_id}\n{report}\n"


def _peak_rss_mb() -> int:
    """Peak resident memory of this process (``VmHWM``).

    Not ``getrusage``: Linux keeps ``ru_maxrss`` across ``execve``, so it would report the
    peak of the LocalStack process this one was forked from.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _format_error_log(document: dict[str, Any]) -> str:
    lines = [f"[ERROR] {document['errorType']}: {document['errorMessage']}"]
    if document.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        lines.extend(document["stackTrace"])
    return "\n".join(lines) + "\n"


def main() -> None:
    task_root = ENV["LAMBDA_TASK_ROOT"]
    runtime_dir = ENV.get("LAMBDA_RUNTIME_DIR", "")
    # As on AWS: the package first, then the runtime's own libraries (boto3), then the stdlib.
    sys.path[:0] = [p for p in (task_root, runtime_dir) if p]
    os.chdir(task_root)
    log = LogFile(ENV["LAMBDAMESH_LOG_FILE"])
    threading.Thread(target=_exit_when_parent_goes, name="parent-watch", daemon=True).start()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), InvokeHandler)
    threading.Thread(target=server.serve_forever, name="invoke-listener", daemon=True).start()

    runtime = Runtime(log)
    runtime.initialise()
    runtime_id = ENV["LOCALSTACK_RUNTIME_ID"]
    _post_json(f"/status/{runtime_id}/ready", {"port": server.server_address[1]})
    runtime.serve_forever()


if __name__ == "__main__":
    main()
