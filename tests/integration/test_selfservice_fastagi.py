"""The self-service top-up flow over real FastAGI, against a scripted fake Asterisk.

Everything but Asterisk is real and in-process: the FastAGI server with its routes table, Redis
(a private redis-server), the payment store, the PAN vault, development keys, and the acquirer
simulator over TCP behind the real client. Each test reads like the call: what the caller hears,
what they key, then what became of the payment, what the acquirer journaled, and what the caller
heard in order. After every test, the logs, Redis and the acquirer journal are searched for the
test cards' PANs and PINs (see ``ivr`` below).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ivr import dialplan_variables as dv
from ivr.hostlink.acquirer_client import AcquirerClient
from simulators.acquirer.settings import load_acquirer_settings
from simulators.acquirer.server import AcquirerServer, build_simulator, journal_path
from simulators.acquirer.simulator import AcquirerSimulator
from simulators.acquirer.testcards import TestCard, find_test_card
from ivr.agi.server import FastAgiServer, Handler
from ivr.config import Settings, load_settings
from ivr.crypto.keyring import KeyFileWatch
from ivr.crypto.keys import generate_dev_keys, load_ivr_keys
from ivr.crypto.pan_vault import PanVault, mask_pan
from ivr.paying.ask_again import AskAgain
from ivr.paying.authorization import Authorizer
from ivr.paying.context import FlowContext
from ivr.selfservice.flow import selfservice
from ivr.callback.flow import callback
from ivr.merchants import MerchantRegistry
from ivr.merchant_store import MerchantStore
from ivr.prompts import Manifest
from ivr.spoken_names import SpokenNames
from ivr.oneline.flow import oneline
from ivr.payments.store import Payment, PaymentStore
from ivr.hostlink.bin_table import BinTable, PublishedBins
from ivr.paying.id_step_up import IdDigests
from ivr.risk.gate import RiskGate
from tests.integration.risk_fakes import ScriptedRiskEngine
from tests.integration.fake_asterisk import (
    DEAD_CHANNEL,
    Expect,
    FakeAsterisk,
    asks,
    keys_on,
    plays,
    send_partial_headers,
)
from tests.leakcheck import scan_text

TEST_CARDS = Path(__file__).parents[2] / "simulators" / "acquirer" / "test_cards.json"
ISSUER_DELAY = 1.0  # the issuer_timeout card's silence
ACQUIRER_TIMEOUT = 0.3  # the IVR's patience, so the timeout case is quick
MOBILE = "13800000001"

APPROVE = find_test_card("approve")
WRONG_PIN = find_test_card("wrong_pin")
NOT_THE_PIN = "000000"  # keyed as a wrong PIN; no test card has it

# The greeting on an English line: Mandarin offered (7), then Cantonese (8), each in its own
# words; the caller keys nothing and stays in English.
WELCOME = [plays("topup_welcome"), plays("language_offer"), asks("language_offer")]
WELCOME_HEARD = ["topup_welcome", "language_offer", "language_offer"]
ORDER = [*WELCOME_HEARD, "enter_mobile", "amount_menu", "enter_card"]
# Twelve digits: the RRN the acquirer returns, read out one by one after "approved".
REFERENCE_NUMBER = [plays("digit_?")] * 12


def order(card: TestCard, *, mobile: str = MOBILE, menu_key: str = "1") -> list[Expect]:
    """Greeting, mobile number, amount and card number, each keyed right the first time."""
    return [
        *WELCOME,
        asks("enter_mobile", mobile),
        asks("amount_menu", menu_key),
        asks("enter_card", card.pan),
    ]


# --- the service, in-process --------------------------------------------------------------


class FlowTracker:
    """Wraps route handlers to know when a call's flow has ended, and how."""

    def __init__(self) -> None:
        self.endings: list[str] = []
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def wrap(self, handler: Handler) -> Handler:
        async def tracked(call):
            self._running += 1
            self._idle.clear()
            try:
                await handler(call)
                self.endings.append("returned")
            except BaseException as exc:
                self.endings.append(type(exc).__name__)
                raise
            finally:
                self._running -= 1
                if not self._running:
                    self._idle.set()

        return tracked

    async def wait_idle(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._idle.wait(), timeout)


