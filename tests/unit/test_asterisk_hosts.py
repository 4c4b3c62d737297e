"""The Asterisk sandbox's generated /etc/hosts (devstack/asterisk_sandbox.py, issue 11)."""

from __future__ import annotations

from devstack.asterisk_sandbox import NO_OWN_ADDRESS, ROOT_SERVER_A, hosts_text, own_address


def _entries(text: str) -> dict[str, str]:
    return {names: ip for ip, names in (line.split("\t") for line in text.splitlines()
                                        if line and not line.startswith("#"))}


def test_the_host_is_named_at_its_own_address_beside_localhost_and_the_root_server():
    entries = _entries(hosts_text("pbx-1", "192.0.2.10"))
    assert entries["pbx-1"] == "192.0.2.10"
    assert entries["localhost"] == "127.0.0.1"
    assert entries[ROOT_SERVER_A[1]] == ROOT_SERVER_A[0] == "198.41.0.4"


def test_a_host_without_an_own_address_is_named_at_debians_127_0_1_1():
    assert _entries(hosts_text("pbx-1", None))["pbx-1"] == NO_OWN_ADDRESS == "127.0.1.1"


def test_the_own_address_is_never_a_loopback_one():
    address = own_address()
    assert address is None or not address.startswith("127.")
