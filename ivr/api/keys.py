"""Typed application keys: what the service puts in the aiohttp app for handlers to use."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiohttp import web

from ivr.hostlink.acquirer_client import AcquirerClient
from ivr.ami.client import AmiClient
from ivr.cpu_guard import CpuGuard
from ivr.callback.dialer import Dialer
from ivr.config import Settings
from ivr.merchant_store import MerchantStore
from ivr.orders import OrderService
from ivr.payments.store import PaymentStore
from ivr.refunds.service import RefundService
from ivr.settlement.run import SettlementService
from ivr.risk.decision import RiskEngine
from ivr.risk.identity import IdentityProviders
from ivr.risk.review import ReviewDesk
from ivr.risk.audit import RiskAudit
from ivr.risk.lists import RiskLists
from ivr.risk.rules import RuleBook
from ivr.webhooks import WebhookNotifier

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", aioredis.Redis)
STORE = web.AppKey("store", PaymentStore)
ACQUIRER = web.AppKey("acquirer", AcquirerClient)
AMI = web.AppKey("ami", AmiClient)
CPU_GUARD = web.AppKey("cpu_guard", CpuGuard)
ORDERS = web.AppKey("orders", OrderService)
# The live merchant registry (Redis): read on every request, so changes apply at once.
MERCHANTS = web.AppKey("merchants", MerchantStore)
WEBHOOKS = web.AppKey("webhooks", WebhookNotifier)
DIALER = web.AppKey("dialer", Dialer)
# The operator's decisions on callbacks held for risk review (ivr/risk/review.py).
REVIEWS = web.AppKey("reviews", ReviewDesk)
# The risk engine every order passes (ivr/risk/decision.py); tests put a scripted one in.
RISK_ENGINE = web.AppKey("risk_engine", RiskEngine)
# The identity providers the rules engine asks (police, bank binding): the HTTP clients of
# ivr/risk/identity.py unless set before start-up (tests put providers answering as told).
IDENTITY = web.AppKey("identity", IdentityProviders)
# Set once the service is stopping: API writes are refused and /healthz answers 503 from then on.
STOPPING = web.AppKey("stopping", asyncio.Event)
# The operator's bearer token for the payments API (settings.operator_token_file).
OPERATOR_TOKEN = web.AppKey("operator_token", str)
# Risk control (issue 8): the running rules, the lists, the audit streams (ivr/risk/).
RISK_RULES = web.AppKey("risk_rules", RuleBook)
RISK_LISTS = web.AppKey("risk_lists", RiskLists)
RISK_AUDIT = web.AppKey("risk_audit", RiskAudit)
# Voids and refunds (ivr/refunds/): the merchant's requests and the sweep of lost answers.
REFUNDS = web.AppKey("refunds", RefundService)
# Settlement and reconciliation (ivr/settlement/): the daily run, statements, reports.
SETTLEMENT = web.AppKey("settlement", SettlementService)
