"""The identity simulators' test registry (``test_registry.json``): who the police know, which
mobile is registered for which card. Its ``about`` says how each service answers from it.

Loaded once at start and checked: every ID number passes the product's GB 11643 check, every card
number its Luhn check, every mobile is a mainland number, every binding names a known holder. The
registry is test data; its repr and errors still never show a number, so a log line cannot either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ivr.validation import ValidationError, check_card_number, check_id_number, check_mainland_mobile
from simulators.identity.settings import REGISTRY_PATH

__all__ = ["Identity", "Binding", "Registry", "RegistryError", "same_name", "find_test_identity"]


class RegistryError(Exception):
    """The registry file is malformed; the message names the entry (by label), never a number."""


def same_name(a: str, b: str) -> bool:
    """Names compared as people write them: case and runs of spaces do not matter."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@dataclass(frozen=True)
class Identity:
    label: str
    names: tuple[str, ...] = field(repr=False)
    id_number: str = field(repr=False)


@dataclass(frozen=True)
class Binding:
    label: str
    holder: Identity = field(repr=False)
    cards: frozenset[str] = field(repr=False)
    mobiles: frozenset[str] = field(repr=False)


class Registry:
    def __init__(self, identities: list[Identity], bindings: list[Binding]) -> None:
        self._by_id_number = {i.id_number: i for i in identities}
        self._bindings = bindings

    def __repr__(self) -> str:
        return f"Registry({len(self._by_id_number)} identities, {len(self._bindings)} bindings)"

    @classmethod
    def load(cls, path: Path) -> Registry:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
            identities = [Identity(e["label"], tuple(e["names"]), check_id_number(e["id_number"]))
                          for e in document["identities"]]
            by_id_number = {i.id_number: i for i in identities}
            bindings = [Binding(e["label"], by_id_number[e["holder"]],
                                frozenset(check_card_number(c) for c in e["cards"]),
                                frozenset(check_mainland_mobile(m) for m in e["mobiles"]))
                        for e in document["bindings"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # ValidationError is a ValueError: its message names what is wrong, never the value;
            # a KeyError would repeat an unknown holder's number, so only its kind is kept.
            detail = str(exc) if isinstance(exc, (ValidationError, OSError)) else type(exc).__name__
            raise RegistryError(f"test registry {path} is malformed: {detail}") from None
        return cls(identities, bindings)

    def identity(self, name: str, id_number: str) -> str:
        """The police answer: ``match``, ``mismatch`` or ``not_found``."""
        known = self._by_id_number.get(id_number.upper())
        if known is None:
            return "not_found"
        return "match" if any(same_name(name, n) for n in known.names) else "mismatch"

    def binding(self, card_number: str, mobile: str, name: str = "", id_number: str = "") -> str:
        """The binding answer: ``bound`` when ``mobile`` is registered for ``card_number`` and the
        name and ID number, where given, are its holder's; else ``not_bound``."""
        for binding in self._bindings:
            holder = binding.holder
            if (card_number in binding.cards and mobile in binding.mobiles
                    and (not name or any(same_name(name, n) for n in holder.names))
                    and (not id_number or id_number.upper() == holder.id_number)):
                return "bound"
        return "not_bound"


def find_test_identity(label: str) -> Identity:
    """A documented test identity by its label ("demo", "no-card", ...). Tests name identities so,
    never by number: a failing test prints its source, and the suite's output is scanned for ID
    numbers like every log."""
    for entry in json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))["identities"]:
        if entry["label"] == label:
            return Identity(label, tuple(entry["names"]), check_id_number(entry["id_number"]))
    raise KeyError(label)
