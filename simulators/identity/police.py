"""The police identity service, simulated: does this name go with this ID number?

    POST <VOICEPAY_POLICE_URL>  {"name": "...", "id_number": "..."}
    200 {"result": "match" | "mismatch" | "not_found"}      400 {"error": "..."} for a bad body

Answers from the test registry (``test_registry.json``). Run it with
``python -m simulators.identity.police``; failure modes in ``simulators/identity/service.py``.
"""

from __future__ import annotations

from aiohttp import web

from simulators.identity.registry import Registry
from simulators.identity.service import Behaviour, CheckSpec, identity_app, main
from simulators.identity.settings import IdentitySettings

__all__ = ["police_app"]


def police_app(settings: IdentitySettings, registry: Registry | None = None) -> web.Application:
    registry = registry or Registry.load(settings.registry)
    spec = CheckSpec("police", settings.police_url, required=("name", "id_number"), optional=(),
                     answer=registry.identity)
    return identity_app(spec, Behaviour.from_settings(settings, settings.police_mode))


if __name__ == "__main__":
    raise SystemExit(main(police_app))
