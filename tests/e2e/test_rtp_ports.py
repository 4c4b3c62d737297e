"""The running Asterisk uses the RTP port range of asterisk-conf/rtp.conf (issue 11: 10000-10999
capped it at 500 calls); tests/unit/test_rtp_ports.py checks the range itself."""

from __future__ import annotations

import re

import pytest

from tests.unit.test_rtp_ports import rtp_ports

pytestmark = pytest.mark.e2e


def test_asterisk_runs_with_the_configured_rtp_range(stack):
    assert stack.processes is not None, "needs the stack the suite starts (its Asterisk CLI)"
    shown = stack.processes.asterisk.cli("rtp show settings")
    start = re.search(r"Port start:\s+(\d+)", shown)
    end = re.search(r"Port end:\s+(\d+)", shown)
    assert start and end, shown
    assert range(int(start.group(1)), int(end.group(1)) + 1) == rtp_ports()
