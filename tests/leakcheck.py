"""Looks for test card data, ID numbers and PIN blocks where they must never be, in any form.

The secrets are tests/leak_secrets.py's; the places are tests/leak_places.py's. A secret counts
in each of the forms a careless log line, event or dump could give it:

- as is: a card or ID number anywhere; a PIN or CVV2 as a token of its own (inside a longer
  number or hex id it is chance: a timestamp's milliseconds are not a CVV2);
- separated: a card or ID number with spaces, dashes, dots or slashes between digits or groups;
- partial: 10 or more consecutive digits of a card number (more than the first 6 or last 4), six
  or more of them, three different at least, past leading zeros (and, across separators, before
  trailing zeros): fewer is a zero-padded number or a zero fraction by chance;
- one digit at a time: single-digit tokens reassembled across lines, events or records whose
  text in between repeats (one period, or two: a DTMF begin/end pair);
- keyed, as Asterisk logs each key it reads (at debug level, or with the ``dtmf`` log level):
  the digits of such lines joined per stream (RTP instance, channel or call), in any amount of
  other lines between them;
- labelled: ``PIN119922``, ``pin: 119922``, ``CVV2=398``, ``exp 1230``, ``expiry=12/30``;
- a clear ISO 9564 PIN field (format 0, 1, 3 or 4) holding a test PIN;
- a PIN block: hex in any case, raw bytes, base64; in a Redis RDB also as an encoded integer;
- UTF-16 (either byte order, any alignment): runs of it in any byte input are read as text too.

A report names the place, the kind and the owner (a test card, an identity), never the secret.

    python -m tests.leakcheck [--capture LINKS.pcapng] FILE...   # exit 1 and say where if leaked
"""

from __future__ import annotations

import argparse
import base64
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.leak_secrets import (CARD_NUMBER, CVV2, EXPIRY, ID_NUMBER, PIN, PIN_BLOCK, Secret,
                                all_secrets)

__all__ = ["Leak", "SecretIndex", "scan_text", "scan_bytes", "scan_files",
           "PARTIAL_CARD_NUMBER", "CLEAR_PIN_FIELD", "PARTIAL_RUN"]

PARTIAL_CARD_NUMBER, CLEAR_PIN_FIELD = "partial card number", "clear PIN field"
# Ten digits of a test PAN in a row (three different ones at least) is no chance; the first 6 and
# the last 4 are allowed apart.
PARTIAL_RUN = 10

_SEP = r"[ \t\-./_]{0,3}"
_DIGIT_RUN = re.compile(rf"\d(?:{_SEP}\d)*(?:{_SEP}[Xx](?![0-9A-Za-z]))?")
_TOKEN = re.compile(r"(?<![0-9A-Za-z])\d{3,12}(?![0-9A-Za-z])")
_SINGLE_DIGIT = re.compile(r"(?<![0-9A-Za-z])\d(?![0-9A-Za-z])")
_LABEL = re.compile(
    r"(?i)(?P<label>pin|cvv2?|cvc2?|cvn2?|csc|passwd|password"
    r"|exp(?:iry|iration)?(?:[ _-]?date)?|valid(?:ity)?(?:[ _-]?thru)?)"
    r"[^0-9A-Za-z\n]{0,3}(?P<value>\d{2,12}(?:[/\-. ]\d{2,4})?)(?![0-9A-Za-z])")
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}")
_UTF16_RUN = re.compile(rb"(?:[\x20-\x7e]\x00|\x00[\x20-\x7e]|[\n\r\t]\x00|\x00[\n\r\t]){4,}")
_GAP = 2000  # the most text between two digits keyed one at a time that still joins them


@dataclass(frozen=True)
class Leak:
    where: str
    kind: str
    owner: str  # a test card's name, an identity's label: never the secret itself
    form: str = "as is"

    def __str__(self) -> str:
        return f"{self.kind} of {self.owner!r} ({self.form}) found in {self.where}"


