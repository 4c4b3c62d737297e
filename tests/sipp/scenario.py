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
from dataclasses import dataclass, field
from pathlib import Path

from ivr.prompts import Manifest, synthesis_commands
from tests.sipp.dtmf_pcap import (TONES, InBand, pcap_for_step, play_duration_ms,
                                   voice_pcap_for_step)

__all__ = ["KEYED_VIA", "Key", "Call", "Callee", "PromptClock", "write_scenario", "write_uas_scenario", "SIPP_DIR",
           "REFUSED_COUNTER", "REFUSED_RTD"]

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

    # Not in the repr: pytest prints a failing test's arguments, and these are PINs and CVV2s.
    digits: str = field(repr=False)
    wait_ms: int = 0
    # What the scenario file says is keyed here ("PIN"); by default the digits themselves.
    label: str = ""
    cue: str | None = None
    via: str = "rfc4733"
    # Before keying: put the call on hold and take it off again (a re-INVITE with a=sendonly,
    # then one with a=sendrecv), each answer checked for the direction Asterisk agreed to.
    hold: bool = False
    # How long each key's tone and the gap after it last; for in-band keys, also their level
    # and a talker under them (InBand; its codec is the call's, Call.codecs).
    tone_ms: int = 160
    gap_ms: int = 120
    sound: InBand = InBand()

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
    # The codecs offered, first preferred (PCMU, PCMA, G722), and the SIP transport ("tcp": run
    # SIPp with -t t1; the Contact then says transport=tcp, as a TCP phone's does).
    codecs: tuple[str, ...] = ("PCMU",)
    transport: str = "udp"
    # A talker: from the answer on, the caller sends a steady tone of this many Hz as its voice,
    # resumed after each key's capture (a new play cuts off the running one); None: silent.
    voice_hz: int | None = None
    # A 503 to the INVITE (Asterisk full: dialplan/admission.conf) is a clean ending too: SIPp
    # acknowledges it and counts the call in REFUSED_COUNTER instead of failing it.
    refusable: bool = False

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


# The static RTP payload types of the codecs a call may offer (RFC 3551; G.722's clock rate is
# 8000 in SDP, a historical error every implementation keeps).
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}


def _sdp(codecs: tuple[str, ...] = ("PCMU",), *, direction: str = "sendrecv",
         version: int = 0, telephone_event: bool = True) -> str:
    """Our media offer/answer: ``codecs`` in order of preference and RFC 4733 telephone-events,
    payload type 101 (the type dtmf_pcap.py writes). ``version``: the o= line's, raised by each
    re-INVITE. Without ``telephone_event``: a phone that keys only with in-band tones (what
    ``dtmf_mode = auto`` decides by)."""
    types = " ".join(str(PAYLOAD_TYPES[codec]) for codec in codecs)
    rtpmaps = "".join(f"        a=rtpmap:{PAYLOAD_TYPES[codec]} {codec}/8000\n" for codec in codecs)
    if not telephone_event:
        return f"""\
        v=0
        o=cardholder 53655765 {2353687637 + version} IN IP[local_ip_type] [local_ip]
        s=-
        c=IN IP[media_ip_type] [media_ip]
        t=0 0
        m=audio [media_port] RTP/AVP {types}
{rtpmaps}        a=ptime:20
        a={direction}
"""
    return f"""\
        v=0
        o=cardholder 53655765 {2353687637 + version} IN IP[local_ip_type] [local_ip]
        s=-
        c=IN IP[media_ip_type] [media_ip]
        t=0 0
        m=audio [media_port] RTP/AVP {types} 101
{rtpmaps}        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a={direction}
"""


def _inband_only(steps: list[Key]) -> bool:
    return bool(steps) and all(step.via == "inband" for step in steps)


_INVITE = """\
    <send retrans="500">
      <![CDATA[
        INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "SIPp cardholder" <sip:cardholder@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:{number}@[remote_ip]:[remote_port]>
        Call-ID: [call_id]
        CSeq: 1 INVITE
        Contact: <sip:cardholder@[local_ip]:[local_port]{contact_params}>
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
{refused}    <recv response="200" rtd="true"/>

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

# SIPp's counter of calls refused with 503: its -trace_stat file has a "refused503(C)" column;
# and the response time (-trace_rtt) named for it: call start (the INVITE) to the 503.
REFUSED_COUNTER = "refused503"
REFUSED_RTD = "refused"
_RECV_503 = (f'    <recv response="503" optional="true" next="refused" counter="{REFUSED_COUNTER}"'
             f' rtd="{REFUSED_RTD}"/>\n')
# The refused call's end: the ACK of a non-2xx final response belongs to the INVITE's transaction
# (its Via, branch included, echoed in the 503) and carries the 503's To tag.
_REFUSED = """\
    <nop next="end"/>
    <label id="refused"/>
    <send>
      <![CDATA[
        ACK sip:{number}@[remote_ip]:[remote_port] SIP/2.0
        [last_Via:]
        From: "SIPp cardholder" <sip:cardholder@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        [last_To:]
        Call-ID: [call_id]
        CSeq: 1 ACK
        Max-Forwards: 70
        Content-Length: 0

      ]]>
    </send>
    <label id="end"/>
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

