"""Keypad entry with re-prompts: the building blocks every call flow is written with.

Each helper plays a prompt, collects digits, checks them, and re-prompts on silence or bad input up
to ``max_attempts`` times; then it says so and raises ``TooManyAttempts``. Nothing here logs what
was keyed: at most how many digits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

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
                     invalid: str) -> str:
        """Collect digits (ended by # or ``max_digits``) and return them once ``check`` accepts."""
        for _ in range(self.max_attempts):
            entry = await self.call.get_data(self.prompts[prompt], self.first_digit_timeout_ms,
                                             max_digits)
            if not entry.digits:
                await self.call.stream(self.prompts["no_input"])
                continue
            try:
                return check(entry.digits)
            except ValidationError:
                await self.call.stream(self.prompts[invalid])
        await self.call.stream(self.prompts["too_many_attempts"])
        raise TooManyAttempts(prompt)

    async def choice(self, prompt: str, options: Mapping[str, T]) -> T:
        """A one-key menu: returns the option for the key pressed."""
        for _ in range(self.max_attempts):
            entry = await self.call.get_data(self.prompts[prompt], self.first_digit_timeout_ms, 1)
            if not entry.digits:
                await self.call.stream(self.prompts["no_input"])
            elif entry.digits in options:
                return options[entry.digits]
            else:
                await self.call.stream(self.prompts["invalid_choice"])
        await self.call.stream(self.prompts["too_many_attempts"])
        raise TooManyAttempts(prompt)

    async def secret(self, prompt: str, *, min_len: int, max_len: int, invalid: str) -> bytearray:
        """Collect a PIN-like secret into a bytearray that the caller must wipe.

        A rejected entry is wiped here before the re-prompt.
        """
        for _ in range(self.max_attempts):
            digits = await self.call.get_secret_digits(self.prompts[prompt],
                                                       self.first_digit_timeout_ms, max_len)
            if min_len <= len(digits) <= max_len:
                return digits
            silent = not digits
            digits[:] = b"\0" * len(digits)
            await self.call.stream(self.prompts["no_input" if silent else invalid])
        await self.call.stream(self.prompts["too_many_attempts"])
        raise TooManyAttempts(prompt)