@dataclass
class SecretIndex:
    """The secrets, by what the scan looks up: built once, used for every place."""

    secrets: list[Secret]
    by_value: dict[tuple[str, str], Secret] = field(default_factory=dict)
    of_kind: dict[str, list[Secret]] = field(default_factory=dict)
    pan_windows: dict[str, Secret] = field(default_factory=dict)
    pan_windows_separated: dict[str, Secret] = field(default_factory=dict)
    pin_fields: list[tuple[re.Pattern[str], Secret]] = field(default_factory=list)
    expiries: dict[str, Secret] = field(default_factory=dict)
    block_forms: list[tuple[str, str, Secret]] = field(default_factory=list)
    rdb_forms: list[tuple[str, Secret]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for secret in self.secrets:
            self.by_value[(secret.kind, secret.value)] = secret
            self.of_kind.setdefault(secret.kind, []).append(secret)
            if secret.kind == CARD_NUMBER:
                for start in range(len(secret.value) - PARTIAL_RUN + 1):
                    window = secret.value[start:start + PARTIAL_RUN]
                    # The test PANs are mostly zeros: "0000000000" is any debug line's
                    # "rtt: 0.000000000", "0000000017" any zero-padded fixed-width 17 (an amount
                    # in the acquirer's ZM file), not a card: past its leading zeros a window
                    # must be a long and varied number. Across separators, where a decimal point
                    # may join two numbers, trailing zeros are chance too ("8200000000" is any
                    # "lost: 268.200000000").
                    if _varied(window.lstrip("0")):
                        self.pan_windows.setdefault(window, secret)
                    if _varied(window.strip("0")):
                        self.pan_windows_separated.setdefault(window, secret)
            elif secret.kind == PIN:
                self.pin_fields.append((_clear_pin_fields(secret.value), secret))
            elif secret.kind == EXPIRY:
                yy, mm = secret.value[:2], secret.value[2:]
                for form in (mm + yy, yy + mm, f"{mm}/{yy}", f"{yy}/{mm}", f"{mm}-{yy}",
                             f"{mm}.{yy}", f"{mm} {yy}", f"{mm}/20{yy}", f"20{yy}-{mm}",
                             f"20{yy}/{mm}", f"{mm}20{yy}", f"20{yy}{mm}"):
                    self.expiries.setdefault(form, secret)
            elif secret.kind == PIN_BLOCK:
                raw = bytes.fromhex(secret.value)
                self.block_forms += [(raw.decode("latin-1"), "raw bytes", secret),
                                     (base64.b64encode(raw).decode()[:21], "base64", secret)]
            if secret.kind in (PIN, CARD_NUMBER) and not secret.value.startswith("0"):
                self.rdb_forms += [(form, secret) for form in _redis_integer_forms(int(secret.value))]

    @classmethod
    def of(cls, secrets: Iterable[Secret] | None = None) -> SecretIndex:
        return cls(list(secrets) if secrets is not None else all_secrets())


def _clear_pin_fields(pin: str) -> re.Pattern[str]:
    """ISO 9564 clear PIN fields: control nibble, length nibble, PIN, fill. Format 0 fills with
    F, 3 with A-F, 4 with A; format 1 with random hex (so only a whole 16-nibble field counts).
    Any length nibble: a field is a field even when its length nibble is wrong."""
    fill = 14 - len(pin)
    return re.compile(
        rf"(?i)(?:0[0-9a-f]{pin}f{{2,}}|3[0-9a-f]{pin}[a-f]{{2,}}|4[0-9a-f]{pin}a{{2,}}"
        rf"|(?<![0-9a-f])1[0-9a-f]{pin}[0-9a-f]{{{fill}}}(?![0-9a-f]))")


def _redis_integer_forms(value: int) -> list[str]:
    """How an RDB file stores a string that is an integer: RDB's own int encoding (int32 range)
    and the listpack encodings of hashes, lists and sorted sets (24, 32 or 64 bits)."""
    forms: list[bytes] = []
    if value < 2**31:
        forms.append(b"\xc2" + struct.pack("<i", value))
    if value < 2**23:
        forms.append(b"\xf2" + struct.pack("<i", value)[:3])
    elif value < 2**31:
        forms.append(b"\xf3" + struct.pack("<i", value))
    elif value < 2**63:
        forms.append(b"\xf4" + struct.pack("<q", value))
    return [form.decode("latin-1") for form in forms]


def scan_text(text: str, where: str, index: SecretIndex | None = None, *,
              form: str = "", rdb: bool = False) -> list[Leak]:
    """Every secret of ``index`` (all of them by default) in ``text``, once per kind and owner."""
    index = index or SecretIndex.of()
    found: dict[tuple[str, str], Leak] = {}

    def hit(kind: str, secret: Secret, how: str) -> None:
        how = f"{how}, {form}" if form else how
        found.setdefault((kind, secret.owner), Leak(where, kind, secret.owner, how))

    _digit_runs(text, index, hit)
    _tokens(text, index, hit)
    _labelled(text, index, hit)
    _one_at_a_time(text, index, hit)
    _keys_in_asterisk_log(text, index, hit)
    _pin_fields_and_blocks(text, index, hit, rdb=rdb)
    return list(found.values())


def scan_bytes(raw: bytes, where: str, index: SecretIndex | None = None) -> list[Leak]:
    """``raw`` read as 8-bit text, and its UTF-16 runs (printable ASCII with a NUL before or
    after each character: either byte order, any alignment) read with the NULs removed. A Redis
    RDB file is also searched for the integer encodings of numeric secrets."""
    index = index or SecretIndex.of()
    wide = "\n".join(run.replace(b"\x00", b"").decode("latin-1") for run in _UTF16_RUN.findall(raw))
    leaks = scan_text(wide, where, index, form="UTF-16") if wide else []
    seen = {(leak.kind, leak.owner) for leak in leaks}
    return leaks + [leak for leak in scan_text(raw.decode("latin-1"), where, index,
                                               rdb=raw.startswith(b"REDIS"))
                    if (leak.kind, leak.owner) not in seen]


def scan_files(paths: Iterable[Path], index: SecretIndex | None = None) -> list[Leak]:
    index = index or SecretIndex.of()
    return [leak for path in paths if path.is_file()
            for leak in scan_bytes(path.read_bytes(), str(path), index)]


def _varied(digits: str) -> bool:
    return len(digits) >= 6 and len(set(digits)) >= 3


def _digit_runs(text: str, index: SecretIndex, hit) -> None:
    """Card and ID numbers, whole or partial, as is or with separators between digits."""
    for match in _DIGIT_RUN.finditer(text):
        run = match.group()
        if len(run) < PARTIAL_RUN:
            continue
        digits = re.sub(r"[^0-9Xx]", "", run).upper()
        how = "as is" if digits == run.upper() else "separated"
        whole = False
        for kind in (CARD_NUMBER, ID_NUMBER):
            for secret in index.of_kind.get(kind, []):
                if secret.value in digits:
                    hit(kind, secret, how)
                    whole = True
        if whole:
            continue
        plain = digits.rstrip("X")
        windows = index.pan_windows if how == "as is" else index.pan_windows_separated
        for start in range(len(plain) - PARTIAL_RUN + 1):
            secret = windows.get(plain[start:start + PARTIAL_RUN])
            if secret is not None:
                hit(PARTIAL_CARD_NUMBER, secret, how)


# Asterisk's logger names the thread of each line: ``DEBUG[552][C-00000013]``. Inside its PID
# namespace thread ids are small, so a 3-digit one equals a test CVV2 by chance (a CI run hit it).
_LOG_THREAD_ID = re.compile(r"(?:DEBUG|VERBOSE|NOTICE|WARNING|ERROR|DTMF|SECURITY)\[$")


# ... and a line of jitter statistics for every RTP packet it receives (``res_rtp_asterisk.c:
# <call>: pkt:   456 Arrival sec: 9.118 ... RX ts: 119920``): packet counts and RTP timestamps,
# one equal to a test CVV2 or PIN by chance once a phone has streamed audio for some seconds.
_RTP_STATISTICS_LINE = re.compile(r"[^\n]*DEBUG\[\d+\][^\n]* res_rtp_asterisk\.c: \S+: pkt: ")


# ... and SIPp's warning that its watchdog tripped, starved for a core (``the minor watchdog
# timer 500ms has been tripped (552), 119 trips remaining.``): counters, one a test CVV2 once.
_SIPP_WATCHDOG_LINE = re.compile(r"[^\n]*: Overload warning: the (?:minor|major) watchdog timer ")


# ... and SIPp's -trace_rtt lines (``112.001;398;refused``: milliseconds since start, a response
# time in ms, the measure's name), which the overload tests read: on a busy CI machine a
# refusal's response time can take a test CVV2's number of milliseconds.
_SIPP_RTT_LINE = re.compile(r"\d+\.\d+;\d+;\w+\r?(?:\n|$)")


def _on_chance_line(text: str, position: int) -> bool:
    start = text.rfind("\n", 0, position) + 1
    return any(line.match(text, start) is not None
               for line in (_RTP_STATISTICS_LINE, _SIPP_WATCHDOG_LINE, _SIPP_RTT_LINE))


# ... and counters and timings whose label stands just before the number, each a test CVV2 by
# chance once it ran high enough (each seen in an e2e run), with how far back the label may start:
_CHANCE_NUMBER_LABELS = (
    # PJSIP names each SIP message it handles by its CSeq (``Response msg 200/BYE/cseq=398
    # (rdata0x...)``): a dialog's counter, which a SIP INFO caller's many requests run up.
    (re.compile(r"(?:Request|Response) msg [\w/]+/cseq=$"), 40),
    # panoramisk numbers the AMI actions it sends (``ActionID: action/<uuid>/1/398``): a
    # connection's counter, which twenty talk-through payments' actions ran up.
    (re.compile(r"ActionID: action/[0-9a-f-]+/\d+/$"), 80),
    # At start Asterisk times each codec translator it registers (``Registered translator
    # 'speexwbtolin16' ... computational cost 3xx``): a measured timing.
    (re.compile(r"computational cost $"), 30),
    # A Python traceback names the line of each frame (``File "...", line 398, in f``); the
    # Redis restart test leaves tracebacks through whichever lines were in flight.
    (re.compile(r'File "[^"\n]*", line $'), 400),
    # Redis' append-only file is RESP: a bulk string's length (``$398``) or an array's size
    # (``*3``) on a line of its own before the data; a JSON entry's length varies with its times.
    (re.compile(r"(?:^|\n)[$*]$"), 2),
)


def _after_chance_label(text: str, position: int) -> bool:
    return any(label.search(text, max(0, position - reach), position) is not None
               for label, reach in _CHANCE_NUMBER_LABELS)


def _tokens(text: str, index: SecretIndex, hit) -> None:
    """A PIN or CVV2 standing alone, never a decimal fraction, a log line's thread id, a number
    in Asterisk's RTP statistics, SIPp's watchdog warning or its response times, or one after a
    counter's or timing's label (PJSIP's CSeq, panoramisk's AMI action counter, a translator's
    cost, a traceback's line, a RESP length); a CVV2 not after a dot or colon either
    (13:42:26.398)."""
    for match in _TOKEN.finditer(text):
        value = match.group()
        if (text[match.end():match.end() + 1] == "]"
                and _LOG_THREAD_ID.search(text, max(0, match.start() - 9), match.start())):
            continue
        if (((PIN, value) in index.by_value or (CVV2, value) in index.by_value)
                and (_on_chance_line(text, match.start())
                     or _after_chance_label(text, match.start()))):
            continue
        # The fraction of a decimal number (an AMI ``Timestamp: 1764249746.119922``) is chance.
        fraction = text[match.start() - 1:match.start()] == "." and \
            text[match.start() - 2:match.start() - 1].isdigit()
        if (secret := index.by_value.get((PIN, value))) is not None and not fraction:
            hit(PIN, secret, "as is")
        if (secret := index.by_value.get((CVV2, value))) is not None:
            before = text[match.start() - 1:match.start()]
            after = text[match.end():match.end() + 1]
            if before not in (".", ":") and after not in (".", ":"):
                hit(CVV2, secret, "as is")


def _labelled(text: str, index: SecretIndex, hit) -> None:
    for match in _LABEL.finditer(text):
        label, value = match.group("label").lower(), match.group("value")
        if label.startswith(("exp", "valid")):
            if (secret := index.expiries.get(value)) is not None:
                hit(EXPIRY, secret, "labelled")
            continue
        digits = re.sub(r"\D", "", value)
        for kind in (PIN, CVV2):
            if (secret := index.by_value.get((kind, digits))) is not None:
                hit(kind, secret, "labelled")


def _one_at_a_time(text: str, index: SecretIndex, hit) -> None:
    """Single-digit tokens joined while the text between them repeats with a period of one or two
    (digits in it ignored): one digit per line, per event or per record, or begin/end pairs (each
    digit twice). A CVV2 or an expiry is too short to tell from chance in this form."""
    tokens = list(_SINGLE_DIGIT.finditer(text))
    gaps = [text[a.end():b.start()] for a, b in zip(tokens, tokens[1:])]
    shapes = [re.sub(r"\d+", "0", gap) for gap in gaps]
    segments: list[tuple[int, int]] = []  # token ranges [first, last]
    first = 0
    for j, shape in enumerate(shapes):  # gap j joins tokens j and j + 1
        if len(gaps[j]) > _GAP:
            segments.append((first, j))
            first = j + 1
        elif j - first >= 2 and shape != shapes[j - 2]:
            segments.append((first, j))
            first = j - 1  # the last two digits may begin a secret keyed after them
    segments.append((first, len(tokens) - 1))
    wanted = [s for s in index.secrets if s.kind in (PIN, CARD_NUMBER, ID_NUMBER)]
    for first, last in segments:
        if last - first < 3:
            continue
        run = "".join(token.group() for token in tokens[first:last + 1])
        for secret in wanted:
            if secret.value in run or "".join(d * 2 for d in secret.value) in run:
                hit(secret.kind, secret, "one digit at a time")


# The lines in which Asterisk says it read one key, each with the stream it belongs to: the RTP
# instance of an RFC 4733 event, the channel of an in-band tone or of a key at the dtmf log level,
# the call of the detector's own hits. Other lines of any number come between two keys.
_KEY_LINES = re.compile(
    r"\[(?P<call>C-[0-9a-f]{8})\]|"
    r"res_rtp_asterisk\.c: \((?P<rtp>0x[0-9a-f]+)\) RTP creating BEGIN DTMF Frame: \d+ \((?P<k1>.)\)|"
    r"Detected inband DTMF '(?P<k2>.)' on '(?P<channel>[^']+)'|"
    r"DTMF end '(?P<k3>.)' received on (?P<dtmf_channel>\S+?),|"
    r"dsp\.c: DTMF hit '(?P<hit>.)'")


def _keys_in_asterisk_log(text: str, index: SecretIndex, hit) -> None:
    """The keys Asterisk logs one per line, joined per stream. The in-band detector's hits come
    several to a key, so they are compared with runs of repeated digits collapsed, and only for
    secrets that are still long enough then to be no chance."""
    streams: dict[str, list[str]] = {}
    detector: dict[str, list[str]] = {}
    call = ""
    for match in _KEY_LINES.finditer(text):
        if match.group("call"):
            call = match.group("call")
        elif match.group("hit"):
            keys = detector.setdefault(call, [])
            if not keys or keys[-1] != match.group("hit"):
                keys.append(match.group("hit"))
        else:
            stream = match.group("rtp") or match.group("channel") or match.group("dtmf_channel")
            streams.setdefault(stream, []).append(
                match.group("k1") or match.group("k2") or match.group("k3"))
    keyed = [(secret, secret.value) for secret in index.secrets
             if secret.kind in (PIN, CARD_NUMBER, CVV2, ID_NUMBER)]
    keyed += [(secret, form) for form, secret in index.expiries.items() if form.isdigit()]
    for keys in streams.values():
        run = "".join(keys)
        for secret, value in keyed:
            if value in run:
                hit(secret.kind, secret, "keyed, as Asterisk logs keys")
    for keys in detector.values():
        run = "".join(keys)
        for secret, value in keyed:
            collapsed = re.sub(r"(.)\1+", r"\1", value)
            if len(collapsed) >= 5 and collapsed in run:
                hit(secret.kind, secret, "keyed, as Asterisk's detector logs keys")


def _pin_fields_and_blocks(text: str, index: SecretIndex, hit, *, rdb: bool) -> None:
    for pattern, secret in index.pin_fields:
        if pattern.search(text):
            hit(CLEAR_PIN_FIELD, secret, "hex")
    blocks = {s.value: s for s in index.of_kind.get(PIN_BLOCK, [])}
    if blocks:
        for match in _HEX_RUN.finditer(text):
            run = match.group().upper()
            for start in range(len(run) - 31):
                if (secret := blocks.get(run[start:start + 32])) is not None:
                    hit(PIN_BLOCK, secret, "hex")
        for form, how, secret in index.block_forms:
            if form in text:
                hit(PIN_BLOCK, secret, how)
    if rdb:
        for form, secret in index.rdb_forms:
            if form in text:
                hit(secret.kind, secret, "RDB integer")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.leakcheck")
    parser.add_argument("--capture", type=Path, action="append", default=[],
                        help="a capture of the acquirer link (one per shard): its PIN blocks are "
                             "searched for too")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    blocks: list[bytes] = []
    for capture in args.capture:
        if capture.exists():
            from tests.leak_places import pin_blocks_in_capture
            blocks += pin_blocks_in_capture(capture)
    leaks = scan_files(args.files, SecretIndex.of(all_secrets(blocks)))
    for leak in leaks:
        print(f"LEAK: {leak}")
    print(f"leakcheck: {len(args.files)} files scanned, {len(leaks)} leaks")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
