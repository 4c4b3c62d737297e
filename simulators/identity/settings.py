"""The identity simulators' own settings: where each listens, their latency and failure modes.

Read from the environment by the product's one reader (``ivr.config.load_from_env``). Each service
listens on the host, port and path of the URL the ivr service posts to (``VOICEPAY_POLICE_URL``,
``VOICEPAY_BINDING_URL``, read by both), so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import load_from_env

__all__ = ["IdentitySettings", "load_identity_settings", "REGISTRY_PATH"]

REGISTRY_PATH = Path(__file__).with_name("test_registry.json")


@dataclass(frozen=True)
class IdentitySettings:
    police_url: str = field(metadata={"env": "VOICEPAY_POLICE_URL"},
                            default="http://127.0.0.1:8591/v1/identity/check")
    binding_url: str = field(metadata={"env": "VOICEPAY_BINDING_URL"},
                             default="http://127.0.0.1:8592/v1/binding/check")
    registry: Path = field(metadata={"env": "VOICEPAY_IDENTITY_REGISTRY"}, default=REGISTRY_PATH)
    # Every answer takes latency ± jitter (uniform): a real provider is never instant.
    latency_ms: float = field(metadata={"env": "VOICEPAY_IDENTITY_LATENCY_MS"}, default=40.0)
    jitter_ms: float = field(metadata={"env": "VOICEPAY_IDENTITY_JITTER_MS"}, default=20.0)
    # Failure mode at start (ok, down, slow, garbage); switchable at run time on /admin/mode.
    police_mode: str = field(metadata={"env": "VOICEPAY_POLICE_MODE"}, default="ok")
    binding_mode: str = field(metadata={"env": "VOICEPAY_BINDING_MODE"}, default="ok")
    # How long the "slow" mode keeps an answer back: longer than any sensible client timeout.
    slow_s: float = field(metadata={"env": "VOICEPAY_IDENTITY_SLOW_S"}, default=30.0)
    log_level: str = field(metadata={"env": "VOICEPAY_LOG_LEVEL"}, default="INFO")


def load_identity_settings(**overrides: object) -> IdentitySettings:
    return load_from_env(IdentitySettings, **overrides)
