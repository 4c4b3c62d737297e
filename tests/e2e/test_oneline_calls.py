"""One-line payments end to end: a caller on 8100 talks to a SIPp agent, the agent asks for
payment, the caller pays in the IVR while the agent is held apart, then they talk again.

The proof that the agent is cut off: a capture of everything Asterisk sends to the agent's SIP
and RTP ports holds no telephone-event and no SIP INFO while the payment runs, and the agent's
call recording holds no DTMF tone of the payment; it was paused, and holds digital silence for
longer than the payment took. A control digit keyed while still bridged to the agent shows up in
the capture, so that check is known to see DTMF.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import pytest

from simulators.acquirer.testcards import find_test_card
from simulators.identity.registry import find_test_identity
from devstack.asterisk_sandbox import AsteriskSandbox, ensure_rootfs
from tests.dtmf_detect import (detect_dtmf, detect_dtmf_in, keypad_in_packets, longest_silence,
                               tone_seconds, tone_seconds_in, ulaw_audio_in_packets)
from tests.sipp.cues import Cues
from tests.sipp.dtmf_modes import MODES, DtmfMode, mode
from tests.sipp.dtmf_pcap import VOICE_HZ
from tests.sipp.scenario import Call, Callee, Key

pytestmark = pytest.mark.e2e

AGENT = "7101"
AGENT_SIP_PORT, AGENT_RTP_PORT = 5081, 17510


@dataclass(frozen=True)
class AgentLeg:
    """The agent's phone as the isolation proof sees it: its endpoint, and the ports everything
    Asterisk sends it (SIP, RTP) arrives on. The SIPp agent by default; a softphone agent's in
    tests/e2e/test_softphones.py."""
    agent_id: str = AGENT
    sip_port: int = AGENT_SIP_PORT
    rtp_port: int = AGENT_RTP_PORT


SIPP_AGENT = AgentLeg()
ID_NUMBER = find_test_identity("demo").id_number
# The agent who leaves hangs up this long after answering: the test asks for the payment as soon
# as the queue has bridged the two, so by then the caller is in the payment IVR.
AGENT_LEAVES_AFTER_MS = 5500


def _order(card, amount: str, mobile: str, **extra) -> dict:
    return {"merchant_order_id": f"OL{int(time.time() * 1000)}", "amount": amount,
            "description": "Order by phone", "card_number": card.pan,
            "cardholder_name": "Zhang San", "id_number": ID_NUMBER, "mobile": mobile,
            "mode": "oneline", "agent_id": AGENT, "language": "en", **extra}


def _marker(payment: dict) -> str:
    """What the caller's leg logs (dialplan NoOp) when it enters the payment IVR."""
    return f"voicepay one-line payment {payment['id']}"


def _pays(stack, cues: Cues, payment: dict, *, n: str = "") -> None:
    """Key "1" when the IVR asks to confirm, and the PIN when it asks for it (cued steps)."""
    stack.wait_for_prompt(_marker(payment), "confirm_menu")
    cues.send(f"menu{n}")
    stack.wait_for_prompt(_marker(payment), "enter_pin")
    cues.send(f"PIN prompt{n}")


def _back_with_the_agent(stack, cues: Cues, caller: subprocess.Popen, agent,
                         leg: AgentLeg = SIPP_AGENT) -> None:
    """Once the caller is bridged back to the agent, the caller hangs up; both SIPps end well
    (``agent`` is the agent's SIPp, or a softphone (tests/softphones), whose call then ends)."""
    _when_the_agent_talks_to_the_caller(stack, leg.agent_id)
    cues.send("back with the agent")
    out, _ = caller.communicate(timeout=150)
    assert caller.returncode == 0, out[-2000:]
    if isinstance(agent, subprocess.Popen):
        out, _ = agent.communicate(timeout=60)
        assert agent.returncode == 0, out[-2000:]
    else:
        agent.wait_ended()


