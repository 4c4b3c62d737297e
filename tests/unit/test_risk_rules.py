"""The rules file: its checks on load, and each kind of rule in the shipped defaults."""

from __future__ import annotations

import pytest

from ivr.risk.decision import RiskOutcome
from ivr.risk.rules import SHIPPED_RULES, RulesError, load_rules, read_rules
from ivr.risk.velocity import COUNTERS

SHIPPED = read_rules(SHIPPED_RULES)


def facts(**changes) -> dict:
    """An honest PIN-verified callback payment of 88 yuan: nothing fires."""
    base = {"amount": 88.0, "mode": "callback", "merchant_id": "M100001",
            "merchant_active": True, "merchant_category": "5411",
            "merchant_category_banned": False, "merchant_max_amount": 50000.0,
            "card_known": True, "card_type": "debit", "pin_verified": True,
            "identity": "match", "binding": "bound", "lists": [],
            **{c.name: 1.0 for c in COUNTERS}}
    base["card_amount_24h"] = 88.0
    return {**base, **changes}


def decide(**changes):
    return SHIPPED.evaluate(facts(**changes))


def fired(decision) -> set[str]:
    return {r.name for r in decision.fired}


MINIMAL = """
version: "t1"
thresholds: {step_up: 30, review: 60, decline: 100}
rules:
  - name: big
    when: amount > 100
    score: 40
    reason: big
"""


def test_an_honest_payment_is_approved_with_nothing_fired():
    decision = decide()
    assert decision.outcome is RiskOutcome.APPROVE
    assert decision.fired == () and decision.score == 0
    assert decision.rules_version == SHIPPED.version


@pytest.mark.parametrize("change, rule", [
    ({"merchant_active": False}, "merchant_not_active"),
    ({"merchant_category_banned": True}, "merchant_category_banned"),
    ({"amount": 600.0, "merchant_max_amount": 500.0}, "over_merchant_limit"),
    ({"card_known": False, "card_type": "unknown", "pin_verified": False}, "card_bin_unknown"),
])
def test_the_four_basic_checks_decline(change, rule):
    decision = decide(**change)
    assert decision.outcome is RiskOutcome.DECLINE
    assert rule in fired(decision)


@pytest.mark.parametrize("hit, outcome", [
    ("block:card", RiskOutcome.DECLINE), ("block:mobile", RiskOutcome.DECLINE),
    ("block:id_number", RiskOutcome.DECLINE), ("block:merchant", RiskOutcome.DECLINE),
    ("review:mobile", RiskOutcome.REVIEW), ("review:card", RiskOutcome.REVIEW),
])
def test_list_hits(hit, outcome):
    assert decide(lists=[hit]).outcome is outcome


def test_an_allow_list_lowers_the_score_but_never_lifts_a_forced_outcome():
    allowed = ["allow:card", "allow:mobile"]
    assert decide(binding="not_bound").outcome is RiskOutcome.STEP_UP
    assert decide(binding="not_bound", lists=allowed).outcome is RiskOutcome.APPROVE
    assert decide(lists=[*allowed, "block:card"]).outcome is RiskOutcome.DECLINE


@pytest.mark.parametrize("identity, outcome", [
    ("mismatch", RiskOutcome.DECLINE), ("not_found", RiskOutcome.REVIEW),
    ("match", RiskOutcome.APPROVE), ("skipped", RiskOutcome.APPROVE)])
def test_identity_answers(identity, outcome):
    assert decide(identity=identity).outcome is outcome


def test_binding_mismatch_steps_up():
    decision = decide(binding="not_bound")
    assert decision.outcome is RiskOutcome.STEP_UP and fired(decision) == {"binding_not_bound"}


@pytest.mark.parametrize("mode, amount, outcome", [
    ("callback", 20000.0, RiskOutcome.STEP_UP),     # large amounts step up
    ("callback", 20000.01, RiskOutcome.DECLINE),
    ("oneline", 5000.0, RiskOutcome.APPROVE),
    ("oneline", 5000.01, RiskOutcome.DECLINE),
    ("selfservice", 500.0, RiskOutcome.APPROVE),
    ("selfservice", 500.01, RiskOutcome.DECLINE),
])
def test_per_payment_limits_by_mode(mode, amount, outcome):
    assert decide(mode=mode, amount=amount, card_amount_24h=amount).outcome is outcome


@pytest.mark.parametrize("mode, day, outcome", [
    ("callback", 50000.0, RiskOutcome.APPROVE), ("callback", 50000.01, RiskOutcome.DECLINE),
    ("oneline", 10000.01, RiskOutcome.DECLINE), ("selfservice", 5000.01, RiskOutcome.DECLINE)])
