"""The console's progress lines, derived from a payment's state and history (ivr/console/progress.py)."""

from __future__ import annotations

from ivr.console.progress import progress
from ivr.payments.model import Payment


def _payment(status: str, **fields: str) -> Payment:
    record = {"id": "pay_1", "status": status, "amount_minor": "8800", "mode": "callback",
              "card_type": "debit", "pan_first6": "622188", "pan_last4": "0011",
              "merchant_order_id": "ORD-1", **fields}
    return Payment.from_record(record)


def _entry(state: str, reason: str = "", **extra: str) -> dict[str, str]:
    return {"state": state, "at": "2026-01-01T00:00:00.000Z", "reason": reason, **extra}


def _lines(view) -> dict[str, tuple]:
    return {line["step"]: (line["status"], line.get("digits")) for line in view["lines"]}


CALLED = [_entry("created"), _entry("risk_passed"), _entry("calling", "attempt 1 of 3")]


def test_a_callback_rings_then_waits_for_the_pin() -> None:
    history = [*CALLED, _entry("calling", "ringing (attempt 1)", event="ringing")]
    lines = _lines(progress(_payment("calling"), history))
    assert lines["waiting"] == ("done", None)
    assert lines["calling"] == ("active", None) and lines["ringing"] == ("active", None)
    assert lines["pin"] == ("pending", None) and lines["result"] == ("pending", None)


def test_a_busy_attempt_rings_anew_on_the_next_one() -> None:
    history = [*CALLED, _entry("calling", "ringing (attempt 1)", event="ringing"),
               _entry("calling", "attempt 1: busy"), _entry("calling", "attempt 2 of 3")]
    view = progress(_payment("calling"), history)
    calling = next(line for line in view["lines"] if line["step"] == "calling")
    assert calling["detail"] == {"attempt": 2, "last_outcome": "busy"}
    assert _lines(view)["ringing"] == ("pending", None)


def test_a_debit_payment_approved_shows_the_pin_length_and_the_reference() -> None:
    history = [*CALLED, _entry("answered"), _entry("confirmed"), _entry("pin_entry"),
               _entry("authorizing", "PIN entered", field="pin", digits="6"),
               _entry("approved", "00 Approved")]
    view = progress(_payment("approved", rrn="123456789012", response_code="00"), history)
    lines = _lines(view)
    assert [lines[s][0] for s in ("waiting", "calling", "ringing", "answered", "confirmed")] == \
        ["done"] * 5
    assert lines["pin"] == ("accepted", 6)
    assert lines["authorizing"] == ("done", None)
    result = view["lines"][-1]
    assert result["status"] == "done" and result["detail"]["rrn"] == "123456789012"
    assert view["payment"]["card"] == "622188******0011" and view["payment"]["final"]


def test_while_the_pin_is_keyed_then_entered() -> None:
    keying = [*CALLED, _entry("answered"), _entry("confirmed"), _entry("pin_entry")]
    assert _lines(progress(_payment("pin_entry"), keying))["pin"] == ("active", None)
    entered = [*keying, _entry("authorizing", "", field="pin", digits="6")]
    lines = _lines(progress(_payment("authorizing"), entered))
    assert lines["pin"] == ("entered", 6) and lines["authorizing"] == ("active", None)


def test_an_incorrect_pin_is_rejected_and_asked_again() -> None:
    history = [*CALLED, _entry("answered"), _entry("confirmed"), _entry("pin_entry"),
               _entry("authorizing", "", field="pin", digits="4"),
               _entry("pin_entry", "55 Incorrect PIN")]
    view = progress(_payment("pin_entry", response_code="55"), history)
    pin = next(line for line in view["lines"] if line["step"] == "pin")
    assert pin["status"] == "active" and pin["detail"] == {"rejected": 1}
    assert "digits" not in pin


def test_a_credit_card_declined_for_its_cvv2_rejects_that_field_only() -> None:
    history = [*CALLED, _entry("answered"), _entry("confirmed"),
               _entry("pin_entry", "expiry entered", field="expiry", digits="4"),
               _entry("authorizing", "", field="cvv2", digits="3"),
               _entry("declined", "82 CVV2 verification failed")]
    view = progress(_payment("declined", card_type="credit", response_code="82"), history)
    lines = _lines(view)
    assert "pin" not in lines
    assert lines["expiry"] == ("entered", 4) and lines["cvv2"] == ("rejected", 3)
    result = view["lines"][-1]
    assert result["status"] == "failed"
    assert result["detail"] == {"state": "declined", "response_code": "82",
                                "reason": "CVV2 verification failed"}


def test_the_expiry_is_asked_for_once_the_cardholder_confirms() -> None:
    history = [*CALLED, _entry("answered"), _entry("confirmed")]
    lines = _lines(progress(_payment("confirmed", card_type="credit"), history))
    assert lines["expiry"] == ("active", None) and lines["cvv2"] == ("pending", None)


def test_a_one_line_payment_has_no_calling_steps() -> None:
    history = [_entry("created"), _entry("risk_passed"), _entry("answered")]
    view = progress(_payment("answered", mode="oneline"), history)
    assert [line["step"] for line in view["lines"]] == [
        "waiting", "answered", "confirmed", "pin", "authorizing", "result"]
    assert view["payment"]["cancellable"]


def test_an_id_step_up_gets_its_own_line_before_the_pin() -> None:
    history = [*CALLED, _entry("answered"), _entry("confirmed"),
               _entry("confirmed", "ID digits keyed", field="id", digits="6")]
    steps = [line["step"] for line in progress(_payment("confirmed"), history)["lines"]]
    assert steps.index("id") < steps.index("pin")


