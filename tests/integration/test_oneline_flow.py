"""The one-line flow's ending when the caller's AGI session is hung up: a caller who hung up
releases the agent; a caller the merchant's cancel sent back to the agent must not. Either way
the agent's call recording, paused by the switch, is resumed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from ivr.agi.channel import AgiHangup
from ivr.oneline import flow
from ivr.payments.store import PaymentState, PaymentStore

AGENT_CHANNEL = "PJSIP/1001-00000002"


class _Call:
    uniqueid = "1700000000.1"

    def __init__(self, payment_id: str) -> None:
        self._payment_id = payment_id

    async def get_variable(self, name: str) -> str:
        return self._payment_id


class _Switch:
    def __init__(self) -> None:
        self.released: list[str] = []
        self.resumed: list[str] = []
        self.unmuted: list[str] = []
        self.keys_passed: list[str] = []

    async def release_agent(self, agent_channel: str) -> bool:
        self.released.append(agent_channel)
        return True

    async def resume_recording(self, agent_channel: str) -> bool:
        self.resumed.append(agent_channel)
        return True

    async def unmute_caller(self, agent_channel: str) -> bool:
        self.unmuted.append(agent_channel)
        return True

    async def pass_agent_keys(self, agent_channel: str) -> bool:
        self.keys_passed.append(agent_channel)
        return True


@pytest.mark.parametrize(("cancelled", "released"), [(False, [AGENT_CHANNEL]), (True, [])])
async def test_the_agent_is_released_only_if_the_caller_really_left(
        redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch,
        cancelled: bool, released: list[str]) -> None:
    store = PaymentStore(redis_client)
    payment = await store.create({"mode": "oneline", "agent_channel": AGENT_CHANNEL})
    await store.transition(payment.id, PaymentState.RISK_PASSED)

    async def pay_order(call, ctx, payment) -> bool:  # the AGI session ends mid-payment
        if cancelled:  # OnelineOrders.cancel: cancelled first, then the caller is redirected
            await store.transition(payment.id, PaymentState.CANCELLED, reason="test cancel")
        raise AgiHangup("HANGUP")

    monkeypatch.setattr(flow, "pay_order", pay_order)
    switch = _Switch()
    with pytest.raises(AgiHangup):
        await flow.oneline(_Call(payment.id), SimpleNamespace(store=store, oneline=switch))
    assert switch.released == released
    assert switch.resumed == [AGENT_CHANNEL]  # the agent's recording goes on either way


async def test_a_talk_through_caller_who_left_releases_the_agent_and_resumes_nothing(
        redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk-through never paused the agent's recording: the flow has none to resume."""
    store = PaymentStore(redis_client)
    payment = await store.create({"mode": "oneline", "agent_channel": AGENT_CHANNEL,
                                  "oneline_style": "talk-through"})
    await store.transition(payment.id, PaymentState.RISK_PASSED)

    async def pay_order(call, ctx, payment) -> bool:
        raise AgiHangup("HANGUP")

    monkeypatch.setattr(flow, "pay_order", pay_order)
    switch = _Switch()
    with pytest.raises(AgiHangup):
        await flow.oneline(_Call(payment.id), SimpleNamespace(store=store, oneline=switch))
    assert (switch.released, switch.resumed) == ([AGENT_CHANNEL], [])
    [answered] = [h for h in await store.history(payment.id) if h["state"] == "answered"]
    assert "agent talking through" in answered["reason"]


class _SwitchWithAnAgent(_Switch):
    """A switch that can tell whether the agent's channel is still up (None: AMI cannot)."""

    def __init__(self, agent_on_call: bool | None) -> None:
        super().__init__()
        self._agent_on_call = agent_on_call

    async def agent_on_call(self, agent_channel: str) -> bool | None:
        assert agent_channel == AGENT_CHANNEL
        return self._agent_on_call


@pytest.mark.parametrize(("agent_on_call", "noted"), [(False, ["agent_gone"]), (True, []),
                                                      (None, [])])
async def test_a_talk_through_agent_who_left_mid_payment_is_in_the_history(
        redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch,
        agent_on_call: bool | None, noted: list[str]) -> None:
    """The agent's phone hung up while the caller keyed: the caller pays on, and the payment's
    history says the agent had gone (the dialplan then offers the caller another agent). Only
    when Asterisk says so: an AMI that cannot tell notes nothing."""
    store = PaymentStore(redis_client)
    payment = await store.create({"mode": "oneline", "agent_channel": AGENT_CHANNEL,
                                  "oneline_style": "talk-through"})
    await store.transition(payment.id, PaymentState.RISK_PASSED)

    async def pay_order(call, ctx, payment) -> bool:  # paid to the end, the caller still there
        return True

    monkeypatch.setattr(flow, "pay_order", pay_order)
    switch = _SwitchWithAnAgent(agent_on_call)
    await flow.oneline(_Call(payment.id), SimpleNamespace(store=store, oneline=switch))
    assert [h["event"] for h in await store.history(payment.id) if h.get("event")] == noted
    assert (switch.released, switch.resumed) == ([], [])


async def _one_line_payment_that_ends(redis_client: aioredis.Redis,
                                      monkeypatch: pytest.MonkeyPatch, fields: dict[str, str],
                                      hung_up: bool) -> "_SwitchWithAnAgent":
    """A one-line payment with ``fields`` whose IVR part ends paid, or with the caller hanging
    up; the switch the flow used, with what it was asked to do."""
    store = PaymentStore(redis_client)
    payment = await store.create({"mode": "oneline", "agent_channel": AGENT_CHANNEL, **fields})
    await store.transition(payment.id, PaymentState.RISK_PASSED)

    async def pay_order(call, ctx, payment) -> bool:
        if hung_up:
            raise AgiHangup("HANGUP")
        return True

    monkeypatch.setattr(flow, "pay_order", pay_order)
    switch = _SwitchWithAnAgent(True)
    ctx = SimpleNamespace(store=store, oneline=switch)
    if hung_up:
        with pytest.raises(AgiHangup):
            await flow.oneline(_Call(payment.id), ctx)
    else:
        await flow.oneline(_Call(payment.id), ctx)
    return switch


@pytest.mark.parametrize("hung_up", [False, True])
async def test_a_muted_talk_through_caller_is_heard_again_and_the_recording_resumed(
        redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch, hung_up: bool) -> None:
    """A caller keying in-band was muted to the agent for the payment: however it ends, the agent
    hears the caller again and their recording goes on."""
    switch = await _one_line_payment_that_ends(
        redis_client, monkeypatch, {"oneline_style": "talk-through", "caller_muted": "1"}, hung_up)
    assert (switch.resumed, switch.unmuted) == ([AGENT_CHANNEL], [AGENT_CHANNEL])


@pytest.mark.parametrize(("style", "passed"), [("talk-through", [AGENT_CHANNEL]), ("", [])])
@pytest.mark.parametrize("hung_up", [False, True])
async def test_a_talk_through_agents_keys_pass_again_once_the_payment_is_over(
        redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch, style: str,
        passed: list[str], hung_up: bool) -> None:
    """The agent's keys were dropped while ChanSpy listened ([agent-talkthrough]); the drop would
    otherwise stay on the agent's channel into the bridge back, and their keypad (a transfer, a
    survey) would be dead for the rest of the call. A hard switch never set one."""
    switch = await _one_line_payment_that_ends(
        redis_client, monkeypatch, {"oneline_style": style}, hung_up)
    assert switch.keys_passed == passed
