"""How ``lambdamesh dlq`` shows queues and messages: text for people, JSON for scripts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lambdamesh.dlq.letters import DeadLetter
from lambdamesh.dlq.queues import DeadLetterQueue
from lambdamesh.dlq.redrive import RedriveResult


def queue_document(queue: DeadLetterQueue) -> dict[str, Any]:
    """A dead-letter queue as JSON-ready data."""
    return {
        "name": queue.name,
        "url": queue.url,
        "arn": queue.arn,
        "fifo": queue.fifo,
        "messages": queue.messages,
        "in_flight": queue.in_flight,
        "delayed": queue.delayed,
        "sources": queue.source_names,
    }


def format_queues(queues: list[DeadLetterQueue]) -> list[str]:
    """One line per dead-letter queue: name, depth, in flight, the queue it serves."""
    if not queues:
        return ["no dead-letter queues found (is the messaging stack deployed?)"]
    width = max(len("QUEUE"), *(len(queue.name) for queue in queues))
    lines = [f"{'QUEUE':<{width}}  {'MESSAGES':>8}  {'IN FLIGHT':>9}  SOURCE"]
    for queue in queues:
        lines.append(
            f"{queue.name:<{width}}  {queue.messages:>8}  {queue.in_flight:>9}  "
            f"{', '.join(queue.source_names) or '-'}"
        )
    total = sum(queue.messages for queue in queues)
    lines.append(f"{total} message(s) in {len(queues)} dead-letter queue(s)")
    return lines


def letter_document(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON-ready data (``last_error`` is ``null`` when none was recorded)."""
    return asdict(letter)


def format_letters(
    queue: DeadLetterQueue, letters: list[DeadLetter], failures_table: str | None
) -> list[str]:
    """A header for the queue, then a short block per message."""
    sources = ", ".join(queue.source_names) or "unknown"
    lines = [
        f"{queue.name}: {len(letters)} message(s) shown of ~{queue.messages} "
        f"(dead-lettered from {sources})"
    ]
    if failures_table is None:
        lines.append("  (no EventFailuresTable found: last errors are not shown)")
    for letter in letters:
        lines += ["", *_letter_lines(letter)]
    return lines


def _letter_lines(letter: DeadLetter) -> list[str]:
    lines = [
        f"  message      {letter.message_id}",
        f"  type         {letter.event_type or '?'}",
        f"  correlation  {letter.correlation_id or '?'}",
        f"  receives     {letter.receive_count}",
    ]
    if letter.event_id or letter.source:
        lines.append(f"  event        {letter.event_id or '?'} from {letter.source or '?'}")
    if letter.group_id:
        lines.append(f"  group        {letter.group_id}")
    if letter.sent_at:
        lines.append(f"  sent         {letter.sent_at}")
    error = letter.last_error
    if error is None:
        lines.append("  last error   (none recorded)")
    else:
        where = ", ".join(
            part
            for part in (
                error.service,
                f"attempt {error.attempts}",
                error.at.isoformat(timespec="seconds"),
            )
            if part
        )
        lines.append(f"  last error   {error.reason}" + (f" ({where})" if where else ""))
    lines.append(f"  body         {_one_line(letter.body_preview)}")
    return lines


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def redrive_document(queue: DeadLetterQueue, result: RedriveResult, left: int) -> dict[str, Any]:
    """A redrive's outcome as JSON-ready data."""
    return {
        "queue": queue.name,
        "method": result.method,
        "moved": result.moved,
        "destinations": result.destinations,
        "messages_left": left,
    }
