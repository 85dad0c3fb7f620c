"""The Python runtime of one execution environment of the ``process`` executor.

Runs as ``<pythonX.Y> -I -S function_bootstrap.py`` in its own process, with the standard
library only (it must work on every Python the executor maps a runtime to, with nothing but the
function's package and boto3 importable). It talks to the executor over two pipes, one JSON
document per line:

1. import the handler, then write ``{"ready": true, "init_error": <error document or null>}``
   to the result pipe (file descriptor ``$LAMBDAMESH_RESULT_FD``); an import error is reported
   on every invocation, as AWS does for on-demand environments;
2. read invocations from standard input: ``invoke-id``, ``invoked-function-arn``, ``payload``
   (the event as JSON text) and ``trace-id``, the fields of LocalStack's runtime-init protocol;
3. per invocation, run the handler and write ``{"outcome": "response" | "error", "body":
   <the result or error document as JSON text>, "logs": <what the invocation printed, framed by
   Lambda's START/END/REPORT lines>}``.

LocalStack's own runtime-init is a Go binary built for its Lambda container images, and AWS's
``awslambdaric`` needs a Runtime API server and native extensions; neither runs a bare host
process. Pipes instead of runtime-init's HTTP calls: the function process listens on no socket,
and an invocation costs the emulator no HTTP request of its own (runtime-init makes three).

Output as AWS's Python runtime gives it: ``sys.stdout`` and ``sys.stderr`` write through to the
log at once (what a function printed survives its timeout or crash), and the root logger has
Lambda's handler: ``[LEVEL]\t<UTC time>\t<request id>\t<message>`` lines, or one JSON object per
line with ``AWS_LAMBDA_LOG_FORMAT=JSON``, at ``AWS_LAMBDA_LOG_LEVEL`` when set.

The process exits when its standard input reaches end-of-file or the executor's end of the
result pipe closes, whichever it sees first: when LocalStack exits or is killed, no function
process is left behind, even one busy in a handler.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import math
import os
import select
import sys
import threading
import time
import traceback
from typing import Any

ENV = os.environ
RESULT_FD_ENV = "LAMBDAMESH_RESULT_FD"
MAX_RESPONSE_BYTES = int(ENV.get("LOCALSTACK_MAX_PAYLOAD_SIZE") or 6 * 1024 * 1024 + 100)
"""The largest result a synchronous invocation returns, as AWS counts it (6 291 556 bytes)."""


class Channel:
    """The executor's two pipes: invocations in, results out, a JSON document per line.

    Parameters
    ----------
    invocations_fd
        Read end of the invocation pipe (the process's standard input).
    results_fd
        Write end of the result pipe.

    Neither descriptor stays where the handler could reach it by accident: standard input is
    moved to a private descriptor and replaced by ``/dev/null``, and neither is inherited by
    processes the handler starts.
    """

    def __init__(self, invocations_fd: int, results_fd: int) -> None:
        private = os.dup(invocations_fd)  # not inheritable, as every new descriptor
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, invocations_fd)
        os.close(null)
        os.set_inheritable(results_fd, False)
        self._invocations = os.fdopen(private, "rb")
        self._results_fd = results_fd

    def receive(self) -> dict[str, Any] | None:
        """The next invocation, or ``None`` when the executor closed the pipe."""
        line = self._invocations.readline()
        if not line:
            return None
        document: dict[str, Any] = json.loads(line)
        return document

    def send(self, document: dict[str, Any]) -> None:
        """Write one document (a line), whole."""
        data = memoryview(json.dumps(document).encode() + b"\n")
        while data:
            data = data[os.write(self._results_fd, data) :]

    def wait_for_executor_gone(self) -> None:
        """Block until the executor's end of the result pipe closes (poll reports an error)."""
        watcher = select.poll()
        watcher.register(self._results_fd, select.POLLERR | select.POLLHUP)
        while not watcher.poll():
            pass


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
    except ImportError as exc:
        document = _error_document(exc, "Runtime.ImportModuleError")
        document["errorMessage"] = f"Unable to import module '{module_name}': {exc}"
        return None, document
    except Exception as exc:
        # As AWS: anything else the module raised while importing is reported as itself.
        return None, _error_document(exc)
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


class Runtime:
    """One execution environment: initialise once, then invoke the handler per request."""

    def __init__(self, log: LogFile, channel: Channel) -> None:
        self.log = log
        self.channel = channel
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

    def serve(self) -> None:
        """Answer invocations until the executor closes the invocation pipe."""
        while (invocation := self.channel.receive()) is not None:
            self.channel.send(self.invoke(invocation))

    def invoke(self, invocation: dict[str, Any]) -> dict[str, Any]:
        """Run the handler on one invocation; the result document for the executor."""
        global _request_id
        request_id = _request_id = str(invocation["invoke-id"])
        # The first invocation's log starts with what initialisation printed, as on AWS.
        offset = self.init_offset if self.init_duration_ms is not None else self.log.offset()
        init_duration, self.init_duration_ms = self.init_duration_ms, None
        self.log.write(f"START RequestId: {request_id} Version: {self.version}\n")
        os.environ["_X_AMZN_TRACE_ID"] = str(invocation.get("trace-id") or "")
        started = time.perf_counter()
        outcome, body = self._run(invocation, request_id, started)
        duration_ms = (time.perf_counter() - started) * 1000
        self.log.write(self._end_lines(request_id, duration_ms, init_duration))
        return {"outcome": outcome, "body": body, "logs": self.log.read_from(offset)}

    def _run(self, invocation: dict[str, Any], request_id: str, started: float) -> tuple[str, str]:
        """``("response", result JSON)`` or ``("error", error document JSON)``."""
        if self.init_error is not None:
            return "error", json.dumps({**self.init_error, "requestId": request_id})
        deadline = time.monotonic() + self.timeout_s - (time.perf_counter() - started)
        context = LambdaContext(request_id, str(invocation.get("invoked-function-arn")), deadline)
        try:
            raw = invocation.get("payload") or "{}"
            event = json.loads(raw) if isinstance(raw, str) else raw
            result = self.handler(event, context)
        except Exception as exc:
            document = {**_error_document(exc), "requestId": request_id}
            self.log.write(_format_error_log(document))
            return "error", json.dumps(document)
        try:
            body = json.dumps(result)
        except (TypeError, ValueError) as exc:
            document = {
                "errorMessage": f"Unable to marshal response: {exc}",
                "errorType": "Runtime.MarshalError",
                "requestId": request_id,
                "stackTrace": [],
            }
            self.log.write(_format_error_log(document))
            return "error", json.dumps(document)
        size = len(body.encode())
        if size > MAX_RESPONSE_BYTES:
            document = {
                "errorMessage": f"Response payload size ({size} bytes) exceeded maximum "
                f"allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
                "requestId": request_id,
                "stackTrace": [],
            }
            self.log.write(_format_error_log(document))
            return "error", json.dumps(document)
        return "response", body

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


_request_id = ""
"""The request being handled, for the log lines of Lambda's logging handler."""


def _unbuffered_standard_streams() -> None:
    """``sys.stdout`` and ``sys.stderr`` writing straight to their descriptors, as on AWS.

    A block-buffered stream (Python's default when not a terminal) would lose what a function
    printed last when the process is killed at its timeout or exits.
    """
    for fd, name in ((1, "stdout"), (2, "stderr")):
        raw = io.FileIO(fd, "w", closefd=False)
        setattr(
            sys,
            name,
            io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", write_through=True),
        )


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id
        return True


class _JsonFormatter(logging.Formatter):
    """Lambda's JSON log format: timestamp, level, message, logger, requestId."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", ""),
        }
        if record.exc_info:
            document["errorType"] = getattr(record.exc_info[0], "__name__", "")
            document["stackTrace"] = traceback.format_exception(*record.exc_info)
        return json.dumps(document, default=str)


def _lambda_logging() -> None:
    """The root logger's handler of AWS's Python runtime, writing to standard output."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_RequestIdFilter())
    if ENV.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON":
        handler.setFormatter(_JsonFormatter())
    else:
        text = logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
        text.converter = time.gmtime
        handler.setFormatter(text)
    root = logging.getLogger()
    root.addHandler(handler)
    level = ENV.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"):
        root.setLevel({"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level))


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
    _unbuffered_standard_streams()
    _lambda_logging()
    channel = Channel(0, int(ENV[RESULT_FD_ENV]))

    def exit_when_executor_gone() -> None:
        channel.wait_for_executor_gone()
        os._exit(0)

    threading.Thread(target=exit_when_executor_gone, name="executor-watch", daemon=True).start()
    runtime = Runtime(log, channel)
    runtime.initialise()
    channel.send({"ready": True, "init_error": runtime.init_error})
    runtime.serve()


if __name__ == "__main__":
    main()
