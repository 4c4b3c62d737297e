"""The callback and one-line flows over real FastAGI, against the scripted fake Asterisk.

The harness is the self-service one (test_selfservice_fastagi.py: real FastAGI server and routes
table, private Redis, PAN vault, development keys, the acquirer simulator over TCP, and the leak
check on logs, Redis and the journal after every test). A merchant's order is made the way the
order service makes it (``CallbackOrders.create``, card number encrypted in Redis) and left where
the dialer or the one-line switch leaves it; then the cardholder's call comes in with the payment
id as a channel variable, as the dialer's Originate or the switch's Setvar puts it there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr import dialplan_variables as dv
from ivr.ami.client import AmiClient
from ivr.callback.orders import CallbackOrders
from ivr.hostlink.bin_table import BinTable
from ivr.merchants import MerchantRegistry, load_seed
from ivr.money import Money
from ivr.oneline.switch import OnelineSwitch
from ivr.orders import Order
from ivr.payments.store import Payment, PaymentState
from ivr.prompts import Manifest
from ivr.spoken_names import SpokenNames
from simulators.acquirer.testcards import TestCard, find_test_card
from tests.integration import test_selfservice_fastagi as harness
from tests.integration.fake_ami import FakeAmi
from tests.integration.fake_asterisk import Expect, FakeAsterisk, Pause, asks, plays
from tests.integration.test_dialer import until
from tests.integration.test_selfservice_fastagi import APPROVE, REFERENCE_NUMBER, WRONG_PIN, Ivr

ivr = harness.ivr  # the FastAGI fixture, with the service's three routes

TEST_CARDS = Path(__file__).parents[2] / "simulators" / "acquirer" / "test_cards.json"
CREDIT = find_test_card("credit_approve")
CREDIT_MMYY = CREDIT.expiry[2:] + CREDIT.expiry[:2]  # the book says YYMM; the caller keys MMYY
AGENT_CHANNEL = "PJSIP/1001-00000002"
CALLER_CHANNEL = "PJSIP/cardholder-00000001"

# "... your payment to China Mobile Shanghai. The amount is fifty yuan." The merchant's name is
# the file the run-time synthesis cached (ivr/spoken_names.py), named by its hash.
MERCHANT_NAME = SpokenNames(Path("unused"), Manifest.load().voices).key(
    next(m for m in load_seed() if m.id == "M100001").name_en, "en")
INTRO = [plays("callback_intro"), plays(MERCHANT_NAME), plays("callback_amount"),
         plays("num_50"), plays("currency_yuan")]
INTRO_HEARD = ["callback_intro", MERCHANT_NAME, "callback_amount", "num_50", "currency_yuan"]


def approved(card: TestCard) -> list[Expect]:
    """Debit: PIN; credit: expiry and CVV2; then approved with the reference number."""
    if card is CREDIT:
        keyed = [asks("enter_expiry", CREDIT_MMYY), asks("enter_cvv2", CREDIT.cvv2)]
    else:
        keyed = [asks("enter_pin", card.pin)]
    return [*keyed, plays("please_wait"), plays("approved"), *REFERENCE_NUMBER]


class Orders:
    """Merchant orders as the order service makes them, in the state its next step leaves them."""

    def __init__(self, ivr: Ivr, dialer: object = None) -> None:
        self.ivr = ivr
        self.merchant = MerchantRegistry.load(ivr.settings).get("M100001")
        self.bins = BinTable.from_document(json.loads(TEST_CARDS.read_text()))
        assert ivr.ctx.risk is not None
        self.service = CallbackOrders(ivr.store, ivr.ctx.vault, ivr.settings.bin_table_file,
                                      dialer, ivr.ctx.risk)  # type: ignore[arg-type]

    async def callback(self, card: TestCard, *, language: str = "en", **order: str) -> Payment:
        """A callback order the dialer is calling: ``calling``, the phone ringing."""
        payment = await self._risk_passed(card, "callback", language=language, **order)
        return await self.ivr.store.transition(payment.id, PaymentState.CALLING, reason="dialling")

    async def oneline(self, card: TestCard) -> Payment:
        """A one-line order whose caller the switch has just redirected: ``risk_passed``."""
        return await self._risk_passed(card, "oneline", agent_id="1001",
                                       agent_channel=AGENT_CHANNEL, caller_channel=CALLER_CHANNEL)

    async def _risk_passed(self, card: TestCard, mode: str, *, language: str = "en",
                           **extra: str) -> Payment:
        order = Order(merchant_order_id=f"ORD-{card.name}", amount=Money.parse("50.00"),
                      description="mobile bill", card_number=card.pan,
                      cardholder_name="Zhang San", id_number="110105199001010014",
                      mobile="13800138000", mode=mode, language=language)
        payment = await self.service.create(self.merchant, order, self.bins.lookup(card.pan),
                                            mode=mode, **extra)
        return await self.ivr.store.transition(payment.id, PaymentState.RISK_PASSED, reason="test")


@pytest.fixture
def orders(ivr: Ivr) -> Orders:
    return Orders(ivr)


async def answer(ivr: Ivr, payment: Payment, *script: Expect, flow: str = "callback",
                 **headers: str) -> FakeAsterisk:
    """The cardholder's leg reaches the flow with the payment id set on the channel."""
    return await ivr.call(*script, agi_script=flow, variables={dv.PAYMENT_ID: payment.id},
                          **headers)


