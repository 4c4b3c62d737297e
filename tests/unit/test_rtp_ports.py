"""Asterisk's RTP port range (asterisk-conf/rtp.conf, issue 11): wide enough for the load the
platform is sized for, clear of the ports the tests' phones use and of the kernel's ephemeral
ports."""

from __future__ import annotations

import configparser
from pathlib import Path

from ivr.config import REPO_ROOT

# Issue 11's goal: 20 calls/s of the 39-s self-service call, about 780 at once; a one-line
# payment holds two legs. Each channel's audio takes two ports (RTP, RTCP).
GOAL_CHANNELS = 2 * 780
# Fixed ports the test phones and SIPp bind on this machine (tests/e2e/conftest.py,
# tests/sipp/dtmf_modes.py, tests/sipp/edge_calls.py, tests/e2e/test_softphones.py, ...).
TEST_MEDIA_PORTS = range(16000, 19000)
LINUX_EPHEMERAL_START = 32768  # net.ipv4.ip_local_port_range's default


def rtp_ports() -> range:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), comment_prefixes=(";",))
    parser.read(REPO_ROOT / "asterisk-conf" / "rtp.conf")
    general = parser["general"]
    return range(int(general["rtpstart"]), int(general["rtpend"]) + 1)


def test_the_range_carries_the_goal_with_room_to_spare():
    assert len(rtp_ports()) // 2 >= 2 * GOAL_CHANNELS  # 500 calls (10000-10999) failed this


def test_the_range_is_clear_of_the_test_phones_and_the_kernels_ephemeral_ports():
    ports = rtp_ports()
    assert ports.start >= 1024
    assert ports.stop - 1 < LINUX_EPHEMERAL_START
    assert not set(ports) & set(TEST_MEDIA_PORTS)


def test_the_range_is_below_this_machines_ephemeral_ports():
    configured = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if configured.exists():  # Linux; elsewhere the default above stands
        assert rtp_ports().stop - 1 < int(configured.read_text().split()[0])
