"""The leak scanner finds every form of every secret (else the end-to-end check proves nothing),
and nothing in what a clean run writes. Each form below was missed by the exact-string scanner."""

import base64
from pathlib import Path

import pytest

from ivr.validation import id_number_check_char
from simulators.acquirer.testcards import find_test_card
from tests.leak_secrets import (CARD_NUMBER, CVV2, EXPIRY, ID_NUMBER, PIN, PIN_BLOCK, Secret,
                                id_number_secrets, card_secrets)
from tests.leakcheck import (CLEAR_PIN_FIELD, PARTIAL_CARD_NUMBER, SecretIndex, main, scan_bytes,
                             scan_files, scan_text)

APPROVE = find_test_card("approve")          # PIN 6 digits, expiry YYMM
CREDIT = find_test_card("credit_approve")    # has a CVV2
DEMO_ID = "11010519491231002X"               # the identity registry's demo cardholder
BLOCK = bytes.fromhex("8E4A1F0C22D35B7790AB0C1D2E3F4051")  # a made-up completed PIN block
INDEX = SecretIndex.of([*card_secrets(), *id_number_secrets([]),
                        Secret(PIN_BLOCK, "PIN block 1", BLOCK.hex().upper())])


def kinds(text: str) -> set[tuple[str, str]]:
    return {(leak.kind, leak.owner) for leak in scan_text(text, "sample", INDEX)}


def _spaced(value: str, sep: str, group: int) -> str:
    return sep.join(value[i:i + group] for i in range(0, len(value), group))


@pytest.mark.parametrize("sample", [
    _spaced(APPROVE.pan, " ", 4), _spaced(APPROVE.pan, "-", 4), _spaced(APPROVE.pan, ".", 1),
    _spaced(APPROVE.pan, " ", 1), _spaced(APPROVE.pan, " - ", 4), f"card={APPROVE.pan}",
], ids=["spaces", "dashes", "dots", "one-space", "spaced-dashes", "as-is"])
def test_card_numbers_with_separators(sample):
    found = kinds(f"log: {sample} end")
    assert (CARD_NUMBER, "approve") in found


@pytest.mark.parametrize("part", [APPROVE.pan[:12], APPROVE.pan[3:14], APPROVE.pan[-11:]],
                         ids=["first-12", "middle-11", "last-11"])
def test_more_of_a_card_number_than_first_6_and_last_4(part):
    found = kinds(f"card {part} seen")
    assert found == {(PARTIAL_CARD_NUMBER, "approve")}


@pytest.mark.parametrize("masked", [f"{APPROVE.pan[:6]}******{APPROVE.pan[-4:]}",
                                    f"{APPROVE.pan[:6]} **** **** {APPROVE.pan[-4:]}"],
                         ids=["stars", "grouped"])
def test_first_6_and_last_4_are_fine(masked):
    found = kinds(f"card {masked}")
    assert found == set()


def test_digits_one_per_line_per_record_and_per_event():
    per_line = "\n".join(APPROVE.pin)
    per_record = "\n".join(f"2026-11-25 13:42:{20 + i}.{100 + 7 * i} INFO ivr.agi: key {d}"
                           for i, d in enumerate(APPROVE.pin))
    # An AMI DTMFBegin and DTMFEnd per key: each digit twice, two alternating event shapes.
    per_event = "".join(
        f"Event: DTMF{edge}\r\nUniqueid: 1764249746.{40 + i}\r\nDigit: {d}\r\n\r\n"
        for i, d in enumerate(APPROVE.pin) for edge in ("Begin", "End"))
    preceded = "attempt 1 of 3\nstate 2\n" + per_line  # noise before the digits
    for name, sample in (("line", per_line), ("record", per_record), ("event", per_event),
                         ("after noise", preceded)):
        found = kinds(sample)
        assert (PIN, "approve") in found, name
    found = kinds("\n".join(f"d={d}" for d in APPROVE.pan))
    assert (CARD_NUMBER, "approve") in found


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16"])
def test_utf16_text_either_byte_order(encoding):
    for text, expected in ((f"pan {APPROVE.pan}", CARD_NUMBER), (f"pin={APPROVE.pin}", PIN)):
        for prefix in (b"", b"\x07"):  # at an odd offset inside a binary file too
            leaks = scan_bytes(prefix + text.encode(encoding), "sample.bin", INDEX)
            found = [(leak.kind, leak.form) for leak in leaks]
            assert found == [(expected, "as is, UTF-16")]


