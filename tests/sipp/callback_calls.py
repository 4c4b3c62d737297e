"""The cardholder's phone for callback payments: what it does once the platform calls.

Each function returns a :class:`Callee` (SIPp as UAS) whose key presses are timed from the real
prompts of the call's language: intro, merchant name and amount play in full before the
"press 1 to pay" menu listens.
"""

from __future__ import annotations

import sys

from simulators.acquirer.testcards import find_test_card
from ivr.merchants import load_seed
from ivr.speech import amount_prompts
from tests.sipp.scenario import SIPP_DIR, Callee, Key, PromptClock, write_uas_scenario

MARGIN_MS = 700
MERCHANT = "M100001"


def _until_menu(language: str, amount_minor: int, merchant: str = MERCHANT) -> int:
    clock = PromptClock(language)
    name = next(m for m in load_seed() if m.id == merchant).display_name(language)
    return (clock.ms("callback_intro") + clock.spoken_name_ms(name)
            + clock.ms("callback_amount", *amount_prompts(amount_minor, language)) + MARGIN_MS)


def pays_with_pin(name: str, pins: list[str], *, language: str, amount_minor: int,
                  merchant: str = MERCHANT) -> Callee:
    """Answers, presses 1, keys each PIN in turn (a wrong one first, if two are given)."""
    clock = PromptClock(language)
    steps = [Key("1", _until_menu(language, amount_minor, merchant))]
    for index, pin in enumerate(pins):
        wait = 600 if index == 0 else clock.ms("please_wait", "incorrect_pin", "try_again") + MARGIN_MS
        steps.append(Key(pin + "#", wait, label="PIN"))
    return Callee(name, steps=steps)


def pays_with_expiry_and_cvv2(name: str, expiry_mmyy: str, cvv2: str, *, language: str,
                              amount_minor: int) -> Callee:
    return Callee(name, steps=[
        Key("1", _until_menu(language, amount_minor)),
        Key(expiry_mmyy, 600, label="expiry"),
        Key(cvv2, 400, label="CVV2"),
    ])


def keys_1_during_the_readout(name: str, pin: str, *, language: str, amount_minor: int) -> Callee:
    """Presses 1 while the merchant's name is still being read out, before the menu is asked
    (issue 13: that key was dropped and the PIN's first digit answered the menu), then keys the
    PIN once the PIN prompt has begun."""
    clock = PromptClock(language)
    merchant = next(m for m in load_seed() if m.id == MERCHANT).display_name(language)
    during_the_merchant = clock.ms("callback_intro") + clock.spoken_name_ms(merchant) // 2
    return Callee(name, steps=[
        Key("1", during_the_merchant, label="1 during the readout"),
        Key(pin + "#", 1500, label="PIN"),
    ])


def steps_up_with_id(name: str, id_answers: list[str], pin: str | None, *, language: str,
                     amount_minor: int) -> Callee:
    """Answers, presses 1, keys each answer to the ID step-up in turn (the last 6 characters of
    the ID number, ``*`` for an X, then #), then the PIN if one is given."""
    clock = PromptClock(language)
    steps = [Key("1", _until_menu(language, amount_minor))]
    for index, answer in enumerate(id_answers):
        wait = 600 if index == 0 else clock.ms("id_check_retry") + MARGIN_MS
        steps.append(Key(answer + "#", wait, label="ID characters"))
    if pin is not None:
        steps.append(Key(pin + "#", 600, label="PIN"))
    return Callee(name, steps=steps)


def refuses(name: str, *, language: str, amount_minor: int) -> Callee:
    return Callee(name, steps=[Key("2", _until_menu(language, amount_minor))])


def hangs_up_mid_pin(name: str, pin: str, *, language: str, amount_minor: int) -> Callee:
    return Callee(name, steps=[
        Key("1", _until_menu(language, amount_minor)),
        Key(pin[:3], 600, label="half a PIN"),
    ], hang_up_after_ms=500)


def never_answers(name: str, calls: int = 1) -> Callee:
    return Callee(name, behaviour="no_answer", calls=calls)


def busy(name: str, calls: int) -> Callee:
    return Callee(name, behaviour="busy", calls=calls)


def shipped() -> list[Callee]:
    """The QA phones in tests/sipp/callback/, for an order of 88.00 in Mandarin (the default)."""
    debit, credit = find_test_card("approve"), find_test_card("credit_approve")
    return [
        pays_with_pin("pays_debit", [debit.pin], language="zh", amount_minor=8800),
        pays_with_expiry_and_cvv2("pays_credit", credit.expiry[2:] + credit.expiry[:2], credit.cvv2,
                                  language="zh", amount_minor=8800),
        refuses("refuses", language="zh", amount_minor=8800),
        never_answers("never_answers"),
        busy("busy", calls=3),
    ]


def main() -> int:
    for callee in shipped():
        print(write_uas_scenario(callee, SIPP_DIR / "callback"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
