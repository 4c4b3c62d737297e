"""Recovery: settle the payments whose state outlived its deadline, as a payments engineer would.

A process that dies (or a call that vanishes) leaves a payment half-way. At start and then
periodically, the sweep finds payments that entered their state longer ago than that state's
deadline and settles each, recording every decision in the payment's history with its reason:

* ``authorizing``: the acquirer's answer is unknown, so the purchase is reversed by its STAN (the
  acquirer undoes it if it arrived, answers 25 if it did not, and never charges a late original
  after a reversal), then the payment is ``failed``. A reversal that is not acknowledged leaves it
  ``authorizing`` with a note; the next sweep tries again.
* ``answered``, ``confirmed``, ``pin_entry``: the cardholder was on a call. If AMI shows the call's
  channel alive it is left alone; otherwise the payment is ``abandoned``.
* ``risk_passed`` too long: the process died between the risk decision and the next step. A
  callback is handed to the durable dialer (``schedule`` is idempotent: one already due keeps its
  place); a one-line payment whose switch never happened is ``failed`` (the agent's call has
  long moved on). ``calling`` belongs to the dialer alone: its leases take over a dead instance's
  attempt (ivr/callback/dialer.py).
* ``risk_review`` past ``VOICEPAY_RISK_REVIEW_TIMEOUT_S``: no operator decided; the review desk
  (ivr/risk/review.py) declines it, or applies a decision whose process died before it could.

Any number of ivr service instances may sweep one Redis: each payment's recovery is claimed by
one instance at a time (``recovery:claim:{id}``, SET NX with a lease), and its state is read again
under the claim, so a payment another instance (or the call flow) settled meanwhile is skipped.
The transitions themselves are atomic in the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.crypto.pan_vault import PanVault, PanVaultError
from ivr.hostlink.acquirer_client import AcquirerClient
from ivr.hostlink.messages import ResponseCode
from ivr.payments.sent_purchase import SentPurchase
from ivr.payments.model import PaymentMode
from ivr.payments.store import InvalidTransition, Payment, PaymentState, PaymentStore

__all__ = ["RecoverySweep", "LiveChannels", "deadlines_from"]

log = logging.getLogger(__name__)

S = PaymentState
CALL_STATES = frozenset({S.ANSWERED, S.CONFIRMED, S.PIN_ENTRY})
UNKNOWN_OUTCOME = "authorization outcome unknown (its call lost or the acquirer silent past the deadline)"
# Payments settled at once; a dead acquirer then costs one reversal's retries per batch, not per
# payment.
CONCURRENCY = 16
# Longer than one payment's settling takes (a reversal's retries), so a claim outlives its work;
# an instance that dies holding one only delays that payment by this much.
CLAIM_LEASE_S = 300

# Deletes the claim only if it is still ours: after a lease expired another instance may hold it.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LiveChannels(Protocol):
    """What the sweep needs from AMI (``ivr.ami.client.AmiClient``): the live channels."""

    async def channels(self) -> list[dict[str, str]]: ...


class OverdueReviews(Protocol):
    """What the sweep needs from the review desk (``ivr.risk.review.ReviewDesk``)."""

    async def settle_overdue(self, payment: Payment, age: float) -> bool: ...


class CallbackScheduler(Protocol):
    """What the sweep needs from the dialer (``ivr.callback.dialer.Dialer``)."""

    async def schedule(self, payment_id: str) -> None: ...


def deadlines_from(settings: Settings) -> dict[PaymentState, float]:
    """Each state this sweep settles, with its deadline in seconds, from the settings."""
    return {S.AUTHORIZING: settings.recovery_authorizing_deadline_s,
            S.RISK_PASSED: settings.recovery_risk_passed_deadline_s,
            S.RISK_REVIEW: settings.risk_review_timeout_s,
            **{state: settings.recovery_call_deadline_s for state in CALL_STATES}}


class RecoverySweep:
    def __init__(self, store: PaymentStore, redis: aioredis.Redis, acquirer: AcquirerClient,
                 vault: PanVault, deadlines: Mapping[PaymentState, float], *,
                 ami: LiveChannels | None = None, dialer: CallbackScheduler | None = None,
                 reviews: OverdueReviews | None = None,
                 claim_lease_s: float = CLAIM_LEASE_S) -> None:
        self._store = store
        self._redis = redis
        self._acquirer = acquirer
        self._vault = vault
        self._deadlines = dict(deadlines)
        self._ami = ami
        self._dialer = dialer
        self._reviews = reviews
        self._claim_lease_ms = int(claim_lease_s * 1000)
        self._release = redis.register_script(_RELEASE_LUA)
        self._instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def run(self, period_s: float) -> None:
        """Sweep now and then every ``period_s`` until cancelled; a failed sweep is logged and
        the next one runs as usual.

        The loop also ends when its task has a cancellation pending: redis-py can swallow a
        CancelledError that lands inside a command (as in ivr/webhooks.py).
        """
        task = asyncio.current_task()
        while True:
            try:
                settled = await self.sweep()
                if settled:
                    log.info("recovery: %d payment(s) settled", settled)
            except Exception:
                if not (task is not None and task.cancelling()):
                    log.exception("recovery sweep failed; the next one runs in %.0f s", period_s)
            if task is not None and task.cancelling():
                return
            await asyncio.sleep(period_s)

    async def sweep(self) -> int:
        """Settle every overdue payment once; the number that reached a final state."""
        now = time.time()
        candidates = await self._store.pending_since(now - min(self._deadlines.values()))
        if not candidates:
            return 0
        # One channel list per sweep, taken before any decision: a call gone then stays gone.
        live = await self._live_call_ids()
        limit = asyncio.Semaphore(CONCURRENCY)

        async def recover(payment_id: str) -> bool:
            async with limit:
                return await self._recover(payment_id, live)

        results = await asyncio.gather(*(recover(pid) for pid in candidates))
        return sum(results)

    async def _recover(self, payment_id: str, live: set[str] | None) -> bool:
        """Settle one payment if it is overdue and no one else is at it; True if now final."""
        claim = f"recovery:claim:{payment_id}"
        if not await self._redis.set(claim, self._instance, nx=True, px=self._claim_lease_ms):
            return False
        try:
            # Read under the claim: the flow or another sweeper may have moved it since listing.
            payment = await self._store.get(payment_id)
            age = _age_s(payment)
            state = PaymentState(payment.status)
            if state not in self._deadlines or age < self._deadlines[state]:
                return False
            return await self._settle(payment, state, age, live)
        except Exception:
            log.exception("recovery of payment %s failed; retried at the next sweep", payment_id)
            return False
        finally:
            await self._release(keys=[claim], args=[self._instance])

    async def _settle(self, payment: Payment, state: PaymentState, age: float,
                      live: set[str] | None) -> bool:
        if state is S.AUTHORIZING:
            return await self._resolve_authorization(payment)
        if state in CALL_STATES:
            return await self._abandon_if_call_gone(payment, state, age, live)
        if state is S.RISK_PASSED:
            return await self._resume_after_risk(payment, age)
        if state is S.RISK_REVIEW and self._reviews is not None:
            return await self._reviews.settle_overdue(payment, age)
        return False

    async def _resume_after_risk(self, payment: Payment, age: float) -> bool:
        if payment.mode is PaymentMode.ONELINE:
            return await self._finish(payment, S.FAILED, f"risk_passed for {age:.0f} s and the "
                                      "caller was never switched to the payment IVR; failed by recovery")
        if self._dialer is None:
            return False
        await self._dialer.schedule(payment.id)
        await self._note_once(payment, "recovery: callback scheduled (none was due after the risk "
                                       "decision)")
        log.info("payment %s: callback scheduled by recovery", payment.id)
        return False

    async def _resolve_authorization(self, payment: Payment) -> bool:
        sent = SentPurchase.of_payment(payment)
        if sent is None:
            # The record is written before the purchase leaves: without one, nothing was sent.
            return await self._finish(payment, S.FAILED,
                                      f"{UNKNOWN_OUTCOME}; the purchase was never sent")
        try:
            token = await self._store.pan_token(payment.id)
            pan = self._vault.decrypt(token, payment.id) if token is not None else None
        except PanVaultError:
            pan = None
        if pan is None:
            # Without the card number no 0400 can be built; failing the payment could hide a
            # charge, so it stays for an operator (the acquirer's journal has the STAN).
            log.error("payment %s: cannot reverse stan %s: the card number is gone", payment.id,
                      sent.stan)
            await self._note_once(payment, f"{UNKNOWN_OUTCOME}; cannot reverse stan {sent.stan}: "
                                           "the card number is gone; needs an operator")
            return False
        code = await self._acquirer.reversal_answer(sent.purchase(pan, payment.amount.fen))
        if code is None:
            await self._note_once(payment, f"{UNKNOWN_OUTCOME}; reversal of stan {sent.stan} not "
                                           "acknowledged; retried at the next sweep")
            return False
        if code is ResponseCode.APPROVED:
            reason = f"{UNKNOWN_OUTCOME}; reversed (acknowledged)"
        else:
            reason = f"{UNKNOWN_OUTCOME}; the acquirer never received it ({code.value}), nothing charged"
        return await self._finish(payment, S.FAILED, reason, response_code=code.value)

    async def _abandon_if_call_gone(self, payment: Payment, state: PaymentState, age: float,
                                    live: set[str] | None) -> bool:
        call_id = payment.call_id
        if self._ami is None:
            why = "no AMI to check the call"
        elif live is None:
            return False  # AMI is down: the call may be alive; the next sweep asks again
        elif call_id and call_id in live:
            return False
        else:
            why = f"call {call_id or '(none recorded)'} no longer exists"
        return await self._finish(payment, S.ABANDONED,
                                  f"{state.value} for {age:.0f} s and {why}; abandoned by recovery")

    async def _finish(self, payment: Payment, target: PaymentState, reason: str,
                      **changes: str) -> bool:
        try:
            await self._store.transition(payment.id, target, reason=reason, **changes)
        except InvalidTransition as exc:
            # Only a flow that outlived the deadline gets here; say what was done all the same.
            log.error("payment %s: recovery would make it %s (%s) but it is now %s", payment.id,
                      target.value, reason, exc.current)
            await self._store.note(payment.id, f"recovery: {reason}; but the payment had become "
                                                f"{exc.current}")
            return False
        log.info("payment %s: %s by recovery (%s)", payment.id, target.value, reason)
        return True

    async def _note_once(self, payment: Payment, reason: str) -> None:
        """A note, unless it is already the latest entry (a sweep a minute must not flood it)."""
        history = await self._store.history(payment.id)
        if not history or history[-1].get("reason") != reason:
            await self._store.note(payment.id, reason)

    async def _live_call_ids(self) -> set[str] | None:
        """Unique ids of the live channels; None if AMI cannot tell."""
        if self._ami is None:
            return None
        try:
            channels = await self._ami.channels()
        except (ConnectionError, TimeoutError) as exc:
            log.warning("recovery: AMI cannot list channels (%s); calls are checked next sweep",
                        type(exc).__name__)
            return None
        return {channel.get("Uniqueid", "") for channel in channels}


def _age_s(payment: Payment) -> float:
    """Seconds since the payment entered its current state (the store stamps every transition)."""
    entered = datetime.fromisoformat(payment.updated_at.replace("Z", "+00:00"))
    return time.time() - entered.timestamp()
