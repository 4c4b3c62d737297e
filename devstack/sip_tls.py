"""The development certificate of Asterisk's SIP over TLS transport (127.0.0.1:5061).

Generated at first start like the other per-installation secrets (devstack/secrets.py provisions
it with them), never kept in the repository: a self-signed certificate for ``localhost`` and
127.0.0.1 with an EC P-256 key, in var/keys/. A TLS client on this machine trusts exactly this
certificate (``sip-tls-cert.pem`` as its CA file). For a production line, put the CA-issued
certificate and key in those two files: an existing pair is never replaced.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ivr.config import Settings
from ivr.files import write_private

__all__ = ["SipTls", "ensure_sip_tls", "CERT_NAME", "KEY_NAME"]

CERT_NAME = "sip-tls-cert.pem"
KEY_NAME = "sip-tls-key.pem"
VALID_DAYS = 825  # the longest a browser-era client accepts for a leaf certificate


@dataclass(frozen=True)
class SipTls:
    cert: Path
    key: Path


def ensure_sip_tls(settings: Settings) -> SipTls:
    """The certificate and key in ``settings.keys_dir``, generated when either is missing."""
    found = SipTls(cert=settings.keys_dir / CERT_NAME, key=settings.keys_dir / KEY_NAME)
    if found.cert.exists() and found.key.exists():
        return found
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voicepay development SIP"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voicepay")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    write_private(found.key, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    # The certificate is public: readable, so a client's configuration can point at it.
    write_private(found.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return found
