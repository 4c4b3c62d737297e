"""Risk outcomes through the merchant and operator APIs, with the REAL order services, a scripted
risk engine (any outcome on demand), a real Redis and a fake AMI in place of Asterisk.

Each outcome: what the payment becomes, what the merchant is shown (only ``merchant_reason``),
what the operator is shown (the whole decision), and whether the phone is dialled. Review: the
operator's decision through ``POST /v1/admin/payments/{id}/review``, exactly once, and the
timeout through the recovery sweep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from ivr.api.keys import REVIEWS, RISK_LISTS, STORE
from ivr.payments.recovery import RecoverySweep
from ivr.payments.store import PaymentState
from ivr.risk.decision import RiskDecision, RiskOutcome, RiskRequest
from ivr.service import build_risk_engine
from tests.integration.fake_ami import FakeAmi
from tests.integration.risk_fakes import FakeBinding, FakeIdentity, ScriptedRiskEngine, established
from tests.integration.test_merchant_api import ID_NUMBER, Api
from tests.integration.test_orders_api import ONELINE, fake_ami, running_service

__all__ = ["fake_ami"]  # the fixture, shared with test_orders_api.py

NOTIFY_URL = "http://127.0.0.1:9/hook"  # nothing listens: the webhook stays queued, inspectable


@pytest.fixture
def engine() -> ScriptedRiskEngine:
    return ScriptedRiskEngine()


@pytest.fixture
async def api(tmp_path: Path, redis_server: str, redis_client: aioredis.Redis, fake_ami: FakeAmi,
              engine: ScriptedRiskEngine) -> AsyncIterator[Api]:
    async with running_service(tmp_path, redis_server, redis_client, fake_ami,
                               risk_engine=engine) as api:
        api.ami = fake_ami
        yield api


async def order(api: Api, engine: ScriptedRiskEngine, outcome: RiskOutcome,
                **changes: str) -> dict:
    engine.outcome = outcome
    status, body = await api.post_order(notify_url=NOTIFY_URL, **changes)
    assert status == 201, body
    return body


async def as_merchant(api: Api, payment_id: str) -> dict:
    status, body = await api.request("GET", f"/v1/payments/{payment_id}")
    assert status == 200, body
    return body


async def as_operator(api: Api, payment_id: str) -> dict:
    status, body = await api.request("GET", f"/v1/payments/{payment_id}", merchant=None,
                                     headers={"Authorization": f"Bearer {api.operator_token}"})
    assert status == 200, body
    return body


async def review(api: Api, payment_id: str, decision: str, note: str = "",
                 token: str | None = None) -> tuple[int, dict]:
    body = json.dumps({"decision": decision, "note": note}).encode()
    return await api.request("POST", f"/v1/admin/payments/{payment_id}/review", body=body,
                             merchant=None,
                             headers={"Authorization": f"Bearer {token or api.operator_token}"})


def queued_webhook_event(api: Api, payment_id: str):
    return api.redis.hget(f"pay:{payment_id}:webhook", "event")


# --- the outcomes at order time -----------------------------------------------------------------

async def test_approve_schedules_the_callback_and_keeps_the_decision(api: Api, fake_ami: FakeAmi,
                                                                   engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.APPROVE)
    assert created["status"] == "risk_passed" and "merchant_reason" not in created
    originate = await fake_ami.received("Originate")
    assert originate["Variable"] == f"VOICEPAY_PAYMENT_ID={created['id']}"
    [asked] = engine.requests
    assert (asked.payment_id, asked.mode, asked.merchant.id) == (created["id"], "callback", "M100001")
    internal = (await as_operator(api, created["id"]))["internal"]
    assert internal["risk_outcome"] == "approve"
    assert json.loads(internal["risk_decision"])["rules_version"] == "scripted"
    assert "id_check_digest" not in internal


async def test_step_up_is_dialled_with_a_digest_of_the_id_number_never_the_characters(
        api: Api, fake_ami: FakeAmi, engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.STEP_UP)
    assert created["status"] == "risk_passed"
    await fake_ami.received("Originate")
    payment = await api.app[STORE].get(created["id"])
    assert payment.risk_outcome == "step_up" and len(payment.id_check_digest) == 64
    stored = repr(await api.redis.hgetall(f"pay:{created['id']}"))
    assert ID_NUMBER[-6:] not in stored and ID_NUMBER not in stored
    # A merchant sees no more of a step-up than of an approval.
    seen = await as_merchant(api, created["id"])
    assert not {"risk_outcome", "risk_decision", "id_check_digest", "internal"} & set(seen)


async def test_decline_ends_the_payment_and_the_merchant_sees_only_the_generic_reason(
        api: Api, fake_ami: FakeAmi, engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.DECLINE)
    assert created["status"] == "risk_declined"
    seen = await as_merchant(api, created["id"])
    assert seen["merchant_reason"] == "declined by risk control"
    assert "scripted_decline" not in json.dumps(seen)  # not which rule: only in the operator's view
    operator = await as_operator(api, created["id"])
    decision = json.loads(operator["internal"]["risk_decision"])
    assert [rule["name"] for rule in decision["fired"]] == ["scripted_decline", "scripted_shadow"]
    assert decision["fired"][1]["shadow"] is True
    assert operator["history"][-1]["reason"] == "risk: decline (declined by risk control)"
    assert await queued_webhook_event(api, created["id"]) == b"payment.risk_declined"
    assert fake_ami.sent("Originate") == []


async def test_an_engine_that_fails_declines(api: Api, fake_ami: FakeAmi,
                                             engine: ScriptedRiskEngine) -> None:
    engine.outcome = None
    status, created = await api.post_order()
    assert status == 201 and created["status"] == "risk_declined", created
    decision = json.loads((await as_operator(api, created["id"]))["internal"]["risk_decision"])
    assert decision["fired"][0]["reason"] == "the risk engine failed (EngineBroke)"
    assert fake_ami.sent("Originate") == []


# --- review ---------------------------------------------------------------------------------------

async def test_review_holds_the_callback_until_the_operator_approves(
        api: Api, fake_ami: FakeAmi, engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW)
    assert created["status"] == "risk_review"
    assert created["merchant_reason"] == "held for review"
    listed = await api.app[STORE].recent(status="risk_review")
    assert [p.id for p in listed] == [created["id"]]
    assert await api.redis.zscore("callbacks:due", created["id"]) is None  # nothing to dial

    status, body = await review(api, created["id"], "approve", "customer known to us")
    assert status == 200, body
    assert body["status"] == "risk_passed"
    assert body["history"][-1]["reason"] == "review: approved by the operator: customer known to us"
    originate = await fake_ami.received("Originate")
    assert originate["Variable"] == f"VOICEPAY_PAYMENT_ID={created['id']}"

    # A second decision, either way, is refused and changes nothing.
    status, body = await review(api, created["id"], "decline")
    assert status == 409 and body["error_id"] == "review-not-pending", body
    assert body["details"]["review_decision"] == "approve"
    assert (await api.app[STORE].get(created["id"])).status in {PaymentState.RISK_PASSED,
                                                                 PaymentState.CALLING}


async def test_review_declined_by_the_operator(api: Api, fake_ami: FakeAmi,
                                               engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW)
    status, body = await review(api, created["id"], "decline", "mule pattern")
    assert status == 200 and body["status"] == "risk_declined", body
    assert (await as_merchant(api, created["id"]))["merchant_reason"] == "declined by risk control"
    assert await queued_webhook_event(api, created["id"]) == b"payment.risk_declined"
    status, body = await review(api, created["id"], "decline")
    assert status == 409 and body["error_id"] == "review-not-pending"
    assert fake_ami.sent("Originate") == []


async def test_two_operators_deciding_at_once_one_wins(api: Api, engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW)
    answers = await asyncio.gather(review(api, created["id"], "approve"),
                                   review(api, created["id"], "decline"))
    assert sorted(status for status, _ in answers) == [200, 409], answers
    winner = next(body for status, body in answers if status == 200)
    assert (await api.app[STORE].get(created["id"])).status.value == winner["status"]


async def test_a_review_nobody_decides_is_declined_by_the_recovery_sweep(
        api: Api, fake_ami: FakeAmi, engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW)
    store = api.app[STORE]
    # The service's own sweep with the timeout passed (0 s), as any instance would run it.
    sweep = RecoverySweep(store, api.redis, None, None,  # type: ignore[arg-type]
                          {PaymentState.RISK_REVIEW: 0.0}, reviews=api.app[REVIEWS])
    assert await sweep.sweep() == 1
    payment = await store.get(created["id"])
    assert payment.status is PaymentState.RISK_DECLINED and payment.review_decision == "timeout"
    assert (await store.history(created["id"]))[-1]["reason"].startswith("review: no decision within")
    assert await queued_webhook_event(api, created["id"]) == b"payment.risk_declined"
    status, body = await review(api, created["id"], "approve")
    assert status == 409 and body["error_id"] == "review-not-pending"
    assert fake_ami.sent("Originate") == []


async def test_a_decision_whose_process_died_is_applied_by_the_sweep(
        api: Api, fake_ami: FakeAmi, engine: ScriptedRiskEngine) -> None:
    """The operator's approval was written (HSETNX) but the process died before the transition."""
    created = await order(api, engine, RiskOutcome.REVIEW)
    store = api.app[STORE]
    assert await store.set_once(created["id"], "review_decision", "approve")
    sweep = RecoverySweep(store, api.redis, None, None,  # type: ignore[arg-type]
                          {PaymentState.RISK_REVIEW: 0.0}, reviews=api.app[REVIEWS])
    await sweep.sweep()
    assert (await store.get(created["id"])).status is PaymentState.RISK_PASSED
    await fake_ami.received("Originate")


