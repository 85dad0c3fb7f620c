"""The e2e fixture finds the process of an embedded LocalStack named by ``LAMBDAMESH_ENDPOINT``."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import embedded_pid

LISTEN = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
time.sleep(60)
"""


@contextmanager
def listener(*argv: str) -> Iterator[tuple[int, int]]:
    """A process listening on a loopback port, started with ``argv`` after its code: its pid
    and port."""
    process = subprocess.Popen(
        [sys.executable, "-c", LISTEN, *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield process.pid, port
    finally:
        process.kill()
        process.wait()


def test_an_embedded_localstack_on_this_machine_is_found_by_its_port() -> None:
    # GIVEN a process started as an embedded LocalStack is, listening on loopback
    with listener("-m", "localstack.runtime.main") as (pid, port):
        # WHEN the endpoint is looked up, by name or by address
        # THEN its process is found
        assert embedded_pid(f"http://localhost:{port}") == pid
        assert embedded_pid(f"http://127.0.0.1:{port}/") == pid


def test_another_program_on_the_port_is_not_taken_for_localstack() -> None:
    # GIVEN a process listening on loopback that is not LocalStack (a Docker proxy, say)
    with listener() as (_, port):
        # WHEN the endpoint is looked up
        # THEN no process is given: its CPU is not the emulator's
        assert embedded_pid(f"http://127.0.0.1:{port}") is None


def test_an_endpoint_elsewhere_or_without_a_listener_has_no_process() -> None:
    # GIVEN a port nothing listens on, and a host that is not this machine
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    # WHEN they are looked up
    # THEN neither has a process
    assert embedded_pid(f"http://127.0.0.1:{free}") is None
    assert embedded_pid("https://localstack.example.com:4566") is None
    assert embedded_pid("http://localhost") is None