@dataclass
class Ivr:
    settings: Settings
    redis: aioredis.Redis
    store: PaymentStore
    ctx: FlowContext
    simulator: AcquirerSimulator
    agi_port: int
    flows: FlowTracker
    risk: ScriptedRiskEngine  # approves unless a test sets another outcome

    async def call(self, *script: Expect, **headers: str) -> FakeAsterisk:
        """Place one call with ``script``; returns once the IVR's flow for it has ended."""
        caller = FakeAsterisk(list(script), **headers)
        await caller.call("127.0.0.1", self.agi_port)
        await self.flows.wait_idle()
        return caller

    async def payments(self) -> list[Payment]:
        return await self.store.recent()

    async def the_payment(self) -> Payment:
        payments = await self.payments()
        assert len(payments) == 1, f"expected one payment, found {len(payments)}"
        return payments[0]

    async def states(self, payment: Payment) -> list[str]:
        return [entry["state"] for entry in await self.store.history(payment.id)]

    def journal(self) -> list[dict]:
        """What the acquirer simulator journaled, one dict per message."""
        path = journal_path(load_acquirer_settings(var_dir=self.settings.var_dir))
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def use_acquirer_at(self, port: int) -> None:
        """Point the flows at another acquirer address (the flow context is shared by reference)."""
        client = AcquirerClient("127.0.0.1", port, ACQUIRER_TIMEOUT)
        self.ctx.authorizer = Authorizer(client, self.store, terminal_id=self.settings.terminal_id,
                                         merchant_id=self.settings.merchant_id,
                                         cvv_key=self.ctx.authorizer._cvv_keys)

    async def redis_text(self) -> str:
        """Every key and value in Redis, as text, to search for card data."""
        parts: list[str] = []
        async for raw_key in self.redis.scan_iter(count=1000):
            key = raw_key.decode()
            kind = (await self.redis.type(key)).decode()
            if kind == "string":
                value: object = await self.redis.get(key)
            elif kind == "hash":
                value = await self.redis.hgetall(key)
            elif kind == "stream":
                value = await self.redis.xrange(key)
            elif kind == "zset":
                value = await self.redis.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                value = await self.redis.lrange(key, 0, -1)
            elif kind == "set":
                value = await self.redis.smembers(key)
            else:
                raise AssertionError(f"unexpected Redis type {kind} for {key}")
            parts.append(f"{key} {kind} {value!r}")
        return "\n".join(parts)


def _bound_port(server: FastAgiServer) -> int:
    # FastAgiServer has no port property; started on port 0, the socket says which it got.
    return server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def ivr(tmp_path: Path, redis_server: str, redis_client: aioredis.Redis,
              caplog: pytest.LogCaptureFixture) -> AsyncIterator[Ivr]:
    """The service's pieces with a fresh acquirer (balances, PIN tries) per test.

    Teardown checks that no PAN or PIN of a test card reached a log record, Redis, or the
    acquirer journal, whatever the test did.
    """
    caplog.set_level(logging.DEBUG)
    settings = load_settings(var_dir=tmp_path, redis_url=redis_server, agi_host="127.0.0.1",
                             agi_port=0, acquirer_host="127.0.0.1", acquirer_port=0,
                             acquirer_timeout=ACQUIRER_TIMEOUT,
                             language="en", max_entry_attempts=3)
    generate_dev_keys(settings.keys_dir)
    # As the service has them: re-read when a key is rotated or retired (test_key_rotation.py).
    keys = KeyFileWatch(settings.ivr_keys_file, load_ivr_keys)
    simulator = build_simulator(load_acquirer_settings(var_dir=tmp_path, issuer_delay=ISSUER_DELAY))
    # What the acquirer publishes when it starts: the test BINs.
    BinTable.from_document(json.loads(TEST_CARDS.read_text())).write(settings.bin_table_file)
    risk = ScriptedRiskEngine()
    store = PaymentStore(redis_client, pan_ttl_seconds=settings.pan_ttl_seconds)
    merchants = MerchantStore.from_settings(redis_client, settings, keys.ring("box_key"))
    await merchants.seed(MerchantRegistry.load(settings))
    async with AcquirerServer(simulator, settings.acquirer_host, 0) as acquirer:
        client = AcquirerClient(settings.acquirer_host, acquirer.port, settings.acquirer_timeout)
        ctx = FlowContext(
            settings=settings,
            store=store,
            vault=PanVault(keys.ring("pan_key")),
            pek=keys.ring("pek"),
            authorizer=Authorizer(client, store, terminal_id=settings.terminal_id,
                                  merchant_id=settings.merchant_id, cvv_key=keys.ring("cvv_key")),
            manifest=Manifest.load(),
            merchants=merchants,
            names=SpokenNames(tmp_path / "names", Manifest.load().voices,
                              asterisk_path="/names"),
            risk=RiskGate(risk, IdDigests(keys.ring("cardholder_key"))),
            bins=PublishedBins(settings.bin_table_file),
            ask_again=AskAgain(redis_client, store),
        )
        flows = FlowTracker()
        # The service's routes table (the callback and one-line flows are tested through this
        # fixture too: test_callback_fastagi.py).
        server = FastAgiServer({name: flows.wrap(functools.partial(flow, ctx=ctx)) for name, flow in
                                [("selfservice", selfservice), ("callback", callback),
                                 ("oneline", oneline)]})
        await server.start(settings.agi_host, 0)
        ivr = Ivr(settings, redis_client, store, ctx, simulator, _bound_port(server), flows, risk)
        try:
            yield ivr
        finally:
            await server.stop()

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert records, "caplog captured nothing: the leak check below would prove nothing"
    log_text = "\n".join(formatter.format(record) for record in records)
    leaks = (scan_text(log_text, "the log records") + scan_text(await ivr.redis_text(), "Redis")
             + scan_text("\n".join(map(json.dumps, ivr.journal())), "the acquirer journal"))
    assert not leaks, "\n".join(map(str, leaks))


