"""The dialplan-only baseline: the self-service call's shape with no FastAGI, Redis or acquirer.

The same prompts in the same order, each question a ``Read()`` with the flow's limits, "please
wait", the result with a 12-digit reference read out, goodbye. What it read is logged in one
NOTICE line per call (``bench-baseline-read:<uniqueid>:<mobile>:<menu key>:<card>:<pin>``) so
the benchmark can check every digit arrived; the digits it is keyed are non-secret strings, not
test cards.

It is loaded into the running Asterisk over the CLI (``dialplan add extension``) for the
benchmark only: the product's dialplan in dialplan/ never holds it, and a ``dialplan reload``
or a restart drops it.
"""

from __future__ import annotations

__all__ = ["NUMBER", "MARKER", "CONTEXT", "ANSWERS", "extensions", "cli_commands"]

NUMBER = "8090"
CONTEXT = "voicepay-bench-baseline"
MARKER = "bench-baseline-read"
# mobile, amount menu key, "card", "PIN": the shape of the IVR's answers, none of them secret.
ANSWERS = ("13800138001", "1", "9000000000000001", "246802")
REFERENCE = "000000000001"  # the IVR reads the acquirer's 12-digit RRN out

_SOUNDS = "/opt/voicepay/sounds"
# The flow's waits (ivr/config.py defaults: 10 s for a first digit; the language choice 2 s).
_FIRST_DIGIT_S = 10
_LANGUAGE_CHOICE_S = 2


def _sound(name: str, language: str = "zh") -> str:
    return f"{_SOUNDS}/{language}/{name}"


def extensions() -> list[str]:
    """The baseline's applications, priority 1 first (Mandarin, like 8000)."""
    reference = "&".join(_sound(f"digit_{digit}") for digit in REFERENCE)
    return [
        "Answer()",
        f"Playback({_sound('topup_welcome')}&{_sound('language_offer', 'yue')})",
        f"Read(LANGUAGE_KEY,{_sound('language_offer', 'en')},1,,1,{_LANGUAGE_CHOICE_S})",
        f"Read(MOBILE,{_sound('enter_mobile')},11,,1,{_FIRST_DIGIT_S})",
        f"Read(AMOUNT,{_sound('amount_menu')},1,,1,{_FIRST_DIGIT_S})",
        f"Read(CARD,{_sound('enter_card')},20,,1,{_FIRST_DIGIT_S})",
        f"Read(PIN,{_sound('enter_pin')},12,,1,{_FIRST_DIGIT_S})",
        f"Playback({_sound('please_wait')})",
        f"Log(NOTICE,{MARKER}:${{UNIQUEID}}:${{MOBILE}}:${{AMOUNT}}:${{CARD}}:${{PIN}})",
        f"Playback({_sound('approved')}&{reference})",
        f"Playback({_sound('goodbye')})",
        "Hangup()",
    ]


def cli_commands(caller_context: str = "from-cardholder") -> list[str]:
    """Asterisk CLI commands adding the baseline, reachable as ``NUMBER`` from the SIPp caller's
    context (an extension of the context itself: its includes end with a catch-all ``_X.``)."""
    commands = [f"dialplan add extension {NUMBER},{priority},{application} into {CONTEXT} replace"
                for priority, application in enumerate(extensions(), start=1)]
    commands.append(f"dialplan add extension {NUMBER},1,Goto({CONTEXT},{NUMBER},1) "
                    f"into {caller_context} replace")
    return commands
