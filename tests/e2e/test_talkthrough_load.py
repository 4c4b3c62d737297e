"""Twenty talk-through payments at once (issue 12): twenty callers, each talking to their own
agent, pay while still talking, and each agent hears their own caller and never a key.

The pairs are made by the contact centre's queue, one at a time (each load agent is in the
queue only while its caller rings, so the queue can only give that caller that agent). Every
caller talks in a voice of its own (a steady tone, twenty frequencies far from DTMF's) and keys
controls while bridged (secure capture off: RFC 4733 keys shaped like a PIN).
Then all twenty agents' systems ask for a talk-through payment at once, and the twenty callers
key "1" and the PIN as each is asked. Captured: everything Asterisk sends to the twenty agents.
Checked for each pair: approved at the first authorization with its own amount at the acquirer,
the agent heard its own caller (and no other) during the secure capture, no telephone-event,
no SIP INFO and no Goertzel-detectable tone on the agent's leg then, though the controls were
found on it, the agent's recording holds no key, and the agent was bridged back to its own
caller.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import pytest

from devstack.asterisk_sandbox import AsteriskSandbox, ensure_rootfs
from simulators.acquirer.testcards import find_test_card
from tests.dtmf_detect import detect_dtmf, detect_dtmf_in, tone_level, ulaw_audio_in_packets
from tests.e2e.test_oneline_calls import (AgentLeg, _at, _capture, _marker, _order,
                                          _packets_to_agent, _recordings, _states, _stop,
                                          dtmf_sent_to_agent)
from tests.e2e.test_talkthrough_calls import (AGENT_HZ, CONTROL_KEYS, HEARD_AMPLITUDE,
                                              _seconds, _seconds_heard)
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Callee, Key

pytestmark = pytest.mark.e2e

PAIRS = 20
# Each caller's voice: none near a DTMF frequency (697-941, 1209-1633 Hz) or the agents' voice
# (1800 Hz), 40 Hz or more apart, so one second of audio tells them apart.
CALLER_HZ = (300, 340, 380, 420, 460, 500, 540, 580, 620, 1000, 1040, 1080, 1120,
             2000, 2040, 2080, 2120, 2160, 2200, 2240)
QUEUE = "agents"  # asterisk-conf/queues.conf: what 8100 rings


@dataclass(frozen=True)
class Pair:
    """Caller ``n`` and its agent: 72NN answers on 127.0.0.1:52NN (asterisk-conf/pjsip.conf)."""
    n: int

    @property
    def leg(self) -> AgentLeg:
        return AgentLeg(f"72{self.n + 1:02d}", 5201 + self.n, 19000 + 10 * self.n)

    @property
    def caller_media_port(self) -> int:
        return 16100 + 10 * self.n

    @property
    def voice_hz(self) -> int:
        return CALLER_HZ[self.n]

    @property
    def mobile(self) -> str:
        return f"138001382{41 + self.n}"

    @property
    def amount(self) -> str:
        return f"{51 + self.n}.00"


def _bridges(sandbox: AsteriskSandbox) -> list[set[str]]:
    """The channels of each bridge in Asterisk now."""
    bridges: dict[str, set[str]] = {}
    for row in (line.split("!") for line in sandbox.cli("core show channels concise").splitlines()):
        if len(row) > 12 and row[12]:
            bridges.setdefault(row[12], set()).add(row[0])
    return list(bridges.values())


def _agent_in_a_bridge(sandbox: AsteriskSandbox, agent_id: str) -> bool:
    return any(len(b) == 2 and any(c.startswith(f"PJSIP/{agent_id}-") for c in b)
               for b in _bridges(sandbox))


def _bridged_back(sandbox: AsteriskSandbox, callers: dict[str, str]) -> bool:
    """Is each agent (by id) in a bridge of two with its own caller's channel (``callers``)?"""
    bridges = _bridges(sandbox)
    return all(any(caller in b and any(c.startswith(f"PJSIP/{agent_id}-") for c in b)
                   for b in bridges if len(b) == 2)
               for agent_id, caller in callers.items())


