"""Codecs and networks, through real Asterisk (issue 9): G.722 and G.711 offered in any order,
prompts played without transcoding, SIP over TCP and TLS, a caller holding mid-payment, a
callback answered with early media, and a phone behind NAT registering through the edge.

Self-service callers key each entry when the test has seen the IVR ask for it (SIPp 3PCC cues,
tests/e2e/test_dialplan_lines.py's top_up_on_cues).
"""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from devstack.asterisk_sandbox import AsteriskSandbox, ensure_rootfs
from devstack.sip_tls import ensure_sip_tls
from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_callback_calls import finish, order, submit
from tests.e2e.test_dialplan_lines import SELF_SERVICE, heard, top_up_on_cues
from tests.e2e.test_sip_edge import SOFTPHONE, softphone_password
from tests.e2e.test_softphones import softphone
from tests.sipp import callback_calls as phone
from tests.sipp import edge_calls as edge
from tests.sipp.scenario import PAYLOAD_TYPES
from tests.sipp.tls_register import register_over_tls

pytestmark = pytest.mark.e2e

# The format Asterisk names a codec by (its log's "Playing '<file>.<format>'").
FORMAT = {"G722": "g722", "PCMU": "ulaw", "PCMA": "alaw"}
# Where the self-service caller (SIPp) takes its media (Stack.start_call's media_port).
CALLER_MEDIA_PORT = 16000


class RtpToCaller:
    """The payload type of every RTP packet Asterisk sends the caller's media port, as tshark
    sees it on the loopback: the codec the caller hears, on the wire. Only the numbers are kept
    (in ``directory``, outside var/: no audio, nothing for the leak scan)."""

    def __init__(self, stack, directory: Path) -> None:
        self._stack = stack
        self._out, self._err = directory / "rtp-to-caller.tsv", directory / "rtp-to-caller.err"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> RtpToCaller:
        argv = ["tshark", "-l", "-n", "-i", "lo", "-f", f"udp dst port {CALLER_MEDIA_PORT}",
                "-d", f"udp.port=={CALLER_MEDIA_PORT},rtp", "-T", "fields", "-e", "rtp.p_type"]
        with self._out.open("w") as out, self._err.open("w") as err:
            self._process = subprocess.Popen(argv, stdout=out, stderr=err,
                                             start_new_session=True)
        assert self._stack.wait_until(lambda: "Capturing on" in self._err.read_text(), 15), \
            self._err.read_text()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        self._process.wait(timeout=10)

    def payload_types(self) -> list[int]:
        return [int(line) for line in self._out.read_text().split()]


def _sandbox(stack) -> AsteriskSandbox:
    return stack.processes.asterisk if stack.processes else AsteriskSandbox(
        stack.settings, ensure_rootfs(stack.settings))


def _caller_channel_formats(stack) -> str:
    """``core show channel`` of the self-service caller's channel (from the loopback tester)."""
    sandbox = _sandbox(stack)
    rows = [line.split("!") for line in sandbox.cli("core show channels concise").splitlines()]
    callers = [row[0] for row in rows if row[0].startswith("PJSIP/loopback-tester-")]
    assert len(callers) == 1, rows
    return sandbox.cli(f"core show channel {callers[0]}")


@pytest.mark.parametrize(("codecs", "chosen"), [
    (("G722", "PCMU", "PCMA"), "G722"), (("PCMA", "G722", "PCMU"), "G722"),
    (("PCMU", "PCMA", "G722"), "G722"), (("PCMA", "PCMU"), "PCMU"), (("PCMA",), "PCMA")],
    ids=lambda value: "-".join(value) if isinstance(value, tuple) else value)
