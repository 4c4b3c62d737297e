"""The proof behind the end-to-end leak scan: a leak planted in each place, in each form, is found
by the same collectors and scan, named by the right place and kind; the clean set is clean.

Real Redis (the private one of tests/integration/conftest.py), real tshark reading captures
written here, a WAV of synthesized DTMF tones, a real SQLite file standing in for AstDB.
"""

from __future__ import annotations

import json
import math
import sqlite3
import struct
import wave
from pathlib import Path

import redis

from ivr.hostlink.messages import PurchaseRequest
from simulators.acquirer.testcards import find_test_card
from tests.dtmf_detect import HIGH, KEYS, LOW
from tests.leak_places import every_place, pin_blocks_in_capture, scan_places
from tests.leak_secrets import (CARD_NUMBER, CVV2, EXPIRY, ID_NUMBER, PIN, PIN_BLOCK,
                                all_secrets)
from tests.leakcheck import CLEAR_PIN_FIELD, PARTIAL_CARD_NUMBER, SecretIndex
from tests.sipp.dtmf_pcap import build_dtmf_pcap

AMI, AGI, ACQUIRER = 5038, 4573, 8583
LINKS = {AMI: "AMI", AGI: "FastAGI"}
CARD = {name: find_test_card(name) for name in (
    "approve", "approve_19", "wrong_pin", "insufficient_funds", "expired", "blocked",
    "do_not_honour", "issuer_timeout", "issuer_down", "restricted", "credit_approve")}
DEMO_ID, SECOND_ID = "11010519491231002X", "110101199003074477"
BLOCK = bytes.fromhex("8E4A1F0C22D35B7790AB0C1D2E3F4051")  # what the acquirer link carries

CLEAN_LOG = (
    "2026-11-25 13:42:26.398 INFO ivr.paying: payment pay_1a2b3c4d: approved, card 622188******0011\n"
    "[2026-11-25 13:42:26.512] VERBOSE[2211][C-00000003] pbx.c: Executing [s@pay:1] "
    "AGI(\"PJSIP/caller-00000003\", \"agi://127.0.0.1:4573/selfservice\")\n"
    "attempt 1 of 3, stan 000123, uniqueid 1764249746.31\n")


# ---- writing the places -----------------------------------------------------------------------

def _pan_spaced(pan: str) -> str:
    return " ".join(pan[i:i + 4] for i in range(0, len(pan), 4))


def _dtmf_wav(path: Path, keys: str) -> None:
    """8 kHz 16-bit mono: each key 120 ms of its two tones, then 120 ms of silence."""
    rate, frames = 8000, bytearray()
    for key in keys:
        row = next(i for i, r in enumerate(KEYS) if key in r)
        low, high = LOW[row], HIGH[KEYS[row].index(key)]
        for n in range(int(rate * 0.12)):
            value = 8000 * (math.sin(2 * math.pi * low * n / rate) + math.sin(2 * math.pi * high * n / rate))
            frames += struct.pack("<h", int(value))
        frames += bytes(int(rate * 0.12) * 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(frames))


def _tcp_pcap(path: Path, segments: list[tuple[int, int, bytes]], *, udp: bool = False) -> None:
    """A pcap of (source port, destination port, payload) TCP segments (or UDP datagrams) on
    the loopback."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    seq: dict[tuple[int, int], int] = {}
    for n, (src, dst, payload) in enumerate(segments):
        at = seq.get((src, dst), 1000)
        seq[(src, dst)] = at + len(payload)
        if udp:
            body = struct.pack("!HHHH", src, dst, 8 + len(payload), 0) + payload
        else:
            body = struct.pack("!HHIIBBHHH", src, dst, at, 1, 5 << 4, 0x18, 65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), n, 0, 64, 17 if udp else 6, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = bytes(12) + b"\x08\x00" + ip + body
        out.append(struct.pack("<IIII", 1764249746 + n, 0, len(frame), len(frame)) + frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(out))


def _rtp_audio(seq: int, payload: bytes) -> bytes:
    """A G.711 u-law RTP packet (payload type 0) carrying ``payload`` as its audio."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + payload


def _purchase_frame(pan: str, block: bytes) -> bytes:
    raw = PurchaseRequest.create(pan=pan, amount=5000, stan="000123", terminal_id="VPIVR001",
                                 merchant_id="M100001        ", pin_block=block).encode()
    return len(raw).to_bytes(2, "big") + raw


