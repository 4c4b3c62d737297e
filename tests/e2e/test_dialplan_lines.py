"""What only the dialplan decides (dialplan/selfservice.conf, dialplan/failure.conf), through
real Asterisk with a SIPp caller: the Mandarin line 8001, and the failure path a caller takes
when the payment IVR cannot be reached.

Both read what the caller heard from Asterisk's own log, from a mark taken before the call, so an
earlier call on the same line cannot answer for this one. The Mandarin caller keys each entry
when the test has seen the IVR ask for it (SIPp 3PCC cues), not at times computed in advance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Key

pytestmark = pytest.mark.e2e

SELF_SERVICE = "voicepay self-service top-up"  # the NoOp both 8000 and 8001 log


def heard(stack, since: int) -> list[PurePosixPath]:
    return [PurePosixPath(p) for p in stack.prompts_played(SELF_SERVICE, since)]


def top_up_on_cues(stack, name: str, number: str, mobile: str, *,
                   first: tuple[tuple[str, Key], ...] = (), hold_before_pin: bool = False,
                   on_prompt: Callable[[str], None] | None = None,
                   **call_options) -> tuple[dict, int]:
    """A top-up on ``number`` keyed as the IVR asks (``first``: steps before the mobile number,
    each a prompt to wait for and the key to press then); the payment, and the log mark.
    ``hold_before_pin``: the caller holds and unholds (re-INVITEs) once asked for the PIN;
    ``on_prompt(prompt)`` runs once the IVR has begun each prompt a key answers; ``call_options``
    go to :class:`Call` (codecs, transport)."""
    card = find_test_card("approve")
    before, mark = stack.payment_ids(), stack.asterisk_mark()
    steps = [*first,
             ("enter_mobile", Key(mobile, cue="mobile", label="mobile number")),
             ("amount_menu", Key("1", cue="amount", label="1 for fifty yuan")),
             ("enter_card", Key(card.pan + "#", cue="card", label="card number")),
             ("enter_pin", Key(card.pin + "#", cue="PIN", label="PIN", hold=hold_before_pin))]
    cues = Cues()
    try:
        caller = stack.start_call(Call(name, number, [key for _, key in steps], **call_options),
                                  cues=cues)
        for prompt, key in steps:
            stack.wait_for_prompt(SELF_SERVICE, prompt, since=mark)
            if on_prompt is not None:
                on_prompt(prompt)
            cues.send(key.cue)
        output, _ = caller.communicate(timeout=120)  # the IVR says goodbye and hangs up
        assert caller.returncode == 0, output[-2000:]
    finally:
        cues.close()
    return stack.new_payment(mobile, before), mark


def test_8001_is_the_self_service_line_in_mandarin(stack):
    payment, mark = top_up_on_cues(stack, "mandarin_topup", "8001", "13800008001")
    assert payment["status"] == "approved" and payment["language"] == "zh"
    prompts = heard(stack, mark)
    assert [p.stem for p in prompts][:7] == ["topup_welcome", "language_offer", "language_offer",
                                             "enter_mobile", "amount_menu", "enter_card",
                                             "enter_pin"]
    assert prompts[-1].stem == "goodbye"
    # Every prompt from the Mandarin sounds, but the offers of Cantonese and English, each in
    # its own language.
    assert [p.parent.name for p in prompts[1:3]] == ["yue", "en"]
    assert {p.parent.name for p in prompts[:1] + prompts[3:]} == {"zh"}


def test_a_caller_switches_the_line_to_english_and_hears_g711_files(stack):
    """8000 answers in Mandarin; 9, pressed while the other languages are offered, switches the
    whole call to English. Every prompt is played from its .ulaw file: the channel's write
    format during playback is ulaw, so Asterisk translated nothing (a WAV would show slin)."""
    payment, mark = top_up_on_cues(stack, "switch_to_english", "8000", "13800008009", first=(
        ("language_offer", Key("9", cue="english", label="9 for English")),))
    assert payment["status"] == "approved" and payment["language"] == "en"
    prompts = heard(stack, mark)
    assert prompts[0].parent.name == "zh" and prompts[0].stem == "topup_welcome"
    after = prompts[prompts.index(next(p for p in prompts if p.stem == "enter_mobile")):]
    assert [p.stem for p in after][:4] == ["enter_mobile", "amount_menu", "enter_card", "enter_pin"]
    assert {p.parent.name for p in after} == {"en"} and after[-1].stem == "goodbye"
    assert {p.suffix for p in prompts} == {".ulaw"}, prompts


def test_the_failure_path_apologises_when_the_ivr_cannot_be_reached(stack):
    if stack.processes is None:
        pytest.fail("this test stops the ivr service: it needs the stack the tests start "
                    "(unset VOICEPAY_E2E_USE_RUNNING)", pytrace=False)
    mark = stack.asterisk_mark()
    stack.processes.stop_component("ivr")
    try:
        result = stack.call(Call("ivr_unreachable", "8000", [], bye_timeout_ms=30000))
    finally:
        stack.processes.start_component("ivr")  # waits until /healthz answers 200 again
    assert result.returncode == 0, result.stdout[-2000:]

    # The AGI could not connect: the dialplan went to [agi-fail] (its NoOp names AGISTATUS),
    # which apologised in the caller's language and hung up (the BYE SIPp waited for).
    assert [(p.parent.name, p.stem) for p in heard(stack, mark)] == [("zh", "service_unavailable")]
    apology = stack.prompts_played("voicepay AGI failed: FAILURE", mark)
    assert [PurePosixPath(p).stem for p in apology] == ["service_unavailable"]
