"""Voids, refunds and their reversals: the merchant API of the real service, a real Redis, and the
real acquirer simulator over TCP (its balances and journal are the acquirer's side of the truth).

A payment is made approved the way the call flows make it: a real purchase at the simulator, then
the payment's states and acquirer references in the store. Lost answers are made by a TCP relay
between the service and the simulator that forwards a request and drops its answer (the
connection cut after the message left), or refuses everything (the acquirer away).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from ivr.api.keys import REFUNDS, STORE
from ivr.api.merchant_auth import signed_headers
from ivr.config import Settings, load_settings
from ivr.crypto.keys import generate_dev_keys, load_ivr_keys
from ivr.crypto.pinblock import pinblock_from_digits
from ivr.hostlink.acquirer_client import AcquirerClient
from ivr.hostlink.adjustments import RefundRequest
from ivr.hostlink.framing import ConnectionClosed, FramingError, read_frame, write_frame
from ivr.hostlink.messages import PurchaseRequest, peek_mti
from ivr.merchants import MerchantRegistry
from ivr.money import Money
from ivr.payments.sent_purchase import SentPurchase
from ivr.payments.store import PaymentState
from ivr.refunds.model import (RefundKind, RefundState, RefundWindowClosed, VoidWindowClosed,
                               new_refund_id, Refund)
from ivr.refunds.service import RefundService
from ivr.refunds.store import UNSETTLED_KEY, RefundStore
from ivr.service import create_app
from simulators.acquirer.server import AcquirerServer, build_simulator, journal_path
from simulators.acquirer.settings import load_acquirer_settings
from simulators.acquirer.simulator import AcquirerSimulator
from simulators.acquirer.testcards import TestCard, find_test_card

MERCHANT = "M100001"
AMI_USER, AMI_SECRET = "voicepay", "voicepay-dev-ami"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Relay:
    """A TCP relay in front of the simulator. ``drop_answer_to``: MTIs whose request is forwarded
    and whose answer is swallowed (the connection then cut); ``down``: every connection is cut
    as soon as its first frame arrives, nothing forwarded."""

    upstream_port: int
    drop_answer_to: set[str] = field(default_factory=set)
    down: bool = False
    forwarded: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Relay:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                raw = await read_frame(reader)
                if self.down:
                    return
                mti = peek_mti(raw) or ""
                self.forwarded.append(mti)
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                try:
                    write_frame(up_writer, raw)
                    await up_writer.drain()
                    answer = await read_frame(up_reader)
                finally:
                    up_writer.close()
                if mti in self.drop_answer_to:
                    return
                write_frame(writer, answer)
                await writer.drain()
        except (ConnectionClosed, FramingError, ConnectionError):
            pass
        finally:
            writer.close()


@dataclass
class Env:
    client: TestClient
    settings: Settings
    simulator: AcquirerSimulator
    relay: Relay
    redis: aioredis.Redis
    acquirer_settings: Any
    stan: int = 900000

    @property
    def app(self):
        return self.client.server.app

    def key(self, merchant_id: str) -> bytes:
        return MerchantRegistry.load(self.settings).get(merchant_id).key

    async def request(self, method: str, path: str, body: bytes = b"", *,
                      merchant: str = MERCHANT,
                      headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        all_headers = {"Content-Type": "application/json",
                       **signed_headers(merchant, self.key(merchant), method, path, body),
                       **(headers or {})}
        async with self.client.request(method, path, data=body, headers=all_headers) as response:
            return response.status, await response.json(), response.headers

    async def refund(self, payment_id: str, amount: str, **kw: Any) -> tuple[int, Any]:
        status, body, _ = await self.request("POST", f"/v1/payments/{payment_id}/refunds",
                                             json.dumps({"amount": amount}).encode(), **kw)
        return status, body

    async def void(self, payment_id: str, **kw: Any) -> tuple[int, Any]:
        status, body, _ = await self.request("POST", f"/v1/payments/{payment_id}/void", **kw)
        return status, body

    async def approved_payment(self, card: TestCard, amount: int, *,
                               notify_url: str = "") -> str:
        """A payment approved as a call flow leaves it: purchased at the simulator for real."""
        self.stan += 1
        pek = load_ivr_keys(self.settings.ivr_keys_file).pek
        request = PurchaseRequest.create(
            pan=card.pan, amount=amount, stan=f"{self.stan:06d}",
            pin_block=pinblock_from_digits(pek, bytearray(card.pin.encode()), card.pan),
            terminal_id=self.settings.terminal_id, merchant_id=MERCHANT.ljust(15))
        # Straight to the simulator: the relay's tricks are for voids and refunds.
        response = await AcquirerClient("127.0.0.1", self.relay.upstream_port, 2.0).authorize(request)
        assert response.approved
        store = self.app[STORE]
        fields: dict[str, str | int] = {"merchant_id": MERCHANT, "amount_minor": amount,
                                        "mode": "callback", "merchant_order_id": f"ORD-{self.stan}",
                                        "pan_first6": card.pan[:6], "pan_last4": card.pan[-4:]}
        if notify_url:
            fields["notify_url"] = notify_url
        payment = await store.create(fields)
        await store.transition(payment.id, PaymentState.PIN_ENTRY)
        await store.transition(payment.id, PaymentState.AUTHORIZING,
                               **SentPurchase.of(request).payment_fields())
        await store.transition(payment.id, PaymentState.APPROVED, response_code="00",
                               rrn=response.rrn, auth_code=response.auth_code or "")
        return payment.id

    def journal(self, mti: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in
                 journal_path(self.acquirer_settings).read_text().splitlines()]
        return [line for line in lines if mti is None or line["mti"] == mti]

    def service(self, **overrides: Any) -> RefundService:
        """A second RefundService on the same Redis and acquirer: another instance, or the
        service after a restart, with its own clock or deadlines."""
        options: dict[str, Any] = dict(cutoff=self.settings.cutoff,
                                       window_days=self.settings.refund_window_days,
                                       answer_deadline_s=60.0)
        options.update(overrides)
        return RefundService(self.app[STORE], RefundStore(self.redis),
                             AcquirerClient("127.0.0.1", self.relay.port, 0.5), **options)


@pytest.fixture
async def env(tmp_path: Path, redis_server: str, redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    generate_dev_keys(tmp_path / "keys")
    acquirer_settings = load_acquirer_settings(var_dir=tmp_path, port=0, issuer_delay=0.5)
    simulator = build_simulator(acquirer_settings)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(AcquirerServer(simulator, "127.0.0.1", 0))
        relay = await stack.enter_async_context(Relay(server.port))
        settings = load_settings(
            var_dir=tmp_path, redis_url=redis_server, http_port=_free_port(),
            agi_host="127.0.0.1", agi_port=_free_port(), ami_host="127.0.0.1",
            ami_port=_free_port(), ami_user=AMI_USER, ami_secret=AMI_SECRET,
            acquirer_host="127.0.0.1", acquirer_port=relay.port, acquirer_timeout=0.5)
        client = await stack.enter_async_context(TestClient(TestServer(create_app(settings))))
        yield Env(client, settings, simulator, relay, redis_client, acquirer_settings)


APPROVE = find_test_card("approve")


# --- refunds ------------------------------------------------------------------------------------

async def test_partial_refunds_are_applied_at_the_acquirer_and_listed(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 8800, notify_url="https://merchant.example/hook")
    charged = env.simulator.balance(APPROVE.pan)
    assert charged == APPROVE.balance - 8800

    status, first = await env.refund(pay, "30.00")
    assert status == 201, first
    assert first["status"] == "succeeded" and first["kind"] == "refund"
    assert first["amount"] == "30.00" and first["response_code"] == "00" and len(first["rrn"]) == 12
    status, second = await env.refund(pay, "58.00")
    assert status == 201 and second["status"] == "succeeded"
    assert env.simulator.balance(APPROVE.pan) == charged + 8800

    # The acquirer's journal: two 0220s naming the purchase by its RRN, no card number.
    payment = await env.app[STORE].get(pay)
    lines = env.journal("0220")
    assert [(x["amount"], x["response_code"], x["original_rrn"]) for x in lines] == \
        [(3000, "00", payment.rrn), (5800, "00", payment.rrn)]
    assert lines[0]["pan"] == APPROVE.pan[:6] + "******" + APPROVE.pan[-4:]
    assert APPROVE.pan not in journal_path(env.acquirer_settings).read_text()

    # Nothing is left: one fen more is refused before anything is sent.
    status, body = await env.refund(pay, "0.01")
    assert status == 422 and body["error_id"] == "refund-exceeds-captured"
    assert body["details"] == {"refundable": "0.00"}
    assert len(env.journal("0220")) == 2

    status, listed, _ = await env.request("GET", f"/v1/payments/{pay}/refunds")
    assert status == 200
    assert [r["id"] for r in listed["refunds"]] == [first["id"], second["id"]]
    assert listed["refunded_amount"] == "88.00" and listed["refundable_amount"] == "0.00"
    status, shown, _ = await env.request("GET", f"/v1/payments/{pay}")
    assert shown["status"] == "approved" and shown["refunded_amount"] == "88.00"
    assert [r["status"] for r in shown["refunds"]] == ["succeeded", "succeeded"]

    # Each final state is told to the merchant by a webhook of its own.
    hook = await env.redis.hgetall(f"pay:{first['id']}:webhook")
    assert hook[b"event"] == b"refund.succeeded"
    assert json.loads(hook[b"body"])["refund"]["id"] == first["id"]


async def test_a_refund_the_acquirer_refuses_is_declined_and_frees_its_amount(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 5000)
    payment = await env.app[STORE].get(pay)
    # The platform's records say one RRN, the acquirer knows another: 25, nothing applied.
    await env.app[STORE].update(pay, rrn="000000000000")
    status, body = await env.refund(pay, "10.00")
    assert status == 201 and body["status"] == "declined" and body["response_code"] == "25"
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 5000
    await env.app[STORE].update(pay, rrn=payment.rrn)
    status, body = await env.refund(pay, "50.00")
    assert status == 201 and body["status"] == "succeeded"


# --- voids ----------------------------------------------------------------------------------------

async def test_void_gives_back_the_whole_amount_once(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 4200)
    status, body = await env.void(pay)
    assert status == 201, body
    assert body["kind"] == "void" and body["status"] == "succeeded" and body["amount"] == "42.00"
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance
    line = env.journal("0200")[-1]
    assert line["processing_code"] == "200000" and line["response_code"] == "00"

    status, body = await env.void(pay)
    assert status == 409 and body["error_id"] == "payment-voided"
    status, body = await env.refund(pay, "1.00")
    assert status == 409 and body["error_id"] == "payment-voided"
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance


async def test_no_void_after_a_refund(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 4200)
    assert (await env.refund(pay, "2.00"))[0] == 201
    status, body = await env.void(pay)
    assert status == 409 and body["error_id"] == "void-not-allowed"


async def test_the_acquirer_refuses_what_the_original_does_not_allow(env: Env) -> None:
    """The simulator's own checks, with the platform's bypassed: a second void of one purchase
    (12), a refund above what is left (13)."""
    pay = await env.approved_payment(APPROVE, 3000)
    service = env.app[REFUNDS]
    assert (await service.void(MERCHANT, pay)).state is RefundState.SUCCEEDED
    await env.redis.delete(f"pay:{pay}:given_back")  # the platform forgets it held anything
    again = await service.void(MERCHANT, pay)
    assert again.state is RefundState.DECLINED and again.response_code == "12"
    pay2 = await env.approved_payment(APPROVE, 3000)
    assert (await service.refund(MERCHANT, pay2, Money(2000))).state is RefundState.SUCCEEDED
    await env.redis.delete(f"pay:{pay2}:given_back")
    over = await service.refund(MERCHANT, pay2, Money(1001))
    assert over.state is RefundState.DECLINED and over.response_code == "13"
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 1000


async def test_the_windows_close(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 1000)
    tomorrow = env.service(clock=lambda: datetime.now(timezone.utc) + timedelta(days=1))
    with pytest.raises(VoidWindowClosed):
        await tomorrow.void(MERCHANT, pay)
    half_a_year = env.service(clock=lambda: datetime.now(timezone.utc) + timedelta(days=181))
    with pytest.raises(RefundWindowClosed):
        await half_a_year.refund(MERCHANT, pay, Money(100))
    # A refund the next day is fine.
    assert (await tomorrow.refund(MERCHANT, pay, Money(100))).state is RefundState.SUCCEEDED


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "parameter"), [
    ({"amount": "1.5"}, "amount"), ({"amount": "0.00"}, "amount"), ({"amount": "-1.00"}, "amount"),
    ({"amount": 10}, "amount"), ({}, "amount"), ({"amount": "1.00", "card": "x"}, "card"),
    ({"amount": "1.00", "reason": "x" * 129}, "reason"),
])
async def test_bad_refund_bodies_are_400_naming_the_field(env: Env, body: dict, parameter: str) -> None:
    pay = await env.approved_payment(APPROVE, 1000)
    status, answer, _ = await env.request("POST", f"/v1/payments/{pay}/refunds",
                                          json.dumps(body).encode())
    assert status == 400 and answer["details"]["parameter"] == parameter, answer
    assert env.journal("0220") == []


async def test_ids_and_states(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 1000)
    for path in ("/v1/payments/pay_unknown/refunds", "/v1/payments/x%00y/void"):
        status, body, _ = await env.request("POST", path, b'{"amount": "1.00"}'
                                            if path.endswith("refunds") else b"")
        assert status == 404 and body["error_id"] == "no-such-payment"
    # Another merchant's payment answers exactly as an unknown one.
    status, theirs = await env.refund(pay, "1.00", merchant="M100002")
    status_unknown, unknown = await env.refund("pay_ffff", "1.00", merchant="M100002")
    assert status == status_unknown == 404
    assert theirs["error_id"] == unknown["error_id"] == "no-such-payment"
    assert (await env.request("GET", f"/v1/payments/{pay}/refunds", merchant="M100002"))[0] == 404
    # Not approved: nothing was taken.
    store = env.app[STORE]
    declined = await store.create({"merchant_id": MERCHANT, "amount_minor": 500})
    await store.transition(declined.id, PaymentState.PIN_ENTRY)
    await store.transition(declined.id, PaymentState.AUTHORIZING)
    await store.transition(declined.id, PaymentState.DECLINED, response_code="51")
    status, body = await env.refund(declined.id, "1.00")
    assert status == 409 and body["error_id"] == "payment-not-refundable"
    status, body = await env.void(declined.id)
    assert status == 409 and body["error_id"] == "payment-not-refundable"
    status, body = await env.refund(pay, "10.01")
    assert status == 422 and body["details"] == {"refundable": "10.00"}
    status, body = await env.refund(pay, "999999999999.99")  # more than field 4 could carry
    assert status == 422 and body["details"] == {"refundable": "10.00"}
    # Approved, but nothing names it at the acquirer (no STAN, transmission time, RRN kept).
    unnamed = await store.create({"merchant_id": MERCHANT, "amount_minor": 500})
    for state in (PaymentState.PIN_ENTRY, PaymentState.AUTHORIZING, PaymentState.APPROVED):
        await store.transition(unnamed.id, state)
    status, body = await env.refund(unnamed.id, "1.00")
    assert status == 409 and body["error_id"] == "payment-not-refundable"


async def test_refunds_are_idempotent(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 1000)
    key = {"Idempotency-Key": "refund-1"}
    first = await env.refund(pay, "4.00", headers=key)
    status, body, headers = await env.request("POST", f"/v1/payments/{pay}/refunds",
                                              b'{"amount": "4.00"}', headers=key)
    assert first[0] == status == 201 and body == first[1]
    assert headers["Idempotent-Replayed"] == "true"
    status, body = await env.refund(pay, "5.00", headers=key)
    assert status == 422 and body["error_id"] == "idempotency-key-reused"
    # The same key on another payment's void is another request, not a replay.
    other = await env.approved_payment(APPROVE, 1000)
    status, body = await env.void(other, headers=key)
    assert status == 422 and body["error_id"] == "idempotency-key-reused"
    assert len(env.journal("0220")) == 1


# --- races ----------------------------------------------------------------------------------------

async def test_concurrent_refunds_never_give_back_more_than_was_taken(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 10000)
    answers = await asyncio.gather(*(env.refund(pay, "7.00") for _ in range(25)))
    succeeded = [b for s, b in answers if s == 201 and b["status"] == "succeeded"]
    refused = [b for s, b in answers if s == 422]
    assert len(succeeded) == 14 and len(refused) == 11  # 14 x 7.00 = 98.00 <= 100.00 < 105.00
    assert all(b["error_id"] == "refund-exceeds-captured" for b in refused)
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 10000 + 9800
    assert sum(x["amount"] for x in env.journal("0220") if x["response_code"] == "00") == 9800
    status, listed, _ = await env.request("GET", f"/v1/payments/{pay}/refunds")
    assert listed["refunded_amount"] == "98.00" and listed["refundable_amount"] == "2.00"


async def test_a_void_racing_refunds_never_gives_back_more_than_was_taken(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 10000)
    answers = await asyncio.gather(env.void(pay), *(env.refund(pay, "30.00") for _ in range(6)))
    given = [b for s, b in answers if s == 201 and b["status"] == "succeeded"]
    total = sum(Money.parse(b["amount"]).fen for b in given)
    assert total <= 10000
    voided = any(b["kind"] == "void" for b in given)
    assert (voided and len(given) == 1) or (not voided and len(given) == 3)
    # The acquirer's balance and the platform's records agree to the fen.
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 10000 + total


# --- lost answers and reversals --------------------------------------------------------------------

async def test_a_lost_refund_answer_is_reversed_and_nothing_given_back(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 5000, notify_url="https://merchant.example/hook")
    env.relay.drop_answer_to = {"0220"}
    status, body = await env.refund(pay, "20.00")
    assert status == 201 and body["status"] == "reversed", body
    # The refund reached the acquirer and was applied, then undone by the 0400.
    assert [x["response_code"] for x in env.journal("0220")] == ["00"]
    reversal = env.journal("0400")[-1]
    assert reversal["response_code"] == "00" and reversal["reversed"] is True
    assert reversal["original_mti"] == "0220" and reversal["processing_code"] == "200000"
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 5000
    hook = await env.redis.hgetall(f"pay:{body['id']}:webhook")
    assert hook[b"event"] == b"refund.reversed"
    # The amount is free again.
    env.relay.drop_answer_to = set()
    assert (await env.refund(pay, "50.00"))[1]["status"] == "succeeded"


async def test_a_lost_void_answer_stays_reversal_pending_until_acknowledged(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 5000)
    # The void and every reversal attempt reach the acquirer, and their answers are lost.
    env.relay.drop_answer_to = {"0200", "0400"}
    status, body = await env.void(pay)
    assert status == 202 and body["status"] == "reversal_pending", body
    assert [x["response_code"] for x in env.journal("0200")[-1:]] == ["00"]  # applied,
    assert env.journal("0400")[0]["reversed"] is True  # and undone by the first 0400,
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 5000
    # Still held: nothing more may be given back while the void's fate is open.
    status, answer = await env.refund(pay, "1.00")
    assert status == 409 and answer["error_id"] == "payment-voided"

    # ... which the platform does not know. The acquirer answers again; the next sweep (of any
    # instance) sends the same 0400, and the acquirer's answer to a duplicate is its first one.
    env.relay.drop_answer_to = set()
    sweep = env.service(reversal_retry_s=0.0)
    await env.redis.zadd(UNSETTLED_KEY, {body["id"]: 0}, xx=True)  # its retry time has come
    assert await sweep.settle_due() == 1
    record = await RefundStore(env.redis).get(body["id"])
    assert record.state is RefundState.REVERSED and record.response_code == "00"
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 5000
    # Every 0400 for it carried the same bytes: the retries after the first were duplicates.
    reversals = env.journal("0400")
    assert len(reversals) == 4 and all(x["duplicate"] for x in reversals[1:])
    assert {x["response_code"] for x in reversals} == {"00"}
    assert await env.redis.zscore(UNSETTLED_KEY, body["id"]) is None
    status, body = await env.void(pay)
    assert status == 201 and body["status"] == "succeeded"


async def test_a_refund_sent_by_a_process_that_died_is_reversed_at_start(env: Env) -> None:
    """The record was stored and the 0220 sent, then the process died before the answer was
    recorded: the sweep of a restarted service finds it ``sending`` and reverses it."""
    pay = await env.approved_payment(APPROVE, 5000)
    payment = await env.app[STORE].get(pay)
    request = RefundRequest.create(amount=1500, stan=await env.app[STORE].next_stan(),
                                   terminal_id=payment.auth_terminal_id,
                                   merchant_id=payment.auth_merchant_field,
                                   original_stan=payment.stan,
                                   original_transmission=payment.auth_transmission,
                                   original_rrn=payment.rrn)
    refund = Refund(id=new_refund_id(), kind=RefundKind.REFUND, state=RefundState.SENDING,
                    amount=Money(1500), payment_id=pay, merchant_id=MERCHANT, reason="",
                    stan=request.stan, transmission=request.transmission,
                    local_time=request.local_time, local_date=request.local_date,
                    terminal_id=request.terminal_id, merchant_field=request.merchant_id,
                    original_stan=payment.stan, original_transmission=payment.auth_transmission,
                    original_rrn=payment.rrn)
    await RefundStore(env.redis).reserve(refund, look_at=0)
    answer = await AcquirerClient("127.0.0.1", env.relay.port, 1.0).give_back(request)
    assert answer.approved  # applied at the acquirer; the answer died with the process
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 3500

    restarted = env.service()
    assert await restarted.settle_due() == 1
    record = await RefundStore(env.redis).get(refund.id)
    assert record.state is RefundState.REVERSED
    assert env.simulator.balance(APPROVE.pan) == APPROVE.balance - 5000
    # A second sweep finds nothing to do.
    assert await restarted.settle_due() == 0


async def test_an_unreachable_acquirer_fails_the_refund_and_keeps_the_amount(env: Env) -> None:
    pay = await env.approved_payment(APPROVE, 5000)
    unreachable = RefundService(env.app[STORE], RefundStore(env.redis),
                                AcquirerClient("127.0.0.1", _free_port(), 0.5),
                                cutoff=env.settings.cutoff, window_days=180, answer_deadline_s=60)
    failed = await unreachable.refund(MERCHANT, pay, Money(5000))
    assert failed.state is RefundState.FAILED
    assert env.journal("0220") == []
    assert (await env.refund(pay, "50.00"))[1]["status"] == "succeeded"

