"""The secrets Asterisk shares with its users: the AMI account's secret and the SIP accounts'
passwords, generated per installation at first start and kept in one private file
(``var/keys/asterisk.json``, 0600), never as strings in the repository.

The ivr service reads the AMI secret from here (unless ``VOICEPAY_AMI_SECRET`` sets one);
devstack/secrets.py writes the same values into the files Asterisk's configuration includes, and
shows a softphone's password to a person.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from ivr.config import Settings
from ivr.files import is_private, write_private

__all__ = ["AsteriskSecrets", "AsteriskSecretsError", "ami_secret", "ensure_asterisk_secrets",
           "load_asterisk_secrets"]

_FORMAT = "voicepay-asterisk-secrets-1"


class AsteriskSecretsError(RuntimeError):
    """The secrets file is missing, unreadable, malformed or readable by others (never its values)."""


@dataclass(frozen=True)
class AsteriskSecrets:
    ami: str
    sip: dict[str, str] = field(default_factory=dict)  # SIP account -> password

    def __repr__(self) -> str:  # a secret never reaches a log line through a repr
        return f"AsteriskSecrets(ami=<hidden>, sip=<{len(self.sip)} accounts>)"


def _new_secret() -> str:
    # URL-safe: letters, digits, "-" and "_", nothing Asterisk's config parser reads (";", "=").
    return secrets.token_urlsafe(18)


def load_asterisk_secrets(settings: Settings) -> AsteriskSecrets:
    path = settings.asterisk_secrets_file
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        private = is_private(path)
    except (OSError, ValueError):
        raise AsteriskSecretsError(f"Asterisk secrets file {path} is missing or unreadable "
                                   "(python -m devstack.stack prepare generates it)") from None
    if not private:
        raise AsteriskSecretsError(f"Asterisk secrets file {path} is readable by others; chmod 600 it")
    if (not isinstance(document, dict) or document.get("format") != _FORMAT
            or not isinstance(document.get("ami"), str) or not isinstance(document.get("sip"), dict)):
        raise AsteriskSecretsError(f"Asterisk secrets file {path} is malformed")
    return AsteriskSecrets(ami=document["ami"], sip=dict(document["sip"]))


def ensure_asterisk_secrets(settings: Settings, sip_accounts: Iterable[str]) -> AsteriskSecrets:
    """The installation's secrets, generating whatever is missing (the AMI secret at first start,
    a password for each account not seen before); an existing secret is never changed."""
    path = settings.asterisk_secrets_file
    known = load_asterisk_secrets(settings) if path.exists() else AsteriskSecrets(ami=_new_secret())
    sip = dict(known.sip)
    sip.update({account: _new_secret() for account in sip_accounts if account not in sip})
    wanted = AsteriskSecrets(ami=known.ami, sip=dict(sorted(sip.items())))
    if not path.exists() or wanted.sip != known.sip:
        write_private(path, json.dumps({"format": _FORMAT, "ami": wanted.ami, "sip": wanted.sip},
                                       indent=2) + "\n")
    return wanted


def ami_secret(settings: Settings) -> str:
    """The AMI secret the ivr service logs in with: ``VOICEPAY_AMI_SECRET``, else the generated one."""
    return settings.ami_secret or load_asterisk_secrets(settings).ami
