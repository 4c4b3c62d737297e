"""SIPp scenarios for a caller who dials an IVR number and keys digits, and for the phone the
platform calls back.

A call is a list of steps: wait, then key some digits: RFC 4733 events, in-band G.711 tones or
both (played from a capture made by dtmf_pcap.py, each step in its own RTP sequence/timestamp
space), or SIP INFO requests (either body phones send). It ends either by waiting for
the IVR to hang up or by hanging up ourselves. Waits are computed from the real prompt WAVs
(:class:`PromptClock`), so a scenario keys its digits while the IVR is actually listening.

    python -m tests.sipp.scenario   # rewrites the shipped QA scenarios in tests/sipp/selfservice/
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

from ivr.prompts import Manifest, synthesis_commands
from tests.sipp.dtmf_pcap import TONES, pcap_for_step, play_duration_ms

__all__ = ["KEYED_VIA", "Key", "Call", "Callee", "PromptClock", "write_scenario", "write_uas_scenario", "SIPP_DIR"]

SIPP_DIR = Path(__file__).resolve().parent
# How long a cued step waits for the test before SIPp fails the call.
CUE_TIMEOUT_MS = 120000
REPO_ROOT = SIPP_DIR.parent.parent


@dataclass(frozen=True)
class Key:
    """Wait ``wait_ms`` after the previous step's digits were sent, then key ``digits``.

    With ``cue``, wait instead for the test to send that cue (tests/sipp/cues.py) once it has
    seen the IVR ask; ``wait_ms`` is then ignored. ``via`` is how the phone keys (KEYED_VIA):
    RFC 4733 events, in-band tones in the G.711 audio, both at once, or one SIP INFO request per
    digit with an application/dtmf-relay ("info") or application/dtmf ("info-dtmf") body.
    """

    digits: str
    wait_ms: int = 0
    # What the scenario file says is keyed here ("PIN"); by default the digits themselves.
    label: str = ""
    cue: str | None = None
    via: str = "rfc4733"

    def __post_init__(self) -> None:
        if self.via not in KEYED_VIA:
            raise ValueError(f"via must be one of {KEYED_VIA}")

    @property
    def sip_info(self) -> bool:
        return self.via in INFO_BODIES


# How a SIP INFO carries one key, by Content-Type (Asterisk's res_pjsip_dtmf_info reads both).
INFO_BODIES = {
    "info": ("application/dtmf-relay", "Signal={digit}\n        Duration=160"),
    "info-dtmf": ("application/dtmf", "{digit}"),
}
KEYED_VIA = (*TONES, *INFO_BODIES)


@dataclass(frozen=True)
class Call:
    name: str
    number: str
    steps: list[Key]
    # None: the IVR hangs up (we answer its BYE); a number: we hang up that long after the last step.
    hang_up_after_ms: int | None = None
    # Longest the IVR may take to hang up after the last step (result, reference number, goodbye).
    bye_timeout_ms: int = 90000
    # Hang up when the test sends this cue (instead of after hang_up_after_ms).
    hang_up_on_cue: str | None = None

    def keyed_via(self, via: str) -> Call:
        """The same call from a phone that keys every step ``via`` (Key.via)."""
        return dataclasses.replace(self, steps=_all_via(self.steps, via))


def _all_via(steps: list[Key], via: str) -> list[Key]:
    return [dataclasses.replace(step, via=via) for step in steps]


class PromptClock:
    """How long prompts play, from the WAVs Asterisk will play."""

    def __init__(self, language: str = "zh", sounds_dir: Path = REPO_ROOT / "sounds") -> None:
        self._dir = sounds_dir / language
        self.language = language

    def ms(self, *names: str) -> int:
        return sum(wav_ms(self._dir / f"{name}.wav") for name in names)

    def spoken_name_ms(self, text: str) -> int:
        """How long ``text`` lasts as the ivr service synthesizes it at run time (a merchant's
        name, ivr/spoken_names.py): made the same way, into a scratch folder, so the service's
        own cache still meets the name for the first time on the call."""
        with tempfile.TemporaryDirectory() as scratch:
            wav = Path(scratch) / "name.wav"
            voice = Manifest.load().voices[self.language]
            for command in synthesis_commands(text, voice, wav, Path(scratch) / "espeak.wav"):
                subprocess.run(command, check=True)
            return wav_ms(wav)


def wav_ms(path: Path) -> int:
    with wave.open(str(path)) as wav:
        return int(1000 * wav.getnframes() / wav.getframerate())


# Our media offer/answer: G.711 u-law and RFC 4733 telephone-events, payload type 101 (the type
# dtmf_pcap.py writes).
_SDP = """\
        v=0
        o=cardholder 53655765 2353687637 IN IP[local_ip_type] [local_ip]
        s=-
        c=IN IP[media_ip_type] [media_ip]
        t=0 0
        m=audio [media_port] RTP/AVP 0 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=sendrecv
