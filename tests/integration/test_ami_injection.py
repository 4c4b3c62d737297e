"""No value from outside can inject into AMI (issue 15): every hostile character class, in every
value the service puts into an action, is refused before the wire, and the fake AMI, which keeps
every byte it received, shows that nothing of it was sent. The same actions with ordinary values
reach the wire, so the checks can see what they look for.
"""

from __future__ import annotations

import pytest

from ivr.ami.client import ORIGINATE_CONTEXTS, REDIRECT_CONTEXTS, AmiClient, UnsafeAmiValue
from tests.integration.fake_ami import FakeAmi
# The same fake AMI and logged-in client as the client's own tests.
from tests.integration.test_ami_client import client, fake_ami  # noqa: F401

# Each character class the issue names, inside an otherwise ordinary value. The marker makes the
# value findable on the wire whatever a refusal might have cut off.
MARK = "INJ7"
HOSTILE = {
    "CR/LF header": f"{MARK}\r\nAction: Command\r\nCommand: core stop now",
    "LF": f"{MARK}\nApplication: System",
    "ampersand": f"{MARK}&PJSIP/6001",
    "comma": f"{MARK},VOICEPAY_RESULT=success",
    "pipe": f"{MARK}|System(id)",
    "slash": f"{MARK}/../../etc/passwd",
    "dollar": f"{MARK}$PATH",
    "SHELL": f"{MARK}${{SHELL(touch /tmp/x)}}",
    "brace": f"{MARK}{{",
    "double quote": f'{MARK}"',
    "single quote": f"{MARK}'",
    "parentheses": f"{MARK}(1)",
    "space": f"{MARK} 1",
    "NUL": f"{MARK}\0",
    "long": MARK + "9" * 200,
}


async def answered(request: dict[str, str]) -> str:
    return "answered"


def originate_kwargs(**overrides: object) -> dict:
    kwargs = dict(action_id="voicepay-1", channel="PJSIP/13800138101", channel_id="vp-pay_1-1",
                  context="pay-callback", variables={"VOICEPAY_PAYMENT_ID": "pay_1"},
                  timeout_ms=1000, caller_name="Secure payment", caller_number="95000")
    kwargs.update(overrides)
    return kwargs


# Where a hostile value can be put into an Originate, as the caller of originate() passes it.
ORIGINATE_FIELDS = {
    "channel (a mobile number)": lambda v: originate_kwargs(channel=f"PJSIP/1380013810{v}"),
    "channel id (a payment id)": lambda v: originate_kwargs(channel_id=f"vp-pay_{v}-1"),
    "variable value (a payment id)": lambda v: originate_kwargs(
        variables={"VOICEPAY_PAYMENT_ID": f"pay_{v}"}),
    "variable name": lambda v: originate_kwargs(variables={f"X{v}": "pay_1"}),
    "caller name": lambda v: originate_kwargs(caller_name=f"Shop {v}"),
    "caller number": lambda v: originate_kwargs(caller_number=f"95000{v}"),
    "action id": lambda v: originate_kwargs(action_id=f"voicepay-{v}"),
    "context": lambda v: originate_kwargs(context=f"pay-callback{v}"),
}


async def test_ordinary_originate_reaches_the_wire(fake_ami: FakeAmi, client: AmiClient) -> None:
    """The control: the same Originate with ordinary values is sent, so the wire shows it."""
    fake_ami.originate = answered
    assert await client.originate(**originate_kwargs()) == "answered"
    assert b"Channel: PJSIP/13800138101\r\n" in fake_ami.wire
    assert b'CallerID: "Secure payment" <95000>\r\n' in fake_ami.wire
    assert b"Variable: VOICEPAY_PAYMENT_ID=pay_1\r\n" in fake_ami.wire


# A caller name is sent in the quotes we put around it: spaces are what names are made of.
@pytest.mark.parametrize(("field", "kind"), [
    (field, kind) for field in ORIGINATE_FIELDS for kind in HOSTILE
    if (field, kind) != ("caller name", "space")])
async def test_hostile_originate_values_never_reach_the_wire(fake_ami: FakeAmi, client: AmiClient,
                                                             field: str, kind: str) -> None:
    fake_ami.originate = answered
    outcome = await client.originate(**ORIGINATE_FIELDS[field](HOSTILE[kind]))
    assert outcome.startswith("not placed: AMI ") and outcome.endswith("refused: not a value "
                                                                       "that field may hold")
    assert MARK not in outcome  # the refusal names the field, never the value
    assert fake_ami.sent("Originate") == []
    assert MARK.encode() not in fake_ami.wire


