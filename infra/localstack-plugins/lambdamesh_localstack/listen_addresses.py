"""Which addresses the embedded runtime may listen on.

The gateway of the embedded LocalStack can create and run functions as local
processes, so anyone who can reach its port can run code on this machine. It
therefore listens on loopback addresses only, unless the operator explicitly
opts out with ``LAMBDAMESH_ALLOW_NON_LOOPBACK=1``.

This module is pure (standard library only) so that the policy can be tested
without LocalStack installed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

ALLOW_NON_LOOPBACK_ENV = "LAMBDAMESH_ALLOW_NON_LOOPBACK"
"""Environment variable that, set to ``1``, permits non-loopback listen addresses."""

Resolver = Callable[[str, int], list[str]]
"""Maps a host name and port to the IP addresses to bind (``socket.getaddrinfo`` shaped)."""


class NonLoopbackListenError(ValueError):
    """Raised when the gateway is asked to listen on an address other than loopback."""


@dataclass(frozen=True, slots=True)
class BindAddress:
    """One IP address and port the gateway binds.

    Attributes
    ----------
    host
        An IPv4 or IPv6 literal (never a host name), without brackets.
    port
        The TCP port.
    requested_as
        The host exactly as it was written in ``GATEWAY_LISTEN``, for messages.
    """

    host: str
    port: int
    requested_as: str

    @property
    def is_ipv6(self) -> bool:
        """Whether ``host`` is an IPv6 address."""
        return ipaddress.ip_address(self.host).version == 6

    @property
    def is_loopback(self) -> bool:
        """Whether ``host`` is a loopback address (:func:`is_loopback_address`)."""
        return is_loopback_address(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{host}:{self.port}"


def resolve_with_getaddrinfo(host: str, port: int) -> list[str]:
    """Resolve ``host`` to the distinct IP addresses it names, in resolver order.

    Parameters
    ----------
    host
        A host name (``localhost``) or an IP literal.
    port
        The port; it does not change the result but ``getaddrinfo`` wants one.

    Returns
    -------
    list[str]
        IP literals, IPv4 and/or IPv6.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def resolve_bind_addresses(
    listen: Iterable[tuple[str, int]],
    resolver: Resolver = resolve_with_getaddrinfo,
) -> list[BindAddress]:
    """Turn ``GATEWAY_LISTEN`` entries into the concrete addresses to bind.

    IP literals are kept as they are; a host name is resolved and every
    address it names is bound, so ``localhost`` covers ``127.0.0.1`` and, where
    the resolver says so, ``::1``.

    Parameters
    ----------
    listen
        ``(host, port)`` pairs as LocalStack parsed them from ``GATEWAY_LISTEN``.
    resolver
        Resolves host names; injectable for tests.

    Returns
    -------
    list[BindAddress]
        Distinct addresses, in the order given.
    """
    result: list[BindAddress] = []
    for host, port in listen:
        if _is_ip_literal(host):
            hosts = [host]
        else:
            hosts = resolver(host, port)
            if not hosts:
                raise NonLoopbackListenError(f"GATEWAY_LISTEN host {host!r} resolves to nothing")
        for ip in hosts:
            address = BindAddress(host=ip, port=port, requested_as=host)
            if all((a.host, a.port) != (address.host, address.port) for a in result):
                result.append(address)
    return result


def non_loopback_allowed(environ: Mapping[str, str]) -> bool:
    """Whether the operator opted in to non-loopback listen addresses."""
    return environ.get(ALLOW_NON_LOOPBACK_ENV, "").strip() == "1"


def refuse_non_loopback(addresses: Iterable[BindAddress], *, allowed: bool) -> list[BindAddress]:
    """Check the loopback policy.

    Parameters
    ----------
    addresses
        What the gateway is about to bind.
    allowed
        Whether the operator opted in to non-loopback addresses.

    Returns
    -------
    list[BindAddress]
        The non-loopback addresses (empty when all are loopback); only
        returned when ``allowed`` is true, so that the caller can warn.

    Raises
    ------
    NonLoopbackListenError
        If an address is not loopback and ``allowed`` is false.
    """
    exposed = [address for address in addresses if not address.is_loopback]
    if exposed and not allowed:
        listed = ", ".join(f"{a} (from {a.requested_as!r})" for a in exposed)
        raise NonLoopbackListenError(
            f"refusing to listen on non-loopback address(es) {listed}: the embedded runtime "
            "runs functions as local processes, so anyone who can reach its port can run code "
            "on this machine. Use 127.0.0.1 or [::1] in GATEWAY_LISTEN, or set "
            f"{ALLOW_NON_LOOPBACK_ENV}=1 to accept the risk."
        )
    return exposed


def is_loopback_address(host: str) -> bool:
    """Whether ``host`` is a loopback IP address (``127.0.0.0/8``, ``::1``); a name is not.

    An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) counts as the IPv4
    address it maps, whatever the Python version's own rule is.

    >>> [is_loopback_address(h) for h in ("127.0.0.2", "::1", "::ffff:127.0.0.1", "10.0.0.1")]
    [True, True, True, False]
    >>> is_loopback_address("localhost")
    False
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
