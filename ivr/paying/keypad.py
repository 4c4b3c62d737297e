"""Keypad entry with re-prompts: the questions every call flow is written with.

A question is every prompt that leads to it, then the question itself ("... the amount is 88
yuan" then "press 1 to pay"): keys are taken during all of them, and the first key pressed starts
the answer (``AgiChannel.ask``). A re-prompt is a question too: "that card number is not valid"
leads to "please enter your card number" again, so a caller who re-keys at once loses nothing.
Nothing else a flow plays takes keys ("please wait", results), and Asterisk discards keys pressed
between two questions: an answer is only ever keyed while its own question is being asked.

Each helper asks, checks the answer, and asks again (with what was wrong as the lead-in) on
silence or bad input, up to ``max_attempts`` times; then it says so and raises
``TooManyAttempts``. Nothing here logs what was keyed: at most how many digits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from ivr.agi.channel import AgiChannel
from ivr.prompts import Prompts
from ivr.validation import ValidationError

__all__ = ["Keypad", "TooManyAttempts"]

T = TypeVar("T")


class TooManyAttempts(Exception):
    """The caller did not give a usable answer within the allowed attempts."""

    def __init__(self, step: str) -> None:
        super().__init__(f"no valid entry for step {step!r}")
        self.step = step


@dataclass
class Keypad:
    call: AgiChannel
    prompts: Prompts
    first_digit_timeout_ms: int
    max_attempts: int

    async def digits(self, prompt: str, *, max_digits: int, check: Callable[[str], str],
                     invalid: str, lead_in: Sequence[str] = (), begun_with: str = "") -> str:
        """Collect digits (ended by # or ``max_digits``) and return them once ``check`` accepts.

        ``begun_with``: a digit the caller keyed before this question was asked (typing ahead);
        the first answer is that digit and the rest, collected without asking.
        """
        for attempt in range(self.max_attempts):
            if attempt == 0 and begun_with:
                entry = (await self.call.answer_begun_with(
                    ord(begun_with), self.first_digit_timeout_ms, max_digits)).decode("ascii")
            else:
                entry = await self._ask(lead_in, prompt, max_digits)
            if not entry:
                lead_in = ["no_input"]
                continue
            try:
                return check(entry)
            except ValidationError:
                lead_in = [invalid]
        await self._give_up(prompt, why=lead_in)

    async def choice(self, prompt: str, options: Mapping[str, T], *,
                     lead_in: Sequence[str] = ()) -> T:
        """A one-key menu: returns the option for the key pressed."""
        for _ in range(self.max_attempts):
            entry = await self._ask(lead_in, prompt, 1)
            if entry in options:
                return options[entry]
            lead_in = ["invalid_choice" if entry else "no_input"]
        await self._give_up(prompt, why=lead_in)

    async def secret(self, prompt: str, *, min_len: int, max_len: int, invalid: str,
                     lead_in: Sequence[str] = ()) -> bytearray:
        """Collect a PIN-like secret into a bytearray that the caller must wipe.

        A rejected entry is wiped here before the re-prompt. The digits never become a ``str``.
        """
        for _ in range(self.max_attempts):
            digits = await self.call.ask(self._files(lead_in, prompt),
                                         self.first_digit_timeout_ms, max_len)
            if min_len <= len(digits) <= max_len and digits.isdigit():
                return digits
            lead_in = ["no_input" if not digits else invalid]
            digits[:] = b"\0" * len(digits)
        await self._give_up(prompt, why=lead_in)

    async def _ask(self, lead_in: Sequence[str], prompt: str, max_digits: int) -> str:
        """An answer that is not secret (menu keys, a mobile or card number), as a ``str``."""
        keyed = await self.call.ask(self._files(lead_in, prompt), self.first_digit_timeout_ms,
                                    max_digits)
        return keyed.decode("ascii")

    def _files(self, lead_in: Sequence[str], prompt: str) -> list[str]:
        return [self.prompts[name] for name in (*lead_in, prompt)]

    async def _give_up(self, prompt: str, why: Sequence[str]) -> NoReturn:
        """What was wrong with the last answer, then "too many attempts": no question follows."""
        await self.call.play(*(self.prompts[name] for name in (*why, "too_many_attempts")))
        raise TooManyAttempts(prompt)