# --- approved -------------------------------------------------------------------------------


async def test_approved_reads_out_the_reference_number(ivr: Ivr) -> None:
    caller = await ivr.call(
        *order(APPROVE, menu_key="1"),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait"),
        plays("approved"),
        *REFERENCE_NUMBER,
        plays("goodbye"),
    )

    payment = await ivr.the_payment()
    rrn = payment.record["rrn"]
    assert payment.status == "approved" and payment.record["response_code"] == "00"
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "approved"]
    assert payment.record["amount_minor"] == "5000" and payment.record["topup_number"] == MOBILE
    assert (payment.record["pan_first6"], payment.record["pan_last4"]) == (APPROVE.pan[:6],
                                                                            APPROVE.pan[-4:])
    assert payment.record["call_id"] == caller.uniqueid and payment.record["language"] == "en"
    assert payment.record["auth_code"] and payment.record["pin_attempts"] == "1"
    assert await ivr.store.pan_token(payment.id) is None  # dropped at the final state

    assert caller.prompts == [*ORDER, "enter_pin", "please_wait", "approved",
                              *(f"digit_{d}" for d in rrn), "goodbye"]
    assert len(rrn) == 12
    assert caller.variables == {"TIMEOUT(digit)": "5.0", dv.PAYMENT_ID: payment.id,
                                dv.RESULT: "success"}
    assert caller.hung_up_by == "ivr" and ivr.flows.endings == ["returned"]

    [purchase] = ivr.journal()
    assert (purchase["mti"], purchase["response_code"], purchase["amount"]) == ("0200", "00", 5000)
    assert (purchase["stan"], purchase["rrn"]) == (payment.record["stan"], rrn)
    assert ivr.simulator.balance(APPROVE.pan) == APPROVE.balance - 5000


# --- re-prompts before the order is complete -------------------------------------------------


async def test_invalid_mobile_is_reprompted(ivr: Ivr) -> None:
    caller = await ivr.call(
        *WELCOME,
        asks("enter_mobile", "12345678901"),  # 11 digits, but no mobile starts with 12
        plays("invalid_mobile"),
        asks("enter_mobile", "1380000", timeout=True),  # too short, no #
        plays("invalid_mobile"),
        asks("enter_mobile", "13912345678"),
        asks("amount_menu", "2"),
        asks("enter_card", APPROVE.pan),
        asks("enter_pin", hang_up=True),
    )

    assert caller.prompts == [*WELCOME_HEARD, "enter_mobile", "invalid_mobile", "enter_mobile",
                              "invalid_mobile", "enter_mobile", "amount_menu", "enter_card",
                              "enter_pin"]
    payment = await ivr.the_payment()
    assert payment.record["topup_number"] == "13912345678"
    assert payment.record["amount_minor"] == "10000"


