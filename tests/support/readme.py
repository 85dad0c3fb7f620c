"""The README's shell blocks, as a test runs them.

A block is a fenced ``sh`` (or ``bash``) code block. An HTML comment on the line before the
fence says how a test treats it:

- ``<!-- readme-test: skip: REASON -->`` — not run (it needs Docker, AWS credentials, or is what
  CI itself runs); the reason is required;
- ``<!-- readme-test: background until port N answers -->`` — a server: started in the
  background, and the next blocks run once something accepts connections on port ``N``.

Every other block runs, in order, in one shell, as a reader pasting them into a terminal would:
a function or variable one block defines is there for the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(sh|bash)\s*$")
ANNOTATION = re.compile(r"^<!--\s*readme-test:\s*(?P<what>.*?)\s*-->\s*$")
SKIP = re.compile(r"^skip:\s*(?P<reason>\S.*)$")
BACKGROUND = re.compile(r"^background until port (?P<port>\d+) answers$")


class ReadmeAnnotationError(ValueError):
    """An annotation the runner does not understand (a typo must not skip a block silently)."""


@dataclass(frozen=True)
class ShellBlock:
    """One shell block of the README.

    Attributes
    ----------
    line
        The line number of its opening fence (1-based).
    code
        Its text, without the fences.
    skip_reason
        Why it is not run, when it is not.
    background_port
        For a server block, the port that answers once it is up.
    """

    line: int
    code: str
    skip_reason: str | None = None
    background_port: int | None = None


def shell_blocks(path: Path) -> list[ShellBlock]:
    """The shell blocks of the Markdown file at ``path``, with their annotations.

    Raises
    ------
    ReadmeAnnotationError
        For a ``readme-test`` comment that is neither a skip with a reason nor a background.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[ShellBlock] = []
    index = 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            index += 1
            continue
        start = index
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        annotation = ANNOTATION.match(lines[start - 1]) if start > 0 else None
        blocks.append(_block(start + 1, "\n".join(lines[start + 1 : end]), annotation))
        index = end + 1
    return blocks


def _block(line: int, code: str, annotation: re.Match[str] | None) -> ShellBlock:
    if annotation is None:
        return ShellBlock(line, code)
    what = annotation["what"]
    if skipped := SKIP.match(what):
        return ShellBlock(line, code, skip_reason=skipped["reason"])
    if background := BACKGROUND.match(what):
        return ShellBlock(line, code, background_port=int(background["port"]))
    raise ReadmeAnnotationError(
        f"line {line - 1}: readme-test annotation {what!r} is neither "
        "'skip: REASON' nor 'background until port N answers'"
    )


def as_script(blocks: list[ShellBlock], background_log: Path) -> str:
    """One bash script running the blocks that are not skipped, in order, stopping at the first
    failing command; each announces its README line on standard error."""
    parts = ["set -euo pipefail"]
    for block in blocks:
        if block.skip_reason is not None:
            continue
        parts.append(f"echo '--- README.md line {block.line}' >&2")
        if block.background_port is None:
            parts.append(block.code)
            continue
        parts.append(f"( {block.code}\n) >>{background_log} 2>&1 &")
        parts.append(
            f"for _ in $(seq 1 240); do curl -s -o /dev/null http://127.0.0.1:{block.background_port}/"
            f" && break; sleep 0.25; done"
        )
        parts.append(
            f"curl -s -o /dev/null http://127.0.0.1:{block.background_port}/ "
            f"|| {{ echo 'README.md line {block.line}: nothing answers on port "
            f"{block.background_port}' >&2; cat {background_log} >&2; exit 1; }}"
        )
    return "\n".join(parts) + "\n"
