"""The AMI client and the one-line switch against the fake AMI, over TCP: how an Originate's
outcome is read (ORIGINATE_REASONS), and how CoreShowChannels is read to find an agent's call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from ivr import dialplan_variables as dv
from ivr.ami.client import AmiClient, PaymentLines
from ivr.config import load_settings
from ivr.oneline.switch import AgentCall, AgentNotOnCall, OnelineSwitch
from tests.integration.fake_ami import FakeAmi
from tests.integration.test_dialer import until

USER, SECRET = "voicepay", "test-ami-secret"


@pytest.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(username=USER, secret=SECRET) as ami:
        yield ami


@pytest.fixture
async def client(fake_ami: FakeAmi, tmp_path) -> AsyncIterator[AmiClient]:
    client = AmiClient(load_settings(var_dir=tmp_path, ami_host="127.0.0.1", ami_port=fake_ami.port,
                                     ami_user=USER, ami_secret=SECRET))
    await client.start()
    await until(lambda: client.connected)
    yield client
    await client.close()


async def originate(client: AmiClient) -> str:
    return await client.originate(action_id="a-1", channel="PJSIP/13800138000",
                                  channel_id="vp-pay_1-1", context="pay-callback",
                                  variables={"VOICEPAY_PAYMENT_ID": "pay_1"}, timeout_ms=1000,
                                  caller_name="Voicepay", caller_number="95555")


# --- Originate: the outcome in words -------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "in_words"), [
    ("answered", "answered"),
    ("busy", "busy"),              # OriginateResponse Reason 5
    ("no answer", "no answer"),    # 3
    ("hung up", "hung up before answer"),  # 1
    ("congestion", "congestion"),  # 8
    ("unreachable", "unreachable"),  # 0
])
async def test_originate_outcome(fake_ami: FakeAmi, client: AmiClient, outcome: str,
                                 in_words: str) -> None:
    async def script(request: dict[str, str]) -> str:
        return outcome
    fake_ami.originate = script

    assert await originate(client) == in_words
    [sent] = fake_ami.sent("Originate")
    assert (sent["ChannelId"], sent["Variable"], sent["Async"]) == (
        "vp-pay_1-1", "VOICEPAY_PAYMENT_ID=pay_1", "true")


async def test_originate_refused_by_asterisk(fake_ami: FakeAmi, client: AmiClient) -> None:
    fake_ami.failing.add("originate")
    assert await originate(client) == "not placed: No such channel"


async def test_originate_without_ami(tmp_path) -> None:
    never_started = AmiClient(load_settings(var_dir=tmp_path))
    assert await originate(never_started) == "AMI unavailable"


# --- CoreShowChannels: the agent's call ------------------------------------------------------------

CALLER = {"Channel": "PJSIP/cardholder-00000001", "Uniqueid": "1.1", "BridgeId": "bridge-1"}
AGENT = {"Channel": "PJSIP/7101-00000002", "Uniqueid": "1.2", "BridgeId": "bridge-1"}


@pytest.mark.parametrize(("channels", "found"), [
    # Several calls: the agent's is the one in the agent's bridge.
    ([{"Channel": "PJSIP/7102-00000005", "Uniqueid": "1.5", "BridgeId": "bridge-2"},
      {"Channel": "PJSIP/cardholder-00000006", "Uniqueid": "1.6", "BridgeId": "bridge-2"},
      CALLER, AGENT,
      {"Channel": "PJSIP/cardholder-00000007", "Uniqueid": "1.7", "BridgeId": ""}],
     AgentCall(AGENT["Channel"], CALLER["Channel"])),
    # The agent's channel is listed first.
    ([AGENT, CALLER], AgentCall(AGENT["Channel"], CALLER["Channel"])),
    # The agent is not bridged (ringing, or alone in a queue).
    ([{**AGENT, "BridgeId": ""}, {**CALLER, "BridgeId": ""}], None),
    # Three in the bridge (a conference, a supervisor listening): whose card would it be?
    ([CALLER, AGENT, {"Channel": "PJSIP/cardholder-00000009", "Uniqueid": "1.9",
                      "BridgeId": "bridge-1"}], None),
    # Agent 71011 is not agent 7101, however alike the channel names.
    ([{**AGENT, "Channel": "PJSIP/71011-00000003"}, CALLER], None),
    # The caller alone in a bridge: nobody.
    ([CALLER], None),
    ([], None),
], ids=["several-calls", "agent-first", "not-bridged", "two-peers", "other-agent-prefix",
        "no-agent", "no-channels"])
async def test_find_the_agents_call(fake_ami: FakeAmi, client: AmiClient, channels: list,
                                    found: AgentCall | None) -> None:
    fake_ami.channels = channels
    switch = OnelineSwitch(client)
    if found is None:
        with pytest.raises(AgentNotOnCall):
            await switch.find("7101")
    else:
        assert await switch.find("7101") == found
    assert fake_ami.sent("CoreShowChannels")


async def test_is_the_agent_still_on_call(fake_ami: FakeAmi, client: AmiClient) -> None:
    """A talk-through agent's phone may hang up mid-payment: Asterisk's channel list says
    whether the agent's channel is still up, and a closed AMI says it cannot tell."""
    switch = OnelineSwitch(client)
    fake_ami.channels = [AGENT, CALLER]
    assert await switch.agent_on_call(AGENT["Channel"]) is True
    fake_ami.channels = [CALLER]
    assert await switch.agent_on_call(AGENT["Channel"]) is False
    await fake_ami.close()
    assert await switch.agent_on_call(AGENT["Channel"]) is None


