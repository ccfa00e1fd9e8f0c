"""TLS for the gateway port: a given certificate, or a self-signed one kept in the data dir.

The JS `openai` SDK always dials `wss://`, so the port must be able to speak TLS. A Node client
trusts the self-signed certificate with `NODE_EXTRA_CA_CERTS=<data-dir>/tls/cert.pem`. It is a
leaf, not a CA (CA:FALSE; usable only as a TLS server's certificate, for `tls_hostnames`):
trusting it trusts this one server, never a certificate its key might sign. OpenSSL, under Node
and Python alike, accepts a self-signed leaf as its own trust anchor, so no CA is needed. A kept
certificate that is a CA (versions before this one made it so) or has expired is replaced.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .data_dir import private_dir, private_file, write_private

log = logging.getLogger("ovos_realtime.tls")
VALID_DAYS = 825
# an EC key signs (ECDHE key exchange); keyEncipherment is for RSA key transport (RFC 5480 §3)
SERVER_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    tls_dir = data_dir / "tls"
    return tls_dir / "cert.pem", tls_dir / "key.pem"


def ensure_self_signed(data_dir: Path, hostnames: Iterable[str]) -> tuple[Path, Path]:
    """Return the data dir's self-signed cert and key, creating (or replacing) them as needed (the
    key 0600, in 0700 directories; a key an older version left readable is tightened)."""
    cert_path, key_path = self_signed_paths(data_dir)
    private_dir(data_dir)
    private_dir(cert_path.parent)
    if cert_path.exists() and key_path.exists():
        reason = _replace_because(cert_path)
        if reason is None:
            private_file(key_path)
            return cert_path, key_path
        log.warning(
            "replacing the self-signed certificate %s: %s; clients that trusted it must trust the "
            "new one (NODE_EXTRA_CA_CERTS=%s)",
            cert_path,
            reason,
            cert_path,
        )
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(key_path, _pem_key(key))
    cert_path.write_bytes(_leaf(key, hostnames).public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _replace_because(cert_path: Path) -> str | None:
    """Why a kept self-signed certificate must be replaced, or None to keep it."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return "it cannot be read"
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = True  # without basicConstraints a self-signed certificate is treated as a CA
    if is_ca:
        return (
            "it is a CA certificate (as older versions made it), which would let its key vouch for any site"
        )
    if cert.not_valid_after_utc <= dt.datetime.now(dt.timezone.utc):
        return "it has expired"
    return None


def _leaf(key: ec.EllipticCurvePrivateKey, hostnames: Iterable[str]) -> x509.Certificate:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ovos-realtime self-signed")])
    key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(SERVER_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(key_id, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id), critical=False)
        .sign(key, hashes.SHA256())
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def server_context(cert: Path, key: Path, password: str | None = None) -> ssl.SSLContext:
    """TLS 1.2+ with `cert` and `key` (`password`: the passphrase of an encrypted key)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key, password)
    return context
