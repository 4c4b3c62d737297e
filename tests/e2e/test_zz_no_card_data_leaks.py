"""After the calls: no test PIN, CVV2, expiry, card or ID number, clear PIN field or PIN block
anywhere it must never be, in any form (tests/leakcheck.py).

Named test_zz_* so it runs after the other end-to-end tests in this folder, over everything they
left, read by the collectors of tests/leak_places.py (the same ones its proof,
tests/integration/test_leak_places.py, plants leaks into): every file under var/ (service logs,
Asterisk's messages and full debug log, spool, AstDB, the acquirer journal, webhook bodies, the
suite's output so far), the DTMF heard in every recording, every AMI and FastAGI stream of the
session and every phone leg's capture a test kept, every Redis key and value and an RDB dump, core dumps. The
PIN blocks looked for are those the run sent, read from the capture of the acquirer link.
(The whole test output is checked again by `make test` after pytest exits: see the Makefile.)
"""

from __future__ import annotations

import pytest
import redis

from tests.leak_places import every_place, pin_blocks_in_capture, scan_places
from tests.leak_secrets import all_secrets
from tests.leakcheck import SecretIndex

pytestmark = pytest.mark.e2e


def test_no_card_data_anywhere(stack):
    settings = stack.settings
    var = settings.var_dir
    links = stack.links_capture
    # Every phone leg's capture a test kept under var/ (<name>_agent_leg.pcapng and the like) is
    # read as packets by every_place: its SIP as text, its RTP key events as keys (not its audio).
    agent_legs = sorted(stack.work_dir.glob("*_agent_leg.pcapng"))
    captures = {links: {settings.ami_port: "AMI", settings.agi_port: "FastAGI"}}
    blocks = pin_blocks_in_capture(links, settings.acquirer_port)
    client = redis.Redis.from_url(settings.redis_url)
    places = list(every_place(var, client, captures, agi_port=settings.agi_port))
    client.close()
    # The check means something only if the places of real calls are there.
    by_name = {place.where: place.data for place in places}
    assert b"authorizing" in by_name["var/log/ivr.log"]
    assert b"DEBUG[" in by_name["var/asterisk/log/full"]  # Asterisk at full verbosity
    assert "var/asterisk/spool/astdb.sqlite3" in by_name  # this Asterisk's own AstDB is read
    assert any(where.startswith("AMI traffic") and b"Response: Success" in data
               for where, data in by_name.items())
    assert any(where.startswith("FastAGI traffic") and b"agi_network_script" in data
               for where, data in by_name.items())
    assert any(where.startswith("Redis ") and b"pay_" in data for where, data in by_name.items())
    for leg in agent_legs:  # every agent leg kept was read for its SIP and its key events
        assert any(where.startswith("phone leg SIP") and leg.name in where for where in by_name)
    assert blocks, "no PIN block read from the acquirer link: nothing to look for"
    leaks = scan_places(places, SecretIndex.of(all_secrets(blocks)))
    assert [str(leak) for leak in leaks] == []