def test_per_card_daily_limits_by_mode(mode, day, outcome):
    assert decide(mode=mode, amount=100.0, card_amount_24h=day).outcome is outcome


@pytest.mark.parametrize("change, outcome, rule", [
    ({"card_payments_1h": 3.0, "amount": 1.0}, RiskOutcome.DECLINE, "card_testing"),
    ({"card_payments_1h": 2.0, "amount": 1.0}, RiskOutcome.APPROVE, None),
    ({"card_payments_1h": 5.0}, RiskOutcome.REVIEW, "card_many_payments"),
    ({"mobile_cards_24h": 3.0}, RiskOutcome.REVIEW, "mobile_many_cards"),
    ({"mobile_cards_24h": 5.0}, RiskOutcome.DECLINE, "mobile_very_many_cards"),
    ({"id_number_cards_24h": 4.0}, RiskOutcome.REVIEW, "id_number_many_cards"),
    ({"merchant_payments_10m": 101.0}, RiskOutcome.REVIEW, "merchant_burst"),
])
def test_velocity_rules(change, outcome, rule):
    decision = decide(**change)
    assert decision.outcome is outcome
    if rule:
        assert rule in fired(decision)


def test_a_rule_limited_to_some_modes_does_not_fire_in_others():
    # The self-service mobile is the number topped up: many cards on it is normal.
    assert decide(mode="selfservice", mobile_cards_24h=9.0).outcome is RiskOutcome.APPROVE


def test_a_shadow_rule_is_recorded_and_never_counted():
    decision = decide(mobile_payments_24h=8.0)
    assert decision.outcome is RiskOutcome.APPROVE and decision.score == 0
    [rule] = decision.fired
    assert rule.name == "mobile_many_payments_shadow" and rule.shadow
    assert "mobile_many_payments_shadow" not in decision.summary()


def test_scores_add_up_to_the_threshold():
    # 30 (binding) + 30 (large amount) = 60: review, though neither alone is.
    decision = decide(binding="not_bound", amount=12000.0, card_amount_24h=12000.0)
    assert decision.score == 60 and decision.outcome is RiskOutcome.REVIEW


@pytest.mark.parametrize("path", ["review", "decline"])
def test_an_unavailable_provider_never_approves(path):
    rules = load_rules(MINIMAL + f"unavailable: {path}\n")
    decision = rules.evaluate(facts(identity="unavailable"), unavailable=("police",))
    assert decision.outcome is RiskOutcome(path)
    assert decision.unavailable == ("police",)
    assert "unavailable" in fired(decision)
    # Already worse than the path: left as it is.
    assert rules.evaluate(facts(amount=1000.0), ()).outcome is RiskOutcome.STEP_UP


def test_the_version_names_the_declared_version_and_the_content():
    a, b = load_rules(MINIMAL), load_rules(MINIMAL.replace("score: 40", "score: 41"))
    assert a.version.startswith("t1+") and b.version.startswith("t1+") and a.version != b.version


@pytest.mark.parametrize("text, problem", [
    ("version: [", "not valid YAML"),
    ("- a\n- b\n", "not a mapping"),
    (MINIMAL.replace("amount > 100", "amount >"), "syntax error"),
    (MINIMAL.replace("amount > 100", "amout > 100"), "unknown fact 'amout'"),
    (MINIMAL.replace("amount > 100", 'amount > "x"'), "does not type-check"),
    (MINIMAL.replace("amount > 100", "amount"), "must be true or false"),
    (MINIMAL.replace("step_up: 30, review: 60", "step_up: 70, review: 60"), "in order"),
    (MINIMAL.replace("score: 40", "score: 4.5"), "score must be a whole number"),
    (MINIMAL + "  - name: big\n    when: amount > 1\n    score: 1\n    reason: again\n",
     "'big' is defined twice"),
    (MINIMAL.replace("reason: big", "reason: big\n    colour: red"), "unknown keys ['colour']"),
    (MINIMAL.replace("reason: big", "reason: big\n    modes: [fax]"), "modes must be"),
    (MINIMAL.replace("reason: big", "reason: big\n    outcome: approve"), "outcome must be"),
    (MINIMAL + "unavailable: approve\n", "an outage never approves"),
    (MINIMAL.replace('version: "t1"\n', ""), "version is missing"),
])
def test_a_broken_file_is_refused_with_the_reason(text, problem):
    with pytest.raises(RulesError) as caught:
        load_rules(text)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once():
    text = MINIMAL.replace("amount > 100", "amout > 100").replace("score: 40", "score: x")
    with pytest.raises(RulesError) as caught:
        load_rules(text)
    assert len(caught.value.problems) == 2