@pytest.mark.parametrize("sample,expected", [
    (f"PIN{APPROVE.pin}", (PIN, "approve")), (f"pin:{APPROVE.pin}", (PIN, "approve")),
    (f"Pin = {APPROVE.pin}", (PIN, "approve")), (f"cvv2:{CREDIT.cvv2}", (CVV2, "credit_approve")),
    (f"CVV2={CREDIT.cvv2}", (CVV2, "credit_approve")), (f"cvv {CREDIT.cvv2}ms", None),
], ids=["PIN-glued", "pin-colon", "Pin-equals", "cvv2-colon", "CVV2-equals", "cvv-in-a-word"])
def test_labelled_short_secrets(sample, expected):
    found = kinds(f"x {sample} y")
    if expected:
        assert expected in found
    else:
        assert found == set()


def test_expiry_dates_next_to_a_label():
    yy, mm = APPROVE.expiry[:2], APPROVE.expiry[2:]
    for name, sample in (("keyed", f"exp {mm}{yy}"), ("slash", f"expiry={mm}/{yy}"),
                         ("stored", f"EXP_DATE: {APPROVE.expiry}"),
                         ("long year", f"valid thru {mm}/20{yy}")):
        found = kinds(sample)
        assert (EXPIRY, "approve") in found, name
    # Unlabelled, four digits are anything (a port, a year): not reported.
    found = kinds(f"port {mm}{yy} and {APPROVE.expiry}")
    assert found == set()


@pytest.mark.parametrize("field", [
    f"46{APPROVE.pin}AAAAAAAA", f"44{APPROVE.pin}aaaa", f"06{APPROVE.pin}FFFFFFFF",
    f"36{APPROVE.pin}BCDEFACB", f"16{APPROVE.pin}3a7f09c1",
], ids=["format-4", "format-4-reviewer", "format-0", "format-3", "format-1"])
def test_clear_pin_fields_of_iso_9564_formats_0_1_3_4(field):
    found = kinds(f"field={field}0123456789ABCDEF"[:-16] if field.startswith("16") else
                  f"field={field}0123456789ABCDEF")
    assert (CLEAR_PIN_FIELD, "approve") in found


def test_pin_blocks_in_hex_of_any_case_raw_and_base64():
    for name, sample in (("lower", BLOCK.hex()), ("upper", BLOCK.hex().upper()),
                         ("inside", f"msg 0200{BLOCK.hex()}ff"),
                         ("base64", base64.b64encode(BLOCK).decode())):
        found = kinds(sample)
        assert found == {(PIN_BLOCK, "PIN block 1")}, name
    assert [leak.form for leak in scan_bytes(b"\x00\x10" + BLOCK, "x", INDEX)] == ["raw bytes"]


@pytest.mark.parametrize("sample", [DEMO_ID, DEMO_ID.lower(), "110105 19491231 002x",
                                    "110105-1949-1231-002X"],
                         ids=["upper", "lower", "spaces", "dashes"])
def test_id_numbers(sample):
    found = kinds(f"id {sample} ok")
    assert (ID_NUMBER, "demo") in found