async def test_a_channels_dtmf_mode_and_muting_what_it_hears(fake_ami: FakeAmi,
                                                             client: AmiClient) -> None:
    fake_ami.dtmf_modes[AGENT["Channel"]] = "inband"
    assert await client.dtmf_mode(AGENT["Channel"]) == "inband"
    assert await client.mute_audio_to(AGENT["Channel"], True)
    assert await client.mute_audio_to(AGENT["Channel"], False)
    assert [(s["Variable"], s["Value"]) for s in fake_ami.sent("Setvar")] == [
        ("MUTEAUDIO(out)", "on"), ("MUTEAUDIO(out)", "off")]
    switch = OnelineSwitch(client)
    assert await switch.keys_in_band(AGENT["Channel"])
    fake_ami.dtmf_modes[AGENT["Channel"]] = "rfc4733"
    assert not await switch.keys_in_band(AGENT["Channel"])
    fake_ami.failing.add("getvar")  # Asterisk cannot say: taken as in-band
    assert await switch.keys_in_band(AGENT["Channel"])


async def test_the_agents_keys_pass_again_by_a_frame_drop_that_names_nothing(
        fake_ami: FakeAmi, client: AmiClient) -> None:
    assert await OnelineSwitch(client).pass_agent_keys(AGENT["Channel"])
    assert [(s["Channel"], s["Variable"], s["Value"]) for s in fake_ami.sent("Setvar")] == [
        (AGENT["Channel"], "FRAME_DROP(RX)", "")]
    assert not await OnelineSwitch(client).pass_agent_keys("")  # no agent's channel: nothing sent
    assert len(fake_ami.sent("Setvar")) == 1


# --- Admission: the payment lines the dialer asks for, the CPU guard's global -------------------


async def test_payment_lines_read_the_count_the_limit_and_the_cpu_guards_time(
        fake_ami: FakeAmi, client: AmiClient) -> None:
    fake_ami.payment_calls = (3, 5)
    lines = await client.payment_calls()
    assert lines == PaymentLines(carried=3, limit=5, cpu_full=False)
    assert lines.room_for(ringing=1) and not lines.room_for(ringing=2)
    fake_ami.cpu_full_until = str(int(time.time()) + 60)  # the guard closed, its time ahead
    lines = await client.payment_calls()
    assert lines.cpu_full and not lines.room_for(ringing=0)
    fake_ami.cpu_full_until = str(int(time.time()) - 1)  # passed: open again
    assert (await client.payment_calls()).cpu_full is False
    fake_ami.payment_calls = None  # an Asterisk without our dialplan
    assert await client.payment_calls() is None


async def test_a_global_is_set_without_a_channel(fake_ami: FakeAmi, client: AmiClient) -> None:
    assert await client.set_global(dv.CPU_FULL_UNTIL, "1790000000")
    [sent] = fake_ami.sent("Setvar")
    assert (sent.get("Channel"), sent["Variable"], sent["Value"]) == (
        None, dv.CPU_FULL_UNTIL, "1790000000")
    fake_ami.failing.add("setvar")
    assert await client.set_global(dv.CPU_FULL_UNTIL, "0") is False
    await fake_ami.close()
    assert await client.set_global(dv.CPU_FULL_UNTIL, "0") is False  # AMI down: False, no raise
