"""The ID step-up: the cardholder confirms the last 6 characters of their ID number before the PIN.

A risk decision of ``step_up`` (ivr/risk/) keeps, at order time, a keyed digest of the last 6
characters of the order's ID number on the payment (HMAC-SHA256 under the IVR's cardholder key,
bound to the payment id), never the characters. On the call, after "press 1 to pay", the IVR asks
for them; a final ``X`` check character is keyed as ``*``. The answer is secret input like the
PIN: read into a bytearray, compared as a digest, wiped, never logged or stored; the history
says only "ID step-up passed/failed". A wrong answer is asked again; after
``id_check_max_attempts`` wrong answers the payment fails and no PIN is asked for.
"""

from __future__ import annotations

import logging

from ivr.agi.channel import AgiChannel
from ivr.crypto.keyed_digest import KeyedDigest
from ivr.crypto.keyring import KeySource
from ivr.payments.store import Payment, PaymentState, PaymentStore
from ivr.prompts import Prompts

__all__ = ["IdDigests", "ID_KEYS", "confirm_id"]

log = logging.getLogger(__name__)

ID_KEYS = b"0123456789*"  # the keypad has no X: "*" stands for it
_LENGTH = 6
# Domain separation: the cardholder key also makes the returning-cardholder digests.
_PURPOSE = b"voicepay id step-up\0"


class IdDigests:
    """Keyed digests of an ID number's last 6 characters, bound to one payment. Made under the
    current cardholder key, checked under every readable one: an order placed just before a
    rotation is still confirmed after it."""

    def __init__(self, key: bytes | KeySource) -> None:
        self._digests = KeyedDigest(key)

    def of_id_number(self, payment_id: str, id_number: str) -> str:
        """At order time, from the ID number in the order (``X`` in either case)."""
        characters = bytearray(id_number[-_LENGTH:].upper().encode())
        return self._digests.current(*self._parts(payment_id, characters))

    def matches(self, payment_id: str, keyed: bytearray, expected: str) -> bool:
        """Whether what the caller keyed (``*`` for X) is the ID number's last 6 characters.
        ``keyed`` is wiped."""
        try:
            if len(keyed) != _LENGTH:
                return False
            for index, byte in enumerate(keyed):  # in place: no copy of the characters
                if byte == ord("*"):
                    keyed[index] = ord("X")
            return self._digests.matches(expected, *self._parts(payment_id, keyed))
        finally:
            keyed[:] = b"\0" * len(keyed)

    @staticmethod
    def _parts(payment_id: str, characters: bytearray) -> tuple[bytes | bytearray, ...]:
        return (_PURPOSE + payment_id.encode() + b"\0", characters)


async def confirm_id(call: AgiChannel, store: PaymentStore, digests: IdDigests, prompts: Prompts, payment: Payment,
                     *, max_attempts: int, first_digit_timeout_ms: int) -> bool:
    """Ask for the ID number's last 6 characters until they match; True once they do.

    After ``max_attempts`` wrong (or silent) answers the payment is ``failed`` and the caller
    hears so; False. Raises ``AgiHangup`` if the caller hangs up (the payment is then the
    caller's flow's to abandon).
    """
    lead_in: list[str] = []
    for attempt in range(1, max_attempts + 1):
        # Room for the 6 characters and the #, so the # is never left for the next prompt. A
        # re-prompt leads to the question: keys during it are the new answer (ivr/paying/keypad.py).
        keyed = await call.ask([*lead_in, prompts["enter_id_last6"]], first_digit_timeout_ms,
                               _LENGTH + 1)
        silent, count = not keyed, len(keyed)  # how many keys, for the agent's console: never which
        if digests.matches(payment.id, keyed, payment.id_check_digest):
            await store.note(payment.id, "ID step-up passed", event="id_check_passed",
                             keyed=("id", count))
            log.info("call %s payment %s: ID step-up passed", call.uniqueid, payment.id)
            return True
        await store.note(payment.id, f"ID step-up failed (attempt {attempt} of {max_attempts})",
                         event="id_check_failed", keyed=("id", count))
        log.info("call %s payment %s: ID step-up failed (attempt %d of %d)", call.uniqueid,
                 payment.id, attempt, max_attempts)
        lead_in = [prompts["no_input" if silent else "id_check_retry"]]
    await store.transition(payment.id, PaymentState.FAILED,
                           reason=f"ID step-up failed: {max_attempts} wrong answers; "
                                  "no PIN was asked for")
    await call.stream(prompts["id_check_failed"])
    return False
