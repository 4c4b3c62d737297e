"""The acquirer and issuer, simulated: authorizes purchases from the issued card book.

It behaves like a host the IVR must be robust against: it verifies the PIN through IBM 3624
offsets, counts wrong PINs, answers retransmissions from a cache instead of charging twice,
honours reversals, even of a purchase it is still "waiting for the issuer" on, and writes every
message it handles to an append-only JSON-lines journal that tests and people can read.

Money goes back by voids (0200/200000: the full amount, once, before any refund), refunds
(0220/200000: parts of it, never more than is left) and reversals of either (0400/200000), each
naming its original purchase by STAN, transmission time and RRN (ivr/hostlink/adjustments.py).
What the original does not allow is refused: 25 original unknown (or not this merchant's, or
another RRN), 12 original declined, reversed or already voided (or a void after a refund), 13 an
amount other than the purchase's for a void, or more than is left for a refund.

How a card is authorized depends on its type (from the BIN table, recorded in the card book):

* debit: online PIN (field 52) is required; without one the purchase is 12. Field 14, if sent,
  must match the card's expiry (54). A CVV2 block, if sent, is ignored.
* credit (card not present): expiry (field 14, YYMM) and CVV2 (field 48, sealed under the CVV
  key) are both required, else 12. A wrong expiry is 54; a CVV2 other than the one recomputed
  under the CVK (Visa/Mastercard CVV method, service code 000, YYMM expiry) is 82. Wrong CVV2s
  are not counted and never block the card in this simulator (a real issuer would limit them).
  A PIN block on a credit purchase is ignored: card-not-present credit is not PIN-verified here.
  A CVV2 block that does not open (wrong key, PAN or STAN) is 96, not the cardholder's mistake.

The CVV2 is decrypted, compared in constant time and dropped: it is never journaled, logged or
kept. Card state lives in memory and starts again from the card book at each start.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import iso8583
from cryptography.utils import CryptographyDeprecationWarning
from psec import cvv as _psec_cvv

from simulators.acquirer.cardbook import CardBook, IssuedCard, verify_pin
from ivr.crypto.cvv2 import Cvv2Error, decrypt_cvv2
from ivr.crypto.keyring import KeyUnavailable
from ivr.crypto.keys import DEV_CVK, AcquirerKeys
from ivr.crypto.pan_vault import mask_pan
from ivr.crypto.pinblock import PinBlockError, decipher_pinblock_iso_4
from ivr.hostlink.messages import (
    CNY,
    PURCHASE,
    EchoRequest,
    EchoResponse,
    Iso8583Error,
    Message,
    PurchaseRequest,
    PurchaseResponse,
    ResponseCode,
    ReversalRequest,
    ReversalResponse,
    peek_mti,
)
from ivr.hostlink.adjustments import (AdjustmentRequest, AdjustmentReversal, RefundRequest,
                                      RefundResponse, VoidRequest, adjustment_type)
from ivr.hostlink.spec import VOICEPAY_SPEC
from ivr.validation import luhn_valid

__all__ = ["AcquirerSimulator", "MAX_PIN_TRIES", "CVV2_SERVICE_CODE", "compute_cvv2"]

log = logging.getLogger("simulators.acquirer")

MAX_PIN_TRIES = 3
# The service code the CVV method takes for a CVV2 (one printed on the card, not on the stripe).
CVV2_SERVICE_CODE = "000"
BLOCKED = "pin_tries_exceeded"
RESTRICTED = "restricted"

Key = tuple[str, str, str]


@dataclass
class _Account:
    card: IssuedCard
    balance: int
    status: str
    pin_tries: int = 0


@dataclass
class _Purchase:
    """A purchase the simulator has seen, so a reversal can find and undo it."""

    pan: str = field(repr=False)
    amount: int
    rrn: str
    merchant_id: str = ""
    charged: bool = False
    reversed: bool = False
    approved: bool = False
    voided: bool = False
    refunded: int = 0  # fen given back by refunds so far


@dataclass
class _Adjustment:
    """A void or refund the simulator has seen, so its reversal can find and undo it."""

    mti: str
    purchase: _Purchase | None
    amount: int
    rrn: str
    applied: bool = False
    reversed: bool = False


@dataclass
class _Reply:
    """The answer to one message, kept so a retransmission gets the same answer."""

    fingerprint: bytes
    answer: asyncio.Future[bytes | None]


class AcquirerSimulator:
    def __init__(
        self,
        keys: AcquirerKeys | Callable[[], AcquirerKeys],
        cardbook: CardBook,
        journal_path: Path,
        issuer_delay: float,
        *,
        today: Callable[[], date] = date.today,
    ) -> None:
        held = keys() if callable(keys) else keys
        cardbook.check_pvk(held.pvk)
        if held.cvk != DEV_CVK:
            log.warning("the CVK is not the development CVK: the documented test CVV2s will get 82")
        # A watched key file (ivr.crypto.keyring.KeyFileWatch): a rotation applies to the next
        # message, without a restart.
        self._keys = keys if callable(keys) else (lambda: keys)
        self._accounts = {card.pan: _Account(card, card.balance, card.status) for card in cardbook}
        self._journal_path = Path(journal_path)
        self._issuer_delay = issuer_delay
        self._today = today
        self._purchases: dict[Key, _Purchase] = {}
        # Reversals that arrived before their purchase: that purchase must never be charged.
        self._reversed_early: set[Key] = set()
        self._adjustments: dict[Key, _Adjustment] = {}
        self._adjustments_reversed_early: set[Key] = set()
        # Kept for the life of the process: a simulator's traffic is small.
        self._replies: dict[tuple[str, str, str, str], _Reply] = {}
        self._rrn_serial = secrets.randbelow(900_000)

    def __repr__(self) -> str:
        return f"AcquirerSimulator(cards={len(self._accounts)}, journal={str(self._journal_path)!r})"

    # --- inspection, for tests and the operator -------------------------------------------

    def balance(self, pan: str) -> int:
        return self._accounts[pan].balance

    def card_status(self, pan: str) -> str:
        return self._accounts[pan].status

    # --- message handling -----------------------------------------------------------------

    async def handle(self, raw: bytes) -> bytes | None:
        """The encoded answer to one message, or None when there is nothing to answer."""
        mti = peek_mti(raw)
        adjustment = adjustment_type(raw)
        if adjustment is not None:
            reply_mti, process = self._adjustment_handlers[adjustment]
            return await self._once(raw, adjustment, reply_mti, process)
        if mti == PurchaseRequest.MTI:
            return await self._once(raw, PurchaseRequest, PurchaseResponse.MTI, self._purchase)
        if mti == ReversalRequest.MTI:
            return await self._once(raw, ReversalRequest, ReversalResponse.MTI, self._reversal)
        if mti == EchoRequest.MTI:
            return self._echo(raw)
        self._journal(mti=mti or "????", response_code=None, note="unsupported message type")
        return None

    async def _once(
        self,
        raw: bytes,
        kind: type[PurchaseRequest] | type[ReversalRequest] | type[AdjustmentRequest],
        reply_mti: str,
        process: Callable[[Any], Any],
    ) -> bytes | None:
        """Process a request once per (MTI, terminal, STAN, transmission time); replay after."""
        try:
            request = kind.decode(raw)
        except Iso8583Error:
            return self._format_error(raw, reply_mti)
        key = (kind.MTI, *request.key)
        # Identical bytes are a retransmission; the same key with other content is a clash (94).
        fingerprint = hashlib.sha256(raw).digest()
        known = self._replies.get(key)
        if known is not None:
            if known.fingerprint != fingerprint:
                return self._duplicate_clash(request)
            answer = await asyncio.shield(known.answer)
            self._journal_duplicate(request, answer)
            return answer

        reply = _Reply(fingerprint, asyncio.get_running_loop().create_future())
        self._replies[key] = reply
        try:
            answer = await process(request)
        except asyncio.CancelledError:
            del self._replies[key]
            reply.answer.cancel()
            raise
        except Exception as exc:
            # A bug here must still produce an answer; the type alone is safe to log.
            log.error("acquirer failed on %s stan=%s: %s", kind.MTI, request.stan, type(exc).__name__)
            answer = self._malfunction(request)
        reply.answer.set_result(answer)
        return answer

    def _journal_duplicate(self, request: PurchaseRequest | ReversalRequest | AdjustmentRequest,
                           answer: bytes | None) -> None:
        code = _code_of(answer)
        if isinstance(request, AdjustmentRequest):
            adjustment = self._adjustments.get(request.key)
            self._journal_request(request, code, rrn=adjustment.rrn if adjustment else None,
                                  duplicate=True)
            return
        if isinstance(request, PurchaseRequest):
            purchase = self._purchases.get(request.key)
            was_reversed = purchase is not None and purchase.reversed
        else:
            purchase = self._purchases.get(request.original_key)
            was_reversed = code is ResponseCode.APPROVED
        rrn = purchase.rrn if purchase is not None else None
        self._journal_request(request, code, rrn=rrn, duplicate=True, reversed=was_reversed)

    async def _purchase(self, request: PurchaseRequest) -> bytes:
        purchase = _Purchase(request.pan, request.amount, rrn=self._next_rrn(),
                             merchant_id=request.merchant_id)
        purchase.reversed = request.key in self._reversed_early
        self._purchases[request.key] = purchase
        account = self._accounts.get(request.pan)
        if account is not None and account.card.behaviour == "issuer_timeout":
            await asyncio.sleep(self._issuer_delay)

        # No await from here on: the decision and the debit happen atomically.
        code = self._decide(request, account, purchase)
        auth_code = f"{secrets.randbelow(1_000_000):06d}" if code.approved else None
        response = PurchaseResponse.for_request(request, code, purchase.rrn, auth_code)
        self._journal_request(request, code, rrn=purchase.rrn, reversed=purchase.reversed)
        return response.encode()

    def _decide(self, request: PurchaseRequest, account: _Account | None, purchase: _Purchase) -> ResponseCode:
        if purchase.reversed:
            # Reversed while the issuer was silent: nothing was authorised, and a terminal still
            # listening must not take this for an approval.
            return ResponseCode.ISSUER_UNAVAILABLE
        if request.processing_code != PURCHASE or request.currency != CNY:
            return ResponseCode.INVALID_TRANSACTION
        if request.amount <= 0:
            return ResponseCode.INVALID_AMOUNT
        if account is None or not luhn_valid(request.pan):
            return ResponseCode.INVALID_CARD_NUMBER
        card = account.card
        if card.behaviour == "issuer_down":
            return ResponseCode.ISSUER_UNAVAILABLE
        if account.status == BLOCKED:
            return ResponseCode.PIN_TRIES_EXCEEDED
        if account.status == RESTRICTED:
            return ResponseCode.RESTRICTED_CARD
        code = self._verify_credit(request, card) if card.is_credit else self._verify_pin(request, account)
        if code is not None:
            return code
        if card.behaviour == "do_not_honour":
            return ResponseCode.DO_NOT_HONOUR
        if self._expired(card.expiry) or (request.expiry is not None and request.expiry != card.expiry):
            return ResponseCode.EXPIRED_CARD
        if request.amount > card.limit:
            return ResponseCode.EXCEEDS_AMOUNT_LIMIT
        if request.amount > account.balance:
            return ResponseCode.INSUFFICIENT_FUNDS
        account.balance -= request.amount
        purchase.charged = purchase.approved = True
        return ResponseCode.APPROVED

    def _verify_pin(self, request: PurchaseRequest, account: _Account) -> ResponseCode | None:
        """Debit: the PIN block must hold the card's PIN. None if it does."""
        if request.pin_block is None:
            return ResponseCode.INVALID_TRANSACTION
        keys = self._keys()
        try:
            pek = _key_named(keys, "pek", request.pin_key_id)
            pin = decipher_pinblock_iso_4(pek, request.pin_block, request.pan)
        except KeyUnavailable as exc:
            log.warning("stan %s: PIN block under %s", request.stan, exc)
            return ResponseCode.SYSTEM_MALFUNCTION
        except PinBlockError:
            # Garbage and a block under the wrong key look alike; neither is the cardholder's
            # mistake, so it does not count as a PIN try.
            return ResponseCode.SYSTEM_MALFUNCTION
        if not verify_pin(account.card, pin, keys.pvk):
            account.pin_tries += 1
            if account.pin_tries >= MAX_PIN_TRIES:
                account.status = BLOCKED
            return ResponseCode.INCORRECT_PIN
        account.pin_tries = 0
        return None

    def _verify_credit(self, request: PurchaseRequest, card: IssuedCard) -> ResponseCode | None:
        """Credit, card not present: expiry and CVV2 must both be the card's. None if they are."""
        if request.expiry is None or request.cvv2_block is None:
            return ResponseCode.INVALID_TRANSACTION
        keys = self._keys()
        try:
            cvv_key = _key_named(keys, "cvv_key", request.cvv_key_id)
            keyed = decrypt_cvv2(cvv_key, request.cvv2_block, request.pan, request.stan)
        except KeyUnavailable as exc:
            log.warning("stan %s: CVV2 block under %s", request.stan, exc)
            return ResponseCode.SYSTEM_MALFUNCTION
        except Cvv2Error:
            return ResponseCode.SYSTEM_MALFUNCTION
        if request.expiry != card.expiry:
            return ResponseCode.EXPIRED_CARD
        expected = compute_cvv2(keys.cvk, card.pan, card.expiry)
        if not hmac.compare_digest(expected.encode("ascii"), keyed.encode("ascii")):
            # Not counted: this simulator never blocks a card for wrong CVV2s.
            return ResponseCode.BAD_CVV2
        return None

    def _expired(self, expiry: str) -> bool:
        # A card is good until the end of its expiry month.
        today = self._today()
        return (2000 + int(expiry[:2]), int(expiry[2:])) < (today.year, today.month)

    async def _reversal(self, request: ReversalRequest) -> bytes:
        purchase = self._purchases.get(request.original_key)
        if request.original_mti != PurchaseRequest.MTI or purchase is None:
            self._reversed_early.add(request.original_key)
            code = ResponseCode.ORIGINAL_NOT_FOUND
        elif (purchase.pan, purchase.amount) != (request.pan, request.amount):
            code = ResponseCode.ORIGINAL_NOT_FOUND
        else:
            if not purchase.reversed:
                purchase.reversed = True
                if purchase.charged:
                    # What refunds already gave back is not given twice.
                    self._accounts[purchase.pan].balance += purchase.amount - purchase.refunded
                    purchase.charged = False
            code = ResponseCode.APPROVED
        rrn = purchase.rrn if purchase is not None else None
        self._journal_request(request, code, rrn=rrn, reversed=code.approved)
        return ReversalResponse.for_request(request, code).encode()

    # --- voids, refunds and their reversals ---------------------------------------------------

    @property
    def _adjustment_handlers(self) -> dict[type[AdjustmentRequest], tuple[str, Callable[[Any], Any]]]:
        return {VoidRequest: (PurchaseResponse.MTI, self._give_back),
                RefundRequest: (RefundResponse.MTI, self._give_back),
                AdjustmentReversal: (ReversalResponse.MTI, self._adjustment_reversal)}

    async def _give_back(self, request: VoidRequest | RefundRequest) -> bytes:
        """A void or a refund: checked against its original, applied to the card at once."""
        purchase = self._purchases.get(request.original_key)
        adjustment = _Adjustment(request.MTI, purchase, request.amount, rrn=self._next_rrn())
        self._adjustments[request.key] = adjustment
        code = self._give_back_refusal(request, purchase)
        if code is None:
            assert purchase is not None
            if isinstance(request, VoidRequest):
                purchase.voided, purchase.charged = True, False
            else:
                purchase.refunded += request.amount
            self._accounts[purchase.pan].balance += request.amount
            adjustment.applied = True
            code = ResponseCode.APPROVED
        self._journal_request(request, code, rrn=adjustment.rrn)
        return _answer(request, code, adjustment.rrn).encode()

    def _give_back_refusal(self, request: VoidRequest | RefundRequest,
                           purchase: _Purchase | None) -> ResponseCode | None:
        """Why the original does not allow ``request``; None if it does."""
        if request.key in self._adjustments_reversed_early:
            return ResponseCode.ISSUER_UNAVAILABLE  # reversed before it arrived: never applied
        if request.currency != CNY:
            return ResponseCode.INVALID_TRANSACTION
        if (request.original_mti != PurchaseRequest.MTI or purchase is None
                or purchase.rrn != request.original_rrn or purchase.merchant_id != request.merchant_id):
            return ResponseCode.ORIGINAL_NOT_FOUND
        if not purchase.approved or purchase.reversed or purchase.voided:
            return ResponseCode.INVALID_TRANSACTION
        if isinstance(request, VoidRequest):
            if purchase.refunded:
                return ResponseCode.INVALID_TRANSACTION  # part of it is refunded: refund the rest
            if request.amount != purchase.amount:
                return ResponseCode.INVALID_AMOUNT
        elif not 0 < request.amount <= purchase.amount - purchase.refunded:
            return ResponseCode.INVALID_AMOUNT
        return None

    async def _adjustment_reversal(self, request: AdjustmentReversal) -> bytes:
        """Undo a void or refund whose answer was lost; 25 if it never arrived (then it never will
        be applied)."""
        adjustment = self._adjustments.get(request.original_key)
        if adjustment is None or adjustment.mti != request.original_mti:
            self._adjustments_reversed_early.add(request.original_key)
            code = ResponseCode.ORIGINAL_NOT_FOUND
        elif adjustment.amount != request.amount:
            code = ResponseCode.ORIGINAL_NOT_FOUND
        else:
            purchase = adjustment.purchase
            if adjustment.applied and not adjustment.reversed and purchase is not None:
                if adjustment.mti == VoidRequest.MTI:
                    purchase.voided, purchase.charged = False, True
                else:
                    purchase.refunded -= adjustment.amount
                self._accounts[purchase.pan].balance -= adjustment.amount
            adjustment.reversed = True
            code = ResponseCode.APPROVED
        self._journal_request(request, code, reversed=code.approved)
        return _answer(request, code, "").encode()

    def _echo(self, raw: bytes) -> bytes | None:
        try:
            request = EchoRequest.decode(raw)
        except Iso8583Error:
            return self._format_error(raw, EchoResponse.MTI)
        self._journal(mti=request.MTI, stan=request.stan, response_code=ResponseCode.APPROVED.value)
        return EchoResponse(request.stan, request.transmission, ResponseCode.APPROVED).encode()

    # --- answers to bad input ---------------------------------------------------------------

    def _duplicate_clash(self, request: PurchaseRequest | ReversalRequest | AdjustmentRequest) -> bytes:
        code = ResponseCode.DUPLICATE
        self._journal_request(request, code, duplicate=True)
        return _answer(request, code, self._next_rrn()).encode()

    def _malfunction(self, request: PurchaseRequest | ReversalRequest | AdjustmentRequest) -> bytes:
        code = ResponseCode.SYSTEM_MALFUNCTION
        self._journal_request(request, code)
        return _answer(request, code, self._next_rrn()).encode()

    def _format_error(self, raw: bytes, reply_mti: str) -> bytes | None:
        """Answer 30 if the message at least says who sent it; otherwise there is no one to tell."""
        code = ResponseCode.FORMAT_ERROR
        try:
            fields, _ = iso8583.decode(bytes(raw), VOICEPAY_SPEC)
        except (iso8583.DecodeError, TypeError, ValueError):
            fields = {}
        common = {
            "transmission": fields.get("7", ""),
            "stan": fields.get("11", ""),
        }
        card = {
            **common,
            "processing_code": fields.get("3", PURCHASE),
            "amount": int(fields["4"]) if fields.get("4", "").isdigit() else 0,
            "terminal_id": fields.get("41", ""),
            "merchant_id": fields.get("42", ""),
        }
        reply: Message | None
        try:
            if reply_mti == PurchaseResponse.MTI:
                reply = PurchaseResponse(**card, rrn=self._next_rrn(), response_code=code)
            elif reply_mti == RefundResponse.MTI:
                reply = RefundResponse(**card, rrn=self._next_rrn(), response_code=code)
            elif reply_mti == ReversalResponse.MTI:
                reply = ReversalResponse(**card, response_code=code)
            else:
                reply = EchoResponse(**common, response_code=code)
        except Iso8583Error:
            reply = None
        self._journal(
            mti=peek_mti(raw) or "????",
            stan=_printable(fields.get("11")),
            terminal=_printable(fields.get("41")),
            pan=mask_pan(fields.get("2", "")) if "2" in fields else None,
            response_code=code.value if reply is not None else None,
            note="format error",
        )
        return reply.encode() if reply is not None else None

    # --- journal ----------------------------------------------------------------------------

    def _journal_request(
        self,
        request: PurchaseRequest | ReversalRequest | AdjustmentRequest,
        code: ResponseCode | None,
        *,
        rrn: str | None = None,
        duplicate: bool = False,
        reversed: bool = False,
    ) -> None:
        extra: dict[str, Any] = {}
        if isinstance(request, AdjustmentRequest):
            # No card in a void or refund: the card is the original purchase's.
            pan = self._original_pan(request)
            extra = {"processing_code": request.processing_code,
                     "original_mti": request.original_mti, "original_stan": request.original_stan,
                     "original_rrn": request.original_rrn}
        else:
            pan = request.pan
        account = self._accounts.get(pan) if pan else None
        self._journal(
            mti=request.MTI,
            stan=request.stan,
            terminal=request.terminal_id,
            pan=mask_pan(pan) if pan else None,
            amount=request.amount,
            response_code=code.value if code is not None else None,
            rrn=rrn,
            duplicate=duplicate,
            reversed=reversed,
            balance_after=account.balance if account is not None else None,
            # Which PEK version the PIN block was made under (field 53): a rotation is visible.
            # (Not the CVV key's: the journal never names anything CVV, see test_acquirer_tcp.)
            **({"pin_key_id": request.pin_key_id} if isinstance(request, PurchaseRequest) else {}),
            **extra,
        )

    def _original_pan(self, request: AdjustmentRequest) -> str | None:
        purchase = self._purchases.get(request.original_key)
        if isinstance(request, AdjustmentReversal):
            adjustment = self._adjustments.get(request.original_key)
            purchase = adjustment.purchase if adjustment is not None else None
        return purchase.pan if purchase is not None else None

    def _journal(self, **entry: Any) -> None:
        """One JSON line per message handled, and one log line. Callers pass masked PANs only."""
        line = {
            # Microseconds: a 3-digit millisecond field could read like a CVV2 to a leak scan.
            "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "mti": entry.pop("mti"),
            "stan": entry.pop("stan", None),
            "terminal": entry.pop("terminal", None),
            "pan": entry.pop("pan", None),
            "amount": entry.pop("amount", None),
            "response_code": entry.pop("response_code", None),
            "rrn": entry.pop("rrn", None),
            "duplicate": entry.pop("duplicate", False),
            "reversed": entry.pop("reversed", False),
            "balance_after": entry.pop("balance_after", None),
            **entry,
        }
        self._journal_path.parent.mkdir(parents=True, exist_ok=True)
        with self._journal_path.open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(line) + "\n")
        log.info(
            "acquirer mti=%s stan=%s terminal=%s pan=%s amount=%s rc=%s duplicate=%s reversed=%s",
            line["mti"],
            line["stan"],
            line["terminal"],
            line["pan"],
            line["amount"],
            line["response_code"],
            line["duplicate"],
            line["reversed"],
        )

    def _next_rrn(self) -> str:
        # YDDDhh + serial: unique within a run and readable as a date.
        now = datetime.now(timezone.utc)
        self._rrn_serial = (self._rrn_serial + 1) % 1_000_000
        return f"{now:%y}"[-1] + f"{now.timetuple().tm_yday:03d}{now:%H}{self._rrn_serial:06d}"


