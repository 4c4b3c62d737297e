"""Risk control against a real Redis: velocity windows and idempotency, lists, the engine's
decisions and audit, providers down, and reloading the rules file."""

from __future__ import annotations

import asyncio
import json

import pytest

from ivr.money import Money
from ivr.risk.audit import DECISIONS, LISTS, RULES, RiskAudit
from ivr.risk.decision import RiskOutcome
from ivr.risk.engine import RulesRiskEngine
from ivr.risk.lists import RiskLists, UnknownList
from ivr.risk.rules import SHIPPED_RULES, RuleBook, RulesError
from ivr.risk.subjects import SubjectDigester, subjects_of
from ivr.risk.velocity import Velocity
from ivr.validation import ValidationError
from tests.integration.risk_fakes import (CARD, ID_NUMBER, MOBILE, OTHER_CARDS, FakeBinding,
                                          FakeIdentity, request)

KEY = bytes(range(32))
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def parts(redis_client, tmp_path):
    audit = RiskAudit(redis_client)
    digester = SubjectDigester(KEY)
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(SHIPPED_RULES.read_text(encoding="utf-8"), encoding="utf-8")
    book = RuleBook(rules_file, audit)
    await book.start()
    identity, binding, clock = FakeIdentity(), FakeBinding(), Clock()
    lists = RiskLists(redis_client, digester, audit)
    engine = RulesRiskEngine(book, lists, Velocity(redis_client), audit, digester, identity,
                             binding, provider_timeout_s=0.2, clock=clock)
    return type("Parts", (), dict(engine=engine, lists=lists, book=book, audit=audit,
                                  identity=identity, binding=binding, clock=clock,
                                  redis=redis_client, rules_file=rules_file))


def _subjects(card=CARD, mobile=MOBILE):
    return subjects_of(SubjectDigester(KEY), card=card, mobile=mobile, id_number=ID_NUMBER,
                       merchant="M100001", source="")


async def test_velocity_counts_sums_and_distinct_cards_over_their_windows(redis_client):
    velocity = Velocity(redis_client)
    first = await velocity.record("pay_1", Money.parse("10.00"), _subjects(), T0)
    assert first["card_payments_1h"] == 1 and first["card_amount_24h"] == 10.0
    assert first["mobile_cards_24h"] == 1 and first["source_payments_10m"] == 0
    second = await velocity.record("pay_2", Money.parse("15.50"), _subjects(OTHER_CARDS[0]), T0 + 60)
    assert second["mobile_cards_24h"] == 2 and second["mobile_payments_24h"] == 2
    assert second["card_payments_1h"] == 1          # another card
    third = await velocity.record("pay_3", Money.parse("1.00"), _subjects(), T0 + 3599)
    assert third["card_payments_1h"] == 2 and third["card_amount_24h"] == 11.0
    # An hour after the first: it left the 1 h window, not the 24 h one.
    later = await velocity.record("pay_4", Money.parse("1.00"), _subjects(), T0 + 3601)
    assert later["card_payments_1h"] == 2 and later["card_payments_24h"] == 3
    assert later["card_amount_24h"] == 12.0
    # A day and a minute later: the first payment and the other card (at T0 + 60) are out.
    next_day = await velocity.record("pay_5", Money.parse("1.00"), _subjects(), T0 + 86400 + 61)
    assert next_day["card_payments_24h"] == 3 and next_day["mobile_cards_24h"] == 1
    assert next_day["card_amount_24h"] == 3.0


async def test_velocity_counts_a_payment_once_however_often_it_is_assessed(redis_client):
    velocity = Velocity(redis_client)
    once = await velocity.record("pay_1", Money.parse("10.00"), _subjects(), T0)
    again = await velocity.record("pay_1", Money.parse("10.00"), _subjects(), T0 + 5)
    assert again == once
    other = await velocity.record("pay_2", Money.parse("10.00"), _subjects(), T0 + 6)
    assert other["card_payments_1h"] == 2 and other["card_amount_24h"] == 20.0


async def test_a_declined_payment_leaves_the_sums_but_not_the_counts(redis_client):
    velocity = Velocity(redis_client)
    await velocity.record("pay_1", Money.parse("30000.00"), _subjects(), T0)
    await velocity.forget_amount("pay_1", Money.parse("30000.00"), _subjects())
    after = await velocity.record("pay_2", Money.parse("100.00"), _subjects(), T0 + 1)
    assert after["card_amount_24h"] == 100.0 and after["card_payments_1h"] == 2


