"""The "hard switch" of a one-line payment, done with AMI.

    find the agent's live call  → CoreShowChannels: the agent's channel and the caller's channel
                                  share a bridge
    switch                      → the agent's call recording paused (MixMonitorMute), then
                                  Setvar (payment id, agent channel) on the caller, then one
                                  Redirect for both legs: caller → [pay-oneline], agent →
                                  [agent-wait]. They leave the bridge together, so there is no
                                  moment in which the caller's keypad can reach the agent.
    talk-through                → the same Redirect, but the agent goes to [agent-talkthrough]:
                                  ChanSpy on the caller's channel, hearing only the caller's
                                  voice (never a digit event, never a prompt) and whispering to
                                  the caller; the recording is not paused (README, "Talk-through").
                                  With the prompts to both (VOICEPAY_TALKTHROUGH_PROMPTS), the
                                  agent goes to [agent-talkthrough-prompts] instead, and also
                                  hears what is played to the caller
    a caller keying in-band     → talk-through, but first the agent's recording paused and all
                                  audio to the agent silenced (MUTEAUDIO(out)): Asterisk misses
                                  keys keyed over speech, and leaves their tones in the audio
    resume the recording        → the caller's payment IVR is over (ivr/oneline/flow.py)
    the agent's keys again      → talk-through over: the drop of the agent's keys is lifted, or
                                  it would stay on their channel into the bridge back
    is the agent still there    → CoreShowChannels: a talk-through agent's phone may hang up
                                  while the caller keys (the payment's history says so)
    release the agent           → the caller hung up: agent → [agent-released]
    return to the agent         → the merchant cancelled: caller → [pay-oneline] at the step
                                  after the payment IVR, which bridges the agent back in
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass


from ivr import dialplan_variables as dv
from ivr.ami.client import AmiClient, UnsafeAmiValue
from ivr.orders import PaymentFailed

__all__ = ["AgentCall", "AgentNotOnCall", "OnelineSwitch", "RecordingNotPaused", "SwitchFailed",
           "SwitchUnavailable"]

log = logging.getLogger(__name__)

# Where a caller goes back to the agent: the step of [pay-oneline] after the payment IVR, which
# bridges the caller's leg to the agent's (or offers the queue if the agent has gone).
PAYMENT_CONTEXT = "pay-oneline"
BACK_TO_AGENT = "back-to-agent"
# Where the agent waits while the caller keys: held apart, or talking through (listening to the
# caller's voice only, or to the caller's voice and the prompts played to the caller).
HELD_APART = "agent-wait"
TALKING_THROUGH = "agent-talkthrough"
TALKING_THROUGH_WITH_PROMPTS = "agent-talkthrough-prompts"
# AMI answers nothing, or its connection is down, or a value (a channel name Asterisk listed)
# was refused before the wire: the switch cannot be done or checked.
_AMI_ERRORS = (ConnectionError, asyncio.TimeoutError, UnsafeAmiValue)


class AgentNotOnCall(Exception):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} is not on a call with a customer")
        self.details = {"agent_id": agent_id}


class SwitchUnavailable(Exception):
    """The agent's call could not even be looked for (AMI down): nothing was created."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"the call of agent {agent_id} cannot be switched now: Asterisk does not answer")
        self.details = {"agent_id": agent_id}


class SwitchFailed(PaymentFailed):
    """Asterisk refused or did not confirm the switch. The payment was made for it, and ends."""

    def __init__(self, agent_id: str, payment_id: str) -> None:
        super().__init__(f"the call of agent {agent_id} could not be switched to the payment IVR; "
                         f"payment {payment_id} failed", payment_id, {"agent_id": agent_id})
        self.agent_id = agent_id


class RecordingNotPaused(SwitchFailed):
    """The agent's call recording could not be paused, so the caller was not switched: a
    payment's prompts and the caller's keys must never be in a contact-centre recording. The
    payment ends; the agent can offer a callback."""

    def __init__(self, agent_id: str, payment_id: str) -> None:
        PaymentFailed.__init__(self, f"the recording of agent {agent_id}'s call could not be "
                               f"paused, so the caller was not switched; payment {payment_id} "
                               "failed", payment_id, {"agent_id": agent_id})
        self.agent_id = agent_id


@dataclass(frozen=True)
class AgentCall:
    agent_channel: str
    caller_channel: str
    caller_number: str = ""  # the caller's number as Asterisk has it (the agent console shows it)


