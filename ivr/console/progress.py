"""A payment's progress as the agent console shows it, derived from its state and history alone.

One line per step, in the order the cardholder meets them:

    waiting → calling → ringing → answered → confirmed          (a callback)
    waiting → answered ("the caller is in the payment IVR") → confirmed   (one-line)
    then one line per field the cardholder keys: ID step-up (when risk asked for it), PIN
    (debit) or expiry and CVV2 (credit) → authorizing → result

A step is ``pending``, ``active``, ``done`` or ``failed``; a field is ``pending``, ``active``
(being keyed), ``entered`` (with how many digits), ``accepted`` or ``rejected``; a field the agent
asked for again counts it (``asked_again``) and is being keyed anew. Everything comes
from the history entries the flows write (``PaymentStore.transition(keyed=...)`` for digit
counts, the dialer's "ringing" notes), so any ivr instance can tell the same story, and nothing
here ever sees a digit that was keyed: only how many.

Pure functions, no I/O: the console's event stream calls ``progress`` once per history entry,
with the history up to that entry, so the page sees every step even when several come at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ivr.hostlink.messages import ResponseCode
from ivr.paying.ask_again import ASK_AGAIN_STATES, fields_asked
from ivr.payments.model import FINAL_STATES, TRANSITIONS, Payment, PaymentMode, PaymentState

__all__ = ["Line", "progress", "FIELD_REJECTED_BY"]

S = PaymentState
# Which field a decline names: that field's line becomes "rejected".
FIELD_REJECTED_BY: dict[str, str] = {
    ResponseCode.INCORRECT_PIN.value: "pin",
    ResponseCode.PIN_TRIES_EXCEEDED.value: "pin",
    ResponseCode.EXPIRED_CARD.value: "expiry",
    ResponseCode.BAD_CVV2.value: "cvv2",
}
# A payment waiting for an operator's risk decision (issue 8's review queue): named by value, so
# the console shows it as soon as the state exists.
RISK_REVIEW = "risk_review"
# The dialer's history reasons start "attempt N ..." (ivr/callback/dialer.py).
_ATTEMPT = re.compile(r"attempt (\d+)")
_RECORDING_EVENTS = ("recording_paused", "recording_resumed", "recording_ended")
_CANCELLABLE = {s.value for s in TRANSITIONS[S.CANCELLED]}


@dataclass
class Line:
    step: str
    status: str = "pending"
    digits: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"step": self.step, "status": self.status}
        if self.digits is not None:
            body["digits"] = self.digits
        if self.detail:
            body["detail"] = self.detail
        return body


def _fields(payment: Payment, history: list[dict[str, str]]) -> list[str]:
    stepped_up = payment.risk_outcome == "step_up" or any(e.get("field") == "id" for e in history)
    keyed = ["id"] if stepped_up else []
    return keyed + (["expiry", "cvv2"] if payment.card_type == "credit" else ["pin"])


def progress(payment: Payment, history: list[dict[str, str]]) -> dict[str, Any]:
    """The console's view of ``payment``: its summary and one line per step (see the module)."""
    oneline = payment.mode is PaymentMode.ONELINE
    fields = _fields(payment, history)
    steps = (["waiting"] + ([] if oneline else ["calling", "ringing"]) + ["answered", "confirmed"]
             + fields + ["authorizing", "result"])
    lines = {step: Line(step) for step in steps}

    def field_keyed_next() -> None:
        """The next field not yet keyed is now being asked for."""
        for name in fields:
            if lines[name].status == "pending":
                lines[name].status = "active"
                return

    for entry in history:
        state, event, keyed = entry.get("state", ""), entry.get("event"), entry.get("field")
        if keyed in lines:
            lines[keyed].status = "entered"
            lines[keyed].digits = int(entry.get("digits", "0"))
        about = lines.get(entry.get("about", ""))
        if about is not None and event == "ask_again_requested":
            about.detail["ask_again_pending"] = True  # acts when the caller's entry ends
        elif about is not None and event == "asked_again":
            # The agent asked for it again: that entry was discarded, the field is asked anew.
            about.detail.pop("ask_again_pending", None)
            about.detail["asked_again"] = about.detail.get("asked_again", 0) + 1
            about.status, about.digits = "active", None
        elif about is not None and event == "ask_again_too_late":
            about.detail.pop("ask_again_pending", None)
            about.detail["ask_again_too_late"] = True
        if "id" in lines and event == "id_check_passed":
            lines["id"].status = "accepted"
            if payment.card_type == "credit":
                field_keyed_next()  # the expiry prompt follows the ID check
        elif "id" in lines and event == "id_check_failed":
            # A wrong answer: that entry was rejected, the question is asked again (or, after the
            # last try, the payment fails and the line stays rejected).
            lines["id"].detail["rejected"] = lines["id"].detail.get("rejected", 0) + 1
            lines["id"].status, lines["id"].digits = "rejected", None
        attempt = _ATTEMPT.match(entry.get("reason", ""))
        if state == S.CREATED:
            lines["waiting"].status = "active"
        elif state == RISK_REVIEW:
            lines["waiting"].status = "active"
            lines["waiting"].detail = {"review": True}
        elif state == S.RISK_PASSED:
            lines["waiting"].status = "done"
        elif state == S.CALLING and not oneline:
            lines["waiting"].status = "done"
            lines["calling"].status = "active"
            if attempt:
                lines["calling"].detail["attempt"] = int(attempt.group(1))
            if event == "ringing":
                lines["ringing"].status = "active"
            elif attempt and ":" in entry.get("reason", ""):
                # "attempt 1: busy": that attempt is over; the next one rings anew.
                lines["ringing"].status = "pending"
                lines["calling"].detail["last_outcome"] = entry["reason"].split(":", 1)[1].strip()
        elif state == S.ANSWERED:
            for step in ("waiting", "calling", "ringing", "answered"):
                if step in lines:
                    lines[step].status = "done"
            lines["confirmed"].status = "active"  # the order is read out, then "1 to pay"
        elif state == S.CONFIRMED and event is None:
            # The transition itself: a note written while confirmed (an ask-again request, an
            # ID check) carries the state too, and asks for no next field.
            lines["confirmed"].status = "done"
            if "id" in lines and lines["id"].status in ("pending", "rejected"):
                lines["id"].status = "active"  # the ID question follows "1 to pay"
            elif payment.card_type == "credit":
                field_keyed_next()  # the expiry prompt follows "1 to pay"
        elif state == S.PIN_ENTRY:
            if lines.get("pin") and lines["pin"].status == "entered":
                # Back to the PIN after an incorrect one: that entry was rejected.
                lines["pin"].detail["rejected"] = lines["pin"].detail.get("rejected", 0) + 1
                lines["pin"].digits = None
                lines["pin"].status = "pending"
            lines["authorizing"].status = "pending"
            field_keyed_next()
        elif state == S.AUTHORIZING:
            lines["authorizing"].status = "active"
        elif state in FINAL_STATES or state == RISK_REVIEW:
            _final(lines, fields, payment, state)
    # As of the last entry given: the event stream sends the story one entry at a time.
    status = history[-1]["state"] if history else payment.status.value
    summary = _summary(payment, status)
    # The agent's call recording, paused by the one-line switch and resumed when the caller
    # leaves the payment IVR (ivr/oneline/): "paused", "resumed", "ended" (with the agent's
    # call, before it could be resumed), or "" (no recording involved).
    summary["recording"] = next((e["event"].removeprefix("recording_") for e in reversed(history)
                                 if e.get("event") in _RECORDING_EVENTS), "")
    # What "ask again" is offered for: a field being keyed or keyed, while nothing has gone to
    # the acquirer (the flow and ivr/paying/ask_again.py have the last word).
    summary["ask_again"] = [name for name in fields_asked(payment)
                            if status in ASK_AGAIN_STATES
                            and lines[name].status in ("active", "entered")]
    return {"payment": summary, "lines": [lines[step].to_json() for step in steps]}