async def test_silence_is_reprompted(ivr: Ivr) -> None:
    caller = await ivr.call(
        *WELCOME,
        asks("enter_mobile"),  # nothing keyed: "200 result= (timeout)"
        plays("no_input"),
        asks("enter_mobile", MOBILE),
        asks("amount_menu"),
        plays("no_input"),
        asks("amount_menu", "3"),
        asks("enter_card"),
        plays("no_input"),
        asks("enter_card", APPROVE.pan),
        asks("enter_pin"),
        plays("no_input"),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait"),
        plays("approved"),
        *REFERENCE_NUMBER,
        plays("goodbye"),
    )

    assert caller.prompts[:15] == [*WELCOME_HEARD, "enter_mobile", "no_input", "enter_mobile",
                                   "amount_menu", "no_input", "amount_menu", "enter_card",
                                   "no_input", "enter_card", "enter_pin", "no_input", "enter_pin"]
    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["amount_minor"] == "20000"
    assert payment.record["pin_attempts"] == "1"  # silence is not a PIN attempt
    assert [(e["mti"], e["response_code"]) for e in ivr.journal()] == [("0200", "00")]


async def test_too_many_invalid_mobiles_end_the_call_without_a_payment(ivr: Ivr) -> None:
    caller = await ivr.call(
        *WELCOME,
        asks("enter_mobile", "123"),
        plays("invalid_mobile"),
        asks("enter_mobile"),
        plays("no_input"),
        asks("enter_mobile", "23800000001"),
        plays("invalid_mobile"),
        plays("too_many_attempts"),
        plays("goodbye"),
    )

    assert caller.prompts == [*WELCOME_HEARD, "enter_mobile", "invalid_mobile", "enter_mobile",
                              "no_input", "enter_mobile", "invalid_mobile", "too_many_attempts",
                              "goodbye"]
    assert await ivr.payments() == []
    assert [key async for key in ivr.redis.scan_iter("pay:*")] == []
    assert ivr.journal() == []
    assert caller.hung_up_by is None and ivr.flows.endings == ["returned"]
    assert dv.PAYMENT_ID not in caller.variables


async def test_invalid_menu_choice_is_reprompted(ivr: Ivr) -> None:
    caller = await ivr.call(
        *WELCOME,
        asks("enter_mobile", MOBILE),
        asks("amount_menu", "9"),
        plays("invalid_choice"),
        asks("amount_menu", "2"),
        asks("enter_card", APPROVE.pan),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait"),
        plays("approved"),
        *REFERENCE_NUMBER,
        plays("goodbye"),
    )

    assert caller.prompts[:8] == [*WELCOME_HEARD, "enter_mobile", "amount_menu", "invalid_choice",
                                  "amount_menu", "enter_card"]
    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["amount_minor"] == "10000"
    assert ivr.simulator.balance(APPROVE.pan) == APPROVE.balance - 10000


async def test_luhn_invalid_card_is_reprompted(ivr: Ivr) -> None:
    not_luhn = APPROVE.pan[:-1] + str((int(APPROVE.pan[-1]) + 1) % 10)
    caller = await ivr.call(
        *WELCOME,
        asks("enter_mobile", MOBILE),
        asks("amount_menu", "1"),
        asks("enter_card", not_luhn),
        plays("invalid_card"),
        asks("enter_card", APPROVE.pan),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait"),
        plays("approved"),
        *REFERENCE_NUMBER,
        plays("goodbye"),
    )

    assert caller.prompts[:9] == [*ORDER, "invalid_card", "enter_card", "enter_pin"]
    payment = await ivr.the_payment()
    assert payment.status == "approved"
    assert [e["pan"] for e in ivr.journal()] == [mask_pan(APPROVE.pan)]


# --- PIN entry ----------------------------------------------------------------------------


async def test_short_pin_is_reprompted(ivr: Ivr) -> None:
    caller = await ivr.call(
        *order(APPROVE),
        asks("enter_pin", "123"),
        plays("invalid_pin"),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait"),
        plays("approved"),
        *REFERENCE_NUMBER,
        plays("goodbye"),
    )

    assert caller.prompts[6:10] == ["enter_pin", "invalid_pin", "enter_pin", "please_wait"]
    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["pin_attempts"] == "1"
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "approved"]
    assert len(ivr.journal()) == 1  # a short PIN never reaches the acquirer


