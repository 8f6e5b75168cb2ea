"""Egress rules: which destinations the worker may reach, judged from addresses, not from names."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from gatekeeper.egress import (
    EgressGuard,
    EgressRefused,
    EgressRules,
    IPAddress,
    address_problem,
    configured_host_problem,
    parse_allowed,
)


class TestForbiddenAddresses:
    """Loopback, link-local, private, unspecified, multicast, reserved and metadata addresses are
    forbidden, also when an IPv6 address carries one of them; public addresses are not."""

    @pytest.mark.parametrize(
        ("address", "problem"),
        [
            ("169.254.169.254", "a cloud metadata address"),
            ("fd00:ec2::254", "a cloud metadata address"),
            ("100.100.100.200", "a cloud metadata address"),
            ("168.63.129.16", "a cloud metadata address"),
            ("::ffff:169.254.169.254", "a cloud metadata address"),
            ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
            ("127.0.0.1", "a loopback address"),
            ("127.8.9.10", "a loopback address"),
            ("::1", "a loopback address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("2002:7f00:1::", "a loopback address"),
            ("169.254.1.1", "a link-local address"),
            ("fe80::1", "a link-local address"),
            ("0.0.0.0", "an unspecified address"),
            ("::", "an unspecified address"),
            ("224.0.0.1", "a multicast address"),
            ("10.1.2.3", "a private address"),
            ("172.16.0.1", "a private address"),
            ("192.168.1.1", "a private address"),
            ("fd12:3456::1", "a private address"),
            ("100.64.0.1", "not a public address"),
        ],
    )
    def test_forbidden(self, address: str, problem: str) -> None:
        assert address_problem(ipaddress.ip_address(address)) == problem

    @pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "8.8.8.8"])
    def test_public_addresses_pass(self, address: str) -> None:
        assert address_problem(ipaddress.ip_address(address)) is None


class TestAllowHosts:
    """``allow_hosts`` lists addresses, CIDR ranges and host names; anything else is refused."""

    def test_entries(self) -> None:
        rules = EgressRules.allowing(["127.0.0.1", "10.0.0.0/8", "Hooks.Internal.", "[::1]"])

        assert rules.names == frozenset({"hooks.internal"})
        assert rules.allows_address(ipaddress.ip_address("10.9.8.7"))
        assert rules.allows_address(ipaddress.ip_address("::1"))
        assert not rules.allows_address(ipaddress.ip_address("127.0.0.2"))
        assert rules.allows_name("hooks.internal")

    @pytest.mark.parametrize("entry", ["", "bad host", "10.0.0.0/33", "a..b", "-x.example"])
    def test_bad_entries_are_refused(self, entry: str) -> None:
        with pytest.raises(ValueError):
            parse_allowed(entry)


class TestAtConfigurationTime:
    """Literal addresses and known metadata host names are judged without DNS; other names wait
    for resolution."""

    @pytest.mark.parametrize(
        ("host", "problem"),
        [
            ("169.254.169.254", "is a cloud metadata address"),
            ("[fd00:ec2::254]", "is a cloud metadata address"),
            ("metadata.google.internal", "is a cloud metadata host"),
            ("METADATA.GOOGLE.INTERNAL.", "is a cloud metadata host"),
            ("169.254.169.254.", "is a cloud metadata address"),
            ("2852039166", "is a cloud metadata address"),  # legacy IPv4 forms are addresses
            ("0xa9fea9fe", "is a cloud metadata address"),
            ("0251.0376.0251.0376", "is a cloud metadata address"),
            ("0x7f000001", "is a loopback address"),
            ("deadbeef", None),
            ("127.0.0.1", "is a loopback address"),
            ("10.0.0.1", "is a private address"),
            ("hooks.example.org", None),
            ("localhost", None),  # a name: judged by what it resolves to, when it is used
            ("93.184.215.14", None),
        ],
    )
    def test_without_allow_hosts(self, host: str, problem: str | None) -> None:
        assert configured_host_problem(host) == problem

    def test_listed_hosts_are_allowed(self) -> None:
        assert configured_host_problem("127.0.0.1", ["127.0.0.0/8"]) is None
        assert (
            configured_host_problem("metadata.google.internal", ["metadata.google.internal"])
            is None
        )


def resolving_to(*addresses: str) -> EgressGuard:
    answer: list[IPAddress] = [ipaddress.ip_address(a) for a in addresses]

    def resolver(host: str, port: int) -> list[IPAddress]:
        return list(answer)

    return EgressGuard(EgressRules(), resolver)


class TestAtConnectionTime:
    """Every address a name resolves to is checked, and one forbidden address refuses the name;
    the connection goes to a checked address, never through a second lookup."""

    def test_localhost_is_refused_through_the_system_resolver(self) -> None:
        with pytest.raises(EgressRefused, match="resolves to a loopback address"):
            EgressGuard().resolve("localhost", 80)

    def test_one_forbidden_address_refuses_the_name(self) -> None:
        with pytest.raises(EgressRefused, match="a cloud metadata address"):
            resolving_to("93.184.215.14", "169.254.169.254").resolve("hooks.example.org", 443)

    def test_public_answers_pass(self) -> None:
        found = resolving_to("93.184.215.14").resolve("hooks.example.org", 443)

        assert found == [ipaddress.ip_address("93.184.215.14")]

    def test_an_allowed_name_is_trusted_with_its_answer(self) -> None:
        guard = EgressGuard(EgressRules.allowing(["localhost"]))

        assert all(a.is_loopback for a in guard.resolve("localhost", 80))

    def test_the_connection_goes_to_the_checked_address(self) -> None:
        # The resolver is asked once; the socket connects to what it answered.
        asked: list[str] = []
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        accepted: list[str] = []

        def accept() -> None:
            connection, peer = listener.accept()
            accepted.append(peer[0])
            connection.close()

        thread = threading.Thread(target=accept)
        thread.start()

        def resolver(host: str, port: int) -> list[IPAddress]:
            asked.append(host)
            return [ipaddress.ip_address("127.0.0.1")]

        guard = EgressGuard(EgressRules.allowing(["127.0.0.1"]), resolver)
        with guard.connect("hooks.example.org", port, timeout=5):
            thread.join(5)
        listener.close()

        assert asked == ["hooks.example.org"]
        assert accepted == ["127.0.0.1"]
