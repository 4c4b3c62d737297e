"""The body of ``POST /v1/payments``: parsed and checked into the domain's ``Order``.

Every refusal is an ``InvalidParameter`` naming the field. Messages and details describe what is
wrong with a value and never repeat it: the card number and ID number in particular must not
reach a response, a log line or an exception's text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import fields

from typing import Any
from urllib.parse import urlsplit

from ivr.api.errors import InvalidParameter
from ivr.money import Money
from ivr.orders import Order
from ivr.speech import LANGUAGES
from ivr.validation import ValidationError, check_card_number, check_id_number, check_mainland_mobile

__all__ = [
    "UnsupportedMode",
    "parse_order",
    "parse_json_object",
    "parse_amount",
    "MODES",
    "IN_CALL_MODES",
    "LANGUAGES",
]

# Payment modes a merchant may name: a callback, or one-line (inside an agent's live call), with
# the agent held apart ("oneline") or still talking to the caller ("talk-through").
MODES = ("callback", "oneline", "talk-through")
SUPPORTED_MODES = frozenset(MODES)
# The modes taken inside an agent's live call: they name the agent.
IN_CALL_MODES = frozenset({"oneline", "talk-through"})
# The agent whose live call a one-line payment is taken in: their PJSIP account name.
_AGENT_ID = re.compile(r"[0-9]{3,10}")

_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Exactly two decimal places, no sign, no exponent, no leading zeros: "0.01", "120.00".
# Field names we are willing to repeat back in an "unknown field" error.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NOTIFY_URL_MAX = 512


class UnsupportedMode(InvalidParameter):
    error_id = "unsupported-mode"


FIELDS = tuple(f.name for f in fields(Order))
REQUIRED = ("merchant_order_id", "amount", "description", "card_number", "cardholder_name",
            "id_number", "mobile", "mode")


def parse_amount(value: object, maximum: Money, *, name: str = "amount") -> Money:
    """A yuan amount as a string with exactly two decimals, from 0.01 to ``maximum``."""
    if not isinstance(value, str):
        raise InvalidParameter(name, 'must be a string such as "120.00"')
    try:
        amount = Money.parse(value)
    except ValueError:
        raise InvalidParameter(name, 'must be yuan with exactly two decimals, such as "120.00"') from None
    if amount.fen < 1:
        raise InvalidParameter(name, "must be at least 0.01")
    if amount > maximum:
        raise InvalidParameter(name, f"must be at most {maximum}")
    return amount


# Stands for a required field not given, until the fields before it have been judged.
_MISSING = object()


def _required(body: dict[str, Any], name: str) -> Any:
    if body[name] is _MISSING:
        raise InvalidParameter(name, "is required")
    return body[name]


def _text(body: dict[str, Any], name: str, max_len: int) -> str:
    value = _required(body, name)
    if not isinstance(value, str):
        raise InvalidParameter(name, "must be a string")
    if not value.strip():
        raise InvalidParameter(name, "must not be empty")
    if len(value) > max_len:
        raise InvalidParameter(name, f"must be at most {max_len} characters")
    # Read out and shown to people: no control characters (newlines, escapes, bidi controls).
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise InvalidParameter(name, "must not contain control characters")
    return value


def _secret_digits(body: dict[str, Any], name: str, check) -> str:
    value = _required(body, name)
    if not isinstance(value, str):
        raise InvalidParameter(name, "must be a string")
    try:
        return check(value)
    except ValidationError as exc:
        # The validators' messages name the rule, never the digits.
        raise InvalidParameter(name, str(exc)) from None


def _notify_url(value: object) -> str | None:
    name = "notify_url"
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(name, "must be a string")
    if len(value) > _NOTIFY_URL_MAX:
        raise InvalidParameter(name, f"must be at most {_NOTIFY_URL_MAX} characters")
    if not value.isascii() or any(c.isspace() or not c.isprintable() for c in value):
        raise InvalidParameter(name, "must be an ASCII URL without spaces")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidParameter(name, "must be an http or https URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter(name, "must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidParameter(name, "must not contain credentials")
    if port == 0:
        raise InvalidParameter(name, "must not use port 0")
    return value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidParameter(_shown(key), "appears more than once")
        result[key] = value
    return result


def _shown(key: str) -> str:
    return key if _FIELD_NAME.fullmatch(key) else "(field name)"


def parse_json_object(raw: bytes, *, what: str = "an order") -> dict[str, Any]:
    """The flat JSON object in ``raw`` (UTF-8, no repeated field), or InvalidParameter."""
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise InvalidParameter("body", "must be a JSON object (UTF-8)") from None
    except RecursionError:
        # json's decoder recurses once per nesting level: "[" x 5000 exhausts the stack.
        raise InvalidParameter("body", f"is nested too deeply ({what} is one flat object)") from None
    if not isinstance(body, dict):
        raise InvalidParameter("body", "must be a JSON object")
    return body


def parse_order(raw: bytes, *, maximum: Money) -> Order:
    """The order in ``raw`` (a JSON object), or InvalidParameter naming the first bad field."""
    body = parse_json_object(raw)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidParameter(_shown(unknown[0]), "unknown field")
    # Values given are judged before values missing, in the order below: the agent console's
    # inline check (a form filled top to bottom) names the field just left, not one still empty.
    for name in REQUIRED:
        if body.get(name) is None:
            body[name] = _MISSING

    mode = _required(body, "mode")
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidParameter("mode", f"must be one of {', '.join(MODES)}")
    if mode not in SUPPORTED_MODES:
        raise UnsupportedMode("mode", f"{mode} payments are not available yet; use callback")

    merchant_order_id = _required(body, "merchant_order_id")
    if not isinstance(merchant_order_id, str) or not _ORDER_ID.fullmatch(merchant_order_id):
        raise InvalidParameter("merchant_order_id", "must be 1 to 64 of A-Z, a-z, 0-9, _ and -")
    amount = parse_amount(_required(body, "amount"), maximum)
    description = _text(body, "description", 128)
    card_number = _secret_digits(body, "card_number", check_card_number)
    cardholder_name = _text(body, "cardholder_name", 64)
    id_number = _secret_digits(body, "id_number", check_id_number)
    mobile = _required(body, "mobile")
    if not isinstance(mobile, str):
        raise InvalidParameter("mobile", "must be a string")
    try:
        mobile = check_mainland_mobile(mobile)
    except ValidationError as exc:
        raise InvalidParameter("mobile", f"{exc} (mainland China mobile numbers only)") from None
    # Left out: the order service picks the cardholder's last language (cardholder_language.py).
    language = body.get("language")
    if "language" in body and language not in LANGUAGES:
        raise InvalidParameter("language", f"must be one of {', '.join(LANGUAGES)}")
    notify_url = _notify_url(body.get("notify_url"))
    agent_id = body.get("agent_id")
    if mode in IN_CALL_MODES:
        if not isinstance(agent_id, str) or not _AGENT_ID.fullmatch(agent_id):
            raise InvalidParameter("agent_id", f"is required for {mode}: the agent's 3 to 10 digit id")
    elif agent_id is not None:
        raise InvalidParameter("agent_id", "only a oneline or talk-through payment is taken in an "
                               "agent's call")

    return Order(
        merchant_order_id=merchant_order_id,
        amount=amount,
        description=description,
        card_number=card_number,
        cardholder_name=cardholder_name,
        id_number=id_number,
        mobile=mobile,
        mode=mode,
        language=language,
        notify_url=notify_url,
        agent_id=agent_id,
    )