# The first lines of a request of ours in the call's dialog (its To carries Asterisk's tag).
_DIALOG_HEAD = """\
        {method} sip:{number}@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "SIPp cardholder" <sip:cardholder@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]
        Call-ID: [call_id]
        CSeq: {cseq} {method}
"""
# The caller's own Contact, on every request of its dialog but the ACK.
_CALLER_CONTACT = "        Contact: <sip:cardholder@[local_ip]:[local_port]>\n"

_SEND_BYE = ("""\
    <send retrans="500">
      <![CDATA[
""" + _DIALOG_HEAD.replace("{method}", "BYE") + _CALLER_CONTACT + """\
        Max-Forwards: 70
        Content-Length: 0

      ]]>
    </send>
    <recv response="200" crlf="true"/>
""")

# One key as a SIP INFO (RFC 2976, with a body of INFO_BODIES), in the caller's dialog; {cseq}
# continues the dialog's numbering (the BYE comes after).
_CALLER_INFO_HEAD = _DIALOG_HEAD.replace("{method}", "INFO") + _CALLER_CONTACT
# The first lines of a request of the called phone, in the dialog the platform's INVITE opened
# (we are its To side), its Contact included.
_UAS_DIALOG_HEAD = """\
        {method} [$remote_contact] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: [$local_party];tag=[pid]SIPpTag01[call_number]
        To: [$remote_party]
        [last_Call-ID:]
        CSeq: {cseq} {method}
        Contact: <sip:[local_ip]:[local_port];transport=[transport]>
"""
_UAS_INFO_HEAD = _UAS_DIALOG_HEAD.replace("{method}", "INFO")
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


def _reinvite(what: str, number: str, cseq: int, sdp: str, answer: str) -> str:
    """The caller's re-INVITE (hold, unhold) and its ACK: Asterisk's 200 must carry
    ``a=<answer>`` (recvonly to our sendonly, sendrecv again after), or SIPp fails the call."""
    variable = f"{what}{cseq}"
    return f"""    <!-- {what} -->
    <send retrans="500">
      <![CDATA[
{_DIALOG_HEAD.format(method="INVITE", number=number, cseq=cseq)}{_CALLER_CONTACT}\
        Max-Forwards: 70
        Content-Type: application/sdp
        Content-Length: [len]

{sdp}
      ]]>
    </send>
    <recv response="100" optional="true"/>
    <recv response="200">
      <action>
        <ereg regexp="a={answer}" search_in="body" check_it="true" assign_to="{variable}"/>
      </action>
    </recv>
    <send>
      <![CDATA[
{_DIALOG_HEAD.format(method="ACK", number=number, cseq=cseq)}\
        Max-Forwards: 70
        Content-Length: 0

      ]]>
    </send>
    <nop><action><log message="{what}: [${variable}]"/></action></nop>
"""


# How long the caller stays on hold.
HOLD_MS = 1500


def _hold_and_unhold(number: str, cseq: int, codecs: tuple[str, ...], version: int) -> str:
    """Hold (CSeq ``cseq``) then unhold (``cseq`` + 1); SDP versions ``version`` + 1 and + 2."""
    return (_reinvite("hold", number, cseq, _sdp(codecs, direction="sendonly",
                                                  version=version + 1), answer="recvonly")
            + f'    <pause milliseconds="{HOLD_MS}"/>\n'
            + _reinvite("unhold", number, cseq + 1, _sdp(codecs, version=version + 2),
                        answer="sendrecv"))


# How long a talker's voice plays: a caller's between two keys (one sequence-number slice of
# dtmf_pcap.py: 1000 packets), a called phone's (one play for the whole call).
VOICE_CALLER_MS = 20000
VOICE_CALLEE_MS = 180000


