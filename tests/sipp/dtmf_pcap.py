#!/usr/bin/env python3
"""Generate DTMF captures for SIPp's play_pcap_audio: RFC 4733 telephone-events, in-band
G.711 tones (what a phone without RFC 4733 sends, for Asterisk's detector), or both at once;
and plain G.711 audio ("voice": one steady tone per "digit" slot, what a person talking puts on
the line and no DTMF detector reads as a key).

Why not the shipped /usr/share/sip-tester/dtmf_2833_*.pcap: each holds one digit
with fixed RTP sequence numbers and timestamp. SIPp 3.6 replays the UDP payload
verbatim (it rewrites only the UDP ports and checksum; the kernel fills in the IP
header), so playing the same capture twice sends the same RTP timestamp and
older sequence numbers again, and Asterisk discards the repeated event: a PIN
such as 119922 loses digits.

How SIPp 3.6 uses the capture (src/prepare_pcap.c, src/send_packets.c):

* link type must be Ethernet (DLT_EN10MB) or Linux cooked (DLT_LINUX_SLL); non-IP
  and non-UDP packets are skipped; truncated packets (caplen != len) are fatal;
* the UDP length field decides how many bytes are sent;
* destination port minus the lowest destination port in the file is kept as an
  offset on top of the call's media ports: all packets here use one port;
* packets are paced by the differences between their pcap timestamps; the
  first packet leaves at once, whatever its timestamp.

Everything here is written with the standard library only, so the file can be
run as a script in any interpreter:

    python tests/sipp/dtmf_pcap.py OUTDIR DIGITS [--step N]

prints the path of the capture for step N of a call (see pcap_for_step).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import math
import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLOCK_RATE",
    "DEFAULT_SSRC",
    "EVENT_CODES",
    "InBand",
    "STEP_SEQ_SPACING",
    "STEP_TIMESTAMP_SPACING",
    "TONES",
    "VOICE_HZ",
    "build_dtmf_pcap",
    "linear_to_alaw",
    "linear_to_ulaw",
    "packet_count",
    "pcap_for_step",
    "pcap_name",
    "play_duration_ms",
    "voice_pcap_for_step",
    "write_dtmf_pcap",
]

CLOCK_RATE = 8000  # telephone-event clock for 8 kHz audio codecs
SAMPLES_PER_MS = CLOCK_RATE // 1000
PACKET_MS = 20  # interval of continuation and end packets
END_PACKETS = 3  # RFC 4733 2.5.1.4: the final packet is sent three times
VOLUME = 10  # -10 dBm0, as the shipped captures
DEFAULT_SSRC = 0x56504159  # "VPAY"
DEFAULT_PAYLOAD_TYPE = 101

# pcap_for_step: each step of a call gets its own slice of the sequence number
# and timestamp spaces, so several plays in one call never go back in either.
STEP_SEQ_SPACING = 1000
STEP_TIMESTAMP_SPACING = 400_000  # 50 s of 8 kHz clock

# RFC 4733 section 3.2 event codes
EVENT_CODES = {str(d): d for d in range(10)}
EVENT_CODES.update({"*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15})

# Addresses and ports of the capture. SIPp ignores the addresses and the source
# port (it sends from the call's media address/port to the remote SDP's); the
# destination port only matters relative to the other packets of the file.
_SRC_MAC = bytes.fromhex("020000000001")
_DST_MAC = bytes.fromhex("020000000002")
_SRC_IP = bytes([192, 0, 2, 1])  # TEST-NET-1
_DST_IP = bytes([192, 0, 2, 2])
_SRC_PORT = 6000
_DST_PORT = 10000
# Fixed capture start, so the same arguments always give the same bytes.
_EPOCH_US = 1_700_000_000 * 1_000_000

_PCAP_MAGIC_US = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1


def _event_code(digit: str) -> int:
    try:
        return EVENT_CODES[digit.upper()]
    except KeyError:
        raise ValueError(
            f"unsupported DTMF digit {digit!r}: use 0-9, *, #, A-D"
        ) from None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, ip_id: int) -> bytes:
    """Ethernet II / IPv4 / UDP frame around an RTP payload."""
    udp_len = 8 + len(payload)
    pseudo = _SRC_IP + _DST_IP + struct.pack("!BBH", 0, 17, udp_len)
    udp_wo_sum = struct.pack("!HHHH", _SRC_PORT, _DST_PORT, udp_len, 0) + payload
    udp_sum = _checksum(pseudo + udp_wo_sum) or 0xFFFF
    udp = struct.pack("!HHHH", _SRC_PORT, _DST_PORT, udp_len, udp_sum) + payload
    ip_wo_sum = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ip_id & 0xFFFF, 0, 64, 17, 0,
        _SRC_IP, _DST_IP,
    )
    ip_sum = _checksum(ip_wo_sum)
    ip = ip_wo_sum[:10] + struct.pack("!H", ip_sum) + ip_wo_sum[12:]
    return _DST_MAC + _SRC_MAC + b"\x08\x00" + ip + udp


def _rtp_event(*, marker: bool, payload_type: int, seq: int, timestamp: int,
               ssrc: int, event: int, end: bool, duration: int) -> bytes:
    header = struct.pack(
        "!BBHII",
        0x80,  # V=2, P=0, X=0, CC=0
        (0x80 if marker else 0) | payload_type,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    body = struct.pack("!BBH", event, (0x80 if end else 0) | VOLUME, duration)
    return header + body


def _check_args(digits: str, payload_type: int, ssrc: int, tone_ms: int,
                gap_ms: int, lead_in_ms: int) -> None:
    if not digits:
        raise ValueError("no digits")
    for d in digits:
        _event_code(d)
    if not 96 <= payload_type <= 127:
        raise ValueError("payload_type must be dynamic (96-127)")
    if not 0 <= ssrc <= 0xFFFFFFFF:
        raise ValueError("ssrc must fit in 32 bits")
    if tone_ms < PACKET_MS or tone_ms * SAMPLES_PER_MS > 0xFFFF:
        raise ValueError(f"tone_ms must be in [{PACKET_MS}, 8191]")
    # the two end retransmissions go out in the gap, before the next event
    if gap_ms < (END_PACKETS - 1) * PACKET_MS + 1:
        raise ValueError(f"gap_ms must be at least {(END_PACKETS - 1) * PACKET_MS + 1}")
    if lead_in_ms < 0:
        raise ValueError("lead_in_ms must be >= 0")


def _event_packets(digits: str, *, payload_type: int, ssrc: int, timestamp_start: int,
                   tone_ms: int, gap_ms: int, lead_in_ms: int):
    """Yield (time_ms, build(seq) -> rtp_bytes) for every RFC 4733 packet of the play."""
    tone_samples = tone_ms * SAMPLES_PER_MS
    for index, digit in enumerate(digits):
        event = _event_code(digit)
        start_ms = lead_in_ms + index * (tone_ms + gap_ms)
        timestamp = timestamp_start + start_ms * SAMPLES_PER_MS
        # first packet (marker) and continuations, every 20 ms while the tone lasts; then the end
        # of the event, three times, same timestamp and final duration
        times = [(offset, False, offset * SAMPLES_PER_MS) for offset in range(0, tone_ms, PACKET_MS)]
        times += [(tone_ms + n * PACKET_MS, True, tone_samples) for n in range(END_PACKETS)]
        for offset_ms, end, duration in times:
            yield start_ms + offset_ms, (
                lambda seq, marker=offset_ms == 0, end=end, duration=duration, ts=timestamp,
                event=event: _rtp_event(marker=marker, payload_type=payload_type, seq=seq,
                                        timestamp=ts, ssrc=ssrc, event=event, end=end,
                                        duration=duration))


# In-band tones: G.711 audio (u-law, payload type 0, unless InBand says A-law), each tone pair at
# -10 dBm0 per frequency as a phone's keypad sends it (u-law's full-scale sine is +3.17 dBm0,
# A-law's +3.14: one amplitude serves both), digital silence around them.
PCMU = 0
PCMA = 8
DEFAULT_LEVEL_DBM0 = -10


def _amplitude(level_dbm0: float) -> float:
    return 32767 * 10 ** ((level_dbm0 - 3.17) / 20)


_TONE_AMPLITUDE = _amplitude(DEFAULT_LEVEL_DBM0)


@dataclass(frozen=True)
class InBand:
    """How a phone's in-band keys sound, beyond their timing: each frequency's level, the G.711
    law of the call ("PCMU" or "PCMA"), and a talker under the keys (a steady tone of
    ``talker_hz`` at -10 dBm0, through the tones and the gaps; None: digital silence between
    keys). The default is the keypad every other test keys with."""
    level_dbm0: float = DEFAULT_LEVEL_DBM0
    codec: str = "PCMU"
    talker_hz: int | None = None

    def __post_init__(self) -> None:
        if self.codec not in ("PCMU", "PCMA"):
            raise ValueError("in-band keys are G.711: codec must be PCMU or PCMA")

    @property
    def tag(self) -> str:
        """What sets this sound apart in a capture's name ("" for the default)."""
        return "" if self == InBand() else f"{self.level_dbm0}dBm0,{self.codec},{self.talker_hz}:"
