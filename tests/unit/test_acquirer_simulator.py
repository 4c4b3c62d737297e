"""The acquirer simulator, driven through ``handle`` with real keys, PIN blocks and card book."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from datetime import date, datetime
from pathlib import Path

import iso8583
import pytest

from ivr.hostlink.bin_table import BinInfo, BinTable, BinTableError, UnknownBin
from simulators.acquirer.cardbook import CardBook, issue_cards, verify_pin
from simulators.acquirer.settings import AcquirerSettings, load_acquirer_settings
from simulators.acquirer.server import journal_path, prepare_acquirer
from simulators.acquirer.simulator import AcquirerSimulator
from simulators.acquirer.testcards import SEED_PATH, TestCard, find_test_card, load_test_cards
from ivr.config import load_settings
from ivr.crypto.cvv2 import encrypt_cvv2
from ivr.crypto.keys import load_ivr_keys
from ivr.crypto.pinblock import encipher_pinblock_iso_4
from ivr.hostlink.messages import (
    EchoRequest,
    EchoResponse,
    PurchaseRequest,
    PurchaseResponse,
    ResponseCode,
    ReversalRequest,
    ReversalResponse,
)
from ivr.hostlink.spec import VOICEPAY_SPEC
from ivr.validation import luhn_valid

IVR = load_settings()  # the terminal and merchant ids the IVR sends
NOT_IN_BOOK = "6221889999999994"
DELAY = 0.3


class Harness:
    def __init__(self, settings: AcquirerSettings, today: date | None = None) -> None:
        self.settings = settings
        keys, book = prepare_acquirer(settings)
        self.journal = journal_path(settings)
        kwargs = {"today": (lambda: today)} if today else {}
        self.sim = AcquirerSimulator(keys, book, self.journal, settings.issuer_delay, **kwargs)
        ivr_keys = load_ivr_keys(load_settings(var_dir=settings.var_dir).ivr_keys_file)
        self.pek = ivr_keys.pek
        self.cvv_key = ivr_keys.cvv_key
        self._stan = itertools.count(1)

    def purchase(
        self, card: TestCard | str, pin: str | None = None, amount: int = 1000, **changes: object
    ) -> PurchaseRequest:
        pan = card if isinstance(card, str) else card.pan
        pin = pin if pin is not None else (card.pin if isinstance(card, TestCard) else "123456")
        request = PurchaseRequest.create(
            pan=pan,
            amount=amount,
            pin_block=encipher_pinblock_iso_4(self.pek, pin, pan),
            stan=f"{next(self._stan):06d}",
            terminal_id=IVR.terminal_id,
            merchant_id=IVR.merchant_id,
        )
        if changes:
            fields = {**request.__dict__, **changes}
            request = PurchaseRequest(**fields)
        return request

    def credit(
        self,
        card: TestCard,
        *,
        expiry: str | None = None,
        cvv2: str | None = None,
        amount: int = 1000,
        pin: str | None = None,
    ) -> PurchaseRequest:
        """A card-not-present purchase as the IVR builds it: expiry YYMM, CVV2 sealed, no PIN."""
        stan = f"{next(self._stan):06d}"
        return PurchaseRequest.create(
            pan=card.pan,
            amount=amount,
            stan=stan,
            terminal_id=IVR.terminal_id,
            merchant_id=IVR.merchant_id,
            expiry=expiry or card.expiry,
            cvv2_block=encrypt_cvv2(self.cvv_key, bytearray((cvv2 or card.cvv2 or "").encode()), card.pan, stan),
            pin_block=encipher_pinblock_iso_4(self.pek, pin, card.pan) if pin else None,
        )

    async def pay(self, request: PurchaseRequest) -> PurchaseResponse:
        answer = await self.sim.handle(request.encode())
        assert answer is not None
        return PurchaseResponse.decode(answer)

    async def reverse(self, request: PurchaseRequest) -> ReversalResponse:
        answer = await self.sim.handle(ReversalRequest.for_purchase(request).encode())
        assert answer is not None
        return ReversalResponse.decode(answer)

    def journal_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.journal.read_text().splitlines()]


@pytest.fixture
def settings(tmp_path: Path) -> AcquirerSettings:
    return load_acquirer_settings(var_dir=tmp_path, issuer_delay=DELAY)


@pytest.fixture
def h(settings: AcquirerSettings) -> Harness:
    return Harness(settings)


def card(name: str) -> TestCard:
    return find_test_card(name)


def test_seed_cards_are_as_documented() -> None:
    cards = load_test_cards()
    pans = [c.pan for c in cards]
    pins = [c.pin for c in cards]
    assert len(set(pans)) == len(pans) and len(set(pins)) == len(pins)
    assert {len(p) for p in pans} == {16, 19}
    for c in cards:
        assert c.pan.startswith(("622188", "625906")) and luhn_valid(c.pan)
        assert len(c.pin) == 6 and c.pin.isdigit()
        assert not any(c.pin in pan for pan in pans)
    assert {"approve", "wrong_pin", "insufficient_funds", "expired", "blocked", "do_not_honour",
            "issuer_timeout", "issuer_down", "credit_approve", "credit_insufficient"} <= {c.name for c in cards}
    assert card("insufficient_funds").balance == 1000
    assert card("credit_insufficient").balance == 5000
    assert luhn_valid(NOT_IN_BOOK) and NOT_IN_BOOK not in pans
    assert "119922" not in repr(card("approve")) and card("approve").pan not in repr(card("approve"))


def test_credit_cards_and_their_documented_cvv2s() -> None:
    cards = load_test_cards()
    credit = [c for c in cards if c.pan.startswith("625906")]
    assert {c.name for c in credit} == {"credit_approve", "credit_insufficient"}
    assert all(c.cvv2 is None for c in cards if c not in credit)
    cvv2s = [c.cvv2 for c in credit]
    assert len(set(cvv2s)) == len(cvv2s)
    for c in credit:
        assert c.cvv2 is not None and len(c.cvv2) == 3 and c.cvv2.isdigit() and len(c.pan) == 16
        # That it is the Visa method under the development CVK: test_published_vectors.py.
        # Distinct from every other secret, so a leak scan can tell them apart.
        assert not any(c.cvv2 in other.pan or c.cvv2 in other.pin for other in cards)
        assert c.cvv2 not in repr(c) and c.pan not in repr(c)
    assert card("credit_approve").cvv2 == "398" and card("credit_insufficient").cvv2 == "552"


def test_bin_table_from_the_seed() -> None:
    table = BinTable.load(SEED_PATH)
    assert table.lookup(card("approve").pan) == BinInfo("debit", "Voicepay Test Bank", "语音支付测试银行")
    assert table.lookup(card("approve_19").pan).card_type == "debit"
    credit = table.lookup(card("credit_approve").pan)
    assert credit == BinInfo("credit", "Voicepay Test Credit", "测试信用卡中心")
    assert credit.is_credit and credit.issuer("zh") == "测试信用卡中心"
    assert credit.issuer("en") == "Voicepay Test Credit"
    assert table.lookup(NOT_IN_BOOK).card_type == "debit"


def test_bin_table_longest_prefix_and_unknown_bins() -> None:
    table = BinTable({
        "4": BinInfo("credit", "Wide", "宽"),
        "4111": BinInfo("debit", "Narrow", "窄"),
        "411122": BinInfo("credit", "Narrowest", "最窄"),
    })
    assert table.lookup("4000000000000002").issuer_en == "Wide"
    assert table.lookup("4111110000000000").issuer_en == "Narrow"
    assert table.lookup("4111220000000000").issuer_en == "Narrowest"
    pan = "5555555555554444"
    for bad in (pan, "", "41x1", "4"):  # the whole PAN is never a BIN of itself
        with pytest.raises(UnknownBin) as excinfo:
            table.lookup(bad)
        assert pan not in str(excinfo.value)
    assert isinstance(excinfo.value, LookupError)
    with pytest.raises(BinTableError, match="debit' or 'credit"):
        BinInfo("prepaid", "X", "X")  # type: ignore[arg-type]
    with pytest.raises(BinTableError, match="1 to 11 digits"):
        BinTable({"62a": BinInfo("debit", "X", "X")})


def test_bin_table_files(tmp_path: Path) -> None:
    with pytest.raises(BinTableError, match="not found"):
        BinTable.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"bins": {"622188": {"card_type": "debit"}}}')
    with pytest.raises(BinTableError, match="malformed"):
        BinTable.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(BinTableError, match="unreadable"):
        BinTable.load(tmp_path / "junk.json")
    table = BinTable.load(SEED_PATH)
    table.write(tmp_path / "out" / "bins.json")
    assert BinTable.load(tmp_path / "out" / "bins.json") == table and len(table) == 2


def test_prepare_acquirer_publishes_the_bin_table(settings: AcquirerSettings, h: Harness) -> None:
    path = settings.bin_table_file
    assert path == load_settings(var_dir=settings.var_dir).bin_table_file
    published = BinTable.load(path)
    assert published == BinTable.load(SEED_PATH)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert set(document) == {"format", "note", "bins"}
    assert document["bins"]["625906"]["issuer_zh"] == "测试信用卡中心"
    # Only BINs: no card numbers, PINs or CVV2s.
    text = path.read_text(encoding="utf-8")
    for test_card in load_test_cards():
        assert test_card.pan not in text and test_card.pin not in text
        assert test_card.cvv2 is None or test_card.cvv2 not in text


def test_issued_book_has_card_types_and_nothing_about_cvv2(settings: AcquirerSettings, h: Harness) -> None:
    text = (settings.files_dir / "cardbook.json").read_text()
    book = CardBook.load(settings.files_dir / "cardbook.json")
    for seed in load_test_cards():
        issued = book.get(seed.pan)
        assert issued is not None
        if seed.cvv2 is not None:
            assert issued.card_type == "credit" and issued.is_credit and issued.issuer == "Voicepay Test Credit"
            assert f'"{seed.cvv2}"' not in text
        else:
            assert issued.card_type == "debit" and issued.issuer == "Voicepay Test Bank"
    assert "cvv" not in text.lower()
    assert "credit" in repr(book.get(card("credit_approve").pan))


def test_a_card_book_of_the_old_format_is_reissued(settings: AcquirerSettings, h: Harness) -> None:
    path = settings.files_dir / "cardbook.json"
    document = json.loads(path.read_text())
    document["format"] = 1
    for entry in document["cards"]:
        del entry["card_type"], entry["issuer"]
    path.write_text(json.dumps(document))
    _, book = prepare_acquirer(settings)
    assert book.get(card("credit_approve").pan).card_type == "credit"  # type: ignore[union-attr]
    assert json.loads(path.read_text())["format"] == 2


def test_issued_book_has_offsets_and_no_pins(settings: AcquirerSettings, h: Harness) -> None:
    text = (settings.files_dir / "cardbook.json").read_text()
    book = CardBook.load(settings.files_dir / "cardbook.json")
    keys, _ = prepare_acquirer(settings)
    for seed in load_test_cards():
        assert f'"{seed.pin}"' not in text
        issued = book.get(seed.pan)
        assert issued is not None and len(issued.pin_offset) == 6
        assert verify_pin(issued, seed.pin, keys.pvk)
        assert not verify_pin(issued, "000000", keys.pvk)
        assert not verify_pin(issued, seed.pin[:4], keys.pvk)


def test_simulator_refuses_a_book_issued_under_another_pvk(settings: AcquirerSettings, tmp_path: Path) -> None:
    keys, _ = prepare_acquirer(settings)
    stale = issue_cards(SEED_PATH, bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), tmp_path / "stale.json")
    with pytest.raises(Exception, match="another PVK"):
        AcquirerSimulator(keys, stale, tmp_path / "j.jsonl", 0)


async def test_approve_charges_and_journals(h: Harness) -> None:
    approve = card("approve")
    before = h.sim.balance(approve.pan)
    request = h.purchase(approve, amount=12345)
    response = await h.pay(request)
    assert response.response_code is ResponseCode.APPROVED
    assert response.stan == request.stan and response.amount == 12345
    assert response.auth_code is not None and len(response.auth_code) == 6
    assert len(response.rrn) == 12
    assert h.sim.balance(approve.pan) == before - 12345
    [line] = h.journal_lines()
    assert line["mti"] == "0200" and line["stan"] == request.stan and line["terminal"] == "VPIVR001"
    assert line["pan"] == "622188******0011" and line["amount"] == 12345
    assert line["response_code"] == "00" and line["rrn"] == response.rrn
    assert line["duplicate"] is False and line["reversed"] is False
    assert line["balance_after"] == before - 12345
    # Microsecond timestamps: no lone 3-digit millisecond field that reads like a CVV2.
    assert datetime.fromisoformat(line["time"]).tzinfo is not None and len(line["time"].split(".")[1]) == 12


@pytest.mark.parametrize(
    ("name", "pin", "amount", "code"),
    [
        ("approve", None, 5_000_000, ResponseCode.APPROVED),  # exactly the limit
        ("approve_19", None, 1000, ResponseCode.APPROVED),
        ("approve", None, 5_000_001, ResponseCode.EXCEEDS_AMOUNT_LIMIT),
        ("approve", None, 0, ResponseCode.INVALID_AMOUNT),
        ("wrong_pin", "123456", 1000, ResponseCode.INCORRECT_PIN),
        ("insufficient_funds", None, 1000, ResponseCode.APPROVED),
        ("insufficient_funds", None, 1001, ResponseCode.INSUFFICIENT_FUNDS),
        ("expired", None, 1000, ResponseCode.EXPIRED_CARD),
        ("blocked", None, 1000, ResponseCode.PIN_TRIES_EXCEEDED),
        ("do_not_honour", None, 1000, ResponseCode.DO_NOT_HONOUR),
        ("issuer_down", None, 1000, ResponseCode.ISSUER_UNAVAILABLE),
        ("restricted", None, 1000, ResponseCode.RESTRICTED_CARD),
    ],
)
async def test_response_codes(h: Harness, name: str, pin: str | None, amount: int, code: ResponseCode) -> None:
    test_card = card(name)
    before = h.sim.balance(test_card.pan)
    response = await h.pay(h.purchase(test_card, pin, amount))
    assert response.response_code is code
    assert (response.auth_code is not None) is code.approved
    assert h.sim.balance(test_card.pan) == (before - amount if code.approved else before)
    assert h.journal_lines()[-1]["response_code"] == code.value


async def test_card_not_in_book_is_14(h: Harness) -> None:
    response = await h.pay(h.purchase(NOT_IN_BOOK))
    assert response.response_code is ResponseCode.INVALID_CARD_NUMBER
    assert h.journal_lines()[-1]["pan"] == "622188******9994"


async def test_invalid_transaction_is_12(h: Harness) -> None:
    response = await h.pay(h.purchase(card("approve"), processing_code="310000"))
    assert response.response_code is ResponseCode.INVALID_TRANSACTION


async def test_wrong_expiry_in_field_14_is_54(h: Harness) -> None:
    response = await h.pay(h.purchase(card("approve"), expiry="2901"))
    assert response.response_code is ResponseCode.EXPIRED_CARD
    response = await h.pay(h.purchase(card("approve"), expiry="3012"))
    assert response.response_code is ResponseCode.APPROVED


async def test_expiry_is_checked_against_today(settings: AcquirerSettings) -> None:
    approve = card("approve")  # expires 3012
    in_month = Harness(settings, today=date(2030, 12, 31))
    assert (await in_month.pay(in_month.purchase(approve))).response_code is ResponseCode.APPROVED
    after = Harness(settings, today=date(2031, 1, 1))
    assert (await after.pay(after.purchase(approve))).response_code is ResponseCode.EXPIRED_CARD


async def test_undecipherable_pin_block_is_96_and_not_a_pin_try(h: Harness) -> None:
    wrong_pin = card("wrong_pin")
    for _ in range(4):
        response = await h.pay(h.purchase(wrong_pin, pin_block=os.urandom(16)))
        assert response.response_code is ResponseCode.SYSTEM_MALFUNCTION
    assert h.sim.card_status(wrong_pin.pan) == "active"


async def test_debit_purchase_without_pin_block_is_12(h: Harness) -> None:
    approve = card("approve")
    request = h.purchase(approve)
    doc = {k: v for k, v in iso8583.decode(request.encode(), VOICEPAY_SPEC)[0].items() if k not in ("52", "p")}
    raw, _ = iso8583.encode(doc, VOICEPAY_SPEC)
    answer = await h.sim.handle(bytes(raw))
    assert answer is not None
    response = PurchaseResponse.decode(answer)
    assert response.response_code is ResponseCode.INVALID_TRANSACTION and response.stan == request.stan
    assert h.journal_lines()[-1]["response_code"] == "12"
    # Nor does expiry + CVV2 stand in for the PIN of a debit card.
    cvv2_only = h.credit(approve, cvv2="123")
    assert (await h.pay(cvv2_only)).response_code is ResponseCode.INVALID_TRANSACTION
    assert h.sim.balance(approve.pan) == approve.balance


async def test_debit_ignores_a_cvv2_block(h: Harness) -> None:
    approve = card("approve")
    request = h.purchase(approve, cvv2_block=h.credit(approve, cvv2="000").cvv2_block)
    assert (await h.pay(request)).approved


async def test_credit_approved_with_expiry_and_cvv2(h: Harness) -> None:
    credit = card("credit_approve")
    request = h.credit(credit, amount=12345)
    assert request.pin_block is None and request.expiry == "2911"
    response = await h.pay(request)
    assert response.response_code is ResponseCode.APPROVED and response.auth_code
    assert h.sim.balance(credit.pan) == credit.balance - 12345
    line = h.journal_lines()[-1]
    assert line["pan"] == "625906******0015" and line["response_code"] == "00"


def test_expiry_as_keyed_mmyy_becomes_field_14_yymm() -> None:
    keyed = "1129"  # what the cardholder types: month, then year
    assert keyed[2:] + keyed[:2] == card("credit_approve").expiry


async def test_credit_wrong_cvv2_is_82_and_never_blocks(h: Harness) -> None:
    credit = card("credit_approve")
    wrong = "399" if credit.cvv2 != "399" else "400"
    for _ in range(5):
        response = await h.pay(h.credit(credit, cvv2=wrong))
        assert response.response_code is ResponseCode.BAD_CVV2 and response.auth_code is None
        assert response.response_code.description == "CVV2 verification failed"
    assert h.sim.card_status(credit.pan) == "active"
    assert h.sim.balance(credit.pan) == credit.balance
    # Another card's CVV2 is just as wrong.
    response = await h.pay(h.credit(credit, cvv2=card("credit_insufficient").cvv2))
    assert response.response_code is ResponseCode.BAD_CVV2
    assert (await h.pay(h.credit(credit))).approved
    assert [line["response_code"] for line in h.journal_lines()] == ["82"] * 6 + ["00"]


async def test_credit_wrong_expiry_is_54(h: Harness) -> None:
    credit = card("credit_approve")
    for expiry in ("2912", "1129", "3011"):
        response = await h.pay(h.credit(credit, expiry=expiry))
        assert response.response_code is ResponseCode.EXPIRED_CARD
    assert h.sim.balance(credit.pan) == credit.balance


async def test_credit_expiry_is_checked_against_today(settings: AcquirerSettings) -> None:
    credit = card("credit_approve")  # expires 2911
    late = Harness(settings, today=date(2029, 12, 1))
    assert (await late.pay(late.credit(credit))).response_code is ResponseCode.EXPIRED_CARD


@pytest.mark.parametrize(
    ("name", "amount", "code"),
    [
        ("credit_approve", 1_000_000, ResponseCode.APPROVED),  # exactly the limit
        ("credit_approve", 1_000_001, ResponseCode.EXCEEDS_AMOUNT_LIMIT),
        ("credit_insufficient", 5000, ResponseCode.APPROVED),
        ("credit_insufficient", 5001, ResponseCode.INSUFFICIENT_FUNDS),
    ],
)
async def test_credit_limits_and_available_credit(h: Harness, name: str, amount: int, code: ResponseCode) -> None:
    credit = card(name)
    response = await h.pay(h.credit(credit, amount=amount))
    assert response.response_code is code
    assert h.sim.balance(credit.pan) == (credit.balance - amount if code.approved else credit.balance)


async def test_credit_needs_both_expiry_and_cvv2(h: Harness) -> None:
    credit = card("credit_approve")
    full = h.credit(credit)
    for changes in ({"expiry": None}, {"cvv2_block": None}, {"expiry": None, "cvv2_block": None}):
        request = PurchaseRequest(**{**full.__dict__, **changes, "stan": f"{next(h._stan):06d}"})
        assert (await h.pay(request)).response_code is ResponseCode.INVALID_TRANSACTION
    # A PIN block does not replace them: a credit card's PIN is not verified here.
    pin_only = h.purchase(credit)
    assert (await h.pay(pin_only)).response_code is ResponseCode.INVALID_TRANSACTION
    assert h.sim.balance(credit.pan) == credit.balance


async def test_credit_ignores_a_pin_block(h: Harness) -> None:
    credit = card("credit_approve")
    assert (await h.pay(h.credit(credit, pin="000000"))).approved
    assert (await h.pay(h.credit(credit, pin=credit.pin))).approved


async def test_undecryptable_cvv2_block_is_96(h: Harness) -> None:
    credit = card("credit_approve")
    request = h.credit(credit)
    garbage = PurchaseRequest(**{**request.__dict__, "cvv2_block": os.urandom(31)})
    assert (await h.pay(garbage)).response_code is ResponseCode.SYSTEM_MALFUNCTION
    # A block sealed for another STAN (a replayed CVV2) does not open either.
    replay = PurchaseRequest(**{**request.__dict__, "stan": "999999"})
    assert (await h.pay(replay)).response_code is ResponseCode.SYSTEM_MALFUNCTION
    assert h.sim.card_status(credit.pan) == "active" and h.sim.balance(credit.pan) == credit.balance


async def test_credit_reversal_restores_available_credit(h: Harness) -> None:
    credit = card("credit_approve")
    request = h.credit(credit, amount=7000)
    assert (await h.pay(request)).approved
    reversal = ReversalRequest.for_purchase(request)
    assert reversal.expiry == request.expiry and "48" not in iso8583.decode(reversal.encode(), VOICEPAY_SPEC)[0]
    assert (await h.reverse(request)).response_code is ResponseCode.APPROVED
    assert h.sim.balance(credit.pan) == credit.balance


async def test_cvv2_is_never_in_the_journal_or_the_log(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    credit_cards = [card("credit_approve"), card("credit_insufficient")]
    requests = []
    for credit in credit_cards:
        requests += [
            h.credit(credit),
            h.credit(credit, cvv2="123"),
            h.credit(credit, expiry="2101"),
            h.credit(credit, amount=9_999_999),
        ]
    for request in requests:
        await h.pay(request)
        await h.reverse(request)
    # Messages only: caplog.text also has source line numbers, which could spell a CVV2.
    messages = "\n".join(caplog.messages)
    assert "acquirer mti=0200" in messages
    text = h.journal.read_text() + messages
    fields = json.dumps([{k: v for k, v in line.items() if k not in ("rrn", "time")} for line in h.journal_lines()])
    for credit in credit_cards:
        assert credit.cvv2 is not None
        assert credit.pan not in text and credit.cvv2 not in fields and "123" not in fields
        assert credit.cvv2 not in messages
    for request in requests:
        assert request.cvv2_block is not None
        assert request.cvv2_block.hex() not in text.lower()
        assert request.expiry not in fields
    assert all("cvv" not in key for line in h.journal_lines() for key in line)


async def test_garbage_gets_no_answer_but_is_journaled(h: Harness) -> None:
    assert await h.sim.handle(b"0200garbage") is None
    assert await h.sim.handle(b"\x00\x01\x02") is None
    assert [line["response_code"] for line in h.journal_lines()] == [None, None]


async def test_echo(h: Harness) -> None:
    answer = await h.sim.handle(EchoRequest("000099", "0307090501").encode())
    assert answer is not None
    response = EchoResponse.decode(answer)
    assert response.stan == "000099" and response.response_code is ResponseCode.APPROVED
    assert h.journal_lines()[-1]["mti"] == "0800"


async def test_duplicate_is_answered_from_cache_and_charged_once(h: Harness) -> None:
    approve = card("approve")
    before = h.sim.balance(approve.pan)
    raw = h.purchase(approve, amount=500).encode()
    first = await h.sim.handle(raw)
    second = await h.sim.handle(raw)
    assert first == second and first is not None
    assert PurchaseResponse.decode(first).response_code is ResponseCode.APPROVED
    assert h.sim.balance(approve.pan) == before - 500
    assert [line["duplicate"] for line in h.journal_lines()] == [False, True]


async def test_same_key_other_content_is_94(h: Harness) -> None:
    approve = card("approve")
    request = h.purchase(approve, amount=500)
    await h.pay(request)
    clash = PurchaseRequest(**{**request.__dict__, "amount": 700})
    response = await h.pay(clash)
    assert response.response_code is ResponseCode.DUPLICATE
    assert h.sim.balance(approve.pan) == approve.balance - 500


async def test_reversal_restores_the_balance_once(h: Harness) -> None:
    approve = card("approve")
    request = h.purchase(approve, amount=2500)
    assert (await h.pay(request)).approved
    assert h.sim.balance(approve.pan) == approve.balance - 2500
    reversal = ReversalRequest.for_purchase(request)
    for _ in range(2):  # a retried reversal is a duplicate, not a second refund
        answer = await h.sim.handle(reversal.encode())
        assert answer is not None
        assert ReversalResponse.decode(answer).response_code is ResponseCode.APPROVED
    assert h.sim.balance(approve.pan) == approve.balance
    lines = h.journal_lines()
    assert [(line["mti"], line["reversed"], line["duplicate"]) for line in lines] == [
        ("0200", False, False),
        ("0400", True, False),
        ("0400", True, True),
    ]
    assert lines[1]["balance_after"] == approve.balance and lines[1]["rrn"] == lines[0]["rrn"]


async def test_reversal_of_a_declined_purchase_changes_nothing(h: Harness) -> None:
    poor = card("insufficient_funds")
    request = h.purchase(poor, amount=5000)
    assert (await h.pay(request)).response_code is ResponseCode.INSUFFICIENT_FUNDS
    assert (await h.reverse(request)).response_code is ResponseCode.APPROVED
    assert h.sim.balance(poor.pan) == 1000


async def test_unknown_original_is_25_and_logged(h: Harness) -> None:
    request = h.purchase(card("approve"))
    response = await h.reverse(request)
    assert response.response_code is ResponseCode.ORIGINAL_NOT_FOUND
    line = h.journal_lines()[-1]
    assert line["mti"] == "0400" and line["response_code"] == "25" and line["reversed"] is False


async def test_original_arriving_after_its_reversal_is_not_charged(h: Harness) -> None:
    approve = card("approve")
    request = h.purchase(approve)
    assert (await h.reverse(request)).response_code is ResponseCode.ORIGINAL_NOT_FOUND
    response = await h.pay(request)
    assert not response.approved
    assert h.sim.balance(approve.pan) == approve.balance


async def test_three_wrong_pins_block_the_card(h: Harness) -> None:
    wrong_pin = card("wrong_pin")
    codes = [(await h.pay(h.purchase(wrong_pin, "000000"))).response_code for _ in range(3)]
    assert codes == [ResponseCode.INCORRECT_PIN] * 3
    assert h.sim.card_status(wrong_pin.pan) == "pin_tries_exceeded"
    # Blocked now, even with the right PIN.
    assert (await h.pay(h.purchase(wrong_pin))).response_code is ResponseCode.PIN_TRIES_EXCEEDED
    assert h.sim.balance(wrong_pin.pan) == wrong_pin.balance


async def test_correct_pin_resets_the_try_counter(h: Harness) -> None:
    wrong_pin = card("wrong_pin")
    for _ in range(2):
        assert (await h.pay(h.purchase(wrong_pin, "000000"))).response_code is ResponseCode.INCORRECT_PIN
    assert (await h.pay(h.purchase(wrong_pin))).approved
    for _ in range(2):
        assert (await h.pay(h.purchase(wrong_pin, "000000"))).response_code is ResponseCode.INCORRECT_PIN
    assert h.sim.card_status(wrong_pin.pan) == "active"


async def test_slow_issuer_answers_after_the_delay(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # What is checked is the wait the simulator asks for, not a wall-clock duration.
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("simulators.acquirer.simulator.asyncio.sleep", recording_sleep)
    slow = card("issuer_timeout")
    response = await h.pay(h.purchase(slow))
    assert waits == [DELAY]
    assert response.approved
    assert h.sim.balance(slow.pan) == slow.balance - 1000


async def test_late_original_after_reversal_does_not_charge(h: Harness) -> None:
    slow = card("issuer_timeout")
    request = h.purchase(slow, amount=4000)
    pending = asyncio.create_task(h.sim.handle(request.encode()))
    await asyncio.sleep(DELAY / 3)
    assert not pending.done()
    assert (await h.reverse(request)).response_code is ResponseCode.APPROVED
    answer = await pending
    assert answer is not None
    late = PurchaseResponse.decode(answer)
    assert not late.approved and late.response_code is ResponseCode.ISSUER_UNAVAILABLE
    assert h.sim.balance(slow.pan) == slow.balance
    reversal_line, original_line = h.journal_lines()
    assert reversal_line["mti"] == "0400" and reversal_line["reversed"] is True
    assert original_line["mti"] == "0200" and original_line["reversed"] is True
    assert original_line["balance_after"] == slow.balance


async def test_duplicate_of_a_pending_purchase_waits_for_the_same_answer(h: Harness) -> None:
    slow = card("issuer_timeout")
    raw = h.purchase(slow, amount=300).encode()
    first, second = await asyncio.gather(h.sim.handle(raw), h.sim.handle(raw))
    assert first == second and first is not None
    assert PurchaseResponse.decode(first).approved
    assert h.sim.balance(slow.pan) == slow.balance - 300


async def test_journal_never_holds_pan_pin_or_pin_block(h: Harness) -> None:
    requests = [h.purchase(c) for c in load_test_cards()] + [h.purchase(card("wrong_pin"), "000000")]
    for request in requests:
        if request.pan != card("issuer_timeout").pan:
            await h.pay(request)
            await h.reverse(request)
    text = h.journal.read_text()
    # RRNs and timestamps are random or clock digits that could spell a PIN by chance.
    fields = json.dumps([{k: v for k, v in line.items() if k not in ("rrn", "time")} for line in h.journal_lines()])
    for test_card in load_test_cards():
        assert test_card.pan not in text and test_card.pin not in fields
    for request in requests:
        assert request.pin_block.hex() not in text.lower()
    assert {key for line in h.journal_lines() for key in line} == {
        "time", "mti", "stan", "terminal", "pan", "amount", "response_code", "rrn",
        "duplicate", "reversed", "balance_after", "pin_key_id",
    }