class _Voice:
    """The plays of a talking caller's voice. Its plays and the keys' captures take turns in the
    call's sequence and timestamp slices: voice k in slice 2k, key step i in slice 2i + 1."""

    def __init__(self, hz: int, pcap_dir: Path) -> None:
        self._hz, self._pcap_dir = hz, pcap_dir

    def play(self, after_step: int) -> str:
        """The voice again once step ``after_step`` (-1: the answer) has been keyed."""
        pcap = voice_pcap_for_step(self._pcap_dir, self._hz, 2 * (after_step + 1),
                                   duration_ms=VOICE_CALLER_MS)
        return _play(pcap)

    @staticmethod
    def key_slice(step: int) -> int:
        return 2 * step + 1


def _play(pcap: Path) -> str:
    return f'    <nop><action><exec play_pcap_audio="pcap/{pcap.name}"/></action></nop>\n'


def write_scenario(call: Call, directory: Path) -> Path:
    """Write ``<directory>/<name>.xml`` and its DTMF captures (in ``<directory>/pcap``)."""
    directory.mkdir(parents=True, exist_ok=True)
    pcap_dir = directory / "pcap"
    contact_params = "" if call.transport == "udp" else f";transport={call.transport}"
    sdp = _sdp(call.codecs, telephone_event=not _inband_only(call.steps))
    body = [_INVITE.format(number=call.number, sdp=sdp, contact_params=contact_params,
                           refused=_RECV_503 if call.refusable else "")]
    voice = _Voice(call.voice_hz, pcap_dir) if call.voice_hz else None
    if voice:
        body.append(voice.play(-1))
    info_head = _CALLER_INFO_HEAD.replace("{number}", call.number)
    # CSeq 1 was the INVITE.
    body += _keys_then_end(call.steps, pcap_dir, call.hang_up_after_ms, call.bye_timeout_ms,
                           _SEND_BYE.replace("{number}", call.number),
                           call.hang_up_on_cue, info_head=info_head, first_info_cseq=2,
                           number=call.number, codecs=call.codecs, voice=voice)
    if call.refusable:
        body.append(_REFUSED.format(number=call.number))
    body.append('    <ResponseTimeRepartition value="100, 500, 1000"/>\n')
    return _write(directory, call.name, body)


def _keys_then_end(steps: list[Key], pcap_dir: Path, hang_up_after_ms: int | None,
                   bye_timeout_ms: int, send_bye: str, hang_up_on_cue: str | None = None, *,
                   info_head: str, first_info_cseq: int, number: str | None = None,
                   codecs: tuple[str, ...] = ("PCMU",), voice: _Voice | None = None) -> list[str]:
    """Key ``steps``, then wait for the other side's BYE, or send ours (``send_bye``, its
    ``{cseq}`` the dialog's next) ``hang_up_after_ms`` later (or on the test's
    ``hang_up_on_cue``). Our requests in the dialog (INFO keys sent with ``info_head``, hold and
    unhold) are numbered in turn from ``first_info_cseq``; ``number`` (the caller's dialled
    number) and ``codecs`` are for hold and unhold; ``voice``: the caller talks again after
    each key."""
    lines, previous_play_ms, next_cseq = _key_presses(steps, pcap_dir, info_head,
                                                      first_info_cseq, number, codecs, voice)
    send_bye = send_bye.format(cseq=next_cseq)
    if voice and previous_play_ms:
        lines += [f'    <pause milliseconds="{previous_play_ms}"/>\n', voice.play(len(steps) - 1)]
        previous_play_ms = 0
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


def _key_presses(steps: list[Key], pcap_dir: Path, info_head: str, info_cseq: int,
                 number: str | None = None, codecs: tuple[str, ...] = ("PCMU",),
                 voice: _Voice | None = None) -> tuple[list[str], int, int]:
    """The scenario lines that key ``steps``, how long the last capture plays, and the CSeq of
    the dialog's next request (every INFO key, hold and unhold takes one)."""
    lines: list[str] = []
    previous_play_ms = 0
    for index, step in enumerate(steps):
        # SIPp plays a capture in the background and a new play cuts off the running one.
        if voice and previous_play_ms:  # the key's capture has ended: the caller talks again
            lines += [f'    <pause milliseconds="{previous_play_ms}"/>\n', voice.play(index - 1)]
            previous_play_ms = 0
        if step.cue is None:
            lines.append(f'    <pause milliseconds="{max(step.wait_ms, 0) + previous_play_ms}"/>\n')
        else:
            if previous_play_ms:
                lines.append(f'    <pause milliseconds="{previous_play_ms}"/>\n')
            lines.append(_WAIT_FOR_CUE.format(cue=step.cue, timeout=CUE_TIMEOUT_MS))
        if step.hold:
            if number is None:
                raise ValueError("only a caller puts the call on hold")
            lines.append(_hold_and_unhold(number, info_cseq, codecs, version=info_cseq))
            info_cseq += 2
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
        pcap = pcap_for_step(pcap_dir, step.digits, voice.key_slice(index) if voice else index,
                             tones=step.via, tone_ms=step.tone_ms, gap_ms=step.gap_ms,
                             sound=_in_the_calls_law(step.sound, codecs))
        lines.append(_play(pcap))
        previous_play_ms = play_duration_ms(step.digits, tone_ms=step.tone_ms, gap_ms=step.gap_ms)
    return lines, previous_play_ms, info_cseq


