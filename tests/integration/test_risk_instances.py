"""Two ivr instances on one real Redis: a rules reload or a list change on one reaches the other;
a broken file reaches neither."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import pytest

from ivr.risk.audit import RULES, RiskAudit
from ivr.risk.decision import RiskOutcome
from ivr.risk.engine import RulesRiskEngine
from ivr.risk.lists import RiskLists
from ivr.risk.rules import SHARED_KEY, SHIPPED_RULES, RuleBook, read_rules
from ivr.risk.subjects import SubjectDigester
from ivr.risk.velocity import Velocity
from tests.integration.risk_fakes import MOBILE, FakeBinding, FakeIdentity, established, request

KEY = bytes(range(32))
SHIPPED_TEXT = SHIPPED_RULES.read_text(encoding="utf-8")
SHIPPED_VERSION = read_rules(SHIPPED_RULES).version.split("+")[0]
STRICT = (SHIPPED_TEXT.replace(f'version: "{SHIPPED_VERSION}"', 'version: "strict"')
          .replace("when: amount > 20000\n", "when: amount > 50\n"))


@dataclass
class Instance:
    book: RuleBook
    engine: RulesRiskEngine
    lists: RiskLists
    rules_file: object


@pytest.fixture
def make_instance(redis_client, tmp_path):
    async def make(name: str, text: str = SHIPPED_TEXT, written_at: float | None = None) -> Instance:
        """An instance with its own copy of the rules file (as on its own host)."""
        rules_file = tmp_path / f"{name}.yaml"
        rules_file.write_text(text, encoding="utf-8")
        if written_at is not None:
            os.utime(rules_file, (written_at, written_at))
        audit = RiskAudit(redis_client)
        book = RuleBook(rules_file, audit, redis_client, origin=name)
        await book.start()
        digester = SubjectDigester(KEY)
        lists = RiskLists(redis_client, digester, audit)
        engine = RulesRiskEngine(book, lists, Velocity(redis_client), audit, digester,
                                 FakeIdentity(), FakeBinding())
        return Instance(book, engine, lists, rules_file)
    return make


async def _rules_audit(redis_client) -> list[tuple[str, str, str]]:
    return [(e["origin"], e["trigger"], e["result"])
            for e in reversed(await RiskAudit(redis_client).newest(RULES))]


async def test_a_reload_on_one_instance_reaches_the_other(make_instance, redis_client):
    a, b = await make_instance("a"), await make_instance("b")
    await established(a.lists)
    assert a.book.current.version == b.book.current.version
    assert not await b.book.follow()                       # nothing new yet
    a.rules_file.write_text(STRICT, encoding="utf-8")
    result = await a.book.reload(trigger="admin")
    assert result.result == "loaded" and result.version.startswith("strict+")
    assert await b.book.follow()
    assert b.book.current.version == result.version
    decision = await b.engine.assess(request("pay_1"))     # 88 yuan: over the strict 50
    assert decision.outcome is RiskOutcome.DECLINE and decision.rules_version == result.version
    assert await _rules_audit(redis_client) == [
        # b's file is as new as the shared rules and the same: nothing to publish.
        ("a", "start", "loaded"), ("b", "start", "unchanged"), ("a", "admin", "loaded"),
        ("b", "shared", "adopted")]


async def test_every_instances_watcher_adopts_what_another_shared(make_instance):
    a, b = await make_instance("a"), await make_instance("b")
    watcher = asyncio.create_task(b.book.watch(0.01))
    try:
        a.rules_file.write_text(STRICT, encoding="utf-8")
        version = (await a.book.reload(trigger="admin")).version
        while b.book.current.version != version:
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()


async def test_a_broken_file_on_one_instance_reaches_no_instance(make_instance, redis_client):
    a, b = await make_instance("a"), await make_instance("b")
    running = a.book.current.version
    shared = await redis_client.hgetall(SHARED_KEY)
    a.rules_file.write_text("version: x\nthresholds: {step_up: 1}\nrules: []\n", encoding="utf-8")
    assert (await a.book.reload(trigger="admin")).result == "rejected"
    assert await redis_client.hgetall(SHARED_KEY) == shared
    assert not await b.book.follow()
    assert a.book.current.version == b.book.current.version == running


async def test_a_starting_instance_runs_the_shared_rules_unless_its_file_is_newer(
        make_instance, redis_client):
    a = await make_instance("a", STRICT)
    strict = a.book.current.version
    # A host whose file predates the accepted rules (not redeployed): it runs the shared ones.
    stale = await make_instance("stale", SHIPPED_TEXT, written_at=1_000_000_000)
    assert stale.book.current.version == strict
    # A host with a file written after them (a new deployment): its file becomes the rules.
    fresh = await make_instance("fresh", SHIPPED_TEXT.replace(SHIPPED_VERSION, "deployed"),
                                written_at=4_000_000_000)
    assert fresh.book.current.version.startswith("deployed+")
    assert await a.book.follow() and await stale.book.follow()
    assert a.book.current.version == stale.book.current.version == fresh.book.current.version


async def test_shared_rules_this_code_cannot_use_are_refused_once_and_the_running_stay(
        make_instance, redis_client):
    a = await make_instance("a")
    running = a.book.current.version
    # Shared by a newer instance whose rules know a fact this one does not.
    await redis_client.hset(SHARED_KEY, mapping={
        "text": SHIPPED_TEXT.replace("when: amount > 20000\n", "when: future_fact > 1\n"),
        "digest": "f" * 64})
    assert not await a.book.follow()
    assert not await a.book.follow()
    assert a.book.current.version == running
    assert (await _rules_audit(redis_client))[-1] == ("a", "shared", "rejected")
    assert [r for *_, r in await _rules_audit(redis_client)].count("rejected") == 1


async def test_a_list_change_on_one_instance_decides_on_the_other(make_instance):
    a, b = await make_instance("a"), await make_instance("b")
    await established(a.lists)
    assert (await b.engine.assess(request("pay_1"))).outcome is RiskOutcome.APPROVE
    entry = await a.lists.add("block", "mobile", MOBILE, "reported")
    assert (await b.engine.assess(request("pay_2"))).outcome is RiskOutcome.DECLINE
    assert await a.lists.remove("block", "mobile", entry.digest)
    assert (await b.engine.assess(request("pay_3"))).outcome is RiskOutcome.APPROVE