def _capture(path: Path, leg: AgentLeg = SIPP_AGENT, *, bpf: str | None = None
             ) -> subprocess.Popen:
    """Capture what is sent to ``leg``'s SIP and RTP ports (or what the ``bpf`` filter says)."""
    bpf = bpf or f"udp dst port {leg.sip_port} or udp dst port {leg.rtp_port}"
    process = subprocess.Popen(
        ["tshark", "-q", "-i", "lo", "-f", bpf, "-w", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    # tshark writes the file's header once it captures: from then on nothing is missed.
    while not (path.exists() and path.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    return process


def _stop(capture: subprocess.Popen) -> None:
    os.killpg(capture.pid, signal.SIGINT)
    capture.wait(timeout=20)


def _packets_to_agent(path: Path, *, live: bool = False) -> list[tuple[float, int, bytes]]:
    """(time, UDP destination port, UDP payload) of each packet captured in ``path``. ``live``:
    the capture is still being written, and may end in the middle of a packet (tshark reads
    what is whole, then says the file was cut short)."""
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "udp.dstport", "-e", "udp.payload"],
                         capture_output=True, text=True, timeout=120, check=not live).stdout
    packets = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2]:
            packets.append((float(parts[0]), int(parts[1]), bytes.fromhex(parts[2].replace(":", ""))))
    return packets


def dtmf_sent_to_agent(packets, start: float, end: float,
                       leg: AgentLeg = SIPP_AGENT) -> dict[str, int]:
    return keypad_in_packets(packets, sip_port=leg.sip_port, rtp_port=leg.rtp_port,
                             start=start, end=end)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _recordings(stack) -> list[Path]:
    """The agents' call recordings, the newest last."""
    return sorted((stack.settings.var_dir / "asterisk" / "spool" / "monitor").glob("agent-*.wav"),
                  key=lambda p: p.stat().st_mtime)


def _states(payment: dict) -> list[str]:
    """The payment's states in order; notes (the recording paused, resumed) left out."""
    return [h["state"] for h in payment["history"] if not h.get("event")]


def _at(payment: dict, state: str) -> float:
    """When the payment entered ``state``."""
    return _epoch(next(h["at"] for h in payment["history"] if h["state"] == state
                       and not h.get("event")))


def _when_the_agent_talks_to_the_caller(stack, agent_id: str = AGENT) -> None:
    """Wait until the queue has bridged a caller to the agent: only then can the agent's system
    ask for a payment (the order is posted on this event, not after a fixed pause)."""
    sandbox = AsteriskSandbox(stack.settings, ensure_rootfs(stack.settings))
    assert stack.wait_until(lambda: _bridged_with_agent(sandbox, agent_id), 30), \
        "the queue never bridged the caller to the agent"


def _bridged_with_agent(sandbox: AsteriskSandbox, agent_id: str = AGENT) -> bool:
    """Is the agent's channel in a bridge with another channel right now?"""
    rows = [line.split("!") for line in sandbox.cli("core show channels concise").splitlines()]
    bridges = {}
    for row in rows:
        if len(row) > 12 and row[12]:
            bridges.setdefault(row[12], []).append(row[0])
    return any(len(names) == 2 and any(n.startswith(f"PJSIP/{agent_id}-") for n in names)
               for names in bridges.values())


