"""TLS for the gateway port: a given certificate, or a self-signed one kept in the data dir.

The JS `openai` SDK always dials `wss://`, so the port must be able to speak TLS. A Node client
trusts the self-signed certificate with `NODE_EXTRA_CA_CERTS=<data-dir>/tls/cert.pem`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .data_dir import private_dir, private_file, write_private


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    tls_dir = data_dir / "tls"
    return tls_dir / "cert.pem", tls_dir / "key.pem"


def ensure_self_signed(data_dir: Path, hostnames: Iterable[str]) -> tuple[Path, Path]:
    """Return the data dir's self-signed cert and key, creating them on first use (the key 0600,
    in 0700 directories; a key an older version left readable is tightened)."""
    cert_path, key_path = self_signed_paths(data_dir)
    private_dir(data_dir)
    private_dir(cert_path.parent)
    if cert_path.exists() and key_path.exists():
        private_file(key_path)
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ovos-realtime self-signed")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
