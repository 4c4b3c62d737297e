"""Who is asking: merchant request signatures, and the operator's bearer token.

A merchant signs every request with its API key (``ivr/merchant_store.py``; after a rotation the
old key verifies too, for ``merchant_key_grace_s``)::

    X-Voicepay-Merchant:  M100001
    X-Voicepay-Timestamp: 1767225600                (unix seconds)
    X-Voicepay-Nonce:     16-64 of A-Z a-z 0-9 _ -  (never reused)
    X-Voicepay-Signature: hex HMAC-SHA256(key, METHOD \\n path?query \\n timestamp \\n nonce
                                                \\n hex SHA-256 of the body)

Checked in this order, so that nothing about a merchant is revealed to an unsigned request:
headers present and well formed (401 ``unauthenticated``), signature (401 ``bad-signature``,
constant-time; an unknown merchant gets the same answer, so that which merchant ids exist
cannot be learnt by asking), timestamp within ``signature_window_seconds`` (401
``stale-request``), nonce never seen (409 ``replayed-nonce``, kept in Redis for twice the window,
which covers every timestamp that could still verify), the merchant's rate limit (429
``rate-limited``, ``rate_limits.py``), merchant active (403).

The operator (the people running the platform) reads payments with ``Authorization: Bearer``
and a token generated at first use into ``settings.operator_token_file`` (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from aiohttp import web

from ivr.files import is_private, write_private
from ivr.api.errors import APIError
from ivr.api.keys import MERCHANTS, OPERATOR_TOKEN, REDIS, SETTINGS
from ivr.api.rate_limits import RATE_LIMITS
from ivr.config import Settings
from ivr.merchants import Merchant, UnknownMerchant

__all__ = [
    "HEADER_MERCHANT",
    "HEADER_TIMESTAMP",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "Unauthenticated",
    "BadSignature",
    "StaleRequest",
    "ReplayedNonce",
    "MerchantSuspended",
    "string_to_sign",
    "sign_request",
    "signed_headers",
    "authenticate",
    "authenticate_reader",
    "require_operator",
    "ensure_operator_token",
]

HEADER_MERCHANT = "X-Voicepay-Merchant"
HEADER_TIMESTAMP = "X-Voicepay-Timestamp"
HEADER_NONCE = "X-Voicepay-Nonce"
HEADER_SIGNATURE = "X-Voicepay-Signature"

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
# What an unknown merchant's signature is checked against, so that it takes as long as a known
# merchant's: random per process, and the merchant is refused whatever the outcome.
_NO_KEY = secrets.token_bytes(32)


class Unauthenticated(APIError):
    status = 401
    error_id = "unauthenticated"


class BadSignature(APIError):
    status = 401
    error_id = "bad-signature"


class StaleRequest(APIError):
    status = 401
    error_id = "stale-request"


class ReplayedNonce(APIError):
    status = 409
    error_id = "replayed-nonce"


class MerchantSuspended(APIError):
    status = 403
    error_id = "merchant-suspended"


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a merchant signs: method, path with query, timestamp, nonce, body hash; one a line."""
    return "\n".join([method.upper(), path, timestamp, nonce,
                      hashlib.sha256(body).hexdigest()]).encode("utf-8")


def sign_request(key: bytes, method: str, path: str, timestamp: str | int, nonce: str,
                 body: bytes = b"") -> str:
    """The hex ``X-Voicepay-Signature`` of one request (for clients and tests).

    >>> sign_request(bytes(32), "GET", "/v1/payments/pay_1", "1700000000", "n" * 16)[:16]
    'ddd8598a811f8999'
    """
    return hmac.new(key, string_to_sign(method, path, str(timestamp), nonce, body),
                    hashlib.sha256).hexdigest()