class OnelineSwitch:
    def __init__(self, ami: AmiClient, *, prompts_to_agent: bool = False) -> None:
        """``prompts_to_agent``: in talk-through, the agent hears the prompts too."""
        self._ami = ami
        self._talking_through = TALKING_THROUGH_WITH_PROMPTS if prompts_to_agent else TALKING_THROUGH

    async def find(self, agent_id: str) -> AgentCall:
        try:
            channels = await self._ami.channels()
        except _AMI_ERRORS:
            raise SwitchUnavailable(agent_id) from None
        prefix = f"PJSIP/{agent_id}-"
        for agent in channels:
            bridge = agent.get("BridgeId", "")
            if agent.get("Channel", "").startswith(prefix) and bridge:
                peers = [c for c in channels
                         if c.get("BridgeId") == bridge and c.get("Channel") != agent["Channel"]]
                if len(peers) == 1:
                    return AgentCall(agent["Channel"], peers[0]["Channel"],
                                     peers[0].get("CallerIDNum", ""))
        raise AgentNotOnCall(agent_id)

    async def keys_in_band(self, caller_channel: str) -> bool:
        """May the caller's phone key in-band tones? Its endpoint's dtmf_mode is ``inband``, or
        ``auto`` (in-band whenever the phone offers no RFC 4733), or Asterisk cannot say."""
        try:
            dtmf_mode = await self._ami.dtmf_mode(caller_channel)
        except _AMI_ERRORS:
            dtmf_mode = None
        return dtmf_mode not in ("rfc4733", "info")

    async def switch(self, agent_id: str, call: AgentCall, payment_id: str, *,
                     talk_through: bool = False, mute_caller: bool = False) -> None:
        """Pause the agent's recording, then switch. Raises ``RecordingNotPaused`` (nothing was
        switched) or ``SwitchFailed`` (the recording is resumed: the two still talk).
        ``talk_through``: the agent keeps listening to the caller's voice and talking to them
        (so the recording goes on, and is never paused). ``mute_caller`` (talk-through with a
        caller keying in-band, keys_in_band): the agent's recording is paused, and Asterisk sends
        the agent nothing of the caller, though the agent can still talk to them."""
        pause = not talk_through or mute_caller
        if pause and not await self._mute(call.agent_channel, True):
            raise RecordingNotPaused(agent_id, payment_id)
        try:
            ok = ((not mute_caller or await self._ami.mute_audio_to(call.agent_channel, True))
                  and await self._ami.setvar(call.caller_channel, dv.PAYMENT_ID, payment_id)
                  and await self._ami.setvar(call.caller_channel, dv.AGENT_CHANNEL, call.agent_channel)
                  and await self._ami.setvar(call.agent_channel, dv.PAYMENT_ID, payment_id)
                  and (not talk_through or await self._ami.setvar(
                      call.agent_channel, dv.CALLER_CHANNEL, call.caller_channel))
                  and await self._ami.redirect(
                      call.caller_channel, PAYMENT_CONTEXT, extra_channel=call.agent_channel,
                      extra_context=self._talking_through if talk_through else HELD_APART))
        except _AMI_ERRORS:
            ok = False
        if not ok:
            if mute_caller:
                await self.unmute_caller(call.agent_channel)
            if pause:
                await self._mute(call.agent_channel, False)
            raise SwitchFailed(agent_id, payment_id)
        log.info("payment %s: caller %s switched to the payment IVR, agent %s %s",
                 payment_id, call.caller_channel, call.agent_channel,
                 "talking through" if talk_through else "held apart")

    async def resume_recording(self, agent_channel: str) -> bool:
        """The caller has left the payment IVR: the agent's recording goes on. False if it could
        not be (the agent's call has ended, or AMI does not answer)."""
        return bool(agent_channel) and await self._mute(agent_channel, False)

    async def _mute(self, agent_channel: str, muted: bool) -> bool:
        try:
            return await self._ami.mute_recording(agent_channel, muted)
        except _AMI_ERRORS:
            return False

    async def return_to_agent(self, caller_channel: str) -> bool:
        """Take the caller out of the payment IVR, back to the agent waiting in [agent-wait]: the
        caller's leg goes on where a finished payment goes on, bridging the agent back in.
        False if that could not be done (the caller has gone, or AMI does not answer)."""
        try:
            return bool(caller_channel) and await self._ami.redirect(
                caller_channel, PAYMENT_CONTEXT, priority=BACK_TO_AGENT)
        except _AMI_ERRORS:
            return False

    async def unmute_caller(self, agent_channel: str) -> bool:
        """The agent hears the caller again (after mute_caller). False if that could not be
        done (the agent's call has ended, or AMI does not answer)."""
        try:
            return bool(agent_channel) and await self._ami.mute_audio_to(agent_channel, False)
        except _AMI_ERRORS:
            return False

    async def pass_agent_keys(self, agent_channel: str) -> bool:
        """The talk-through agent's keys reach their call again (dropped while ChanSpy listened,
        where * and # steer the spy). False if that could not be done (the agent's call has
        ended, or AMI does not answer)."""
        try:
            return bool(agent_channel) and await self._ami.pass_keys_from(agent_channel)
        except _AMI_ERRORS:
            return False

    async def agent_on_call(self, agent_channel: str) -> bool | None:
        """Is the agent's channel still up? None if AMI cannot tell."""
        try:
            channels = await self._ami.channels()
        except _AMI_ERRORS:
            return None
        return any(channel.get("Channel") == agent_channel for channel in channels)

    async def hang_up(self, channel: str) -> bool:
        return bool(channel) and await self._ami.hangup(channel)

    async def release_agent(self, agent_channel: str) -> bool:
        """The caller is gone: tell the agent and let them go. False if the agent had gone."""
        try:
            released = bool(agent_channel) and await self._ami.redirect(agent_channel, "agent-released")
        except _AMI_ERRORS:
            released = False
        if not released:
            log.info("agent channel %s already gone", agent_channel)
        return released
