"""Where the leak scan looks: one collector per place data can land, each giving Places to scan.

The same collectors serve the end-to-end scan (tests/e2e/test_zz_no_card_data_leaks.py) and its
proof (tests/integration/test_leak_places.py), so what the proof plants is found by the code that
scans a real run:

- every file under var/, recursively (service and Asterisk logs, full log, CDR/CEL if enabled,
  the spool, AstDB, the acquirer journal, the e2e work files and webhook bodies, Redis' own AOF
  and RDB files, the suite's output, core dumps), except the few places secrets must be;
- recordings: the DTMF digits heard in every WAV;
- packet captures: every TCP stream of AMI and FastAGI; every other capture under var/ (a phone
  leg a test kept) for its SIP and its RFC 4733 key events, on any port, never its audio as
  text; the acquirer link only to read the PIN blocks the run sent;
- Redis: every key and value of every type, and an RDB dump written uncompressed.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from ivr.config import REPO_ROOT
from tests.dtmf_detect import detect_dtmf
from tests.leak_secrets import pin_blocks_in_stream
from tests.leakcheck import Leak, SecretIndex, scan_bytes

__all__ = ["Place", "var_files", "recordings", "capture_streams", "pin_blocks_in_capture",
           "redis_values", "redis_rdb_dump", "core_dumps", "every_place", "scan_places",
           "NOT_SCANNED"]

# Not read as files, relative to var/: the issuer's card book (PANs are its business), the logs
# of the previous run (this run is judged), and WAVs, whose collector reads the keys in them
# (audio is no text). The captures every_place reads by link are not read as files either: the
# acquirer link in them carries PAN and expiry, where they belong.
NOT_SCANNED = ("acquirer/cardbook.json", "log/previous/*", "**/*.wav")
# An AGI answer holding nothing but keys ("200 result=119922", maybe "(timeout)"): GET DATA's.
_KEYED_ANSWER = re.compile(rb"(?m)^(200 result=)[0-9*#]+(?= \(timeout\)\r?$|\r?$)")
_RFC4733 = 101  # the telephone-event payload type our SDP offers
_EVENT_KEYS = "0123456789*#ABCD"


@dataclass(frozen=True, repr=False)
class Place:
    where: str
    data: bytes

    def __repr__(self) -> str:
        return f"Place({self.where}, {len(self.data)} bytes)"


def var_files(var_dir: Path, read_elsewhere: Iterable[Path] = ()) -> Iterator[Place]:
    skipped = {path for pattern in NOT_SCANNED for path in var_dir.glob(pattern)}
    skipped |= set(read_elsewhere)
    for path in sorted(var_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and path not in skipped:
            yield Place(f"var/{path.relative_to(var_dir)}", path.read_bytes())


def recordings(var_dir: Path) -> Iterator[Place]:
    """The keys heard in each recording, one a line: a PIN keyed into one reads as its digits."""
    for path in sorted(var_dir.rglob("*.wav")):
        keys = "\n".join(digit for _, digit in detect_dtmf(path))  # one key a line, as keyed
        yield Place(f"var/{path.relative_to(var_dir)} (DTMF heard)", keys.encode())


def _tshark(capture: Path, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(capture), "-T", "fields"]
    for name in fields:
        argv += ["-e", name]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    # A capture still being written ends mid-packet: what comes before is whole and is read.
    if result.returncode != 0 and "cut short" not in result.stderr:
        raise RuntimeError(f"tshark could not read {capture}: {result.stderr.strip()[-300:]}")
    return [line.split("\t") for line in result.stdout.splitlines()]


def _tcp_streams(capture: Path) -> dict[tuple[str, int, int], bytes]:
    """(stream, source port, destination port) -> the payload bytes, in capture order."""
    streams: dict[tuple[str, int, int], bytearray] = defaultdict(bytearray)
    for stream, src, dst, payload in _tshark(capture, "tcp.stream", "tcp.srcport", "tcp.dstport",
                                             "tcp.payload"):
        if payload:
            streams[(stream, int(src), int(dst))] += bytes.fromhex(payload.replace(":", ""))
    return {key: bytes(value) for key, value in streams.items()}


def capture_streams(capture: Path, links: dict[int, str], *, agi_port: int | None = None,
                    udp_link: str | None = None) -> Iterator[Place]:
    """Each direction of each TCP stream to or from a port in ``links`` (port -> "AMI"...), and
    the UDP to those ports (to any port, named ``udp_link``, if given: a phone leg's capture
    holds that leg's packets only, whatever their ports): SIP as text, RTP key events as the
    keys they carry; RTP audio is no text and is not read. From the FastAGI port ``agi_port``,
    the keys a GET DATA collected are left out: that answer is how the keyed digits reach the
    IVR, the one place on the wire they must be (everything else is read)."""
    for (stream, src, dst), data in sorted(_tcp_streams(capture).items()):
        link = links.get(dst) or links.get(src)
        if link is not None:
            side = "to" if dst in links else "from"
            if side == "to" and dst == agi_port:
                data = _KEYED_ANSWER.sub(rb"\1<keyed>", data)
            yield Place(f"{link} traffic ({side} port {dst if side == 'to' else src}, "
                        f"stream {stream}, {capture.name})", data)
    udp: dict[int, bytearray] = defaultdict(bytearray)
    keys: dict[int, list[str]] = defaultdict(list)
    event_of: dict[int, bytes] = {}
    link_of: dict[int, str] = {}
    for dst, payload in _tshark(capture, "udp.dstport", "udp.payload"):
        port = int(dst or 0)
        link = links.get(port, udp_link)
        if not payload or link is None:
            continue
        raw, link_of[port] = bytes.fromhex(payload.replace(":", "")), link
        if len(raw) >= 16 and raw[0] >> 6 == 2 and raw[1] & 0x7F == _RFC4733:
            # One key per event: all packets of an event share its RTP timestamp.
            if event_of.get(port) != raw[4:8]:
                event_of[port] = raw[4:8]
                keys[port].append(_EVENT_KEYS[raw[12]] if raw[12] < len(_EVENT_KEYS) else "?")
        elif not (len(raw) >= 12 and raw[0] >> 6 == 2):  # not RTP: SIP
            udp[port] += raw + b"\n"
    for port, data in sorted(udp.items()):
        yield Place(f"{link_of[port]} SIP (port {port}, {capture.name})", bytes(data))
    for port, pressed in sorted(keys.items()):
        yield Place(f"{link_of[port]} key events (port {port}, {capture.name})",
                    "\n".join(pressed).encode())


def pin_blocks_in_capture(capture: Path, acquirer_port: int | None = None) -> list[bytes]:
    """The PIN blocks of every purchase request sent to the acquirer in ``capture``."""
    if acquirer_port is None:
        from ivr.config import load_settings
        acquirer_port = load_settings().acquirer_port
    return [block for (_, _, dst), data in _tcp_streams(capture).items() if dst == acquirer_port
            for block in pin_blocks_in_stream(data)]


def redis_values(client: redis.Redis) -> Iterator[Place]:
    """One place per key: its name and every value of its type (stream entries with their ids,
    sorted-set members with their scores). Named by type and the key's shape (digits masked)."""
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        parts: list[bytes] = [key]
        if kind == "string":
            parts.append(client.get(key) or b"")
        elif kind == "hash":
            parts += [part for item in client.hgetall(key).items() for part in item]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "set":
            parts += sorted(client.smembers(key))
        elif kind == "zset":
            parts += [b"%s %r" % (member, score)
                      for member, score in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            parts += [part for entry_id, fields in client.xrange(key)
                      for part in (entry_id, *(p for item in fields.items() for p in item))]
        shape = "".join("#" if chr(c).isdigit() else chr(c) for c in key[:40])
        yield Place(f"Redis {kind} {shape}", b"\n".join(parts))


def redis_rdb_dump(client: redis.Redis) -> Place:
    """An RDB snapshot (SAVE) with string compression off, so what Redis holds reads as written;
    numbers it stores as integers the scan looks for in their encodings. Read, then removed: it
    is one more copy on disk of what Redis holds."""
    client.config_set("rdbcompression", "no")
    client.save()
    directory, name = client.config_get("dir")["dir"], client.config_get("dbfilename")["dbfilename"]
    dump = Path(directory) / name
    try:
        return Place("Redis RDB dump", dump.read_bytes())
    finally:
        dump.unlink(missing_ok=True)


def core_dumps(*roots: Path) -> Iterator[Place]:
    """Core files a crashed process left in the repository (those under var/ are var_files')."""
    for root in roots or (REPO_ROOT,):
        for path in sorted(root.glob("core*")):
            if path.is_file():
                yield Place(f"core dump {path.name}", path.read_bytes())


def scan_places(places: Iterable[Place], index: SecretIndex) -> list[Leak]:
    return [leak for place in places for leak in scan_bytes(place.data, place.where, index)]



def every_place(var_dir: Path, client: redis.Redis, captures: dict[Path, dict[int, str]], *,
                agi_port: int, core_roots: Iterable[Path] = (REPO_ROOT,)) -> Iterator[Place]:
    """All of the above: what the end-to-end scan reads, and what its proof plants into. The
    ``captures`` are read by their links; every other capture (``*.pcapng``) under var/ is a
    phone leg's (the packet captures SIPp plays, ``*.pcap``, are the test's own keys)."""
    phone_legs = [path for path in sorted(var_dir.rglob("*.pcapng")) if path not in captures]
    yield from var_files(var_dir, read_elsewhere=[*captures, *phone_legs])
    yield from recordings(var_dir)
    for capture, links in captures.items():
        if capture.exists():
            yield from capture_streams(capture, links, agi_port=agi_port)
    for leg in phone_legs:
        yield from capture_streams(leg, {}, udp_link="phone leg")
    yield from redis_values(client)
    yield redis_rdb_dump(client)
    yield from core_dumps(*core_roots)
