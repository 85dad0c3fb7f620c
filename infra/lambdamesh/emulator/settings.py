"""The environment the embedded LocalStack runs with, in one place.

``localstack-compose.yml`` carries :data:`SHARED_SETTINGS` too (a unit test keeps
the two equal); :func:`emulator_environment` adds what only host mode needs.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lambdamesh_localstack.esm_tuning import POLLER_SETTINGS, poller_environment

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
REGION = "us-east-1"

ALLOW_NON_LOOPBACK_FLAG = "--allow-non-loopback"
ALLOW_NON_LOOPBACK_ENV = "LAMBDAMESH_ALLOW_NON_LOOPBACK"
LAMBDA_RUNTIME_PATH_ENV = "LAMBDAMESH_LAMBDA_RUNTIME_PATH"
GATEWAY_SERVER_ENV = "LAMBDAMESH_GATEWAY_SERVER"
GATEWAY_SERVERS = ("loopback", "loopback-twisted")
"""The gateway servers of ``lambdamesh-localstack``, which bind only the configured host:
``loopback`` (one thread per connection, the default) and ``loopback-twisted`` (LocalStack's
twisted server, for HTTP/2 or WebSocket clients)."""

SERVICES = (
    "lambda",
    "sqs",
    "sns",
    "dynamodb",
    "dynamodbstreams",
    "apigateway",
    "cloudformation",
    "ses",
    "s3",
    "sts",
    "iam",
    "logs",
    "events",
)
"""The AWS services the system uses; LocalStack loads only these."""

READY_SERVICES = ("lambda", "sqs")
"""Services that must show up in the health report before the emulator counts as up."""

ESM_POLLER_SETTINGS: dict[str, str] = dict(POLLER_SETTINGS)
"""Event source mapping poller tuning (documented in ``lambdamesh_localstack.esm_tuning``).

LocalStack's defaults poll each SQS queue about once a second and back off up to 10 s when it is
empty; these make a mapping pick a message up as it arrives, as on AWS. Values the user's
environment sets win. They are LocalStack settings, so the compose file carries them too.
"""

SHARED_SETTINGS: dict[str, str] = {
    "SERVICES": ",".join(SERVICES),
    # No analytics events: nothing leaves the machine.
    "DISABLE_EVENTS": "1",
    # Queue URLs of the form {endpoint}/{account}/{queue}: they work with any host name.
    "SQS_ENDPOINT_STRATEGY": "path",
    # The certificate download needs the internet; the emulator speaks plain HTTP.
    "SKIP_SSL_CERT_DOWNLOAD": "1",
    **ESM_POLLER_SETTINGS,
}
"""Settings of the embedded emulator that ``localstack-compose.yml`` carries as well."""

# Variables of the calling shell that would point LocalStack at the wrong place.
_DROPPED_FROM_CALLER = (
    ALLOW_NON_LOOPBACK_ENV,
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "LOCALSTACK_AUTH_TOKEN",
    "PYTHONDONTWRITEBYTECODE",  # LocalStack caches its plugins' bytecode like any import
    "PYTHONHOME",
    "PYTHONPATH",
    "VIRTUAL_ENV",
)


class NonLoopbackRefusedError(ValueError):
    """A non-loopback bind address was asked for without the explicit opt-in."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"refusing to listen on {host!r}: the embedded LocalStack runs deployed code on this "
            f"machine, so anyone who can reach the port can run programs here. It listens on "
            f"loopback (127.0.0.1, ::1, localhost) only unless you pass {ALLOW_NON_LOOPBACK_FLAG}."
        )
        self.host = host