def test_twenty_talk_through_payments_at_once(stack):
    card = find_test_card("approve")
    pairs = [Pair(n) for n in range(PAIRS)]
    sandbox = AsteriskSandbox(stack.settings, ensure_rootfs(stack.settings))
    capture_file = stack.work_dir / "talkthrough_load_agent_legs.pcapng"
    capture = _capture_all(capture_file)
    cues = {pair.n: Cues() for pair in pairs}
    callers, agents = {}, {}
    try:
        # Pair by pair: the queue rings the one load agent in it, which answers its caller.
        for pair in pairs:
            agents[pair.n] = stack.uas(Callee(f"ttload_{pair.n}_agent", ring_ms=300,
                                              voice_hz=AGENT_HZ, bye_timeout_ms=200000),
                                       pair.leg.sip_port, pair.leg.rtp_port)
            member = f"PJSIP/{pair.leg.agent_id}"
            assert "Added" in sandbox.cli(f"queue add member {member} to {QUEUE}")
            try:
                callers[pair.n] = stack.start_call(Call(f"ttload_{pair.n}", "8100", [
                    Key(CONTROL_KEYS, cue="control", label="control keys, secure capture off"),
                    Key("1", cue="menu", label="1 to pay"),
                    Key(card.pin + "#", cue="enter_pin", label="PIN"),
                ], hang_up_on_cue="back with the agent", voice_hz=pair.voice_hz),
                    media_port=pair.caller_media_port, cues=cues[pair.n])
                assert stack.wait_until(
                    lambda: _agent_in_a_bridge(sandbox, pair.leg.agent_id), 30), pair
            finally:
                sandbox.cli(f"queue remove member {member} from {QUEUE}")

        # The controls, secure capture off, all pairs at once: keys by RFC 4733, which reach
        # each agent (the in-band check's control is tests/e2e/test_talkthrough_calls.py's:
        # twenty SIPps on a loaded machine do not play tones faithfully enough to count them).
        for pair in pairs:
            cues[pair.n].send("control")
        assert stack.wait_until(lambda: all(
            dtmf_sent_to_agent(packets, 0, time.time(), pair.leg)["telephone_events"] > 0
            for packets in [_packets_to_agent(capture_file, live=True)] for pair in pairs), 30)
        # Each caller talks on for 20 s after their controls. A SIPp key play that starts just as
        # a voice play ends can be lost (seen: two callers' "1" never reached the IVR), so the
        # payments are asked for once every caller is silent: nothing more sent to any agent.
        assert stack.wait_until(lambda: _every_caller_silent(capture_file, pairs), 60)

        # Twenty agents' systems ask for a talk-through payment at once.
        journal_before = len(stack.journal())
        with ThreadPoolExecutor(PAIRS) as pool:
            answers = list(pool.map(lambda pair: stack.merchant_request(
                "POST", "/v1/payments", _order(card, pair.amount, pair.mobile,
                                               mode="talk-through",
                                               agent_id=pair.leg.agent_id)), pairs))
        assert [status for status, _ in answers] == [201] * PAIRS, answers
        payments = {pair.n: payment for pair, (_, payment) in zip(pairs, answers)}
        _key_as_asked(stack, pairs, cues, payments)
        finals = {pair.n: stack.wait_for(payments[pair.n]["id"], {
            "approved", "declined", "failed", "abandoned", "refused"}, timeout=120)
            for pair in pairs}
        assert {n: f["status"] for n, f in finals.items()} == {n: "approved" for n in finals}

        # Each caller is bridged back to its own agent once its result has been read out.
        caller_channels = {pair.leg.agent_id: stack.channel_of(_marker(payments[pair.n]))
                           for pair in pairs}
        assert stack.wait_until(lambda: _bridged_back(sandbox, caller_channels), 90), \
            (caller_channels, _bridges(sandbox))
        for pair in pairs:
            cues[pair.n].send("back with the agent")
        for process in [*callers.values(), *agents.values()]:
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0, out[-2000:]
    finally:
        _stop(capture)
        for cue in cues.values():
            cue.close()

    # At the acquirer: one authorization per payment, approved, each with its own amount.
    journal = stack.journal()[journal_before:]
    for pair in pairs:
        final = finals[pair.n]
        assert _states(final) == ["created", "risk_passed", "answered", "confirmed", "pin_entry",
                                  "authorizing", "approved"], final["history"]
        assert (final["amount"], final["agent_id"]) == (pair.amount, pair.leg.agent_id)
        charged = [(e["mti"], e["response_code"], e["amount"]) for e in journal
                   if e.get("stan") == final["internal"]["stan"]]
        assert charged == [("0200", "00", int(Decimal(pair.amount) * 100))], (pair, charged)

    packets = _packets_to_agent(capture_file)
    for pair in pairs:
        _heard_only_its_caller_and_no_key(packets, pair, finals[pair.n])
    # The agents' recordings ran throughout, and hold no key.
    recordings = _recordings(stack)[-PAIRS:]
    assert len(recordings) == PAIRS
    for recording in recordings:
        assert detect_dtmf(recording) == [], recording


