"""The SIP edge's command line and config (devstack/sip_edge.py, sip-edge/kamailio.cfg), and what
Asterisk's PJSIP config must keep for the edge to be the only way in from beyond loopback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from devstack import sip_edge
from ivr.config import REPO_ROOT, Settings

PJSIP = REPO_ROOT / "asterisk-conf" / "pjsip.conf"


def _defines(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-A")


def _listens(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-l"]


def test_the_settings_become_kamailios_defines_and_listen_addresses(monkeypatch):
    monkeypatch.setattr(sip_edge, "_lan_addresses", lambda: ["192.0.2.10", "127.0.0.2"])
    settings = Settings(sip_edge_addresses="127.0.0.2, lan", sip_edge_ban_after=4,
                        sip_edge_ban_s=7, sip_edge_fail_window_s=30, sip_edge_pike_density=12)
    argv = sip_edge.kamailio_command(settings, Path("/run/edge"))
    assert _listens(argv) == ["udp:127.0.0.2:5060", "udp:192.0.2.10:5060", "udp:127.0.0.3:5060"]
    assert _defines(argv) == {"RELAY_ADDRESS": '"127.0.0.3"', "PIKE_DENSITY": "12",
                              "BAN_AFTER": "4", "FAIL_WINDOW_S": "30", "BAN_S": "7"}
    assert argv[argv.index("-f") + 1] == str(sip_edge.CONFIG)


def test_the_edge_never_takes_asterisks_own_address():
    with pytest.raises(ValueError, match="127.0.0.1"):
        sip_edge.edge_addresses(Settings(sip_edge_addresses="127.0.0.2,127.0.0.1"))


def test_kamailio_accepts_the_config_with_the_stacks_command_line(tmp_path):
    """`kamailio -c` parses the config with the very defines and sockets the stack passes: a
    typo in a route or a define the config does not expect fails here, not at `make run`."""
    argv = sip_edge.kamailio_command(Settings(sip_edge_addresses="127.0.0.2"), tmp_path)
    checked = subprocess.run([*argv, "-c"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "config file ok" in checked.stderr


def test_udp_bound_reads_the_kernels_table():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert sip_edge.udp_bound("127.0.0.1", port)
        assert not sip_edge.udp_bound("127.0.0.2", port)
    assert not sip_edge.udp_bound("127.0.0.1", port)


def _pjsip() -> list[tuple[str, dict[str, str]]]:
    """pjsip.conf's sections with their templates applied, in order: (name, options). A name may
    appear more than once (an endpoint, its auth and its AOR all named 6001); templates (``!``)
    are left out, and any earlier section may serve as a template, as in Asterisk."""
    sections: list[tuple[str, dict[str, str]]] = []
    by_name: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in PJSIP.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            name, _, rest = line[1:].partition("]")
            parents = [p.strip() for p in rest.strip().strip("()").split(",") if p.strip()]
            current = {}
            for parent in parents:
                current.update(by_name.get(parent, {}))
            by_name[name] = current
            if "!" not in parents:
                sections.append((name, current))
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def test_asterisk_listens_on_loopback_only():
    transports = [s for _, s in _pjsip() if s.get("type") == "transport"]
    assert transports and all(t["bind"].startswith("127.0.0.1:") for t in transports)


def test_no_endpoint_is_pinned_to_one_transport():
    """A phone may call over UDP, TCP or TLS: an endpoint pinned to UDP (``transport =``) takes a
    TCP caller's INVITE, but Asterisk's own requests in that dialog (its BYE when the IVR hangs
    up) can never be sent (tests/e2e/test_codecs_and_networks.py's TCP caller)."""
    endpoints = {name: s for name, s in _pjsip() if s.get("type") == "endpoint"}
    assert {"loopback-tester", "6001", "7001"} <= set(endpoints)  # the check sees them
    assert {name: s["transport"] for name, s in endpoints.items() if "transport" in s} == {}


def test_no_endpoint_without_a_password_can_be_reached_by_its_name():
    """An endpoint without auth is reached only by address (identify_by = ip), and identifies
    match only this machine's test addresses (127.0.0.1; 127.0.0.2N, the test phones of each DTMF
    mode, tests/sipp/dtmf_modes.py), never the edge's relay address: never by a From user, which
    anyone can write, through the edge or otherwise."""
    sections = _pjsip()
    open_endpoints = {name: s for name, s in sections
                      if s.get("type") == "endpoint" and "auth" not in s}
    assert {"loopback-tester", "7101", "13800138101"} <= set(open_endpoints)  # the check sees them
    assert sorted(name for name, s in open_endpoints.items()
                  if s.get("identify_by", "username,ip") != "ip") == []
    assert [(s["endpoint"], s["match"]) for _, s in sections if s.get("type") == "identify"] == [
        ("loopback-tester", "127.0.0.1"), ("dtmf-info-caller", "127.0.0.21"),
        ("dtmf-inband-caller", "127.0.0.22"), ("dtmf-auto-caller", "127.0.0.23")]
    assert Settings().sip_edge_relay_address not in {"127.0.0.21", "127.0.0.22", "127.0.0.23"}
    with_auth = [name for name, s in sections if s.get("type") == "endpoint" and "auth" in s]
    assert "6001" in with_auth and "13900000001" in with_auth


def test_phones_behind_the_edge_get_media_on_every_address():
    """A phone reaches Asterisk through the edge, whose SDP sends the phone's RTP to the edge
    address (127.0.0.2, a LAN address): Asterisk binds a call's RTP to its endpoint's transport
    address (127.0.0.1), so an endpoint with a password (a phone's) names no transport, and its
    RTP listens on every address. Found by the softphone tests: with transport-udp named, no
    packet of a phone's audio or keys reached Asterisk."""
    phones = [(name, s) for name, s in _pjsip() if s.get("type") == "endpoint" and "auth" in s]
    assert {"6001", "6002", "7001", "7002", "13900000001"} <= {name for name, _ in phones}
    assert [name for name, s in phones if s.get("transport")] == []
