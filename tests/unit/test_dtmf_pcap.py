"""tests/sipp/dtmf_pcap.py: RFC 4733 DTMF captures for SIPp play_pcap_audio."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

_MODULE_PATH = Path(__file__).resolve().parents[1] / "sipp" / "dtmf_pcap.py"


def _load():
    spec = importlib.util.spec_from_file_location("voicepay_sipp_dtmf_pcap", _MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dtmf_pcap = _load()

PIN = "119922#"
EVENT_IDS = {"#": 11, "*": 10, **{str(d): d for d in range(10)}}
RTP_PORT = 10000  # destination port the generator writes


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is required to check the DTMF captures but is not on PATH "
                    "(apt-get install tshark)")
    return path


def _parse_pcap(data: bytes):
    """Pure-Python reading: Ethernet/IPv4/UDP/RTP telephone-event."""
    magic, vmaj, vmin, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, vmaj, vmin, linktype) == (0xA1B2C3D4, 2, 4, 1)
    off = 24
    packets = []
    while off < len(data):
        sec, usec, caplen, length = struct.unpack_from("<IIII", data, off)
        off += 16
        frame = data[off:off + caplen]
        off += caplen
        assert caplen == length == len(frame), "SIPp refuses truncated packets"
        assert frame[12:14] == b"\x08\x00", "IPv4 over Ethernet II"
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        assert ip[0] >> 4 == 4 and ip[9] == 17, "IPv4/UDP"
        sport, dport, ulen, _ = struct.unpack_from("!HHHH", ip, ihl)
        udp_payload = ip[ihl + 8:ihl + ulen]
        assert ulen == 8 + len(udp_payload) == len(ip) - ihl, "SIPp sends UDP length bytes"
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", udp_payload)
        event, flags, duration = struct.unpack_from("!BBH", udp_payload, 12)
        assert b0 == 0x80 and len(udp_payload) == 16
        packets.append(dict(
            time_us=sec * 1_000_000 + usec, dport=dport, marker=bool(b1 & 0x80),
            pt=b1 & 0x7F, seq=seq, ts=ts, ssrc=ssrc, event=event,
            end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration,
        ))
    return packets


def _events(packets):
    """Group packets into events by RTP timestamp, in order."""
    events = []
    for p in packets:
        if not events or events[-1]["ts"] != p["ts"]:
            events.append(dict(ts=p["ts"], packets=[]))
        events[-1]["packets"].append(p)
    return events


def _check_event_structure(packets, digits, *, seq_start, ts_start, ssrc, pt=101,
                           tone_ms=160, gap_ms=120):
    assert [p["seq"] for p in packets] == list(range(seq_start, seq_start + len(packets)))
    assert {p["ssrc"] for p in packets} == {ssrc}
    assert {p["pt"] for p in packets} == {pt}
    assert {p["volume"] for p in packets} == {10}
    assert {p["dport"] for p in packets} == {RTP_PORT}
    events = _events(packets)
    assert [e["packets"][0]["event"] for e in events] == [EVENT_IDS[d] for d in digits]
    tss = [e["ts"] for e in events]
    assert tss[0] == ts_start
    assert all(b > a for a, b in zip(tss, tss[1:])), tss
    # successive events are spaced by tone+gap of 8 kHz clock
    assert all(b - a == (tone_ms + gap_ms) * 8 for a, b in zip(tss, tss[1:]))
    for e in events:
        ps = e["packets"]
        assert len({p["event"] for p in ps}) == 1
        assert ps[0]["marker"] and not any(p["marker"] for p in ps[1:])
        body, ends = ps[:-3], ps[-3:]
        assert not any(p["end"] for p in body)
        assert all(p["end"] for p in ends)
        assert [p["duration"] for p in body] == [160 * i for i in range(len(body))]
        assert len(body) == tone_ms // 20
        assert {p["duration"] for p in ends} == {tone_ms * 8}
        # real-time spacing: 20 ms between all packets of an event
        times = [p["time_us"] for p in ps]
        assert {b - a for a, b in zip(times, times[1:])} == {20_000}
    # the capture clock matches the RTP clock (SIPp paces by capture time)
    t0 = packets[0]["time_us"]
    for e in events:
        assert (e["packets"][0]["time_us"] - t0) * 8 // 1000 == e["ts"] - ts_start
    return events


def _tshark_rows(path: Path):
    proc = subprocess.run(
        [_tshark(), "-r", str(path), "-d", f"udp.port=={RTP_PORT},rtp",
         "-T", "fields", "-E", "separator=,",
         "-e", "rtpevent.event_id", "-e", "rtpevent.end_of_event",
         "-e", "rtp.timestamp", "-e", "rtp.seq", "-e", "rtp.marker",
         "-e", "rtp.ssrc", "-e", "rtpevent.duration"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(",") for line in proc.stdout.splitlines() if line.strip()]
    assert rows, f"tshark decoded nothing: {proc.stderr}"
    return [dict(event=int(r[0]), end=r[1] in ("1", "True"), ts=int(r[2]),
                 seq=int(r[3]), marker=r[4] in ("1", "True"), ssrc=int(r[5], 0),
                 duration=int(r[6])) for r in rows]


def test_repeated_digits_decode_in_tshark(tmp_path):
    path = dtmf_pcap.write_dtmf_pcap(tmp_path / "pin.pcap", PIN,
                                     seq_start=4000, timestamp_start=123456)
    rows = _tshark_rows(path)
    events = _events(rows)
    assert [e["packets"][0]["event"] for e in events] == [1, 1, 9, 9, 2, 2, 11]
    tss = [e["ts"] for e in events]
    assert all(b > a for a, b in zip(tss, tss[1:])), tss
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(4000, 4000 + len(rows)))
    for e in events:
        ps = e["packets"]
        assert ps[0]["marker"]
        assert [p["end"] for p in ps[-3:]] == [True] * 3
        assert not any(p["end"] for p in ps[:-3])
        assert len({(p["ts"], p["duration"]) for p in ps[-3:]}) == 1
    assert {r["ssrc"] for r in rows} == {dtmf_pcap.DEFAULT_SSRC}


def test_heuristic_rtp_sees_one_telephone_event_stream(tmp_path):
    path = dtmf_pcap.write_dtmf_pcap(tmp_path / "pin.pcap", PIN,
                                     seq_start=0, timestamp_start=0)
    proc = subprocess.run(
        [_tshark(), "-r", str(path), "-o", "rtp.heuristic_rtp:TRUE",
         "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
         "-T", "fields", "-E", "separator=,", "-e", "rtpevent.event_id",
         "-e", "ip.checksum.status", "-e", "udp.checksum.status"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(",") for line in proc.stdout.splitlines() if line.strip()]
    assert len(rows) == len(PIN) * 11
    # checksum status 1 == "Good"
    assert {(r[1], r[2]) for r in rows} == {("1", "1")}
    ids = [int(r[0]) for r in rows]
    assert [ids[i] for i in range(0, len(ids), 11)] == [1, 1, 9, 9, 2, 2, 11]


def test_pure_python_parse(tmp_path):
    path = dtmf_pcap.write_dtmf_pcap(tmp_path / "pin.pcap", PIN, ssrc=0x01020304,
                                     seq_start=65530, timestamp_start=7)
    packets = _parse_pcap(path.read_bytes())
    # 16-bit sequence numbers wrap; unwrap to check they increase by 1
    base = packets[0]["seq"]
    for i, p in enumerate(packets):
        assert p["seq"] == (base + i) & 0xFFFF
        p["seq"] = base + i
    _check_event_structure(packets, PIN, seq_start=65530, ts_start=7, ssrc=0x01020304)


def test_options_tone_gap_lead_in_payload_type(tmp_path):
    data = dtmf_pcap.build_dtmf_pcap("*A0D", payload_type=96, seq_start=10,
                                     timestamp_start=1000, tone_ms=100, gap_ms=60,
                                     lead_in_ms=200)
    packets = _parse_pcap(data)
    assert [e["packets"][0]["event"] for e in _events(packets)] == [10, 12, 0, 15]
    assert packets[0]["ts"] == 1000 + 200 * 8
    assert packets[0]["time_us"] - dtmf_pcap._EPOCH_US == 200_000
    assert {p["pt"] for p in packets} == {96}
    events = _events(packets)
    assert [len(e["packets"]) for e in events] == [5 + 3] * 4
    assert [e["ts"] - events[0]["ts"] for e in events] == [0, 1280, 2560, 3840]


@pytest.mark.parametrize("kwargs", [
    dict(digits="12x"), dict(digits=""), dict(digits="1", gap_ms=20),
    dict(digits="1", tone_ms=10), dict(digits="1", payload_type=8),
])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        dtmf_pcap.build_dtmf_pcap(**kwargs)


def test_steps_of_one_call_never_repeat_timestamp_or_seq(tmp_path):
    plays = ["1", "1", "99", "22#"]
    paths = [dtmf_pcap.pcap_for_step(tmp_path, d, i) for i, d in enumerate(plays)]
    assert [p.name for p in paths] == [dtmf_pcap.pcap_name(d, i) for i, d in enumerate(plays)]
    assert len({p.name for p in paths}) == len(paths)
    all_packets = []
    for i, (digits, path) in enumerate(zip(plays, paths)):
        packets = _parse_pcap(path.read_bytes())
        _check_event_structure(packets, digits, seq_start=1000 * i, ts_start=400000 * i,
                               ssrc=dtmf_pcap.DEFAULT_SSRC)
        all_packets += packets
    assert {p["ssrc"] for p in all_packets} == {dtmf_pcap.DEFAULT_SSRC}
    seqs = [p["seq"] for p in all_packets]
    assert all(b > a for a, b in zip(seqs, seqs[1:]))
    tss = [e["ts"] for e in _events(all_packets)]
    assert all(b > a for a, b in zip(tss, tss[1:]))
    # Names never spell out the digits: SIPp prints them, and a PIN must not reach test output.
    assert dtmf_pcap.pcap_name("119922#", 2).startswith("dtmf_2_")
    assert "119922" not in dtmf_pcap.pcap_name("119922#", 2)
    assert dtmf_pcap.pcap_name("12", 0) != dtmf_pcap.pcap_name("12", 1)


def test_pcap_for_step_caches_by_name(tmp_path):
    first = dtmf_pcap.pcap_for_step(tmp_path, "12", 0)
    mtime = first.stat().st_mtime_ns
    again = dtmf_pcap.pcap_for_step(tmp_path, "12", 0)
    assert again == first and again.stat().st_mtime_ns == mtime
    # same name, other settings: rewritten to match
    dtmf_pcap.pcap_for_step(tmp_path, "12", 0, tone_ms=200)
    assert len(_events(_parse_pcap(first.read_bytes()))[0]["packets"]) == 10 + 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [dtmf_pcap.pcap_name("12", 0)]


def test_pcap_for_step_refuses_overflowing_a_step(tmp_path):
    with pytest.raises(ValueError):
        dtmf_pcap.pcap_for_step(tmp_path, "1" * 100, 0)


def test_cli_prints_path(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(_MODULE_PATH), str(tmp_path), "119922#", "--step", "2"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    path = Path(proc.stdout.strip())
    assert path == tmp_path / dtmf_pcap.pcap_name("119922#", 2)
    packets = _parse_pcap(path.read_bytes())
    _check_event_structure(packets, PIN, seq_start=2000, ts_start=800000,
                           ssrc=dtmf_pcap.DEFAULT_SSRC)
    rows = _tshark_rows(path)
    assert [(r["event"], r["ts"], r["seq"]) for r in rows] == \
        [(p["event"], p["ts"], p["seq"]) for p in packets]


def test_play_duration():
    assert dtmf_pcap.play_duration_ms(PIN) == 7 * 280
    assert dtmf_pcap.play_duration_ms("1", tone_ms=100, gap_ms=50, lead_in_ms=30) == 180


# --- in-band tones, and a phone that sends both ------------------------------------------------

def _udp_payloads(data: bytes):
    """(time in seconds, UDP destination port, UDP payload) of every packet: what a capture of
    the phone's RTP gives tests/dtmf_detect.py."""
    off, out = 24, []
    while off < len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, off)
        ip = data[off + 16 + 14:off + 16 + caplen]
        off += 16 + caplen
        _, dport, ulen, _ = struct.unpack_from("!HHHH", ip, 20)
        out.append((sec + usec / 1e6, dport, ip[28:20 + ulen]))
    return out


