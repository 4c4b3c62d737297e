"""The self-service top-up calls, as a cardholder keys them: used by the end-to-end tests and
written out as the shipped QA scenarios in tests/sipp/selfservice/.

    python -m tests.sipp.selfservice_calls     # (re)write tests/sipp/selfservice/*.xml

Waits come from the prompt WAVs: a digit is keyed only while the IVR is listening for it.
"""

from __future__ import annotations

import sys

from ivr.selfservice.flow import LANGUAGE_CHOICE_MS
from simulators.acquirer.testcards import find_test_card
from tests.sipp.scenario import SIPP_DIR, Call, Key, PromptClock, write_scenario

NUMBER = "8000"  # Mandarin, the line's language; nothing keyed at the greeting keeps it
clock = PromptClock("zh")
# Answer() waits up to half a second for the caller's first audio frame before the dialplan goes
# on (Asterisk's __ast_answer), and SIPp sends none: the greeting starts that much after the 200 OK.
ANSWER_WAIT_MS = 500
# The greeting, Cantonese and English offered (each in its own voice), and the short wait for a
# language key after them: the mobile number is keyed once the IVR asks for it.
WELCOME_MS = (ANSWER_WAIT_MS + clock.ms("topup_welcome") + PromptClock("yue").ms("language_offer")
              + PromptClock("en").ms("language_offer") + LANGUAGE_CHOICE_MS)
# Slack between "the prompt should be listening now" and keying: Asterisk, AGI and RTP latency.
MARGIN_MS = 700
# After a wrong PIN the caller hears "please wait", then "incorrect PIN, please try again".
AFTER_WRONG_PIN_MS = clock.ms("please_wait", "incorrect_pin", "try_again") + MARGIN_MS


def order(mobile: str, card_keys: str, *, menu_key: str = "1") -> list[Key]:
    """Greeting, then mobile number, amount menu and card number, each keyed during its prompt."""
    return [
        Key(mobile, WELCOME_MS + MARGIN_MS),
        Key(menu_key, 300),
        Key(card_keys, 300, label="card number"),
    ]


def pin(digits: str, wait_ms: int = 600) -> Key:
    return Key(digits + "#", wait_ms, label="PIN")


def approved(mobile: str = "13800138001") -> Call:
    card = find_test_card("approve")  # PIN with repeated digits
    return Call("approved", NUMBER, [*order(mobile, card.pan + "#"), pin(card.pin)])


def wrong_then_right_pin(mobile: str = "13800138002", wrong: str = "1357") -> Call:
    card = find_test_card("wrong_pin")
    return Call("wrong_then_right_pin", NUMBER, [
        *order(mobile, card.pan + "#", menu_key="2"),
        pin(wrong),
        pin(card.pin, AFTER_WRONG_PIN_MS),
    ])


def luhn_reprompt(mobile: str = "13800138003") -> Call:
    card = find_test_card("approve_19")
    bad = card.pan[:-1] + str((int(card.pan[-1]) + 1) % 10)  # one digit off: fails Luhn
    return Call("luhn_reprompt", NUMBER, [
        Key(mobile, WELCOME_MS + MARGIN_MS),
        Key("3", 300),
        Key(bad + "#", 300, label="card number failing Luhn"),
        Key(card.pan + "#", clock.ms("invalid_card") + MARGIN_MS, label="card number"),
        pin(card.pin),
    ])


def insufficient_funds(mobile: str = "13800138004") -> Call:
    card = find_test_card("insufficient_funds")
    return Call("insufficient_funds", NUMBER, [*order(mobile, card.pan + "#"), pin(card.pin)])


def issuer_timeout(mobile: str = "13800138005") -> Call:
    card = find_test_card("issuer_timeout")
    return Call("issuer_timeout", NUMBER, [*order(mobile, card.pan + "#"), pin(card.pin)])


def hangup_mid_pin(mobile: str = "13800138006") -> Call:
    card = find_test_card("approve")
    return Call("hangup_mid_pin", NUMBER, [
        *order(mobile, card.pan + "#"),
        Key(card.pin[:3], 600, label="half a PIN"),
    ], hang_up_after_ms=500)


SHIPPED = [approved, wrong_then_right_pin, luhn_reprompt, insufficient_funds, issuer_timeout,
           hangup_mid_pin]


def main() -> int:
    for make_call in SHIPPED:
        print(write_scenario(make_call(), SIPP_DIR / "selfservice"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
