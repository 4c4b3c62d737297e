"""The Goertzel detector hears real DTMF tones and nothing in speech or music."""

import shutil
import subprocess

import pytest

from tests.dtmf_detect import _read, detect_dtmf, detect_dtmf_in, keypad_in_packets, sound_runs_in

TONES = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "#": (941, 1477)}


def _sox(*args: str) -> None:
    if shutil.which("sox") is None:
        pytest.fail("sox is required (make test installs it)")
    subprocess.run(["sox", *args], check=True, capture_output=True)


def _tone_file(tmp_path, digits: str, tone_s: float = 0.12):
    tmp_path.mkdir(exist_ok=True)
    parts = []
    for index, digit in enumerate(digits):
        low, high = TONES[digit]
        part = tmp_path / f"t{index}.wav"
        _sox("-n", "-r", "8000", "-c", "1", "-b", "16", str(part), "synth", str(tone_s), "sine", str(low),
             "sine", str(high), "remix", "1,2", "gain", "-6", "pad", "0", "0.1")
        parts.append(str(part))
    out = tmp_path / "tones.wav"
    _sox(*parts, str(out))
    return out


def test_hears_keyed_digits_including_repeats(tmp_path):
    wav = _tone_file(tmp_path, "1195#")
    assert [digit for _, digit in detect_dtmf(wav)] == list("1195#")


@pytest.mark.parametrize("tone_s", [0.16, 0.5])
def test_a_long_press_is_one_digit(tmp_path, tone_s):
    """A phone's key held longer (our captures send 160 ms, a finger may hold half a second) is
    still one digit, and the same key pressed again after a break is the next one."""
    wav = _tone_file(tmp_path, "1155", tone_s)
    assert [digit for _, digit in detect_dtmf(wav)] == list("1155")


def test_hears_nothing_in_speech(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required (make test installs it)")
    raw = tmp_path / "speech_raw.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "Please enter your PIN, then press hash. "
                    "One two three four five six seven eight nine zero."], check=True)
    speech = tmp_path / "speech.wav"
    _sox(str(raw), "-r", "8000", "-c", "1", "-b", "16", str(speech))
    assert detect_dtmf(speech) == []


def test_sound_runs_measure_each_tone_to_the_millisecond(tmp_path):
    """What the talk-through measure of in-band keys relies on: each tone between silences is
    one run, its length within a millisecond, and its key named even when it is far shorter than
    a detector's block (a tone's leading edge that passed before Asterisk's detector acted)."""
    short, full = _tone_file(tmp_path / "a", "1", 0.015), _tone_file(tmp_path / "b", "9", 0.16)
    samples = _read(short)[0] + _read(full)[0]
    runs = sound_runs_in(samples)
    assert [digit for _, _, digit in runs] == ["1", "9"]
    assert [ms for _, ms, _ in runs] == [pytest.approx(15, abs=1), pytest.approx(160, abs=1)]
    # The detector, which wants two blocks (51 ms) of a key, does not accept the 15 ms one.
    assert [digit for _, digit in detect_dtmf_in(samples)] == ["9"]


def test_a_time_window_limits_what_is_reported(tmp_path):
    wav = _tone_file(tmp_path, "15")
    assert [d for _, d in detect_dtmf(wav, start_s=0.2)] == ["5"]


# --- what reached a phone: the counter the one-line e2e test uses on its capture ---------------

SIP, RTP = 5081, 17510


def _rtp(payload_type: int) -> bytes:
    # RFC 3550 fixed header: V=2, no padding/extension/CSRC; then 4 bytes of payload.
    return bytes([0x80, payload_type, 0, 1]) + bytes(8) + b"\x05\x0a\x00\xa0"


# A DTMF relay by SIP INFO as Asterisk's PJSIP sends it with dtmf_mode=info
# (Content-Type application/dtmf-relay, the Cisco body format; RFC 2976 defines INFO).
SIP_INFO = (b"INFO sip:7101@127.0.0.1:5081 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060\r\n"
            b"CSeq: 3 INFO\r\nContent-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\n"
            b"Signal=5\r\nDuration=100\r\n")


def test_keypad_counter_sees_sip_info_and_telephone_events() -> None:
    packets = [(1.0, RTP, _rtp(0)), (1.1, RTP, _rtp(101)), (1.2, RTP, _rtp(101 | 0x80)),
               (1.3, SIP, SIP_INFO), (1.4, SIP, b"INVITE sip:7101@127.0.0.1 SIP/2.0\r\n\r\n"),
               (1.5, SIP, b"SIP/2.0 200 OK\r\n\r\n"), (9.0, SIP, SIP_INFO)]
    found = keypad_in_packets(packets, sip_port=SIP, rtp_port=RTP, start=0.0, end=2.0)
    assert found == {"rtp_packets": 3, "telephone_events": 2, "sip_info": 1, "sip_invite": 1}


def test_keypad_counter_sees_nothing_in_plain_audio() -> None:
    packets = [(1.0, RTP, _rtp(0)), (1.1, RTP, _rtp(8)), (1.2, 5099, SIP_INFO)]
    assert keypad_in_packets(packets, sip_port=SIP, rtp_port=RTP, start=0.0, end=2.0) == {
        "rtp_packets": 2, "telephone_events": 0, "sip_info": 0}


def test_key_tone_runs_measure_each_tone_under_a_talker() -> None:
    """A voice below 1 kHz on the line does not make a key's tone longer or shorter: each 160 ms
    tone measures 160 ms (+ at most the 8 ms window), alone or under a steady 550 Hz talker, and
    the talker alone is no tone at all."""
    import math
    from tests.dtmf_detect import key_tone_runs_in
    rate, amplitude = 8000, 32767 * 10 ** ((-10 - 3.17) / 20)

    def line(keyed: bool, talker: bool) -> list[float]:
        samples = []
        for n in range(rate):  # one second: a "1" from 100 to 260 ms
            t = n / rate
            x = amplitude * math.sin(2 * math.pi * 550 * t) if talker else 0.0
            if keyed and 0.1 <= t < 0.26:
                x += amplitude * (math.sin(2 * math.pi * 697 * t) + math.sin(2 * math.pi * 1209 * t))
            samples.append(x)
        return samples

    for talker in (False, True):
        [(start, ms)] = key_tone_runs_in(line(True, talker))
        assert abs(start - 0.1) <= 0.005 and 160 <= ms <= 168, (talker, start, ms)
    assert key_tone_runs_in(line(False, True)) == []