def _rtp_headers(payloads):
    return [dict(zip(("b0", "b1", "seq", "ts", "ssrc"), struct.unpack_from("!BBHII", p)))
            for _, _, p in payloads]


def test_inband_tones_are_heard_as_the_digits_keyed_repeats_included(tmp_path):
    from tests.dtmf_detect import detect_dtmf_in, ulaw_audio_in_packets
    payloads = _udp_payloads(dtmf_pcap.build_dtmf_pcap(PIN, tones="inband"))
    audio = ulaw_audio_in_packets(payloads, rtp_port=RTP_PORT, start=0, end=2**32)
    assert [digit for _, digit in detect_dtmf_in(audio)] == list(PIN)


def test_inband_audio_is_one_continuous_g711_stream(tmp_path):
    payloads = _udp_payloads(dtmf_pcap.build_dtmf_pcap(PIN, tones="inband", seq_start=65530,
                                                        timestamp_start=800))
    headers = _rtp_headers(payloads)
    assert {h["b1"] & 0x7F for h in headers} == {0}  # PCMU
    assert [h["b1"] >> 7 for h in headers] == [1] + [0] * (len(headers) - 1)  # marker: first
    assert all(len(p) == 12 + 160 for _, _, p in payloads)  # 20 ms frames
    assert [h["seq"] for h in headers] == [(65530 + n) % 65536 for n in range(len(headers))]
    assert [h["ts"] for h in headers] == [800 + 160 * n for n in range(len(headers))]
    # paced in real time, 20 ms apart, for the whole play (the last gap's silence included)
    times = [t for t, _, _ in payloads]
    assert [round((b - a) * 1000) for a, b in zip(times, times[1:])] == [20] * (len(times) - 1)
    assert len(payloads) == dtmf_pcap.play_duration_ms(PIN) // 20
    assert len(payloads) == dtmf_pcap.packet_count(PIN, tones="inband")


