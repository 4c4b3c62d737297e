"""Talk-through one-line payments end to end (issue 12): the caller keys the PIN (a debit card)
or the expiry and the CVV2 (a credit card) while still talking to the agent, and the agent hears
the caller throughout but never a digit.

Both phones talk: the caller sends a steady 550 Hz tone as its voice, the agent 1800 Hz (neither
is a DTMF frequency). Captured: everything Asterisk sends to the agent's SIP and RTP ports, and
the audio it sends to the caller. Checked for the secure capture (from the caller's switch into
the payment IVR to the result): each side heard the other's voice; the agent's leg carried no
telephone-event, no SIP INFO, no tone a Goertzel DTMF detector accepts, and nor does the agent's
call recording, which keeps running. The controls: keys shaped like the PIN (six digits, each
twice) keyed the same way before the payment, with secure capture off, reach the agent as
telephone-events, and keyed as in-band tones are found by the Goertzel detector in the agent's
audio and in the recording. Not the PIN itself: with secure capture off it does reach the agent,
and the leak scan (test_zz_no_card_data_leaks.py) rightly reads the agent's leg for it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.dtmf_detect import detect_dtmf, detect_dtmf_in, tone_level, ulaw_audio_in_packets
from tests.e2e.test_oneline_calls import (AGENT, SIPP_AGENT, _at, _back_with_the_agent,
                                          _capture, _marker, _order, _packets_to_agent,
                                          _recordings, _states, _stop,
                                          _when_the_agent_talks_to_the_caller, dtmf_sent_to_agent)
from tests.sipp.cues import Cues
from tests.sipp.dtmf_modes import DtmfMode, mode
from tests.sipp.scenario import Call, Callee, Key

pytestmark = pytest.mark.e2e

CALLER_HZ, AGENT_HZ = 550, 1800
CALLER_RTP_PORT = 16000  # stack.start_call's media port
# Keyed while bridged, secure capture off: repeated digits like the PIN, and no test
# card's PIN, CVV2 or expiry in any part of it.
CONTROL_KEYS = "774411"
# A voice is "heard" in a second of audio when its frequency is there at most 20 dB below the
# level it was sent at (-10 dBm0): far above leakage from the other tone or a prompt.
SENT_AMPLITUDE = 32767 * 10 ** ((-10 - 3.17) / 20)
HEARD_AMPLITUDE = SENT_AMPLITUDE / 10


def _each_second(packets, rtp_port: int, start: float, end: float) -> list[list[float]]:
    """The audio sent to ``rtp_port`` in each whole second from ``start`` to ``end``."""
    return [ulaw_audio_in_packets(packets, rtp_port=rtp_port, start=start + second,
                                  end=start + second + 1)
            for second in range(math.floor(end - start))]


def _seconds_heard(packets, rtp_port: int, start: float, end: float, hz: int) -> list[bool]:
    """For each whole second from ``start`` to ``end``: was ``hz`` in the audio sent to
    ``rtp_port`` in that second?"""
    return [bool(samples) and tone_level(samples, hz) >= HEARD_AMPLITUDE
            for samples in _each_second(packets, rtp_port, start, end)]


def _seconds_with_other_sound(packets, rtp_port: int, start: float, end: float,
                              hz: int) -> list[bool]:
    """For each whole second: was there sound besides the ``hz`` talker (a prompt, music)?
    What is left of the second's power once the tone's is taken out, against the level a voice
    is heard at."""
    other = []
    for samples in _each_second(packets, rtp_port, start, end):
        power = sum(x * x for x in samples) / len(samples) if samples else 0.0
        other.append(power - tone_level(samples, hz) ** 2 / 2 > HEARD_AMPLITUDE ** 2 / 2)
    return other


def _seconds(heard: list[bool]) -> str:
    return "".join("+" if h else "." for h in heard)


@dataclass(frozen=True)
class Field:
    """One field the caller keys in the secure capture: the IVR's question (the prompt, also the
    SIPp cue), and what the caller keys to it. ``label`` names the field in the scenario file."""
    prompt: str
    digits: str
    label: str


def _pin(card) -> list[Field]:
    return [Field("enter_pin", card.pin + "#", "PIN")]


def _expiry_and_cvv2(card) -> list[Field]:
    expiry_mmyy = card.expiry[2:] + card.expiry[:2]  # the card book says YYMM, callers MMYY
    return [Field("enter_expiry", expiry_mmyy, "expiry"), Field("enter_cvv2", card.cvv2, "CVV2")]


def _talked_through(stack, name: str, amount: str, mobile: str, dtmf: DtmfMode, card,
                    fields: list[Field]) -> None:
    via = dtmf.keyed_via
    agent_capture, caller_capture, caller_said = (
        stack.work_dir / f"{name}_{leg}.pcapng" for leg in ("agent_leg", "caller_leg", "caller_said"))
    captures = [_capture(agent_capture, SIPP_AGENT),
                _capture(caller_capture, bpf=f"udp dst port {CALLER_RTP_PORT}"),
                _capture(caller_said, bpf=f"udp src port {CALLER_RTP_PORT}")]
    try:
        agent = stack.agent(Callee(f"{name}_agent", ring_ms=300, bye_timeout_ms=150000,
                                   voice_hz=AGENT_HZ), AGENT)
        cues = Cues()
        caller = stack.start_call(Call(name, "8100", [
            # Secure capture off, bridged with the agent: the controls.
            Key(CONTROL_KEYS, cue="control", label=f"control keys by {via}, secure capture off",
                via=via),
            Key(CONTROL_KEYS, cue="control tones", label="control keys as tones, capture off",
                via="inband"),
            Key("1", cue="menu", label=f"1 to pay by {via}", via=via),
            *(Key(field.digits, cue=field.prompt, label=f"{field.label} by {via}", via=via)
              for field in fields),
        ], hang_up_on_cue="back with the agent", voice_hz=CALLER_HZ), cues=cues,
            caller_ip=dtmf.caller_ip)
        _when_the_agent_talks_to_the_caller(stack)
        bridged = time.time()
        cues.send("control")
        assert stack.wait_until(lambda: dtmf_sent_to_agent(
            _packets_to_agent(agent_capture), 0, time.time())["telephone_events"] > 0, 15)
        cues.send("control tones")
        assert stack.wait_until(lambda: len(detect_dtmf_in(ulaw_audio_in_packets(
            _packets_to_agent(agent_capture), rtp_port=SIPP_AGENT.rtp_port, start=0,
            end=time.time()))) >= len(CONTROL_KEYS), 15)

        journal_before = len(stack.journal())
        status, payment = stack.merchant_request(
            "POST", "/v1/payments", _order(card, amount, mobile, mode="talk-through"))
        assert status == 201, payment
        assert payment["oneline_style"] == "talk-through"
        marker = _marker(payment)
        stack.wait_for_prompt(marker, "confirm_menu")
        cues.send("menu")
        for field in fields:
            stack.wait_for_prompt(marker, field.prompt)
            cues.send(field.prompt)
        final = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned",
                                               "refused"}, timeout=90)
        assert final["status"] == "approved", final["history"]
        # Approved at the first try: one authorization, so what was keyed was right at once.
        assert [e["response_code"] for e in stack.journal()[journal_before:]] == ["00"]
        _back_with_the_agent(stack, cues, caller, agent)
        time.sleep(1)
    finally:
        for capture in captures:
            _stop(capture)  # also when an assertion above fails: no tshark left running

    assert _states(final) == [
        "created", "risk_passed", "answered", "confirmed", "pin_entry", "authorizing", "approved"]
    # The recording was never paused: talk-through has nothing to hide in it.
    assert not [h for h in final["history"] if h.get("event", "").startswith("recording")]
    secure, done = _at(final, "answered"), _at(final, "approved")
    to_agent, to_caller = _packets_to_agent(agent_capture), _packets_to_agent(caller_capture)
    said = _packets_to_agent(caller_said)
    caller_said.unlink()  # the caller's own keys as sent (the PIN): not a place to keep them
    asterisk_rtp_port = max({port for _, port, _ in said}, key=[p for _, p, _ in said].count)

    # Two-way voice during the secure capture: each second, each side heard the other. The agent
    # talks throughout; the caller's SIPp sends no voice while it plays a key's capture, so the
    # agent must hear the caller in every second the caller talked (each key is muted by design).
    caller_heard = _seconds_heard(to_caller, CALLER_RTP_PORT, secure, done, AGENT_HZ)
    caller_talked = _seconds_heard(said, asterisk_rtp_port, secure, done, CALLER_HZ)
    agent_heard = _seconds_heard(to_agent, SIPP_AGENT.rtp_port, secure, done, CALLER_HZ)
    print(f"\n{name}: secure capture {done - secure:.1f} s; caller heard the agent "
          f"{_seconds(caller_heard)}; caller talked {_seconds(caller_talked)}; agent heard the "
          f"caller {_seconds(agent_heard)}")
    assert len(caller_heard) >= 3 and all(caller_heard), caller_heard
    assert sum(caller_talked) >= 3
    assert all(heard for talked, heard in zip(caller_talked, agent_heard) if talked), agent_heard
    # The prompts were played to the caller only: the agent heard nothing but the caller's voice.
    # The control: the same measure finds nothing but the agent's voice in what the caller
    # heard while bridged, and more (the prompts) while the caller was in the payment IVR.
    other_to_caller_bridged = _seconds_with_other_sound(to_caller, CALLER_RTP_PORT, bridged,
                                                        secure - 0.5, AGENT_HZ)
    other_to_caller = _seconds_with_other_sound(to_caller, CALLER_RTP_PORT, secure, done,
                                                AGENT_HZ)
    other_to_agent = _seconds_with_other_sound(to_agent, SIPP_AGENT.rtp_port, secure, done,
                                               CALLER_HZ)
    print(f"{name}: other sound to the caller bridged {_seconds(other_to_caller_bridged)}, in "
          f"the capture {_seconds(other_to_caller)}; to the agent {_seconds(other_to_agent)}")
    assert other_to_caller_bridged and not any(other_to_caller_bridged)
    assert sum(other_to_caller) >= 3
    assert not any(other_to_agent), other_to_agent

    # Nothing of the keypad reached the agent's leg while the caller keyed ...
    during = dtmf_sent_to_agent(to_agent, secure, done)
    assert during["rtp_packets"] > 50, during  # a live capture (the voice check says how live)
    assert during["telephone_events"] == 0 and during["sip_info"] == 0, during
    heard = ulaw_audio_in_packets(to_agent, rtp_port=SIPP_AGENT.rtp_port, start=secure, end=done)
    assert len(heard) > 8000 * 2 and detect_dtmf_in(heard) == []
    # ... though each check found the same PIN keyed before the payment, secure capture off.
    before = dtmf_sent_to_agent(to_agent, 0, secure - 0.2)
    assert before["telephone_events"] > 0 and before.get("sip_invite", 0) >= 1, before
    tones_before = detect_dtmf_in(ulaw_audio_in_packets(
        to_agent, rtp_port=SIPP_AGENT.rtp_port, start=0, end=secure - 0.2))
    assert [digit for _, digit in tones_before] == list(CONTROL_KEYS), tones_before

    # The agent's recording ran throughout: it holds the control's tones and no other digit.
    recordings = _recordings(stack)
    assert recordings and recordings[-1].stat().st_size > 8000 * 2 * (done - secure)
    assert [digit for _, digit in detect_dtmf(recordings[-1])] == list(CONTROL_KEYS)


@pytest.mark.parametrize("dtmf", [mode("rfc4733"), mode("info-dtmf-relay")],
                         ids=lambda m: m.name)
def test_talk_through_keeps_the_voices_and_hides_the_keys(stack, dtmf):
    mobile = {"rfc4733": "13800138221", "info-dtmf-relay": "13800138222"}[dtmf.name]
    card = find_test_card("approve")
    _talked_through(stack, f"talkthrough_{dtmf.name}", "44.00", mobile, dtmf, card, _pin(card))


@pytest.mark.parametrize("dtmf", [mode("rfc4733"), mode("info-dtmf-relay")],
                         ids=lambda m: m.name)
def test_talk_through_credit_card_expiry_and_cvv2(stack, dtmf):
    """A credit card's fields, the expiry and then the CVV2, keyed while talking: approved with
    them, and nothing of either reached the agent's leg or recording."""
    mobile = {"rfc4733": "13800138223", "info-dtmf-relay": "13800138224"}[dtmf.name]
    card = find_test_card("credit_approve")
    _talked_through(stack, f"talkthrough_credit_{dtmf.name}", "45.00", mobile, dtmf, card,
                    _expiry_and_cvv2(card))

