"""Every deployed function made cold, through its configuration, as a deploy would.

Lambda (and the embedded runtime, which stops a function's processes when its configuration
changes) starts new execution environments after ``UpdateFunctionConfiguration``. Each function
gets the variable ``LAMBDAMESH_LOAD_GENERATION`` set to one more than the highest generation any
of them carries, every other variable kept as it is; then each update is waited for until its
``LastUpdateStatus`` is ``Successful``. Nothing reads the variable: changing it is the point. It
stays after the run (removing it would be one more configuration change); a later deploy that
updates a function's stack drops it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from botocore.exceptions import WaiterError

if TYPE_CHECKING:
    from mypy_boto3_lambda.client import LambdaClient

GENERATION_VARIABLE = "LAMBDAMESH_LOAD_GENERATION"
"""The variable whose change makes a function cold."""
UPDATE_WORKERS = 4
"""Functions updated at once."""
WAIT_DELAY_S = 1
WAIT_ATTEMPTS = 120
"""How an update is waited for: every second, for at most two minutes."""


def next_generation(environments: Iterable[Mapping[str, str]]) -> int:
    """One more than the highest generation among ``environments`` (1 when none has one).

    A value that is not a whole number counts as 0.

    >>> next_generation([{"A": "1"}, {GENERATION_VARIABLE: "4"}, {GENERATION_VARIABLE: "x"}])
    5
    >>> next_generation([])
    1
    """
    highest = 0
    for variables in environments:
        value = variables.get(GENERATION_VARIABLE, "0")
        highest = max(highest, int(value) if value.isdigit() else 0)
    return highest + 1


def make_cold(
    lambda_client: LambdaClient,
    function_names: Sequence[str],
    progress: Callable[[str], None] = print,
) -> int:
    """Change every function's configuration and wait until each change is in place.

    Parameters
    ----------
    lambda_client
        Lambda on the target.
    function_names
        The functions to make cold.
    progress
        Where a progress line goes.

    Returns
    -------
    int
        The generation every function now carries.

    Raises
    ------
    RuntimeError
        When a function's update does not succeed, naming it.
    """
    environments = {name: _environment(lambda_client, name) for name in function_names}
    generation = next_generation(environments.values())
    progress(f"   changing the configuration of {len(function_names)} function(s)")

    def update(name: str) -> None:
        variables = {**environments[name], GENERATION_VARIABLE: str(generation)}
        lambda_client.update_function_configuration(
            FunctionName=name, Environment={"Variables": variables}
        )
        try:
            lambda_client.get_waiter("function_updated_v2").wait(
                FunctionName=name,
                WaiterConfig={"Delay": WAIT_DELAY_S, "MaxAttempts": WAIT_ATTEMPTS},
            )
        except WaiterError as error:
            raise RuntimeError(
                f"function {name}: its configuration update failed: {error}"
            ) from error

    with ThreadPoolExecutor(UPDATE_WORKERS) as pool:
        list(pool.map(update, function_names))
    return generation


def _environment(lambda_client: LambdaClient, name: str) -> dict[str, str]:
    configuration = lambda_client.get_function_configuration(FunctionName=name)
    return dict(configuration.get("Environment", {}).get("Variables", {}))
