"""``lambdamesh topology``: its help, its output in each format, and errors that say what to do.

The command is run through a parser built from its module alone, as ``lambdamesh`` builds it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh import cli
from lambdamesh.topology.docs import BEGIN, END
from lambdamesh.topology.svg import svg_hash
from tests.support.topology_shop import PREFIX, REGION, deploy_shop

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..SNS..Subscription")


def lambdamesh(*arguments: str) -> int:
    """Run ``lambdamesh topology ARGUMENTS``; the exit code."""
    parser = cli.build_parser(chosen="topology")
    args = parser.parse_args(["topology", *arguments])
    code: int = args.handler(args)
    return code


@pytest.fixture
def aws(empty_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``--aws`` answered by moto."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


@pytest.fixture
def shop(aws: Any) -> Any:
    deploy_shop(aws)
    return aws


def test_help_says_what_is_drawn_and_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the command  WHEN asked for help
    with pytest.raises(SystemExit) as exited:
        lambdamesh("--help")
    # THEN it exits 0, names what the picture holds and shows examples
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "filter policies" in out
    assert "lambdamesh topology --write-docs" in out
    assert "--from-templates" in out


def test_without_a_running_emulator_it_says_how_to_start_one(
    empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no embedded LocalStack on the port
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    # WHEN the topology is asked for
    code = lambdamesh("--port", str(port))
    # THEN it fails and names the command that starts one
    assert code == 1
    assert f"lambdamesh up --port {port}" in capsys.readouterr().err


def test_with_nothing_deployed_it_says_to_deploy_first(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a target where nothing is deployed  WHEN the topology is asked for
    code = lambdamesh("--aws")
    # THEN it fails in one line that says to deploy first
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert "nothing deployed on aws:us-east-1" in err[0]
    assert "run `lambdamesh deploy` first" in err[0]


def test_the_default_output_is_mermaid_on_standard_output(
    shop: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the shop deployed  WHEN the topology is asked for with its prefix
    code = lambdamesh("--aws", "--stack-prefix", PREFIX)
    # THEN mermaid is printed and nothing else
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[1] == "flowchart LR"
    assert '-->|"type: user.created; raw"|' in out


def test_json_is_the_model_with_its_hash(shop: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the shop deployed  WHEN the topology is asked for as JSON
    code = lambdamesh("--aws", "--stack-prefix", PREFIX, "--format", "json")
    # THEN it is the model: nodes, edges and its hash
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert len(document["sha256"]) == 64
    assert {"id": "catalog.Rpc", "kind": "function", "label": "Rpc", "service": "catalog"} in (
        document["nodes"]
    )
    assert {
        "source": "orders.APIHandler",
        "target": "users.RestAPI",
        "kind": "http",
        "label": "HTTP",
    } in document["edges"]


def test_output_writes_the_svg_to_a_file_and_says_so(
    shop: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the shop deployed  WHEN the SVG is asked for into a file
    picture = tmp_path / "shop.svg"
    code = lambdamesh(
        "--aws", "--stack-prefix", PREFIX, "--format", "svg", "--output", str(picture)
    )
    # THEN the file holds the picture with its hash, and standard error says where it went
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == ""
    assert svg_hash(picture.read_text()) is not None
    assert f"wrote {picture} (svg" in captured.err


def test_write_docs_rewrites_the_pictures_and_the_page_block(
    shop: Any, empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a project whose docs/topology.md has its block between words written by hand
    page = empty_project / "docs" / "topology.md"
    page.parent.mkdir()
    page.write_text(f"# Topology\n\nby hand\n\n{BEGIN}\nstale\n{END}\n\nalso by hand\n")
    # WHEN the docs are written from the deployed shop
    code = lambdamesh("--aws", "--stack-prefix", PREFIX, "--write-docs")
    # THEN both pictures are written with one hash, the block holds the mermaid, the hand-written
    # words are kept, and each file is named
    out = capsys.readouterr().out
    mermaid = (empty_project / "docs" / "topology.mmd").read_text()
    assert code == 0
    digest = svg_hash((empty_project / "docs" / "topology.svg").read_text())
    assert digest is not None
    assert mermaid.splitlines()[0].endswith(digest)
    assert page.read_text() == (
        f"# Topology\n\nby hand\n\n{BEGIN}\n```mermaid\n{mermaid}```\n{END}\n\nalso by hand\n"
    )
    for name in ("topology.mmd", "topology.svg", "topology.md"):
        assert f"wrote docs/{name}" in out


def test_write_docs_and_output_are_one_or_the_other(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN both --write-docs and --output  WHEN parsed  THEN it is a usage error
    with pytest.raises(SystemExit) as exited:
        lambdamesh("--write-docs", "--output", "x.svg")
    assert exited.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_from_templates_in_a_project_without_them_names_what_is_missing(
    empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a project without its topology templates  WHEN drawn from the templates
    code = lambdamesh("--from-templates")
    # THEN it fails in one line naming the file it could not read
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("error: ")
    assert "shared.json" in err[-1]