CALLBACK_START = ["created", "risk_passed", "calling", "answered"]


# --- callback: paid --------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh", "yue", "en"])
async def test_the_call_speaks_the_payments_language(ivr: Ivr, orders: Orders,
                                                     language: str) -> None:
    # ¥50.00: 五十元 in Mandarin and Cantonese, "fifty yuan" in English.
    amount = ["num_50", "currency_yuan"] if language == "en" else ["num_5", "num_shi",
                                                                   "currency_yuan"]
    payment = await orders.callback(APPROVE, language=language)
    caller = await answer(ivr, payment, plays("callback_intro"), plays("[0-9a-f]" * 32),
                          plays("callback_amount"), *map(plays, amount), asks("confirm_menu", "1"),
                          *approved(APPROVE), plays("goodbye"))

    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED
    paths = [c.args[0] for c in caller.commands if c.prompt]
    # The merchant's name, from the run-time cache, in this language's voice and words
    # (the Chinese name in Mandarin and Cantonese); every other prompt from this language's set.
    merchant = orders.merchant
    name = merchant.name_en if language == "en" else merchant.name_zh
    assert paths[1] == f"/names/{ivr.ctx.names.key(name, language)}"
    others = paths[:1] + paths[2:]
    assert all(p.startswith(f"{ivr.settings.sounds_path}/{language}/") for p in others), others
    assert caller.prompts[2:3 + len(amount)] == ["callback_amount", *amount]



@pytest.mark.parametrize(("card", "keyed"), [(APPROVE, ["enter_pin"]),
                                             (CREDIT, ["enter_expiry", "enter_cvv2"])],
                         ids=["debit-pin", "credit-expiry-cvv2"])
async def test_callback_is_paid(ivr: Ivr, orders: Orders, card: TestCard,
                                keyed: list[str]) -> None:
    payment = await orders.callback(card)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"), *approved(card),
                          plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED and payment.response_code == "00"
    assert await ivr.states(payment) == [*CALLBACK_START, "confirmed", "pin_entry",
                                         "authorizing", "approved"]
    assert caller.prompts == [*INTRO_HEARD, "confirm_menu", *keyed, "please_wait",
                              "approved", *(f"digit_{d}" for d in payment.rrn), "goodbye"]
    assert payment.call_id == caller.uniqueid and caller.hung_up_by == "ivr"
    [purchase] = ivr.journal()
    assert (purchase["mti"], purchase["response_code"], purchase["amount"]) == ("0200", "00", 5000)
    assert ivr.simulator.balance(card.pan) == card.balance - 5000
    assert await ivr.store.pan_token(payment.id) is None


@pytest.mark.parametrize(
    ("mmyy", "cvv2", "response_code", "prompt"),
    [
        (CREDIT_MMYY, "123", "82", "declined_invalid_cvv2"),  # not the card's CVV2
        ("1230", CREDIT.cvv2, "54", "declined_expired_card"),  # not the card's expiry
    ],
    ids=["wrong-cvv2", "wrong-expiry"],
)
async def test_callback_credit_card_with_wrong_details_is_declined(
        ivr: Ivr, orders: Orders, mmyy: str, cvv2: str, response_code: str, prompt: str) -> None:
    payment = await orders.callback(CREDIT)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                          asks("enter_expiry", mmyy), asks("enter_cvv2", cvv2),
                          plays("please_wait"), plays(prompt), plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.DECLINED and payment.response_code == response_code
    assert caller.prompts[-3:] == ["please_wait", prompt, "goodbye"]
    [purchase] = ivr.journal()
    assert purchase["response_code"] == response_code
    assert ivr.simulator.balance(CREDIT.pan) == CREDIT.balance


