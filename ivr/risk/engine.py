"""``RulesRiskEngine``: the ``RiskEngine`` every order service asks before a call or a PIN.

One assessment: the payment's subjects as digests → at once: the identity providers, the list
hits, the velocity counters (this payment counted once) → the facts → the running rules → the
decision, appended with its inputs to the decision audit. Facts and audit hold no card, ID or
mobile number: digests, masked labels, amounts, answers and counts only.

A provider that fails, times out or answers nonsense is ``unavailable``; the rules file's
``unavailable`` outcome (review or decline) is then the least the payment gets. A provider is not
asked when the payment has nothing to ask about: a self-service top-up has no name or ID number,
and its mobile is the number being topped up, not the cardholder's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

from ivr.risk.audit import DECISIONS, RiskAudit
from ivr.risk.decision import (BindingAnswer, BindingProvider, IdentityAnswer, IdentityProvider,
                               RiskDecision, RiskOutcome, RiskRequest)
from ivr.risk.facts import SKIPPED, build_facts
from ivr.risk.lists import RiskLists
from ivr.risk.rules import RuleBook, RuleSet
from ivr.risk.subjects import SubjectDigester, subjects_of
from ivr.risk.velocity import Velocity

__all__ = ["RulesRiskEngine"]

log = logging.getLogger(__name__)

AnswerT = TypeVar("AnswerT", bound=Enum)


class RulesRiskEngine:
    def __init__(self, rules: RuleBook | RuleSet, lists: RiskLists, velocity: Velocity,
                 audit: RiskAudit, digester: SubjectDigester, identity: IdentityProvider,
                 binding: BindingProvider, *, provider_timeout_s: float = 3.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._rules = rules
        self._lists = lists
        self._velocity = velocity
        self._audit = audit
        self._digester = digester
        self._identity = identity
        self._binding = binding
        self._timeout = provider_timeout_s
        self._clock = clock

    @property
    def rules(self) -> RuleSet:
        return self._rules.current if isinstance(self._rules, RuleBook) else self._rules

    async def assess(self, request: RiskRequest) -> RiskDecision:
        order = request.order
        subjects = subjects_of(self._digester, card=order.card_number, mobile=order.mobile,
                               id_number=order.id_number, merchant=request.merchant.id,
                               source=request.source)
        identity, binding, hits, numbers = await asyncio.gather(
            self._identity_answer(request), self._binding_answer(request),
            self._lists.hits(subjects),
            self._velocity.record(request.payment_id, order.amount, subjects, self._clock()))
        facts = build_facts(request, identity=identity, binding=binding, list_hits=hits,
                            velocity=numbers)
        unavailable = tuple(name for name, answer in (("police", identity), ("binding", binding))
                            if answer == "unavailable")
        decision = self.rules.evaluate(facts, unavailable)
        if decision.outcome is RiskOutcome.DECLINE:
            await self._velocity.forget_amount(request.payment_id, order.amount, subjects)
        await self._audit.append(DECISIONS, {
            "payment_id": request.payment_id, "decision": decision.to_record(), "facts": facts,
            "subjects": {kind: {"digest": s.digest, "label": s.label}
                         for kind, s in subjects.items()}})
        return decision

    async def _identity_answer(self, request: RiskRequest) -> IdentityAnswer | str:
        order = request.order
        if request.mode == "selfservice" or not (order.cardholder_name and order.id_number):
            return SKIPPED
        return await self._ask("police", IdentityAnswer, IdentityAnswer.UNAVAILABLE,
                               lambda: self._identity.check(order.cardholder_name,
                                                            order.id_number))

    async def _binding_answer(self, request: RiskRequest) -> BindingAnswer | str:
        order = request.order
        if request.mode == "selfservice" or not order.mobile:
            return SKIPPED
        return await self._ask("binding", BindingAnswer, BindingAnswer.UNAVAILABLE,
                               lambda: self._binding.check(order.card_number, order.mobile,
                                                           order.cardholder_name,
                                                           order.id_number))

    async def _ask(self, name: str, kind: type[AnswerT], unavailable: AnswerT,
                   call: Callable[[], Awaitable[object]]) -> AnswerT:
        try:
            return kind(await asyncio.wait_for(call(), self._timeout))
        except asyncio.TimeoutError:
            log.warning("risk: %s provider did not answer within %gs", name, self._timeout)
        except ValueError:
            log.warning("risk: %s provider gave an answer that is not one of %s", name,
                        ", ".join(a.value for a in kind))
        except Exception as exc:  # any provider failure is an outage; never its message (data)
            log.warning("risk: %s provider failed (%s)", name, exc.__class__.__name__)
        return unavailable
