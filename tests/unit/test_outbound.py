"""Where outbound requests may go (ivr/outbound.py): every kind of address that is not public is
refused, in IPv4 and IPv6 and every way of writing one, unless the operator allows its network."""

from __future__ import annotations

import socket

import pytest

from ivr.outbound import ForbiddenAddress, OutboundPolicy

NONE_ALLOWED = OutboundPolicy()


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("169.254.169.254", "link-local"),  # the cloud's metadata service
    ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("240.0.0.1", "private"),  # reserved (class E): Python counts it private as well
    ("100.64.0.1", "not public"),  # carrier-grade NAT
    ("198.18.0.1", "private"),  # benchmarking
    ("2001:db8::1", "private"),  # documentation
    # IPv6 addresses that carry an IPv4 one: judged by the IPv4 address inside.
    ("::ffff:127.0.0.1", "loopback (127.0.0.1)"),
    ("::ffff:10.0.0.1", "private (10.0.0.1)"),
    ("::ffff:169.254.169.254", "link-local (169.254.169.254)"),
    ("64:ff9b::7f00:1", "loopback (127.0.0.1)"),  # NAT64
    ("2002:7f00:1::1", "loopback (127.0.0.1)"),  # 6to4
    ("2002:a00:1::1", "private (10.0.0.1)"),
])
def test_addresses_that_are_not_public_are_refused(address: str, kind: str) -> None:
    refusal = NONE_ALLOWED.address_refusal(address)
    assert refusal is not None and refusal.endswith(f"is {kind}")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888",
                                     "::ffff:8.8.8.8", "2002:808:808::1"])
def test_public_addresses_pass(address: str) -> None:
    assert NONE_ALLOWED.address_refusal(address) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://127.0.0.1:8080/hook", "https://10.1.2.3/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://[fe80::1%25eth0]/", "http://0.0.0.0/", "http://[::]/",
    "http://224.0.0.1/",
    # Names that always mean this machine.
    "http://localhost/", "http://LOCALHOST:8080/", "http://localhost./", "http://api.localhost/",
])
def test_urls_naming_addresses_that_are_not_public_are_refused_at_admission(url: str) -> None:
    assert NONE_ALLOWED.url_refusal(url) is not None, url


@pytest.mark.parametrize("url", [
    "http://2130706433/",  # decimal
    "http://0x7f000001/",  # hex
    "http://0177.0.0.1/",  # octal
    "http://0x7f.1/",  # mixed, short
    "http://127.1/",  # short
    "http://127.000.000.001/",  # leading zeros: octal to the C resolver
    "http://134744072/",  # 8.8.8.8, but not written as four decimal numbers either
])
def test_ipv4_in_other_forms_than_dotted_decimal_is_refused(url: str) -> None:
    refusal = OutboundPolicy.parse("127.0.0.0/8").url_refusal(url)
    assert refusal is not None and "four decimal numbers" in refusal, url


@pytest.mark.parametrize("url", ["https://merchant.example/hook", "http://8.8.8.8/x",
                                 "https://[2001:4860:4860::8888]/", "http://1.2.3.4.nip.io/",
                                 "http://123.example/"])
def test_public_addresses_and_names_pass_admission(url: str) -> None:
    # A name is judged when it is connected to: what it resolves to may change meanwhile.
    assert NONE_ALLOWED.url_refusal(url) is None


def test_the_operator_may_allow_networks() -> None:
    policy = OutboundPolicy.parse(" 127.0.0.0/8, ::1/128 ,10.20.0.0/16")
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "10.20.3.4"):
        assert policy.address_refusal(address) is None, address
    for address in ("10.21.0.1", "169.254.169.254", "192.168.0.1"):
        assert policy.address_refusal(address) is not None, address
    assert policy.url_refusal("http://localhost:8080/hook") is None
    assert OutboundPolicy.parse("").allowed == ()
    with pytest.raises(ValueError):
        OutboundPolicy.parse("not-a-network")


def test_the_socket_factory_refuses_before_any_socket_exists() -> None:
    """What aiohttp calls, after its DNS lookup, with each address it is about to connect to."""
    with pytest.raises(ForbiddenAddress, match="127.0.0.1 is loopback"):
        NONE_ALLOWED.socket_factory((socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                     ("127.0.0.1", 80)))
    with pytest.raises(ForbiddenAddress, match="is link-local"):
        NONE_ALLOWED.socket_factory((socket.AF_INET6, socket.SOCK_STREAM, 6, "",
                                     ("fe80::1", 80, 0, 2)))
    sock = NONE_ALLOWED.socket_factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80)))
    try:
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
    finally:
        sock.close()


def test_the_development_stack_lets_webhooks_reach_loopback_unless_told_otherwise(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` and the end-to-end suite (devstack.stack) start the ivr service with loopback
    allowed: their webhook receivers listen on 127.0.0.1. The environment still wins."""
    from devstack.stack import Stack
    from ivr.config import load_settings

    monkeypatch.delenv("VOICEPAY_OUTBOUND_ALLOWED_NETWORKS", raising=False)
    stack = Stack(load_settings(var_dir=tmp_path))
    allowed = stack.ivr_spec().env["VOICEPAY_OUTBOUND_ALLOWED_NETWORKS"]
    assert OutboundPolicy.parse(allowed).url_refusal("http://127.0.0.1:8099/voicepay") is None
    assert OutboundPolicy.parse(allowed).address_refusal("10.0.0.1") is not None
    monkeypatch.setenv("VOICEPAY_OUTBOUND_ALLOWED_NETWORKS", "")
    assert stack.ivr_spec().env["VOICEPAY_OUTBOUND_ALLOWED_NETWORKS"] == ""