def _paid_with_the_agent_apart(stack, name: str, amount: str, *,
                               dtmf: DtmfMode = mode("rfc4733"), softphone=None,
                               mobile: str = "13800138201",
                               ) -> tuple[dict, list[tuple[float, int, bytes]]]:
    """A caller on 8100 (keying in the ``dtmf`` mode, from that mode's endpoint) talks to agent
    7101, keys a control digit while bridged, pays (1, then the PIN) in a one-line payment, and
    is bridged back to the agent. Checked on the way: the control digit reached the agent, the
    payment was approved, and while it ran nothing of the keypad reached the agent: no
    telephone-event, no SIP INFO at its SIP and RTP ports, no DTMF tone in the audio it was sent
    (decoded from the capture), though the agent's hold music did; nor any tone of the payment in
    the agent's call recording. Returns the payment and the capture.

    ``softphone``: the agent is that registered softphone (tests/softphones) instead, its
    account the agent and its ports the ones captured; it answers the queue's call itself."""
    card = find_test_card("approve")
    how = f" by {dtmf.keyed_via}"
    via = dtmf.keyed_via
    leg = SIPP_AGENT if softphone is None else AgentLeg(
        softphone.account.user, softphone.account.sip_port, softphone.account.rtp_port)
    capture_file = stack.work_dir / f"{name}_agent_leg.pcapng"
    capture = _capture(capture_file, leg)
    try:
        if softphone is None:
            agent = stack.agent(Callee(f"{name}_agent", ring_ms=300, bye_timeout_ms=120000), AGENT)
        else:
            agent = softphone
            agent.answer_every_call()

        cues = Cues()
        caller = stack.start_call(Call(name, "8100", [
            # While still talking to the agent: the control digit the check must see.
            Key("5", cue="control digit", label=f"control digit{how}, bridged to the agent",
                via=via),
            Key("1", cue="menu", label=f"1 to pay{how}", via=via),
            Key(card.pin + "#", cue="PIN prompt", label=f"PIN{how}", via=via),
        ], hang_up_on_cue="back with the agent"), cues=cues, caller_ip=dtmf.caller_ip)
        _when_the_agent_talks_to_the_caller(stack, leg.agent_id)
        cues.send("control digit")
        # ... and the control digit has reached the agent (it must be keyed while bridged).
        assert stack.wait_until(lambda: dtmf_sent_to_agent(
            _packets_to_agent(capture_file), 0, time.time(), leg)["telephone_events"] > 0, 15)

        status, payment = stack.merchant_request(
            "POST", "/v1/payments", _order(card, amount, mobile, agent_id=leg.agent_id))
        assert status == 201, payment
        _pays(stack, cues, payment)
        final = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned",
                                               "refused"}, timeout=90)
        assert final["status"] == "approved", final["history"]

        # Back with the same agent once the result has been read out.
        _back_with_the_agent(stack, cues, caller, agent, leg)
        time.sleep(1)
    finally:
        _stop(capture)  # also when an assertion above fails: no tshark left running

    packets = _packets_to_agent(capture_file)
    switched, done = _at(final, "answered"), _at(final, "approved")
    during_payment = dtmf_sent_to_agent(packets, switched, done, leg)
    assert during_payment["rtp_packets"] > 50  # the agent heard hold music: the capture is live
    assert during_payment["telephone_events"] == 0 and during_payment["sip_info"] == 0
    # The agent's audio, decoded: no tone of the payment (tests/unit/test_dtmf_detect.py: this
    # decoder and detector do hear in-band keys in such a capture).
    heard = ulaw_audio_in_packets(packets, rtp_port=leg.rtp_port, start=switched, end=done)
    assert len(heard) > 8000 * 2 and detect_dtmf_in(heard) == []
    before_payment = dtmf_sent_to_agent(packets, 0, switched - 0.2, leg)
    assert before_payment["telephone_events"] > 0  # the control digit: the check does see DTMF

    recordings = _recordings(stack)
    assert recordings, "the agent's leg was not recorded"
    # Nothing of the payment is in the recording: neither the "1" nor any PIN digit. (The
    # control digit keyed while bridged may be missing too: Asterisk holds a leg's audio until
    # the other leg's arrives, and the pause silences what it still holds, here the tone just
    # before the switch from a silent SIPp agent. Muting errs on that side by design; the
    # capture above has the control that the checks see DTMF, tests/unit/test_dtmf_detect.py
    # the detector's.)
    assert [digit for _, digit in detect_dtmf(recordings[-1]) if digit != "5"] == []
    # The pause itself, measured from the file: the recording was muted (digital silence written
    # in its place) from before the switch until the caller left the payment IVR, so it holds a
    # silent stretch longer than the payment took. Without the pause that stretch is where the
    # hold music and "the customer is entering payment details" the agent heard are recorded.
    # (Issue 9: in every mode, the caller's audio before the switch no longer ends the recording.)
    start, length = longest_silence(recordings[-1])
    assert length >= done - switched > 3, (start, length, done - switched)
    return final, packets


