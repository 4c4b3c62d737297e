"""A SIP REGISTER over TLS with digest auth, written by hand: the SIPp on Debian is built without
TLS, so this is the TLS client of the tests (tests/e2e/test_codecs_and_networks.py).

It trusts exactly the development certificate (devstack/sip_tls.py) and checks the host name,
so a handshake that succeeds is one with our Asterisk. It answers the 401 challenge in
whichever algorithm Asterisk asks (MD5, SHA-256) with qop=auth.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsRegistration", "register_over_tls"]

_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass(frozen=True)
class TlsRegistration:
    statuses: list[int]     # the final status of each REGISTER sent (401, then 200)
    contact: str            # the Contact Asterisk's 200 answered with: what it registered
    tls_version: str        # what the handshake agreed


def register_over_tls(user: str, password: str, cafile: Path, *, host: str = "127.0.0.1",
                      port: int = 5061, expires: int = 60, timeout_s: float = 10
                      ) -> TlsRegistration:
    """REGISTER ``user`` over one TLS connection: unauthenticated first, then answering the
    challenge. ``expires=0`` unregisters."""
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((host, port), timeout=timeout_s) as raw, \
            context.wrap_socket(raw, server_hostname=host) as connection:
        local_ip, local_port = connection.getsockname()[:2]
        call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
        contact = f"<sip:{user}@{local_ip}:{local_port};transport=tls>"
        statuses: list[int] = []
        authorization = ""
        for cseq in (1, 2):
            request = (f"REGISTER sip:{host}:{port};transport=tls SIP/2.0\r\n"
                       f"Via: SIP/2.0/TLS {local_ip}:{local_port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
                       f"From: <sip:{user}@{host}>;tag={tag}\r\n"
                       f"To: <sip:{user}@{host}>\r\n"
                       f"Call-ID: {call_id}\r\n"
                       f"CSeq: {cseq} REGISTER\r\n"
                       f"Contact: {contact}\r\n"
                       f"Expires: {expires}\r\n"
                       f"Max-Forwards: 70\r\n"
                       f"User-Agent: voicepay-tls-test\r\n"
                       f"{authorization}"
                       f"Content-Length: 0\r\n\r\n")
            connection.sendall(request.encode())
            status, headers = _final_response(connection)
            statuses.append(status)
            if status != 401:
                break
            authorization = _authorization(headers["www-authenticate"], user, password,
                                           f"sip:{host}:{port};transport=tls")
        return TlsRegistration(statuses=statuses, contact=headers.get("contact", ""),
                               tls_version=connection.version() or "")


def _final_response(connection: ssl.SSLSocket) -> tuple[int, dict[str, str]]:
    """Read responses until a final one (provisional 1xx skipped); its status and headers
    (names lower-cased; the first of each)."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = connection.recv(4096)
            if not chunk:
                raise ConnectionError("Asterisk closed the TLS connection")
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        length = int(headers.get("content-length", "0"))
        buffer = buffer[length:]  # a body we do not need (there is none in these answers)
        status = int(lines[0].split()[1])
        if status >= 200:
            return status, headers


def _authorization(challenge: str, user: str, password: str, uri: str) -> str:
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    algorithm = fields.get("algorithm", "MD5")
    digest = _ALGORITHMS[algorithm]

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()

    realm, nonce = fields["realm"], fields["nonce"]
    cnonce, nc = secrets.token_hex(8), "00000001"
    ha1, ha2 = h(f"{user}:{realm}:{password}"), h(f"REGISTER:{uri}")
    if "qop" in fields:
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        qop = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response, qop = h(f"{ha1}:{nonce}:{ha2}"), ""
    opaque = f', opaque="{fields["opaque"]}"' if "opaque" in fields else ""
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", algorithm={algorithm}{qop}{opaque}\r\n')