VOICE_HZ = 440  # the "voice" kind's tone: in the speech band, far from every DTMF frequency
DTMF_FREQUENCIES = {
    key: (low, high)
    for low, row in zip((697, 770, 852, 941), ("123A", "456B", "789C", "*0#D"))
    for high, key in zip((1209, 1336, 1477, 1633), row)
}


def linear_to_ulaw(sample: int) -> int:
    """ITU-T G.711 u-law encoding of one 16-bit linear sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = magnitude.bit_length() - 8
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def linear_to_alaw(sample: int) -> int:
    """ITU-T G.711 A-law encoding of one 16-bit linear sample."""
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(abs(sample), 32767) >> 3  # 13-bit magnitude
    segment = max(magnitude.bit_length() - 5, 0)
    mantissa = (magnitude >> max(segment, 1)) & 0x0F
    return (sign | (segment << 4) | mantissa) ^ 0x55


_ENCODERS = {"PCMU": (linear_to_ulaw, PCMU), "PCMA": (linear_to_alaw, PCMA)}


def _audio_frames(digits: str, *, tone_ms: int, gap_ms: int, lead_in_ms: int,
                  voice: bool = False, sound: InBand = InBand()):
    """Yield (time_ms, 160 G.711 bytes) every 20 ms: each digit's tone (``voice``: VOICE_HZ
    alone, the same in every slot), silence (or ``sound``'s talker) between."""
    samples_per_packet = PACKET_MS * SAMPLES_PER_MS
    total_ms = play_duration_ms(digits, tone_ms=tone_ms, gap_ms=gap_ms, lead_in_ms=lead_in_ms)
    encode = _ENCODERS[sound.codec][0]
    amplitude = _amplitude(sound.level_dbm0)
    for at_ms in range(0, total_ms, PACKET_MS):
        frame = bytearray([encode(0)]) * samples_per_packet
        for n in range(samples_per_packet):
            t_ms = at_ms + n / SAMPLES_PER_MS
            t = t_ms / 1000
            index, into = divmod(t_ms - lead_in_ms, tone_ms + gap_ms)
            keyed = t_ms >= lead_in_ms and into < tone_ms
            if not keyed and sound.talker_hz is None:
                continue
            value = 0.0
            if keyed:
                pair = (VOICE_HZ,) * 2 if voice else DTMF_FREQUENCIES[digits[int(index)].upper()]
                value = amplitude * sum(math.sin(2 * math.pi * hz * t) for hz in pair)
            if sound.talker_hz is not None:
                value += _TONE_AMPLITUDE * math.sin(2 * math.pi * sound.talker_hz * t)
            frame[n] = encode(int(value))
        yield at_ms, bytes(frame)


def _audio_packets(digits: str, *, ssrc: int, timestamp_start: int, tone_ms: int, gap_ms: int,
                   lead_in_ms: int, voice: bool = False, sound: InBand = InBand()):
    """Yield (time_ms, build(seq) -> rtp_bytes) for the in-band audio of the play."""
    payload_type = _ENCODERS[sound.codec][1]
    for at_ms, frame in _audio_frames(digits, tone_ms=tone_ms, gap_ms=gap_ms,
                                      lead_in_ms=lead_in_ms, voice=voice, sound=sound):
        yield at_ms, (lambda seq, ts=timestamp_start + at_ms * SAMPLES_PER_MS, frame=frame,
                      first=at_ms == 0: struct.pack(
                          "!BBHII", 0x80, (0x80 if first else 0) | payload_type, seq & 0xFFFF,
                          ts & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + frame)


TONES = ("rfc4733", "inband", "both", "voice")
AUDIO_KINDS = ("inband", "both", "voice")  # the kinds that send G.711 audio


def _packets(digits: str, *, payload_type: int, ssrc: int, seq_start: int,
             timestamp_start: int, tone_ms: int, gap_ms: int, lead_in_ms: int,
             tones: str = "rfc4733", sound: InBand = InBand()):
    """Yield (time_ms, rtp_bytes) for every packet of the play, in sending order.

    ``tones``: RFC 4733 events, in-band audio, or both at once (one SSRC, one sequence space,
    as a phone that does both sends them); or "voice", plain audio with no key in it."""
    if tones not in TONES:
        raise ValueError(f"tones must be one of {TONES}")
    timing = dict(ssrc=ssrc, timestamp_start=timestamp_start, tone_ms=tone_ms, gap_ms=gap_ms,
                  lead_in_ms=lead_in_ms)
    streams = []
    if tones in AUDIO_KINDS:
        streams += _audio_packets(digits, voice=tones == "voice", sound=sound, **timing)
    if tones in ("rfc4733", "both"):
        streams += _event_packets(digits, payload_type=payload_type, **timing)
    # sorted() is stable: at the same instant the audio frame goes before the event
    for seq, (time_ms, build) in enumerate(sorted(streams, key=lambda p: p[0]), seq_start):
        yield time_ms, build(seq)


def packets_per_digit(tone_ms: int = 160) -> int:
    """RTP packets sent for one digit as RFC 4733 events."""
    return -(-tone_ms // PACKET_MS) + END_PACKETS


def packet_count(digits: str, *, tone_ms: int = 160, gap_ms: int = 120, lead_in_ms: int = 0,
                 tones: str = "rfc4733") -> int:
    """RTP packets (sequence numbers) a play of ``digits`` takes."""
    count = 0
    if tones in ("rfc4733", "both"):
        count += len(digits) * packets_per_digit(tone_ms)
    if tones in AUDIO_KINDS:
        count += -(-play_duration_ms(digits, tone_ms=tone_ms, gap_ms=gap_ms,
                                     lead_in_ms=lead_in_ms) // PACKET_MS)
    return count


def play_duration_ms(digits: str, *, tone_ms: int = 160, gap_ms: int = 120,
                     lead_in_ms: int = 0) -> int:
    """Time from the first to the last packet of a capture, plus the final gap.

    SIPp 3.6 starts one sending thread per play_pcap_audio and a later play in
    the same call replaces a running one, so a scenario should <pause> at least
    this long after a play before the next play (or before hanging up).
    """
    return lead_in_ms + len(digits) * (tone_ms + gap_ms)


def build_dtmf_pcap(digits: str, *, payload_type: int = DEFAULT_PAYLOAD_TYPE,
                    ssrc: int = DEFAULT_SSRC, seq_start: int = 0,
                    timestamp_start: int = 0, tone_ms: int = 160,
                    gap_ms: int = 120, lead_in_ms: int = 0, tones: str = "rfc4733",
                    sound: InBand = InBand()) -> bytes:
    """The bytes of a pcap playing ``digits`` as RFC 4733 events (``tones="rfc4733"``), as
    in-band G.711 u-law tones with silence between (``"inband"``: one 20 ms frame after the
    other, timestamps 160 apart, the first with the marker bit), or as both at once.

    For each digit: a first packet with the marker bit and duration 0, one
    continuation every 20 ms with a growing duration while the tone lasts, then
    three end packets (E bit, duration = tone) 20 ms apart. All packets of an
    event carry the timestamp of its start; events start every
    ``tone_ms + gap_ms`` after ``lead_in_ms``, so their timestamps strictly
    increase; every packet takes the next sequence number. Sequence numbers and
    timestamps wrap modulo 2**16 and 2**32 as RTP does.

    The pcap timestamps follow the same real-time schedule, which is what SIPp
    paces the play by. SIPp sends the first packet of a play immediately, so
    ``lead_in_ms`` moves the RTP timestamps but does not delay the first digit:
    put a <pause> before the play for that. ``sound``: the in-band audio's level, law and
    talker (InBand).
    """
    _check_args(digits, payload_type, ssrc, tone_ms, gap_ms, lead_in_ms)
    return _pcap(_packets(
        digits, payload_type=payload_type, ssrc=ssrc, seq_start=seq_start,
        timestamp_start=timestamp_start, tone_ms=tone_ms, gap_ms=gap_ms,
        lead_in_ms=lead_in_ms, tones=tones, sound=sound))


def _pcap(packets) -> bytes:
    """A pcap of (time_ms, rtp_bytes) packets, each in its Ethernet/IPv4/UDP frame."""
    out = [struct.pack("<IHHiIII", _PCAP_MAGIC_US, 2, 4, 0, 0, 65535,
                       _LINKTYPE_ETHERNET)]
    for ip_id, (time_ms, rtp) in enumerate(packets):
        frame = _frame(rtp, ip_id)
        ts_us = _EPOCH_US + time_ms * 1000
        out.append(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000,
                               len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # atomic, so parallel test workers never see half a file
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_dtmf_pcap(path, digits: str, *, payload_type: int = DEFAULT_PAYLOAD_TYPE,
                    ssrc: int = DEFAULT_SSRC, seq_start: int, timestamp_start: int,
                    tone_ms: int = 160, gap_ms: int = 120,
                    lead_in_ms: int = 0, tones: str = "rfc4733",
                    sound: InBand = InBand()) -> Path:
    """Write the capture of build_dtmf_pcap to ``path``; returns the path."""
    path = Path(path)
    _write_if_changed(path, build_dtmf_pcap(
        digits, payload_type=payload_type, ssrc=ssrc, seq_start=seq_start,
        timestamp_start=timestamp_start, tone_ms=tone_ms, gap_ms=gap_ms,
        lead_in_ms=lead_in_ms, tones=tones, sound=sound))
    return path


def pcap_name(digits: str, step_index: int, tones: str = "rfc4733", shape: str = "") -> str:
    # Named by a digest, not the digits: SIPp prints the file names it plays, and a PIN must not
    # show up in test output, even a test PIN. ``shape``: what else sets the capture apart.
    kind = ("" if tones == "rfc4733" else f"{tones}:") + shape
    digest = hashlib.sha256(f"{kind}{step_index}:{digits.upper()}".encode()).hexdigest()[:12]
    return f"dtmf_{step_index}_{digest}.pcap"


def pcap_for_step(directory, digits: str, step_index: int, *,
                  payload_type: int = DEFAULT_PAYLOAD_TYPE,
                  ssrc: int = DEFAULT_SSRC, tone_ms: int = 160,
                  gap_ms: int = 120, lead_in_ms: int = 0, tones: str = "rfc4733",
                  sound: InBand = InBand()) -> Path:
    """Capture for the ``step_index``-th play_pcap_audio of one call.

    Step N uses sequence numbers from 1000*N and timestamps from 400000*N with
    one SSRC for the whole call, so successive plays of a call keep moving
    forward in both spaces (Asterisk ignores an event whose timestamp repeats
    the previous one, and a packet whose sequence number is a little behind the
    last event's). The file is named dtmf_<step>_<digits>.pcap ('#' -> hash,
    '*' -> star) in ``directory`` and only rewritten when its content would
    change (other settings give the same name, so they are checked by content).
    """
    if step_index < 0:
        raise ValueError("step_index must be >= 0")
    _check_args(digits, payload_type, ssrc, tone_ms, gap_ms, lead_in_ms)
    n_packets = packet_count(digits, tone_ms=tone_ms, gap_ms=gap_ms, lead_in_ms=lead_in_ms,
                             tones=tones)
    if n_packets > STEP_SEQ_SPACING:
        raise ValueError(f"{len(digits)} digits need {n_packets} sequence numbers, "
                         f"more than the {STEP_SEQ_SPACING} of a step")
    last_ts = (lead_in_ms + (len(digits) - 1) * (tone_ms + gap_ms)) * SAMPLES_PER_MS
    if last_ts >= STEP_TIMESTAMP_SPACING:
        raise ValueError("the digits span more RTP timestamps than one step holds")
    return write_dtmf_pcap(
        Path(directory) / pcap_name(digits, step_index, tones, sound.tag), digits,
        payload_type=payload_type, ssrc=ssrc,
        seq_start=STEP_SEQ_SPACING * step_index,
        timestamp_start=STEP_TIMESTAMP_SPACING * step_index,
        tone_ms=tone_ms, gap_ms=gap_ms, lead_in_ms=lead_in_ms, tones=tones, sound=sound)


@functools.lru_cache(maxsize=None)
def _voice_frame(hz: int, phase_per_mille: int) -> bytes:
    """One 20 ms u-law frame of a ``hz`` sine that starts at ``phase_per_mille`` thousandths of
    its cycle."""
    return bytes(linear_to_ulaw(int(_TONE_AMPLITUDE * math.sin(
        2 * math.pi * (phase_per_mille / 1000 + hz * i / CLOCK_RATE))))
        for i in range(PACKET_MS * SAMPLES_PER_MS))


def _voice_packets(hz: int, *, ssrc: int, seq_start: int, timestamp_start: int,
                   duration_ms: int):
    """Yield (time_ms, rtp_bytes): a steady ``hz`` sine in u-law, one 20 ms frame after another,
    at the level of one DTMF frequency: a stand-in for a talker that a Goertzel filter finds."""
    for n, at_ms in enumerate(range(0, duration_ms, PACKET_MS)):
        # A frame depends only on the sine's phase at its start, and an integer ``hz`` has at
        # most 50 of those 20 ms apart: minutes of voice are a few distinct frames, made once.
        frame = _voice_frame(hz, hz * at_ms % 1000)
        yield at_ms, struct.pack("!BBHII", 0x80, (0x80 if n == 0 else 0) | PCMU,
                                 (seq_start + n) & 0xFFFF,
                                 (timestamp_start + at_ms * SAMPLES_PER_MS) & 0xFFFFFFFF,
                                 ssrc & 0xFFFFFFFF) + frame


def voice_pcap_for_step(directory, hz: int, step_index: int, *, duration_ms: int,
                        ssrc: int = DEFAULT_SSRC) -> Path:
    """Capture of a talker's voice (a steady ``hz`` tone, ``duration_ms`` long) played as the
    ``step_index``-th play of a call: the same sequence and timestamp slices as pcap_for_step,
    so a call that talks between its keys never goes back in either. A slice holds 20 s; a play
    that is the call's only one may be longer (it has no later play to collide with)."""
    path = Path(directory) / f"voice_{step_index}_{hz}hz_{duration_ms}ms.pcap"
    _write_if_changed(path, _pcap(_voice_packets(
        hz, ssrc=ssrc, seq_start=STEP_SEQ_SPACING * step_index,
        timestamp_start=STEP_TIMESTAMP_SPACING * step_index, duration_ms=duration_ms)))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Write an RFC 4733 DTMF pcap for SIPp play_pcap_audio and print its path.")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("digits", help="0-9, *, #, A-D (quote # and * in the shell)")
    parser.add_argument("--step", type=int, default=0,
                        help="index of this play within the call (default 0)")
    parser.add_argument("--tone-ms", type=int, default=160)
    parser.add_argument("--gap-ms", type=int, default=120)
    parser.add_argument("--payload-type", type=int, default=DEFAULT_PAYLOAD_TYPE)
    parser.add_argument("--tones", choices=TONES, default="rfc4733")
    args = parser.parse_args(argv)
    try:
        path = pcap_for_step(args.outdir, args.digits, args.step,
                             payload_type=args.payload_type,
                             tone_ms=args.tone_ms, gap_ms=args.gap_ms, tones=args.tones)
    except ValueError as exc:
        parser.error(str(exc))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
