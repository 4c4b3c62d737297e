"""Calls the cardholder back: AMI Originate, then retries per policy until answered or expired.

Every pending callback is in Redis, never only in a process's memory, so any number of ivr service
instances can share one Redis and one Asterisk, and any of them may die at any moment:

    callbacks:due       sorted set: payment id by the time its next step is due (while an
                        instance holds it: by the end of that instance's lease)
    pay:{id}:callback   hash: attempt (the attempt due or ringing, from 1; absent = 1),
                        placed_at (set once that attempt's Originate is about to be sent),
                        channel (its channel id ``vp-<payment>-<attempt>``, so any instance can
                        hang it up), outcome (Asterisk's answer, if it came), owner (the claim),
                        waiting_since (the attempt waits for a free line since then)

``schedule`` makes attempt 1 due now. An attempt is placed only while Asterisk has room for one
more payment call (``_line_free``); until then it waits, uncounted (``waiting_since``). Each due
payment is claimed by exactly one instance with a lease (ivr/payments/due_work.py), renewed while
its call rings. One step of a claimed payment:

- The payment moved on (answered, cancelled...): the callback is done.
- Attempt N not placed yet: enter ``calling``, record placed_at and the channel, THEN send the
  Originate. Asterisk's answer ends the attempt: a failure (busy, no answer...) is noted and
  attempt N+1 is due after the retry spacing; after the last attempt the payment is ``expired``.
- Attempt N already placed: by an instance that died while it rang, or Asterisk's answer was lost
  (AMI dropped) or said "answered". It is never placed again. Its ringing ends by itself at the
  ring timeout (the Originate's Timeout), so the step waits until placed_at + ring timeout +
  answer grace, then the payment decides: if the callback flow took the call (its ANSWERED
  transition is the truth), done; if it is still ``calling``, the attempt counts as not answered.

So a cardholder is called at most once per attempt. The marker is written before the Originate:
a crash between the two costs the cardholder one attempt, never a second call. The channel id is
the same for an attempt wherever it is placed, so Asterisk itself refuses a duplicate of a call
that still exists (panoramisk re-sends an unanswered action after an AMI reconnect).

Any exception in a step is logged with the payment id and the step is due again after the retry
spacing; if even that cannot be written, the lease runs out and the step is claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import redis.asyncio as aioredis

from ivr import dialplan_variables as dv
from ivr.ami.client import AmiClient
from ivr.config import Settings
from ivr.merchant_store import MerchantStore
from ivr.merchants import UnknownMerchant
from ivr.payments.due_work import DueWork, sleep_or_wake, worker_name
from ivr.payments.store import InvalidTransition, NoSuchPayment, Payment, PaymentState, PaymentStore

__all__ = ["Dialer", "DUE_KEY"]

log = logging.getLogger(__name__)

DUE_KEY = "callbacks:due"
ANSWERED = "answered"
# Outcomes that do not say the cardholder was not reached: the payment's state decides, once the
# ring timeout (and the grace) has passed.
_PAYMENT_DECIDES = {ANSWERED, "no response"}
_DIALLING = {PaymentState.RISK_PASSED.value, PaymentState.CALLING.value}
# Steps one instance runs at once: the rest stay due for the other instances.
_MAX_STEPS = 50
_IDLE_POLL = 1.0
# How often a callback waiting for a free line asks Asterisk again (one AMI Getvar pair).
_LINE_WAIT_POLL_S = 3.0
# Kept after the callback is done, so a cancel can still hang up the answered call.
_KEEP_AFTER_DONE_S = 86400

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


class _ClaimLost(Exception):
    """Another instance took this payment's step over: this one must not write its outcome."""


