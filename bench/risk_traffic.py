"""Seeded, labelled synthetic traffic through the risk engine, and what it let through.

    python -m bench.risk_traffic [--payments 20000] [--seed 7]     (also part of `make bench`)

Honest cardholders and the fraud patterns of issue 8 are generated over simulated days, in time
order, through the real ``RulesRiskEngine`` with the shipped rules and a real Redis (velocity and
lists as in production); only the identity services are stand-ins that answer from the
generator's own registry at once. The report gives, per pattern, how many attempts were approved,
stepped up, reviewed and declined, fraud passed per 100,000 payments, and honest payments declined
or sent to review per 100,000 honest ones. Its assumptions are in the README ("Risk control").

No card, mobile or ID numbers are made up: cards, mobiles and ID numbers are opaque tokens
(``card-000123``), which the engine only ever digests.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections import Counter, defaultdict
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr.hostlink.bin_table import BinInfo
from ivr.merchants import Merchant, MerchantStatus
from ivr.money import Money
from ivr.orders import Order
from ivr.risk.audit import RiskAudit
from ivr.risk.decision import BindingAnswer, IdentityAnswer, RiskOutcome, RiskRequest
from ivr.risk.engine import RulesRiskEngine
from ivr.risk.lists import RiskLists
from ivr.risk.rules import SHIPPED_RULES, read_rules
from ivr.risk.subjects import SubjectDigester
from ivr.risk.velocity import Velocity

__all__ = ["Attempt", "generate", "run_traffic", "render"]

DEBIT = BinInfo("debit", "Synthetic Bank", "合成银行")
CREDIT = BinInfo("credit", "Synthetic Credit", "合成信用卡")
DAY = 86400.0
DAYS = 7
FRAUD_SHARE = 0.01          # of all payments
PATTERNS = {                # share of the fraud attempts
    "stolen_card_wrong_identity": 0.30,
    "mule_mobile_not_bound": 0.20,
    "card_testing": 0.20,
    "many_cards_one_mobile": 0.15,
    "block_listed_card": 0.05,
    "merchant_burst": 0.10,
}
BURST = 350


@dataclass(frozen=True)
class Attempt:
    at: float                 # simulated unix time
    pattern: str              # "honest_<mode>" or a fraud pattern
    fraud: bool
    knows_id: bool            # would pass a step-up (the last 6 digits of the ID number)
    request: RiskRequest


class Registry:
    """The stand-in police and bank: who is who, which mobile is bound to which card."""

    def __init__(self) -> None:
        self.people: dict[str, str] = {}            # ID number -> name
        self.bound: set[tuple[str, str]] = set()    # (card, mobile)

    async def identity(self, name: str, id_number: str) -> IdentityAnswer:
        if id_number not in self.people:
            return IdentityAnswer.NOT_FOUND
        return IdentityAnswer.MATCH if self.people[id_number] == name else IdentityAnswer.MISMATCH

    async def binding(self, card: str, mobile: str, name: str = "",
                      id_number: str = "") -> BindingAnswer:
        return BindingAnswer.BOUND if (card, mobile) in self.bound else BindingAnswer.NOT_BOUND


class _Check:
    def __init__(self, answer) -> None:
        self.check = answer


def _merchant(n: int) -> Merchant:
    return Merchant(id=f"M9{n:05d}", name_en=f"Shop {n}", name_zh=f"商店{n}", mcc="5411",
                    status=MerchantStatus.ACTIVE, max_amount=Money.parse("50000.00"))


def generate(payments: int, seed: int) -> tuple[list[Attempt], Registry, list[str]]:
    """The attempts in time order, the registry they are checked against, the block-listed cards."""
    rng = random.Random(seed)
    registry = Registry()
    merchants = [_merchant(n) for n in range(40)]
    attempts: list[Attempt] = []
    serial = iter(range(10**9))

    def token(kind: str) -> str:
        return f"{kind}-{next(serial):07d}"

    def person(in_registry: bool = True) -> tuple[str, str]:
        name, id_number = token("name"), token("id")
        if in_registry:
            registry.people[id_number] = name
        return name, id_number

    def add(at: float, pattern: str, mode: str, amount_fen: int, card: str, mobile: str,
            name: str, id_number: str, merchant: Merchant, *, fraud: bool, knows_id: bool,
            credit: bool = False, source: str = "") -> None:
        if mode == "selfservice":
            name = id_number = ""
        order = Order(merchant_order_id=token("order"), amount=Money(amount_fen), description="",
                      card_number=card, cardholder_name=name, id_number=id_number, mobile=mobile,
                      mode=mode)
        request = RiskRequest(payment_id=token("pay"), mode=mode, merchant=merchant, order=order,
                              card=CREDIT if credit else DEBIT, source=source)
        attempts.append(Attempt(at, pattern, fraud, knows_id, request))

    def honest_amount(mode: str) -> int:
        if mode == "selfservice":
            return rng.choice((5000, 10000, 20000))
        return max(100, int(rng.lognormvariate(10.2, 1.1)))  # median ~270 yuan, long tail

    # Honest cardholders: 1 to 4 payments each over the week, mostly callbacks.
    honest_total = int(payments * (1 - FRAUD_SHARE))
    made = 0
    while made < honest_total:
        name, id_number = person(in_registry=rng.random() > 0.003)   # police data gaps
        card, mobile = token("card"), token("mobile")
        if rng.random() > 0.03:                                       # a new phone not yet at the bank
            registry.bound.add((card, mobile))
        credit = rng.random() < 0.15
        for _ in range(min(rng.choice((1, 1, 2, 3, 4)), honest_total - made)):
            mode = rng.choices(("callback", "oneline", "selfservice"), (0.7, 0.15, 0.15))[0]
            top_up = token("mobile") if mode == "selfservice" else mobile
            add(rng.uniform(0, DAYS * DAY), f"honest_{mode}", mode, honest_amount(mode), card,
                top_up, name, id_number, rng.choice(merchants), fraud=False, knows_id=True,
                credit=credit)
            made += 1

    # Fraud: each pattern makes its share of attempts, in episodes.
    blocked: list[str] = []
    fraud_total = payments - honest_total
    for pattern, share in PATTERNS.items():
        target, made = max(1, int(fraud_total * share)), 0
        while made < target:
            start = rng.uniform(0, DAYS * DAY)
            merchant = rng.choice(merchants)
            if pattern == "stolen_card_wrong_identity":
                # The card and its holder's name, not the ID number: the fraudster's own.
                victim_name, _ = person()
                _, own_id = person()
                add(start, pattern, "callback", honest_amount("callback") * 3, token("card"),
                    token("mobile"), victim_name, own_id, merchant, fraud=True, knows_id=False)
                made += 1
            elif pattern == "mule_mobile_not_bound":
                # A leaked "full" (card, name, ID number) used with the fraudster's phone.
                name, id_number = person()
                add(start, pattern, "callback", honest_amount("callback") * 3, token("card"),
                    token("mobile"), name, id_number, merchant, fraud=True, knows_id=True)
                made += 1
            elif pattern == "card_testing":
                # One card, many small payments within the hour, from one source.
                name, id_number = person()
                card, mobile, source = token("card"), token("mobile"), token("source")
                for i in range(rng.randint(5, 10)):
                    add(start + i * rng.uniform(60, 400), pattern, "callback",
                        rng.randint(100, 900), card, mobile, name, id_number, merchant,
                        fraud=True, knows_id=False, source=source)
                    made += 1
            elif pattern == "many_cards_one_mobile":
                mobile = token("mobile")
                for i in range(rng.randint(4, 8)):
                    name, id_number = person()
                    add(start + i * rng.uniform(300, 3600), pattern, "callback",
                        honest_amount("callback") * 2, token("card"), mobile, name, id_number,
                        merchant, fraud=True, knows_id=True)
                    made += 1
            elif pattern == "block_listed_card":
                # A card reported stolen (on the block list), tried with its holder's full data.
                name, id_number = person()
                card, mobile = token("card"), token("mobile")
                registry.bound.add((card, mobile))
                blocked.append(card)
                add(start, pattern, "callback", honest_amount("callback"), card, mobile, name,
                    id_number, merchant, fraud=True, knows_id=True)
                made += 1
            elif pattern == "merchant_burst":
                # A rogue merchant pushes leaked fulls through as fast as it can: one burst of
                # BURST payments in 7 minutes, whatever the pattern's share (a smaller one would
                # not be a burst).
                rogue = _merchant(1000 + made)
                for i in range(BURST):
                    name, id_number = person()
                    card, mobile = token("card"), token("mobile")
                    registry.bound.add((card, mobile))       # the worst case: even the phone
                    add(start + i * 1.2, pattern, "callback", honest_amount("callback"), card,
                        mobile, name, id_number, rogue, fraud=True, knows_id=True)
                    made += 1
    attempts.sort(key=lambda a: a.at)
    return attempts, registry, blocked


async def run_traffic(redis: aioredis.Redis, payments: int = 20000,
                      seed: int = 7) -> dict[str, Counter]:
    """Outcome counts per pattern; ``"passed"`` counts what got through (approved, or stepped up
    and able to answer the step-up)."""
    attempts, registry, blocked = generate(payments, seed)
    audit, digester = RiskAudit(redis), SubjectDigester(bytes(32))
    lists = RiskLists(redis, digester, audit)
    for card in blocked:   # tokens, not card numbers: added as digests, past add()'s checks
        await lists.add_subject("block", digester.subject("card", card), "reported stolen")
    clock = _SimulatedClock()
    engine = RulesRiskEngine(read_rules(SHIPPED_RULES), lists, Velocity(redis), audit, digester,
                             _Check(registry.identity), _Check(registry.binding), clock=clock)
    results: dict[str, Counter] = defaultdict(Counter)
    for attempt in attempts:
        clock.now = attempt.at
        outcome = (await engine.assess(attempt.request)).outcome
        counts = results[attempt.pattern]
        counts[outcome.value] += 1
        counts["attempts"] += 1
        if outcome is RiskOutcome.APPROVE or (outcome is RiskOutcome.STEP_UP and attempt.knows_id):
            counts["passed"] += 1
    return dict(results)


class _SimulatedClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def render(results: dict[str, Counter]) -> str:
    total = sum(c["attempts"] for c in results.values())
    honest = sum(c["attempts"] for p, c in results.items() if p.startswith("honest"))
    lines = [f"{'pattern':<28}{'attempts':>9}{'approve':>9}{'step_up':>9}{'review':>8}"
             f"{'decline':>9}{'passed':>8}"]
    for pattern, c in sorted(results.items()):
        lines.append(f"{pattern:<28}{c['attempts']:>9}{c['approve']:>9}{c['step_up']:>9}"
                     f"{c['review']:>8}{c['decline']:>9}{c['passed']:>8}")
    fraud_passed = sum(c["passed"] for p, c in results.items() if not p.startswith("honest"))
    honest_declined = sum(c["decline"] for p, c in results.items() if p.startswith("honest"))
    honest_review = sum(c["review"] for p, c in results.items() if p.startswith("honest"))
    lines.append(f"fraud passed per 100,000 payments: {fraud_passed * 100000 / total:.1f}")
    lines.append(f"honest declined per 100,000 honest: {honest_declined * 100000 / honest:.1f}; "
                 f"sent to review: {honest_review * 100000 / honest:.1f}")
    return "\n".join(lines)


def main() -> int:
    from bench.__main__ import _redis   # the benchmark's throwaway redis-server

    parser = argparse.ArgumentParser(prog="python -m bench.risk_traffic")
    parser.add_argument("--payments", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    async def run() -> None:
        async with _redis() as client:
            print(render(await run_traffic(client, args.payments, args.seed)))

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