async def test_originate_only_into_the_fixed_contexts(fake_ami: FakeAmi, client: AmiClient) -> None:
    """A context the service never uses (a one-line context included) is refused, and so is
    every way of asking for an application: the client has no parameter for one at all."""
    for context in ("default", "from-cardholder", *REDIRECT_CONTEXTS):
        assert (await client.originate(**originate_kwargs(context=context))).startswith(
            "not placed: AMI Context refused")
    assert "Application" not in client._originate_action(**originate_kwargs())  # noqa: SLF001
    assert fake_ami.sent("Originate") == []
    assert ORIGINATE_CONTEXTS == {"pay-callback"}


async def test_ordinary_switch_actions_reach_the_wire(fake_ami: FakeAmi, client: AmiClient) -> None:
    assert await client.setvar("PJSIP/cardholder-00000001", "VOICEPAY_AGENT_CHANNEL",
                               "PJSIP/7101-00000002")
    assert await client.redirect("PJSIP/cardholder-00000001", "pay-oneline",
                                 extra_channel="PJSIP/7101-00000002", extra_context="agent-wait")
    assert await client.redirect("PJSIP/cardholder-00000001", "pay-oneline",
                                 priority="back-to-agent")
    assert await client.mute_recording("PJSIP/7101-00000002", True)
    assert b"ExtraContext: agent-wait\r\n" in fake_ami.wire
    assert b"Value: PJSIP/7101-00000002\r\n" in fake_ami.wire


# The other actions, each with a hostile value where the service puts one.
OTHER_ACTIONS = {
    "Setvar channel": lambda c, v: c.setvar(f"PJSIP/7101-{v}", "VOICEPAY_PAYMENT_ID", "pay_1"),
    "Setvar value (a payment id)": lambda c, v: c.setvar("PJSIP/7101-00000002",
                                                         "VOICEPAY_PAYMENT_ID", f"pay_{v}"),
    "Setvar name": lambda c, v: c.setvar("PJSIP/7101-00000002", f"SHELL{v}", "pay_1"),
    "Redirect channel": lambda c, v: c.redirect(f"PJSIP/{v}", "pay-oneline"),
    "Redirect context": lambda c, v: c.redirect("PJSIP/7101-00000002", f"pay-oneline{v}"),
    "Redirect priority": lambda c, v: c.redirect("PJSIP/7101-00000002", "pay-oneline",
                                                 priority=f"back{v}"),
    "Redirect extra channel": lambda c, v: c.redirect("PJSIP/7101-00000002", "pay-oneline",
                                                      extra_channel=f"PJSIP/{v}",
                                                      extra_context="agent-wait"),
    "MixMonitorMute channel": lambda c, v: c.mute_recording(f"PJSIP/7101-{v}", True),
    "Setvar global name": lambda c, v: c.set_global(f"VOICEPAY_CPU_FULL_UNTIL{v}", "0"),
    "Setvar global value": lambda c, v: c.set_global("VOICEPAY_CPU_FULL_UNTIL", f"0{v}"),
}


@pytest.mark.parametrize("where", OTHER_ACTIONS)
@pytest.mark.parametrize("kind", HOSTILE)
async def test_hostile_values_in_other_actions_never_reach_the_wire(
        fake_ami: FakeAmi, client: AmiClient, where: str, kind: str) -> None:
    with pytest.raises(UnsafeAmiValue) as refused:
        await OTHER_ACTIONS[where](client, HOSTILE[kind])
    assert MARK not in str(refused.value)
    assert fake_ami.action_names() == ["Login"]
    assert MARK.encode() not in fake_ami.wire


@pytest.mark.parametrize("kind", HOSTILE)
async def test_hostile_hangup_is_refused_not_sent(fake_ami: FakeAmi, client: AmiClient,
                                                  kind: str) -> None:
    assert await client.hangup(f"vp-pay_{HOSTILE[kind]}-1") is False
    assert fake_ami.sent("Hangup") == []
    assert MARK.encode() not in fake_ami.wire


async def test_no_action_can_carry_a_line_break(fake_ami: FakeAmi, client: AmiClient) -> None:
    """The last line of defence, for any action without a stricter check."""
    with pytest.raises(UnsafeAmiValue):
        await client.action({"Action": "Ping", "ActionID": f"{MARK}\r\nAction: Command"})
    assert MARK.encode() not in fake_ami.wire