def signed_headers(merchant_id: str, key: bytes, method: str, path: str, body: bytes = b"", *,
                   timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """All four signature headers for one request, with a fresh nonce and the current time."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_urlsafe(24)
    return {
        HEADER_MERCHANT: merchant_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign_request(key, method, path, timestamp, nonce, body),
    }


async def authenticate(request: web.Request) -> Merchant:
    """The merchant who signed ``request``, or the APIError that refuses it."""
    app = request.app
    settings = app[SETTINGS]
    headers = request.headers
    missing = [h for h in (HEADER_MERCHANT, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
               if not headers.get(h)]
    if missing:
        raise Unauthenticated("this request must be signed", {"missing_headers": missing})
    merchant_id = headers[HEADER_MERCHANT]
    timestamp, nonce, signature = (headers[HEADER_TIMESTAMP], headers[HEADER_NONCE],
                                   headers[HEADER_SIGNATURE])
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthenticated(f"{HEADER_TIMESTAMP} must be unix seconds")
    if not _NONCE.fullmatch(nonce):
        raise Unauthenticated(f"{HEADER_NONCE} must be 16 to 64 of A-Z, a-z, 0-9, _ and -")
    if not _SIGNATURE.fullmatch(signature):
        raise BadSignature(f"{HEADER_SIGNATURE} must be 64 hex digits")
    try:
        merchant: Merchant | None = await app[MERCHANTS].get(merchant_id)
    except UnknownMerchant:
        merchant = None

    body = await request.read()
    # The current key, or the one a rotation replaced while its grace period lasts.
    keys = merchant.signing_keys(time.time()) if merchant is not None else [_NO_KEY]
    verified = any(hmac.compare_digest(
        sign_request(key, request.method, request.raw_path, timestamp, nonce, body).encode("ascii"),
        signature.lower().encode("ascii")) for key in keys)
    if merchant is None or not verified:
        raise BadSignature("the signature does not verify")

    window = settings.signature_window_seconds
    if abs(time.time() - int(timestamp)) > window:
        raise StaleRequest(f"{HEADER_TIMESTAMP} is more than {window} s from the server's clock",
                           {"server_time": int(time.time())})
    # Remembered only once the signature verified: nobody else can use up a merchant's nonces.
    fresh = await app[REDIS].set(f"nonce:{merchant.id}:{nonce}", "1", nx=True, ex=2 * window)
    if not fresh:
        raise ReplayedNonce("this nonce was already used")
    # Only a verified, fresh request spends the merchant's budget: nobody else can use it up.
    if RATE_LIMITS in app:
        await app[RATE_LIMITS].spend("merchant", merchant.id)
    if not merchant.active:
        raise MerchantSuspended("this merchant is suspended")
    return merchant


def is_signed(request: web.Request) -> bool:
    return HEADER_MERCHANT in request.headers or HEADER_SIGNATURE in request.headers


def require_operator(request: web.Request) -> None:
    """Passes only with ``Authorization: Bearer <operator token>``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[OPERATOR_TOKEN]
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("send a merchant signature or the operator's bearer token")
    # Digests of equal length: compare_digest of unequal lengths returns at once, which would
    # tell a guesser the token's length.
    if not hmac.compare_digest(hashlib.sha256(token.strip().encode("utf-8", "replace")).digest(),
                               hashlib.sha256(expected.encode("ascii")).digest()):
        raise Unauthenticated("the bearer token is not valid")


async def authenticate_reader(request: web.Request) -> Merchant | None:
    """A signed request's merchant, or None for the operator; anyone else is refused (401)."""
    if is_signed(request):
        return await authenticate(request)
    require_operator(request)
    return None


def ensure_operator_token(settings: Settings) -> str:
    """The operator's bearer token, generated into ``settings.operator_token_file`` if missing."""
    path = settings.operator_token_file
    if not path.exists():
        # Exclusive: never replaces a token another process wrote meanwhile.
        write_private(path, secrets.token_urlsafe(32) + "\n", exclusive=True)
    if not is_private(path):
        raise OSError(f"operator token file {path} is readable by others; chmod 600 it")
    token = path.read_text(encoding="ascii").strip()
    if len(token) < 32:
        raise OSError(f"operator token file {path} holds no usable token")
    return token