async def test_no_pin_keyed_abandons_the_payment(ivr: Ivr) -> None:
    caller = await ivr.call(
        *order(APPROVE),
        asks("enter_pin"),
        plays("no_input"),
        asks("enter_pin", "12"),
        plays("invalid_pin"),
        asks("enter_pin"),
        plays("no_input"),
        plays("too_many_attempts"),
        plays("goodbye"),
    )

    assert caller.prompts[-3:] == ["no_input", "too_many_attempts", "goodbye"]
    payment = await ivr.the_payment()
    assert payment.status == "abandoned"
    assert await ivr.states(payment) == ["created", "pin_entry", "abandoned"]
    assert await ivr.store.pan_token(payment.id) is None
    assert ivr.journal() == []


async def test_wrong_pin_then_right_pin(ivr: Ivr) -> None:
    caller = await ivr.call(
        *order(WRONG_PIN),
        asks("enter_pin", NOT_THE_PIN),
        plays("please_wait"),
        plays("incorrect_pin"),
        plays("try_again"),
        asks("enter_pin", WRONG_PIN.pin),
        plays("please_wait"),
        plays("approved"),
        *REFERENCE_NUMBER,
        plays("goodbye"),
    )

    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["pin_attempts"] == "2"
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "pin_entry",
                                         "authorizing", "approved"]
    assert caller.prompts[6:12] == ["enter_pin", "please_wait", "incorrect_pin", "try_again",
                                    "enter_pin", "please_wait"]
    journal = ivr.journal()
    assert [(e["mti"], e["response_code"]) for e in journal] == [("0200", "55"), ("0200", "00")]
    assert journal[-1]["rrn"] == payment.record["rrn"]
    assert ivr.simulator.card_status(WRONG_PIN.pan) == "active"


async def test_three_wrong_pins_decline_and_block_the_card(ivr: Ivr) -> None:
    wrong_pin_try = [asks("enter_pin", NOT_THE_PIN), plays("please_wait"),
                     plays("incorrect_pin")]
    caller = await ivr.call(
        *order(WRONG_PIN),
        *wrong_pin_try, plays("try_again"),
        *wrong_pin_try, plays("try_again"),
        *wrong_pin_try,
        plays("goodbye"),
    )

    payment = await ivr.the_payment()
    assert payment.status == "declined" and payment.record["response_code"] == "55"
    assert payment.record["pin_attempts"] == "3"
    assert await ivr.states(payment) == ["created", *["pin_entry", "authorizing"] * 3,
                                         "declined"]
    assert caller.prompts[-2:] == ["incorrect_pin", "goodbye"]
    assert [e["response_code"] for e in ivr.journal()] == ["55", "55", "55"]
    assert ivr.simulator.card_status(WRONG_PIN.pan) == "pin_tries_exceeded"

    # The next call with that card, even with the right PIN, is refused for PIN tries.
    caller = await ivr.call(
        *order(WRONG_PIN, mobile="13800000002"),
        asks("enter_pin", WRONG_PIN.pin),
        plays("please_wait"),
        plays("declined_pin_tries_exceeded"),
        plays("goodbye"),
    )
    [second] = [p for p in await ivr.payments() if p.record["topup_number"] == "13800000002"]
    assert second.status == "declined" and second.record["response_code"] == "75"
    assert [e["response_code"] for e in ivr.journal()] == ["55", "55", "55", "75"]
    assert ivr.simulator.balance(WRONG_PIN.pan) == WRONG_PIN.balance


# --- what the issuer says -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card_name", "response_code", "state", "prompt"),
    [
        ("insufficient_funds", "51", "declined", "declined_insufficient_funds"),
        ("expired", "54", "declined", "declined_expired_card"),
        ("blocked", "75", "declined", "declined_pin_tries_exceeded"),
        ("do_not_honour", "05", "declined", "declined_generic"),
        ("issuer_down", "91", "failed", "issuer_unavailable"),
    ],
)
async def test_issuer_answer(ivr: Ivr, card_name: str, response_code: str, state: str,
                             prompt: str) -> None:
    card = find_test_card(card_name)
    caller = await ivr.call(
        *order(card),
        asks("enter_pin", card.pin),
        plays("please_wait"),
        plays(prompt),
        plays("goodbye"),
    )

    assert caller.prompts == [*ORDER, "enter_pin", "please_wait", prompt, "goodbye"]
    payment = await ivr.the_payment()
    assert payment.status == state and payment.record["response_code"] == response_code
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", state]
    [purchase] = ivr.journal()
    assert (purchase["mti"], purchase["response_code"]) == ("0200", response_code)
    assert purchase["stan"] == payment.record["stan"]
    assert ivr.simulator.balance(card.pan) == card.balance
    assert caller.variables[dv.RESULT] == "success" and caller.hung_up_by == "ivr"