def _capture_all(path):
    """Capture what Asterisk sends to every load agent's SIP and RTP ports."""
    first, last = Pair(0).leg, Pair(PAIRS - 1).leg
    return _capture(path, bpf=f"udp dst portrange {first.sip_port}-{last.sip_port} or "
                              f"udp dst portrange {first.rtp_port}-{last.rtp_port}")


def _every_caller_silent(capture_file, pairs: list[Pair]) -> bool:
    """Has nothing been sent to any agent's RTP port for a second (bridged, an agent is sent
    only what its caller sends)?"""
    last: dict[int, float] = {}
    for at, port, _ in _packets_to_agent(capture_file, live=True):
        last[port] = max(last.get(port, 0.0), at)
    return all(time.time() - last.get(pair.leg.rtp_port, 0.0) > 1 for pair in pairs)


def _key_as_asked(stack, pairs: list[Pair], cues: dict[int, Cues], payments: dict) -> None:
    """Each caller keys "1" once asked to confirm and the PIN once asked for it, in whatever
    order the twenty IVRs ask."""
    asked = {pair.n: ["confirm_menu", "enter_pin"] for pair in pairs}
    cue_for = {"confirm_menu": "menu", "enter_pin": "enter_pin"}

    def progress() -> bool:
        for n, prompts in asked.items():
            if prompts and prompts[0] in stack.prompt_names(_marker(payments[n])):
                cues[n].send(cue_for[prompts.pop(0)])
        return not any(asked.values())

    assert stack.wait_until(progress, 120), {n: p for n, p in asked.items() if p}


def _heard_only_its_caller_and_no_key(packets, pair: Pair, final: dict) -> None:
    secure, done = _at(final, "answered"), _at(final, "approved")
    port = pair.leg.rtp_port
    # The agent heard its own caller during the secure capture, and no other caller.
    heard = _seconds_heard(packets, port, secure, done, pair.voice_hz)
    audio = ulaw_audio_in_packets(packets, rtp_port=port, start=secure, end=done)
    others = {hz: round(tone_level(audio, hz)) for hz in CALLER_HZ if hz != pair.voice_hz}
    print(f"agent {pair.leg.agent_id}: secure capture {done - secure:.1f} s, heard its caller "
          f"{_seconds(heard)}")
    assert sum(heard) >= 2, (pair, heard)
    assert all(level < HEARD_AMPLITUDE for level in others.values()), (pair, others)
    # Nothing of the keypad reached the agent's leg while the caller keyed ...
    during = dtmf_sent_to_agent(packets, secure, done, pair.leg)
    assert during["rtp_packets"] > 50, (pair, during)
    assert during["telephone_events"] == 0 and during["sip_info"] == 0, (pair, during)
    assert len(audio) > 8000 * 2 and detect_dtmf_in(audio) == [], pair
    # ... though the same check found the controls on it, keyed with secure capture off.
    before = dtmf_sent_to_agent(packets, 0, secure - 0.2, pair.leg)
    assert before["telephone_events"] > 0, (pair, before)
