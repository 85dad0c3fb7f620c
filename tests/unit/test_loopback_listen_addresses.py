"""The gateway's listen policy: exactly the addresses asked for, loopback unless opted out."""

from __future__ import annotations

import pytest

from lambdamesh_localstack.listen_addresses import (
    ALLOW_NON_LOOPBACK_ENV,
    BindAddress,
    NonLoopbackListenError,
    Resolver,
    non_loopback_allowed,
    refuse_non_loopback,
    resolve_bind_addresses,
)


def _resolver(table: dict[str, list[str]]) -> Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [])

    return resolve


def test_ip_literals_are_bound_as_given_without_resolving() -> None:
    # GIVEN IPv4 and IPv6 literals, and a resolver that knows nothing
    listen = [("127.0.0.1", 4566), ("::1", 4566)]

    # WHEN they are resolved
    addresses = resolve_bind_addresses(listen, resolver=_resolver({}))

    # THEN each is bound as written, IPv6 recognised as such
    assert [(a.host, a.port, a.is_ipv6) for a in addresses] == [
        ("127.0.0.1", 4566, False),
        ("::1", 4566, True),
    ]


def test_a_host_name_binds_every_address_it_resolves_to_once() -> None:
    # GIVEN localhost resolving to both loopback addresses, and listed twice
    resolver = _resolver({"localhost": ["127.0.0.1", "::1"]})

    # WHEN it is resolved
    addresses = resolve_bind_addresses([("localhost", 8000), ("127.0.0.1", 8000)], resolver)

    # THEN both addresses are bound, each once, remembering the name they came from
    assert [str(a) for a in addresses] == ["127.0.0.1:8000", "[::1]:8000"]
    assert {a.requested_as for a in addresses} == {"localhost"}


def test_a_host_name_resolving_to_nothing_is_refused() -> None:
    with pytest.raises(NonLoopbackListenError, match="resolves to nothing"):
        resolve_bind_addresses([("nowhere.invalid", 1)], resolver=_resolver({}))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert BindAddress(host, 1, host).is_loopback is loopback


def test_all_loopback_addresses_pass_the_policy() -> None:
    # GIVEN only loopback addresses
    addresses = [BindAddress("127.0.0.1", 1, "127.0.0.1"), BindAddress("::1", 1, "::1")]

    # WHEN the policy is checked without the opt-out
    exposed = refuse_non_loopback(addresses, allowed=False)

    # THEN nothing is reported
    assert exposed == []


def test_a_wildcard_address_is_refused_with_the_way_out_in_the_message() -> None:
    # GIVEN a wildcard address among loopback ones
    addresses = [
        BindAddress("127.0.0.1", 4566, "127.0.0.1"),
        BindAddress("0.0.0.0", 4566, "0.0.0.0"),
    ]

    # WHEN the policy is checked without the opt-out
    with pytest.raises(NonLoopbackListenError) as refused:
        refuse_non_loopback(addresses, allowed=False)

    # THEN the refusal names the address and the opt-out variable
    assert "0.0.0.0:4566" in str(refused.value)
    assert ALLOW_NON_LOOPBACK_ENV in str(refused.value)


def test_the_opt_out_lets_non_loopback_addresses_through_and_reports_them() -> None:
    # GIVEN a wildcard IPv6 address and the operator's opt-out
    addresses = [BindAddress("::", 4566, "::"), BindAddress("::1", 4566, "::1")]

    # WHEN the policy is checked
    exposed = refuse_non_loopback(addresses, allowed=True)

    # THEN the exposed address is returned for the caller to warn about
    assert [str(a) for a in exposed] == ["[::]:4566"]


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        ({}, False),
        ({ALLOW_NON_LOOPBACK_ENV: "0"}, False),
        ({ALLOW_NON_LOOPBACK_ENV: "true"}, False),
        ({ALLOW_NON_LOOPBACK_ENV: "1"}, True),
        ({ALLOW_NON_LOOPBACK_ENV: " 1 "}, True),
    ],
)
def test_only_the_value_1_opts_out(environ: dict[str, str], allowed: bool) -> None:
    assert non_loopback_allowed(environ) is allowed
