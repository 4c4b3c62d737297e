"""Talk-through (issue 12): the agent's own phone hangs up while the caller keys the PIN.

The agent's SIPp sends BYE itself (on the test's cue, once the caller is asked for the PIN), as
an agent putting the handset down does; tests/e2e/test_talkthrough_calls.py has Asterisk end
the agent's leg instead. The caller keys on, is approved, hears the result and is offered
another agent; the payment's history says the agent had gone.
"""

from __future__ import annotations

import pytest

from devstack.asterisk_sandbox import AsteriskSandbox, ensure_rootfs
from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_oneline_calls import (AGENT, _capture, _marker, _states, _stop,
                                          _when_the_agent_talks_to_the_caller)
from tests.e2e.test_talkthrough_calls import (AGENT_HZ, CALLER_HZ, _approved, _asked_for_the_pin,
                                              _nothing_keyed_reached_the_agent,
                                              _talk_through_order)
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Callee, Key

pytestmark = pytest.mark.e2e


def _agent_channels(stack) -> list[str]:
    sandbox = AsteriskSandbox(stack.settings, ensure_rootfs(stack.settings))
    return [line.split("!")[0] for line in sandbox.cli("core show channels concise").splitlines()
            if line.startswith(f"PJSIP/{AGENT}-")]


def test_talk_through_agent_phone_hangs_up_mid_pin_caller_still_pays(stack):
    card = find_test_card("approve")
    agent_capture = stack.work_dir / "talkthrough_agent_bye_agent_leg.pcapng"
    capture = _capture(agent_capture)
    agent_cues, cues = Cues(), Cues()
    try:
        agent = stack.agent(Callee("talkthrough_agent_bye_agent", ring_ms=300, voice_hz=AGENT_HZ,
                                   hang_up_on_cue="hang up"), AGENT, cues=agent_cues)
        caller = stack.start_call(Call("talkthrough_agent_bye", "8100", [
            Key("1", cue="menu", label="1 to pay"),
            Key(card.pin + "#", cue="enter_pin", label="PIN, the agent gone"),
        ], bye_timeout_ms=120000, voice_hz=CALLER_HZ), cues=cues)
        _when_the_agent_talks_to_the_caller(stack)
        payment = _talk_through_order(stack, card, "71.00", "13800138261")
        _asked_for_the_pin(stack, cues, payment)
        agent_cues.send("hang up")  # the agent's phone sends BYE ...
        out, _ = agent.communicate(timeout=60)
        assert agent.returncode == 0, out[-2000:]  # ... and Asterisk answered it 200
        assert stack.wait_until(lambda: not _agent_channels(stack), 15), _agent_channels(stack)
        assert stack.get(f"/v1/payments/{payment['id']}")["status"] == "pin_entry"  # mid-field
        cues.send("enter_pin")
        _approved(stack, payment)
        out, _ = caller.communicate(timeout=150)
        assert caller.returncode == 0, out[-2000:]  # the result, then the offer of another agent
    finally:
        _stop(capture)
        agent_cues.close()
        cues.close()
    final = stack.get(f"/v1/payments/{payment['id']}")
    heard = stack.prompt_names(_marker(payment))
    assert "approved" in heard and "agent_gone" in heard, heard
    assert heard.index("approved") < heard.index("agent_gone"), heard
    assert _states(final) == [
        "created", "risk_passed", "answered", "confirmed", "pin_entry", "authorizing", "approved"]
    assert [h["event"] for h in final["history"] if h.get("event")] == ["agent_gone"]
    _nothing_keyed_reached_the_agent(agent_capture, final)