def _write(var: Path, relative: str, data: str | bytes) -> None:
    path = var / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _build(var: Path, client: redis.Redis, *, leak: bool) -> dict[Path, dict[int, str]]:
    """The places of a run; with ``leak``, one secret in one form planted in each."""
    c = CARD
    plant = (lambda text: text) if leak else (lambda text: "")
    _write(var, "log/ivr.log", CLEAN_LOG + plant(f"card {_pan_spaced(c['approve'].pan)}\n"))
    _write(var, "asterisk/log/full", CLEAN_LOG + plant("".join(
        f"[2026-11-25 13:42:{30 + i}.{100 + i}] DEBUG[2211] res_agi.c: got {d}\n"
        for i, d in enumerate(c["wrong_pin"].pin))))
    _write(var, "asterisk/log/messages.log",
           CLEAN_LOG + plant(f"part {c['insufficient_funds'].pan[-12:]}\n"))
    _write(var, "asterisk/log/cdr-csv/Master.csv",
           '"","8000","s","pay","","","",' + plant(f'"cvv2:{c["credit_approve"].cvv2}"') + "\n")
    _write(var, "asterisk/log/cel-custom/Master.csv",
           '"CHAN_START","1764249746.31",' + plant(f'"expiry={c["expired"].expiry[2:]}/'
                                                   f'{c["expired"].expiry[:2]}"') + "\n")
    astdb = var / "asterisk/spool/astdb.sqlite3"
    astdb.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(astdb) as db:
        db.execute("CREATE TABLE astdb (key VARCHAR(256), value VARCHAR(256), PRIMARY KEY(key))")
        db.execute("INSERT INTO astdb VALUES ('/voicepay/last', ?)",
                   (plant(f"PIN{c['blocked'].pin}") or "pay_1a2b3c4d",))
    db.close()
    _write(var, "asterisk/spool/outgoing/cb.call",
           "Channel: Local/s@callback\n" + plant(f"Set: F=46{c['do_not_honour'].pin}AAAAAAAA\n"))
    _write(var, "acquirer/journal.jsonl",
           json.dumps({"stan": "000123", "rc": "00", **({"block": BLOCK.hex()} if leak else {})}) + "\n")
    _write(var, "e2e/webhooks.jsonl", json.dumps(
        {"payment_id": "pay_1a2b3c4d", **({"id": "110105 19491231 002x"} if leak else {})}) + "\n")
    _write(var, "log/test-output.log",
           ("passed\n" + plant(f"pan {c['issuer_timeout'].pan}\n")).encode("utf-16-le"))
    _write(var, "core.4242", b"\x7fELF\x00\x01" + plant(f"pin={c['issuer_down'].pin}").encode("utf-16-be"))
    _dtmf_wav(var / "asterisk/spool/monitor/agent-1.wav", "5" + plant(c["restricted"].pin))
    # The links: AMI one digit per event, each split over two segments; FastAGI an ID number;
    # the acquirer link carries PAN and PIN block as it must (read only for the PIN block).
    ami = [(AMI, 40001, b"Response: Success\r\nActionID: 4f1e9a2b\r\n\r\n")]
    for i, digit in enumerate(c["approve_19"].pin if leak else ""):
        event = f"Event: DTMFEnd\r\nUniqueid: 1764249746.{31 + i}\r\nDigit: {digit}\r\n\r\n".encode()
        ami += [(AMI, 40001, event[:20]), (AMI, 40001, event[20:])]
    # GET DATA's answer is how keyed digits reach the IVR: there, and only there, they belong.
    agi = [(40002, AGI, b"agi_network_script: selfservice\n\n"),
           (40002, AGI, plant(f"agi_arg_1: {SECOND_ID}\n").encode()),
           (AGI, 40002, b'GET DATA "/opt/voicepay/sounds/zh/enter_pin" 10000 12\n'),
           (40002, AGI, f"200 result={c['approve'].pin}\n".encode()),
           (AGI, 40002, plant(f'VERBOSE "got {c["approve"].pin}" 1\n').encode())]
    acquirer = [(40003, ACQUIRER, _purchase_frame(c["approve"].pan, BLOCK))]
    _tcp_pcap(var / "capture/links.pcapng", [s for s in ami + agi + acquirer if s[2]])
    (var / "e2e").mkdir(parents=True, exist_ok=True)
    (var / "e2e/agent_leg.pcapng").write_bytes(build_dtmf_pcap("5" + plant(c["approve"].pin)))
    # A capture of the audio sent to a caller: G.711 bytes are no text, though some read as a
    # CVV2 standing alone by chance (an e2e run's did); only its SIP and key events are read.
    silence = b"\xff" * 80
    _tcp_pcap(var / "e2e/call_to_caller.pcapng", [
        (4000, 20000, _rtp_audio(1, silence + f" {c['credit_approve'].cvv2} ".encode() + silence)),
        (4000, 20000, _rtp_audio(2, silence * 2))], udp=True)
    (var / "e2e/call_keys_to_caller.pcapng").write_bytes(
        build_dtmf_pcap("5" + plant(c["wrong_pin"].pin)))
    # Redis: a value of each type, and an integer a RDB file stores in binary.
    client.flushdb()
    client.set("pay:pay_1a2b3c4d:state", "approved")
    client.hset("pay:pay_1a2b3c4d", mapping={"masked_pan": "622188******0011", "amount": "5000"})
    if leak:
        client.set("note:1", f"card={c['approve'].pan}")
        client.hset("pay:pay_9", mapping={"extra": f"CVV2={c['credit_approve'].cvv2}",
                                          "digits": c["wrong_pin"].pin})  # listpack integer
        client.rpush("keys:1", *c["insufficient_funds"].pin)
        client.sadd("ids", DEMO_ID.lower())
        client.zadd("cards", {"-".join(_pan_spaced(c["expired"].pan).split()): 1})
        client.xadd("pay:pay_9:history", {"field": f"06{c['blocked'].pin}FFFFFFFF"})
        client.set("pin:int", c["do_not_honour"].pin)  # an RDB integer
    return {var / "capture/links.pcapng": LINKS}