async def test_a_merchant_may_cancel_a_payment_in_review(api: Api,
                                                         engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW)
    status, body = await api.request("POST", f"/v1/payments/{created['id']}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    status, body = await review(api, created["id"], "approve")
    assert status == 409 and body["details"]["status"] == "cancelled"


@pytest.mark.parametrize(("body", "status", "error_id"), [
    (b"not json", 400, "invalid-parameter"),
    (b'{"decision": "maybe"}', 400, "invalid-parameter"),
    (b'{"decision": "approve", "note": 5}', 400, "invalid-parameter"),
    (b'{"decision": "approve", "extra": 1}', 400, "invalid-parameter"),
])
async def test_a_bad_review_request_is_refused_with_a_reason(api: Api, engine: ScriptedRiskEngine,
                                                             body: bytes, status: int,
                                                             error_id: str) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW)
    answer = await api.request("POST", f"/v1/admin/payments/{created['id']}/review", body=body,
                               merchant=None,
                               headers={"Authorization": f"Bearer {api.operator_token}"})
    assert answer[0] == status and answer[1]["error_id"] == error_id, answer
    assert (await api.app[STORE].get(created["id"])).status is PaymentState.RISK_REVIEW


async def test_only_the_operator_reviews(api: Api, engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW)
    path = f"/v1/admin/payments/{created['id']}/review"
    body = b'{"decision": "approve"}'
    status, answer = await api.request("POST", path, body=body)  # a merchant's signed request
    assert status == 401 and answer["error_id"] == "unauthenticated", answer
    status, _ = await review(api, created["id"], "approve", token="not-the-token")
    assert status == 401
    status, answer = await review(api, "pay_00000000000000000000", "approve")
    assert status == 404 and answer["error_id"] == "no-such-payment"
    assert (await api.app[STORE].get(created["id"])).status is PaymentState.RISK_REVIEW


