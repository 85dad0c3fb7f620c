"""LocalStack Lambda runtime executor ``process``: one host subprocess per execution environment.

Selected with ``LAMBDA_RUNTIME_EXECUTOR=process``. LocalStack's own executor starts a Docker
container per execution environment; this one starts the function's Python interpreter on the
host, running `lambdamesh_localstack.function_bootstrap`, which speaks the same runtime-init
protocol back to LocalStack's executor endpoint. LocalStack keeps doing everything else:
environment assignment, concurrency, keep-alive, logs to CloudWatch, event source mappings.

What it enforces: the handler sees only its deployment package plus boto3 (``-I -S``, no
site-packages), the function timeout (the process is killed and recycled), Lambda's environment
variables (``AWS_ENDPOINT_URL`` back to the emulator), and no orphans (a process exits when
LocalStack's end of its stdin closes). What it does not: a memory limit, a read-only or private
filesystem, or any isolation from the host user — deployed code runs as that user.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.http import Response
from localstack.services.lambda_.invocation.executor_endpoint import (
    ExecutorEndpoint,
    StatusErrorException,
)
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)
from werkzeug import Request

from lambdamesh_localstack.interpreters import UnsupportedRuntimeError, find_interpreter

LOG = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).with_name("function_bootstrap.py")
LOOPBACK = "127.0.0.1"
# The directory holding boto3 and its dependencies only, as /var/runtime does on AWS.
RUNTIME_LIBRARY_ENV = "LAMBDAMESH_LAMBDA_RUNTIME_PATH"
LOG_TAIL_BYTES = 64 * 1024


class ProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """plux entry point ``localstack.lambda.runtime_executor:process``."""

    name = "process"

    def load(self, *args: Any, **kwargs: Any) -> type[ProcessRuntimeExecutor]:
        return ProcessRuntimeExecutor


class ProcessExecutorEndpoint(ExecutorEndpoint):
    """LocalStack's executor endpoint, taught three things a host process needs.

    The runtime reports its ephemeral port with ``ready``; a recycled process reports ``ready``
    again on the same endpoint; and a late answer after a timeout is ignored, not an error.
    """

    def status_ready(self, request: Request, executor_id: str) -> Response:
        document = request.get_json(silent=True) or {}
        if isinstance(document, dict) and "port" in document:
            self.container_port = int(document["port"])
        if self.startup_future is not None and not self.startup_future.done():
            self.startup_future.set_result(True)
        return Response(status=HTTPStatus.ACCEPTED)

    def invocation_response(self, request: Request, req_id: str) -> Response:
        return self._complete(request, req_id, is_error=False)

    def invocation_error(self, request: Request, req_id: str) -> Response:
        return self._complete(request, req_id, is_error=True)

    def _complete(self, request: Request, req_id: str, *, is_error: bool) -> Response:
        future = self.invocation_future
        if future is not None and not future.done():
            future.set_result(
                InvocationResult(req_id, request.data, is_error=is_error, logs=self.logs)
            )
        return Response(status=HTTPStatus.ACCEPTED)

    def renew_startup(self) -> None:
        self.startup_future = Future()


class ProcessRuntimeExecutor(RuntimeExecutor):
    """One execution environment as one subprocess of the function's Python runtime."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.executor_endpoint = ProcessExecutorEndpoint(
            self.id, container_address=LOOPBACK, container_port=None
        )
        self.workdir = Path(tempfile.gettempdir()) / "lambdamesh-environments" / self.id
        self.log_path = self.workdir / "function.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.stopping = False
        self._spawn_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        self.executor_endpoint.start()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        self.env = self._process_environment(env_vars)
        self._spawn()
        self.executor_endpoint.wait_for_startup()

    def _process_environment(self, env_vars: dict[str, str]) -> dict[str, str]:
        """Lambda's variables for this function, with host paths where AWS has fixed ones."""
        code = self.function_version.config.code
        if code is None:  # prepare_version refuses image functions, the only ones without code
            raise LambdaRuntimeException(
                f"function {self.function_version.qualified_arn} has no code"
            )
        code_dir = code.get_unzipped_code_location()
        env = {key: str(value) for key, value in env_vars.items()}
        env.update(
            LAMBDA_TASK_ROOT=str(code_dir),
            LAMBDA_RUNTIME_DIR=os.environ.get(RUNTIME_LIBRARY_ENV, ""),
            LAMBDAMESH_LOG_FILE=str(self.log_path),
            TMPDIR=str(self.workdir / "tmp"),
            PATH="/usr/local/bin:/usr/bin:/bin",
            LANG="en_US.UTF-8",
        )
        return env

    def _spawn(self) -> None:
        interpreter = find_interpreter(str(self.function_version.config.runtime))
        with self.log_path.open("ab") as early_output:
            # Output before the bootstrap redirects its own fds (interpreter errors) lands in the
            # same log; stdin is the lifeline whose end-of-file tells the process to exit.
            self.process = subprocess.Popen(
                [interpreter, "-I", "-S", str(BOOTSTRAP)],
                env=self.env,
                cwd=self.env["LAMBDA_TASK_ROOT"],
                stdin=subprocess.PIPE,
                stdout=early_output,
                stderr=early_output,
                close_fds=True,
            )
        LOG.debug("Started function process %s for %s", self.process.pid, self.id)
        threading.Thread(
            target=self._watch, args=(self.process,), name=f"lambda-process-{self.id}", daemon=True
        ).start()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        """Turn an unexpected exit into a startup failure or an invocation error."""
        code = process.wait()
        if self.stopping or process is not self.process:
            return
        endpoint = self.executor_endpoint
        message = f"Runtime exited with error: exit status {code}"
        if endpoint.startup_future is not None and not endpoint.startup_future.done():
            document = {"errorMessage": message, "errorType": "Runtime.ExitError"}
            endpoint.startup_future.set_exception(
                StatusErrorException(message, payload=json.dumps(document).encode())
            )
            return
        future = endpoint.invocation_future
        if future is not None and not future.done():
            document = {"errorMessage": message, "errorType": "Runtime.ExitError"}
            future.set_result(
                InvocationResult(
                    "", json.dumps(document).encode(), is_error=True, logs=self.get_logs()
                )
            )

    def _ensure_running(self) -> None:
        """Start a fresh process when the last one was killed by a timeout or crashed."""
        with self._spawn_lock:
            if self.process is not None and self.process.poll() is None:
                return
            self.executor_endpoint.renew_startup()
            self._spawn()
            self.executor_endpoint.wait_for_startup()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.executor_endpoint.shutdown()
        except Exception as error:
            LOG.debug("Error while stopping executor endpoint %s: %s", self.id, error)
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _terminate(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=5)

    # -- invocation --------------------------------------------------------------------------

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        self._ensure_running()
        endpoint = self.executor_endpoint
        offset = self._log_size()
        endpoint.invocation_future = Future()
        endpoint.logs = None
        timeout_s = float(self.function_version.config.timeout or 3)
        started = time.monotonic()
        url = f"http://{LOOPBACK}:{endpoint.container_port}/invoke"
        response = endpoint._perform_invoke(url, {"http": "", "https": ""}, payload)
        if not response.ok:
            raise LambdaRuntimeException(
                f"Function process refused the invocation: {response.status_code}"
            )
        remaining = timeout_s - (time.monotonic() - started)
        try:
            result: InvocationResult = endpoint.invocation_future.result(
                timeout=max(remaining, 0.0)
            )
        except FutureTimeoutError:
            return self._timed_out(payload["invoke-id"], timeout_s, offset)
        return result

    def _timed_out(self, request_id: str, timeout_s: float, log_offset: int) -> InvocationResult:
        """Kill the process (it is recycled on the next invoke) and answer as Lambda does."""
        process = self.process
        if process is not None and process.poll() is None:
            self.process = None  # the watcher must not report this exit as a crash
            process.kill()
            process.wait(timeout=5)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        message = f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"
        duration_ms = timeout_s * 1000
        logs = self._read_log(log_offset) + (
            f"{message}\nEND RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\t"
            f"Memory Size: {self.function_version.config.memory_size} MB\tStatus: timeout\n"
        )
        document = {"errorMessage": message, "errorType": "Sandbox.Timedout"}
        return InvocationResult(request_id, json.dumps(document).encode(), is_error=True, logs=logs)

    # -- logs --------------------------------------------------------------------------------

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _read_log(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def get_logs(self) -> str:
        return self._read_log(max(0, self._log_size() - LOG_TAIL_BYTES))

    # -- addresses ---------------------------------------------------------------------------

    def get_address(self) -> str:
        return LOOPBACK

    def get_endpoint_from_executor(self) -> str:
        return LOOPBACK

    def get_runtime_endpoint(self) -> str:
        port = config.GATEWAY_LISTEN[0].port
        return f"http://{LOOPBACK}:{port}{self.executor_endpoint.get_endpoint_prefix()}"

    # -- versions ----------------------------------------------------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Refuse what a host process cannot run, then unzip the code (once per version)."""
        function_config = function_version.config
        if function_config.package_type != PackageType.Zip:
            raise LambdaRuntimeException(
                "container image functions are not supported by the embedded LocalStack's "
                "process executor; use LocalStack in Docker (localstack-compose.yml)"
            )
        if function_config.layers:
            raise LambdaRuntimeException(
                "layers are not supported by the embedded LocalStack's process executor; "
                "vendor the layer's packages into the deployment package"
            )
        try:
            find_interpreter(str(function_config.runtime))
        except UnsupportedRuntimeError as error:
            raise LambdaRuntimeException(str(error)) from error
        if function_config.code:
            function_config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to clean: LocalStack removes the unzipped code itself."""

    @classmethod
    def validate_environment(cls) -> bool:
        runtime_library = os.environ.get(RUNTIME_LIBRARY_ENV)
        if not runtime_library or not Path(runtime_library, "boto3").is_dir():
            LOG.warning(
                "%s does not name a directory with boto3; functions will not be able to import "
                "boto3 (run 'lambdamesh install')",
                RUNTIME_LIBRARY_ENV,
            )
        return True
