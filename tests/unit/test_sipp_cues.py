"""tests/sipp/cues.py and cued scenarios: a real SIPp waits for the test's cue, then goes on."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.sipp import scenario
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Key, write_scenario

# A client scenario without a dialog: one datagram to make SIPp a client, then the very fragment a
# cued step starts with (say it is ready, wait for the cue), and a log line that shows it went on.
SCENARIO = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cued">
  <send>
    <![CDATA[
      OPTIONS sip:probe@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:cardholder@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:probe@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Content-Length: 0

    ]]>
  </send>
{scenario._WAIT_FOR_CUE.format(cue="go", timeout=20000)}
  <nop><action><log message="cue received"/></action></nop>
</scenario>
"""


def test_sipp_waits_for_the_cue_and_then_goes_on(tmp_path: Path) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where the OPTIONS goes, unanswered
    sink.bind(("127.0.0.1", 0))
    (tmp_path / "cued.xml").write_text(SCENARIO)
    cues = Cues()
    sipp = subprocess.Popen(
        ["sipp", f"127.0.0.1:{sink.getsockname()[1]}", "-sf", "cued.xml", "-m", "1", "-p", "0",
         "-i", "127.0.0.1", "-3pcc", f"127.0.0.1:{cues.port}", "-nostdin", "-timeout", "30s",
         "-timeout_error", "-trace_logs", "-log_file", "cued.log"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        cues.connected()
        assert sink.recv(4096).startswith(b"OPTIONS ")
        assert not (tmp_path / "cued.log").exists() or "cue received" not in (tmp_path / "cued.log").read_text()
        cues.send("go")
        assert sipp.wait(timeout=30) == 0
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait()
        cues.close()
        sink.close()
    assert "cue received" in (tmp_path / "cued.log").read_text()


def test_a_cued_call_waits_before_each_cued_step(tmp_path: Path) -> None:
    call = Call("cued_call", "8100", [Key("1", cue="menu"), Key("1234#", cue="PIN prompt")],
                hang_up_on_cue="done")
    xml = write_scenario(call, tmp_path).read_text()
    ready = [xml.index(f"X-Ready: {cue}") for cue in ("menu", "PIN prompt", "done")]
    keys = [xml.index("<!-- key 1 -->"), xml.index("<!-- key 1 2 3 4 hash -->"), xml.index("CSeq: 2 BYE")]
    assert xml.index("CSeq: 1 ACK") < ready[0] < keys[0] < ready[1] < keys[1] < ready[2] < keys[2]
    assert xml.count("<recvCmd") == xml.count("<sendCmd>") == 3
    # An uncued call stays a plain SIPp client: no twin needed.
    assert "<sendCmd>" not in write_scenario(Call("plain", "8000", [Key("1", 500)]), tmp_path).read_text()


def test_a_cue_the_call_does_not_wait_for_is_refused() -> None:
    cues = Cues()
    sipp_side = socket.create_connection(("127.0.0.1", cues.port))
    try:
        cues.connected()
        sipp_side.sendall(b"Call-ID: 1-2@127.0.0.1\r\nX-Ready: menu\r\n\r\n\x1b")
        with pytest.raises(AssertionError, match="waits for the cue 'menu', not 'PIN prompt'"):
            cues.send("PIN prompt")
    finally:
        sipp_side.close()
        cues.close()