def _in_the_calls_law(sound: InBand, codecs: tuple[str, ...]) -> InBand:
    """A key's in-band sound in the G.711 law the call offers first (u-law for any other)."""
    return dataclasses.replace(sound, codec="PCMA" if codecs[0] == "PCMA" else "PCMU")


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
    # The codecs it answers with, and whether it answers with 183 Session Progress and media
    # (SDP) first, like a carrier's announcement or a phone's ringback, then 200.
    codecs: tuple[str, ...] = ("PCMU",)
    early_media: bool = False
    # A talker: from the answer on, the phone sends a steady tone of this many Hz for
    # VOICE_CALLEE_MS (only without steps: a key's capture would cut it off).
    voice_hz: int | None = None
    # Hang up (send BYE) when the test sends this cue (the phone is then run with cues).
    hang_up_on_cue: str | None = None

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

# A response with our SDP: the 200 that answers, or the 183 of early media before it.
_UAS_WITH_SDP = """\
    <send{retrans}>
      <![CDATA[
        SIP/2.0 {status}
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
"""


def _uas_early_media(sdp: str) -> str:
    return _UAS_WITH_SDP.format(retrans="", status="183 Session Progress", sdp=sdp)


def _uas_answer(ring_ms: int, sdp: str) -> str:
    return (f'    <pause milliseconds="{ring_ms}"/>\n'
            + _UAS_WITH_SDP.format(retrans=' retrans="500"', status="200 OK", sdp=sdp)
            + '    <recv request="ACK" rtd="true" crlf="true"/>\n')


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

_UAS_SEND_BYE = ("""\
    <send retrans="500">
      <![CDATA[
""" + _UAS_DIALOG_HEAD.replace("{method}", "BYE") + """\
        Max-Forwards: 70
        Content-Length: 0

      ]]>
    </send>
    <recv response="200" crlf="true"/>
""")


def write_uas_scenario(callee: Callee, directory: Path) -> Path:
    """Write ``<directory>/<name>.xml``: the phone that the platform's callback rings."""
    directory.mkdir(parents=True, exist_ok=True)
    keys_by_info = any(step.sip_info for step in callee.steps or [])
    # A phone that sends requests of its own in the dialog (INFO keys, BYE) keeps its parties.
    sends = callee.behaviour == "answer" and (callee.hang_up_after_ms is not None or keys_by_info
                                              or callee.hang_up_on_cue is not None)
    body = [_UAS_RECV_INVITE_KEEPING_PARTIES if sends else _UAS_RECV_INVITE, _UAS_TRYING]
    if callee.behaviour == "busy":
        body.append(_UAS_BUSY)
    elif callee.behaviour == "no_answer":
        body += [_UAS_RINGING, _UAS_NO_ANSWER]
    elif callee.behaviour == "answer":
        sdp = _sdp(callee.codecs, telephone_event=not _inband_only(callee.steps or []))
        body += [_uas_early_media(sdp) if callee.early_media else _UAS_RINGING,
                 _uas_answer(callee.ring_ms, sdp)]
        if callee.voice_hz:
            if callee.steps:
                raise ValueError("a talking phone keys nothing: a key's capture would cut it off")
            body.append(_play(voice_pcap_for_step(directory / "pcap", callee.voice_hz, 0,
                                                  duration_ms=VOICE_CALLEE_MS)))
        body += _keys_then_end(callee.steps or [], directory / "pcap", callee.hang_up_after_ms,
                               callee.bye_timeout_ms, _UAS_SEND_BYE, callee.hang_up_on_cue,
                               info_head=_UAS_INFO_HEAD, first_info_cseq=1)
    else:
        raise ValueError(f"unknown callee behaviour {callee.behaviour!r}")
    return _write(directory, callee.name, body)
