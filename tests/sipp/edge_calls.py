"""SIPp scenarios for the SIP edge (sip-edge/kamailio.cfg): what a phone beyond loopback, a
password guesser and a flood send. Each scenario logs one ``OUTCOME <word>`` line (SIPp's
``-trace_logs``) where it ends, so a test reads what happened instead of guessing from an exit code.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["register", "unauthenticated_invite", "authenticated_call", "answering_phone",
           "answered_call",
           "invite_flood", "register_flood", "write", "outcomes", "sipp_command", "run",
           "FloodOutcome", "calls_under_flood", "EDGE", "ASTERISK"]

# Where phones beyond loopback send (the edge, VOICEPAY_SIP_EDGE_ADDRESSES in the tests) and
# where the loopback test agents call Asterisk directly.
EDGE = "127.0.0.2:5060"
ASTERISK = "127.0.0.1:5060"


def _outcome(word: str) -> str:
    return f'  <nop><action><log message="OUTCOME {word}"/></action></nop>\n'


def _scenario(name: str, body: str) -> str:
    return (f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'
            f"{body}</scenario>\n")


def _register_request(user: str, cseq: int, expires: int, credentials: str,
                      contact: str = "[local_ip]:[local_port]") -> str:
    auth = f"\n[authentication username={user} password={credentials}]" if credentials else ""
    return f"""  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:{user}@{contact}>
Max-Forwards: 70
Expires: {expires}
User-Agent: voicepay-sipp-softphone{auth}
Content-Length: 0

    ]]>
  </send>
