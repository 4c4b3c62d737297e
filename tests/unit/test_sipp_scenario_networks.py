"""What tests/sipp/scenario.py writes for codecs and networks: the offer's codec order, a TCP
caller's Contact, hold and unhold in the dialog's CSeq order, and a phone's 183 with media before
its 200. The calls themselves run against Asterisk in tests/e2e/test_codecs_and_networks.py."""

from __future__ import annotations

import re
from pathlib import Path

from tests.sipp.scenario import Call, Callee, Key, write_scenario, write_uas_scenario


def test_the_offer_lists_the_codecs_in_the_callers_order(tmp_path: Path) -> None:
    xml = write_scenario(Call("offer", "8000", [], codecs=("PCMA", "G722", "PCMU")),
                         tmp_path).read_text()
    assert "m=audio [media_port] RTP/AVP 8 9 0 101" in xml
    assert re.findall(r"a=rtpmap:(\d+) (\S+)", xml) == [
        ("8", "PCMA/8000"), ("9", "G722/8000"), ("0", "PCMU/8000"), ("101", "telephone-event/8000")]


def test_a_tcp_callers_contact_says_tcp_and_a_udp_callers_says_nothing(tmp_path: Path) -> None:
    tcp = write_scenario(Call("tcp", "8000", [], transport="tcp"), tmp_path).read_text()
    udp = write_scenario(Call("udp", "8000", []), tmp_path).read_text()
    assert "Contact: <sip:cardholder@[local_ip]:[local_port];transport=tcp>" in tcp
    assert ";transport=" not in udp


def test_hold_and_unhold_come_before_the_key_and_the_bye_after_them(tmp_path: Path) -> None:
    call = Call("hold", "8000", [Key("1", 100), Key("2#", 100, hold=True)], hang_up_after_ms=100)
    xml = write_scenario(call, tmp_path).read_text()
    requests = re.findall(r"CSeq: (\d+) (INVITE|ACK|BYE)", xml)
    assert requests == [("1", "INVITE"), ("1", "ACK"), ("2", "INVITE"), ("2", "ACK"),
                        ("3", "INVITE"), ("3", "ACK"), ("4", "BYE")]
    assert re.findall(r"(?m)^\s+a=(sendonly|sendrecv)$", xml) == [
        "sendrecv", "sendonly", "sendrecv"]
    versions = [int(v) for v in re.findall(r"o=cardholder 53655765 (\d+)", xml)]
    assert versions == sorted(set(versions)) and len(versions) == 3  # each re-INVITE a new one
    assert xml.index("a=sendonly") < xml.index("<!-- key 2 hash -->")
    assert 'regexp="a=recvonly"' in xml and 'regexp="a=sendrecv"' in xml


def test_a_phone_with_early_media_sends_183_with_sdp_then_200(tmp_path: Path) -> None:
    xml = write_uas_scenario(Callee("early", steps=[], early_media=True, codecs=("G722",)),
                             tmp_path).read_text()
    assert "180 Ringing" not in xml
    assert xml.index("183 Session Progress") < xml.index("SIP/2.0 200 OK")
    assert xml.count("m=audio [media_port] RTP/AVP 9 101") == 2


def test_a_caller_keying_by_info_who_holds_numbers_every_request_of_the_dialog_in_turn(
        tmp_path: Path) -> None:
    """INFO keys, a hold and an unhold share the dialog's one CSeq counter: the re-INVITEs take
    the next two numbers after the INFO before them, the held step's INFO keys follow, and the BYE
    comes last (a BYE numbered below a request already sent is refused by Asterisk)."""
    call = Call("info_hold", "8000", [Key("1", 100, via="info"),
                                      Key("2#", 100, via="info", hold=True)],
                hang_up_after_ms=100)
    xml = write_scenario(call, tmp_path).read_text()
    requests = re.findall(r"CSeq: (\d+) (INVITE|ACK|INFO|BYE)", xml)
    assert requests == [("1", "INVITE"), ("1", "ACK"), ("2", "INFO"), ("3", "INVITE"),
                        ("3", "ACK"), ("4", "INVITE"), ("4", "ACK"), ("5", "INFO"),
                        ("6", "INFO"), ("7", "BYE")]