def test_a_caller_pays_in_the_codec_asterisk_prefers_and_hears_prompts_in_it(stack, tmp_path,
                                                                           codecs, chosen):
    """Whatever order the caller offers them in, Asterisk takes G.722 when offered, else µ-law,
    else A-law (pjsip.conf's allow order), and plays every prompt from the file in that codec
    (Asterisk's log names each file played). Looked at three ways: the channel while a prompt
    plays (``core show channel``: native, write and read formats the codec, no write or read
    transcoding), every RTP packet Asterisk sent the caller (that codec's payload type, nothing
    else), and the files played (all of the codec's format, goodbye last)."""
    channel: list[str] = []

    def look_at_the_channel(prompt: str) -> None:
        if prompt == "enter_card":
            channel.append(_caller_channel_formats(stack))

    mobile = f"138000092{len(codecs)}{PAYLOAD_TYPES[codecs[0]]}"
    with RtpToCaller(stack, tmp_path) as rtp:
        payment, mark = top_up_on_cues(stack, f"offers_{'_'.join(codecs)}", "8000", mobile,
                                       codecs=codecs, on_prompt=look_at_the_channel)
    assert payment["status"] == "approved"
    prompts = heard(stack, mark)
    assert prompts and prompts[-1].stem == "goodbye"
    assert {p.suffix for p in prompts} == {f".{FORMAT[chosen]}"}, prompts
    shown = channel[0]
    for line in (rf"NativeFormats:\s+\({FORMAT[chosen]}\)", rf"WriteFormat:\s+{FORMAT[chosen]}\b",
                 rf"ReadFormat:\s+{FORMAT[chosen]}\b", r"WriteTranscode:\s+No",
                 r"ReadTranscode:\s+No"):
        assert re.search(line, shown), (line, shown)
    sent = rtp.payload_types()
    assert sent and set(sent) == {PAYLOAD_TYPES[chosen]}, sorted(set(sent))


def test_a_caller_over_tcp_pays(stack):
    """SIPp with -t t1 (TCP only, one connection to 127.0.0.1:5060): the INVITE, the keys'
    dialog, and Asterisk's BYE when the IVR hangs up, which SIPp waits for and answers before it
    exits 0 (top_up_on_cues checks). The BYE once never left Asterisk: every endpoint was pinned
    to the UDP transport (pjsip.conf, tests/unit/test_sip_edge.py)."""
    payment, _ = top_up_on_cues(stack, "over_tcp", "8000", "13800009224", transport="tcp")
    assert payment["status"] == "approved"


def test_a_softphone_registered_over_tcp_pays_and_is_hung_up_on(stack):
    """baresip registers as 6001 straight to Asterisk over TCP (127.0.0.1:5060: the edge relays
    UDP only, README "SIP over TCP and TLS"), digest auth, its Contact its own TCP listener;
    dials 8000 over TCP and keys each entry when asked: approved. Then the IVR hangs up and
    Asterisk's BYE reaches the phone: the call ends there (CALL_CLOSED), as a user sees it."""
    card = find_test_card("approve")
    mobile = "13800009226"
    before, mark = stack.payment_ids(), stack.asterisk_mark()
    with softphone(stack, "baresip", "6001", "over_tcp", edge="127.0.0.1",
                   transport="tcp") as caller:
        # The registrar's record in full (``pjsip show contacts`` cuts the URI short).
        contacts = _sandbox(stack).cli("database show registrar/contact")
        assert re.search(r'"uri":"sip:6001[^"@]*@127\.0\.0\.20:5094;transport=tcp"', contacts,
                         re.IGNORECASE), contacts
        caller.dial("8000")
        caller.wait_connected()
        for prompt, keys in [("enter_mobile", mobile), ("amount_menu", "1"),
                             ("enter_card", card.pan + "#"), ("enter_pin", card.pin + "#")]:
            stack.wait_for_prompt(SELF_SERVICE, prompt, since=mark)
            caller.keys(keys)
        payment = stack.wait_for(stack.new_payment(mobile, before)["id"],
                                 {"approved", "declined", "failed", "abandoned"})
        caller.wait_ended(timeout=90)
    assert payment["status"] == "approved", payment["history"]
    assert [p.stem for p in heard(stack, mark)][-1] == "goodbye"


def test_a_caller_who_holds_and_unholds_mid_payment_still_pays(stack):
    """Asked for the PIN, the caller puts the call on hold (re-INVITE a=sendonly, answered
    recvonly) and takes it off (a=sendrecv, answered sendrecv), SIPp checking each answer; the
    PIN keyed after that is read and the payment approved, with the PIN asked once."""
    payment, mark = top_up_on_cues(stack, "hold_unhold", "8000", "13800009225",
                                   hold_before_pin=True)
    assert payment["status"] == "approved"
    assert [h["state"] for h in payment["history"]] == ["created", "pin_entry", "authorizing",
                                                        "approved"]
    assert [p.stem for p in heard(stack, mark)].count("enter_pin") == 1


