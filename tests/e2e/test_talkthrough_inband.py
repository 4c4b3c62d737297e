"""Talk-through with callers whose phones key in-band, the harder cases (issue 12): how much of
each key's tone reaches the agent when the caller talks over their keys, keys short tones, keys
quiet ones, or calls in A-law.

Each is measured as tests/e2e/test_talkthrough_calls.py measures the plain case, at the agent's
leg, to the millisecond, and held under the 20 ms below which an ITU-T Q.24 receiver must reject
a tone. A silent caller's line carries nothing but their keys, so every stretch of sound there
is what is left of a tone (sound_runs_in); a talking caller's carries their voice too (550 Hz),
so there the measure is the stretches in which a DTMF high-group tone is there (key_tone_runs_in:
every key has one, and a voice below 1 kHz leaves them alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.dtmf_detect import detect_dtmf_in, key_tone_runs_in, sound_runs_in, ulaw_audio_in_packets
from tests.e2e.test_oneline_calls import (SIPP_AGENT, _at, _back_with_the_agent, _capture,
                                          _packets_to_agent, _stop, dtmf_sent_to_agent)
from tests.e2e.test_talkthrough_calls import (CALLER_HZ, CONTROL_KEYS, Q24_REJECTED_BELOW_MS,
                                              _approved, _asked_for_the_pin, _keys_as_events,
                                              _talk_through_order, _talking)
from tests.sipp.dtmf_modes import mode
from tests.sipp.dtmf_pcap import InBand, play_duration_ms
from tests.sipp.scenario import Key

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Keypad:
    """A caller's in-band keypad: its tones' timing and sound, the codecs the phone offers, and
    whether the caller talks (between and under the keys) or is silent but for them."""
    name: str
    mobile: str
    amount: str
    tone_ms: int = 160
    gap_ms: int = 120
    sound: InBand = InBand()
    codecs: tuple[str, ...] = ("PCMU",)
    talking: bool = False

    def key(self, digits: str, cue: str, label: str) -> Key:
        return Key(digits, cue=cue, label=label, via="inband", tone_ms=self.tone_ms,
                   gap_ms=self.gap_ms, sound=self.sound)


KEYPADS = [
    Keypad("talking", "13800138262", "72.00", sound=InBand(talker_hz=CALLER_HZ), talking=True),
    Keypad("short", "13800138263", "73.00", tone_ms=60, gap_ms=60),
    Keypad("quiet", "13800138264", "74.00", sound=InBand(level_dbm0=-25)),
    Keypad("alaw", "13800138265", "75.00", codecs=("PCMA",)),
]


def _tone_runs(packets, keypad: Keypad, start: float, end: float) -> list[tuple[float, int]]:
    """The stretches of a key's tone the agent was sent between ``start`` and ``end``."""
    audio = ulaw_audio_in_packets(packets, rtp_port=SIPP_AGENT.rtp_port, start=start, end=end)
    if keypad.talking:
        return key_tone_runs_in(audio)
    return [(at, ms) for at, ms, _ in sound_runs_in(audio)]


@pytest.mark.parametrize("keypad", KEYPADS, ids=lambda k: k.name)
def test_talk_through_in_band_keys_of_every_shape_measured_at_the_agent(stack, keypad):
    card = find_test_card("approve")
    inband = mode("inband")
    agent_capture = stack.work_dir / f"talkthrough_inband_{keypad.name}_agent_leg.pcapng"
    capture = _capture(agent_capture)
    try:
        agent, cues, caller = _talking(stack, f"talkthrough_inband_{keypad.name}", [
            keypad.key(CONTROL_KEYS, "control", "control keys, secure capture off"),
            keypad.key("1", "menu", "1 to pay"),
            keypad.key(card.pin + "#", "enter_pin", "PIN"),
        ], hang_up_on_cue="back with the agent", caller_ip=inband.caller_ip,
            voice_hz=CALLER_HZ if keypad.talking else None, codecs=keypad.codecs)
        cues.send("control")
        # Bridged, secure capture off: Asterisk's detector reads each of these keys and sends it
        # to the agent as a telephone-event, so it does hear keys of this shape.
        assert stack.wait_until(lambda: _keys_as_events(
            _packets_to_agent(agent_capture)) == len(CONTROL_KEYS), 15)
        journal_before = len(stack.journal())
        payment = _talk_through_order(stack, card, keypad.amount, keypad.mobile)
        _asked_for_the_pin(stack, cues, payment)
        cues.send("enter_pin")
        final = _approved(stack, payment)
        _back_with_the_agent(stack, cues, caller, agent)
    finally:
        _stop(capture)
    # Approved at the first PIN: the detector read every key of it.
    assert [e["response_code"] for e in stack.journal()[journal_before:]] == ["00"]
    secure, done = _at(final, "answered"), _at(final, "approved")
    to_agent = _packets_to_agent(agent_capture)
    bridged = _tone_runs(to_agent, keypad, 0, secure - 0.2)
    during = _tone_runs(to_agent, keypad, secure, done)
    heard_s = len(ulaw_audio_in_packets(to_agent, rtp_port=SIPP_AGENT.rtp_port, start=secure,
                                        end=done)) / 8000
    print(f"\nin-band keys ({keypad.name}), tone sent to the agent (ms): bridged "
          f"{[ms for _, ms in bridged]}; in talk-through {[ms for _, ms in during]}, in "
          f"{heard_s:.2f} s of audio")
    # The agent's leg was live while the caller keyed the PIN.
    pin_ms = play_duration_ms(card.pin + "#", tone_ms=keypad.tone_ms, gap_ms=keypad.gap_ms)
    assert heard_s >= pin_ms / 1000, heard_s
    # What reached the agent of each tone is shorter than a Q.24 receiver must reject.
    assert all(ms < Q24_REJECTED_BELOW_MS for _, ms in during), during
    keypad_sent = dtmf_sent_to_agent(to_agent, secure, done)
    assert keypad_sent["telephone_events"] == 0 and keypad_sent["sip_info"] == 0, keypad_sent
    assert detect_dtmf_in(ulaw_audio_in_packets(to_agent, rtp_port=SIPP_AGENT.rtp_port,
                                                start=secure, end=done)) == []