def test_id_numbers_spelled_out_in_the_tests_are_secrets_too(tmp_path):
    first17 = "11010119900307123"
    number = first17 + id_number_check_char(first17)
    source = tmp_path / "test_x.py"
    source.write_text(f"A = '{number}'\nB = '{first17}0'  # a wrong check character: not an ID\n")
    found = {s.value for s in id_number_secrets([source])}
    assert number in found and f"{first17}0" not in found


def test_a_pin_inside_a_longer_number_is_not_a_leak():
    found = kinds(f"timestamp 17{APPROVE.pin}42")
    assert found == set()


def test_what_a_clean_run_writes_is_clean():
    clean = "\n".join([
        f"2026-11-25 13:42:26.{CREDIT.cvv2} INFO ivr.paying: payment pay_1a2b3c: approved",
        "[2026-11-25 13:42:26.398] VERBOSE[1234][C-00000001] pbx.c: Executing [s@pay:1] "
        "AGI(\"PJSIP/caller-00000003\", \"agi://127.0.0.1:4573/selfservice\")",
        "Uniqueid: 1764249746.3\r\nLinkedid: 1764249746.1\r\nActionID: 4f1e9a2b7c3d",
        f"card {APPROVE.pan[:6]}******{APPROVE.pan[-4:]} id 110105********002X mobile 13800138101",
        "attempt 1 of 3", "amount 10000 fen, stan 000123, rrn 633012345678",
        "trace 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ])
    found = kinds(clean)
    assert found == set()
    found_wide = scan_bytes(clean.encode("utf-16-le"), "clean", INDEX)
    assert found_wide == []


def test_reports_name_place_kind_and_owner_never_the_secret(capsys, tmp_path):
    leaky = tmp_path / "a.log"
    leaky.write_text(f"oops {APPROVE.pan} pin {APPROVE.pin}\n")
    (tmp_path / "b.log").write_text("clean\n")
    leaks = scan_files([leaky, tmp_path / "b.log"], INDEX)
    assert {(leak.where, leak.kind) for leak in leaks} == {(str(leaky), CARD_NUMBER), (str(leaky), PIN)}
    assert main([str(leaky)]) == 1
    printed = capsys.readouterr().out
    assert "a.log" in printed and "approve" in printed
    assert APPROVE.pan not in printed and APPROVE.pin not in printed


def test_the_service_log_format_puts_a_dot_before_milliseconds():
    """Why a CVV2 after a dot is not a leak: the service's own log format puts one there."""
    import logging

    from ivr.log import configure_logging
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        configure_logging("INFO")
        formatter = root.handlers[0].formatter
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.msecs = 398
        assert ".398 INFO" in formatter.format(record)
    finally:
        root.handlers[:] = saved


@pytest.mark.parametrize("line", [
    # A ZM file detail line: terminal, then zero-padded fixed-width amounts (17.00 is 1700 fen,
    # padded to twelve digits, looks like the mostly-zero 19-digit test card's last ten).
    "100048160001VPIVR001000000000017000000004982      ",
    # Asterisk's RTCP debug line at full verbosity: "268.200000000" read across its decimal point.
    "rtt: 0.000000000 j: 0.000000000 sjh: 0.000000000 lost: 268.200000000 mes: 20.0",
], ids=["zero-padded-amount", "zero-fraction"])
def test_zero_padding_and_zero_fractions_are_not_a_partial_card_number(line):
    # Both were found in a full run's artifacts and reported as part of a test card number.
    assert kinds(line) == set()


@pytest.mark.parametrize("level", ["DEBUG", "VERBOSE", "WARNING"])
def test_an_asterisk_log_thread_id_is_not_a_cvv2(level):
    # A CI run's full Asterisk log had a thread numbered like a test card's CVV2.
    line = (f"[Nov 27 16:17:39] {level}[{CREDIT.cvv2}][C-00000013] channel.c: "
            "Scheduling timer at (50 requested / 50 actual) timer ticks per second")
    assert kinds(line) == set()
    # The same number anywhere else in the line is still reported.
    assert (CVV2, CREDIT.name) in kinds(line + f" [{CREDIT.cvv2}] ")


def test_the_fraction_of_an_ami_timestamp_is_not_a_pin():
    # Asterisk's full log copies AMI events; their microseconds equal a test PIN about once in
    # a hundred runs.
    assert kinds(f"Privilege: call,all\nTimestamp: 1764249746.{APPROVE.pin}\nChannel: x") == set()
    assert (PIN, APPROVE.name) in kinds(f"Timestamp: 1764249746.1 {APPROVE.pin}")
    assert (PIN, APPROVE.name) in kinds(f"keyed .{APPROVE.pin}")


def test_asterisks_rtp_statistics_are_not_a_cvv2_or_pin():
    # Asterisk's full log has a line of jitter statistics per RTP packet received; once the
    # softphones streamed audio to it, a packet count equalled a test CVV2 in every run.
    line = (f"[2026-11-27 18:04:25.708] DEBUG[54][C-00000001] res_rtp_asterisk.c: 1795802657.0: "
            f"pkt:   {CREDIT.cvv2} Arrival sec:   7.659  Arrival ts:      61272  RX ts: "
            f"{APPROVE.pin} Transit samp: -68207 Last transit samp: -68211 d:    4")
    assert kinds(line) == set()
    # The same numbers on any other line are still reported.
    assert {(CVV2, CREDIT.name), (PIN, APPROVE.name)} <= kinds(
        line.replace("res_rtp_asterisk.c", "res_agi.c"))



def test_a_sip_messages_cseq_in_pjsips_debug_lines_is_not_a_cvv2():
    # An e2e run's full log: a SIP INFO caller's dialog had run its CSeq up to a test CVV2.
    line = ("[2026-11-27 21:29:03.993] DEBUG[34] res_pjsip/pjsip_distributor.c: Searching for "
            "serializer associated with dialog dlg0x7fbb18178eb0 for Response msg "
            f"200/BYE/cseq={CREDIT.cvv2} (rdata0x7fbb00002918)")
    assert kinds(line) == set()
    assert kinds(line.replace("Response", "Request").replace("200/BYE", "INFO")) == set()
    # The same number anywhere else in the line is still reported.
    assert (CVV2, CREDIT.name) in kinds(line + f" cvv {CREDIT.cvv2}")
    assert (CVV2, CREDIT.name) in kinds(line.replace("cseq=", "cvv2 "))

def test_a_translators_measured_cost_at_asterisks_start_is_not_a_cvv2():
    # An e2e run's full log: Asterisk times each translator it registers; one took a CVV2's value.
    line = ("[2026-11-28 02:13:24.427] VERBOSE[2] translate.c: Registered translator "
            "'speexwbtolin16' from codec speex to slin, table cost, 900000, computational cost "
            f"{CREDIT.cvv2}")
    assert kinds(line) == set()
    assert (CVV2, CREDIT.name) in kinds(line + f" cvv {CREDIT.cvv2}")


def test_sipps_watchdog_counts_are_not_a_cvv2_or_pin():
    # An e2e run's SIPp log, SIPp starved for a core under the talk-through load test: its
    # watchdog's trip counts are counters, and one equalled a test CVV2.
    for value in (CREDIT.cvv2, APPROVE.pin):
        line = (f"2026-11-28\t11:36:27.952922\t1795865787.952922: Overload warning: the minor "
                f"watchdog timer 500ms has been tripped ({value}), {value} trips remaining.")
        assert kinds(line) == set()
        # The same number on any other line is still reported.
        assert kinds(line.replace("watchdog timer", "timer")) != set()


def test_sipps_response_times_are_not_a_cvv2_or_pin():
    # SIPp's -trace_rtt file (the overload tests count 503s by it) has a line per measured
    # response: milliseconds since start, the response time in ms, the measure's name. On a
    # busy CI machine a refusal's response time can take a test CVV2's number of milliseconds.
    for value in (CREDIT.cvv2, APPROVE.pin):
        for name in ("refused", "1"):
            text = f"Date_ms;response_time_ms;rtd_no\n112.001;{value};{name}\n"
            assert kinds(text) == set()
        # The same number on any other line is still reported.
        assert kinds(f"112.001;{value};refused;extra\n") != set()
        assert kinds(f"card;{value};refused\n") != set()


def test_a_python_tracebacks_line_numbers_are_not_a_cvv2_or_pin():
    # The Redis restart test leaves tracebacks in ivr.log through whichever lines were in flight
    # when Redis went away: which lines, and so their numbers, is the timing's.
    for value in (CREDIT.cvv2, APPROVE.pin):
        text = ("Traceback (most recent call last):\n"
                f'  File "/check/work/main/.venv/lib/python3.11/site-packages/redis/asyncio/'
                f'connection.py", line {value}, in _read_response_from_parser\n')
        assert kinds(text) == set()
        # The same number anywhere else in the line is still reported.
        assert kinds(text.replace("_read_response_from_parser", f"f {value}")) != set()


def test_the_lengths_in_redis_append_only_file_are_not_a_cvv2_or_pin():
    # Redis' AOF is RESP: a value's length on the line before it (``$398``), an array's size
    # (``*3``). A history entry's JSON, whose length varies with its times, can be a CVV2's long.
    for value in (CREDIT.cvv2, APPROVE.pin):
        text = f"*3\r\n$5\r\nRPUSH\r\n$17\r\npay:p_x:history\r\n${value}\r\n{{}}\r\n*{value}\r\n"
        assert kinds(text) == set()
        # The value itself is still read.
        assert kinds(f"*3\r\n$5\r\nRPUSH\r\n$6\r\n{value}\r\n") != set()


def test_an_ami_action_ids_counter_is_not_a_cvv2_or_pin():
    # An e2e run's AMI traffic: panoramisk numbers its actions, and twenty talk-through payments'
    # Setvar, Getvar and CoreShowChannels ran the counter up to a test CVV2.
    for value in (CREDIT.cvv2, APPROVE.pin):
        block = ("Action: CoreShowChannels\r\n"
                 f"ActionID: action/c61dd527-6bbb-437b-ab50-06d589a57918/1/{value}\r\n\r\n")
        assert kinds(block) == set()
        # The same number anywhere else in the message is still reported.
        assert kinds(block + f"Value: {value}\r\n") != set()


def _asterisk_debug_keys(pin: str, *, other_lines: int = 3) -> str:
    """How Asterisk at debug level logs an RFC 4733 caller keying ``pin``, each key between
    unrelated lines (a thread's other work)."""
    lines = []
    for n, digit in enumerate(pin):
        lines.append(f"[2026-11-27 18:39:22.{n:03d}] DEBUG[56][C-00000001] res_rtp_asterisk.c: "
                     f"(0x7f3c540163c0) RTP creating BEGIN DTMF Frame: {ord(digit)} ({digit}), "
                     "at 127.0.0.1:16000")
        lines += [f"[2026-11-27 18:39:22.{n:03d}] DEBUG[57][C-00000002] channel.c: Scheduling "
                  f"timer at (50 requested / 50 actual) timer ticks per second {k}"
                  for k in range(other_lines)]
        lines.append(f"[2026-11-27 18:39:22.{n:03d}] DEBUG[56][C-00000001] res_rtp_asterisk.c: "
                     f"(0x7f3c540163c0) RTP creating END DTMF Frame: {ord(digit)} ({digit}), "
                     "at 127.0.0.1:16000")
    return "\n".join(lines)


def test_a_pin_keyed_in_asterisks_debug_log_is_found():
    # Found on the e2e suite's own full log: Asterisk logs every key it reads, one per line, and
    # other lines of varying shape come between two keys, so the one-at-a-time rule never
    # joined them.
    assert (PIN, APPROVE.name) in kinds(_asterisk_debug_keys(APPROVE.pin))
    inband = "\n".join(
        f"DEBUG[61][C-00000003] chan_pjsip.c: * Detected inband DTMF '{digit}' on "
        f"'PJSIP/dtmf-inband-caller-0000000a'\nDEBUG[61][C-00000003] dsp.c: DTMF best '{digit}'"
        for digit in CREDIT.cvv2)
    assert (CVV2, CREDIT.name) in kinds(inband)
    dtmf_level = "\n".join(f"DTMF[70][C-00000004] channel.c: DTMF end '{digit}' received on "
                           f"PJSIP/7101-00000003, duration 160 ms\nsomething else {digit}0"
                           for digit in APPROVE.pan)
    assert (CARD_NUMBER, APPROVE.name) in kinds(dtmf_level)


def test_the_detectors_repeated_hits_are_one_key():
    hits = "\n".join(f"[C-00000005] dsp.c: DTMF hit '{digit}'" for digit in APPROVE.pan
                     for _ in range(3))
    assert (CARD_NUMBER, APPROVE.name) in kinds(hits)


def test_keys_of_other_streams_do_not_join():
    # Two callers keying at once: each stream alone holds no secret.
    pin = APPROVE.pin
    first = _asterisk_debug_keys(pin[:3], other_lines=1)
    second = _asterisk_debug_keys(pin[3:], other_lines=1).replace("0x7f3c540163c0", "0x7f3c5401aa00")
    assert (PIN, APPROVE.name) not in kinds(first + "\n" + second)


# Real lines, cut from the e2e suite's full log when Asterisk ran at debug 10 globally: an
# RFC 4733 caller (res_rtp_asterisk) and an in-band caller (chan_pjsip, and core's detector
# dsp.c), each keying the approve card's PIN, with the lines Asterisk wrote in between (the
# in-band call's per-packet RTP statistics and the detector's energy lines left out).
REAL_DEBUG_LOG = (Path(__file__).parent / "data" / "asterisk-debug-keys.log").read_text()


def _real_lines(*, without: str) -> str:
    return "\n".join(line for line in REAL_DEBUG_LOG.splitlines() if without not in line)


@pytest.mark.parametrize("shape, others", [
    ("RTP creating BEGIN DTMF Frame", "Detected inband DTMF"),  # res_rtp_asterisk, RFC 4733
    ("Detected inband DTMF", "RTP creating BEGIN DTMF Frame"),  # chan_pjsip, in-band
], ids=["res_rtp_asterisk", "chan_pjsip"])
def test_a_pin_in_asterisks_real_debug_lines_is_found(shape, others):
    text = _real_lines(without=others)
    assert shape in text and APPROVE.pin not in text  # one key a line, never the PIN as is
    assert (PIN, APPROVE.name) in kinds(text)
    # The control: the same lines with one key of the PIN dropped hold no PIN.
    first_key = next(line for line in text.splitlines() if shape in line)
    assert (PIN, APPROVE.name) not in kinds(text.replace(first_key + "\n", "", 1))


def test_core_detectors_real_hit_lines_are_read_as_keys():
    # dsp.c's hits come several to a key, so runs collapse: the approve PIN (119922) becomes 192,
    # too short to tell from chance; a card number keyed the same way is still told.
    hit = next(line for line in REAL_DEBUG_LOG.splitlines() if "dsp.c: DTMF hit '" in line)
    head = hit[:hit.rindex("'", 0, -1) + 1]  # the real line up to the key
    card = "\n".join(f"{head}{key}'" for key in APPROVE.pan for _ in range(3))
    assert (CARD_NUMBER, APPROVE.name) in kinds(card)
    assert (CARD_NUMBER, APPROVE.name) not in kinds(card.replace(f"'{APPROVE.pan[5]}'", "'#'"))
