"""Settlement and reconciliation: the real service, a real Redis and the real acquirer simulator
over TCP (purchases, voids and refunds it really applied), and the simulator's own daily file.

The day under test is the open one (payments are approved now), settled early on demand as the
operator can; the acquirer's file of it is written by the simulator's publisher.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from ivr.api.keys import OPERATOR_TOKEN, SETTLEMENT, STORE
from ivr.api.merchant_auth import signed_headers
from ivr.crypto.keys import load_ivr_keys
from ivr.crypto.pinblock import pinblock_from_digits
from ivr.hostlink.acquirer_client import AcquirerClient
from ivr.hostlink.messages import PurchaseRequest
from ivr.payments.store import PaymentState
from ivr.refunds.store import RefundStore
from ivr.settlement.fees import FeeTable
from ivr.settlement.ledger import DayNotReady
from ivr.settlement.run import DayNotClosed, SettlementService
from ivr.settlement.zm_file import TxnCode, ZmFile, file_name
from simulators.acquirer.daily_file import DailyFilePublisher
from tests.integration.test_refunds import APPROVE, MERCHANT, Env, env  # noqa: F401

OTHER = "M100002"


async def _operator(env: Env, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {env.app[OPERATOR_TOKEN]}",
               "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else b""
    async with env.client.request(method, "/v1/admin/settlements/" + path, data=data,
                                  headers=headers) as response:
        return response.status, await response.json()


async def _statement(env: Env, day: date, merchant: str, query: str = "") -> tuple[int, str]:
    path = f"/v1/settlements/{day}{query}"
    headers = signed_headers(merchant, env.key(merchant), "GET", path)
    async with env.client.get(path, headers=headers) as response:
        return response.status, await response.text()


async def _a_day(env: Env) -> dict[str, str]:
    """Three purchases at the real simulator: one kept, one voided, one refunded in part; and a
    refund the acquirer refuses (declined, so in no one's books)."""
    kept = await env.approved_payment(APPROVE, 8800)
    voided = await env.approved_payment(APPROVE, 2500)
    refunded = await env.approved_payment(APPROVE, 10000)
    status, void = await env.void(voided)
    assert status == 201 and void["status"] == "succeeded", void
    status, refund = await env.refund(refunded, "30.00")
    assert status == 201 and refund["status"] == "succeeded", refund
    good_rrn = (await env.app[STORE].get(kept)).rrn
    await env.app[STORE].update(kept, rrn="000000000000")
    status, refused = await env.refund(kept, "10.00")
    assert status == 201 and refused["status"] == "declined", refused
    await env.app[STORE].update(kept, rrn=good_rrn)
    return {"kept": kept, "voided": voided, "refunded": refunded, "void": void["id"],
            "refund": refund["id"]}


def _today(env: Env) -> date:
    return env.settings.cutoff.day_of(env.simulator.settled()[0].at)


def _publish(env: Env, day: date) -> ZmFile:
    path = DailyFilePublisher(env.simulator, env.settings.acquirer_files_dir,
                              env.settings.cutoff).publish(day)
    assert path == env.settings.acquirer_files_dir / file_name(day)
    return ZmFile.decode(path.read_bytes())


async def test_a_day_is_settled_once_and_each_merchant_sees_only_its_own(env: Env) -> None:
    ids = await _a_day(env)
    day = _today(env)

    status, body = await _operator(env, "POST", f"{day}/run")
    assert status == 409 and body["error_id"] == "day-not-closed"   # the cut-off is to come
    status, first = await _operator(env, "POST", f"{day}/run", {"early": True})
    assert status == 201 and first["committed_now"], first
    [record] = first["merchants"]
    # Fees (M100001: 38 bp, 5 fen minimum): 8800 -> 33, 10000 -> 38; the voided 2500 pays none.
    assert (record["merchant_id"], record["gross"], record["gross_count"], record["voids"],
            record["refunds"], record["fees"], record["net"]) == \
        (MERCHANT, "213.00", 3, "25.00", "30.00", "0.71", "157.29")
    assert record["payout_date"] == (day + timedelta(days=1)).isoformat()
    assert {t["id"] for t in record["transactions"]} == \
        {ids["kept"], ids["voided"], ids["refunded"], ids["void"], ids["refund"]}

    # Running it again, by the API or another instance, changes nothing.
    keys_before = sorted(await env.redis.keys("settlement:*"))
    status, again = await _operator(env, "POST", f"{day}/run", {"early": True})
    assert status == 200 and not again["committed_now"] and again["merchants"] == first["merchants"]
    assert sorted(await env.redis.keys("settlement:*")) == keys_before
    status, shown = await _operator(env, "GET", f"{day}")
    assert status == 200 and shown["merchants"] == first["merchants"]

    status, text = await _statement(env, day, MERCHANT)
    assert status == 200 and json.loads(text) == record
    status, text = await _statement(env, day, MERCHANT, "?format=csv")
    rows = text.splitlines()
    assert status == 200 and rows[0].startswith("type,id") and len(rows) == 7
    assert rows[-1].startswith(f"total,{MERCHANT},{day},")
    status, text = await _statement(env, day, OTHER)           # sold nothing: no record, 404
    assert status == 404 and MERCHANT not in text and "213.00" not in text
    status, text = await _statement(env, day, MERCHANT, "?format=xml")
    assert status == 400
    status, text = await _statement(env, day - timedelta(days=1), MERCHANT)
    assert status == 404


async def test_a_crash_between_build_and_commit_leaves_nothing(env: Env) -> None:
    await _a_day(env)
    day = _today(env)

    async def crash(_: date) -> None:
        raise KeyboardInterrupt  # the process dies here: built, not committed

    crashing = SettlementService(env.redis, env.app[STORE], RefundStore(env.redis),
                                 cutoff=env.settings.cutoff, fees=FeeTable.load(),
                                 acquirer_files=env.settings.acquirer_files_dir,
                                 before_commit=crash)
    with pytest.raises(KeyboardInterrupt):
        await crashing.run(day, early=True)
    # (The closed days before it are settled by the service's own round: empty days.)
    assert await env.redis.keys(f"settlement:{day}*") == []
    assert day.isoformat().encode() not in await env.redis.zrange("settlement:days", 0, -1)
    settled = await env.app[SETTLEMENT].run(day, early=True)
    assert settled.committed_now and settled.records[MERCHANT].gross == 21300


async def test_a_day_with_money_in_flight_waits(env: Env) -> None:
    payment = await env.app[STORE].create({"merchant_id": MERCHANT, "amount_minor": 100,
                                           "mode": "callback"})
    await env.app[STORE].transition(payment.id, PaymentState.PIN_ENTRY)
    await env.app[STORE].transition(payment.id, PaymentState.AUTHORIZING)
    day = env.settings.cutoff.day_of(datetime.now(timezone.utc))
    with pytest.raises(DayNotReady, match=payment.id):
        await env.app[SETTLEMENT].run(day, early=True)
    with pytest.raises(DayNotClosed):
        await env.app[SETTLEMENT].run(day + timedelta(days=1), early=True)
    status, body = await _operator(env, "POST", f"{day}/run", {"early": True})
    assert status == 409 and body["error_id"] == "day-not-ready"
    assert await env.redis.keys(f"settlement:{day}*") == []


async def test_reconciliation_with_the_simulators_file_clean_then_names_both_differences(
        env: Env) -> None:
    await _a_day(env)
    day = _today(env)
    status, body = await _operator(env, "POST", f"{day}/reconcile")
    assert status == 404 and body["error_id"] == "not-settled"
    status, _ = await _operator(env, "POST", f"{day}/run", {"early": True})
    assert status == 201
    status, body = await _operator(env, "POST", f"{day}/reconcile")
    assert status == 409 and body["error_id"] == "no-acquirer-file"

    file = _publish(env, day)
    assert [r.txn_code for r in file.records] == [TxnCode.PURCHASE] * 3 + [TxnCode.VOID,
                                                                           TxnCode.REFUND]
    assert {r.merchant_name for r in file.records} == {"中国移动上海"}
    assert APPROVE.pan not in file.encode().decode("gbk")
    status, report = await _operator(env, "POST", f"{day}/reconcile")
    assert status == 200 and report["clean"], report
    assert report["counts"]["matched"] == 5

    # The acquirer's file loses one record and alters another's amount.
    removed, altered = file.records[0], file.records[4]
    changed = ZmFile(file.day, file.acquirer, file.created_at, (
        *file.records[1:4],
        replace(altered, amount=altered.amount + 1, settlement_amount=altered.amount + 1)))
    (env.settings.acquirer_files_dir / file_name(day)).write_bytes(changed.encode())
    status, report = await _operator(env, "POST", f"{day}/reconcile")
    assert status == 200 and not report["clean"]
    problems = {(line["result"], line["rrn"]) for line in report["lines"]
                if line["result"] != "matched"}
    assert problems == {("missing_acquirer", removed.rrn), ("amount_mismatch", altered.rrn)}
    mismatch = next(line for line in report["lines"] if line["result"] == "amount_mismatch")
    assert (mismatch["our_amount"], mismatch["acquirer_amount"]) == ("30.00", "30.01")
    assert "adjustment" in mismatch["action"]
    status, stored = await _operator(env, "GET", f"{day}/reconciliation")
    assert status == 200 and stored == report


async def test_the_operator_and_merchant_command_lines(env: Env, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack.merchant_cli import main as merchant_cli
    from ivr.admin import main as admin_cli
    await _a_day(env)
    day = _today(env)
    _publish(env, day)
    base = ["--url", str(env.client.make_url("")), "--token-file",
            str(env.settings.operator_token_file)]

    async def run(cli: Any, *argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli, list(argv))  # urllib blocks: not in the loop
        return code, capsys.readouterr().out

    code, out = await run(admin_cli, *base, "settlement", "run", str(day))
    assert code == 1 and json.loads(out)["error_id"] == "day-not-closed"
    code, out = await run(admin_cli, *base, "settlement", "run", str(day), "--early")
    assert code == 0 and json.loads(out)["merchants"][0]["net"] == "157.29"
    code, out = await run(admin_cli, *base, "settlement", "show", str(day))
    assert code == 0 and json.loads(out)["merchants"][0]["merchant_id"] == MERCHANT
    code, out = await run(admin_cli, *base, "settlement", "reconcile", str(day))
    assert code == 0 and json.loads(out)["clean"]
    code, out = await run(admin_cli, *base, "settlement", "report", str(day))
    assert code == 0 and json.loads(out)["counts"]["matched"] == 5

    # The merchant's CLI signs with the development keys of the service's var dir.
    monkeypatch.setenv("VOICEPAY_VAR_DIR", str(env.settings.var_dir))
    monkeypatch.setenv("VOICEPAY_HTTP_PORT", str(env.client.port))
    code, out = await run(merchant_cli, "statement", str(day), "--csv")
    assert code == 0 and out.splitlines()[-1].startswith(f"total,{MERCHANT},{day},")
    code, out = await run(merchant_cli, "statement", str(day))
    assert code == 0 and json.loads(out)["gross"] == "213.00"
    code, out = await run(merchant_cli, "--merchant", OTHER, "statement", str(day))
    assert code == 1 and json.loads(out)["error_id"] == "not-settled"


async def test_the_acquirers_file_leaves_out_a_purchase_it_reversed(env: Env) -> None:
    kept = await env.approved_payment(APPROVE, 1000)
    env.stan += 1
    pek = load_ivr_keys(env.settings.ivr_keys_file).pek
    lost = PurchaseRequest.create(
        pan=APPROVE.pan, amount=2000, stan=f"{env.stan:06d}",
        pin_block=pinblock_from_digits(pek, bytearray(APPROVE.pin.encode()), APPROVE.pan),
        terminal_id=env.settings.terminal_id, merchant_id=MERCHANT.ljust(15))
    client = AcquirerClient("127.0.0.1", env.relay.upstream_port, 2.0)
    assert (await client.authorize(lost)).approved
    assert await client.reverse(lost)           # the answer was lost: the purchase is undone
    file = _publish(env, _today(env))
    assert [(r.txn_code, r.amount, r.rrn) for r in file.records] == \
        [(TxnCode.PURCHASE, 1000, (await env.app[STORE].get(kept)).rrn)]
