"""Export every contract as a JSON Schema file (the ``.proto`` files of lambdamesh).

Running ``python -m lambdamesh_toolkit.contracts.schemas OUT_DIR`` writes
``OUT_DIR/<contract_name>.v<contract_version>.schema.json`` for every
contract, each carrying its ``contract_name`` and ``contract_version``:

>>> from lambdamesh_toolkit.contracts.events import OrderPlaced
>>> schema = contract_schema(OrderPlaced)
>>> schema["$id"], schema["contract_version"], schema["event_type"]
('urn:lambdamesh:contract:events.OrderPlaced:v1', 1, 'order.placed')
>>> OrderPlaced in all_contracts()
True
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lambdamesh_toolkit.contracts import catalog, events, orders, reviews, rpc, users
from lambdamesh_toolkit.contracts.base import Contract

CONTRACT_MODULES = (users, catalog, reviews, orders, rpc, events)
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def all_contracts() -> list[type[Contract]]:
    """Return every contract class of the contract modules, sorted by name.

    Raises
    ------
    ValueError
        When two contracts claim the same name and version.
    """
    found: dict[tuple[str, int], type[Contract]] = {}
    for contract in _subclasses(Contract):
        if contract.__module__ not in {module.__name__ for module in CONTRACT_MODULES}:
            continue
        if not hasattr(contract, "contract_name"):
            continue  # an abstract base, e.g. events.EventData
        key = (contract.contract_name, contract.contract_version)
        if key in found and found[key] is not contract:
            raise ValueError(f"contract {key[0]} v{key[1]} is defined twice")
        found[key] = contract
    return [found[key] for key in sorted(found)]


def _subclasses(cls: type[Contract]) -> Iterator[type[Contract]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def contract_schema(contract: type[Contract]) -> dict[str, Any]:
    """Return the JSON Schema of one contract, named and versioned."""
    schema = contract.model_json_schema()
    # An event's data model also names the envelope ``type`` it travels under.
    event_type = getattr(contract, "event_type", None)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:lambdamesh:contract:{contract.contract_name}:v{contract.contract_version}",
        "contract_name": contract.contract_name,
        "contract_version": contract.contract_version,
        **({"event_type": event_type} if isinstance(event_type, str) else {}),
        **schema,
    }


def export_json_schemas(out_dir: Path | str) -> list[Path]:
    """Write one JSON Schema file per contract into ``out_dir``.

    Parameters
    ----------
    out_dir : Path | str
        Target directory, created when missing.

    Returns
    -------
    list[Path]
        The files written, in contract-name order.
    """
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in all_contracts():
        path = target / f"{contract.contract_name}.v{contract.contract_version}.schema.json"
        path.write_text(json.dumps(contract_schema(contract), indent=2, sort_keys=False) + "\n")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m lambdamesh_toolkit.contracts.schemas OUT_DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m lambdamesh_toolkit.contracts.schemas OUT_DIR", file=sys.stderr)
        return 2
    for path in export_json_schemas(args[0]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