async def test_issuer_timeout_fails_reverses_and_charges_nothing(ivr: Ivr) -> None:
    card = find_test_card("issuer_timeout")
    caller = await ivr.call(
        *order(card),
        asks("enter_pin", card.pin),
        plays("please_wait"),
        plays("issuer_unavailable"),
        plays("goodbye"),
    )

    payment = await ivr.the_payment()
    assert payment.status == "failed"
    assert (await ivr.store.history(payment.id))[-1]["reason"] == (
        "acquirer did not answer in time; the request was reversed")
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "failed"]
    assert caller.prompts[-2:] == ["issuer_unavailable", "goodbye"]

    [reversal] = ivr.journal()  # the reversal is answered at once; the original is still pending
    assert (reversal["mti"], reversal["response_code"]) == ("0400", "00") and reversal["reversed"]
    assert reversal["stan"] == payment.record["stan"]

    # The slow issuer finally answers: the original is journaled as reversed and not charged.
    for _ in range(60):
        if any(e["mti"] == "0200" for e in ivr.journal()):
            break
        await asyncio.sleep(0.05)
    original = [e for e in ivr.journal() if e["mti"] == "0200"]
    assert len(original) == 1 and original[0]["reversed"] is True
    assert original[0]["response_code"] == "91"
    assert ivr.simulator.balance(card.pan) == card.balance


async def test_acquirer_unreachable_fails_with_service_unavailable(ivr: Ivr) -> None:
    ivr.use_acquirer_at(_unused_port())
    caller = await ivr.call(
        *order(APPROVE),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait"),
        plays("service_unavailable"),
        plays("goodbye"),
    )

    payment = await ivr.the_payment()
    assert payment.status == "failed"
    assert (await ivr.store.history(payment.id))[-1]["reason"] == "acquirer unreachable"
    assert caller.prompts[-2:] == ["service_unavailable", "goodbye"]
    assert ivr.journal() == []
    assert ivr.simulator.balance(APPROVE.pan) == APPROVE.balance


# --- the caller hangs up --------------------------------------------------------------------


async def test_hang_up_before_the_order_is_complete_leaves_no_payment(ivr: Ivr) -> None:
    caller = await ivr.call(
        *WELCOME,
        asks("enter_mobile", MOBILE),
        asks("amount_menu", "1"),
        asks("enter_card", hang_up=True),
    )

    assert caller.prompts == ORDER and caller.hung_up_by == "caller"
    assert ivr.flows.endings == ["AgiHangup"]
    assert await ivr.payments() == []
    assert [key async for key in ivr.redis.scan_iter("pay:*")] == []
    assert ivr.journal() == []


async def test_hang_up_mid_pin_abandons_without_reaching_the_acquirer(ivr: Ivr) -> None:
    caller = await ivr.call(
        *order(APPROVE),
        asks("enter_pin", hang_up=True),
    )

    assert caller.prompts == [*ORDER, "enter_pin"] and caller.hung_up_by == "caller"
    payment = await ivr.the_payment()
    assert payment.status == "abandoned"
    assert await ivr.states(payment) == ["created", "pin_entry", "abandoned"]
    assert (await ivr.store.history(payment.id))[-1]["reason"] == "caller hung up"
    assert caller.variables[dv.PAYMENT_ID] == payment.id
    assert await ivr.store.pan_token(payment.id) is None
    assert [e for e in ivr.journal() if e["mti"] == "0200"] == []
    assert ivr.flows.endings == ["AgiHangup"]