# ---- the proof --------------------------------------------------------------------------------

# (place, kind, owner): where each plant must be reported.
EXPECTED = {
    ("var/log/ivr.log", CARD_NUMBER, "approve"),
    ("var/asterisk/log/full", PIN, "wrong_pin"),
    ("var/asterisk/log/messages.log", PARTIAL_CARD_NUMBER, "insufficient_funds"),
    ("var/asterisk/log/cdr-csv/Master.csv", CVV2, "credit_approve"),
    ("var/asterisk/log/cel-custom/Master.csv", EXPIRY, "expired"),
    ("var/asterisk/spool/astdb.sqlite3", PIN, "blocked"),
    ("var/asterisk/spool/outgoing/cb.call", CLEAR_PIN_FIELD, "do_not_honour"),
    ("var/acquirer/journal.jsonl", PIN_BLOCK, "PIN block 1"),
    ("var/e2e/webhooks.jsonl", ID_NUMBER, "demo"),
    ("var/log/test-output.log", CARD_NUMBER, "issuer_timeout"),
    ("var/core.4242", PIN, "issuer_down"),
    ("var/asterisk/spool/monitor/agent-1.wav (DTMF heard)", PIN, "restricted"),
    ("AMI traffic (from port 5038, stream 0, links.pcapng)", PIN, "approve_19"),
    ("FastAGI traffic (to port 4573, stream 1, links.pcapng)", ID_NUMBER, "second"),
    ("FastAGI traffic (from port 4573, stream 1, links.pcapng)", PIN, "approve"),
    ("phone leg key events (port 10000, agent_leg.pcapng)", PIN, "approve"),
    ("phone leg key events (port 10000, call_keys_to_caller.pcapng)", PIN, "wrong_pin"),
    ("Redis string note:#", CARD_NUMBER, "approve"),
    ("Redis hash pay:pay_#", CVV2, "credit_approve"),
    ("Redis hash pay:pay_#", PIN, "wrong_pin"),
    ("Redis list keys:#", PIN, "insufficient_funds"),
    ("Redis set ids", ID_NUMBER, "demo"),
    ("Redis zset cards", CARD_NUMBER, "expired"),
    ("Redis stream pay:pay_#:history", CLEAR_PIN_FIELD, "blocked"),
    ("Redis string pin:int", PIN, "do_not_honour"),
    ("Redis RDB dump", PIN, "do_not_honour"),  # stored as an integer
    ("Redis RDB dump", PIN, "wrong_pin"),      # a listpack integer
    ("Redis RDB dump", CARD_NUMBER, "approve"),
}


def _scan(tmp_path: Path, redis_server: str, *, leak: bool):
    var = tmp_path / "var"
    client = redis.Redis.from_url(redis_server)
    try:
        captures = _build(var, client, leak=leak)
        blocks = pin_blocks_in_capture(var / "capture/links.pcapng", ACQUIRER)
        index = SecretIndex.of(all_secrets(blocks))
        return blocks, scan_places(every_place(var, client, captures, agi_port=AGI, core_roots=[tmp_path]), index)
    finally:
        client.flushdb()
        client.close()


def test_a_leak_planted_in_each_place_and_form_is_found(tmp_path, redis_server):
    blocks, leaks = _scan(tmp_path, redis_server, leak=True)
    assert blocks == [BLOCK]  # read from the acquirer link with the product's codec
    found = {(leak.where, leak.kind, leak.owner) for leak in leaks}
    missed = sorted(EXPECTED - found)
    assert missed == [], "\n".join(map(str, missed)) + "\nfound:\n" + "\n".join(map(str, sorted(found)))
    forms = {(leak.where, leak.form) for leak in leaks}
    assert ("Redis RDB dump", "RDB integer") in forms
    assert ("var/log/test-output.log", "as is, UTF-16") in forms
    assert ("var/asterisk/log/full", "one digit at a time") in forms
    # The acquirer link carries PAN and PIN block by design, GET DATA's answer the keyed PIN:
    # neither is reported.
    assert not any("8583" in leak.where for leak in leaks)
    assert ("FastAGI traffic (to port 4573, stream 1, links.pcapng)", PIN, "approve") not in found


def test_the_clean_set_is_clean(tmp_path, redis_server):
    blocks, leaks = _scan(tmp_path, redis_server, leak=False)
    assert blocks == [BLOCK]  # the PIN block is searched for, and is nowhere else
    assert [str(leak) for leak in leaks] == []