class Dialer:
    def __init__(self, ami: AmiClient, store: PaymentStore, redis: aioredis.Redis,
                 settings: Settings, *, merchants: MerchantStore | None = None) -> None:
        self._ami = ami
        self._merchants = merchants
        self._store = store
        self._redis = redis
        self._settings = settings
        self._due = DueWork(redis, DUE_KEY, "pay:{}:callback")
        self._owner = worker_name(settings.instance_id)
        self._steps: dict[str, asyncio.Task] = {}
        self._loops: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._claiming = True
        self._hangup_causes: dict[str, asyncio.Future] = {}
        self._notes: set[asyncio.Task] = set()  # "ringing" notes being written

    def start(self) -> None:
        """Dial due callbacks in the background until ``stop()``."""
        self._ami.on_event("Hangup", self._on_hangup)
        self._ami.on_event("Newstate", self._on_newstate)
        self._loops = [asyncio.create_task(self._claim_loop(), name="dialer claims"),
                       asyncio.create_task(self._lease_loop(), name="dialer leases")]

    def stop_claiming(self) -> None:
        """Place no new calls (the service is draining); the steps in progress go on, with their
        leases renewed, and whatever is due stays due for another instance or the next start."""
        self._claiming = False
        self._wake.set()

    async def stop(self) -> None:
        """Stop dialling. Claims are left as they are, exactly as a crash would leave them: the
        next instance settles each step by the rule above, nothing is released half-done."""
        self._stopping = True
        self._wake.set()
        pending = {*self._loops, *self._steps.values()}
        # Cancelled again until done: redis-py can swallow a CancelledError that lands inside a
        # command, and a step that swallowed it would otherwise wait out a whole ring timeout.
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)

    async def schedule(self, payment_id: str) -> None:
        """Call the cardholder of ``payment_id`` (now in ``risk_passed``) from attempt 1, now.

        Idempotent: a payment already scheduled or being dialled keeps its place and attempt."""
        if await self._due.add(payment_id, time.time()):
            self._wake.set()

    async def hang_up(self, payment_id: str) -> None:
        """Hang up the payment's current call, ringing or answered, whichever instance placed it
        (used by cancel)."""
        channel = (await self._due.fields(payment_id)).get("channel")
        if channel:
            await self._ami.hangup(channel)

    # --- claiming -------------------------------------------------------------------------------

    def _lease_until(self) -> float:
        return time.time() + self._settings.callback_lease_s

    async def _claim_loop(self) -> None:
        # Also ends on ``_stopping``: redis-py can swallow a CancelledError inside a command.
        while not self._stopping and self._claiming:
            self._wake.clear()
            try:
                room = _MAX_STEPS - len(self._steps)
                claimed = (await self._due.claim(self._owner, self._lease_until(), time.time(), room)
                           if room > 0 else [])
                for payment_id in claimed:
                    if payment_id in self._steps:
                        continue  # our own step, whose lease was late: it goes on holding it
                    self._steps[payment_id] = asyncio.create_task(
                        self._run_step(payment_id), name=f"callback {payment_id}")
                if not claimed:
                    await sleep_or_wake(self._wake, await self._due.seconds_to_next(_IDLE_POLL))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away, say: log it and keep claiming
                log.exception("dialer: claiming due callbacks failed; retrying")
                await sleep_or_wake(self._wake, _IDLE_POLL)

    async def _lease_loop(self) -> None:
        """Renew the lease of every step in progress; a step whose claim was taken over stops."""
        while not self._stopping:
            await asyncio.sleep(self._settings.callback_lease_s / 3)
            for payment_id, task in list(self._steps.items()):
                try:
                    held = await self._due.renew(payment_id, self._owner, self._lease_until())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("payment %s: could not renew the callback's lease", payment_id)
                    continue
                if not held:
                    log.warning("payment %s: callback claim taken over by another instance",
                                payment_id)
                    task.cancel()

    async def _run_step(self, payment_id: str) -> None:
        try:
            await self._step(payment_id)
        except _ClaimLost:
            log.warning("payment %s: callback claim taken over; this instance stops", payment_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            retry_at = time.time() + self._settings.callback_retry_spacing_s
            log.exception("payment %s: callback step failed; due again in %.0f s", payment_id,
                          self._settings.callback_retry_spacing_s)
            try:
                await self._due.release(payment_id, self._owner, at=retry_at)
            except Exception:
                log.exception("payment %s: could not reschedule the callback; it is taken again "
                              "when its lease ends", payment_id)
        finally:
            self._steps.pop(payment_id, None)

    # --- one step -------------------------------------------------------------------------------

    async def _step(self, payment_id: str) -> None:
        try:
            payment = await self._store.get(payment_id)
        except NoSuchPayment:
            payment = None
        if payment is None or payment.status not in _DIALLING:
            await self._done(payment_id)
            return
        callback = await self._due.fields(payment_id)
        number = int(callback.get("attempt") or 1)
        if not callback.get("placed_at"):
            if await self._merchant_suspended(payment):
                return
            if not await self._line_free(payment_id, callback):
                return
            outcome = await self._place(payment, number)
            if outcome is None:
                return  # the payment moved on before the call was placed
            if (await self._store.get(payment_id)).status not in _DIALLING:
                await self._done(payment_id)
                return
            if outcome not in _PAYMENT_DECIDES:
                await self._not_answered(payment_id, number, outcome)
                return
            await self._hold(payment_id, outcome=outcome)
            callback = await self._due.fields(payment_id)
        settled_at = (float(callback["placed_at"]) + self._settings.callback_ring_timeout_s
                      + self._settings.callback_answer_grace_s)
        if time.time() < settled_at:
            await self._release(payment_id, at=settled_at)
            return
        # Still dialling after the call's ring time: the cardholder did not take it.
        await self._not_answered(payment_id, number,
                                 callback.get("outcome") or "no result (its instance stopped)")

    async def _merchant_suspended(self, payment: Payment) -> bool:
        """A merchant suspended since its order was accepted gets no more calls made for it: the
        payment is cancelled (its webhook says so). True if that happened."""
        if self._merchants is None:
            return False
        try:
            active = (await self._merchants.get(payment.merchant_id)).active
        except UnknownMerchant:
            active = False
        if active:
            return False
        with contextlib.suppress(InvalidTransition):  # the payment moved on meanwhile
            await self._store.transition(payment.id, PaymentState.CANCELLED,
                                         reason="merchant suspended: no further call is made")
        log.info("payment %s: merchant %s is suspended; callback cancelled", payment.id,
                 payment.merchant_id)
        await self._done(payment.id)
        return True

    async def _line_free(self, payment_id: str, callback: dict[str, str]) -> bool:
        """Is there room at Asterisk for one more payment call? Asterisk refuses inbound payment
        calls past its limit, or while the machine's CPUs are too busy (dialplan/admission.conf),
        but never a callback the cardholder answered, so the dialer keeps callbacks within both:
        it places an attempt only while the payment calls Asterisk carries, and the attempts this
        dialer has ringing (each joins them when answered), are fewer than the limit and the CPUs
        are not full. Otherwise the attempt waits, uncounted, in ``calling`` (noted once), asked
        again every few seconds; past ``callback_line_wait_s`` of waiting the payment expires.
        If Asterisk does not say, the attempt is placed: the Originate's own outcome then tells."""
        lines = await self._ami.payment_calls()
        if lines is None or lines.room_for(len(self._hangup_causes)):
            return True
        busy = ("the machine's CPUs are too busy for another payment call" if lines.cpu_full
                else f"Asterisk carries {lines.carried} payment calls, its limit is {lines.limit}")
        now = time.time()
        waiting_since = float(callback.get("waiting_since") or now)
        if now - waiting_since >= self._settings.callback_line_wait_s:
            with contextlib.suppress(InvalidTransition):  # cancelled meanwhile
                await self._store.transition(
                    payment_id, PaymentState.EXPIRED,
                    reason=f"not called: no free line for {now - waiting_since:.0f} s ({busy})")
            log.warning("payment %s: callback expired waiting for a line (%s)", payment_id, busy)
            await self._done(payment_id)
            return False
        if not callback.get("waiting_since"):
            if not await self._enter_calling(payment_id, f"waiting for a free line: {busy}"):
                await self._done(payment_id)
                return False
            log.info("payment %s: callback waits for a line (%s)", payment_id, busy)
        await self._release(payment_id, at=now + _LINE_WAIT_POLL_S, waiting_since=waiting_since)
        return False

    async def _place(self, payment: Payment, number: int) -> str | None:
        """Place attempt ``number``; Asterisk's outcome in words, None if the payment moved on."""
        s = self._settings
        if not await self._enter_calling(payment.id, f"attempt {number} of {s.callback_max_attempts}"):
            await self._done(payment.id)
            return None
        channel_id = f"vp-{payment.id}-{number}"
        dialled = s.callback_dial_pattern.format(mobile=payment.mobile)
        await self._hold(payment.id, attempt=number, placed_at=time.time(), channel=channel_id,
                         waiting_since="")
        log.info("payment %s: attempt %d, channel %s", payment.id, number, channel_id)
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise asyncio.CancelledError  # stopping: a cancel swallowed on the way must not dial
        hangup_cause = asyncio.get_running_loop().create_future()
        self._hangup_causes[channel_id] = hangup_cause
        try:
            outcome = await self._ami.originate(
                action_id=f"voicepay-{uuid.uuid4().hex}",
                channel=dialled,
                channel_id=channel_id,
                context="pay-callback",
                variables={dv.PAYMENT_ID: payment.id},
                timeout_ms=int(s.callback_ring_timeout_s * 1000),
                caller_name=s.callback_caller_name,
                caller_number=s.callback_caller_number,
            )
            if outcome != ANSWERED:
                with contextlib.suppress(asyncio.TimeoutError):
                    cause = await asyncio.wait_for(asyncio.shield(hangup_cause), 1.0)
                    outcome = HANGUP_CAUSES.get(cause, outcome)
            return outcome
        finally:
            self._hangup_causes.pop(channel_id, None)

    def _on_hangup(self, event) -> None:
        waiter = self._hangup_causes.get(event.get("Uniqueid", ""))
        if waiter is not None and not waiter.done():
            waiter.set_result(event.get("Cause", ""))

    def _on_newstate(self, event) -> None:
        """The cardholder's phone rings: noted in the history (the agent console shows it) by
        the instance that placed the call, the one waiting on its channel."""
        channel_id = event.get("Uniqueid", "")
        if channel_id not in self._hangup_causes or event.get("ChannelStateDesc") != "Ringing":
            return
        payment_id, _, number = channel_id.removeprefix("vp-").rpartition("-")
        note = asyncio.create_task(self._store.note(payment_id, f"ringing (attempt {number})",
                                                    event="ringing"))
        self._notes.add(note)
        note.add_done_callback(self._notes.discard)

    async def _enter_calling(self, payment_id: str, reason: str) -> bool:
        """Enter (or stay in) ``calling`` for the next attempt; False once the payment moved on."""
        try:
            before = await self._store.get(payment_id)
            if before.status is PaymentState.CALLING:
                # Re-entering a state adds no history entry, so a retry says so itself.
                await self._store.note(payment_id, reason)
            else:
                await self._store.transition(payment_id, PaymentState.CALLING, reason=reason)
        except InvalidTransition as exc:
            log.info("payment %s: not dialling (it is %s)", payment_id, exc.current)
            return False
        return True

    async def _not_answered(self, payment_id: str, number: int, outcome: str) -> None:
        """Attempt ``number`` did not reach the cardholder: the next one, or ``expired``."""
        s = self._settings
        await self._hold(payment_id)  # still ours: only then may its outcome be written
        await self._store.note(payment_id, f"attempt {number}: {outcome}")
        log.info("payment %s: attempt %d: %s", payment_id, number, outcome)
        if number < s.callback_max_attempts:
            await self._release(payment_id, at=time.time() + s.callback_retry_spacing_s,
                                attempt=number + 1, placed_at="", outcome="")
            return
        with contextlib.suppress(InvalidTransition):  # cancelled (or answered) meanwhile
            await self._store.transition(payment_id, PaymentState.EXPIRED,
                                         reason=f"not answered after {s.callback_max_attempts} attempts")
        await self._done(payment_id)

    async def _done(self, payment_id: str) -> None:
        """Nothing left to dial for this payment."""
        await self._release(payment_id, at=None)
        await self._redis.expire(self._due.key(payment_id), _KEEP_AFTER_DONE_S)

    async def _hold(self, payment_id: str, **fields: str | int | float) -> None:
        if not await self._due.renew(payment_id, self._owner, self._lease_until(), **fields):
            raise _ClaimLost(payment_id)

    async def _release(self, payment_id: str, *, at: float | None,
                       **fields: str | int | float) -> None:
        if not await self._due.release(payment_id, self._owner, at=at, **fields):
            raise _ClaimLost(payment_id)
        self._wake.set()  # the claim loop may be sleeping past the new due time
