"""The bank binding service, simulated: is this mobile registered for this card at its issuer?

    POST <VOICEPAY_BINDING_URL>
         {"card_number": "...", "mobile": "...", "name": "..." (optional), "id_number": "..." (optional)}
    200 {"result": "bound" | "not_bound"}                    400 {"error": "..."} for a bad body

Answers from the test registry (``test_registry.json``). Run it with
``python -m simulators.identity.binding``; failure modes in ``simulators/identity/service.py``.
"""

from __future__ import annotations

from aiohttp import web

from simulators.identity.registry import Registry
from simulators.identity.service import Behaviour, CheckSpec, identity_app, main
from simulators.identity.settings import IdentitySettings

__all__ = ["binding_app"]


def binding_app(settings: IdentitySettings, registry: Registry | None = None) -> web.Application:
    registry = registry or Registry.load(settings.registry)
    spec = CheckSpec("binding", settings.binding_url, required=("card_number", "mobile"),
                     optional=("name", "id_number"), answer=registry.binding)
    return identity_app(spec, Behaviour.from_settings(settings, settings.binding_mode))


if __name__ == "__main__":
    raise SystemExit(main(binding_app))
