"""The self-service phone top-up line, top to bottom as the caller hears it.

    greeting, with the other languages offered → mobile number to top up → amount menu
    → card number → risk → PIN → "please wait" → result (with the reference number) → goodbye

The line speaks the channel's language (Mandarin unless the dialplan says otherwise); after the
greeting each other language is offered in its own words ("For English, press 9", "廣東話請按8",
"普通话请按7"), and its key, during the offers or shortly after, switches the whole call. A caller
who knows the line and starts keying the mobile number during the last offer or the wait after
it is not asked for it: that first digit (a mainland mobile number begins with 1, and no
language key is 1) begins the answer.

Risk: only ``approve`` goes on to the PIN. The line knows no ID number to step up with and the
caller cannot wait for an operator's review, so ``step_up`` and ``review`` are declined like
``decline`` (``risk_declined``): the caller hears that the payment cannot be taken and that
nothing was charged.

The payment exists from the moment the order is complete (mobile, amount, card). A caller who
hangs up before the PIN block exists leaves it ``abandoned``; nothing reaches the acquirer.
"""

from __future__ import annotations

import logging

from ivr import dialplan_variables as dv
from ivr.agi.channel import AgiChannel, AgiHangup
from ivr.crypto.pan_vault import mask_pan
from ivr.merchants import Merchant, MerchantStatus
from ivr.money import Money
from ivr.orders import Order
from ivr.paying.context import FlowContext
from ivr.paying.keypad import TooManyAttempts
from ivr.paying.pin_entry import abandon, announce, collect_pin_and_authorize
from ivr.payments.model import Payment, PaymentMode, new_payment_id
from ivr.payments.store import PaymentState
from ivr.prompts import Prompts
from ivr.risk.decision import RiskOutcome, RiskRequest
from ivr.risk.gate import GENERIC_DECLINE
from ivr.validation import check_card_number, check_mainland_mobile

__all__ = ["selfservice", "lines_busy", "TOPUP_AMOUNTS_MINOR", "LANGUAGE_KEYS",
           "LANGUAGE_CHOICE_MS"]

log = logging.getLogger(__name__)

# Menu key -> amount in fen. The amount_menu prompt in sounds/manifest.toml reads these out.
TOPUP_AMOUNTS_MINOR = {"1": 5000, "2": 10000, "3": 20000}
# The key that switches to each language; each language_offer prompt says its own.
LANGUAGE_KEYS = {"7": "zh", "8": "yue", "9": "en"}
# How long the last offer waits for a key: short, as most callers keep the line's language.
LANGUAGE_CHOICE_MS = 2000


async def selfservice(call: AgiChannel, ctx: FlowContext) -> None:
    await call.set_digit_timeout(ctx.settings.inter_digit_timeout_ms)
    log.info("call %s: self-service top-up from %s", call.uniqueid, call.channel_name)
    prompts, typed_ahead = await _welcome(call, ctx, ctx.prompts(_language(call, ctx)))
    keypad = ctx.keypad(call, prompts)
    try:
        topup_number = await keypad.digits("enter_mobile", max_digits=11,
                                           check=check_mainland_mobile, invalid="invalid_mobile",
                                           begun_with=typed_ahead)
        amount_minor = await keypad.choice("amount_menu", TOPUP_AMOUNTS_MINOR)
        # Room for 19 digits and the #: with max_digits=19 a 19-digit card's # would be read as
        # the (empty) answer to the PIN prompt.
        pan = await keypad.digits("enter_card", max_digits=20, check=check_card_number,
                                  invalid="invalid_card")
    except TooManyAttempts as exc:
        log.info("call %s: no valid entry at %s, ending the call", call.uniqueid, exc.step)
        await call.stream(prompts["goodbye"])
        return

    payment_id = new_payment_id()
    masked = mask_pan(pan)
    payment = await ctx.store.create(
        {
            "mode": PaymentMode.SELFSERVICE.value,
            "amount_minor": amount_minor,
            "currency": "CNY",
            "description": "Mobile top-up",
            "topup_number": topup_number,
            "pan_first6": masked[:6],
            "pan_last4": masked[-4:],
            "merchant_id": ctx.settings.merchant_id,
            "terminal_id": ctx.settings.terminal_id,
            "call_id": call.uniqueid,
            "language": prompts.language,
        },
        payment_id=payment_id,
        pan_token=ctx.vault.encrypt(pan, payment_id),
        reason="self-service order keyed",
    )
    await call.set_variable(dv.PAYMENT_ID, payment.id)
    log.info("call %s payment %s: created, card %s, amount %d fen", call.uniqueid, payment.id,
             masked, amount_minor)
    if not await _risk_approved(call, ctx, payment, pan):
        await call.stream(prompts["declined_risk"])
        await call.stream(prompts["goodbye"])
        await call.hangup()
        return

    try:
        outcome = await collect_pin_and_authorize(call, ctx, keypad, prompts, payment, pan)
    except TooManyAttempts:
        await abandon(ctx, payment, call, "no valid PIN entered")
        await call.stream(prompts["goodbye"])
        return
    except AgiHangup:
        await abandon(ctx, payment, call, "caller hung up")
        raise
    await announce(call, prompts, outcome)
    await call.stream(prompts["goodbye"])
    await call.hangup()