def test_payment_in_a_live_call_keeps_the_agent_apart_and_returns_the_caller(stack):
    final, packets = _paid_with_the_agent_apart(stack, "oneline_caller", "42.00")
    assert _states(final) == [
        "created", "risk_passed", "answered", "confirmed", "pin_entry", "authorizing", "approved"]
    assert [h["event"] for h in final["history"] if h.get("event")][:1] == ["recording_paused"]
    assert final["agent_id"] == AGENT
    switched = _at(final, "answered")
    # The control for SIP INFO: the capture holds the agent's SIP requests (the INVITE that rang
    # the agent), and the same counter finds an INFO in one (tests/unit/test_dtmf_detect.py).
    before_payment = dtmf_sent_to_agent(packets, 0, switched - 0.2)
    assert before_payment.get("sip_invite", 0) >= 1, before_payment

    # The recording's pause (measured from the file in _paid_with_the_agent_apart) is in the
    # history too.
    history = stack.get(f"/v1/payments/{final['id']}")["history"]
    assert [h["event"] for h in history if h.get("event")] == ["recording_paused",
                                                                "recording_resumed"]


@pytest.mark.parametrize("dtmf", [m for m in MODES if m.name != "rfc4733"], ids=lambda m: m.name)
def test_every_dtmf_mode_is_the_same_secret_input(stack, dtmf):
    """A caller whose phone keys by SIP INFO (either body) or by in-band tones (on an inband or an
    auto endpoint) instead of RFC 4733 pays with it in the payment IVR (the PIN went only that
    way, and was approved), and none of it reaches the agent's leg while the payment runs: no
    INFO, no telephone-event, no tone in its audio or its recording. The control: a key while
    still bridged with the agent does reach the agent (Asterisk relays what it read, INFO or
    tone, as an RFC 4733 event), so the check sees what such keys become."""
    _paid_with_the_agent_apart(stack, f"oneline_caller_{dtmf.name}", "43.00", dtmf=dtmf)


# What a test phone "says" (Key via="voice"): ten bursts of VOICE_HZ, 1.6 s of tone in 2.8 s.
TALK = "0" * 10
TALK_TONE_S = 1.6


def _voice_sent_to_agent(capture_file: Path, start: float) -> float:
    """Seconds of the test phones' voice tone in the audio Asterisk sent the agent since
    ``start`` (epoch seconds), decoded from the capture."""
    heard = ulaw_audio_in_packets(_packets_to_agent(capture_file), rtp_port=AGENT_RTP_PORT,
                                  start=start, end=time.time())
    return tone_seconds_in(heard, VOICE_HZ)


def test_the_recording_holds_the_conversation_before_and_after_the_payment(stack):
    """Issue 9: real phones send audio all the time. Agent and caller talk (plain G.711 audio,
    keys by RFC 4733), the caller pays, then talks to the agent again. The agent's recording
    holds both conversations, and between them the payment muted (digital silence as long as
    it took) with no key in it. (Before the fix the recording stopped getting audio once the
    caller's voice had reached the agent: the hold audio, then everything, was lost.)"""
    card = find_test_card("approve")
    capture_file = stack.work_dir / "oneline_talking_agent_leg.pcapng"
    capture = _capture(capture_file)
    try:
        agent = stack.agent(Callee("agent_talks", ring_ms=300, bye_timeout_ms=120000,
                                   steps=[Key(TALK, via="voice", label="the agent greets")]),
                            AGENT)
        cues = Cues()
        caller = stack.start_call(Call("oneline_talking_caller", "8100", [
            Key(TALK, cue="talk", via="voice", label="the caller talks to the agent"),
            Key("1", cue="menu", label="1 to pay"),
            Key(card.pin + "#", cue="PIN prompt", label="PIN"),
            Key(TALK, cue="talk again", via="voice", label="the caller talks again"),
        ], hang_up_on_cue="hang up"), cues=cues)
        _when_the_agent_talks_to_the_caller(stack)
        talking = time.time()
        cues.send("talk")
        # The whole of it has reached the agent before the agent's system asks for payment.
        assert stack.wait_until(lambda: _voice_sent_to_agent(capture_file, talking)
                                >= TALK_TONE_S - 0.2, 15), "the caller's voice never reached the agent"

        status, payment = stack.merchant_request("POST", "/v1/payments",
                                                 _order(card, "44.00", "13800138201"))
        assert status == 201, payment
        _pays(stack, cues, payment)
        final = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned",
                                               "refused"}, timeout=90)
        assert final["status"] == "approved", final["history"]

        _when_the_agent_talks_to_the_caller(stack)
        talking_again = time.time()
        cues.send("talk again")
        assert stack.wait_until(lambda: _voice_sent_to_agent(capture_file, talking_again)
                                >= TALK_TONE_S - 0.2, 15), "the caller's voice never came back"
        mark = stack.asterisk_mark()
        cues.send("hang up")
        out, _ = caller.communicate(timeout=60)
        assert caller.returncode == 0, out[-2000:]
        out, _ = agent.communicate(timeout=60)
        assert agent.returncode == 0, out[-2000:]
        # MixMonitor has closed the file (its header then holds the length).
        assert stack.wait_until(lambda: any(
            f"End MixMonitor Recording PJSIP/{AGENT}-" in line
            for line in stack._asterisk_log()[mark:]), 15)
    finally:
        _stop(capture)

    recording = _recordings(stack)[-1]
    switched, done = _at(final, "answered"), _at(final, "approved")
    start, length = longest_silence(recording)
    assert length >= done - switched > 3, (start, length, done - switched)
    # The voices before the payment (the agent's greeting and the caller's talk, which may
    # overlap) and the caller's after it, each nearly all there.
    before, after = (tone_seconds(recording, VOICE_HZ, end_s=start),
                     tone_seconds(recording, VOICE_HZ, start_s=start + length))
    assert before >= TALK_TONE_S - 0.3 and after >= TALK_TONE_S - 0.3, (before, after)
    assert detect_dtmf(recording) == []