class UnknownGatewayServerError(ValueError):
    """A gateway server was asked for that is not one of :data:`GATEWAY_SERVERS`."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{GATEWAY_SERVER_ENV}={name!r} is not a gateway server of this project; use one of "
            f"{', '.join(GATEWAY_SERVERS)} (the others LocalStack has listen on every interface)"
        )


def gateway_server_from(environ: Mapping[str, str]) -> str:
    """The gateway server :data:`GATEWAY_SERVER_ENV` names, else ``loopback``.

    >>> gateway_server_from({}), gateway_server_from({GATEWAY_SERVER_ENV: " loopback-twisted "})
    ('loopback', 'loopback-twisted')
    """
    return environ.get(GATEWAY_SERVER_ENV, "").strip() or GATEWAY_SERVERS[0]


NON_LOOPBACK_WARNING = (
    "WARNING: listening on a non-loopback address ({host}). Anyone who can reach port {port} "
    "can create and invoke Lambda functions, which run as programs on THIS machine with your "
    "user's rights (remote code execution). Use it only on a network you fully trust."
)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    candidate = host.strip().strip("[]")
    if candidate.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(candidate).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, *, allow_non_loopback: bool) -> None:
    """Refuse a non-loopback ``host`` unless the caller opted in.

    Raises
    ------
    NonLoopbackRefusedError
        When ``host`` is not loopback and ``allow_non_loopback`` is false.
    """
    if not allow_non_loopback and not is_loopback_host(host):
        raise NonLoopbackRefusedError(host)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _host_port(host: str, port: int) -> str:
    bare = host.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def endpoint_url(host: str, port: int) -> str:
    """The URL clients use; a wildcard bind address is reached through 127.0.0.1."""
    reachable = DEFAULT_HOST if _is_wildcard(host) else host
    return f"http://{_host_port(reachable, port)}"


@dataclass(frozen=True)
class EmulatorSettings:
    """What varies between embedded emulators.

    Attributes
    ----------
    port
        The gateway port.
    run_dir
        Holds state, logs, tmp and cache of this emulator.
    lambda_runtime_dir
        Library directory importable by every function (boto3), as on AWS.
    host
        Bind address; loopback unless ``allow_non_loopback``.
    allow_non_loopback
        The explicit opt-in for a non-loopback ``host``.
    gateway_server
        LocalStack's gateway server plugin, one of :data:`GATEWAY_SERVERS` (from
        ``lambdamesh-localstack``: they bind exactly the configured host instead of every
        interface).
    """

    port: int
    run_dir: Path
    lambda_runtime_dir: Path
    host: str = DEFAULT_HOST
    allow_non_loopback: bool = False
    gateway_server: str = "loopback"

    def __post_init__(self) -> None:
        check_bind_host(self.host, allow_non_loopback=self.allow_non_loopback)

    @property
    def endpoint_url(self) -> str:
        """The URL clients use to reach this emulator."""
        return endpoint_url(self.host, self.port)

    @property
    def tmp_dir(self) -> Path:
        """``TMPDIR``: LocalStack unzips function code below it."""
        return self.run_dir / "tmp"

    @property
    def cache_dir(self) -> Path:
        """``XDG_CACHE_HOME``: holds plux's entry-point cache."""
        return self.run_dir / "cache"

    @property
    def filesystem_root(self) -> Path:
        """``FILESYSTEM_ROOT``: LocalStack's state, libraries and its own tmp."""
        return self.run_dir / "state"

    @property
    def plux_cache(self) -> Path:
        """plux's entry-point cache, cleared before each start so plugin changes are seen."""
        return self.cache_dir / "plux"

    def host_mode_settings(self) -> dict[str, str]:
        """LocalStack settings that only make sense outside Docker.

        Raises
        ------
        UnknownGatewayServerError
            If ``gateway_server`` is not one of :data:`GATEWAY_SERVERS`.
        """
        if self.gateway_server not in GATEWAY_SERVERS:
            raise UnknownGatewayServerError(self.gateway_server)
        listen = _host_port(self.host, self.port)
        advertised = _host_port(DEFAULT_HOST if _is_wildcard(self.host) else self.host, self.port)
        settings = {
            # Inside any container LocalStack believes it is in Docker and ignores
            # FILESYSTEM_ROOT, writing to /var/lib/localstack.
            "OVERRIDE_IN_DOCKER": "0",
            "TMPDIR": str(self.tmp_dir),
            "XDG_CACHE_HOME": str(self.cache_dir),
            "FILESYSTEM_ROOT": str(self.filesystem_root),
            "GATEWAY_LISTEN": listen,
            "GATEWAY_SERVER": self.gateway_server,
            "LOCALSTACK_HOST": advertised,
            # LocalStack's DNS server would bind port 53 on the host.
            "DNS_ADDRESS": "0",
            "LAMBDA_RUNTIME_EXECUTOR": "process",
            # LocalStack's own DynamoDB downloads Java and DynamoDB Local.
            "PROVIDER_OVERRIDE_DYNAMODB": "moto",
            "PROVIDER_OVERRIDE_DYNAMODBSTREAMS": "moto",
            LAMBDA_RUNTIME_PATH_ENV: str(self.lambda_runtime_dir),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
        }
        if self.allow_non_loopback:
            settings[ALLOW_NON_LOOPBACK_ENV] = "1"
        return settings


def emulator_environment(
    settings: EmulatorSettings, inherited: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The complete environment of the LocalStack process.

    Parameters
    ----------
    settings
        The emulator to configure.
    inherited
        The caller's environment (``os.environ`` by default); kept, minus variables
        that would point LocalStack or its Python at the wrong place, so that
        e.g. ``DEBUG=1`` still reaches LocalStack.

    Returns
    -------
    dict[str, str]
        The environment for ``python -m localstack.runtime.main``.
    """
    base = dict(os.environ if inherited is None else inherited)
    for name in _DROPPED_FROM_CALLER:
        base.pop(name, None)
    return {
        **base,
        **SHARED_SETTINGS,
        **poller_environment(base),
        **settings.host_mode_settings(),
    }