async def lines_busy(call: AgiChannel, ctx: FlowContext) -> None:
    """The line's answer when the ivr service already runs all the calls it may
    (VOICEPAY_AGI_MAX_SESSIONS, ivr/agi/server.py): "all lines are busy, please call again
    later" in the call's language, then the call is hung up. Nothing is asked or stored."""
    await call.stream(ctx.prompts(_language(call, ctx))["lines_busy"])
    await call.hangup()


async def _welcome(call: AgiChannel, ctx: FlowContext, prompts: Prompts) -> tuple[Prompts, str]:
    """The greeting, then the other languages offered; the prompts of the language chosen, and
    a digit keyed during the last offer or the wait after it that is no language key: the
    mobile number's first, typed ahead ("" if none). Any other key is not kept."""
    offered = {key: language for key, language in LANGUAGE_KEYS.items()
               if language != prompts.language and language in ctx.manifest.texts}
    offers = [ctx.prompts(language)["language_offer"] for language in offered.values()]
    keys = "".join(offered)
    key = await call.stream(prompts["topup_welcome"], keys)
    for offer in offers[:-1]:
        key = key or await call.stream(offer, keys)
    if not key and offers:
        key = (await call.ask([offers[-1]], LANGUAGE_CHOICE_MS, 1)).decode("ascii")
    if key not in offered:
        # A language key of the line's own language (7 on a Mandarin line) is the caller
        # choosing it: no mobile number begins with one.
        return prompts, key if key.isdigit() and key not in LANGUAGE_KEYS else ""
    log.info("call %s: caller chose %s", call.uniqueid, offered[key])
    return ctx.prompts(offered[key]), ""


def _topup_merchant(ctx: FlowContext) -> Merchant:
    """The top-up line as the merchant risk sees: the platform's own terminal, telecoms."""
    return Merchant(id=ctx.settings.merchant_id, name_en="Mobile top-up", name_zh="话费充值",
                    mcc="4814", status=MerchantStatus.ACTIVE,
                    max_amount=Money(max(TOPUP_AMOUNTS_MINOR.values())))


async def _risk_approved(call: AgiChannel, ctx: FlowContext, payment: Payment, pan: str) -> bool:
    if ctx.risk is None or ctx.bins is None:
        raise RuntimeError("no risk engine: the service sets one in the flow context")
    order = Order(merchant_order_id=payment.id, amount=payment.amount,
                  description=payment.description, card_number=pan, cardholder_name="",
                  id_number="", mobile=payment.topup_number, mode="selfservice",
                  language=payment.language)
    request = RiskRequest(payment.id, "selfservice", _topup_merchant(ctx), order,
                          ctx.bins.card(pan), source=call.headers.get("agi_callerid", ""))
    decision = await ctx.risk.assess(request)
    if decision.outcome is RiskOutcome.APPROVE:
        # No state or history entry of its own: the payment goes from created to pin_entry as
        # before; the decision is on the payment (risk_decision) for the operator.
        await ctx.store.update(payment.id, **ctx.risk.fields(decision, request))
        return True
    why = ctx.risk.history(decision, GENERIC_DECLINE)
    if decision.outcome is not RiskOutcome.DECLINE:
        why += ": the top-up line cannot step up or wait for review"
    await ctx.store.transition(payment.id, PaymentState.RISK_DECLINED, reason=why,
                               **ctx.risk.fields(decision, request,
                                                 merchant_reason=GENERIC_DECLINE))
    log.info("call %s payment %s: declined by risk control", call.uniqueid, payment.id)
    return False


def _language(call: AgiChannel, ctx: FlowContext) -> str:
    language = call.headers.get("agi_language", "")
    return language if language in ctx.manifest.texts else ctx.settings.language
