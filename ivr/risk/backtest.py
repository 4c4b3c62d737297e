"""Backtest: what a new rules file would have decided for the payments already decided.

    python -m ivr.risk.backtest rules-new.yaml [--examples 5] [--redis redis://...]

Every decision in the audit stream keeps the facts it was made on (list hits, velocity numbers and
identity answers as they were then), so a new file is run over exactly those inputs; the latest
decision of each payment counts. The report gives the outcomes before and after, every change of
outcome with its count and example payment ids, and how often each rule fired. The facts cannot
be recomputed: a new velocity window or a list entry added since is not seen by a backtest.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from ivr.config import load_settings
from ivr.risk.audit import DECISIONS, RiskAudit
from ivr.risk.rules import RuleSet, RulesError, read_rules

__all__ = ["Backtest", "backtest", "main"]


@dataclass
class Backtest:
    version: str
    payments: int = 0
    before: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)
    changes: Counter = field(default_factory=Counter)          # (old, new) -> count
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    fired_before: Counter = field(default_factory=Counter)
    fired_after: Counter = field(default_factory=Counter)

    @property
    def changed(self) -> int:
        return sum(self.changes.values())

    def render(self) -> str:
        lines = [f"backtest of rules {self.version} over {self.payments} decided payments: "
                 f"{self.changed} would change"]
        lines.append("outcome      before    after")
        for outcome in ("approve", "step_up", "review", "decline"):
            lines.append(f"{outcome:<10} {self.before[outcome]:>8} {self.after[outcome]:>8}")
        for (old, new), count in self.changes.most_common():
            lines.append(f"{old} -> {new}: {count}, e.g. {', '.join(self.examples[(old, new)])}")
        lines.append("rule                                   fired before    after")
        for name in sorted(set(self.fired_before) | set(self.fired_after)):
            lines.append(f"{name:<38} {self.fired_before[name]:>12} {self.fired_after[name]:>8}")
        return "\n".join(lines)


def backtest(rules: RuleSet, entries: Iterable[dict[str, Any]], examples: int = 5) -> Backtest:
    """``entries`` are decision audit entries, oldest first; the last of each payment counts."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in entries:
        latest[entry["payment_id"]] = entry
    report = Backtest(version=rules.version, payments=len(latest))
    for payment_id, entry in latest.items():
        old = entry["decision"]
        new = rules.evaluate(entry["facts"], tuple(old["unavailable"]))
        report.before[old["outcome"]] += 1
        report.after[new.outcome.value] += 1
        report.fired_before.update(r["name"] for r in old["fired"])
        report.fired_after.update(r.name for r in new.fired)
        if old["outcome"] != new.outcome.value:
            change = (old["outcome"], new.outcome.value)
            report.changes[change] += 1
            shown = report.examples.setdefault(change, [])
            if len(shown) < examples:
                shown.append(payment_id)
    return report


async def _replay(rules: RuleSet, redis_url: str, examples: int) -> Backtest:
    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = [entry async for entry in RiskAudit(client).all(DECISIONS)]
    finally:
        await client.aclose()
    return backtest(rules, entries, examples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.risk.backtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rules", type=Path, help="the rules file to try")
    parser.add_argument("--examples", type=int, default=5, help="payment ids shown per change")
    parser.add_argument("--redis", help="Redis URL (default: VOICEPAY_REDIS_URL)")
    args = parser.parse_args(argv)
    try:
        rules = read_rules(args.rules)
    except RulesError as exc:
        print(f"{args.rules} is not a usable rules file:", *exc.problems, sep="\n  ",
              file=sys.stderr)
        return 2
    report = asyncio.run(_replay(rules, args.redis or load_settings().redis_url, args.examples))
    print(report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
