"""Talk-through one-line payments (issue 12): the agent's side.

- The agent starts one from the console page (a real Chromium), watches the progress per field
  as for the hard switch, and asks again for the expiry from the page; the CVV2 is asked again
  through the console's API.
- The agent's own keys while listening (* and #, ChanSpy's controls) do nothing: the agent still
  hears the caller, and the payment completes and the agent is bridged back.
- With the prompts to both (VOICEPAY_TALKTHROUGH_PROMPTS=both), the agent hears the payment
  IVR's prompts as the caller does, and still no digit and no tone.

The caller talks (550 Hz), the agent talks (1800 Hz) unless it keys, as in
test_talkthrough_calls.py, whose helpers these tests share.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from simulators.acquirer.testcards import find_test_card
from tests.dtmf_detect import detect_dtmf_in, ulaw_audio_in_packets
from tests.e2e.test_console import (_fill_order, _log_in, _record_lines, _seen, _shot,  # noqa: F401
                                    browser, page)
from tests.e2e.test_oneline_calls import (AGENT, SIPP_AGENT, _at, _back_with_the_agent, _capture,
                                          _marker, _order, _packets_to_agent, _stop,
                                          _when_the_agent_talks_to_the_caller,
                                          dtmf_sent_to_agent)
from tests.e2e.test_talkthrough_calls import (AGENT_HZ, CALLER_HZ, CALLER_RTP_PORT, _approved,
                                              _Console, _nothing_keyed_reached_the_agent,
                                              _seconds, _seconds_heard, _seconds_with_other_sound,
                                              _talk_through_order, _talking)
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Callee, Key

pytestmark = pytest.mark.e2e

# Keyed by a caller who got a field wrong; no test card has either.
NOT_THE_EXPIRY = "0631"
NOT_THE_CVV2 = "505"
TELEPHONE_EVENT = 101  # the payload type SIPp's phones and Asterisk agree on for RFC 4733
PAY = Key("1", cue="confirm_menu", label="1 to pay")


def _mmyy(card) -> str:
    return card.expiry[2:] + card.expiry[:2]  # the card book says YYMM, callers key MMYY


def _packets_each_second(packets, rtp_port: int, start: float, end: float) -> list[int]:
    """How many packets reached ``rtp_port`` in each whole second from ``start`` to ``end``."""
    return [sum(1 for at, port, _ in packets if port == rtp_port and start + n <= at < start + n + 1)
            for n in range(int(end - start))]


@contextlib.contextmanager
def _agent_leg(stack, name: str) -> Iterator[Path]:
    """While the block runs, capture what Asterisk sends the agent's phone (its SIP and RTP
    ports) into the file yielded; tshark is stopped however the block ends."""
    path = stack.work_dir / f"{name}_agent_leg.pcapng"
    capture = _capture(path, SIPP_AGENT)
    try:
        yield path
    finally:
        _stop(capture)


def _answer(stack, cues: Cues, marker: str, *prompts: str) -> None:
    """The caller answers each of ``prompts`` once the IVR has played it: in these tests a
    caller's step is cued by the name of the prompt it answers."""
    for prompt in prompts:
        stack.wait_for_prompt(marker, prompt)
        cues.send(prompt)


def _asked_again(stack, cues: Cues, marker: str, prompt: str) -> None:
    """The caller keys the entry the agent asked again for (cue ``prompt``): it is discarded,
    the IVR says "please enter it again" and asks ``prompt`` anew (the next cue is
    ``prompt + " again"``)."""
    cues.send(prompt)
    stack.wait_for_prompt(marker, prompt, count=2)
    stack.wait_for_prompt(marker, "ask_again")


def _one_authorization_approved(stack, journal_before: int) -> None:
    """One authorization since ``journal_before``, approved: nothing keyed wrong reached the
    acquirer (a wrong expiry is a 54, a wrong CVV2 an 82)."""
    assert [e["response_code"] for e in stack.journal()[journal_before:]] == ["00"]


# ---- the console page ----

