"""The operator's risk control API in the real service app on a real Redis: lists, the rules
reload (a broken file is refused and the running rules stay), the audit streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ivr.api.keys import REDIS, RISK_AUDIT, RISK_LISTS
from ivr.risk.audit import DECISIONS, RULES
from ivr.risk.decision import RiskOutcome
from ivr.risk.rules import SHIPPED_RULES, read_rules
from ivr.service import build_risk_engine
from tests.integration.risk_fakes import (CARD, ID_NUMBER, MOBILE, FakeBinding, FakeIdentity,
                                          established, request)
from tests.integration.test_http_api import Service, StartService, fake_ami, start_service  # noqa: F401  (fixtures)

SHIPPED_VERSION = read_rules(SHIPPED_RULES).version.split("+")[0]


@pytest.fixture
async def admin(start_service: StartService, fake_ami, tmp_path, monkeypatch):  # noqa: F811
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(SHIPPED_RULES.read_text(encoding="utf-8"), encoding="utf-8")
    # The running file must not be polled away under the test: a long period.
    monkeypatch.setenv("VOICEPAY_RISK_RULES_FILE", str(rules_file))
    monkeypatch.setenv("VOICEPAY_RISK_RULES_POLL_S", "3600")
    service = await start_service(ami=fake_ami)
    await established(service.client.server.app[RISK_LISTS])
    return Admin(service, rules_file)


class Admin:
    def __init__(self, service: Service, rules_file) -> None:
        self.service = service
        self.rules_file = rules_file

    async def call(self, method: str, path: str, body: Any = None,
                   token: str | None = None) -> tuple[int, Any]:
        token = token or self.service.settings.operator_token_file.read_text().strip()
        async with self.service.client.request(
                method, path, headers={"Authorization": f"Bearer {token}"},
                data=None if body is None else json.dumps(body)) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None


async def test_lists_are_managed_through_the_api_and_never_echo_a_value(admin):
    status, entry = await admin.call("POST", "/v1/admin/risk/lists/block/card",
                                     {"value": CARD, "note": "reported stolen"})
    assert status == 201 and entry["label"] == "622188******0011"
    assert len(entry["digest"]) == 64 and CARD not in json.dumps(entry)
    await admin.call("POST", "/v1/admin/risk/lists/review/id_number", {"value": ID_NUMBER})
    status, listing = await admin.call("GET", "/v1/admin/risk/lists/block/card")
    assert status == 200 and [e["digest"] for e in listing["entries"]] == [entry["digest"]]
    status, _ = await admin.call("DELETE", f"/v1/admin/risk/lists/block/card/{entry['digest']}")
    assert status == 204
    status, listing = await admin.call("GET", "/v1/admin/risk/lists/block/card")
    assert listing["entries"] == []
    status, body = await admin.call("DELETE", f"/v1/admin/risk/lists/block/card/{entry['digest']}")
    assert status == 404 and body["error_id"] == "no-such-entry"
    status, audit = await admin.call("GET", "/v1/admin/risk/audit/lists")
    # The last: the fixture's established merchant.
    assert [e["change"] for e in audit["entries"]] == ["remove", "add", "add", "add"]
    for secret in (CARD, ID_NUMBER):
        assert secret not in json.dumps(audit)


@pytest.mark.parametrize("path, body, status, error_id", [
    ("/v1/admin/risk/lists/grey/card", {"value": CARD}, 404, "no-such-list"),
    ("/v1/admin/risk/lists/block/passport", {"value": CARD}, 404, "no-such-list"),
    ("/v1/admin/risk/lists/block/card", {"value": "6221881000000012"}, 400, "invalid-parameter"),
    ("/v1/admin/risk/lists/block/mobile", {"value": "1390000000"}, 400, "invalid-parameter"),
    ("/v1/admin/risk/lists/block/card", {"nothing": 1}, 400, "invalid-parameter"),
    ("/v1/admin/risk/lists/block/card", "[", 400, "invalid-parameter"),
])
async def test_bad_list_requests_get_a_reason(admin, path, body, status, error_id):
    got, answer = await admin.call("POST", path, body)
    assert (got, answer["error_id"]) == (status, error_id)
    assert "6221881000000012" not in json.dumps(answer)


@pytest.mark.parametrize("raw", [b"{not json", b"\xff", b"[" * 100_000])
async def test_a_body_that_is_not_one_json_object_is_400(admin, raw):
    # Read as every other write body is (payment_request.parse_json_object): deep nesting too.
    token = admin.service.settings.operator_token_file.read_text().strip()
    async with admin.service.client.post("/v1/admin/risk/lists/block/card", data=raw,
                                         headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400
        assert (await response.json())["error_id"] == "invalid-parameter"


async def test_the_admin_api_needs_the_operator_token(admin):
    status, body = await admin.call("POST", "/v1/admin/risk/lists/block/mobile",
                                    {"value": MOBILE}, token="x" * 40)
    assert status == 401
    status, body = await admin.call("POST", "/v1/admin/risk/rules/reload", token="x" * 40)
    assert status == 401


async def test_a_broken_rules_file_is_refused_and_the_running_rules_stay(admin):
    status, running = await admin.call("GET", "/v1/admin/risk/rules")
    assert status == 200 and running["version"].startswith(SHIPPED_VERSION + "+")
    admin.rules_file.write_text(SHIPPED_RULES.read_text(encoding="utf-8")
                                .replace("when: identity == \"mismatch\"", "when: identiti == 1"),
                                encoding="utf-8")
    status, body = await admin.call("POST", "/v1/admin/risk/rules/reload")
    assert status == 422 and body["error_id"] == "rules-rejected"
    assert body["details"]["running_version"] == running["version"]
    assert any("unknown fact 'identiti'" in p for p in body["details"]["problems"])
    status, still = await admin.call("GET", "/v1/admin/risk/rules")
    assert still["version"] == running["version"]

    admin.rules_file.write_text(SHIPPED_RULES.read_text(encoding="utf-8")
                                .replace(SHIPPED_VERSION, "2026-11-28.1"), encoding="utf-8")
    status, body = await admin.call("POST", "/v1/admin/risk/rules/reload")
    assert status == 200 and body["result"] == "loaded" and body["version"].startswith("2026-11-28.1+")
    status, audit = await admin.call("GET", "/v1/admin/risk/audit/rules")
    assert [(e["trigger"], e["result"]) for e in audit["entries"]] == [
        ("admin", "loaded"), ("admin", "rejected"), ("start", "loaded")]


async def test_audit_streams_are_named_and_limited(admin):
    status, body = await admin.call("GET", "/v1/admin/risk/audit/everything")
    assert status == 404 and body["error_id"] == "no-such-stream"
    status, body = await admin.call("GET", "/v1/admin/risk/audit/decisions?payment_id=pay_x")
    assert status == 200 and body["entries"] == []


@pytest.mark.parametrize("limit", ["0", "501", "abc", "-1", "", "1.5", "²", " 5"])
async def test_the_audit_limit_is_checked_like_every_limit(admin, limit):
    status, body = await admin.call("GET", f"/v1/admin/risk/audit/decisions?limit={limit}")
    assert (status, body["error_id"]) == (400, "invalid-parameter")
    assert body["details"] == {"parameter": "limit", "reason": "must be a whole number from 1 to 500"}


async def test_build_risk_engine_decides_with_the_apps_lists_and_the_audit_shows_it(admin):
    app = admin.service.client.server.app
    engine = build_risk_engine(app, identity=FakeIdentity(), binding=FakeBinding())
    await admin.call("POST", "/v1/admin/risk/lists/block/mobile", {"value": MOBILE})
    assert (await engine.assess(request("pay_blocked"))).outcome is RiskOutcome.DECLINE
    assert (await engine.assess(request("pay_other", mobile="13800138102"))).outcome \
        is RiskOutcome.APPROVE
    status, body = await admin.call("GET", "/v1/admin/risk/audit/decisions?payment_id=pay_blocked")
    [entry] = body["entries"]
    assert entry["decision"]["outcome"] == "decline" and "block:mobile" in entry["facts"]["lists"]
    assert [r["name"] for r in entry["decision"]["fired"]] == ["block_listed"]


async def test_the_running_service_trims_the_audit_every_retention_period(
        start_service: StartService, fake_ami, monkeypatch):  # noqa: F811
    monkeypatch.setenv("VOICEPAY_RETENTION_PERIOD_S", "0.05")
    service = await start_service(ami=fake_ami)
    redis = service.client.server.app[REDIS]
    await redis.xadd(DECISIONS, {"entry": "{}"}, id="1000-0")   # written in 1970
    while await redis.xlen(DECISIONS):
        await asyncio.sleep(0.05)
    # The start of the rules is recent: kept.
    assert [e["trigger"] for e in await service.client.server.app[RISK_AUDIT].newest(RULES)] \
        == ["start"]