"""


def register(user: str, password: str, *, expires: int = 300,
             contact: str = "[local_ip]:[local_port]") -> str:
    """REGISTER with digest auth: ``registered`` (200), ``rejected`` (401 again: wrong password)
    or ``unanswered`` (nothing came back: the source is banned or dropped). expires=0 unregisters.
    ``contact``: the host:port the Contact names (a phone behind NAT names its private address,
    not the one its packets come from)."""
    body = (_register_request(user, 1, expires, "", contact)
            + '  <recv response="401" auth="true" timeout="3000" ontimeout="unanswered"/>\n'
            + _register_request(user, 2, expires, password, contact)
            + '  <recv response="401" optional="true" next="rejected"/>\n'
            + '  <recv response="200" timeout="3000" ontimeout="unanswered"/>\n'
            + _outcome("registered") + '  <nop next="end"/>\n'
            + '  <label id="rejected"/>\n' + _outcome("rejected") + '  <nop next="end"/>\n'
            + '  <label id="unanswered"/>\n' + _outcome("unanswered")
            + '  <label id="end"/>\n')
    return _scenario(f"register {user}", body)


_SDP = """v=0
o=phone 1 1 IN IP4 [media_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
"""


def _invite(from_user: str, number: str, cseq: int = 1, password: str = "") -> str:
    auth = f"\n[authentication username={from_user} password={password}]" if password else ""
    return f"""  <send retrans="500">
    <![CDATA[
INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{from_user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{number}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:{from_user}@[local_ip]:[local_port]>
Max-Forwards: 70{auth}
Content-Type: application/sdp
Content-Length: [len]

{_SDP}
    ]]>
  </send>
"""


def _in_dialog(method: str, cseq: int, from_user: str, number: str, *,
               routed: bool = False, refusal: bool = False) -> str:
    """The caller's ACK or BYE (retransmitted until answered) in its own dialog: ``routed``
    along the dialog's route set to the callee's Contact (through the edge), or straight to the
    number; the ACK of a ``refusal`` (401/403) belongs to the INVITE's transaction (its Via)."""
    retrans = ' retrans="500"' if method != "ACK" else ""
    answer = '  <recv response="200"/>\n' if method != "ACK" else ""
    target = "[next_url]" if routed else f"sip:{number}@[remote_ip]:[remote_port]"
    via = ("[last_Via:]" if refusal
           else "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]")
    routes = "\n[routes]" if routed else ""
    return f"""  <send{retrans}>
    <![CDATA[
{method} {target} SIP/2.0
{via}{routes}
From: <sip:{from_user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} {method}
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
{answer}"""


def unauthenticated_invite(from_user: str, number: str) -> str:
    """An INVITE without credentials: ``refused-401``, ``refused-403``, ``answered`` (200: it
    reached a dialplan, then hung up by us) or ``unanswered``."""
    ack = _in_dialog("ACK", 1, from_user, number)
    refusal_ack = _in_dialog("ACK", 1, from_user, number, refusal=True)
    bye = _in_dialog("BYE", 2, from_user, number)
    body = (_invite(from_user, number)
            + '  <recv response="100" optional="true"/>\n'
            + '  <recv response="180" optional="true"/>\n'
            + '  <recv response="183" optional="true"/>\n'
            + '  <recv response="401" optional="true" next="r401"/>\n'
            + '  <recv response="403" optional="true" next="r403"/>\n'
            + '  <recv response="200" timeout="5000" ontimeout="unanswered"/>\n'
            + ack + bye + _outcome("answered") + '  <nop next="end"/>\n'
            + '  <label id="r401"/>\n' + refusal_ack + _outcome("refused-401")
            + '  <nop next="end"/>\n'
            + '  <label id="r403"/>\n' + refusal_ack + _outcome("refused-403")
            + '  <nop next="end"/>\n'
            + '  <label id="unanswered"/>\n' + _outcome("unanswered")
            + '  <label id="end"/>\n')
    return _scenario(f"unauthenticated INVITE from {from_user}", body)


def authenticated_call(user: str, password: str, number: str) -> str:
    """A softphone's call with digest auth, through the edge: challenged, answered, hung up by
    us along the route set. Logs ``answered`` and ``MEDIA c=IN IP4 <address>`` (where the
    answer's SDP says to send media)."""
    body = (_invite(user, number)
            + '  <recv response="100" optional="true"/>\n'
            + '  <recv response="401" auth="true"/>\n'
            + _in_dialog("ACK", 1, user, number, refusal=True)
            + _invite(user, number, cseq=2, password=password)
            + '  <recv response="100" optional="true"/>\n'
            + '  <recv response="180" optional="true"/>\n'
            + '  <recv response="183" optional="true"/>\n'
            + '  <recv response="200" rrs="true">\n'
            + '    <action>\n'
            + '      <ereg regexp="c=IN IP4 [0-9.]+" search_in="msg" assign_to="media_line"/>\n'
            + '      <log message="MEDIA [$media_line]"/>\n'
            + '    </action>\n'
            + '  </recv>\n'
            + _in_dialog("ACK", 2, user, number, routed=True)
            + '  <pause milliseconds="500"/>\n'
            + _in_dialog("BYE", 3, user, number, routed=True)
            + _outcome("answered"))
    return _scenario(f"call from {user} with digest auth", body)


def answered_call(number: str) -> str:
    """A legitimate call from the loopback test agent: answered, then hung up by us."""
    return unauthenticated_invite("cardholder", number)


# The phone's answers to the INVITE: the Record-Route echoed, so the dialog runs through the edge.
_ANSWER_HEADERS = """[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
"""


def answering_phone(hold_ms: int = 1000) -> str:
    """A registered softphone taking one call: rings, answers, hangs up after ``hold_ms`` along
    the dialog's route set (so the BYE goes back through the edge). Logs ``answered-and-hung-up``,
    and ``MEDIA c=IN IP4 <address>``: where the caller's SDP says to send media."""
    body = f"""  <recv request="INVITE" crlf="true" rrs="true">
    <action>
      <ereg regexp="c=IN IP4 [0-9.]+" search_in="msg" assign_to="media_line"/>
      <log message="MEDIA [$media_line]"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_party"/>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
{_ANSWER_HEADERS}Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
{_ANSWER_HEADERS}Content-Type: application/sdp
Content-Length: [len]

{_SDP}
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500">
    <![CDATA[
BYE [$remote_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: [$local_party];tag=[pid]SIPpTag01[call_number]
To: [$remote_party]
[last_Call-ID:]
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
{_outcome("answered-and-hung-up")}"""
    return _scenario("softphone answering", body)


def invite_flood(number: str = "8000") -> str:
    """One INVITE per call, never waiting for an answer: run with a high -r and -l."""
    return _scenario("INVITE flood", _invite("flood", number))


def register_flood(user: str = "6001") -> str:
    """One REGISTER per call, never waiting for an answer."""
    return _scenario("REGISTER flood", _register_request(user, 1, 300, ""))


def write(directory: Path, name: str, xml: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.xml"
    path.write_text(xml, encoding="ascii")
    return path


def outcomes(log_file: Path, label: str = "OUTCOME") -> list[str]:
    """What a scenario logged after ``label`` (its OUTCOME words: one per call), in order."""
    if not log_file.exists():
        return []
    return [line.split(f"{label} ", 1)[1].strip() for line in log_file.read_text().splitlines()
            if f"{label} " in line]


def sipp_command(scenario: Path, *, source: str, remote: str | None = EDGE, port: int = 0,
                 calls: int = 1, rate: int | None = None, limit: int | None = None,
                 media_port: int = 18000, timeout_s: int = 60) -> list[str]:
    """SIPp from ``source`` (a loopback address of its own: the edge bans and limits per source)
    running ``scenario``; its OUTCOME lines go to ``<scenario>.log`` beside it."""
    argv = ["sipp", *([remote] if remote else []), "-sf", scenario.name, "-m", str(calls),
            "-i", source, "-p", str(port), "-mi", source, "-mp", str(media_port), "-nostdin",
            "-timeout", f"{timeout_s}s", "-trace_logs", "-log_file", f"{scenario.stem}.log"]
    if rate is not None:
        argv += ["-r", str(rate)]
    if limit is not None:
        argv += ["-l", str(limit)]
    return argv


def run(directory: Path, name: str, xml: str, *, source: str, remote: str = EDGE,
        port: int = 0, timeout_s: int = 60) -> list[str]:
    """Run one scenario to its end; the OUTCOME words it logged."""
    scenario = write(directory, name, xml)
    (directory / f"{name}.log").unlink(missing_ok=True)
    subprocess.run(sipp_command(scenario, source=source, remote=remote, port=port,
                                timeout_s=timeout_s),
                   cwd=directory, capture_output=True, timeout=timeout_s + 30, check=False)
    return outcomes(directory / f"{name}.log")


@dataclass(frozen=True)
class FloodOutcome:
    placed: int            # legitimate calls placed from 127.0.0.1 straight to Asterisk
    answered: int          # ... that were answered and hung up cleanly
    flood_requests: int    # INVITEs and REGISTERs the flood sent (SIPp's count, to the second)
    flood_outlasted_calls: bool  # the flood was still running when the last call ended

    @property
    def share(self) -> float:
        return self.answered / self.placed if self.placed else 0.0


def calls_under_flood(directory: Path, *, flood_target: str, rate: int, calls: int,
                      call_rate: int, flood_source: str = "127.0.0.2", number: str = "9999",
                      flood_started: Callable[[], None] | None = None) -> FloodOutcome:
    """An INVITE flood and a REGISTER flood, each ``rate`` per second from ``flood_source`` at
    ``flood_target``, while ``calls`` legitimate calls (``call_rate`` per second) go from the
    loopback test agent to Asterisk; the flood is stopped once the calls are done.
    ``flood_started`` is called once both floods run, before the first legitimate call (a test
    waits there for the edge to notice)."""
    seconds = 10 * (calls // call_rate + 30)  # more than the calls can take: they end it
    flood = []
    for media_port, name, xml in ((18100, "invite_flood", invite_flood()),
                                  (18200, "register_flood", register_flood())):
        scenario = write(directory, name, xml)
        argv = sipp_command(scenario, source=flood_source, remote=flood_target,
                            calls=rate * seconds, rate=rate, limit=rate * seconds,
                            media_port=media_port, timeout_s=seconds)
        (directory / f"{name}.csv").unlink(missing_ok=True)
        argv += ["-trace_stat", "-fd", "1", "-stf", f"{name}.csv"]
        flood.append(subprocess.Popen(argv, cwd=directory, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    try:
        if flood_started is not None:
            flood_started()
        scenario = write(directory, "legitimate_calls", answered_call(number))
        (directory / "legitimate_calls.log").unlink(missing_ok=True)
        subprocess.run(sipp_command(scenario, source="127.0.0.1", remote=ASTERISK, calls=calls,
                                    rate=call_rate, limit=calls, media_port=16500,
                                    timeout_s=calls // call_rate + 60),
                       cwd=directory, capture_output=True, timeout=calls // call_rate + 90,
                       check=False)
        outlasted = all(process.poll() is None for process in flood)
        # SIPp's per-second statistics: the next line counts what it sent until the calls ended.
        for name in ("invite_flood", "register_flood"):
            _next_stat_line(directory / f"{name}.csv")
    finally:
        for process in flood:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
    answered = outcomes(directory / "legitimate_calls.log").count("answered")
    sent = sum(_calls_created(directory / f"{name}.csv")
               for name in ("invite_flood", "register_flood"))
    return FloodOutcome(placed=calls, answered=answered, flood_requests=sent,
                        flood_outlasted_calls=outlasted)


def _stat_lines(stat_file: Path) -> int:
    return len(stat_file.read_text().splitlines()) if stat_file.exists() else 0


def _next_stat_line(stat_file: Path, timeout_s: float = 5.0) -> None:
    """Wait until SIPp appends its next statistics line (it writes one a second)."""
    seen, deadline = _stat_lines(stat_file), time.monotonic() + timeout_s
    while _stat_lines(stat_file) <= seen and time.monotonic() < deadline:
        time.sleep(0.05)


def _calls_created(stat_file: Path) -> int:
    """SIPp's cumulative count of calls it started (one request each in a flood scenario), from
    the last line of its -trace_stat file."""
    if not stat_file.exists():
        return 0
    rows = [line.split(";") for line in stat_file.read_text().splitlines() if line.strip()]
    if len(rows) < 2:
        return 0
    return int(rows[-1][rows[0].index("OutgoingCall(C)")])