async def _everything(redis) -> bytes:
    """Every key and every member, field and value in Redis, as one blob to search."""
    blob = b""
    for key in await redis.keys("*"):
        kind = await redis.type(key)
        if kind == b"zset":
            blob += b"".join(await redis.zrange(key, 0, -1))
        elif kind == b"hash":
            blob += b"".join(k + v for k, v in (await redis.hgetall(key)).items())
        elif kind == b"stream":
            blob += b"".join(v for _, fields in await redis.xrange(key) for v in fields.values())
        blob += key
    return blob


async def test_risk_control_keeps_no_card_mobile_id_number_or_name(parts):
    await parts.lists.add("review", "id_number", ID_NUMBER)
    await parts.lists.add("block", "card", OTHER_CARDS[0])
    await parts.engine.assess(request("pay_1"))
    blob = await _everything(parts.redis)
    assert b"risk:vel:cards:mobile:" in blob  # the search sees velocity keys
    for secret in (CARD, OTHER_CARDS[0], MOBILE, ID_NUMBER, "张三"):
        assert secret.encode() not in blob


async def test_lists_add_list_hit_and_remove_keeping_only_digests(parts):
    entry = await parts.lists.add("block", "card", CARD, note="reported stolen")
    assert entry.label == "622188******0011"
    [listed] = await parts.lists.entries("block", "card")
    assert listed.digest == entry.digest and listed.note == "reported stolen"
    assert await parts.lists.hits(_subjects()) == {"block:card"}
    assert await parts.lists.hits(_subjects(OTHER_CARDS[0])) == set()
    raw = json.dumps([str(v) for v in (await parts.redis.hgetall("risk:list:block:card")).items()])
    assert CARD not in raw
    assert await parts.lists.remove("block", "card", entry.digest)
    assert not await parts.lists.remove("block", "card", entry.digest)
    assert await parts.lists.hits(_subjects()) == set()
    changes = [e["change"] for e in await parts.audit.newest(LISTS)]
    assert changes == ["remove", "add"]


async def test_lists_refuse_bad_values_and_unknown_lists(parts):
    with pytest.raises(ValidationError):
        await parts.lists.add("block", "card", "6221881000000012")  # fails Luhn
    with pytest.raises(UnknownList):
        await parts.lists.add("grey", "card", CARD)
    with pytest.raises(UnknownList):
        await parts.lists.entries("block", "passport")


async def test_an_honest_payment_is_approved_and_audited_with_its_inputs(parts):
    decision = await parts.engine.assess(request("pay_1"))
    assert decision.outcome is RiskOutcome.APPROVE and decision.rules_version == parts.book.current.version
    [entry] = await parts.audit.newest(DECISIONS)
    assert entry["payment_id"] == "pay_1" and entry["decision"]["outcome"] == "approve"
    assert entry["facts"]["identity"] == "match" and entry["facts"]["card_payments_1h"] == 1
    assert entry["subjects"]["card"]["label"] == "622188******0011"
    text = json.dumps(entry, ensure_ascii=False)
    for secret in (CARD, ID_NUMBER, MOBILE, "张三"):
        assert secret not in text


@pytest.mark.parametrize("identity, binding, outcome", [
    ("mismatch", "bound", RiskOutcome.DECLINE),
    ("match", "not_bound", RiskOutcome.STEP_UP),
    ("not_found", "bound", RiskOutcome.REVIEW),
])
async def test_identity_answers_decide(parts, identity, binding, outcome):
    parts.identity.answer, parts.binding.answer = identity, binding
    assert (await parts.engine.assess(request("pay_1"))).outcome is outcome


@pytest.mark.parametrize("failure", ["fail", "hang", "garbage"])
async def test_a_provider_down_never_approves(parts, failure):
    parts.identity.answer = failure
    decision = await parts.engine.assess(request("pay_1"))
    assert decision.outcome is RiskOutcome.REVIEW and decision.unavailable == ("police",)
    [entry] = await parts.audit.newest(DECISIONS)
    assert entry["facts"]["identity"] == "unavailable"


async def test_self_service_asks_no_provider(parts):
    decision = await parts.engine.assess(request("pay_1", mode="selfservice", name="",
                                                 id_number="", amount="100.00"))
    assert decision.outcome is RiskOutcome.APPROVE
    assert parts.identity.calls == 0 and parts.binding.calls == 0


