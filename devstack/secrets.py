"""Asterisk's per-installation secrets, written where Asterisk's configuration includes them, and
shown to a person who sets up a softphone.

asterisk-conf/ holds no secret: manager.conf and pjsip.conf ``#include`` one small file per
secret from /opt/voicepay/secrets (var/asterisk/secrets/ mounted read-only into Asterisk's
sandbox). The SIP accounts are the ones pjsip.conf includes a password for, so adding a
softphone is one include line. The values come from ivr/asterisk_secrets.py (var/keys/asterisk.json),
generated at first start; ``provision`` (run by ``python -m devstack.stack prepare``) writes them.

    python -m devstack.secrets show            # every SIP account and its password
    python -m devstack.secrets show 6001       # one account's password, alone on a line
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ivr.asterisk_secrets import AsteriskSecrets, AsteriskSecretsError, ensure_asterisk_secrets, \
    load_asterisk_secrets
from ivr.config import REPO_ROOT, Settings, load_settings
from ivr.files import write_private
from devstack.sip_tls import CERT_NAME, KEY_NAME, ensure_sip_tls

__all__ = ["SECRETS_MOUNT", "provision", "sip_accounts", "sip_password", "main"]

# Where Asterisk sees var/asterisk/secrets/ (devstack/asterisk_sandbox.py binds it there).
SECRETS_MOUNT = "/opt/voicepay/secrets"
_SIP_INCLUDE = re.compile(r'^#include "' + re.escape(SECRETS_MOUNT) + r'/sip-([0-9A-Za-z_]+)\.conf"',
                          re.MULTILINE)
AMI_INCLUDE = "manager-voicepay.conf"


def sip_accounts(conf_dir: Path = REPO_ROOT / "asterisk-conf") -> list[str]:
    """Every SIP account whose password pjsip.conf includes, in file order."""
    return _SIP_INCLUDE.findall((conf_dir / "pjsip.conf").read_text(encoding="utf-8"))


def provision(settings: Settings, secrets_dir: Path) -> AsteriskSecrets:
    """Generate what is missing and (re)write the files Asterisk includes, 0600 each, and the
    SIP TLS transport's certificate and key (devstack/sip_tls.py)."""
    found = ensure_asterisk_secrets(settings, sip_accounts())
    write_private(secrets_dir / AMI_INCLUDE, f"secret = {found.ami}\n")
    for account, password in found.sip.items():
        write_private(secrets_dir / f"sip-{account}.conf", f"password = {password}\n")
    tls = ensure_sip_tls(settings)
    write_private(secrets_dir / CERT_NAME, tls.cert.read_bytes())
    write_private(secrets_dir / KEY_NAME, tls.key.read_bytes())
    return found


def sip_password(settings: Settings, account: str) -> str:
    """A SIP account's password (a test that registers a softphone reads it here)."""
    return load_asterisk_secrets(settings).sip[account]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.secrets",
                                     description="Show the SIP accounts' generated passwords.")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="every SIP account and its password, or one account's")
    show.add_argument("account", nargs="?")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        found = load_asterisk_secrets(settings)
    except AsteriskSecretsError as exc:
        print(f"secrets: {exc}", file=sys.stderr)
        return 1
    if args.account is not None:
        if args.account not in found.sip:
            print(f"secrets: no SIP account {args.account!r}; accounts: {', '.join(found.sip)}",
                  file=sys.stderr)
            return 1
        print(found.sip[args.account])
        return 0
    for account, password in found.sip.items():
        print(f"{account:<14} {password}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