async def test_callback_invalid_expiry_is_reprompted(ivr: Ivr, orders: Orders) -> None:
    payment = await orders.callback(CREDIT)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                          asks("enter_expiry", "1329"),  # month 13
                          plays("invalid_expiry"),
                          asks("enter_expiry", "112", timeout=True),  # three digits
                          plays("invalid_expiry"),
                          *approved(CREDIT), plays("goodbye"))

    assert caller.prompts[6:11] == ["enter_expiry", "invalid_expiry", "enter_expiry",
                                    "invalid_expiry", "enter_expiry"]
    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED
    assert len(ivr.journal()) == 1  # an invalid expiry never reaches the acquirer


# --- callback: the confirm menu ---------------------------------------------------------------


async def test_callback_confirm_menu_reprompts_then_pays(ivr: Ivr, orders: Orders) -> None:
    payment = await orders.callback(APPROVE)
    caller = await answer(ivr, payment, *INTRO,
                          asks("confirm_menu"), plays("no_input"),
                          asks("confirm_menu", "7"), plays("invalid_choice"),
                          asks("confirm_menu", "1"), *approved(APPROVE), plays("goodbye"))

    assert caller.prompts[5:11] == ["confirm_menu", "no_input", "confirm_menu", "invalid_choice",
                                    "confirm_menu", "enter_pin"]
    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED


@pytest.mark.parametrize(("prompt", "before", "wrong", "invalid", "states"), [
    ("confirm_menu", [], "9", "invalid_choice", []),
    ("enter_pin", [asks("confirm_menu", "1")], "12", "invalid_pin", ["confirmed", "pin_entry"]),
], ids=["confirm-menu", "pin"])
async def test_callback_three_unusable_answers_abandon(
        ivr: Ivr, orders: Orders, prompt: str, before: list[Expect], wrong: str, invalid: str,
        states: list[str]) -> None:
    payment = await orders.callback(APPROVE)
    caller = await answer(ivr, payment, *INTRO, *before,
                          asks(prompt), plays("no_input"),
                          asks(prompt, wrong), plays(invalid),
                          asks(prompt), plays("no_input"),
                          plays("too_many_attempts"), plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.ABANDONED
    assert await ivr.states(payment) == [*CALLBACK_START, *states, "abandoned"]
    assert (await ivr.store.history(payment.id))[-1]["reason"] == f"no valid entry at {prompt}"
    assert caller.prompts[-2:] == ["too_many_attempts", "goodbye"]
    assert ivr.journal() == [] and await ivr.store.pan_token(payment.id) is None


async def test_callback_pressing_2_refuses_and_charges_nothing(ivr: Ivr, orders: Orders) -> None:
    payment = await orders.callback(APPROVE)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "2"),
                          plays("payment_refused"), plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.REFUSED
    assert await ivr.states(payment) == [*CALLBACK_START, "refused"]
    assert caller.prompts[-2:] == ["payment_refused", "goodbye"] and caller.hung_up_by == "ivr"
    assert ivr.journal() == []


async def test_callback_three_wrong_pins_decline(ivr: Ivr, orders: Orders) -> None:
    wrong = [asks("enter_pin", "000000"), plays("please_wait"), plays("incorrect_pin")]
    payment = await orders.callback(WRONG_PIN)
    await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                 *wrong, plays("try_again"), *wrong, plays("try_again"), *wrong,
                 plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.DECLINED and payment.pin_attempts == 3
    assert [e["response_code"] for e in ivr.journal()] == ["55", "55", "55"]