def compute_cvv2(cvk: bytes, pan: str, expiry: str) -> str:
    """The CVV2 of a card: the Visa/Mastercard CVV of ``pan`` and ``expiry`` (YYMM) under the CVK,
    with service code 000, as the issuer computed it to print on the card."""
    # psec 1.3 still reaches TripleDES at its deprecated import path and warns on every call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return _psec_cvv.generate_cvv(cvk, pan, expiry, CVV2_SERVICE_CODE)


def _answer(request: PurchaseRequest | ReversalRequest | AdjustmentRequest, code: ResponseCode,
            rrn: str) -> Message:
    """The answer to ``request`` with ``code``: 0210, 0230 or 0410 (a reversal's has no RRN)."""
    if isinstance(request, (ReversalRequest, AdjustmentReversal)):
        return ReversalResponse.for_request(request, code)  # type: ignore[arg-type]
    if isinstance(request, RefundRequest):
        return RefundResponse.for_request(request, code, rrn)  # type: ignore[arg-type]
    return PurchaseResponse.for_request(request, code, rrn)  # type: ignore[arg-type]


def _code_of(answer: bytes | None) -> ResponseCode | None:
    if answer is None:
        return None
    try:
        fields, _ = iso8583.decode(answer, VOICEPAY_SPEC)
        return ResponseCode(fields["39"])
    except (iso8583.DecodeError, KeyError, ValueError):
        return None


def _printable(value: object) -> str | None:
    """A field from a malformed message, fit for the journal: short, printable, else dropped."""
    if isinstance(value, str) and len(value) <= 15 and value.isascii() and value.isprintable():
        return value
    return None


def _key_named(keys: AcquirerKeys, role: str, key_id: int | None) -> bytes:
    """The version of ``role`` a request names in field 53 (while an old and a new key overlap,
    both are read), or the current one if it names none. KeyUnavailable if retired or unknown."""
    ring = keys.ring(role)
    return ring.key(key_id) if key_id is not None else ring.key(ring.current.id)