def test_talk_through_from_the_console_page_with_the_expiry_asked_again(
        page: Page, stack) -> None:  # noqa: F811 (the console tests' page fixture)
    """The agent picks "talk-through" on the page: the caller keys while still talking to the
    agent, the page shows each field's progress as for the hard switch, and the agent asks
    again for the expiry from it; only the expiry keyed afterwards reaches the acquirer."""
    card = find_test_card("credit_approve")
    with _agent_leg(stack, "tt_console_page") as agent_capture:
        agent, cues, caller = _talking(stack, "tt_console_page", [
            PAY,
            Key(NOT_THE_EXPIRY, cue="enter_expiry", label="an expiry the caller got wrong"),
            Key(_mmyy(card), cue="enter_expiry again", label="the expiry, asked again"),
            Key(card.cvv2, cue="enter_cvv2", label="CVV2"),
        ], hang_up_on_cue="back with the agent")
        _log_in(page, stack)
        call = page.locator("#call")
        expect(call).to_have_attribute("data-state", "on-call")
        _fill_order(page, card, mode="talk-through", mobile="13800138231", amount="51.00")
        _record_lines(page)
        journal_before = len(stack.journal())
        page.get_by_role("button", name="Start payment").click()
        expect(page.locator("#progress li[data-step=answered]")).to_have_text(
            "Caller in secure capture, you stay on the line: done")
        expect(call).to_have_attribute("data-state", "caller-talking-through")
        expect(call).to_have_text(
            "The caller is keying in the payment IVR; you can still talk, and you hear no key")
        expect(page.locator("#recording")).to_be_hidden()  # nothing paused: nothing to say
        payment_id = page.locator("#progress-view").get_attribute("data-payment")
        payment = stack.get(f"/v1/payments/{payment_id}")
        assert payment["oneline_style"] == "talk-through" and payment["agent_id"] == AGENT
        marker = _marker(payment)
        _answer(stack, cues, marker, "confirm_menu")
        stack.wait_for_prompt(marker, "enter_expiry")

        # The caller says the expiry they are keying is wrong: the agent asks for it again.
        expiry = page.locator("#progress li[data-step=expiry]")
        expiry.get_by_role("button", name="Ask the caller for the Expiry date again").click()
        expect(expiry).to_contain_text("ask again requested")
        expect(page.locator("#progress li[data-step=cvv2]")).to_have_attribute(
            "data-status", "pending")  # not asked for before the expiry is keyed
        _shot(page, "console-talkthrough-ask-again.png")
        _asked_again(stack, cues, marker, "enter_expiry")
        expect(expiry).to_contain_text("Expiry date: in progress (asked again)")
        cues.send("enter_expiry again")
        stack.wait_for_prompt(marker, "enter_cvv2")
        # Keyed, and still offered for asking again until it goes to the acquirer with the CVV2.
        expect(expiry).to_contain_text("Expiry date: 4 digits entered (asked again)")
        expect(expiry.get_by_role("button", name="Ask the caller for the Expiry date again")
               ).to_be_visible()
        cvv2 = page.locator("#progress li[data-step=cvv2]")
        expect(cvv2.get_by_role("button", name="Ask the caller for the CVV2 again")).to_be_visible()
        cues.send("enter_cvv2")

        result = page.locator("#progress li[data-step=result]")
        expect(result).to_have_attribute("data-status", "done", timeout=90000)
        final = _approved(stack, {"id": payment_id})
        expect(result).to_have_text(f"Result: Approved, reference {final['rrn']}")
        _one_authorization_approved(stack, journal_before)
        seen = _seen(page)
        assert ("cvv2", "entered", "CVV2: 3 digits entered") in seen, seen
        assert ("expiry", "accepted", "Expiry date: accepted (4 digits entered, asked again)") \
            in seen, seen
        # 中文: the same payment's words in Chinese.
        page.locator("#language").click()
        expect(page.locator("#progress li[data-step=answered]")).to_have_text(
            "客户已进入安全输入，坐席保持通话: 完成")
        page.locator("#language").click()
        # Bridged back once the result has been read out: the page sees the agent's call again.
        _when_the_agent_talks_to_the_caller(stack)
        expect(call).to_have_attribute("data-state", "on-call")
        _shot(page, "console-talkthrough-approved.png")
        _back_with_the_agent(stack, cues, caller, agent)
    assert [(h.get("event"), h.get("about")) for h in final["history"] if h.get("about")] == [
        ("ask_again_requested", "expiry"), ("asked_again", "expiry")]
    _nothing_keyed_reached_the_agent(agent_capture, final)