# --- callback: the card number is gone ---------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "expired"])
async def test_callback_without_the_card_number_fails_with_an_apology(
        ivr: Ivr, orders: Orders, how: str) -> None:
    payment = await orders.callback(APPROVE)
    key = f"pay:{payment.id}:pan"
    if how == "deleted":
        await ivr.redis.delete(key)
    else:  # its TTL ran out while the callback was waiting to be answered
        await ivr.redis.pexpire(key, 1)

        async def expired() -> bool:
            return not await ivr.redis.exists(key)
        await until(expired)
    caller = await answer(ivr, payment, plays("service_unavailable"), plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.FAILED
    assert await ivr.states(payment) == [*CALLBACK_START, "failed"]
    assert "card number" in (await ivr.store.history(payment.id))[-1]["reason"]
    assert caller.prompts == ["service_unavailable", "goodbye"] and caller.hung_up_by == "ivr"
    assert ivr.flows.endings == ["returned"] and ivr.journal() == []


# --- callback: cancelled ------------------------------------------------------------------------


class HangsUpTheCall:
    """The dialer's part in a cancel: an AMI Hangup of the payment's call, which Asterisk carries
    out on the cardholder's channel (the dialer's own AMI side is tested in test_dialer.py)."""

    def __init__(self) -> None:
        self.caller: FakeAsterisk | None = None
        self.hung_up: list[str] = []

    async def hang_up(self, payment_id: str) -> None:
        self.hung_up.append(payment_id)
        if self.caller is not None:
            self.caller.hang_up_now()


async def test_callback_cancelled_while_ringing_hangs_up(ivr: Ivr) -> None:
    dialer = HangsUpTheCall()
    orders = Orders(ivr, dialer)
    payment = await orders.callback(APPROVE)
    await orders.service.cancel(orders.merchant, payment.id)
    caller = await answer(ivr, payment)  # the cardholder picks up just after

    assert dialer.hung_up == [payment.id]
    assert caller.prompts == [] and caller.hung_up_by == "ivr"
    assert ivr.flows.endings == ["returned"]
    assert await ivr.states(payment) == ["created", "risk_passed", "calling", "cancelled"]
    assert ivr.journal() == []


async def cancel_during_the_answer(ivr: Ivr, orders: Orders, dialer: HangsUpTheCall,
                                   first: str) -> tuple[FakeAsterisk, list[str]]:
    """The merchant cancels as the cardholder picks up: ``first`` says which side goes first
    ("cancel", "answer"), or "both" to let them run at once. Returns the call and the history."""
    payment = await orders.callback(APPROVE)
    before_answer, intro = Pause(), Pause()  # the flow holds before its transition, and after
    caller = FakeAsterisk([Expect("GET VARIABLE", reply=f"200 result=1 ({payment.id})",
                                  pause=before_answer),
                           Expect("STREAM FILE", "callback_intro", pause=intro, optional=True)],
                          agi_script="callback")
    dialer.caller = caller
    call = asyncio.create_task(caller.call("127.0.0.1", ivr.agi_port))
    await before_answer.reached.wait()
    cancel = orders.service.cancel(orders.merchant, payment.id)
    if first == "cancel":
        await cancel
        before_answer.release.set()
    elif first == "answer":
        before_answer.release.set()
        await intro.reached.wait()  # answered, and reading out the order
        await cancel
    else:
        before_answer.release.set()
        await cancel
    await call
    await ivr.flows.wait_idle()
    return caller, await ivr.states(payment)


@pytest.mark.parametrize("first", ["cancel", "answer", "both"])
async def test_cancel_racing_the_answer(ivr: Ivr, first: str) -> None:
    """Redis orders the cancel and the flow's ``answered``: either the flow loses and hangs up
    before a word, or it answered and the cancel hangs the call up. Either way the payment is
    cancelled once and nothing is charged."""
    dialer = HangsUpTheCall()
    orders = Orders(ivr, dialer)
    for _ in range(5 if first == "both" else 1):
        caller, history = await cancel_during_the_answer(ivr, orders, dialer, first)
        if "answered" in history:  # the flow won, then the cancel hung the call up
            assert history == [*CALLBACK_START, "cancelled"]
            assert caller.hung_up_by == "caller" and caller.prompts in ([], ["callback_intro"])
        else:  # the cancel won: the call ends without a word (the cancel's Hangup, or the flow's)
            assert history == ["created", "risk_passed", "calling", "cancelled"]
            assert caller.prompts == [] and caller.hung_up_by in ("caller", "ivr")
        assert first != "cancel" or "answered" not in history
        assert first != "answer" or "answered" in history
    assert ivr.journal() == [] and len(dialer.hung_up) == len(ivr.flows.endings)


# --- one-line -----------------------------------------------------------------------------------


@pytest.fixture
async def fake_ami(ivr: Ivr) -> AsyncIterator[FakeAmi]:
    """Asterisk's AMI behind the one-line switch the flow releases the agent with."""
    async with FakeAmi(username="voicepay", secret="test-ami-secret") as ami:
        client = AmiClient(dataclasses.replace(ivr.settings, ami_host="127.0.0.1",
                                               ami_port=ami.port, ami_user="voicepay",
                                               ami_secret="test-ami-secret"))
        await client.start()
        await until(lambda: client.connected)
        ivr.ctx.oneline = OnelineSwitch(client)
        try:
            yield ami
        finally:
            await client.close()


async def test_oneline_debit_card_is_paid_and_returns_to_the_agent(ivr: Ivr, orders: Orders,
                                                                   fake_ami: FakeAmi) -> None:
    payment = await orders.oneline(APPROVE)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"), *approved(APPROVE),
                          flow="oneline")

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED
    assert await ivr.states(payment) == ["created", "risk_passed", "answered", "confirmed",
                                          "pin_entry", "authorizing", "approved", "approved"]
    # No goodbye, no hang-up: the dialplan goes on and bridges the caller back to the agent,
    # whose call recording the switch paused (tests/integration/test_orders_api.py) goes on.
    assert caller.prompts[-1].startswith("digit_") and caller.hung_up_by is None
    assert caller.variables[dv.RESULT] == "success"
    assert fake_ami.sent("Redirect") == []
    [resume] = fake_ami.sent("MixMonitorMute")
    assert (resume["Channel"], resume["Direction"], resume["State"]) == (AGENT_CHANNEL, "both", "0")
    assert (await ivr.store.history(payment.id))[-1]["event"] == "recording_resumed"


