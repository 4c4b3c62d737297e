"""The SIP TLS transport's development certificate (devstack/sip_tls.py): generated once per
installation, private key 0600, and good for a real TLS handshake to 127.0.0.1 by a client that
trusts exactly it."""

from __future__ import annotations

import socket
import ssl
import threading

from cryptography import x509

from devstack import secrets as devsecrets
from devstack.sip_tls import CERT_NAME, KEY_NAME, ensure_sip_tls
from ivr.config import load_settings


def test_generated_once_and_kept(tmp_path):
    settings = load_settings(var_dir=tmp_path)
    first = ensure_sip_tls(settings)
    assert first.key.stat().st_mode & 0o777 == 0o600
    assert first.cert.stat().st_mode & 0o777 == 0o644
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    before = first.cert.read_bytes(), first.key.read_bytes()
    again = ensure_sip_tls(settings)
    assert (again.cert.read_bytes(), again.key.read_bytes()) == before


def test_provisioned_beside_the_sip_secrets(tmp_path):
    settings = load_settings(var_dir=tmp_path / "var", ami_secret="")
    out = tmp_path / "secrets"
    devsecrets.provision(settings, out)
    tls = ensure_sip_tls(settings)
    assert (out / CERT_NAME).read_bytes() == tls.cert.read_bytes()
    assert (out / KEY_NAME).read_bytes() == tls.key.read_bytes()
    assert (out / KEY_NAME).stat().st_mode & 0o777 == 0o600


def test_a_client_trusting_the_certificate_completes_a_handshake_to_127_0_0_1(tmp_path):
    tls = ensure_sip_tls(load_settings(var_dir=tmp_path))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tls.cert, tls.key)
    client_context = ssl.create_default_context(cafile=str(tls.cert))  # hostname checked too
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        received: list[bytes] = []

        def serve() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls_connection:
                received.append(tls_connection.recv(100))

        server = threading.Thread(target=serve)
        server.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client_context.wrap_socket(raw, server_hostname="127.0.0.1") as client:
            client.sendall(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n")
        server.join(timeout=10)
    assert received == [b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"]
