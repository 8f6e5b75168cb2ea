"""Where the worker may send things: outgoing destinations checked before and at connection time.

Webhook URLs and SMTP hosts come from the worker's configuration, and this module limits them
further. Loopback, link-local, private, unspecified, multicast, reserved and cloud metadata
addresses are refused unless ``[egress] allow_hosts`` lists them (an address, a CIDR range, or a
host name). The check runs twice:

- when the configuration is loaded (:func:`configured_host_problem`): a literal address or a known
  metadata host name that is not allowed is refused before any connection is ever tried;
- at every connection (:meth:`EgressGuard.resolve` and :meth:`EgressGuard.connect`): the host is
  resolved once, **every** address it resolves to is checked, and the connection is made to one
  of exactly those checked addresses, never by resolving the name a second time. A DNS answer
  that changes between the check and the connection (DNS rebinding) therefore cannot steer the
  worker to an address it did not check; a name resolving to any forbidden address is refused as
  a whole, even if some of its addresses are public.

A host *name* listed in ``allow_hosts`` is trusted with whatever it resolves to; an address or
range listed there allows exactly those addresses, whichever name resolves to them.

Refusals name the rule (``a loopback address``), never the destination: the message of an
:class:`EgressRefused` may reach a workflow's history through a failed notification, and what a
channel points at is the worker's business. No Temporal imports; nothing here reads settings.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``getaddrinfo``-shaped resolver: ``(host, port) -> addresses``. Tests never replace it; it is a
#: parameter so the guard does not reach for a global.
Resolver = Callable[[str, int], list[IPAddress]]

#: Addresses where cloud platforms serve instance metadata and credentials (AWS/GCP/Azure/OCI/
#: DigitalOcean IPv4 and AWS IPv6 IMDS, AWS ECS task metadata and DNS, Alibaba, Azure WireServer).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.169.253",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "168.63.129.16",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)
#: Host names that serve cloud metadata (compared lower-case, without a trailing dot).
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "metadata.packet.net",
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(Exception):
    """A destination the egress rules refuse. The message names the rule, not the destination."""


def normalise_host(host: str) -> str:
    """Lower-case, without brackets or a trailing dot: how hosts are compared."""
    return host.strip().strip("[]").rstrip(".").lower()


_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")


def parse_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one, else None.

    Besides the standard forms (``[::1]`` and ``fe80::1%eth0`` included), the legacy IPv4 forms
    the C resolver also accepts as addresses are recognised, so they cannot pass as names:
    ``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``, ``169.254.43518``.
    """
    text = normalise_host(host)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))  # parsing only, no lookup
        except OSError:
            return None
    return None


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address in any form :func:`parse_address` reads, or ``localhost``;
    brackets allowed) is a loopback address: where a server of ours may listen without
    authenticating its callers."""
    if not host:
        return False
    if normalise_host(host) == "localhost":
        return True
    address = parse_address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address is not None and address.is_loopback


def address_problem(address: IPAddress) -> str | None:
    """What makes ``address`` a forbidden destination (``"a loopback address"``), or None.

    IPv6 forms that carry an IPv4 address (mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64
    ``64:ff9b::/96``) are judged by the IPv4 address they carry as well.
    """
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(address):
            problem = address_problem(embedded)
            if problem is not None:
                return problem
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def parse_allowed(entry: str) -> IPNetwork | str:
    """One ``allow_hosts`` entry: an address or CIDR range (as a network), or a host name.

    Raises:
        ValueError: the entry is neither (the message says why, naming the entry).
    """
    text = normalise_host(entry)
    if not text:
        raise ValueError("an empty entry allows nothing")
    if "/" in text or parse_address(text) is not None:
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"'{entry}' is not an IP address or CIDR range") from None
    if not _is_host_name(text):
        raise ValueError(f"'{entry}' is not a host name, IP address or CIDR range")
    return text


def _is_host_name(text: str) -> bool:
    if len(text) > 253:
        return False
    labels = text.split(".")
    return all(
        0 < len(label) <= 63
        and not label.startswith("-")
        and not label.endswith("-")
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
        for label in labels
    )


def is_host_name_or_address(host: str) -> bool:
    """Whether ``host`` is syntactically a DNS name or an IP address (what a channel may name)."""
    return parse_address(host) is not None or _is_host_name(normalise_host(host))


@dataclass(frozen=True)
class EgressRules:
    """The parsed ``allow_hosts`` list: names trusted with their DNS, networks allowed as such."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> EgressRules:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            parsed = parse_allowed(entry)
            if isinstance(parsed, str):
                names.add(parsed)
            else:
                networks.append(parsed)
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return normalise_host(host) in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why connecting to ``address`` is refused, or None if it may be used."""
        if self.allows_address(address):
            return None
        return address_problem(address)

    def configured_host_problem(self, host: str) -> str | None:
        """What is wrong with ``host`` as a configured destination, judged without DNS.

        A literal address is judged now; a known metadata host name is refused now; any other
        name can only be judged when it is resolved (:class:`EgressGuard`).
        """
        if self.allows_name(host):
            return None
        address = parse_address(host)
        if address is not None:
            problem = self.address_refusal(address)
            return f"is {problem}" if problem else None
        if normalise_host(host) in METADATA_HOSTS:
            return "is a cloud metadata host"
        return None


def configured_host_problem(host: str, allow_hosts: Iterable[str] = ()) -> str | None:
    """:meth:`EgressRules.configured_host_problem` for a plain ``allow_hosts`` list."""
    return EgressRules.allowing(allow_hosts).configured_host_problem(host)


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True)
class EgressGuard:
    """Resolves destinations once, checks every address, and connects only to checked ones."""

    rules: EgressRules = field(default_factory=EgressRules)
    resolver: Resolver = system_resolver

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> EgressGuard:
        return cls(EgressRules.allowing(entries))

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses to connect to for ``host``.

        Raises:
            EgressRefused: the host is a metadata name, or any address it resolves to is
                forbidden and not allowed.
            OSError: the name does not resolve (``socket.gaierror``), which may pass.
        """
        problem = self.rules.configured_host_problem(host)
        if problem is not None:
            raise EgressRefused(f"the destination {problem}; list it in [egress] allow_hosts")
        literal = parse_address(host)
        addresses = [literal] if literal is not None else self.resolver(normalise_host(host), port)
        if not addresses:
            raise OSError("the destination's name resolved to no address")
        if self.rules.allows_name(host):
            return addresses
        for address in addresses:
            refusal = self.rules.address_refusal(address)
            if refusal is not None:
                raise EgressRefused(
                    f"the destination resolves to {refusal}; list it in [egress] allow_hosts "
                    "to allow it"
                )
        return addresses

    def connect(
        self,
        host: str,
        port: int,
        timeout: float | None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """A TCP connection to ``host``: to the first checked address that answers."""
        return connect_any(self.resolve(host, port), port, timeout, source_address)


def connect_any(
    addresses: Sequence[IPAddress],
    port: int,
    timeout: float | None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """Connect to the first of ``addresses`` that accepts; the last error if none does."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((str(address), port), timeout, source_address)
        except OSError as err:
            error = err
    raise error if error is not None else OSError("no address to connect to")