# --- one-line: nobody can wait for review while the caller is on the line ----------------------

async def test_oneline_review_is_declined_and_the_caller_never_switched(
        api: Api, fake_ami: FakeAmi, engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.REVIEW, **ONELINE)
    assert created["status"] == "risk_declined"
    assert created["merchant_reason"] == "declined by risk control"
    history = (await as_operator(api, created["id"]))["history"]
    assert history[-1]["reason"] == ("risk: review (declined by risk control): no review while "
                                     "the caller waits")
    assert fake_ami.sent("Redirect") == []


async def test_oneline_step_up_switches_the_caller_in(api: Api, fake_ami: FakeAmi,
                                                      engine: ScriptedRiskEngine) -> None:
    created = await order(api, engine, RiskOutcome.STEP_UP, **ONELINE)
    assert created["status"] == "risk_passed"
    assert (await api.app[STORE].get(created["id"])).id_check_digest
    await fake_ami.received("Redirect")


# --- the rules engine behind the same gate ------------------------------------------------------

class ServiceRules:
    """The service's own rules engine (``build_risk_engine``: its rules file, lists, velocity and
    audit), with identity providers that answer as the test says; built once the app runs."""

    def __init__(self) -> None:
        self.app: web.Application | None = None
        self.identity, self.binding = FakeIdentity(), FakeBinding()

    async def assess(self, request: RiskRequest) -> RiskDecision:
        assert self.app is not None
        return await build_risk_engine(self.app, self.identity, self.binding).assess(request)


@pytest.mark.parametrize(("identity", "binding", "amount", "status", "outcome", "rule"), [
    ("match", "not_bound", "18.00", "risk_passed", "step_up", "binding_not_bound"),
    ("match", "not_bound", "120.00", "risk_review", "review", "binding_not_bound_over_20"),
    ("not_found", "bound", "120.00", "risk_review", "review", "identity_not_found"),
    ("mismatch", "bound", "120.00", "risk_declined", "decline", "identity_mismatch"),
])
async def test_the_rules_engines_outcomes_are_acted_on(
        tmp_path: Path, redis_server: str, redis_client: aioredis.Redis, fake_ami: FakeAmi,
        identity: str, binding: str, amount: str, status: str, outcome: str, rule: str) -> None:
    rules = ServiceRules()
    rules.identity.answer, rules.binding.answer = identity, binding
    async with running_service(tmp_path, redis_server, redis_client, fake_ami,
                               risk_engine=rules) as api:
        rules.app = api.app
        await established(api.app[RISK_LISTS])  # not one of a new merchant's first payments
        status_code, created = await api.post_order(amount=amount)
        assert status_code == 201 and created["status"] == status, created
        payment = await api.app[STORE].get(created["id"])
        assert payment.risk_outcome == outcome
        assert bool(payment.id_check_digest) == (outcome == "step_up")
        fired = [r["name"] for r in json.loads(payment.risk_decision)["fired"]]
        assert rule in fired
        seen = json.dumps(await as_merchant(api, created["id"]))
        assert rule not in seen
