"""``lambdamesh dashboard`` in a real headless browser (Debian's chromium): it renders the
system, and shows a dead-letter queue's depth once a poison event has landed there."""

from __future__ import annotations

import html.parser
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdamesh.chaos.poison import publish_poison
from lambdamesh.messaging_status import queue_depths
from tests.conftest import RunningEmulator, free_port
from tests.e2e.cli_support import LAMBDAMESH
from tests.e2e.conftest import DeployedSystem
from tests.e2e.lambda_support import wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As a CI machine runs it: no sandbox (root), no GPU, and nothing that reaches the network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
)


class Rows(html.parser.HTMLParser):
    """The attributes of every element of the rendered page, by tag."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


@pytest.fixture
def dashboard(emulator: RunningEmulator, deployed: DeployedSystem) -> Iterator[str]:
    """``lambdamesh dashboard`` running against the session's emulator; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(LAMBDAMESH),
            "dashboard",
            "--endpoint",
            emulator.endpoint_url,
            "--listen-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "dashboard of" in first, first
    yield f"http://127.0.0.1:{port}/"
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=10)


def _render(url: str, profile: Path) -> str:
    if CHROMIUM is None:
        message = "chromium is not installed: `make browser` (part of `make test`) installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    completed = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_the_dashboard_renders_and_shows_a_dead_letter_queue_holding_a_poison_event(
    emulator: RunningEmulator, deployed: DeployedSystem, dashboard: str, tmp_path: Path
) -> None:
    # GIVEN a poison event (a body that is not JSON) published to the users topic, and the
    # dead-letter queue its consumer put it in
    sqs: Any = emulator.client("sqs")
    run_id = f"dash-{uuid.uuid4().hex[:8]}"
    publish_poison(
        emulator.client("sns"),
        {"UsersTopicArn": deployed.messaging_outputs["UsersTopicArn"]},
        1,
        run_id,
    )

    def holding() -> dict[str, int] | None:
        _, dead = queue_depths(sqs, "lambdamesh")
        full = {queue.name: queue.total for queue in dead if queue.total}
        return full or None

    full = wait_until(holding, timeout_s=60, interval_s=0.5)
    # WHEN the dashboard is opened in a headless browser
    dom = _render(dashboard, tmp_path / "profile")
    # THEN it rendered the services, the topology picture and the queues
    page = Rows()
    page.feed(dom)
    tags = [tag for tag, _ in page.elements]
    assert "svg" in tags, dom[:3000]
    assert "orders" in dom
    queues = {
        attrs["data-queue"]: attrs
        for tag, attrs in page.elements
        if tag == "tr" and attrs.get("data-queue")
    }
    assert "lambdamesh-orders-outcomes" in queues
    # AND each DLQ holding messages shows its depth, highlighted, and the alarm is raised
    for name in full:
        assert name in queues, f"{name} not on the page"
        assert int(queues[name]["data-depth"] or 0) >= 1
        assert queues[name].get("class") == "nonempty"
    assert any(attrs.get("id") == "dead-letter-alarm" for _, attrs in page.elements)
