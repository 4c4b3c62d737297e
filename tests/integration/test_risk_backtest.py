"""The backtest replays the decision audit through a new rules file (real Redis, the CLI)."""

from __future__ import annotations

import asyncio

from ivr.risk.audit import RiskAudit
from ivr.risk.backtest import main
from ivr.risk.engine import RulesRiskEngine
from ivr.risk.lists import RiskLists
from ivr.risk.rules import SHIPPED_RULES, read_rules
from ivr.risk.subjects import SubjectDigester
from ivr.risk.velocity import Velocity
from tests.integration.risk_fakes import FakeBinding, FakeIdentity, request


async def test_a_new_rules_file_reports_what_would_change(redis_client, redis_server, tmp_path,
                                                          capsys):
    audit, digester = RiskAudit(redis_client), SubjectDigester(bytes(32))
    engine = RulesRiskEngine(read_rules(SHIPPED_RULES), RiskLists(redis_client, digester, audit),
                             Velocity(redis_client), audit, digester, FakeIdentity(),
                             FakeBinding())
    for i, amount in enumerate(["88.00", "150.00", "300.00", "15000.00"]):
        await engine.assess(request(f"pay_{i}", amount=amount, mobile=f"1380013810{i}"))
    await engine.assess(request("pay_1", amount="150.00", mobile="13800138101"))  # a retry
    stricter = tmp_path / "new.yaml"
    stricter.write_text(SHIPPED_RULES.read_text(encoding="utf-8")
                        .replace("when: amount >= 10000\n", "when: amount >= 100\n"),
                        encoding="utf-8")

    # The command runs its own event loop, as from a shell.
    assert await asyncio.to_thread(main, [str(stricter), "--redis", redis_server]) == 0
    out = capsys.readouterr().out
    assert "over 4 decided payments: 2 would change" in out
    assert "approve -> step_up: 2, e.g. pay_1, pay_2" in out
    assert "large_amount_step_up" in out


def test_a_broken_rules_file_is_refused(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: x\n", encoding="utf-8")
    assert main([str(broken), "--redis", "redis://127.0.0.1:1/0"]) == 2
    assert "thresholds" in capsys.readouterr().err