def test_over_the_limit_for_a_new_cardholder_is_refused(stack):
    card = find_test_card("approve")
    status, answer = stack.merchant_request("POST", "/v1/payments",
                                            _order(card, "2000.01", "13800138299"))
    assert status == 403, answer
    assert answer["error_id"] == "oneline-not-allowed"
    assert answer["details"]["use_mode"] == "callback"


def test_no_live_call_for_the_agent(stack):
    card = find_test_card("approve")
    status, answer = stack.merchant_request("POST", "/v1/payments",
                                            _order(card, "10.00", "13800138298"))
    assert status == 409 and answer["error_id"] == "agent-not-on-call"


def test_caller_hanging_up_mid_pin_releases_the_agent(stack):
    card = find_test_card("approve")
    agent = stack.agent(Callee("agent_released", ring_ms=300, bye_timeout_ms=120000), AGENT)
    cues = Cues()
    caller = stack.start_call(Call("oneline_caller_leaves", "8100", [
        Key("1", cue="menu", label="1 to pay"),
        Key(card.pin[:3], cue="PIN prompt", label="half a PIN"),
    ], hang_up_after_ms=500), cues=cues)
    _when_the_agent_talks_to_the_caller(stack)
    status, payment = stack.merchant_request("POST", "/v1/payments",
                                             _order(card, "15.00", "13800138202"))
    assert status == 201, payment
    _pays(stack, cues, payment)
    out, _ = caller.communicate(timeout=120)
    assert caller.returncode == 0, out[-2000:]
    # The agent hears that the customer hung up, then Asterisk hangs up on them.
    out, _ = agent.communicate(timeout=60)
    assert agent.returncode == 0, out[-2000:]
    final = stack.wait_for(payment["id"], {"abandoned"}, timeout=20)
    assert final["status"] == "abandoned"
    assert "stan" not in final
    heard_by_agent = stack.prompts_played(f"voicepay agent waiting on {payment['id']}")
    assert any(PurePosixPath(p).stem == "customer_hung_up" for p in heard_by_agent), heard_by_agent