async def test_oneline_credit_card_wrong_cvv2_is_declined(ivr: Ivr, orders: Orders,
                                                          fake_ami: FakeAmi) -> None:
    payment = await orders.oneline(CREDIT)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                          asks("enter_expiry", "1329"), plays("invalid_expiry"),
                          asks("enter_expiry", CREDIT_MMYY), asks("enter_cvv2", "123"),
                          plays("please_wait"), plays("declined_invalid_cvv2"), flow="oneline")

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.DECLINED and payment.response_code == "82"
    assert caller.prompts[-1] == "declined_invalid_cvv2"


async def test_oneline_refused_goes_back_to_the_agent(ivr: Ivr, orders: Orders,
                                                      fake_ami: FakeAmi) -> None:
    payment = await orders.oneline(APPROVE)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "2"),
                          plays("payment_refused"), flow="oneline")

    assert (await ivr.store.get(payment.id)).status is PaymentState.REFUSED
    assert caller.hung_up_by is None and fake_ami.sent("Redirect") == []


async def test_oneline_caller_hanging_up_mid_pin_releases_the_agent(
        ivr: Ivr, orders: Orders, fake_ami: FakeAmi) -> None:
    payment = await orders.oneline(APPROVE)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                          asks("enter_pin", hang_up=True), flow="oneline")

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.ABANDONED and caller.hung_up_by == "caller"
    assert ivr.flows.endings == ["AgiHangup"] and ivr.journal() == []
    [redirect] = fake_ami.sent("Redirect")
    assert (redirect["Channel"], redirect["Context"]) == (AGENT_CHANNEL, "agent-released")
    assert [m["State"] for m in fake_ami.sent("MixMonitorMute")] == ["0"]  # resumed all the same


async def test_oneline_without_the_card_number_fails_and_returns_to_the_agent(
        ivr: Ivr, orders: Orders, fake_ami: FakeAmi) -> None:
    payment = await orders.oneline(APPROVE)
    await ivr.redis.delete(f"pay:{payment.id}:pan")
    caller = await answer(ivr, payment, plays("service_unavailable"), flow="oneline")

    assert (await ivr.store.get(payment.id)).status is PaymentState.FAILED
    assert caller.prompts == ["service_unavailable"] and fake_ami.sent("Redirect") == []


async def test_a_merchant_admitted_while_running_is_spoken_on_its_first_call(
        ivr: Ivr, orders: Orders) -> None:
    """A merchant admitted while the stack runs has no prompt in the manifest: its name is
    synthesized for its first call (ivr/spoken_names.py), with no rebuild."""
    admitted, _, _ = await ivr.ctx.merchants.admit(
        {"id": "M200001", "name_en": "Harbour Books", "name_zh": "海港书店", "mcc": "5942",
         "max_amount": "500.00"})
    orders.merchant = admitted
    payment = await orders.callback(APPROVE)
    name = SpokenNames(Path("unused"), Manifest.load().voices).key("Harbour Books", "en")
    intro = [plays("callback_intro"), plays(name), *INTRO[2:]]
    caller = await answer(ivr, payment, *intro, asks("confirm_menu", "2"),
                          plays("payment_refused"), plays("goodbye"))
    assert (await ivr.store.get(payment.id)).status is PaymentState.REFUSED
    assert caller.prompts[:2] == ["callback_intro", name] and name != MERCHANT_NAME
