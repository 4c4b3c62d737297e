"""A Goertzel DTMF detector for recorded call audio: did anyone's keypad tones end up in it?

    python -m tests.dtmf_detect FILE.wav     # prints the digits heard, with their times

Standard DTMF detection: 8 kHz audio in ~26 ms blocks; a digit is a block where one low-group and
one high-group frequency each carry most of their group's energy and the whole block is loud
enough, for two blocks in a row.
"""

from __future__ import annotations

import math
import struct
import sys
import wave
from pathlib import Path

__all__ = ["detect_dtmf", "detect_dtmf_in", "key_tone_runs_in", "keypad_in_packets", "longest_silence",
           "sound_runs_in", "tone_level", "tone_seconds", "tone_seconds_in", "ulaw_audio_in_packets"]

LOW = (697, 770, 852, 941)
HIGH = (1209, 1336, 1477, 1633)
KEYS = ("123A", "456B", "789C", "*0#D")
BLOCK = 205  # samples at 8 kHz: the classic Goertzel block for DTMF
_WAV_HEADER = 44  # the canonical header, as Asterisk writes it


def _goertzel(samples: list[float], frequency: float, rate: int) -> float:
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


def tone_level(samples: list[float], frequency: float, rate: int = 8000) -> float:
    """The amplitude (in linear sample units) of ``frequency`` in ``samples``: a steady sine of
    amplitude A gives about A, other frequencies little (a test's stand-in for a talker)."""
    if not samples:
        return 0.0
    return 2 * math.sqrt(max(_goertzel(samples, frequency, rate), 0.0)) / len(samples)


