"""The ivr service's own limit (VOICEPAY_AGI_MAX_SESSIONS, ivr/agi/server.py): past it a new
self-service call hears "all lines are busy" and is hung up at once, the calls in progress are
untouched, a payment already under way (a callback) is still taken, and a freed place is given to
the next caller. Real FastAGI server and the line's real busy answer; the calls in progress are
held on a prompt by the scripted fake Asterisk."""

from __future__ import annotations

import asyncio
import functools

from ivr.agi.channel import AgiChannel
from ivr.agi.server import FastAgiServer
from ivr.selfservice.flow import lines_busy
from tests.integration import test_selfservice_fastagi as selfservice_harness
from tests.integration.fake_asterisk import FakeAsterisk, Pause, plays
from tests.integration.test_selfservice_fastagi import Ivr, _bound_port

ivr = selfservice_harness.ivr  # the flow context (prompts, settings) the service builds

LIMIT = 2


async def _in_progress(call: AgiChannel) -> None:
    """A flow that stays in progress while its prompt plays (the test holds the prompt)."""
    await call.stream("/opt/voicepay/sounds/en/enter_pin")


def _held() -> tuple[Pause, list]:
    pause = Pause()
    return pause, [plays("enter_pin", pause=pause)]


async def test_past_the_limit_a_new_caller_hears_busy_and_the_calls_in_progress_go_on(ivr: Ivr):
    server = FastAgiServer({"selfservice": _in_progress, "callback": _in_progress},
                           max_sessions=LIMIT,
                           busy={"selfservice": functools.partial(lines_busy, ctx=ivr.ctx)})
    await server.start("127.0.0.1", 0)
    port = _bound_port(server)
    try:
        held = [_held() for _ in range(LIMIT)]
        callers = [FakeAsterisk(script) for _, script in held]
        calls = [asyncio.create_task(c.call("127.0.0.1", port, timeout=30)) for c in callers]
        await asyncio.gather(*(pause.reached.wait() for pause, _ in held))

        # One more self-service caller, in Cantonese: told at once, in the call's language.
        refused = FakeAsterisk([plays("lines_busy")], language="yue")
        await refused.call("127.0.0.1", port)
        assert refused.prompts == ["lines_busy"]
        assert "/yue/lines_busy" in refused.commands[0].args[0]
        assert refused.hung_up_by == "ivr"
        assert not any(call.done() for call in calls)  # the calls in progress were not touched

        # A callback the cardholder answered is a payment under way: taken even when full.
        answered_pause, answered_script = _held()
        answered = FakeAsterisk(answered_script, agi_script="callback")
        answered_call = asyncio.create_task(answered.call("127.0.0.1", port, timeout=30))
        await answered_pause.reached.wait()

        # Two calls end (the flow closes the session once they have): the next caller is taken.
        for pause, _ in held:
            pause.release.set()
        await asyncio.gather(*calls)
        next_pause, next_script = _held()
        taken = FakeAsterisk(next_script)
        taken_call = asyncio.create_task(taken.call("127.0.0.1", port, timeout=30))
        await next_pause.reached.wait()
        assert taken.prompts == ["enter_pin"]
        for pause in (answered_pause, next_pause):
            pause.release.set()
        await asyncio.gather(answered_call, taken_call)
        assert [c.prompts for c in callers] == [["enter_pin"]] * LIMIT
    finally:
        await server.stop()


async def test_without_a_limit_every_caller_is_taken(ivr: Ivr):
    server = FastAgiServer({"selfservice": _in_progress},
                           busy={"selfservice": functools.partial(lines_busy, ctx=ivr.ctx)})
    await server.start("127.0.0.1", 0)
    try:
        held = [_held() for _ in range(LIMIT + 1)]
        callers = [FakeAsterisk(script) for _, script in held]
        calls = [asyncio.create_task(c.call("127.0.0.1", _bound_port(server), timeout=30))
                 for c in callers]
        await asyncio.gather(*(pause.reached.wait() for pause, _ in held))
        for pause, _ in held:
            pause.release.set()
        await asyncio.gather(*calls)
        assert [c.prompts for c in callers] == [["enter_pin"]] * (LIMIT + 1)
    finally:
        await server.stop()
