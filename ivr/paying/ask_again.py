""""Ask again": the agent asks the caller of a one-line payment for one field anew, mid-payment.

The caller got a field wrong (or says so to the agent before the payment went on); the agent
presses "ask again" on that field's line in the console. The console may run on any ivr instance,
the call on another: the request is a Redis set per payment (``pay:{id}:ask_again``, field names
only, never a digit), and the flow holding the call looks at it whenever an answer for that field
is about to be used, without ever waiting on it:

    the caller keys the PIN ... # → a request for "pin"? → the entry is wiped, unused, and the
    caller hears "please enter it again" and the PIN question again → the new entry goes on.

When it is allowed (``request``):
- one-line payments only (a callback has no agent on the line), and only the fields that
  payment's flow asks for: the PIN (debit), the expiry and the CVV2 (credit). Never the card
  number (a one-line order brings it) and never the ID step-up (its own question is repeated at
  once when the answer does not match).
- only before anything keyed went to the acquirer: while the payment is ``confirmed`` or in
  ``pin_entry``. The request is written by a script that checks that state in the same step, and
  the flow clears the requests the moment it moves to ``authorizing`` (``close``), so a request
  is either acted on, or refused with ``AskAgainRefused``, or, when it raced the caller's ``#``,
  recorded as too late: the PIN already in an authorization is never "asked again". After an
  incorrect PIN the flow asks for it again on its own; the agent may ask again for that new entry.

A request acts when the caller's current entry for that field ends (by ``#``, by the last digit,
or the wait for digits running out): Asterisk's GET DATA cannot be cut short from outside the
call, and a caller half-way through keying would lose nothing they could not key again. A request
for the expiry while the caller keys the CVV2 acts after the CVV2 (both go to the acquirer
together). Every act is a history entry (``event=asked_again``, ``about=<field>``) the console
shows as "asked again" on the field's line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis

from ivr.payments.model import Payment, PaymentMode, PaymentState
from ivr.payments.store import NoSuchPayment, PaymentStore

__all__ = ["ASK_AGAIN", "ASK_AGAIN_STATES", "AskAgain", "AskAgainRefused", "FIELD_NAMES", "fields_asked"]

log = logging.getLogger(__name__)

# The lead-in of a field asked again: "please enter it again", then the field's own question.
ASK_AGAIN = ("ask_again",)
# What the history and the log call each field.
FIELD_NAMES = {"pin": "PIN", "expiry": "expiry date", "cvv2": "CVV2"}
# Nothing keyed has gone to the acquirer yet in these states.
ASK_AGAIN_STATES = (PaymentState.CONFIRMED.value, PaymentState.PIN_ENTRY.value)
# A request nobody acted on (the call ended) does not outlive the call by much.
_TTL_S = 3600

# KEYS: the payment's hash, its request set. ARGV: the field, the TTL, then the states that allow
# a request. The state check and the write are one step: no request lands after ``authorizing``.
_REQUEST_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
for i = 3, #ARGV do
  if ARGV[i] == status then
    redis.call('SADD', KEYS[2], ARGV[1])
    redis.call('EXPIRE', KEYS[2], ARGV[2])
    return {'asked', status}
  end
end
return {'refused', status}
"""


class AskAgainRefused(Exception):
    """This field cannot be asked again for this payment now (see the module). Names the
    payment, the field and the state, never anything keyed."""

    def __init__(self, payment_id: str, field: str, why: str) -> None:
        super().__init__(f"payment {payment_id}: the {FIELD_NAMES.get(field, field)} cannot be "
                         f"asked again: {why}")
        self.details = {"payment_id": payment_id, "field": field}


def fields_asked(payment: Payment) -> tuple[str, ...]:
    """The fields a one-line payment's flow asks for, which the agent may ask again."""
    if payment.mode is not PaymentMode.ONELINE:
        return ()
    return ("expiry", "cvv2") if payment.card_type == "credit" else ("pin",)


class AskAgain:
    def __init__(self, redis: aioredis.Redis, store: PaymentStore) -> None:
        self._redis = redis
        self._store = store
        self._request = redis.register_script(_REQUEST_LUA)

    @staticmethod
    def _key(payment_id: str) -> str:
        return f"pay:{payment_id}:ask_again"

    async def request(self, payment: Payment, field: str) -> None:
        """The agent's request; raises ``AskAgainRefused`` when it is not allowed now."""
        if field not in fields_asked(payment):
            why = ("only a one-line payment's PIN, expiry or CVV2 can be" if payment.mode
                   is not PaymentMode.ONELINE or field not in FIELD_NAMES
                   else f"this {payment.card_type or 'debit'} card's payment does not ask for it")
            raise AskAgainRefused(payment.id, field, why)
        outcome, status = await self._request(
            keys=[f"pay:{payment.id}", self._key(payment.id)], args=[field, _TTL_S, *ASK_AGAIN_STATES])
        outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
        if outcome == "missing":
            raise NoSuchPayment(payment.id)
        if outcome == "refused":
            status = status.decode() if isinstance(status, bytes) else status
            raise AskAgainRefused(payment.id, field,
                                  f"the payment is {status}: nothing is being keyed, or what was "
                                  "keyed has gone to the acquirer")
        await self._store.note(payment.id, f"the agent asked again for the {FIELD_NAMES[field]}",
                               event="ask_again_requested", about=field)
        log.info("payment %s: the agent asked again for the %s", payment.id, FIELD_NAMES[field])

    async def taken(self, payment_id: str, fields: Iterable[str]) -> str | None:
        """The flow, before it uses an answer: one of ``fields`` the agent asked again for
        (the request is consumed and the history says so), or None."""
        for field in fields:
            if await self._redis.srem(self._key(payment_id), field):
                await self._store.note(payment_id, f"the agent asked again for the "
                                       f"{FIELD_NAMES[field]}: the entry was discarded",
                                       event="asked_again", about=field)
                return field
        return None

    async def close(self, payment_id: str) -> None:
        """The flow, once the payment is ``authorizing``: no request can act any more. One that
        raced the caller's last key is recorded as too late rather than left pending."""
        late = await self._redis.smembers(self._key(payment_id))
        await self._redis.delete(self._key(payment_id))
        for raw in sorted(late):
            field = raw.decode() if isinstance(raw, bytes) else raw
            await self._store.note(payment_id, f"ask again for the {FIELD_NAMES.get(field, field)} "
                                   "came too late: already sent to the acquirer",
                                   event="ask_again_too_late", about=field)