def test_an_id_step_up_shows_asked_rejected_then_accepted_never_the_characters() -> None:
    stepped_up = _payment("confirmed", risk_outcome="step_up")
    history = [*CALLED, _entry("answered"), _entry("confirmed")]
    assert _lines(progress(stepped_up, history))["id"] == ("active", None)  # asked after "1"
    history.append(_entry("confirmed", "ID step-up failed (attempt 1 of 3)",
                          event="id_check_failed", field="id", digits="6"))
    view = progress(stepped_up, history)
    assert _lines(view)["id"] == ("rejected", None) and _lines(view)["pin"] == ("pending", None)
    history.append(_entry("confirmed", "ID step-up passed", event="id_check_passed",
                          field="id", digits="6"))
    history.append(_entry("pin_entry"))
    view = progress(_payment("pin_entry", risk_outcome="step_up"), history)
    assert _lines(view)["id"] == ("accepted", 6) and _lines(view)["pin"] == ("active", None)
    assert "310021" not in str(view)


def test_a_hang_up_stops_the_step_under_way() -> None:
    history = [*CALLED, _entry("answered"), _entry("confirmed"), _entry("pin_entry"),
               _entry("abandoned", "cardholder hung up")]
    view = progress(_payment("abandoned"), history)
    lines = _lines(view)
    assert lines["pin"] == ("failed", None)
    assert view["lines"][-1]["detail"] == {"state": "abandoned"}
    assert not view["payment"]["cancellable"]


ONELINE = [_entry("created"), _entry("risk_passed"),
           _entry("risk_passed", "paused", event="recording_paused"), _entry("answered"),
           _entry("confirmed"), _entry("pin_entry")]


def test_the_agents_recording_paused_then_resumed() -> None:
    assert progress(_payment("created", mode="oneline"), ONELINE[:2])["payment"]["recording"] == ""
    assert progress(_payment("pin_entry", mode="oneline"), ONELINE)["payment"]["recording"] == \
        "paused"
    history = [*ONELINE, _entry("authorizing", field="pin", digits="6"), _entry("approved"),
               _entry("approved", "resumed", event="recording_resumed")]
    assert progress(_payment("approved", mode="oneline"), history)["payment"]["recording"] == \
        "resumed"
    ended = [*history[:-1], _entry("approved", "agent gone", event="recording_ended")]
    assert progress(_payment("approved", mode="oneline"), ended)["payment"]["recording"] == "ended"
    # A callback has no agent's recording to speak of.
    assert progress(_payment("calling"), CALLED)["payment"]["recording"] == ""


def test_ask_again_is_offered_for_the_field_being_keyed_until_it_is_sent() -> None:
    payment = _payment("pin_entry", mode="oneline")
    assert progress(payment, ONELINE[:-1])["payment"]["ask_again"] == []  # not asked for yet
    assert progress(payment, ONELINE)["payment"]["ask_again"] == ["pin"]
    requested = [*ONELINE, _entry("pin_entry", "asked", event="ask_again_requested", about="pin")]
    view = progress(payment, requested)
    assert view["lines"][3] == {"step": "pin", "status": "active",
                                "detail": {"ask_again_pending": True}}
    again = [*requested, _entry("pin_entry", "discarded", event="asked_again", about="pin"),
             _entry("authorizing", field="pin", digits="4")]
    view = progress(_payment("authorizing", mode="oneline"), again)
    assert view["lines"][3] == {"step": "pin", "status": "entered", "digits": 4,
                                "detail": {"asked_again": 1}}
    assert view["payment"]["ask_again"] == []  # on its way to the acquirer
    # A callback's cardholder has no agent to ask them again.
    assert progress(_payment("pin_entry"), [*CALLED, _entry("pin_entry")])["payment"][
        "ask_again"] == []


def test_a_talk_through_payment_says_so_with_the_same_field_lines_as_the_hard_switch() -> None:
    """The page names a talk-through payment by its style ("you stay on the line", not "held
    apart"); its field lines and ask-again are exactly the hard switch's."""
    history = [_entry("created"), _entry("risk_passed"), _entry("answered"),
               _entry("confirmed"), _entry("pin_entry")]
    talking = progress(_payment("pin_entry", mode="oneline", oneline_style="talk-through"),
                       history)
    held = progress(_payment("pin_entry", mode="oneline"), history)
    assert talking["payment"]["oneline_style"] == "talk-through"
    assert held["payment"]["oneline_style"] == ""
    assert talking["lines"] == held["lines"]
    assert talking["payment"]["ask_again"] == held["payment"]["ask_again"] == ["pin"]


def test_asking_again_for_the_expiry_while_it_is_keyed_leaves_the_cvv2_pending() -> None:
    """A note written while the payment is confirmed (here the agent's ask-again request for
    the expiry) is no step of the flow: the CVV2 is not asked for yet."""
    history = [_entry("created"), _entry("risk_passed"), _entry("answered"), _entry("confirmed"),
               _entry("confirmed", "ask again requested", event="ask_again_requested",
                      about="expiry")]
    view = progress(_payment("confirmed", mode="oneline", card_type="credit"), history)
    lines = _lines(view)
    assert lines["expiry"] == ("active", None) and lines["cvv2"] == ("pending", None)
    assert view["payment"]["ask_again"] == ["expiry"]