def test_talk_through_the_agent_asks_again_for_the_cvv2(stack) -> None:
    """The caller says the CVV2 they are keying is wrong; the agent asks again for it from the
    console while it is asked: that entry is discarded, the caller hears "please enter it
    again" and the CVV2 question, and only the CVV2 keyed then reaches the acquirer."""
    card = find_test_card("credit_approve")
    with _agent_leg(stack, "tt_console_cvv2") as agent_capture:
        agent, cues, caller = _talking(stack, "tt_console_cvv2", [
            PAY,
            Key(_mmyy(card), cue="enter_expiry", label="expiry"),
            Key(NOT_THE_CVV2, cue="enter_cvv2", label="a CVV2 the caller got wrong"),
            Key(card.cvv2, cue="enter_cvv2 again", label="the CVV2, asked again"),
        ], hang_up_on_cue="back with the agent")
        console = _Console(stack)
        journal_before = len(stack.journal())
        status, payment = console.post("/console/api/payments", {
            **_order(card, "52.00", "13800138232"), "mode": "talk-through"})
        assert status == 201, payment
        marker = _marker(payment)
        _answer(stack, cues, marker, "confirm_menu", "enter_expiry")
        stack.wait_for_prompt(marker, "enter_cvv2")
        status, shown = console.post(f"/console/api/payments/{payment['id']}/ask-again",
                                     {"field": "cvv2"})
        assert status == 202, shown
        _asked_again(stack, cues, marker, "enter_cvv2")
        cues.send("enter_cvv2 again")
        final = _approved(stack, payment)
        _back_with_the_agent(stack, cues, caller, agent)
    _one_authorization_approved(stack, journal_before)
    assert [(h.get("event"), h.get("about")) for h in final["history"] if h.get("about")] == [
        ("ask_again_requested", "cvv2"), ("asked_again", "cvv2")]
    _nothing_keyed_reached_the_agent(agent_capture, final)


# ---- the agent's keypad while listening ----

def _keys_sent(packets, via: str) -> int:
    """How many keys a phone sent to Asterisk, in a capture of what left its ports: RFC 4733
    events (one RTP timestamp per key), or SIP INFO requests (a retransmission is the same
    request again)."""
    if via == "rfc4733":
        return len({payload[4:8] for _, _, payload in packets
                    if len(payload) >= 16 and payload[1] & 0x7F == TELEPHONE_EVENT})
    return len({payload for _, _, payload in packets if payload.startswith(b"INFO ")})


def _keys_as_events_to(capture: Path, rtp_port: int) -> int:
    """How many keys a capture shows sent to ``rtp_port`` as RFC 4733 events (one RTP timestamp
    a key)."""
    return len({payload[4:8] for _, port, payload in _packets_to_agent(capture, live=True)
                if port == rtp_port and len(payload) >= 16
                and payload[1] & 0x7F == TELEPHONE_EVENT})


def _spy_controls_used(stack, since: int) -> list[str]:
    """Asterisk's log lines, since ``since`` (asterisk_mark()), that say ChanSpy acted on the
    spying channel's keys: a volume change (#), or a spy that stopped (*: "Done Spying on
    channel"; with E it then leaves ChanSpy)."""
    return [line for line in stack._asterisk_log()[since:]
            if re.search(r"Setting spy volume|Done Spying on channel", line)]


