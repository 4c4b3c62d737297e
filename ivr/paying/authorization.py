"""Send one payment to the acquirer and decide what it means for the payment and the caller.

Shared by every flow: the self-service line, callbacks and one-line payments all end here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ivr.crypto.cvv2 import encrypt_cvv2
from ivr.crypto.keyring import KeySource, as_key_source
from ivr.hostlink.acquirer_client import (AcquirerClient, AcquirerError, AcquirerProtocolError,
                                          IssuerTimeout)
from ivr.hostlink.messages import PurchaseRequest, ResponseCode
from ivr.payments.sent_purchase import SentPurchase
from ivr.payments.store import Payment, PaymentState, PaymentStore

__all__ = ["Outcome", "Authorizer"]

log = logging.getLogger(__name__)

RC = ResponseCode


def _merchant_field(merchant_id: str | None, default: str) -> str:
    """ISO 8583 field 42 is 15 characters: our merchant ids are padded to fit."""
    return (merchant_id or default).ljust(15)[:15]

# Response code -> (final state, prompt the caller hears). 55 is special: the flow may re-prompt.
_DECLINES: dict[ResponseCode, str] = {
    RC.INSUFFICIENT_FUNDS: "declined_insufficient_funds",
    RC.EXPIRED_CARD: "declined_expired_card",
    RC.PIN_TRIES_EXCEEDED: "declined_pin_tries_exceeded",
    RC.INVALID_CARD_NUMBER: "declined_invalid_card",
    RC.EXCEEDS_AMOUNT_LIMIT: "declined_limit",
    RC.BAD_CVV2: "declined_invalid_cvv2",
}
# Codes that say the system, not the cardholder, failed: the payment is "failed", not "declined".
_SYSTEM_FAILURES = {RC.ISSUER_UNAVAILABLE, RC.SYSTEM_MALFUNCTION, RC.FORMAT_ERROR}


@dataclass(frozen=True)
class Outcome:
    """What an authorization means for the payment and the caller.

    ``state`` is the payment's next state; ``AUTHORIZING`` means unresolved: the purchase may
    stand at the acquirer and its reversal was not acknowledged, so the payment stays
    ``authorizing`` for recovery to reverse, while the caller hears that it did not go through.
    """

    state: PaymentState
    prompt: str
    reason: str
    response_code: str = ""
    rrn: str = ""
    auth_code: str = ""

    @property
    def incorrect_pin(self) -> bool:
        return self.response_code == RC.INCORRECT_PIN.value


class Authorizer:
    def __init__(self, acquirer: AcquirerClient, store: PaymentStore, *, terminal_id: str,
                 merchant_id: str, cvv_key: bytes | KeySource,
                 on_approved: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        self._acquirer = acquirer
        self._store = store
        self._terminal_id = terminal_id
        self._merchant_id = merchant_id
        self._cvv_keys = as_key_source(cvv_key, "cvv_key")
        # (card number, mobile) of every approved payment: how a cardholder becomes "returning".
        self._on_approved = on_approved

    async def authorize(self, payment: Payment, pan: str, *, pin_block: bytes | None = None,
                        pin_key_id: int | None = None, expiry_yymm: str | None = None,
                        cvv2_digits: bytearray | None = None) -> Outcome:
        """Ask the acquirer; the payment must already be ``authorizing``. Never raises for a decline.

        Debit cards come with a PIN block and the id of the PEK it was made under; credit cards
        with expiry and the CVV2 keypad buffer, which is sealed for the acquirer under the
        current CVV key (bound to this STAN) and wiped here. Both key ids travel in field 53.
        """
        stan = await self._store.next_stan()
        cvv_key = self._cvv_keys().current
        assert cvv_key.key is not None  # the current version is active
        cvv2_block = encrypt_cvv2(cvv_key.key, cvv2_digits, pan, stan) if cvv2_digits else None
        request = PurchaseRequest.create(
            pan=pan,
            amount=payment.amount.fen,
            pin_block=pin_block,
            pin_key_id=pin_key_id if pin_block is not None else None,
            expiry=expiry_yymm,
            cvv2_block=cvv2_block,
            cvv_key_id=cvv_key.id if cvv2_block is not None else None,
            stan=stan,
            # A merchant's own payments go out under its id; the self-service line uses ours.
            terminal_id=self._terminal_id,
            merchant_id=_merchant_field(payment.merchant_id, self._merchant_id),
        )
        await self._store.prepare_authorization(payment.id, **SentPurchase.of(request).payment_fields())
        try:
            response = await self._acquirer.authorize(request)
        except AcquirerError as exc:
            return await self._unanswered(payment, exc)
        code = ResponseCode(response.response_code)
        reason = f"{code.value} {code.description}"
        log.info("payment %s: acquirer answered %s (stan %s, rrn %s)", payment.id, code.value, stan,
                 response.rrn)
        if code is RC.APPROVED:
            if self._on_approved is not None and payment.mobile:
                await self._on_approved(pan, payment.mobile)
            return Outcome(PaymentState.APPROVED, "approved", reason, code.value, response.rrn,
                           response.auth_code or "")
        if code in _SYSTEM_FAILURES:
            return Outcome(PaymentState.FAILED, "issuer_unavailable", reason, code.value, response.rrn)
        prompt = "incorrect_pin" if code is RC.INCORRECT_PIN else _DECLINES.get(code, "declined_generic")
        return Outcome(PaymentState.DECLINED, prompt, reason, code.value, response.rrn)

    async def _unanswered(self, payment: Payment, exc: AcquirerError) -> Outcome:
        """No usable answer: failed if nothing was sent or the reversal was acknowledged;
        otherwise left ``authorizing`` for recovery, and the history says so."""
        prompt = "issuer_unavailable" if isinstance(exc, IssuerTimeout) else "service_unavailable"
        if not exc.sent:
            return Outcome(PaymentState.FAILED, prompt, "acquirer unreachable")
        if isinstance(exc, IssuerTimeout):
            what = "acquirer did not answer in time"
        elif isinstance(exc, AcquirerProtocolError):
            what = "acquirer's answer was unreadable or not for this request"
        else:
            what = "connection to the acquirer lost before its answer"
        log.warning("payment %s: %s", payment.id, exc)
        if exc.reversed:
            return Outcome(PaymentState.FAILED, prompt, f"{what}; the request was reversed")
        reason = f"{what}; the reversal was not acknowledged: left authorizing for recovery to reverse"
        # settle() re-entering "authorizing" records nothing, so the history gets it here.
        await self._store.note(payment.id, reason)
        return Outcome(PaymentState.AUTHORIZING, prompt, reason)
