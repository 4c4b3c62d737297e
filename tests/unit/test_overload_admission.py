"""Admission before Answer(): the setting reaches the dialplan, and every inbound payment line
refuses a call over it with the cause chan_pjsip answers 503 for (README "Past the knee")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devstack.asterisk_sandbox import AsteriskSandbox
from devstack.dialplan_globals import GENERATED_MOUNT, GLOBALS_FILE, globals_text, write_globals
from ivr import dialplan_variables as dv
from ivr.config import REPO_ROOT, Settings, load_settings

DIALPLAN = REPO_ROOT / "dialplan"
# Asterisk 22's channels/chan_pjsip.c, hangup_cause2sip(): AST_CAUSE_CONGESTION (34) -> 503.
CAUSE_SIP_503 = 34


def _extensions() -> dict[tuple[str, str], list[str]]:
    """(context, extension) -> its applications in priority order, from every dialplan file."""
    found: dict[tuple[str, str], list[str]] = {}
    context, exten = "", ""
    for path in sorted(DIALPLAN.glob("*.conf")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split(";", 1)[0].strip()
            if header := re.fullmatch(r"\[([\w-]+)\]", line):
                context = header.group(1)
            elif step := re.fullmatch(r"exten\s*=>\s*([^,]+),1,(.*)", line):
                exten = step.group(1)
                found[(context, exten)] = [step.group(2)]
            elif step := re.fullmatch(r"same\s*=>\s*n(?:\([\w-]+\))?,(.*)", line):
                found[(context, exten)].append(step.group(1))
    return found


def test_the_setting_is_written_as_a_dialplan_global(tmp_path: Path):
    settings = load_settings(max_payment_calls=7)
    assert f"\n{dv.MAX_PAYMENT_CALLS} = 7\n" in globals_text(settings)
    # The CPU guard's refusal time starts passed: calls are admitted until the service says.
    assert f"\n{dv.CPU_FULL_UNTIL} = 0\n" in globals_text(settings)
    written = write_globals(settings, tmp_path / "generated")
    assert written == tmp_path / "generated" / GLOBALS_FILE
    assert written.read_text(encoding="ascii") == globals_text(settings)
    with pytest.raises(ValueError, match="VOICEPAY_MAX_PAYMENT_CALLS"):
        globals_text(load_settings(max_payment_calls=0))


def test_asterisk_reads_the_generated_globals():
    extensions = (REPO_ROOT / "asterisk-conf" / "extensions.conf").read_text(encoding="utf-8")
    globals_section = extensions.split("[globals]", 1)[1].split("\n[", 1)[0]
    assert f'#include "{GENERATED_MOUNT}/{GLOBALS_FILE}"' in globals_section
    sandbox = AsteriskSandbox(Settings(var_dir=Path("/srv/vp")), Path("/"))
    command = sandbox.server_command()
    bind = command.index(str(sandbox.generated_dir))
    assert command[bind - 1:bind + 2] == ["--ro-bind", str(sandbox.generated_dir), GENERATED_MOUNT]


def test_admission_counts_the_call_first_then_refuses_over_the_limit_with_503():
    steps = _extensions()[("admit-payment-call", "s")]
    assert steps[0] == "Set(GROUP(voicepay)=payment-calls)"  # counted before it is compared
    # The group the dialer counts too (AmiClient.payment_calls): one name for both.
    compare = next(s for s in steps if f"GROUP_COUNT({dv.PAYMENT_CALLS_GROUP})" in s)
    assert f"<= ${{{dv.MAX_PAYMENT_CALLS}}}]?admitted)" in compare
    assert f"Hangup({CAUSE_SIP_503})" in steps
    assert steps.index(f"Hangup({CAUSE_SIP_503})") < steps.index("Return()")


def test_every_line_that_answers_a_new_call_admits_it_before_answer():
    lines = {key: steps for key, steps in _extensions().items() if "Answer()" in steps}
    assert set(lines) == {("from-cardholder", "8000"), ("from-cardholder-oneline", "8100")}
    for key, steps in lines.items():
        admit = steps.index("Gosub(admit-payment-call,s,1)")
        assert admit < steps.index("Answer()"), key


def test_a_callback_is_counted_and_never_refused():
    steps = _extensions()[("pay-callback", "s")]
    assert "Gosub(count-payment-call,s,1)" in steps
    assert _extensions()[("count-payment-call", "s")] == ["Set(GROUP(voicepay)=payment-calls)",
                                                           "Return()"]