def test_both_sends_events_and_tones_in_one_sequence_space(tmp_path):
    both = _udp_payloads(dtmf_pcap.build_dtmf_pcap(PIN, tones="both"))
    headers = _rtp_headers(both)
    types = [h["b1"] & 0x7F for h in headers]
    assert types.count(101) == len(PIN) * dtmf_pcap.packets_per_digit()
    assert types.count(0) == dtmf_pcap.packet_count(PIN, tones="inband")
    assert len(both) == dtmf_pcap.packet_count(PIN, tones="both")
    assert [h["seq"] for h in headers] == list(range(len(headers)))
    assert {h["ssrc"] for h in headers} == {dtmf_pcap.DEFAULT_SSRC}
    times = [t for t, _, _ in both]
    assert times == sorted(times)
    # the events are exactly the RFC 4733 capture's, renumbered
    events = [p for (_, _, p), t in zip(both, types) if t == 101]
    alone = [p for _, _, p in _udp_payloads(dtmf_pcap.build_dtmf_pcap(PIN))]
    assert [e[4:] for e in events] == [a[4:] for a in alone]


def test_steps_name_their_tones_apart_and_refuse_unknown_ones(tmp_path):
    names = {dtmf_pcap.pcap_name("12", 0, tones) for tones in dtmf_pcap.TONES}
    assert len(names) == len(dtmf_pcap.TONES) == 4 and dtmf_pcap.pcap_name("12", 0) in names
    path = dtmf_pcap.pcap_for_step(tmp_path, "12", 1, tones="inband")
    headers = _rtp_headers(_udp_payloads(path.read_bytes()))
    assert headers[0]["seq"] == 1000 and headers[0]["ts"] == 400000
    with pytest.raises(ValueError):
        dtmf_pcap.build_dtmf_pcap("12", tones="loud")


