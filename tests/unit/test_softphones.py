"""The README's "Pointing a softphone at it" is what the softphone tests do: the account lines it
shows are the ones the drivers (tests/softphones) write, for the same account."""

from __future__ import annotations

import re

from ivr.config import REPO_ROOT
from tests.softphones import EDGE_ADDRESS, Account
from tests.softphones.baresip import _DTMF_KEY, account_line
from tests.softphones.linphone import _KEY_ECHO, _TONE, account_sections

README_ACCOUNT = Account(user="6001", password="PASSWORD", address="127.0.0.20", sip_port=5094,
                         rtp_port=18040)


def _softphone_section() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### Pointing a softphone at it")
    return text[start:text.index("\n### ", start + 1)]


def _code_blocks(section: str) -> list[str]:
    """The fenced blocks, their indentation (a list item's) removed."""
    return [re.sub(r"(?m)^  ", "", block).strip("\n")
            for block in re.findall(r"```\n(.*?)\n *```", section, flags=re.DOTALL)]


def test_readme_shows_the_account_lines_the_drivers_write() -> None:
    blocks = _code_blocks(_softphone_section())
    assert account_line(README_ACCOUNT) in blocks
    assert account_sections(README_ACCOUNT).strip("\n") in blocks


def test_the_tests_register_at_the_edge_the_readme_names() -> None:
    from tests.e2e.conftest import SIP_EDGE_SETTINGS
    assert SIP_EDGE_SETTINGS["VOICEPAY_SIP_EDGE_ADDRESSES"] == EDGE_ADDRESS
    assert f"<sip:6001@{EDGE_ADDRESS}>" in _softphone_section()


def test_the_phones_logs_keep_no_key() -> None:
    """What each driver writes to the phone's log in place of a key sent or received."""
    assert _DTMF_KEY.sub(rb"\1?", b"audio: send DTMF digit: '7'\n") == b"audio: send DTMF digit: '?'\n"
    assert _DTMF_KEY.sub(rb"\1?", b"call: received DTMF: '#' (duration=80)") \
        == b"call: received DTMF: '?' (duration=80)"
    assert _TONE.sub("Receiving tone ? from", "Receiving tone 5 from sip:7001@127.0.0.2") \
        == "Receiving tone ? from sip:7001@127.0.0.2"
    assert _KEY_ECHO.sub(r"\1?", "linphonec> linphonec> 9") == "linphonec> linphonec> ?"
    assert _KEY_ECHO.sub(r"\1?", "linphonec> ports") == "linphonec> ports"
