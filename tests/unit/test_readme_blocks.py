"""The README's shell blocks are found with their annotations, and a typo in one is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.readme import ReadmeAnnotationError, ShellBlock, as_script, shell_blocks

README = Path(__file__).parents[2] / "README.md"


def test_blocks_carry_their_line_skip_reason_and_background_port(tmp_path: Path) -> None:
    # GIVEN a Markdown file with a plain block, a skipped one, a server and a non-shell block
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n```sh\necho one\n```\n"
        "<!-- readme-test: skip: needs Docker -->\n```sh\ndocker ps\n```\n"
        "<!-- readme-test: background until port 8001 answers -->\n```bash\nserve\n```\n"
        "```json\n{}\n```\n"
    )
    # WHEN its shell blocks are read
    blocks = shell_blocks(page)
    # THEN each is there, with its annotation, and the JSON block is not
    assert blocks == [
        ShellBlock(2, "echo one"),
        ShellBlock(6, "docker ps", skip_reason="needs Docker"),
        ShellBlock(10, "serve", background_port=8001),
    ]


def test_an_annotation_it_does_not_understand_is_an_error(tmp_path: Path) -> None:
    # GIVEN a skip without a reason
    page = tmp_path / "page.md"
    page.write_text("<!-- readme-test: skip -->\n```sh\nrm -rf /\n```\n")
    # WHEN / THEN reading it fails, naming the annotation
    with pytest.raises(ReadmeAnnotationError, match="'skip'"):
        shell_blocks(page)


def test_the_script_runs_what_is_not_skipped_in_order_servers_in_the_background(
    tmp_path: Path,
) -> None:
    # GIVEN a plain block, a skipped one and a server
    blocks = [
        ShellBlock(1, "A=1"),
        ShellBlock(5, "docker ps", skip_reason="needs Docker"),
        ShellBlock(9, "serve", background_port=8001),
    ]
    # WHEN they become a script
    script = as_script(blocks, tmp_path / "bg.log")
    # THEN it stops at the first failure, skips the skipped block and backgrounds the server
    assert script.startswith("set -euo pipefail\n")
    assert "A=1" in script
    assert "docker ps" not in script
    assert "( serve\n) >>" in script
    assert "http://127.0.0.1:8001/" in script


def test_every_annotation_in_the_readme_is_understood_and_most_blocks_run() -> None:
    # GIVEN / WHEN the project's README is read
    blocks = shell_blocks(README)
    # THEN its annotations parse, every skip says why, and the blocks that run outnumber them
    skipped = [block for block in blocks if block.skip_reason]
    assert all(block.skip_reason.strip() for block in skipped if block.skip_reason)
    assert len(blocks) - len(skipped) > len(skipped)
