"""The checked-in pictures: ``docs/topology.mmd``, ``docs/topology.svg`` and the mermaid block
of ``docs/topology.md``, written by ``lambdamesh topology --write-docs``.

The page is written by hand around its block; only what lies between :data:`BEGIN` and
:data:`END` is replaced.

>>> page = f"# Topology\\n{BEGIN}\\nold\\n{END}\\nmore words\\n"
>>> print(page_with_block(page, "flowchart LR\\n"), end="")
# Topology
<!-- topology:begin (written by lambdamesh topology; edit around it) -->
```mermaid
flowchart LR
```
<!-- topology:end -->
more words
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lambdamesh.topology.mermaid import render_mermaid
from lambdamesh.topology.model import Topology
from lambdamesh.topology.svg import render_svg

BEGIN = "<!-- topology:begin (written by lambdamesh topology; edit around it) -->"
END = "<!-- topology:end -->"


class MissingBlockError(ValueError):
    """The page has no block to write the mermaid source into."""


@dataclass(frozen=True)
class DocsFiles:
    """Where the pictures live under a project root.

    Attributes
    ----------
    root
        The project root.
    """

    root: Path

    @property
    def mermaid(self) -> Path:
        """``docs/topology.mmd``."""
        return self.root / "docs" / "topology.mmd"

    @property
    def svg(self) -> Path:
        """``docs/topology.svg``."""
        return self.root / "docs" / "topology.svg"

    @property
    def page(self) -> Path:
        """``docs/topology.md``, whose mermaid block is rewritten."""
        return self.root / "docs" / "topology.md"


def page_with_block(page: str, mermaid: str) -> str:
    """``page`` with the mermaid source between its markers.

    Raises
    ------
    MissingBlockError
        When the page lacks either marker, or has them the wrong way round.
    """
    before, found, rest = page.partition(BEGIN)
    _, closed, after = rest.partition(END)
    if not found or not closed:
        raise MissingBlockError(f"the page has no block between {BEGIN} and {END}")
    return f"{before}{BEGIN}\n```mermaid\n{mermaid}```\n{END}{after}"


def write_docs(topology: Topology, files: DocsFiles) -> list[Path]:
    """Write both pictures and the page's block; the files written.

    Raises
    ------
    MissingBlockError
        When the page exists without its block (nothing is written then).
    OSError
        When a file cannot be written.
    """
    mermaid = render_mermaid(topology)
    page = page_with_block(files.page.read_text(), mermaid) if files.page.exists() else None
    files.mermaid.parent.mkdir(parents=True, exist_ok=True)
    files.mermaid.write_text(mermaid)
    files.svg.write_text(render_svg(topology))
    written = [files.mermaid, files.svg]
    if page is not None:
        files.page.write_text(page)
        written.append(files.page)
    return written
