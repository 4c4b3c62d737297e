"""The SIP edge: Kamailio in front of Asterisk for everything beyond this machine's loopback.

Its routing is sip-edge/kamailio.cfg (why each check is there is said there). This module turns
the settings (VOICEPAY_SIP_EDGE_*) into Kamailio's command line: ``-l`` for every address it
listens on, ``-A`` for every number the config's ``#!ifndef`` defaults stand for, so the one
config serves `make run` and the tests' short bans. ``python -m devstack.sip_edge`` becomes that
Kamailio (exec), for the stack's supervisor and for systemd alike.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

from ivr.config import REPO_ROOT, Settings, load_settings

__all__ = ["CONFIG", "SIP_PORT", "edge_addresses", "kamailio_command", "runtime_dir", "udp_bound",
           "main"]

CONFIG = REPO_ROOT / "sip-edge" / "kamailio.cfg"
# Asterisk listens on 127.0.0.1:5060 (asterisk-conf/pjsip.conf); the edge on the same port elsewhere.
SIP_PORT = 5060


def _lan_addresses() -> list[str]:
    """Every global-scope IPv4 address of this host (what softphones on the LAN dial)."""
    answer = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"],
                            capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        return []
    return [info["local"] for link in json.loads(answer.stdout or "[]")
            for info in link.get("addr_info", []) if info.get("local")]


def edge_addresses(settings: Settings) -> list[str]:
    """The addresses the edge listens on, from VOICEPAY_SIP_EDGE_ADDRESSES ("lan" expanded);
    the relay address too, where Asterisk's requests and answers come back."""
    wanted: list[str] = []
    for item in (part.strip() for part in settings.sip_edge_addresses.split(",")):
        found = _lan_addresses() if item == "lan" else [item] if item else []
        wanted += [address for address in found if address not in wanted]
    for address in wanted:
        if ipaddress.ip_address(address) == ipaddress.ip_address("127.0.0.1"):
            raise ValueError("VOICEPAY_SIP_EDGE_ADDRESSES must not name 127.0.0.1: Asterisk's own")
    return [*wanted, settings.sip_edge_relay_address]


def runtime_dir(settings: Settings) -> Path:
    """Where Kamailio keeps its run-time files."""
    return settings.var_dir / "sip-edge"


def kamailio_command(settings: Settings, runtime_dir: Path) -> list[str]:
    """Kamailio in the foreground (the supervisor owns it), logging to stderr, small memory."""
    defines = {
        "RELAY_ADDRESS": f'"{settings.sip_edge_relay_address}"',
        "PIKE_DENSITY": settings.sip_edge_pike_density,
        "BAN_AFTER": settings.sip_edge_ban_after,
        "FAIL_WINDOW_S": settings.sip_edge_fail_window_s,
        "BAN_S": settings.sip_edge_ban_s,
    }
    listen = [arg for address in edge_addresses(settings)
              for arg in ("-l", f"udp:{address}:{SIP_PORT}")]
    return ["kamailio", "-f", str(CONFIG), "-DD", "-E", "-m", "32", "-M", "4",
            "-Y", str(runtime_dir), *listen,
            *(arg for name, value in defines.items() for arg in ("-A", f"{name}={value}"))]


def udp_bound(address: str, port: int) -> bool:
    """Is a UDP socket bound to ``address``:``port`` (the kernel's own table, /proc/net/udp)?"""
    packed = ipaddress.IPv4Address(address).packed[::-1].hex().upper()
    wanted = f"{packed}:{port:04X}"
    with open("/proc/net/udp", encoding="ascii") as table:
        return any(line.split()[1] == wanted for line in list(table)[1:])


def main() -> int:
    settings = load_settings()
    runtime = runtime_dir(settings)
    runtime.mkdir(parents=True, exist_ok=True)
    argv = kamailio_command(settings, runtime)
    os.execvp(argv[0], argv)
    return 1  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
