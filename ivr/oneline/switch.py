"""The "hard switch" of a one-line payment, done with AMI.

    find the agent's live call  → CoreShowChannels: the agent's channel and the caller's channel
                                  share a bridge
    switch                      → Setvar (payment id, agent channel) on the caller, then one
                                  Redirect for both legs: caller → [pay-oneline], agent →
                                  [agent-wait]. They leave the bridge together, so there is no
                                  moment in which the caller's keypad can reach the agent.
    release the agent           → the caller hung up: agent → [agent-released]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ivr import dialplan_variables as dv
from ivr.ami.client import AmiClient
from ivr.api.errors import APIError

__all__ = ["AgentCall", "AgentNotOnCall", "OnelineSwitch", "SwitchFailed"]

log = logging.getLogger(__name__)


class AgentNotOnCall(APIError):
    status = 409
    error_id = "agent-not-on-call"

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} is not on a call with a customer",
                         {"agent_id": agent_id})


class SwitchFailed(APIError):
    status = 502
    error_id = "switch-failed"

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"the call of agent {agent_id} could not be switched to the payment IVR",
                         {"agent_id": agent_id})


@dataclass(frozen=True)
class AgentCall:
    agent_channel: str
    caller_channel: str


class OnelineSwitch:
    def __init__(self, ami: AmiClient) -> None:
        self._ami = ami

    async def find(self, agent_id: str) -> AgentCall:
        channels = await self._ami.channels()
        prefix = f"PJSIP/{agent_id}-"
        for agent in channels:
            bridge = agent.get("BridgeId", "")
            if agent.get("Channel", "").startswith(prefix) and bridge:
                peers = [c for c in channels
                         if c.get("BridgeId") == bridge and c.get("Channel") != agent["Channel"]]
                if len(peers) == 1:
                    return AgentCall(agent["Channel"], peers[0]["Channel"])
        raise AgentNotOnCall(agent_id)

    async def switch(self, agent_id: str, call: AgentCall, payment_id: str) -> None:
        ok = (await self._ami.setvar(call.caller_channel, dv.PAYMENT_ID, payment_id)
              and await self._ami.setvar(call.caller_channel, dv.AGENT_CHANNEL, call.agent_channel)
              and await self._ami.setvar(call.agent_channel, dv.PAYMENT_ID, payment_id)
              and await self._ami.redirect(call.caller_channel, "pay-oneline",
                                           extra_channel=call.agent_channel,
                                           extra_context="agent-wait"))
        if not ok:
            raise SwitchFailed(agent_id)
        log.info("payment %s: caller %s switched to the payment IVR, agent %s held apart",
                 payment_id, call.caller_channel, call.agent_channel)

    async def release_agent(self, agent_channel: str) -> None:
        """The caller is gone: tell the agent and let them go."""
        if agent_channel and not await self._ami.redirect(agent_channel, "agent-released"):
            log.info("agent channel %s already gone", agent_channel)
