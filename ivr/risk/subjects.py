"""Who and what a payment is about, as risk control may keep them: keyed digests and masked labels.

Lists and velocity counters are keyed by what a payment names (card, mobile, ID number, merchant,
source), but Redis must never hold a card or ID number, not even hashed without a key (an ID number
or a card number in a known BIN range is quick to guess from a plain hash). So each value is kept
as HMAC-SHA256 under the IVR's cardholder key, over ``kind:value`` (the same card under two kinds
never shares a digest, nor with ``ReturningCardholders``' ``pan:mobile`` digests), and shown to
operators only as a masked label.

The cardholder key rotates (:mod:`ivr.crypto.keyed_digest`): a subject's ``digest`` is made under
the current key, ``older`` under the other readable ones, so lists and velocity counters made
before a rotation still count until the old key is retired.

    >>> d = SubjectDigester(bytes(32))
    >>> d.label("mobile", "13900000001")
    '139****0001'
    >>> d.digest("card", "6221881000000011") == d.digest("card", "6221881000000011")
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.crypto.keyed_digest import KeyedDigest
from ivr.crypto.keyring import KeySource
from ivr.crypto.pan_vault import mask_pan
from ivr.orders import mask_id_number
from ivr.validation import ValidationError, check_card_number, check_id_number, check_mainland_mobile

__all__ = ["KINDS", "SubjectDigester", "Subject", "subjects_of", "check_subject"]

# What lists and velocity know about, in this order everywhere (facts, API paths, README).
KINDS: tuple[str, ...] = ("card", "mobile", "id_number", "merchant", "source")


@dataclass(frozen=True)
class Subject:
    kind: str
    digest: str  # under the current key: what is recorded
    label: str
    older: tuple[str, ...] = ()  # under the older readable keys: looked up, never recorded

    @property
    def digests(self) -> tuple[str, ...]:
        return (self.digest, *self.older)


class SubjectDigester:
    def __init__(self, key: bytes | KeySource) -> None:
        self._digests = KeyedDigest(key)

    def __repr__(self) -> str:
        return "SubjectDigester(key=<hidden>)"

    def digest(self, kind: str, value: str) -> str:
        return self._digests.current(f"{kind}:".encode(), value.encode())

    def digests(self, kind: str, value: str) -> list[str]:
        """Under every readable key, the current one first."""
        return self._digests.all(f"{kind}:".encode(), value.encode())

    @staticmethod
    def label(kind: str, value: str) -> str:
        """What an operator may see: first 6 / last 4 of a card, 3 + 4 of a mobile, region and
        last 4 of an ID number; merchant ids and sources as they are (not secrets)."""
        if kind == "card":
            return mask_pan(value)
        if kind == "mobile":
            return f"{value[:3]}****{value[-4:]}" if len(value) >= 7 else "****"
        if kind == "id_number":
            return mask_id_number(value)
        return value

    def subject(self, kind: str, value: str) -> Subject:
        current, *older = self.digests(kind, value)
        return Subject(kind, current, self.label(kind, value), tuple(older))


def check_subject(kind: str, value: str) -> str:
    """``value`` checked as a ``kind`` (ValidationError, or ValueError for an unknown kind)."""
    if kind == "card":
        return check_card_number(value)
    if kind == "mobile":
        return check_mainland_mobile(value)
    if kind == "id_number":
        return check_id_number(value)
    if kind in ("merchant", "source"):
        if not (isinstance(value, str) and 1 <= len(value) <= 64 and value.isprintable()):
            raise ValidationError(f"a {kind} is 1 to 64 printable characters", "malformed")
        return value
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def subjects_of(digester: SubjectDigester, *, card: str, mobile: str, id_number: str,
                merchant: str, source: str) -> dict[str, Subject]:
    """The subjects of one payment, by kind; a kind the payment has no value for is left out
    (a self-service top-up has no ID number, a request may have no source)."""
    values = {"card": card, "mobile": mobile, "id_number": id_number, "merchant": merchant,
              "source": source}
    return {kind: digester.subject(kind, value) for kind, value in values.items() if value}