def test_ulaw_encoding_round_trips_within_its_step():
    from tests.dtmf_detect import _ulaw_to_linear
    for sample in (-32768, -8000, -100, 0, 100, 8000, 32767):
        decoded = _ulaw_to_linear(dtmf_pcap.linear_to_ulaw(sample))
        assert abs(decoded - sample) <= max(8, abs(sample) // 16), (sample, decoded)
    assert dtmf_pcap.linear_to_ulaw(0) == 0xFF  # u-law's silence byte


def test_voice_is_plain_audio_of_its_tone_with_no_key_in_it(tmp_path):
    """The "voice" kind (a test phone talking): G.711 bursts of VOICE_HZ in the keyed slots,
    which the DTMF detector does not read as keys and tone_seconds measures."""
    from tests.dtmf_detect import detect_dtmf_in, tone_seconds_in, ulaw_audio_in_packets
    payloads = _udp_payloads(dtmf_pcap.build_dtmf_pcap("0" * 10, tones="voice"))
    assert {h["b1"] & 0x7F for h in _rtp_headers(payloads)} == {0}  # PCMU only, no event
    assert len(payloads) == dtmf_pcap.packet_count("0" * 10, tones="voice")
    audio = ulaw_audio_in_packets(payloads, rtp_port=RTP_PORT, start=0, end=2**32)
    assert detect_dtmf_in(audio) == []
    assert 1.4 < tone_seconds_in(audio, dtmf_pcap.VOICE_HZ) <= 1.6  # 10 bursts of 160 ms
    assert tone_seconds_in(audio, 1000) == 0.0


# --- in-band keys of other shapes: quieter, shorter, under a talker, A-law ----------------------

def _audio_of(sound, **kwargs):
    from tests.dtmf_detect import ulaw_audio_in_packets
    payloads = _udp_payloads(dtmf_pcap.build_dtmf_pcap(PIN, tones="inband", sound=sound,
                                                        **kwargs))
    return payloads, ulaw_audio_in_packets(payloads, rtp_port=RTP_PORT, start=0, end=2**32)


def test_quieter_and_shorter_keys_are_still_the_digits_at_their_level():
    from tests.dtmf_detect import detect_dtmf_in, tone_level
    _, audio = _audio_of(dtmf_pcap.InBand(level_dbm0=-25), tone_ms=60, gap_ms=60)
    assert len(audio) == dtmf_pcap.play_duration_ms(PIN, tone_ms=60, gap_ms=60) * 8
    assert [digit for _, digit in detect_dtmf_in(audio)] == list(PIN)
    # "1" is 697 + 1209 Hz: each at -25 dBm0, 15 dB (a factor of 5.6) below the default
    first_tone = audio[:60 * 8]
    default = 32767 * 10 ** ((-10 - 3.17) / 20)
    assert tone_level(first_tone, 697) == pytest.approx(default / 10 ** 0.75, rel=0.1)


def test_a_talker_under_the_keys_is_there_in_the_tones_and_the_gaps():
    from tests.dtmf_detect import tone_level
    _, audio = _audio_of(dtmf_pcap.InBand(talker_hz=550))
    tone, gap = audio[:160 * 8], audio[160 * 8:280 * 8]
    default = 32767 * 10 ** ((-10 - 3.17) / 20)
    for part in (tone, gap):
        assert tone_level(part, 550) == pytest.approx(default, rel=0.1)
    assert tone_level(tone, 697) == pytest.approx(default, rel=0.1)
    assert tone_level(gap, 697) < default / 20


def test_a_law_keys_are_payload_type_8_and_g711_a_law():
    payloads, _ = _audio_of(dtmf_pcap.InBand(codec="PCMA"))
    assert {h["b1"] & 0x7F for h in _rtp_headers(payloads)} == {8}
    assert payloads[-1][2][12:] == bytes([0xD5]) * 160  # the last gap: A-law's silence byte
    # ITU-T G.711 A-law: zero, the largest positive and negative samples
    assert [dtmf_pcap.linear_to_alaw(x) for x in (0, 32767, -32768)] == [0xD5, 0xAA, 0x2A]
    with pytest.raises(ValueError):
        dtmf_pcap.InBand(codec="G722")


def test_a_sound_of_its_own_is_a_capture_of_its_own(tmp_path):
    plain = dtmf_pcap.pcap_for_step(tmp_path, "12", 0, tones="inband")
    quiet = dtmf_pcap.pcap_for_step(tmp_path, "12", 0, tones="inband",
                                    sound=dtmf_pcap.InBand(level_dbm0=-25))
    assert plain != quiet and plain.read_bytes() != quiet.read_bytes()
    assert plain.name == dtmf_pcap.pcap_name("12", 0, "inband")
