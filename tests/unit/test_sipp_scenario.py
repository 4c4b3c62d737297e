"""tests/sipp/scenario.py: how our SIPp phones key in each DTMF mode (the scenario text SIPp runs)."""

from __future__ import annotations

import re

import pytest

from tests.sipp.scenario import Call, Callee, Key, write_scenario, write_uas_scenario


def _requests(xml: str) -> list[tuple[str, str, str]]:
    """(method, CSeq, Content-Type) of every request the scenario sends."""
    found = []
    for block in re.findall(r"<send[^>]*>\s*<!\[CDATA\[(.*?)\]\]>", xml, re.S):
        first = block.strip().splitlines()[0]
        if first.startswith("SIP/2.0"):
            continue
        cseq = re.search(r"CSeq: (\d+ \w+)", block).group(1)
        ctype = re.search(r"Content-Type: (\S+)", block)
        found.append((first.split()[0], cseq, ctype.group(1) if ctype else ""))
    return found


def _bodies(xml: str, content_type: str) -> list[str]:
    return [block.split("Content-Length: [len]", 1)[1].strip()
            for block in re.findall(r"<!\[CDATA\[(.*?)\]\]>", xml, re.S)
            if f"Content-Type: {content_type}\n" in block]


def test_a_caller_keys_by_info_with_either_body_then_hangs_up_in_sequence(tmp_path):
    xml = write_scenario(Call("c", "8000", [Key("1#", 100, via="info"),
                                            Key("*9", 100, via="info-dtmf")],
                              hang_up_after_ms=100), tmp_path).read_text()
    assert _requests(xml) == [
        ("INVITE", "1 INVITE", "application/sdp"), ("ACK", "1 ACK", ""),
        ("INFO", "2 INFO", "application/dtmf-relay"), ("INFO", "3 INFO", "application/dtmf-relay"),
        ("INFO", "4 INFO", "application/dtmf"), ("INFO", "5 INFO", "application/dtmf"),
        ("BYE", "6 BYE", "")]
    assert [re.sub(r"\s+", " ", b) for b in _bodies(xml, "application/dtmf-relay")] == [
        "Signal=1 Duration=160", "Signal=# Duration=160"]
    assert _bodies(xml, "application/dtmf") == ["*", "9"]
    assert "play_pcap_audio" not in xml


def test_a_called_phone_keys_by_info_in_the_platforms_dialog(tmp_path):
    xml = write_uas_scenario(Callee("p", steps=[Key("1", 100, via="info"),
                                                Key("22", 100, via="info-dtmf")],
                                    hang_up_after_ms=100), tmp_path).read_text()
    assert _requests(xml) == [("INFO", "1 INFO", "application/dtmf-relay"),
                              ("INFO", "2 INFO", "application/dtmf"),
                              ("INFO", "3 INFO", "application/dtmf"), ("BYE", "4 BYE", "")]
    # Sent to the platform's Contact, as the To side of its INVITE: the parties are kept.
    assert 'assign_to="remote_contact"' in xml
    assert xml.count("INFO [$remote_contact] SIP/2.0") == 3


def test_a_phone_keying_only_tones_offers_no_telephone_event(tmp_path):
    tones = write_scenario(Call("t", "8000", [Key("119922#", 100, via="inband")]), tmp_path)
    both = write_scenario(Call("b", "8000", [Key("119922#", 100, via="both")]), tmp_path)
    answer = write_uas_scenario(Callee("a", steps=[Key("1", 100, via="inband")]), tmp_path)
    for path in (tones, answer):
        text = path.read_text()
        assert "RTP/AVP 0\n" in text and "telephone-event" not in text
        assert "play_pcap_audio" in text
    assert "RTP/AVP 0 101\n" in both.read_text()
    assert len(list((tmp_path / "pcap").iterdir())) == 3  # a capture for each phone


def test_keyed_via_changes_every_step_and_nothing_else():
    call = Call("c", "8000", [Key("1", 100), Key("2", cue="x", label="PIN")], hang_up_after_ms=5)
    info = call.keyed_via("info-dtmf")
    assert [(k.digits, k.wait_ms, k.cue, k.label, k.via) for k in info.steps] == [
        ("1", 100, None, "", "info-dtmf"), ("2", 0, "x", "PIN", "info-dtmf")]
    assert (info.name, info.number, info.hang_up_after_ms) == ("c", "8000", 5)
    assert Callee("p", steps=[Key("1")]).keyed_via("inband").steps == [Key("1", via="inband")]


def test_an_unknown_way_to_key_is_refused():
    with pytest.raises(ValueError, match="via must be one of"):
        Key("1", via="smoke-signals")