"""
# A phone that keys only with in-band tones offers no telephone-event (what `dtmf_mode = auto`
# decides by).
_SDP_WITHOUT_TELEPHONE_EVENT = (_SDP.replace(" 0 101\n", " 0\n")
                                .replace("        a=rtpmap:101 telephone-event/8000\n", "")
                                .replace("        a=fmtp:101 0-16\n", ""))


def _sdp(steps: list[Key]) -> str:
    inband_only = bool(steps) and all(step.via == "inband" for step in steps)
    return _SDP_WITHOUT_TELEPHONE_EVENT if inband_only else _SDP

_INVITE = """\
    <send retrans="500">
      <![CDATA[
        INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "SIPp cardholder" <sip:cardholder@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:{number}@[remote_ip]:[remote_port]>
        Call-ID: [call_id]
        CSeq: 1 INVITE
        Contact: <sip:cardholder@[local_ip]:[local_port]>
        Max-Forwards: 70
        User-Agent: voicepay-sipp
        Content-Type: application/sdp
        Content-Length: [len]

{sdp}
      ]]>
    </send>

    <recv response="100" optional="true"/>
    <recv response="180" optional="true"/>
    <recv response="183" optional="true"/>
    <recv response="200" rtd="true"/>

    <send>
      <![CDATA[
        ACK sip:{number}@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "SIPp cardholder" <sip:cardholder@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]
        Call-ID: [call_id]
        CSeq: 1 ACK
        Contact: <sip:cardholder@[local_ip]:[local_port]>
        Max-Forwards: 70
        Content-Length: 0

      ]]>
    </send>
"""

# A cued step tells the test (SIPp's 3PCC twin) that it is ready, then waits for the test's cue:
# a cue sent while SIPp is not waiting for one would be lost.
_WAIT_FOR_CUE = """\
    <!-- wait for the test's cue: {cue} -->
    <sendCmd>
      <![CDATA[
        Call-ID: [call_id]
        X-Ready: {cue}

      ]]>
    </sendCmd>
    <recvCmd timeout="{timeout}"/>
"""

_WAIT_FOR_BYE = """\
    <recv request="BYE" timeout="{timeout}"/>
    <send>
      <![CDATA[
        SIP/2.0 200 OK
        [last_Via:]
        [last_From:]
        [last_To:]
        [last_Call-ID:]
        [last_CSeq:]
        Contact: <sip:cardholder@[local_ip]:[local_port]>
        Content-Length: 0

      ]]>
    </send>
"""

_SEND_BYE = """\
    <send retrans="500">
      <![CDATA[
        BYE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "SIPp cardholder" <sip:cardholder@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]
        Call-ID: [call_id]
        CSeq: {cseq} BYE
        Contact: <sip:cardholder@[local_ip]:[local_port]>
        Max-Forwards: 70
        Content-Length: 0

      ]]>
    </send>
    <recv response="200" crlf="true"/>
"""

# One key as a SIP INFO (RFC 2976, with a body of INFO_BODIES), in the caller's dialog; {cseq}
# continues the dialog's numbering (the BYE comes after).
_CALLER_INFO_HEAD = """\
        INFO sip:{number}@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "SIPp cardholder" <sip:cardholder@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]
        Call-ID: [call_id]
        CSeq: {cseq} INFO
        Contact: <sip:cardholder@[local_ip]:[local_port]>
"""
# The same from the called phone, in the dialog the platform's INVITE opened (we are its To side).
_UAS_INFO_HEAD = """\
        INFO [$remote_contact] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: [$local_party];tag=[pid]SIPpTag01[call_number]
        To: [$remote_party]
        [last_Call-ID:]
        CSeq: {cseq} INFO
        Contact: <sip:[local_ip]:[local_port];transport=[transport]>
"""
_SEND_INFO = """    <send retrans="500">
      <![CDATA[
{head}\
        Max-Forwards: 70
        Content-Type: {content_type}
        Content-Length: [len]

        {body}
      ]]>
    </send>
    <recv response="200" crlf="true"/>
    <pause milliseconds="{gap_ms}"/>
