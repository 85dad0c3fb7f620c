"""The embedded runtime must not be reachable from the network.

Anyone who can reach the emulator's port can create a function and run it as a
local process, so every socket it (or a function process it started) listens
on must be a loopback address. Checked from the kernel's socket table only:
no traffic is ever sent to a non-loopback address.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any, NamedTuple

import psutil
import pytest
import urllib3

from tests.e2e.lambda_support import create_function, invoke

NOOP = """
    def handler(event, context):
        return {"pong": event.get("ping")}
"""


@pytest.fixture
def runtime(emulator: Any) -> psutil.Process:
    if emulator.pid is None:
        pytest.skip("an external LocalStack: its sockets are not this machine's to inspect")
    return psutil.Process(emulator.pid)


def test_runtime_and_function_processes_listen_on_loopback_only(
    emulator: Any, runtime: psutil.Process
) -> None:
    # GIVEN a function has been invoked, so a function process is running
    lambda_client = emulator.client("lambda")
    function = create_function(lambda_client, NOOP)
    assert invoke(lambda_client, function, {"ping": 1}) == ({"pong": 1}, None)
    children = runtime.children(recursive=True)
    assert children, "no function process was started: the check below would cover nothing"

    # WHEN the sockets of the runtime and all its descendants are read from the socket table
    listening = [
        listener
        for process in [runtime, *children]
        for conn in _connections(process)
        if (listener := _listener(conn, process.pid)) is not None
    ]

    # THEN the gateway port is among them, and every one is on a loopback address
    assert any(listener.port == emulator.port for listener in listening), listening
    exposed = [listener for listener in listening if not _is_loopback(listener.ip)]
    assert exposed == [], f"sockets reachable from the network: {exposed}"


def test_no_process_listens_on_the_gateway_port_beyond_loopback(
    emulator: Any, runtime: psutil.Process
) -> None:
    # GIVEN the emulator is running
    # WHEN every socket on the machine is read from the socket table
    on_gateway_port = [
        listener
        for conn in psutil.net_connections(kind="inet")
        if (listener := _listener(conn, conn.pid)) is not None and listener.port == emulator.port
    ]

    # THEN the runtime listens on the gateway port, and nothing does beyond loopback
    assert any(listener.pid in (None, runtime.pid) for listener in on_gateway_port), on_gateway_port
    exposed = [listener for listener in on_gateway_port if not _is_loopback(listener.ip)]
    assert exposed == [], f"the gateway port is reachable from the network: {exposed}"


class Listener(NamedTuple):
    """A socket waiting for peers: a TCP socket in LISTEN or a UDP socket without a peer."""

    pid: int | None
    ip: str
    port: int


def _connections(process: psutil.Process) -> list[Any]:
    try:
        return list(process.net_connections(kind="inet"))
    except psutil.NoSuchProcess:
        # A function process may be reaped between listing and reading; it listens on nothing.
        return []


def _listener(conn: Any, pid: int | None) -> Listener | None:
    """``conn`` (a psutil connection) as a :class:`Listener`, or ``None`` if it is not one."""
    if not conn.laddr:
        return None
    if conn.type == socket.SOCK_STREAM and conn.status != psutil.CONN_LISTEN:
        return None
    if conn.type == socket.SOCK_DGRAM and conn.raddr:
        return None
    return Listener(pid, str(conn.laddr.ip), int(conn.laddr.port))


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


RUNTIME_SET = frozenset({"PATH", "LANG", "TZ", "AWS_REGION", "AWS_DEFAULT_REGION"})
"""Variables the runtime sets for every function, whose value may equal the host's."""

ENVIRONMENT = """
    import os

    def handler(event, context):
        return dict(os.environ)
"""


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example.com", 403),
        ("127.0.0.1.nip.example", 403),
        ("localhost", 200),
        ("localhost.localstack.cloud", 200),
    ],
)
def test_a_request_for_a_host_that_is_not_this_machine_is_refused(
    emulator: Any, runtime: psutil.Process, host: str, status: int
) -> None:
    # GIVEN the embedded emulator on loopback
    # WHEN a request reaches it naming another host, as a DNS-rebinding page's would
    http = urllib3.PoolManager(retries=False)
    response = http.request(
        "GET",
        f"{emulator.endpoint_url}/_localstack/health",
        headers={"Host": f"{host}:{emulator.port}"},
        timeout=10,
    )
    # THEN only names of this machine are served; any other is refused before it is read
    assert response.status == status, response.data
    if status == 403:
        assert "not a name of this machine" in json.loads(response.data)["message"]


def test_a_function_sees_its_configured_environment_and_none_of_the_hosts(
    emulator: Any, runtime: psutil.Process
) -> None:
    # GIVEN the emulator's own environment (what a leak would pass on) and a function with one
    # configured variable
    host_environment = runtime.environ()
    assert host_environment, "the emulator's environment could not be read"
    lambda_client = emulator.client("lambda")
    function = create_function(lambda_client, ENVIRONMENT, environment={"PLANTED": "configured"})
    # WHEN the function reports the environment it runs with
    seen, error = invoke(lambda_client, function, {})
    assert error is None, seen
    # THEN its configured variable is there, and no variable of the emulator's own environment
    # reached it unless the runtime sets it itself (with its own value where they differ)
    assert seen["PLANTED"] == "configured"
    leaked = {
        name
        for name, value in host_environment.items()
        if seen.get(name) == value and name not in RUNTIME_SET
    }
    assert leaked == set(), f"host variables seen by the function: {sorted(leaked)}"
