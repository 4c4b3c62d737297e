"""The synthetic traffic generator: seeded, labelled, in time order, with no card numbers."""

from __future__ import annotations

from bench.risk_traffic import PATTERNS, generate


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic():
    a, _, _ = generate(3000, seed=3)
    b, _, _ = generate(3000, seed=3)
    c, _, _ = generate(3000, seed=4)
    key = lambda attempts: [(x.at, x.pattern, x.request.order.amount) for x in attempts]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)


def test_every_pattern_is_there_labelled_and_in_time_order():
    attempts, registry, blocked = generate(5000, seed=1)
    patterns = {a.pattern for a in attempts}
    assert set(PATTERNS) <= patterns
    assert {"honest_callback", "honest_oneline", "honest_selfservice"} <= patterns
    assert all(a.fraud != a.pattern.startswith("honest") for a in attempts)
    assert [a.at for a in attempts] == sorted(a.at for a in attempts)
    assert blocked and all(card.startswith("card-") for card in blocked)
    assert not any(a.request.order.card_number.isdigit() for a in attempts)


async def test_the_stand_in_registry_answers_as_the_patterns_need():
    attempts, registry, _ = generate(2000, seed=2)
    wrong = next(a for a in attempts if a.pattern == "stolen_card_wrong_identity").request.order
    assert str(await registry.identity(wrong.cardholder_name, wrong.id_number)) == "mismatch"
    mule = next(a for a in attempts if a.pattern == "mule_mobile_not_bound").request.order
    assert str(await registry.identity(mule.cardholder_name, mule.id_number)) == "match"
    assert str(await registry.binding(mule.card_number, mule.mobile)) == "not_bound"
