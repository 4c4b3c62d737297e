"""FlowContext's ask-again checks: asked of Redis only for a payment whose fields an agent can
ask for again (a one-line payment), never while a self-service or callback PIN waits in clear."""

from __future__ import annotations

import pytest

from ivr.paying.context import FlowContext
from ivr.payments.model import Payment


class _Requests:
    """AskAgain's two calls, recorded; the agent has asked for the one field in ``pending``."""

    def __init__(self, pending: str | None) -> None:
        self.pending = pending
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []

    async def taken(self, payment_id: str, fields) -> str | None:
        self.calls.append(("taken", payment_id, tuple(fields)))
        return self.pending if self.pending in fields else None

    async def close(self, payment_id: str) -> None:
        self.calls.append(("close", payment_id, ()))


def _context(requests: _Requests) -> FlowContext:
    # Only ask_again is used by these two methods; the rest of a call's context plays no part.
    return FlowContext(settings=None, store=None, vault=None, pek=b"", authorizer=None,  # type: ignore[arg-type]
                       manifest=None, ask_again=requests)  # type: ignore[arg-type]


def _payment(mode: str, card_type: str = "debit") -> Payment:
    return Payment.from_record({"id": "pay_1", "status": "pin_entry", "amount_minor": "100",
                                "mode": mode, "card_type": card_type})


@pytest.mark.parametrize("mode", ["selfservice", "callback"])
async def test_a_payment_no_agent_can_ask_again_for_is_not_looked_up(mode: str) -> None:
    requests = _Requests(pending="pin")
    context = _context(requests)
    assert await context.asked_again(_payment(mode), "pin") is None
    await context.close_ask_again(_payment(mode))
    assert requests.calls == []


@pytest.mark.parametrize(("card_type", "fields"), [("debit", ("pin",)),
                                                   ("credit", ("expiry", "cvv2"))])
async def test_a_one_line_payment_takes_the_agents_request(card_type: str,
                                                           fields: tuple[str, ...]) -> None:
    requests = _Requests(pending=fields[-1])
    context = _context(requests)
    payment = _payment("oneline", card_type)
    assert await context.asked_again(payment, *fields) == fields[-1]
    await context.close_ask_again(payment)
    assert requests.calls == [("taken", "pay_1", fields), ("close", "pay_1", ())]


async def test_without_ask_again_nothing_is_asked() -> None:
    context = _context(None)  # type: ignore[arg-type]
    assert await context.asked_again(_payment("oneline"), "pin") is None
    await context.close_ask_again(_payment("oneline"))