def test_a_callback_answered_with_early_media_then_200_pays_and_hears_g722(stack):
    """The cardholder's phone answers the callback with 183 Session Progress and SDP (early
    media), then 200, in G.722 (Asterisk offers G.722 first): the payment goes through, and
    every prompt, the merchant's name synthesized at run time included, plays from its .g722."""
    card = find_test_card("approve")
    number = "13800138101"
    callee = dataclasses.replace(
        phone.pays_with_pin("cb_early_media_g722", [card.pin], language="zh",
                            amount_minor=8800), early_media=True, codecs=("G722",))
    process = stack.phone(callee, number)
    payment = submit(stack, order(number, card))
    assert process.wait(timeout=120) == 0, finish(process)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved"
    assert "answered" in [h["state"] for h in payment["history"]]
    played = [PurePosixPath(p) for p in stack.prompts_played(f"voicepay callback {payment['id']}")]
    assert played and played[1].parent.name == "voicepay-names", played
    assert {p.suffix for p in played} == {".g722"}, played


def test_a_tls_register_with_the_development_certificate(stack):
    """A REGISTER over TLS to 127.0.0.1:5061, trusting only the certificate generated at first
    start (host name checked): challenged, then registered, the Contact kept with
    transport=tls; then unregistered. The control: a wrong password is refused."""
    password = softphone_password(stack, "6002")
    cafile = ensure_sip_tls(stack.settings).cert
    registered = register_over_tls("6002", password, cafile)
    try:
        assert registered.statuses == [401, 200], registered
        assert "transport=tls" in registered.contact.lower(), registered
        assert registered.tls_version in {"TLSv1.2", "TLSv1.3"}
        contacts = _sandbox(stack).cli("pjsip show contacts")
        assert re.search(r"6002/sip:6002@127\.0\.0\.1:\d+;transport=tls", contacts), contacts
    finally:
        assert register_over_tls("6002", password, cafile, expires=0).statuses == [401, 200]
    assert register_over_tls("6002", "not-the-password", cafile).statuses == [401, 401]


def test_a_phone_behind_nat_registers_a_contact_it_cannot_be_reached_at_and_still_rings(stack):
    """A phone behind NAT registers through the edge from 127.0.0.7:5098 with a Contact naming
    its private address, 192.0.2.44:5060, where no packet can reach it. Asterisk keeps that
    Contact as sent (rewrite_contact = no) and the edge's Path keeps where the REGISTER came
    from (rport: the packet's source), so the callback to its number reaches 127.0.0.7:5098 and
    is answered."""
    directory = stack.work_dir / "behind_nat"
    password = softphone_password(stack, SOFTPHONE)
    assert edge.run(directory, "register", edge.register(SOFTPHONE, password,
                                                         contact="192.0.2.44:5060"),
                    source="127.0.0.7", port=5098) == ["registered"]
    try:
        contacts = _sandbox(stack).cli("pjsip show contacts")
        assert f"{SOFTPHONE}/sip:{SOFTPHONE}@192.0.2.44:5060" in contacts, contacts
        phone_scenario = edge.write(directory, "phone", edge.answering_phone())
        answering = subprocess.Popen(edge.sipp_command(phone_scenario, source="127.0.0.7",
                                                       remote=None, port=5098, timeout_s=120),
                                     cwd=directory, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        stack.started.append(answering)
        card = find_test_card("approve")
        payment = submit(stack, order(SOFTPHONE, card))
        assert answering.wait(timeout=120) == 0
        assert edge.outcomes(directory / "phone.log") == ["answered-and-hung-up"]
        payment = stack.wait_for(payment["id"], {"abandoned", "failed", "expired", "approved"})
        assert "answered" in [h["state"] for h in payment["history"]], payment["history"]
    finally:
        assert edge.run(directory, "unregister",
                        edge.register(SOFTPHONE, password, expires=0, contact="192.0.2.44:5060"),
                        source="127.0.0.7", port=5098) == ["registered"]