async def test_hang_up_during_please_wait_still_records_the_authorization(ivr: Ivr) -> None:
    caller = await ivr.call(
        *order(APPROVE),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait", hang_up=True),
    )

    assert caller.prompts[-1] == "please_wait" and caller.hung_up_by == "caller"
    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["rrn"]
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "approved"]
    [purchase] = ivr.journal()
    assert (purchase["mti"], purchase["response_code"]) == ("0200", "00")
    assert ivr.simulator.balance(APPROVE.pan) == APPROVE.balance - 5000
    assert ivr.flows.endings == ["AgiHangup"]


async def test_hang_up_during_please_wait_after_a_wrong_pin_settles_as_declined(
        ivr: Ivr) -> None:
    caller = await ivr.call(
        *order(WRONG_PIN),
        asks("enter_pin", NOT_THE_PIN),
        plays("please_wait", hang_up=True),
    )

    # No one is left to re-prompt: the 55 is the payment's final answer.
    assert caller.prompts[-1] == "please_wait"
    payment = await ivr.the_payment()
    assert payment.status == "declined" and payment.record["response_code"] == "55"
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "declined"]


async def test_dead_channel_at_the_pin_prompt_abandons_the_payment(ivr: Ivr) -> None:
    # The caller left while the order was being saved, and Asterisk (AGISIGHUP=no) says so only
    # with a 511 to the next command: that is a hang-up too, and the payment must not stay open.
    await ivr.call(*order(APPROVE), Expect("GET DATA", "enter_pin", reply=DEAD_CHANNEL))

    payment = await ivr.the_payment()
    assert payment.status == "abandoned"
    assert await ivr.states(payment) == ["created", "pin_entry", "abandoned"]
    assert await ivr.store.pan_token(payment.id) is None
    assert ivr.journal() == []


async def test_hang_up_during_please_wait_without_sighup_still_records_the_authorization(
        ivr: Ivr) -> None:
    # AGISIGHUP=no: the running STREAM FILE just returns -1, no HANGUP line; later commands get 511.
    caller = await ivr.call(
        *order(APPROVE),
        asks("enter_pin", APPROVE.pin),
        plays("please_wait", hang_up=True),
        agi_sighup=False,
    )

    payment = await ivr.the_payment()
    assert payment.status == "approved"
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "approved"]
    assert [(e["mti"], e["response_code"]) for e in ivr.journal()] == [("0200", "00")]
    # The result (its Playback list, the reference after it) met a dead channel: nothing after.
    assert str(caller.commands[-1]).startswith("EXEC Playback approved&digit_")
    heard = caller.prompts
    assert heard[heard.index("please_wait"):][:2] == ["please_wait", "approved"]


async def test_please_wait_failing_on_a_live_channel_still_records_and_announces(
        ivr: Ivr) -> None:
    # "200 result=-1" on a live channel: e.g. please_wait.wav missing for this language.
    caller = await ivr.call(
        *order(APPROVE),
        asks("enter_pin", APPROVE.pin),
        Expect("STREAM FILE", "please_wait", reply="200 result=-1 endpos=0"),
        plays("approved"),
        *REFERENCE_NUMBER,
        plays("goodbye"),
    )

    payment = await ivr.the_payment()
    assert payment.status == "approved"
    assert caller.prompts[-14:] == ["approved", *(f"digit_{d}" for d in payment.record["rrn"]),
                                    "goodbye"]
    assert caller.variables[dv.RESULT] == "success"


# --- the session itself ---------------------------------------------------------------------