"""
# Between two INFO keys: a finger's pace, well inside the IVR's inter-digit timeout.
INFO_GAP_MS = 250


def write_scenario(call: Call, directory: Path) -> Path:
    """Write ``<directory>/<name>.xml`` and its DTMF captures (in ``<directory>/pcap``)."""
    directory.mkdir(parents=True, exist_ok=True)
    pcap_dir = directory / "pcap"
    body = [_INVITE.format(number=call.number, sdp=_sdp(call.steps))]
    info_keys = sum(len(step.digits) for step in call.steps if step.sip_info)
    # CSeq 1 was the INVITE
    info_head = _CALLER_INFO_HEAD.replace("{number}", call.number)
    body += _keys_then_end(call.steps, pcap_dir, call.hang_up_after_ms, call.bye_timeout_ms,
                           _SEND_BYE.format(number=call.number, cseq=2 + info_keys),
                           call.hang_up_on_cue, info_head=info_head, first_info_cseq=2)
    body.append('    <ResponseTimeRepartition value="100, 500, 1000"/>\n')
    return _write(directory, call.name, body)


def _keys_then_end(steps: list[Key], pcap_dir: Path, hang_up_after_ms: int | None,
                   bye_timeout_ms: int, send_bye: str, hang_up_on_cue: str | None = None, *,
                   info_head: str, first_info_cseq: int) -> list[str]:
    """Key ``steps``, then wait for the other side's BYE, or send ours ``hang_up_after_ms`` later
    (or on the test's ``hang_up_on_cue``). INFO keys are sent with ``info_head`` (its ``{cseq}``
    counting from ``first_info_cseq``)."""
    lines, previous_play_ms = _key_presses(steps, pcap_dir, info_head, first_info_cseq)
    if hang_up_on_cue is not None:
        if previous_play_ms:
            lines.append(f'    <pause milliseconds="{previous_play_ms}"/>\n')
        lines.append(_WAIT_FOR_CUE.format(cue=hang_up_on_cue, timeout=CUE_TIMEOUT_MS))
        lines.append(send_bye)
    elif hang_up_after_ms is None:
        if previous_play_ms:
            lines.append(f'    <pause milliseconds="{previous_play_ms}"/>\n')
        lines.append(_WAIT_FOR_BYE.format(timeout=bye_timeout_ms))
    else:
        lines.append(f'    <pause milliseconds="{hang_up_after_ms + previous_play_ms}"/>\n')
        lines.append(send_bye)
    return lines


def _write(directory: Path, name: str, body: list[str]) -> Path:
    xml = (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        "<!DOCTYPE scenario SYSTEM \"sipp.dtd\">\n"
        f"<!-- Generated by tests/sipp/scenario.py: {name}. -->\n"
        f'<scenario name="{name}">\n'
        + "".join(body)
        + "</scenario>\n"
    )
    path = directory / f"{name}.xml"
    path.write_text(xml, encoding="ascii")
    return path


def _key_presses(steps: list[Key], pcap_dir: Path, info_head: str, info_cseq: int
                 ) -> tuple[list[str], int]:
    """The scenario lines that key ``steps``, and how long the last capture plays."""
    lines: list[str] = []
    previous_play_ms = 0
    for index, step in enumerate(steps):
        # SIPp plays a capture in the background and a new play cuts off the running one.
        if step.cue is None:
            lines.append(f'    <pause milliseconds="{max(step.wait_ms, 0) + previous_play_ms}"/>\n')
        else:
            if previous_play_ms:
                lines.append(f'    <pause milliseconds="{previous_play_ms}"/>\n')
            lines.append(_WAIT_FOR_CUE.format(cue=step.cue, timeout=CUE_TIMEOUT_MS))
        lines.append(f"    <!-- key {step.label or _describe(step.digits)} -->\n")
        if step.sip_info:
            content_type, body = INFO_BODIES[step.via]
            for digit in step.digits:
                lines.append(_SEND_INFO.format(
                    head=info_head.format(cseq=info_cseq), content_type=content_type,
                    body=body.format(digit=digit), gap_ms=INFO_GAP_MS))
                info_cseq += 1
            previous_play_ms = 0
            continue
        pcap = pcap_for_step(pcap_dir, step.digits, index, tones=step.via)
        lines.append(f'    <nop><action><exec play_pcap_audio="pcap/{pcap.name}"/></action></nop>\n')
        previous_play_ms = play_duration_ms(step.digits)
    return lines, previous_play_ms


def _describe(digits: str) -> str:
    return " ".join(digits).replace("#", "hash").replace("*", "star")


# ---- the cardholder's phone when the platform calls back (SIPp as UAS) ----

@dataclass(frozen=True)
class Callee:
    """How the called phone behaves: ``answer`` (then key ``steps``), ``no_answer`` or ``busy``."""

    name: str
    behaviour: str = "answer"
    steps: list[Key] | None = None
    ring_ms: int = 500
    hang_up_after_ms: int | None = None
    bye_timeout_ms: int = 90000
    # How many calls this phone takes before SIPp exits (busy: one per attempt).
    calls: int = 1

    def keyed_via(self, via: str) -> Callee:
        """The same phone keying every step ``via`` (Key.via)."""
        return dataclasses.replace(self, steps=_all_via(self.steps or [], via))


# SIPp refuses variables that are set but never used: the BYE-sending phone keeps the dialog's
# parties from the INVITE (we are its To side), the others just receive it.
_UAS_RECV_INVITE = """\
    <recv request="INVITE" crlf="true"/>
