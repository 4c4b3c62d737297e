"""The risk engine's own speed: decision latency with the providers' latency excluded (stand-ins
that answer at once), on a real Redis (lists and velocity as in production), and decisions per
second of the rules alone (no Redis, no providers)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from bench.risk_traffic import generate, run_traffic, render
from ivr.risk.audit import RiskAudit
from ivr.risk.engine import RulesRiskEngine
from ivr.risk.lists import RiskLists
from ivr.risk.rules import SHIPPED_RULES, read_rules
from ivr.risk.subjects import SubjectDigester
from ivr.risk.velocity import Velocity

__all__ = ["bench_risk"]


class _Instant:
    def __init__(self, answer: str) -> None:
        self._answer = answer

    async def check(self, *args: str) -> str:
        return self._answer


async def bench_risk(report, redis_cm, n: int = 3000) -> None:
    rules = read_rules(SHIPPED_RULES)
    attempts = [a for a in generate(n, seed=1)[0] if a.pattern.startswith("honest")][:n]
    async with redis_cm() as client:
        client: aioredis.Redis
        audit, digester = RiskAudit(client), SubjectDigester(bytes(32))
        engine = RulesRiskEngine(rules, RiskLists(client, digester, audit), Velocity(client),
                                 audit, digester, _Instant("match"), _Instant("bound"))
        samples = []
        for attempt in attempts:
            start = time.perf_counter()
            await engine.assess(attempt.request)
            samples.append(time.perf_counter() - start)
        report("risk_decision", samples, "ms", 1e3)
        print(f"{'risk_engine':<22} n={len(samples):<6} {len(samples) / sum(samples):9.0f} "
              "decisions/s (one at a time, Redis included)")
        facts = [e["facts"] async for e in audit.all("risk:audit:decisions")]
        start = time.perf_counter()
        for f in facts:
            rules.evaluate(f)
        elapsed = time.perf_counter() - start
        print(f"{'risk_rules_only':<22} n={len(facts):<6} {len(facts) / elapsed:9.0f} decisions/s "
              f"({len(rules.rules)} rules)")
        await client.flushdb()
        print(render(await run_traffic(client)))
