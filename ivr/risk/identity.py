"""The identity providers over HTTP: the police identity check and the bank binding check.

``PoliceClient`` and ``BindingClient`` implement ``IdentityProvider`` and ``BindingProvider``
(ivr/risk/decision.py). They never raise: a provider that is down, refuses the connection, takes
longer than ``VOICEPAY_IDENTITY_TIMEOUT_S``, answers anything but 2xx, or answers a body outside
the contract is ``UNAVAILABLE``, with one log line naming the provider and why (never a value);
what an unavailable provider means for the payment is the rules' decision, never an approval.

The police client first checks the ID number locally (GB 11643: check character, birth date,
region; ``ivr.validation.check_id_number``) and answers ``MISMATCH`` for a malformed number
without any network call: no person can hold it, so no name goes with it.

Wire contract, the seam a real provider plugs into (directly, or behind a small adapter service):
JSON over HTTP POST to the configured URL (``VOICEPAY_POLICE_URL``, ``VOICEPAY_BINDING_URL``),
on loopback or a private link. The sensitive values travel in the body only, never in the URL or
query, so no access log or proxy records them.

    police   request  {"name": "Zhang San", "id_number": "11010519491231002X"}
             answer   200 {"result": "match" | "mismatch" | "not_found"}
    binding  request  {"card_number": "6221881000000011", "mobile": "13900000001",
                       "name": "Zhang San", "id_number": "11010519491231002X"}
                      (name and id_number are sent only when known; the provider then also checks
                      that they are the card holder's)
             answer   200 {"result": "bound" | "not_bound"}

Any other status, a body that is not such a JSON object, or a ``result`` not listed is
``UNAVAILABLE``. Extra fields in an answer are ignored. The simulators in ``simulators/identity/``
implement exactly this contract.

One ``aiohttp.ClientSession`` serves both clients; ``identity_providers(settings)`` opens it for
the service's ``cleanup_ctx`` and closes it at stop. Nothing here is part of ``/healthz``: a
provider outage is a risk input, not a reason to take the ivr service out of rotation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from ivr.config import Settings
from ivr.risk.decision import BindingAnswer, IdentityAnswer
from ivr.validation import InvalidIdNumber, check_id_number

__all__ = ["PoliceClient", "BindingClient", "IdentityProviders", "identity_providers"]

log = logging.getLogger("ivr.risk.identity")

# An answer is one short JSON object; anything longer is not the contract's.
MAX_ANSWER_BYTES = 4096
# What each provider may answer ("unavailable" is ours to say, never theirs).
_POLICE_RESULTS = frozenset(a.value for a in IdentityAnswer) - {IdentityAnswer.UNAVAILABLE.value}
_BINDING_RESULTS = frozenset(a.value for a in BindingAnswer) - {BindingAnswer.UNAVAILABLE.value}


async def _read_answer(response: aiohttp.ClientResponse) -> object:
    raw = bytearray()
    async for chunk in response.content.iter_chunked(MAX_ANSWER_BYTES):
        raw += chunk
        if len(raw) > MAX_ANSWER_BYTES:
            raise ValueError("answer too long")
    return json.loads(raw)


async def _ask(session: aiohttp.ClientSession, provider: str, url: str, body: dict[str, str],
               timeout_s: float, results: frozenset[str]) -> str | None:
    """The provider's ``result`` if it is one of ``results``; else None, logged with the reason."""
    try:
        async with session.post(url, json=body,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if not 200 <= response.status < 300:
                reason = f"HTTP {response.status}"
            else:
                answer = await _read_answer(response)
                result = answer.get("result") if isinstance(answer, dict) else None
                if isinstance(result, str) and result in results:
                    return result
                reason = "an answer outside the contract"
    except TimeoutError:
        reason = f"no answer within {timeout_s:g} s"
    except ValueError:  # not JSON, not UTF-8, or too long
        reason = "an answer that is not the contract's JSON"
    except aiohttp.ClientError as exc:
        reason = f"connection failed ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise"; the kind is logged
        reason = f"unexpected {type(exc).__name__}"
    log.warning("%s provider unavailable: %s", provider, reason)
    return None


class PoliceClient:
    """``IdentityProvider`` over HTTP: does this name go with this ID number?"""

    name = "police"

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout_s: float) -> None:
        self._session, self._url, self._timeout_s = session, url, timeout_s

    async def check(self, name: str, id_number: str) -> IdentityAnswer:
        try:
            id_number = check_id_number(id_number)
        except InvalidIdNumber as exc:
            log.info("police check: the ID number fails the local check (%s): mismatch, not asked",
                     exc.reason)
            return IdentityAnswer.MISMATCH
        result = await _ask(self._session, self.name, self._url,
                            {"name": name, "id_number": id_number}, self._timeout_s,
                            _POLICE_RESULTS)
        return IdentityAnswer(result) if result else IdentityAnswer.UNAVAILABLE


class BindingClient:
    """``BindingProvider`` over HTTP: is this mobile registered for this card at its issuer?"""

    name = "binding"

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout_s: float) -> None:
        self._session, self._url, self._timeout_s = session, url, timeout_s

    async def check(self, card_number: str, mobile: str, name: str = "",
                    id_number: str = "") -> BindingAnswer:
        body = {"card_number": card_number, "mobile": mobile}
        body.update({k: v for k, v in (("name", name), ("id_number", id_number)) if v})
        result = await _ask(self._session, self.name, self._url, body, self._timeout_s,
                            _BINDING_RESULTS)
        return BindingAnswer(result) if result else BindingAnswer.UNAVAILABLE


@dataclass(frozen=True)
class IdentityProviders:
    police: PoliceClient
    binding: BindingClient


@asynccontextmanager
async def identity_providers(settings: Settings) -> AsyncIterator[IdentityProviders]:
    """Both clients on one HTTP session, for as long as the ``async with`` lasts."""
    # trust_env off: an HTTP proxy from the environment must never see card or ID numbers.
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield IdentityProviders(
            PoliceClient(session, settings.police_url, settings.identity_timeout_s),
            BindingClient(session, settings.binding_url, settings.identity_timeout_s))
