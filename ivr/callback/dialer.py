"""Calls the cardholder back: AMI Originate, then retries per policy until answered or expired.

One dialling task per payment. An attempt ends in one of three ways:
- the callback flow reports the call answered (the flow's ANSWERED transition is the truth);
- Asterisk's OriginateResponse reports a failure (busy, no answer, unreachable...);
- no answer from AMI in time (e.g. the AMI connection dropped while it rang): the payment's state
  decides, so a lost AMI event can never strand a payment in ``calling``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from ivr import dialplan_variables as dv
from ivr.ami.client import AmiClient
from ivr.config import Settings
from ivr.payments.store import InvalidTransition, PaymentState, PaymentStore

__all__ = ["Dialer"]

log = logging.getLogger(__name__)

ANSWERED = "answered"

# Q.850 hangup causes of a failed attempt, in words. Asterisk's OriginateResponse says only
# "failed" when a 486 or 480 ends the call before its BUSY control frame is read, so the cause on
# the channel's Hangup event is the better witness.
HANGUP_CAUSES = {
    "1": "unreachable (unallocated number)",
    "3": "unreachable (no route)",
    "17": "busy",
    "18": "no answer",
    "19": "no answer",
    "20": "unreachable (subscriber absent)",
    "21": "rejected",
    "27": "unreachable (destination out of order)",
    "34": "congestion",
    "38": "unreachable (network out of order)",
}


@dataclass
class _Attempt:
    payment_id: str
    channel_id: str
    answered: asyncio.Event


class Dialer:
    def __init__(self, ami: AmiClient, store: PaymentStore, settings: Settings) -> None:
        self._ami = ami
        self._store = store
        self._settings = settings
        self._by_payment: dict[str, _Attempt] = {}
        self._tasks: set[asyncio.Task] = set()
        self._hangup_causes: dict[str, asyncio.Future] = {}

    def start(self) -> None:
        self._ami.on_event("Hangup", self._on_hangup)

    def _on_hangup(self, event) -> None:
        waiter = self._hangup_causes.get(event.get("Uniqueid", ""))
        if waiter is not None and not waiter.done():
            waiter.set_result(event.get("Cause", ""))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def dial(self, payment_id: str) -> None:
        """Start calling the cardholder of ``payment_id`` in the background."""
        task = asyncio.create_task(self._dial(payment_id), name=f"dial {payment_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answered(self, payment_id: str) -> None:
        """The callback flow has the cardholder on the line."""
        attempt = self._by_payment.get(payment_id)
        if attempt is not None:
            attempt.answered.set()

    def forget(self, payment_id: str) -> None:
        """The payment's call is over: nothing left to hang up."""
        self._by_payment.pop(payment_id, None)

    async def hang_up(self, payment_id: str) -> None:
        """Hang up the payment's call, ringing or answered (used by cancel)."""
        attempt = self._by_payment.get(payment_id)
        if attempt is not None:
            await self._ami.hangup(attempt.channel_id)

    async def _dial(self, payment_id: str) -> None:
        s = self._settings
        for number in range(1, s.callback_max_attempts + 1):
            if not await self._still_calling(payment_id, f"attempt {number} of {s.callback_max_attempts}"):
                return
            outcome = await self._attempt(payment_id)
            if outcome == ANSWERED:
                return
            await self._store.note(payment_id, f"attempt {number}: {outcome}")
            log.info("payment %s: attempt %d: %s", payment_id, number, outcome)
            if number < s.callback_max_attempts:
                await asyncio.sleep(s.callback_retry_spacing_s)
        try:
            await self._store.transition(payment_id, PaymentState.EXPIRED,
                                         reason=f"not answered after {s.callback_max_attempts} attempts")
        except InvalidTransition:
            pass  # cancelled (or answered) while we waited

    async def _still_calling(self, payment_id: str, reason: str) -> bool:
        """Enter (or stay in) ``calling`` for the next attempt; False once the payment moved on."""
        try:
            before = await self._store.get(payment_id)
            if before.status == PaymentState.CALLING.value:
                # Re-entering a state adds no history entry, so a retry says so itself.
                await self._store.note(payment_id, reason)
            else:
                await self._store.transition(payment_id, PaymentState.CALLING, reason=reason)
        except InvalidTransition as exc:
            log.info("payment %s: not dialling (it is %s)", payment_id, exc.current)
            return False
        return True

    async def _attempt(self, payment_id: str) -> str:
        payment = await self._store.get(payment_id)
        attempt = _Attempt(payment_id, channel_id=f"vp-{uuid.uuid4().hex}", answered=asyncio.Event())
        self._by_payment[payment_id] = attempt
        hangup_cause = asyncio.get_running_loop().create_future()
        self._hangup_causes[attempt.channel_id] = hangup_cause
        try:
            return await self._place(payment, attempt, hangup_cause)
        finally:
            self._hangup_causes.pop(attempt.channel_id, None)

    async def _place(self, payment, attempt: _Attempt, hangup_cause: asyncio.Future) -> str:
        s = self._settings
        payment_id = payment.id
        originate = asyncio.create_task(self._ami.originate(
            action_id=f"voicepay-{uuid.uuid4().hex}",
            channel=s.callback_dial_pattern.format(mobile=payment.fields["mobile"]),
            channel_id=attempt.channel_id,
            context="pay-callback",
            variables={dv.PAYMENT_ID: payment_id},
            timeout_ms=int(s.callback_ring_timeout_s * 1000),
            caller_id=f'"{s.callback_caller_name}" <{s.callback_caller_number}>',
        ))
        answered = asyncio.create_task(attempt.answered.wait())
        done, _ = await asyncio.wait({originate, answered}, return_when=asyncio.FIRST_COMPLETED,
                                     timeout=s.callback_ring_timeout_s + 15)
        answered.cancel()
        if answered in done:
            originate.cancel()
            return ANSWERED
        if originate in done:
            outcome = originate.result()
        else:
            originate.cancel()
            outcome = "no response"
        if outcome != ANSWERED:
            with contextlib.suppress(asyncio.TimeoutError):
                cause = await asyncio.wait_for(asyncio.shield(hangup_cause), 1.0)
                outcome = HANGUP_CAUSES.get(cause, outcome)
            # A lost or late AMI reply must not hide a call the flow already took.
            current = await self._store.get(payment_id)
            if current.status != PaymentState.CALLING.value:
                return ANSWERED
            self._by_payment.pop(payment_id, None)
        return outcome
