"""Requests whose ``Host`` is not this machine's are refused (DNS rebinding).

The emulator listens on loopback only, but a web page in the user's browser can still reach it:
a name the attacker controls is made to resolve to 127.0.0.1, and the browser, believing it
talks to the attacker's site, sends the page's requests — ``CreateFunction``, ``Invoke`` — to
the emulator, which runs their code on this machine. Such a request carries the attacker's name
in its ``Host`` header. :func:`refuse_foreign_host`, the first request handler of the gateway
(installed by :mod:`lambdamesh_localstack.loopback_server`), answers it ``403`` before anything
else reads it. Allowed: a loopback address, ``localhost`` and names under it, and LocalStack's
own local domain ``localhost.localstack.cloud`` with its subdomains (it resolves to 127.0.0.1;
S3 and API Gateway use subdomains of it). A request without ``Host`` (HTTP/1.0) is let
through: a browser always sends one. With non-loopback listening allowed
(``LAMBDAMESH_ALLOW_NON_LOOPBACK=1``), the check is not installed: whoever exposes the port
has chosen to.

>>> [allowed_host(h) for h in ("127.0.0.1:4566", "[::1]:4566", "localhost", "LOCALHOST:4566")]
[True, True, True, True]
>>> [allowed_host(h) for h in ("abc.execute-api.localhost.localstack.cloud:4566", "x.localhost")]
[True, True]
>>> [allowed_host(h) for h in ("evil.example.com", "127.0.0.1.evil.example", "10.0.0.5:4566")]
[False, False, False]
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Final

from lambdamesh_localstack.listen_addresses import is_loopback_address

LOG = logging.getLogger(__name__)

LOCAL_DOMAINS: Final = ("localhost", "localhost.localstack.cloud")
"""Names (and their subdomains) that mean this machine."""


def _host_name(host: str) -> str:
    """``host`` without its port and IPv6 brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


@functools.lru_cache(maxsize=256)
def allowed_host(host: str | None) -> bool:
    """Whether a request with this ``Host`` header may reach the emulator.

    Asked for every request, of a handful of distinct values (parsing the address was 1.6 % of
    a no-op request's CPU): remembered, for the last 256 values."""
    if not host:
        return True
    name = _host_name(host).rstrip(".")
    if is_loopback_address(name):
        return True
    return any(name == domain or name.endswith(f".{domain}") for domain in LOCAL_DOMAINS)


def refuse_foreign_host(chain: Any, context: Any, response: Any) -> None:
    """Gateway request handler: answer ``403`` to a request for a host that is not this one."""
    host = context.request.headers.get("Host")
    if allowed_host(host):
        return
    LOG.warning("refused a request for host %r: not a name of this machine", host)
    chain.respond(
        403,
        {
            "message": f"host {host!r} is not a name of this machine; use localhost, "
            "127.0.0.1 or localhost.localstack.cloud"
        },
    )