def test_1_keyed_during_the_readout_answers_the_menu(stack):
    """Issue 13, as found with a softphone: "1" keyed while the merchant and amount are still read
    out answers "press 1 to pay"; the PIN keyed next is the PIN, approved at the first try."""
    card = find_test_card("approve")
    agent = stack.agent(Callee("agent_early_1", ring_ms=300, bye_timeout_ms=120000), AGENT)
    cues = Cues()
    caller = stack.start_call(Call("oneline_early_1", "8100", [
        Key("1", cue="readout", label="1 during the merchant and amount"),
        Key(card.pin + "#", cue="PIN prompt", label="PIN"),
    ], hang_up_on_cue="back with the agent"), cues=cues)
    _when_the_agent_talks_to_the_caller(stack)
    status, payment = stack.merchant_request("POST", "/v1/payments",
                                             _order(card, "19.00", "13800138205"))
    assert status == 201, payment
    stack.wait_for_prompt(_marker(payment), "callback_intro")
    cues.send("readout")
    stack.wait_for_prompt(_marker(payment), "enter_pin")
    cues.send("PIN prompt")
    final = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned",
                                           "refused"}, timeout=90)
    assert final["status"] == "approved", final["history"]
    assert final["internal"]["pin_attempts"] == "1"
    heard = stack.prompt_names(_marker(payment))
    assert "confirm_menu" not in heard, heard  # answered before it was asked
    _back_with_the_agent(stack, cues, caller, agent)


def test_agent_gone_caller_still_gets_the_result(stack):
    card = find_test_card("approve")
    # The agent hangs up while the customer is in the payment IVR.
    agent = stack.agent(Callee("agent_leaves", ring_ms=300, hang_up_after_ms=AGENT_LEAVES_AFTER_MS),
                        AGENT)
    cues = Cues()
    caller = stack.start_call(Call("oneline_agent_leaves", "8100", [
        Key("1", cue="menu", label="1 to pay"),
        Key(card.pin + "#", cue="PIN prompt", label="PIN"),
    ], bye_timeout_ms=120000), cues=cues)
    _when_the_agent_talks_to_the_caller(stack)
    status, payment = stack.merchant_request("POST", "/v1/payments",
                                             _order(card, "16.00", "13800138203"))
    assert status == 201, payment
    _pays(stack, cues, payment)
    out, _ = agent.communicate(timeout=60)
    assert agent.returncode == 0, out[-2000:]
    # The caller hears the result, is offered another agent, keys nothing, and is let go.
    out, _ = caller.communicate(timeout=150)
    assert caller.returncode == 0, out[-2000:]
    final = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert final["status"] == "approved"
    # After the result, the caller was offered the queue ("press 1 to speak to another agent").
    heard = [PurePosixPath(p).stem for p in
             stack.prompts_played(f"voicepay one-line payment {payment['id']}")]
    assert "approved" in heard and "agent_gone" in heard, heard
    assert heard.index("approved") < heard.index("agent_gone"), heard


def test_declined_then_paid_with_another_card_in_the_same_call(stack):
    """The first card is declined; back with the agent, the agent takes a second payment."""
    poor, good = find_test_card("insufficient_funds"), find_test_card("approve")
    agent = stack.agent(Callee("agent_retry", ring_ms=300, bye_timeout_ms=180000), AGENT)
    cues = Cues()
    caller = stack.start_call(Call("oneline_retry", "8100", [
        Key("1", cue="menu", label="1 to pay"),
        Key(poor.pin + "#", cue="PIN prompt", label="PIN"),
        Key("1", cue="menu 2", label="1 to pay"),
        Key(good.pin + "#", cue="PIN prompt 2", label="PIN"),
    ], hang_up_on_cue="back with the agent"), cues=cues)
    _when_the_agent_talks_to_the_caller(stack)
    status, first = stack.merchant_request("POST", "/v1/payments",
                                           _order(poor, "17.00", "13800138204"))
    assert status == 201, first
    _pays(stack, cues, first)
    assert stack.wait_for(first["id"], {"declined"}, timeout=60)["status"] == "declined"
    # The agent asks again once the caller is back with them.
    _when_the_agent_talks_to_the_caller(stack)
    status, second = stack.merchant_request("POST", "/v1/payments",
                                            _order(good, "18.00", "13800138204"))
    assert status == 201, second
    _pays(stack, cues, second, n=" 2")
    assert stack.wait_for(second["id"], {"approved"}, timeout=60)["status"] == "approved"
    _back_with_the_agent(stack, cues, caller, agent)
    assert stack.get(f"/v1/payments/{first['id']}")["response_code"] == "51"