@pytest.mark.parametrize("via", ["rfc4733", "info"])
def test_talk_through_the_agents_keys_do_not_reach_the_spy(stack, via: str) -> None:
    """Asked for the PIN, the caller waits while the agent keys # (ChanSpy: change the volume)
    and * (ChanSpy: stop listening, look for another channel), by RFC 4733 or SIP INFO
    (application/dtmf-relay). Neither acts:
    Asterisk logs no volume change and no end of the spy before the payment's end, the agent
    hears the caller in every second of the three after the keys, then the caller keys the PIN,
    the payment is approved and the agent is bridged back. There the agent's keys reach the
    caller again: a key keyed once they talk arrives at the caller's phone (the drop, left on,
    had made the agent's keypad dead for the rest of the call)."""
    card = find_test_card("approve")
    from_agent = stack.work_dir / f"tt_agent_keys_{via}_from_agent.pcapng"
    to_agent = stack.work_dir / f"tt_agent_keys_{via}_to_agent.pcapng"
    to_caller = stack.work_dir / f"tt_agent_keys_{via}_to_caller.pcapng"
    captures = [_capture(from_agent, bpf=f"udp src port {SIPP_AGENT.rtp_port} "
                                         f"or udp src port {SIPP_AGENT.sip_port}"),
                _capture(to_agent, SIPP_AGENT),
                _capture(to_caller, bpf=f"udp dst port {CALLER_RTP_PORT}")]
    agent_cues = Cues()
    try:
        agent = stack.agent(Callee(f"tt_agent_keys_{via}_agent", ring_ms=300,
                                   bye_timeout_ms=150000,
                                   steps=[Key("#*", cue="agent keys", label="hash and star",
                                              via=via),
                                          Key("5", cue="agent keys bridged", via=via)]),
                            AGENT, cues=agent_cues)
        cues = Cues()
        caller = stack.start_call(Call(f"tt_agent_keys_{via}", "8100", [
            PAY,
            Key(card.pin + "#", cue="enter_pin", label="PIN"),
        ], hang_up_on_cue="back with the agent", voice_hz=CALLER_HZ), cues=cues)
        _when_the_agent_talks_to_the_caller(stack)
        mark = stack.asterisk_mark()
        payment = _talk_through_order(
            stack, card, "53.00", {"rfc4733": "13800138233", "info": "13800138235"}[via])
        marker = _marker(payment)
        _answer(stack, cues, marker, "confirm_menu")
        stack.wait_for_prompt(marker, "enter_pin")
        agent_cues.send("agent keys")
        assert stack.wait_until(lambda: _keys_sent(_packets_to_agent(from_agent), via) == 2, 15), \
            "the agent's phone never sent its two keys"
        keyed = time.time()

        def heard_since_the_keys() -> list[bool]:
            return _seconds_heard(_packets_to_agent(to_agent), SIPP_AGENT.rtp_port, keyed,
                                  time.time(), CALLER_HZ)
        assert stack.wait_until(lambda: len(heard_since_the_keys()) >= 3, 15)
        heard = heard_since_the_keys()
        print(f"\nthe agent heard the caller after keying # and *: {_seconds(heard)}")
        assert all(heard), heard
        # Without the drop, # was logged as a volume change and * ended the spy, which sent the
        # agent to [agent-released] ("the customer hung up") and hung up on them.
        assert not _spy_controls_used(stack, mark)
        cues.send("enter_pin")
        final = _approved(stack, payment)
        assert not _spy_controls_used(stack, mark)  # the spy ends only with the bridge back
        _when_the_agent_talks_to_the_caller(stack)
        keys_before = _keys_as_events_to(to_caller, CALLER_RTP_PORT)
        agent_cues.send("agent keys bridged")
        assert stack.wait_until(
            lambda: _keys_as_events_to(to_caller, CALLER_RTP_PORT) == keys_before + 1, 15), \
            "bridged back, the agent's key never reached the caller"
        # The caller hangs up; the agent's SIPp, which keyed after its scenario's last cue, may
        # meet Asterisk's BYE while it is still pausing after that key and count its call failed
        # (seen in one run in three): its ending is not what this test is about.
        cues.send("back with the agent")
        out, _ = caller.communicate(timeout=150)
        assert caller.returncode == 0, out[-2000:]
        agent.communicate(timeout=60)
    finally:
        agent_cues.close()
        for capture in captures:
            _stop(capture)
    assert final["internal"]["pin_attempts"] == "1"
    _nothing_keyed_reached_the_agent(to_agent, final)


# ---- the prompts to both ----

@pytest.fixture
def prompts_to_both(stack) -> Iterator[None]:
    """The ivr service restarted with VOICEPAY_TALKTHROUGH_PROMPTS=both, and back after."""
    with stack.ivr_restarted_with("the prompts-to-both tests", VOICEPAY_TALKTHROUGH_PROMPTS="both"):
        yield


