"""The agent registry: who may log in to the console, and for which merchant they take payments.

Agents are defined in a shipped seed, ``ivr/console/agents_seed.toml`` (id = the agent's SIP
endpoint, display name, merchant). Their credentials are not in the seed: at first start
``ensure_agent_credentials`` (run by ``devstack.stack prepare``, and by the service when the
console is first used) generates a random password per agent, keeps only its argon2id hash
in ``<keys_dir>/agents.json`` and, for development, the password itself in
``<keys_dir>/agent-passwords.json`` (both mode 0600, never replaced), which the README tells a
developer to read. The service only ever reads the hashes.

A wrong password and an unknown agent take the same time and give the same answer: the console
never says which agent ids exist.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr.config import Settings
from ivr.files import is_private, write_private

__all__ = ["SEED_FILE", "Agent", "AgentDirectory", "AgentError", "AgentRegistry",
           "ensure_agent_credentials", "load_seed"]

SEED_FILE = Path(__file__).with_name("agents_seed.toml")
_FORMAT = 1
# The same rule as a one-line order's agent_id (ivr/api/payment_request.py): a PJSIP endpoint.
_AGENT_ID = re.compile(r"[0-9]{3,10}")
_MERCHANT_ID = re.compile(r"M[0-9]{6}")
_hasher = PasswordHasher()


class AgentError(Exception):
    """The registry cannot be loaded. Messages name files and agents, never passwords."""


@dataclass(frozen=True, repr=False)
class Agent:
    id: str
    name: str
    merchant_id: str
    password_hash: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return f"Agent(id={self.id!r}, name={self.name!r}, merchant_id={self.merchant_id!r})"

    __str__ = __repr__


def load_seed(path: Path = SEED_FILE) -> list[Agent]:
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AgentError(f"agent seed {path} is unreadable: {exc}") from None
    agents: list[Agent] = []
    for entry in document.get("agent", []):
        where = f"agent seed {path}, agent {entry.get('id')!r}"
        if set(entry) != {"id", "name", "merchant_id"}:
            raise AgentError(f"{where}: needs exactly id, name and merchant_id")
        if not isinstance(entry["id"], str) or not _AGENT_ID.fullmatch(entry["id"]):
            raise AgentError(f"{where}: id must be the agent's 3 to 10 digit extension")
        if not isinstance(entry["merchant_id"], str) or not _MERCHANT_ID.fullmatch(entry["merchant_id"]):
            raise AgentError(f"{where}: merchant_id must be M and six digits")
        if any(a.id == entry["id"] for a in agents):
            raise AgentError(f"{where}: defined twice")
        agents.append(Agent(entry["id"], str(entry["name"]), entry["merchant_id"]))
    if not agents:
        raise AgentError(f"agent seed {path} defines no [[agent]]")
    return agents


def _hashes_file(settings: Settings) -> Path:
    return settings.keys_dir / "agents.json"


def _passwords_file(settings: Settings) -> Path:
    return settings.keys_dir / "agent-passwords.json"


def ensure_agent_credentials(settings: Settings, *, seed: Path = SEED_FILE) -> dict[str, str]:
    """Every seeded agent's password hash, generating the missing ones (see the module's doc)."""
    path = _hashes_file(settings)
    hashes = _read_hashes(path) if path.exists() else {}
    missing = [a.id for a in load_seed(seed) if a.id not in hashes]
    if not missing:
        return hashes
    passwords = {agent_id: secrets.token_urlsafe(12) for agent_id in missing}
    hashes = {**hashes, **{a: _hasher.hash(p) for a, p in passwords.items()}}
    shown = _passwords_file(settings)
    known = json.loads(shown.read_text(encoding="utf-8")).get("agents", {}) if shown.exists() else {}
    write_private(shown, json.dumps({
        "note": "Development agents' console passwords. Delete this file outside development.",
        "agents": dict(sorted({**known, **passwords}.items()))}, indent=2) + "\n")
    write_private(path, json.dumps({"format": _FORMAT, "agents": dict(sorted(hashes.items()))},
                                   indent=2) + "\n")
    return hashes


def _read_hashes(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        private = is_private(path)
    except (OSError, ValueError):
        raise AgentError(f"agent credentials file {path} is unreadable") from None
    if not private:
        raise AgentError(f"agent credentials file {path} is readable by others; chmod 600 it")
    if not isinstance(document, dict) or document.get("format") != _FORMAT \
            or not isinstance(document.get("agents"), dict):
        raise AgentError(f"agent credentials file {path} is malformed")
    return document["agents"]


class AgentRegistry:
    """The seeded agents with their password hashes; read-only once loaded."""

    def __init__(self, agents: list[Agent]) -> None:
        self._agents = {a.id: a for a in agents}
        self._decoy = ""

    @classmethod
    def load(cls, settings: Settings, *, seed: Path = SEED_FILE) -> AgentRegistry:
        hashes = ensure_agent_credentials(settings, seed=seed)
        return cls([Agent(a.id, a.name, a.merchant_id, hashes[a.id]) for a in load_seed(seed)])

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def verify(self, agent_id: str, password: str) -> Agent | None:
        """The agent if ``password`` is theirs; None for a wrong password or an unknown agent.

        CPU-bound (argon2id, tens of milliseconds): call it off the event loop."""
        agent = self._agents.get(agent_id)
        if agent is None and not self._decoy:
            # Verified against when the agent id is unknown, so both cases cost one argon2 run.
            self._decoy = _hasher.hash(secrets.token_urlsafe(12))
        try:
            _hasher.verify(agent.password_hash if agent else self._decoy, password)
        except (VerificationError, InvalidHashError):
            return None
        return agent


class AgentDirectory:
    """The registry as the service holds it: loaded (and, the first time, generated) when the
    console first needs it, in a thread. argon2 is slow on purpose; no service start-up, and no
    request of the event loop, waits for it. ``devstack.stack prepare`` generates the
    credentials beforehand, so a developer can read the passwords before the first login."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._registry: AgentRegistry | None = None
        self._loading = asyncio.Lock()

    async def registry(self) -> AgentRegistry:
        async with self._loading:
            if self._registry is None:
                self._registry = await asyncio.to_thread(AgentRegistry.load, self._settings)
        return self._registry
