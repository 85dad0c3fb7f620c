"""The state file, process-tree shutdown, port probing and health reading."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from lambdamesh.emulator.health import check_health
from lambdamesh.emulator.process import port_is_free, tail, terminate_process_tree
from lambdamesh.emulator.state import RunState, load_live_state


def _state_of(pid: int, create_time: float, run_dir: Path) -> RunState:
    return RunState(
        pid=pid,
        port=45123,
        host="127.0.0.1",
        endpoint="http://127.0.0.1:45123",
        started_at=1_700_000_000.0,
        run_dir=str(run_dir),
        create_time=create_time,
    )


def test_state_survives_a_write_and_read(tmp_path: Path) -> None:
    # GIVEN a state  WHEN written and read back  THEN it is equal
    state = _state_of(os.getpid(), psutil.Process().create_time(), tmp_path)
    state.write(tmp_path / "emulator.json")
    assert RunState.read(tmp_path / "emulator.json") == state


def test_unreadable_state_file_reads_as_none(tmp_path: Path) -> None:
    # GIVEN a corrupt state file  WHEN read  THEN there is no state
    (tmp_path / "emulator.json").write_text("{not json")
    assert RunState.read(tmp_path / "emulator.json") is None


def test_state_of_a_live_process_is_kept(tmp_path: Path) -> None:
    # GIVEN a state file naming this (live) process
    path = tmp_path / "emulator.json"
    _state_of(os.getpid(), psutil.Process().create_time(), tmp_path).write(path)
    # WHEN loaded  THEN it is returned and the file stays
    assert load_live_state(path) is not None
    assert path.exists()


def test_state_of_a_dead_process_is_cleaned_up(tmp_path: Path) -> None:
    # GIVEN a state file naming a process that has exited
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    create_time = psutil.Process(process.pid).create_time()
    process.wait()
    path = tmp_path / "emulator.json"
    _state_of(process.pid, create_time, tmp_path).write(path)
    # WHEN loaded  THEN there is no live state and the stale file is gone
    assert load_live_state(path) is None
    assert not path.exists()


def test_state_naming_a_recycled_pid_is_stale(tmp_path: Path) -> None:
    # GIVEN a state file with this pid but another creation time (the pid was reused)
    path = tmp_path / "emulator.json"
    _state_of(os.getpid(), psutil.Process().create_time() - 3600, tmp_path).write(path)
    # WHEN loaded  THEN it is stale
    assert load_live_state(path) is None


# A session leader with a child in its group and a grandchild that left for its own
# session, as a function process might.
_TREE = """
import subprocess, sys, time
subprocess.Popen(["sleep", "300"])
subprocess.Popen(["sleep", "300"], start_new_session=True)
print("started", flush=True)
time.sleep(300)
"""


@pytest.fixture
def process_tree() -> Iterator[subprocess.Popen[str]]:
    leader = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None
    assert leader.stdout.readline().strip() == "started"
    yield leader
    terminate_process_tree(leader.pid, timeout=1)
    leader.wait()


def test_terminating_a_tree_leaves_no_descendant(process_tree: subprocess.Popen[str]) -> None:
    # GIVEN a leader with two descendants, one in a session of its own
    descendants = psutil.Process(process_tree.pid).children(recursive=True)
    assert len(descendants) == 2
    # WHEN the tree is terminated
    terminate_process_tree(process_tree.pid, timeout=5)
    process_tree.wait()
    # THEN none of them is running any more
    survivors = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []


def test_port_probe_sees_a_listener() -> None:
    # GIVEN a socket listening on a loopback port
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        # WHEN probed  THEN the port is taken
        assert not port_is_free("127.0.0.1", port)
    # WHEN the listener has closed  THEN it is free again
    assert port_is_free("127.0.0.1", port)


class _FakeLocalStack(BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        bodies = {
            "/_localstack/health": {
                "services": {"lambda": "running", "sqs": "available", "kms": "disabled"},
                "version": "4.14.0",
            },
            "/_localstack/init/ready": {"completed": self.ready, "scripts": []},
        }
        body = json.dumps(bodies.get(self.path, {})).encode()
        self.send_response(200 if self.path in bodies else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def fake_localstack() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLocalStack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_health_is_read_from_both_endpoints(fake_localstack: str) -> None:
    # GIVEN a LocalStack that is ready with lambda and sqs usable
    # WHEN its health is read (a timeout far beyond any stall of a busy machine)
    health = check_health(fake_localstack, timeout=30)
    # THEN it is answering, ready, healthy, and reports its version and services
    assert health.answering
    assert health.ready
    assert health.healthy
    assert health.version == "4.14.0"
    assert health.services["kms"] == "disabled"


def test_not_ready_is_not_healthy(fake_localstack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a LocalStack whose READY stage has not completed
    monkeypatch.setattr(_FakeLocalStack, "ready", False)
    # WHEN its health is read  THEN it answers but is not healthy
    health = check_health(fake_localstack, timeout=30)
    assert health.answering
    assert not health.healthy


def test_nothing_listening_is_not_answering() -> None:
    # GIVEN a port nothing listens on  WHEN health is read  THEN it is not answering
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    assert not check_health(f"http://127.0.0.1:{port}", timeout=0.5).answering


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    # GIVEN a 100-line log  WHEN its tail is read  THEN it has the last 30 lines
    log = tmp_path / "localstack.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    lines = tail(log).splitlines()
    assert lines[0] == "line 70"
    assert lines[-1] == "line 99"
    assert tail(tmp_path / "missing.log") == ""
