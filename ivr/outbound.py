"""Where outbound requests to URLs someone else chose may go (SSRF): public addresses only.

A merchant names the URL its webhooks are posted to (``notify_url``). Without a check, that URL
would let a merchant make the platform post to itself (Redis, the AMI, the admin API on
loopback), to the cloud's metadata service (169.254.169.254) or to the private network behind
it. So an address is refused when it is unspecified, loopback, link-local, multicast, private,
reserved or otherwise not globally routable, for IPv4 and IPv6 alike, and an IPv6 address that
carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo) is
judged by the IPv4 address inside as well. The operator may allow networks anyway
(``outbound_allowed_networks``: the development stack's test receivers listen on loopback).

Checked twice:
- at admission (``url_refusal``): an IP address written in the URL, in any form the C resolver
  reads (``2130706433``, ``0177.0.0.1``, ``0x7f.1``: refused unless written as four decimal
  numbers), and ``localhost``; a host name is not looked up then, since its answer may change;
- at connection time (``guarded_connector``): aiohttp hands every address it is about to connect
  to, after its own DNS lookup, to the connector's socket factory, which refuses a forbidden
  one before any socket exists. The address checked is the address connected to, so a name
  that resolves to a public address at admission and to 127.0.0.1 later (DNS rebinding) is
  refused, and so is every IP literal (aiohttp does not ask a resolver for those).
Redirects are never followed by the callers (``allow_redirects=False``).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp

__all__ = ["OutboundPolicy", "ForbiddenAddress", "guarded_connector", "policy_from_setting",
           "connection_refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names that always mean this machine (RFC 6761), whatever a resolver says.
_LOCAL_NAMES = ("localhost", "localhost.")


class ForbiddenAddress(OSError):
    """A connection refused by the policy, before any socket was made. An ``OSError``, so that
    aiohttp reports it as the connection error it is (``ClientConnectorError.os_error``)."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is where packets go
    return None


def _kind(address: IPAddress) -> str | None:
    """What makes ``address`` not public, or None for a public address."""
    for kind, flag in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                       ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                       ("private", address.is_private), ("reserved", address.is_reserved)):
        if flag:
            return kind
    return None if address.is_global else "not public"


class OutboundPolicy:
    """Public addresses, plus the networks the operator allows."""

    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self.allowed = tuple(allowed)

    @classmethod
    def parse(cls, networks: str) -> OutboundPolicy:
        """From the setting: comma-separated CIDRs (``127.0.0.0/8, ::1/128``); empty: none."""
        return cls(ipaddress.ip_network(n.strip(), strict=False)
                   for n in networks.split(",") if n.strip())

    def _allowed(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.allowed)

    def address_refusal(self, address: IPAddress | str) -> str | None:
        """Why a connection to ``address`` is refused, or None if it may be made.

        >>> OutboundPolicy().address_refusal("::ffff:127.0.0.1")
        '::ffff:7f00:1 is loopback (127.0.0.1)'
        >>> OutboundPolicy.parse("127.0.0.0/8").address_refusal("127.0.0.1") is None
        True
        """
        address = ipaddress.ip_address(address)
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%")[0])
        inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if self._allowed(address) or (inner is not None and self._allowed(inner)):
            return None
        if inner is not None:
            # Packets go to the IPv4 address inside: that is the one to judge.
            kind = _kind(inner)
            return None if kind is None else f"{address} is {kind} ({inner})"
        kind = _kind(address)
        return None if kind is None else f"{address} is {kind}"

    def url_refusal(self, url: str) -> str | None:
        """Why ``url`` (an http(s) URL already checked for form) may not be posted to, as far as
        can be told without a DNS lookup; None if nothing is wrong with it yet."""
        host = (urlsplit(url).hostname or "").lower()
        if host in _LOCAL_NAMES or host.rstrip(".").endswith(".localhost"):
            return self.address_refusal("127.0.0.1") and f"{host} is this machine"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None:
            try:
                # What the C resolver would make of it: decimal, octal, hex, short forms.
                legacy = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                return None  # a name: judged at connection time, on the addresses it has then
            return (f"{host} is an IPv4 address ({legacy}) in another form than four decimal "
                    f"numbers")
        return self.address_refusal(address)

    def socket_factory(self, addr_info: tuple) -> socket.socket:
        """aiohttp's socket factory: called with each address it is about to connect to."""
        family, type_, proto, _, sockaddr = addr_info
        refusal = self.address_refusal(sockaddr[0])
        if refusal is not None:
            raise ForbiddenAddress(f"outbound address refused: {refusal}")
        return socket.socket(family=family, type=type_, proto=proto)


@functools.lru_cache(maxsize=8)
def policy_from_setting(networks: str) -> OutboundPolicy:
    """The policy of a settings value, parsed once."""
    return OutboundPolicy.parse(networks)


def guarded_connector(policy: OutboundPolicy) -> aiohttp.TCPConnector:
    """A connector that connects only where ``policy`` allows, checked on each address at
    connection time (after DNS). Proxies from the environment are not used by aiohttp sessions
    unless ``trust_env``; ours never set it."""
    return aiohttp.TCPConnector(socket_factory=policy.socket_factory)


def connection_refusal(exc: BaseException) -> str | None:
    """The policy's reason if ``exc`` (from an aiohttp request) is a refused connection.

    With several addresses, aiohappyeyeballs combines their errors into one ``OSError``, whose
    text keeps each refusal's."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, ForbiddenAddress):
        return str(os_error)
    if isinstance(os_error, OSError) and "outbound address refused" in str(os_error):
        return str(os_error)
    return None
