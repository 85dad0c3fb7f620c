"""The checked-in topology pictures agree with each other, and ``--write-docs`` keeps the page.

Whether they agree with what deploys is ``tests/e2e/test_topology.py``'s question.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdamesh.topology.docs import BEGIN, END, DocsFiles, MissingBlockError, write_docs
from lambdamesh.topology.mermaid import mermaid_hash
from lambdamesh.topology.model import EdgeKind, Topology, TopologyBuilder
from lambdamesh.topology.svg import svg_hash

ROOT = Path(__file__).resolve().parents[2]


def small() -> Topology:
    builder = TopologyBuilder()
    builder.connect(
        builder.add_function("users", "APIHandler"), builder.add_topic("users"), EdgeKind.PUBLISHES
    )
    return builder.build()


def test_the_checked_in_pictures_are_of_one_model() -> None:
    # GIVEN the checked-in mermaid, SVG and page
    files = DocsFiles(ROOT)
    mermaid = files.mermaid.read_text()
    # WHEN their hashes and the page's block are read
    # THEN the SVG and the mermaid carry the same hash, and the page shows that mermaid
    assert mermaid_hash(mermaid) is not None
    assert svg_hash(files.svg.read_text()) == mermaid_hash(mermaid), (
        "docs/topology.svg and docs/topology.mmd differ: run `lambdamesh topology --write-docs`"
    )
    assert f"{BEGIN}\n```mermaid\n{mermaid}```\n{END}" in files.page.read_text()


def test_a_page_without_its_block_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    # GIVEN a page that lost its markers
    files = DocsFiles(tmp_path)
    files.page.parent.mkdir()
    files.page.write_text("# Topology\n\nno block here\n")
    # WHEN the docs are written  THEN it is refused, naming the markers, and nothing is written
    with pytest.raises(MissingBlockError, match="topology:begin"):
        write_docs(small(), files)
    assert not files.mermaid.exists()
    assert not files.svg.exists()


def test_without_a_page_only_the_pictures_are_written(tmp_path: Path) -> None:
    # GIVEN a project without docs/  WHEN the docs are written
    written = write_docs(small(), DocsFiles(tmp_path))
    # THEN both pictures are, and no page is made up
    assert [path.name for path in written] == ["topology.mmd", "topology.svg"]
    assert not DocsFiles(tmp_path).page.exists()