def _read(path: Path) -> tuple[list[float], int]:
    try:
        with wave.open(str(path)) as wav:
            if wav.getsampwidth() != 2:
                raise ValueError("16-bit WAV expected")
            rate, channels = wav.getframerate(), wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError):
        # Never closed (its writer was killed): the canonical header, sizes still zero.
        header = path.read_bytes()[:_WAV_HEADER]
        if len(header) < _WAV_HEADER or header[:4] != b"RIFF" or header[34:36] != b"\x10\x00":
            raise ValueError("16-bit WAV expected") from None
        channels, rate = struct.unpack("<HI", header[22:28])
        raw = b""
    if not raw:  # still being recorded: the header's sizes are written when the file is closed
        raw = path.read_bytes()[_WAV_HEADER:]
        raw = raw[:len(raw) // 2 * 2]
    values = struct.unpack(f"<{len(raw) // 2}h", raw)
    return [float(v) for v in values[::channels]], rate


def longest_silence(path: Path) -> tuple[float, float]:
    """(start, length) in seconds of the longest stretch of the WAV that is digital silence
    (every sample 0): what a muted recording holds, and no live audio (hold music, a voice, a
    line's noise) ever does for long."""
    samples, rate = _read(path)
    best_start = best_length = run_start = 0
    for index, value in enumerate((*samples, 1.0)):  # a sentinel ends the last run
        if value != 0:
            if index - run_start > best_length:
                best_start, best_length = run_start, index - run_start
            run_start = index + 1
    return best_start / rate, best_length / rate


def tone_seconds(path: Path, frequency: float, *, start_s: float = 0.0,
                 end_s: float | None = None) -> float:
    """Seconds of the WAV between start and end in which ``frequency`` carries most of a loud
    block's energy: how much of a test phone's steady "voice" tone a recording holds."""
    samples, rate = _read(path)
    return tone_seconds_in(samples, frequency, rate, start_s=start_s, end_s=end_s)


def tone_seconds_in(samples: list[float], frequency: float, rate: int = 8000, *,
                    start_s: float = 0.0, end_s: float | None = None) -> float:
    """tone_seconds over samples already decoded (ulaw_audio_in_packets)."""
    block = BLOCK * rate // 8000
    first = int(start_s * rate)
    last = len(samples) if end_s is None else min(len(samples), int(end_s * rate))
    held = 0
    for offset in range(first, last - block + 1, block):
        chunk = samples[offset:offset + block]
        energy = sum(x * x for x in chunk)
        loud = energy >= block * 300.0 ** 2  # as detect_dtmf_in: quieter is silence or noise
        if loud and _goertzel(chunk, frequency, rate) * 2 / (block * energy) > 0.5:
            held += block
    return held / rate


def detect_dtmf(path: Path, *, start_s: float = 0.0, end_s: float | None = None) -> list[tuple[float, str]]:
    """(time in seconds, digit) for every DTMF digit heard in the WAV between start and end."""
    samples, rate = _read(path)
    return detect_dtmf_in(samples, rate, start_s=start_s, end_s=end_s)


def _digit(chunk: list[float], energy: float, rate: int) -> str | None:
    """The key whose tone pair ``chunk`` (of ``energy``) holds, or None."""
    low = [_goertzel(chunk, f, rate) for f in LOW]
    high = [_goertzel(chunk, f, rate) for f in HIGH]
    li, hi = max(range(4), key=low.__getitem__), max(range(4), key=high.__getitem__)
    # Each tone must stand well above the others of its group, and the pair must hold most
    # of the block's energy (speech and music spread theirs).
    low_ok = all(low[li] > 8 * v for i, v in enumerate(low) if i != li)
    high_ok = all(high[hi] > 8 * v for i, v in enumerate(high) if i != hi)
    share = (low[li] + high[hi]) * 2 / (len(chunk) * energy)
    return KEYS[li][hi] if low_ok and high_ok and share > 0.5 else None


def sound_runs_in(samples: list[float], rate: int = 8000, *, start_s: float = 0.0,
                  end_s: float | None = None) -> list[tuple[float, int, str | None]]:
    """(start in seconds, length in ms, DTMF key or None) of each stretch of sound between
    silences, to the millisecond: how much of a keypad tone reached a phone whose line is
    otherwise silent. A millisecond is sound when it is louder than detect_dtmf_in's floor
    (about -40 dBFS); a stretch's key is the one whose pair holds most of its energy, judged
    over the whole stretch (so also for stretches shorter than a detector's block)."""
    step = rate // 1000
    first = int(start_s * rate)
    last = len(samples) if end_s is None else min(len(samples), int(end_s * rate))
    runs: list[tuple[float, int, str | None]] = []
    run_start = None
    for offset in range(first, last - step + 1, step):
        loud = sum(x * x for x in samples[offset:offset + step]) >= step * 300.0 ** 2
        if loud and run_start is None:
            run_start = offset
        elif not loud and run_start is not None:
            runs.append(_sound_run(samples, run_start, offset, rate))
            run_start = None
    if run_start is not None:
        runs.append(_sound_run(samples, run_start, last, rate))
    return runs


def key_tone_runs_in(samples: list[float], rate: int = 8000) -> list[tuple[float, int]]:
    """(start in seconds, length in ms) of each stretch in which a DTMF high-group frequency
    (1209-1633 Hz) is there, to the millisecond: sound_runs_in for a line that also carries a
    talker's voice, which is in the speech band below them (a voice below 1 kHz leaves the high
    group alone; every key has one of its tones there). A millisecond holds a key's tone when one
    of the four, in the 8 ms around it (Hann window), is above about -40 dBFS as a sine."""
    step, size = rate // 1000, rate // 125
    window = [0.5 - 0.5 * math.cos(2 * math.pi * i / (size - 1)) for i in range(size)]
    gain = sum(window) / 2  # a sine of amplitude A gives A * gain in its Goertzel bin
    floor = 300.0 * math.sqrt(2) * gain
    runs: list[tuple[float, int]] = []
    run_start = None
    for offset in range(0, len(samples) - size + 1, step):
        block = [x * w for x, w in zip(samples[offset:offset + size], window)]
        there = any(math.sqrt(max(_goertzel(block, hz, rate), 0.0)) >= floor for hz in HIGH)
        at = offset + size // 2  # the middle of the block
        if there and run_start is None:
            run_start = at
        elif not there and run_start is not None:
            runs.append((run_start / rate, round((at - run_start) * 1000 / rate)))
            run_start = None
    if run_start is not None:
        runs.append((run_start / rate, round((len(samples) - size // 2 - run_start) * 1000 / rate)))
    return runs


def _sound_run(samples: list[float], start: int, end: int, rate: int) -> tuple[float, int, str | None]:
    chunk = samples[start:end]
    return start / rate, round((end - start) * 1000 / rate), _digit(chunk, sum(x * x for x in chunk), rate)


def detect_dtmf_in(samples: list[float], rate: int = 8000, *, start_s: float = 0.0,
                   end_s: float | None = None) -> list[tuple[float, str]]:
    """detect_dtmf over samples already decoded (a phone's RTP audio, ulaw_audio_in_packets)."""
    block = BLOCK * rate // 8000
    found: list[tuple[float, str]] = []
    previous, held = None, 0
    for offset in range(0, len(samples) - block, block):
        at = offset / rate
        if at < start_s or (end_s is not None and at > end_s):
            continue
        chunk = samples[offset:offset + block]
        energy = sum(x * x for x in chunk)
        if energy < block * 300.0 ** 2:  # quieter than about -40 dBFS: silence or noise
            previous = None
            continue
        digit = _digit(chunk, energy, rate)
        # Reported once per key press: when it has held for two blocks. A tone of any length
        # is one digit; the same key again needs a break in between, as a keypad makes.
        held = held + 1 if digit is not None and digit == previous else 1
        if digit is not None and held == 2:
            found.append((at, digit))
        previous = digit
    return found


def keypad_in_packets(packets: list[tuple[float, int, bytes]], *, sip_port: int, rtp_port: int,
                      start: float, end: float) -> dict[str, int]:
    """What of a keypad reached one phone between ``start`` and ``end`` (epoch seconds).

    ``packets`` are (time, UDP destination port, UDP payload) as captured towards the phone.
    Counted: RTP packets, RFC 4733 telephone-events among them (payload type 101, what our SDP
    offers), SIP INFO requests (RFC 2976: the other way a PBX relays DTMF), and every SIP request
    by method, so a check on INFO can first show that it sees the phone's SIP at all.
    """
    found = {"telephone_events": 0, "sip_info": 0, "rtp_packets": 0}
    for at, port, payload in packets:
        if not start <= at <= end:
            continue
        if port == rtp_port and len(payload) >= 12 and payload[0] >> 6 == 2:
            found["rtp_packets"] += 1
            if payload[1] & 0x7F == 101:
                found["telephone_events"] += 1
        elif port == sip_port and not payload.startswith(b"SIP/2.0"):
            method = payload.split(b" ", 1)[0].decode("ascii", "replace")
            found[f"sip_{method.lower()}"] = found.get(f"sip_{method.lower()}", 0) + 1
    return found


def _ulaw_to_linear(byte: int) -> int:
    """ITU-T G.711 u-law decoding of one byte to a 16-bit linear sample."""
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07)
    return 0x84 - magnitude if byte & 0x80 else magnitude - 0x84


_ULAW = [_ulaw_to_linear(b) for b in range(256)]
PCMU = 0


def ulaw_audio_in_packets(packets: list[tuple[float, int, bytes]], *, rtp_port: int,
                          start: float, end: float) -> list[float]:
    """The G.711 u-law audio (RTP payload type 0) captured towards ``rtp_port`` between ``start``
    and ``end`` (epoch seconds), decoded in sequence-number order: what that phone heard, for
    detect_dtmf_in. Gaps in the stream are simply left out (a tone is never split by one)."""
    frames = []
    for at, port, payload in packets:
        if (port == rtp_port and start <= at <= end and len(payload) > 12
                and payload[0] >> 6 == 2 and payload[1] & 0x7F == PCMU):
            header = 12 + 4 * (payload[0] & 0x0F)
            frames.append((at, int.from_bytes(payload[2:4], "big"), payload[header:]))
    samples: list[float] = []
    for _, _, audio in sorted(frames, key=lambda f: (f[0], f[1])):
        samples.extend(_ULAW[b] for b in audio)
    return samples


def main(argv: list[str]) -> int:
    for at, digit in detect_dtmf(Path(argv[0])):
        print(f"{at:8.2f}s  {digit}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
