"""The SIP edge (Kamailio, sip-edge/kamailio.cfg) with real SIPp, real Asterisk, real callbacks.

Asterisk's PJSIP listens on 127.0.0.1 only, for the loopback test agents; everything else comes
through the edge on 127.0.0.2 (VOICEPAY_SIP_EDGE_ADDRESSES, set in conftest.py). The edge bans and
limits per source address, so each test sends from a loopback address of its own (127.0.0.4 and
up): a ban one test provokes never touches another.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from ivr.config import REPO_ROOT
from simulators.acquirer.testcards import find_test_card
from simulators.identity.registry import find_test_identity
from tests.e2e.conftest import SIP_EDGE_SETTINGS
from tests.sipp import edge_calls as edge

pytestmark = pytest.mark.e2e

SOFTPHONE = "13900000001"  # the demo softphone: digest auth, receives callbacks for its number


def softphone_password(stack, user: str) -> str:
    """The SIP password of ``user`` where this installation keeps it: generated per installation
    into var/keys/asterisk.json ("sip": account -> password) where that file exists, else written
    in asterisk-conf/pjsip.conf."""
    generated = stack.settings.keys_dir / "asterisk.json"
    if generated.exists():
        return json.loads(generated.read_text(encoding="utf-8"))["sip"][user]
    conf = (REPO_ROOT / "asterisk-conf" / "pjsip.conf").read_text(encoding="utf-8")
    found = re.search(rf"^\[{re.escape(user)}\]\(auth-base\)\n(?:.*\n)*?password = (\S+)$",
                      conf, re.MULTILINE)
    assert found, f"no password for {user} in pjsip.conf"
    return found.group(1)


def executed_lines(stack, since: int) -> list[str]:
    """Dialplan steps Asterisk ran since the mark (verbose 3 logs every one)."""
    return [line for line in stack._asterisk_log()[since:] if "Executing [" in line]


@pytest.mark.parametrize("from_user", ["6666", "6001", "7101", "13800138101", "loopback-tester",
                                       "cardholder"])
def test_nobody_gets_in_without_a_password_through_the_edge(stack, from_user):
    """No anonymous endpoint beyond loopback: an INVITE without credentials from 127.0.0.2,
    whether its From names nobody, a softphone with a password, a password-less test agent or
    test cardholder, or what the loopback test agent calls itself, is refused (401/403) and runs no
    dialplan. The control: the loopback test agent's INVITE from 127.0.0.1 straight to Asterisk
    is answered, and its dialplan steps show in the log this test reads."""
    mark = stack.asterisk_mark()
    refused = edge.run(stack.work_dir, f"anonymous_{from_user}",
                       edge.unauthenticated_invite(from_user, "9999"), source="127.0.0.2")
    assert refused in (["refused-401"], ["refused-403"]), refused
    assert executed_lines(stack, mark) == []

    answered = edge.run(stack.work_dir, f"loopback_{from_user}", edge.answered_call("9999"),
                        source="127.0.0.1", remote=edge.ASTERISK)
    assert answered == ["answered"]
    assert any("9999@from-cardholder" in line for line in executed_lines(stack, mark))


def test_a_softphone_calls_through_the_edge_with_its_password(stack):
    """The control for the refusals above: softphone 6001, with its password, calls through the
    edge from 127.0.0.4; the call is answered, runs the dialplan, the answer's SDP names the edge
    address (not Asterisk's loopback), and the ACK and BYE follow the route set."""
    directory = stack.work_dir / "softphone_calls"
    mark = stack.asterisk_mark()
    call = edge.authenticated_call("6001", softphone_password(stack, "6001"), "9999")
    assert edge.run(directory, "call", call, source="127.0.0.4") == ["answered"]
    assert edge.outcomes(directory / "call.log", "MEDIA") == ["c=IN IP4 127.0.0.2"]
    assert any("9999@from-cardholder" in line for line in executed_lines(stack, mark))


def test_a_softphone_registers_through_the_edge_and_takes_a_callback(stack):
    """Digest REGISTER through the edge from 127.0.0.4:5099; a callback to the softphone's number
    comes back through the edge (the Path it registered with) to that address, offers its media
    on the edge address the phone uses (not Asterisk's loopback), is answered, and the phone's
    BYE goes back along the dialog's route."""
    directory = stack.work_dir / "softphone"
    password = softphone_password(stack, SOFTPHONE)
    assert edge.run(directory, "register", edge.register(SOFTPHONE, password),
                    source="127.0.0.4", port=5099) == ["registered"]
    try:
        phone_scenario = edge.write(directory, "phone", edge.answering_phone())
        phone = subprocess.Popen(edge.sipp_command(phone_scenario, source="127.0.0.4", remote=None,
                                                   port=5099, timeout_s=120),
                                 cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        stack.started.append(phone)
        card = find_test_card("approve")
        status, payment = stack.merchant_request("POST", "/v1/payments", {
            "merchant_order_id": f"EDGE-{phone.pid}", "amount": "12.00",
            "description": "Phone bill", "card_number": card.pan, "cardholder_name": "Zhang San",
            "id_number": find_test_identity("demo").id_number, "mobile": SOFTPHONE, "mode": "callback",
            "language": "zh"})
        assert status == 201, payment
        assert phone.wait(timeout=120) == 0
        assert edge.outcomes(directory / "phone.log") == ["answered-and-hung-up"]
        assert edge.outcomes(directory / "phone.log", "MEDIA") == ["c=IN IP4 127.0.0.2"]
        payment = stack.wait_for(payment["id"], {"abandoned", "failed", "expired", "approved"})
        assert "answered" in [h["state"] for h in payment["history"]], payment["history"]
    finally:
        assert edge.run(directory, "unregister", edge.register(SOFTPHONE, password, expires=0),
                        source="127.0.0.4", port=5099) == ["registered"]


def test_failed_registrations_ban_the_source_then_it_is_let_in_again(stack):
    """VOICEPAY_SIP_EDGE_BAN_AFTER wrong passwords from 127.0.0.5 and its next REGISTER, with the
    right password, goes unanswered, while 127.0.0.6 registers with that password at once; after
    VOICEPAY_SIP_EDGE_BAN_S 127.0.0.5 registers again."""
    directory = stack.work_dir / "ban"
    password = softphone_password(stack, SOFTPHONE)
    for attempt in range(int(SIP_EDGE_SETTINGS["VOICEPAY_SIP_EDGE_BAN_AFTER"])):
        assert edge.run(directory, f"wrong_{attempt}", edge.register(SOFTPHONE, "not-the-password"),
                        source="127.0.0.5") == ["rejected"]
    right = edge.register(SOFTPHONE, password)
    assert edge.run(directory, "banned", right, source="127.0.0.5") == ["unanswered"]
    assert edge.run(directory, "other_source", right, source="127.0.0.6") == ["registered"]
    assert any("edge: 127.0.0.5 banned" in line
               for line in (stack.settings.var_dir / "log" / "sip-edge.log").read_text().splitlines())
    # Each unanswered try takes its 3 s timeout: the ban (5 s) runs out within a few tries.
    assert stack.wait_until(
        lambda: edge.run(directory, "after_ban", right, source="127.0.0.5") == ["registered"],
        timeout=int(SIP_EDGE_SETTINGS["VOICEPAY_SIP_EDGE_BAN_S"]) + 30)
    assert edge.run(directory, "unregister", edge.register(SOFTPHONE, password, expires=0),
                    source="127.0.0.5") == ["registered"]


def test_legitimate_calls_complete_under_an_invite_and_register_flood(stack):
    """An INVITE flood and a REGISTER flood from 127.0.0.2 through the edge (600 a second each)
    while 20 calls go from the loopback test agent to Asterisk: every call is answered,
    the flood outlasts them, and the edge keeps almost all of it from Asterisk (pike)."""
    directory = stack.work_dir / "flood"
    edge_log = stack.settings.var_dir / "log" / "sip-edge.log"
    mark = stack.asterisk_mark()
    edge_mark = len(edge_log.read_text())

    def edge_noticed() -> None:
        assert stack.wait_until(
            lambda: "request rate over the limit from 127.0.0.2" in edge_log.read_text()[edge_mark:],
            15)

    outcome = edge.calls_under_flood(directory, flood_target=edge.EDGE, rate=600, calls=20, call_rate=4, flood_started=edge_noticed)
    assert outcome.flood_outlasted_calls
    assert outcome.answered == outcome.placed == 20
    # The flood's INVITEs come from user "flood"; those the edge let through, Asterisk logs as
    # failed from the relay address.
    reached = [line for line in stack._asterisk_log()[mark:]
               if "sip:flood@" in line and "127.0.0.3" in line]
    assert len(reached) < outcome.flood_requests // 2 * 0.05, len(reached)