def test_talk_through_with_the_prompts_to_both(stack, prompts_to_both) -> None:
    """The agent hears the payment IVR's prompts as the caller does: each second the caller was
    played something besides the agent's voice, the agent was played something besides the
    caller's voice, and the other way round; both still hear each other, the agent does not
    hear their own voice back, and the agent's leg carries no telephone-event, no SIP INFO and
    no tone a DTMF detector accepts."""
    card = find_test_card("approve")
    agent_capture = stack.work_dir / "tt_both_agent_leg.pcapng"
    caller_capture = stack.work_dir / "tt_both_caller_leg.pcapng"
    captures = [_capture(agent_capture, SIPP_AGENT),
                _capture(caller_capture, bpf=f"udp dst port {CALLER_RTP_PORT}")]
    try:
        agent, cues, caller = _talking(stack, "tt_both", [
            PAY,
            Key(card.pin + "#", cue="enter_pin", label="PIN"),
        ], hang_up_on_cue="back with the agent")
        journal_before = len(stack.journal())
        payment = _talk_through_order(stack, card, "54.00", "13800138234")
        marker = _marker(payment)
        _answer(stack, cues, marker, "confirm_menu", "enter_pin")
        final = _approved(stack, payment)
        heard_by_agent = stack.prompt_names(f"voicepay agent talking through {payment['id']}")
        _back_with_the_agent(stack, cues, caller, agent)
    finally:
        for capture in captures:
            _stop(capture)
    _one_authorization_approved(stack, journal_before)
    assert heard_by_agent == [], heard_by_agent  # nothing was played to the agent's own channel
    secure, done = _at(final, "answered"), _at(final, "approved")
    to_agent, to_caller = _packets_to_agent(agent_capture), _packets_to_agent(caller_capture)
    prompts_to_caller = _seconds_with_other_sound(to_caller, CALLER_RTP_PORT, secure, done,
                                                  AGENT_HZ)
    prompts_to_agent = _seconds_with_other_sound(to_agent, SIPP_AGENT.rtp_port, secure, done,
                                                 CALLER_HZ)
    agent_heard = _seconds_heard(to_agent, SIPP_AGENT.rtp_port, secure, done, CALLER_HZ)
    caller_heard = _seconds_heard(to_caller, CALLER_RTP_PORT, secure, done, AGENT_HZ)
    print(f"\nprompts to both: secure capture {done - secure:.1f} s; other sound to the caller "
          f"{_seconds(prompts_to_caller)}, to the agent {_seconds(prompts_to_agent)}; the agent "
          f"heard the caller {_seconds(agent_heard)}, the caller heard the agent "
          f"{_seconds(caller_heard)}")
    # The prompts reached the agent: the same seconds as the caller's (what is played to the
    # caller reaches the spy in the same 20 ms frames), at least the three seconds of prompts
    # the caller-only test finds at the caller. Except the second the caller keys the PIN: the
    # agent hears nothing then, neither the caller (the core mutes a caller's voice while a key
    # is held, before a spy sees it) nor a prompt (the spy's mix of both directions waits for the
    # muted one), and a prompt starting in that second reached the caller alone once, on a busy
    # CI machine. At most one such silent second, and every other second as the caller's.
    assert sum(prompts_to_agent) >= 3, prompts_to_agent
    silent = [not (prompt or heard) for prompt, heard in zip(prompts_to_agent, agent_heard)]
    packets = _packets_each_second(to_agent, SIPP_AGENT.rtp_port, secure, done)
    assert sum(silent) <= 1, (_seconds(silent), packets)
    assert ([p for p, s in zip(prompts_to_agent, silent) if not s]
            == [p for p, s in zip(prompts_to_caller, silent) if not s]), (
        prompts_to_agent, prompts_to_caller, packets)
    assert all(caller_heard) and sum(agent_heard) >= 3, (caller_heard, agent_heard)
    # The spy takes what is played to the caller before the agent's whisper is mixed in: the
    # agent does not hear their own voice back.
    echoed = _seconds_heard(to_agent, SIPP_AGENT.rtp_port, secure, done, AGENT_HZ)
    assert not any(echoed), echoed
    keypad = dtmf_sent_to_agent(to_agent, secure, done)
    assert keypad["rtp_packets"] > 50, keypad
    assert keypad["telephone_events"] == 0 and keypad["sip_info"] == 0, keypad
    audio = ulaw_audio_in_packets(to_agent, rtp_port=SIPP_AGENT.rtp_port, start=secure, end=done)
    assert len(audio) > 8000 * 2 and detect_dtmf_in(audio) == []