def _final(lines: dict[str, Line], fields: list[str], payment: Payment, state: str) -> None:
    result = lines["result"]
    result.detail = {"state": state}
    if state == S.APPROVED:
        result.status = "done"
        result.detail["rrn"] = payment.rrn
        lines["authorizing"].status = "done"
        for name in fields:
            lines[name].status = "accepted"
        return
    result.status = "failed"
    if payment.response_code:
        code = payment.response_code
        result.detail["response_code"] = code
        try:
            result.detail["reason"] = ResponseCode(code).description
        except ValueError:
            result.detail["reason"] = f"response code {code}"
        if code in FIELD_REJECTED_BY and FIELD_REJECTED_BY[code] in lines:
            lines[FIELD_REJECTED_BY[code]].status = "rejected"
    if state == S.DECLINED or lines["authorizing"].status == "active":
        lines["authorizing"].status = "done"
    if state == S.REFUSED:
        lines["confirmed"].status = "failed"
    if state == S.RISK_DECLINED:
        lines["waiting"].status = "failed"
    # Whatever was under way when the payment ended stopped there.
    for line in lines.values():
        if line.status == "active":
            line.status = "failed"


def _summary(payment: Payment, status: str) -> dict[str, Any]:
    """What the console shows of a payment in ``status``: the card number masked, nothing
    secret."""
    return {
        "id": payment.id,
        "status": status,
        "mode": payment.mode.value if payment.mode else "",
        "oneline_style": payment.oneline_style,  # "talk-through", or "" (the hard switch)
        "amount": payment.amount.yuan,
        "merchant_order_id": payment.merchant_order_id,
        "card": f"{payment.pan_first6}******{payment.pan_last4}" if payment.pan_last4 else "",
        "card_type": payment.card_type,
        "mobile": payment.mobile,
        "cardholder_name": payment.cardholder_name,
        "created_at": payment.created_at,
        "rrn": payment.rrn,
        "final": status in FINAL_STATES,
        "cancellable": status in _CANCELLABLE,
    }