async def test_a_block_listed_mobile_declines(parts):
    await parts.lists.add("block", "mobile", MOBILE)
    decision = await parts.engine.assess(request("pay_1"))
    assert decision.outcome is RiskOutcome.DECLINE and "block_listed" in decision.summary()


async def test_card_testing_is_declined_and_a_retry_is_not_counted_again(parts):
    outcomes = []
    for i in range(3):
        parts.clock.now += 60
        outcomes.append((await parts.engine.assess(request(f"pay_{i}", amount="1.00"))).outcome)
    assert outcomes == [RiskOutcome.APPROVE, RiskOutcome.APPROVE, RiskOutcome.DECLINE]
    # The third assessed again (a retried request): still three payments on the card, not four.
    await parts.engine.assess(request("pay_2", amount="1.00"))
    assert [e["facts"]["card_payments_1h"] for e in await parts.audit.newest(DECISIONS)] == [3, 3, 2, 1]


async def test_many_cards_on_one_mobile(parts):
    outcomes = [(await parts.engine.assess(request(f"pay_{i}", card=card))).outcome
                for i, card in enumerate(OTHER_CARDS[:5])]
    # Three cards on the mobile: review (60). The fourth is also the fourth on the same ID
    # number (+60): 120, declined; the fifth declines on the mobile alone.
    assert outcomes == [RiskOutcome.APPROVE, RiskOutcome.APPROVE, RiskOutcome.REVIEW,
                        RiskOutcome.DECLINE, RiskOutcome.DECLINE]


async def test_the_daily_card_limit_counts_approved_amounts_only(parts):
    assert (await parts.engine.assess(request("pay_1", amount="19000.00"))).passed
    assert (await parts.engine.assess(request("pay_2", amount="19000.00"))).passed
    assert not (await parts.engine.assess(request("pay_3", amount="19000.00"))).passed
    # The refused 19,000 does not count: 38,000 + 12,000 is within 50,000.
    assert (await parts.engine.assess(request("pay_4", amount="12000.00"))).passed


async def test_a_broken_rules_file_never_replaces_the_running_rules(parts):
    running = parts.book.current.version
    parts.rules_file.write_text("version: x\nthresholds: {step_up: 1}\nrules: []\n", encoding="utf-8")
    result = await parts.book.reload(trigger="admin")
    assert result.result == "rejected" and result.version == running
    assert any("thresholds" in p for p in result.problems)
    assert parts.book.current.version == running
    assert (await parts.engine.assess(request("pay_1"))).rules_version == running
    [entry, *_] = await parts.audit.newest(RULES)
    assert entry["result"] == "rejected" and entry["version"] == running and entry["problems"]


async def test_a_good_rules_file_is_loaded_and_takes_effect(parts):
    text = parts.rules_file.read_text(encoding="utf-8")
    parts.rules_file.write_text(text.replace('version: "2026-11-27.1"', 'version: "strict"')
                                .replace("when: amount > 20000\n", "when: amount > 50\n"),
                                encoding="utf-8")
    result = await parts.book.reload(trigger="admin")
    assert result.result == "loaded" and result.version.startswith("strict+")
    decision = await parts.engine.assess(request("pay_1"))
    assert decision.outcome is RiskOutcome.DECLINE and decision.rules_version == result.version
    assert (await parts.book.reload(trigger="admin")).result == "unchanged"
    results = [e["result"] for e in await parts.audit.newest(RULES)]
    assert results == ["unchanged", "loaded", "loaded"]  # newest first; the last is the start


async def test_the_watcher_reloads_when_the_file_changes(parts):
    audit_len = await parts.redis.xlen(RULES)
    watcher = asyncio.create_task(parts.book.watch(0.01))
    try:
        parts.rules_file.write_text(parts.rules_file.read_text(encoding="utf-8")
                                    .replace("2026-11-27.1", "watched"), encoding="utf-8")
        while await parts.redis.xlen(RULES) == audit_len:
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()
    assert parts.book.current.version.startswith("watched+")
    [entry, *_] = await parts.audit.newest(RULES)
    assert entry["trigger"] == "file-change" and entry["result"] == "loaded"


async def test_a_broken_file_at_start_is_fatal_and_audited(redis_client, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: [", encoding="utf-8")
    with pytest.raises(RulesError):
        await RuleBook(path, RiskAudit(redis_client)).start()
    [entry] = await RiskAudit(redis_client).newest(RULES)
    assert entry["result"] == "rejected" and entry["trigger"] == "start"
