"""Talk-through with callers whose phones key in-band, the harder cases (issue 12): a caller
talking over their keys, short tones, quiet ones, an A-law caller.

What Asterisk's in-band detector lets through of each tone is measured while the caller is
bridged with the agent (secure capture off, where the detector turns the tones it reads into
RFC 4733 events and takes them out of the audio): at the agent's leg, to the millisecond, as
tests/e2e/test_talkthrough_calls.py measures the plain case. A silent caller's line carries
nothing but their keys, so every stretch of sound there is what is left of a tone
(sound_runs_in); a talking caller's carries their voice too (550 Hz), so there the measure is
the stretches in which a DTMF high-group tone is there (key_tone_runs_in: every key has one, and
a voice below 1 kHz leaves them alone).

Measured: keyed over the caller's voice (each at -10 dBm0), Asterisk reads none of the keys and
every tone reaches the agent whole. So in talk-through a caller whose phone may key in-band is
muted to the agent for the payment (ivr/oneline/switch.py): from the switch to the result
Asterisk sends the agent nothing of the caller, whatever the caller keys, and the agent's
recording is paused; the agent can still talk to the caller. A PIN keyed over speech is not read at all: the
caller is asked again, and the PIN keyed then is the one charged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.dtmf_detect import key_tone_runs_in, sound_runs_in, ulaw_audio_in_packets
from tests.e2e.test_oneline_calls import (SIPP_AGENT, _at, _back_with_the_agent, _capture,
                                          _marker, _packets_to_agent, _stop, dtmf_sent_to_agent)
from tests.e2e.test_talkthrough_calls import (CALLER_HZ, CONTROL_KEYS, _approved,
                                              _asked_for_the_pin, _keys_as_events,
                                              _talk_through_order, _talking)
from tests.sipp.dtmf_modes import mode
from tests.sipp.dtmf_pcap import InBand
from tests.sipp.scenario import Key

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Keypad:
    """A caller's in-band keypad: its tones' timing and sound, the codecs the phone offers, and
    whether the caller talks over their keys (and between them) or is silent but for them."""
    name: str
    mobile: str
    amount: str
    tone_ms: int = 160
    gap_ms: int = 120
    sound: InBand = InBand()
    codecs: tuple[str, ...] = ("PCMU",)

    @property
    def talking(self) -> bool:
        return self.sound.talker_hz is not None

    def key(self, digits: str, cue: str, label: str, *, over_speech: bool = True) -> Key:
        sound = self.sound if over_speech else InBand(level_dbm0=self.sound.level_dbm0)
        return Key(digits, cue=cue, label=label, via="inband", tone_ms=self.tone_ms,
                   gap_ms=self.gap_ms, sound=sound)


KEYPADS = [
    Keypad("talking", "13800138262", "72.00", sound=InBand(talker_hz=CALLER_HZ)),
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
def test_talk_through_in_band_keys_of_every_shape(stack, keypad):
    card = find_test_card("approve")
    agent_capture = stack.work_dir / f"talkthrough_inband_{keypad.name}_agent_leg.pcapng"
    capture = _capture(agent_capture)
    pin_keys = [keypad.key(card.pin + "#", "enter_pin", "PIN")]
    if keypad.talking:  # not read over speech: keyed again, silently, when asked again
        pin_keys.append(keypad.key(card.pin + "#", "PIN again", "PIN again, not talking",
                                   over_speech=False))
    try:
        agent, cues, caller = _talking(stack, f"talkthrough_inband_{keypad.name}", [
            keypad.key(CONTROL_KEYS, "control", "control keys, secure capture off"),
            keypad.key("1", "menu", "1 to pay", over_speech=False),
            *pin_keys,
        ], hang_up_on_cue="back with the agent", caller_ip=mode("inband").caller_ip,
            voice_hz=CALLER_HZ if keypad.talking else None, codecs=keypad.codecs)
        control_to = _keys_the_controls(stack, cues, agent_capture, keypad)
        journal_before = len(stack.journal())
        payment = _talk_through_order(stack, card, keypad.amount, keypad.mobile)
        _asked_for_the_pin(stack, cues, payment)
        cues.send("enter_pin")
        if keypad.talking:
            stack.wait_for_prompt(_marker(payment), "enter_pin", count=2)
            cues.send("PIN again")
        final = _approved(stack, payment)
        _back_with_the_agent(stack, cues, caller, agent)
    finally:
        _stop(capture)
    # One authorization, approved: the PIN charged is one the detector read whole.
    assert [e["response_code"] for e in stack.journal()[journal_before:]] == ["00"]
    secure, done = _at(final, "answered"), _at(final, "approved")
    to_agent = _packets_to_agent(agent_capture)
    bridged = _tone_runs(to_agent, keypad, control_to[0], control_to[1])
    heard = ulaw_audio_in_packets(to_agent, rtp_port=SIPP_AGENT.rtp_port, start=secure, end=done)
    print(f"\nin-band keys ({keypad.name}): of each control tone the agent was sent (ms), "
          f"bridged: {[ms for _, ms in bridged]}; in talk-through: "
          f"{[ms for _, ms in _tone_runs(to_agent, keypad, secure, done)]} in "
          f"{len(heard) / 8000:.2f} s of audio")
    if keypad.talking:  # the finding: keyed over speech, every tone reached the agent whole
        assert len(bridged) == len(CONTROL_KEYS), bridged
        assert all(ms >= keypad.tone_ms - 5 for _, ms in bridged), bridged
    # In talk-through the caller was muted to the agent (MUTEAUDIO drops each frame): from the
    # switch to the result Asterisk sent the agent nothing at all, no audio, no telephone-event,
    # no SIP INFO, though the same capture saw the controls before.
    assert [h.get("event") for h in final["history"] if h.get("event")][:2] == [
        "recording_paused", "caller_muted"]
    assert heard == []
    keypad_sent = dtmf_sent_to_agent(to_agent, secure, done)
    assert keypad_sent["rtp_packets"] == 0 and keypad_sent["sip_info"] == 0, keypad_sent
    assert dtmf_sent_to_agent(to_agent, 0, secure)["rtp_packets"] > 0


def _keys_the_controls(stack, cues, agent_capture, keypad: Keypad) -> tuple[float, float]:
    """Bridged with the agent (secure capture off), the caller keys the controls: the stretch
    of time in which they reached the agent. Asterisk's detector reads a silent caller's keys,
    and sends each to the agent as a telephone-event; over speech it reads none."""
    start = time.time()
    cues.send("control")
    if keypad.talking:
        # Nothing to wait for but the tones themselves, in the agent's audio.
        assert stack.wait_until(lambda: len(key_tone_runs_in(ulaw_audio_in_packets(
            _packets_to_agent(agent_capture, live=True), rtp_port=SIPP_AGENT.rtp_port,
            start=start, end=time.time()))) >= len(CONTROL_KEYS), 15)
        assert _keys_as_events(_packets_to_agent(agent_capture, live=True)) == 0
    else:
        assert stack.wait_until(lambda: _keys_as_events(
            _packets_to_agent(agent_capture, live=True)) == len(CONTROL_KEYS), 15)
    return start, time.time()