async def test_unknown_script_reports_failure_and_closes(ivr: Ivr,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caller = await ivr.call(agi_script="no_such_flow")

    assert [c.line for c in caller.commands] == [f'SET VARIABLE {dv.RESULT} "failure"']
    assert caller.variables == {dv.RESULT: "failure"}
    assert caller.hung_up_by is None  # the IVR closed the session
    assert ivr.flows.endings == [] and await ivr.payments() == []
    assert "no route for script 'no_such_flow'" in caplog.text


async def test_peer_closing_during_the_headers_does_not_hang_the_server(
        ivr: Ivr, caplog: pytest.LogCaptureFixture) -> None:
    await send_partial_headers("127.0.0.1", ivr.agi_port, {
        "agi_network": "yes",
        "agi_network_script": "selfservice",
        "agi_uniqueid": "1715000000.99",
    })
    for _ in range(40):
        if "closed before the end of the headers" in caplog.text:
            break
        await asyncio.sleep(0.05)
    # Refused at once, not after the 10 s header timeout.
    assert ("FastAGI session refused: FastAGI peer closed before the end of the headers"
            in caplog.text)
    assert ivr.flows.endings == []

    # The server is still answering calls.
    caller = await ivr.call(*WELCOME, asks("enter_mobile", hang_up=True))
    assert caller.prompts == [*WELCOME_HEARD, "enter_mobile"]


@pytest.mark.parametrize(("language", "heard_in", "offered"),
                         [("zh", "zh", ["yue", "en"]), ("yue", "yue", ["zh", "en"]),
                          ("fr", "en", ["zh", "yue"])])
async def test_prompts_follow_the_channel_language(ivr: Ivr, language: str, heard_in: str,
                                                   offered: list[str]) -> None:
    caller = await ivr.call(*WELCOME, asks("enter_mobile", hang_up=True), language=language)

    sounds = ivr.settings.sounds_path
    assert [c.args[0] for c in caller.commands if c.prompt] == [
        f"{sounds}/{heard_in}/topup_welcome",
        *(f"{sounds}/{other}/language_offer" for other in offered),  # each in its own language
        f"{sounds}/{heard_in}/enter_mobile",
    ]


@pytest.mark.parametrize(("key", "chosen"), [("9", "en"), ("8", "yue"), ("7", "zh")])
@pytest.mark.parametrize("during", ["welcome", "first offer", "after the offers"])
async def test_the_caller_switches_language_at_the_welcome(ivr: Ivr, key: str, chosen: str,
                                                           during: str) -> None:
    line = "en" if chosen == "zh" else "zh"
    welcome = {
        "welcome": [plays("topup_welcome", interrupted_by=key)],
        "first offer": [plays("topup_welcome"), plays("language_offer", interrupted_by=key)],
        "after the offers": [plays("topup_welcome"), plays("language_offer"),
                             asks("language_offer", key, timeout=True)],
    }[during]
    caller = await ivr.call(*welcome, asks("enter_mobile", MOBILE), asks("amount_menu", "1"),
                            asks("enter_card", APPROVE.pan), asks("enter_pin", APPROVE.pin),
                            plays("please_wait"), plays("approved"), *REFERENCE_NUMBER,
                            plays("goodbye"), language=line)

    after_welcome = [c.args[0] for c in caller.commands if c.prompt][len(welcome):]
    assert after_welcome and all(f"/{chosen}/" in path for path in after_welcome), after_welcome
    payment = await ivr.the_payment()
    assert payment.record["language"] == chosen and payment.status.value == "approved"


@pytest.mark.parametrize("key", ["*", "#", "7"])
async def test_a_key_that_chooses_no_language_keeps_the_line_language(ivr: Ivr, key: str) -> None:
    # Only the offered keys interrupt the greeting (STREAM FILE's escape digits); a key keyed
    # after the offers that is no digit, or the line's own language key (7 on a Mandarin line),
    # is read and dropped, and the mobile number is asked for in Mandarin.
    caller = await ivr.call(plays("topup_welcome"), plays("language_offer"),
                            asks("language_offer", key, timeout=True),
                            asks("enter_mobile", hang_up=True), language="zh")
    welcome = [c for c in caller.commands if c.verb == "STREAM FILE"]
    assert [c.args[1] for c in welcome] == ["89", "89"]
    assert caller.commands[-1].args[0] == f"{ivr.settings.sounds_path}/zh/enter_mobile"


async def test_a_mobile_number_typed_ahead_during_the_language_wait_is_taken_whole(ivr: Ivr) -> None:
    """A regular caller starts keying the mobile number while the last language is offered: its
    first digit (a 1, no language key) ends that wait and begins the answer, the rest is
    collected without asking for it, and the payment is for that number."""
    caller = await ivr.call(plays("topup_welcome"), plays("language_offer"),
                            asks("language_offer", MOBILE[0], timeout=True),
                            keys_on(MOBILE[1:]),
                            asks("amount_menu", "1"), asks("enter_card", APPROVE.pan),
                            asks("enter_pin", APPROVE.pin), plays("please_wait"),
                            plays("approved"), *REFERENCE_NUMBER, plays("goodbye"),
                            language="zh")
    assert "enter_mobile" not in caller.prompts and "invalid_mobile" not in caller.prompts
    payment = await ivr.the_payment()
    assert payment.status.value == "approved" and payment.topup_number == MOBILE
