"""Loading the service apps in-process, side by side.

Every service is a Chalice project with an ``app.py`` and a ``chalicelib`` package of its
own, so importing two of them the usual way would hand the second the first one's
``chalicelib``. :func:`load_service` imports ``functions/<svc>/app.py`` under a unique
module name with the service directory first on ``sys.path`` and no ``chalicelib`` in
``sys.modules``, then moves the freshly imported ``chalicelib`` modules out of
``sys.modules`` into the :class:`LoadedService` (the app keeps its references to them),
and puts back whatever was there before. Services therefore load side by side, any
number of times.

The DynamoDB tables are created from the service's own ``resources.json`` (key schema,
indexes, TTL), and the functions' environment variables are resolved from the same file,
so the tests exercise the deployed wiring rather than a copy of it.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import boto3
from chalice.app import Chalice
from chalice.local import Clock, LambdaContext
from chalice.test import Client, FunctionNotFoundError, InvokeResponse, TestLambdaClient

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
LIBRARY_PACKAGE = "chalicelib"
_load_counter = itertools.count()


@dataclass(frozen=True)
class LoadedService:
    """A service app imported in isolation.

    Attributes
    ----------
    name
        The service (``users``, ``catalog``, ...).
    root
        Its Chalice project directory.
    app_module
        Its ``app.py`` module (imported under a unique name).
    library
        Its ``chalicelib`` modules by dotted name (``chalicelib.domain``, ...).
    """

    name: str
    root: Path
    app_module: ModuleType
    library: Mapping[str, ModuleType]

    @property
    def app(self) -> Chalice:
        """The Chalice application object."""
        return cast(Chalice, self.app_module.app)

    def module(self, dotted_name: str) -> ModuleType:
        """One of its ``chalicelib`` modules, e.g. ``module("chalicelib.domain")``."""
        return self.library[dotted_name]

    def client(self) -> Client:
        """Chalice's test client, with the ``dev`` stage of ``.chalice/config.json``."""
        return ServiceClient(self.app, stage_name="dev", project_dir=str(self.root))


class StoppedClock(Clock):
    """A clock standing still: an invocation's context keeps its whole timeout left."""

    def __init__(self) -> None:
        self._now = time.time()

    def time(self) -> float:
        return self._now


class TimedLambdaClient(TestLambdaClient):
    """Chalice's ``client.lambda_``, giving each invocation its function's configured timeout,
    on a clock that stands still.

    Chalice's own gives every invocation 3 s whatever ``lambda_timeout`` says (its HTTP client
    uses the setting), counted on the wall clock. Consumers stop starting records when their
    time runs short (``TimeGuard``, which reads the context for both the time left and each
    record's time), so a stalled test worker made them defer records: the first record of a
    batch once took 3.8 s under CI load and the second was put off. The time guard is tested
    with contexts whose time the test moves (``tests/support/lambda_context.py``); here a
    service's behaviour must not depend on how busy the machine is. The body is Chalice's
    ``invoke`` with the timeout and the clock added.
    """

    def invoke(self, function_name: str, payload: Any | None = None) -> InvokeResponse:
        scoped = self._config.scope(self._config.chalice_stage, function_name)
        context = LambdaContext(
            function_name,
            memory_size=scoped.lambda_memory_size,
            max_runtime_ms=scoped.lambda_timeout * 1000,
            time_source=StoppedClock(),
        )
        if function_name not in self._app.handler_map:
            raise FunctionNotFoundError(function_name)
        with self._patched_env_vars(scoped.environment_variables):
            event = {} if payload is None else payload
            response = self._app.handler_map[function_name](event, context)
        return InvokeResponse(payload=response)


class ServiceClient(Client):
    """Chalice's test client whose ``lambda_`` is a :class:`TimedLambdaClient`."""

    @property
    def lambda_(self) -> TestLambdaClient:
        if self._lambda_client is None:
            self._lambda_client = TimedLambdaClient(self._app, self._chalice_config)
        return self._lambda_client


def _is_library_module(name: str) -> bool:
    return name == LIBRARY_PACKAGE or name.startswith(LIBRARY_PACKAGE + ".")


def _take_library_modules() -> dict[str, ModuleType]:
    return {name: sys.modules.pop(name) for name in list(sys.modules) if _is_library_module(name)}


def load_service(name: str) -> LoadedService:
    """Import ``functions/<name>/app.py`` with its own ``chalicelib``, clashing with nothing."""
    root = FUNCTIONS_DIR / name
    module_name = f"lambdamesh_service_{name}_app_{next(_load_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, root / "app.py")
    assert spec is not None
    assert spec.loader is not None
    others = _take_library_modules()
    sys.path.insert(0, str(root))
    try:
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        library = _take_library_modules()
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(module_name, None)
        _take_library_modules()
        sys.modules.update(others)
    return LoadedService(name=name, root=root, app_module=module, library=library)


def service_resources(name: str) -> dict[str, Any]:
    """The service's CloudFormation fragment (``resources.json``)."""
    loaded: dict[str, Any] = json.loads((FUNCTIONS_DIR / name / "resources.json").read_text())
    return loaded


def create_tables(resources: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Create the fragment's DynamoDB tables; their names by logical id."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    names: dict[str, str] = {}
    for logical_id, resource in resources["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        properties = dict(resource["Properties"])
        ttl = properties.pop("TimeToLiveSpecification", None)
        stream = properties.pop("StreamSpecification", None)
        if stream is not None:  # CloudFormation implies StreamEnabled; the API wants it said
            properties["StreamSpecification"] = {"StreamEnabled": True, **stream}
        table_name = f"{prefix}-{logical_id}"
        dynamodb.create_table(TableName=table_name, **properties)
        if ttl is not None:
            dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
        names[logical_id] = table_name
    return names


def function_environment(
    resources: Mapping[str, Any], references: Mapping[str, str]
) -> dict[str, str]:
    """The environment variables the fragment gives its functions, ``Ref`` s resolved.

    Raises
    ------
    KeyError
        Naming a ``Ref`` that ``references`` cannot resolve.
    """
    environment: dict[str, str] = {}
    for resource in resources["Resources"].values():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for variable, value in variables.items():
            if isinstance(value, dict):
                target = value["Ref"]
                if target not in references:
                    raise KeyError(f"{variable} refers to {target}, which the test did not give")
                environment[variable] = references[target]
            else:
                environment[variable] = str(value)
    return environment