"""

_UAS_RECV_INVITE_KEEPING_PARTIES = """\
    <recv request="INVITE" crlf="true">
      <action>
        <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>
        <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_party"/>
        <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>
      </action>
    </recv>
"""

_UAS_TRYING = """\
    <send>
      <![CDATA[
        SIP/2.0 100 Trying
        [last_Via:]
        [last_From:]
        [last_To:]
        [last_Call-ID:]
        [last_CSeq:]
        Content-Length: 0

      ]]>
    </send>
"""

_UAS_RINGING = """\
    <send>
      <![CDATA[
        SIP/2.0 180 Ringing
        [last_Via:]
        [last_From:]
        [last_To:];tag=[pid]SIPpTag01[call_number]
        [last_Call-ID:]
        [last_CSeq:]
        Contact: <sip:[local_ip]:[local_port];transport=[transport]>
        Content-Length: 0

      ]]>
    </send>
"""

_UAS_ANSWER = """\
    <pause milliseconds="{ring_ms}"/>
    <send retrans="500">
      <![CDATA[
        SIP/2.0 200 OK
        [last_Via:]
        [last_From:]
        [last_To:];tag=[pid]SIPpTag01[call_number]
        [last_Call-ID:]
        [last_CSeq:]
        Contact: <sip:[local_ip]:[local_port];transport=[transport]>
        Content-Type: application/sdp
        Content-Length: [len]

{sdp}
      ]]>
    </send>
    <recv request="ACK" rtd="true" crlf="true"/>
"""

_UAS_NO_ANSWER = """\
    <recv request="CANCEL" timeout="120000"/>
    <send>
      <![CDATA[
        SIP/2.0 200 OK
        [last_Via:]
        [last_From:]
        [last_To:];tag=[pid]SIPpTag01[call_number]
        [last_Call-ID:]
        [last_CSeq:]
        Content-Length: 0

      ]]>
    </send>
    <send>
      <![CDATA[
        SIP/2.0 487 Request Terminated
        [last_Via:]
        [last_From:]
        [last_To:];tag=[pid]SIPpTag01[call_number]
        [last_Call-ID:]
        CSeq: [cseq] INVITE
        Content-Length: 0

      ]]>
    </send>
    <recv request="ACK" crlf="true"/>
"""

_UAS_BUSY = """\
    <send>
      <![CDATA[
        SIP/2.0 486 Busy Here
        [last_Via:]
        [last_From:]
        [last_To:];tag=[pid]SIPpTag01[call_number]
        [last_Call-ID:]
        [last_CSeq:]
        Content-Length: 0

      ]]>
    </send>
    <recv request="ACK" crlf="true"/>
"""

_UAS_SEND_BYE = """\
    <send retrans="500">
      <![CDATA[
        BYE [$remote_contact] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: [$local_party];tag=[pid]SIPpTag01[call_number]
        To: [$remote_party]
        [last_Call-ID:]
        CSeq: {cseq} BYE
        Contact: <sip:[local_ip]:[local_port];transport=[transport]>
        Max-Forwards: 70
        Content-Length: 0

      ]]>
    </send>
    <recv response="200" crlf="true"/>
"""


def write_uas_scenario(callee: Callee, directory: Path) -> Path:
    """Write ``<directory>/<name>.xml``: the phone that the platform's callback rings."""
    directory.mkdir(parents=True, exist_ok=True)
    info_keys = sum(len(step.digits) for step in callee.steps or [] if step.sip_info)
    # A phone that sends requests of its own in the dialog (INFO keys, BYE) keeps its parties.
    sends = callee.behaviour == "answer" and (callee.hang_up_after_ms is not None or info_keys)
    body = [_UAS_RECV_INVITE_KEEPING_PARTIES if sends else _UAS_RECV_INVITE, _UAS_TRYING]
    if callee.behaviour == "busy":
        body.append(_UAS_BUSY)
    elif callee.behaviour == "no_answer":
        body += [_UAS_RINGING, _UAS_NO_ANSWER]
    elif callee.behaviour == "answer":
        body += [_UAS_RINGING, _UAS_ANSWER.format(ring_ms=callee.ring_ms,
                                                   sdp=_sdp(callee.steps or []))]
        body += _keys_then_end(callee.steps or [], directory / "pcap", callee.hang_up_after_ms,
                               callee.bye_timeout_ms, _UAS_SEND_BYE.format(cseq=1 + info_keys),
                               info_head=_UAS_INFO_HEAD, first_info_cseq=1)
    else:
        raise ValueError(f"unknown callee behaviour {callee.behaviour!r}")
    return _write(directory, callee.name, body)
