"""A throw-away PKI for one test run, built with `cryptography`.

Why: TLS must be real (real handshakes, real verification failures), but a conformance run must
not depend on, or leak into, anyone's real trust store. So each run makes its own CA and the
certificates the scenarios need, including the bad ones a hostile target would present:

- `service`: the service domain (SAN DNS only, no IP SAN: the suite connects by IP and passes
  `server_hostname=<domain>`, so hostname verification is about the domain),
- `other-domain`: a valid certificate from the same CA for another domain (wrong-domain defect),
- `expired`: the service domain, expired yesterday,
- `self-signed`: the service domain, signed by its own key (not chained to the CA),
- one client certificate per user: CN the user, SAN URI `sip:<user>@<service domain>`.

Keys are ECDSA P-256 (fast: a PKI for a handful of users takes milliseconds). Private keys are
written with mode 0600. Certificates are valid from one hour ago (clock skew between the suite
and a target) to two days ahead (longer than any run).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from confsec.errors import ConfigError, LocalProtocolError

__all__ = ["SERVER_NAMES", "CertPair", "TestPki", "fingerprint_sha256"]

SERVER_NAMES = ("service", "other-domain", "expired", "self-signed")
"""The server certificates `TestPki.server()` knows, by name."""

_VALID_BEFORE = dt.timedelta(hours=1)
_VALID_AFTER = dt.timedelta(days=2)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
"""User names that are both a SIP user part and a safe file name."""


@dataclass(frozen=True)
class CertPair:
    """Paths of a PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TestPki:
    """The certificates of one run; build it with `TestPki.create()`."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    directory: Path
    service_domain: str
    other_domain: str
    ca_cert: Path
    ca_key: Path
    servers: Mapping[str, CertPair]
    clients: Mapping[str, CertPair]

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(self.clients)

    def server(self, name: str = "service") -> CertPair:
        """A server certificate: 'service', 'other-domain', 'expired' or 'self-signed'."""
        try:
            return self.servers[name]
        except KeyError:
            raise LocalProtocolError(
                f"no server certificate {name!r}; known: {', '.join(SERVER_NAMES)}"
            ) from None

    def client(self, user: str) -> CertPair:
        """The client certificate of `user` (one of the users given to `create`)."""
        try:
            return self.clients[user]
        except KeyError:
            raise LocalProtocolError(
                f"no client certificate for {user!r}; the PKI has {', '.join(self.clients)}"
            ) from None

    @classmethod
    def create(
        cls,
        directory: Path | str,
        service_domain: str,
        users: Iterable[str],
        *,
        other_domain: str = "attacker.example.test",
        now: dt.datetime | None = None,
    ) -> TestPki:
        """Make a CA and every certificate in `directory` (created, mode 0700, if missing).

        `now` fixes the clock for tests; it defaults to the current UTC time. Raises
        `ConfigError` for an unusable domain, user name or directory.
        """
        directory = Path(directory)
        users = tuple(users)
        for domain in (service_domain, other_domain):
            if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
                raise ConfigError(f"{domain!r} is not a DNS domain name")
        if service_domain.lower() == other_domain.lower():
            raise ConfigError("other_domain must differ from the service domain")
        for user in users:
            if not isinstance(user, str) or not _USER.fullmatch(user):
                raise ConfigError(
                    f"user {user!r}: use 1-64 of A-Z a-z 0-9 . _ + - (starting with a letter or "
                    "digit), it becomes a SIP URI and a file name"
                )
        if len(set(users)) != len(users):
            raise ConfigError(f"duplicate user names in {users!r}")
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the PKI directory {directory}: {exc}") from None

        now = now or dt.datetime.now(dt.UTC)
        valid = (now - _VALID_BEFORE, now + _VALID_AFTER)
        writer = _Writer(directory)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "confsec test PKI"),
                # A fresh name per run: certificates of another run never chain to this CA.
                x509.NameAttribute(NameOID.COMMON_NAME, f"confsec test CA {secrets.token_hex(4)}"),
            ]
        )
        ca = _Issuer(ca_name, ca_key)
        ca_cert = _certificate(ca, ca_name, ca_key.public_key(), valid, ca=True)
        ca_pair = writer.write("ca", ca_cert, ca_key)

        server_eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        expired = (now - dt.timedelta(days=3), now - dt.timedelta(days=1))
        servers: dict[str, CertPair] = {}
        for name, domain, validity, self_signed in (
            ("service", service_domain, valid, False),
            ("other-domain", other_domain, valid, False),
            ("expired", service_domain, expired, False),
            ("self-signed", service_domain, valid, True),
        ):
            key = ec.generate_private_key(ec.SECP256R1())
            subject = _cn(domain)
            issuer = _Issuer(subject, key) if self_signed else ca
            sans = [x509.DNSName(domain)]
            cert = _certificate(issuer, subject, key.public_key(), validity, sans, server_eku)
            servers[name] = writer.write(name, cert, key)

        clients: dict[str, CertPair] = {}
        for user in users:
            key = ec.generate_private_key(ec.SECP256R1())
            sans = [x509.UniformResourceIdentifier(f"sip:{user}@{service_domain}")]
            cert = _certificate(
                ca, _cn(user), key.public_key(), valid, sans, [ExtendedKeyUsageOID.CLIENT_AUTH]
            )
            clients[user] = writer.write(f"client-{user}", cert, key)

        return cls(
            directory,
            service_domain,
            other_domain,
            ca_pair.cert,
            ca_pair.key,
            MappingProxyType(servers),
            MappingProxyType(clients),
        )


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    issuer: _Issuer,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: tuple[dt.datetime, dt.datetime],
    sans: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    """A certificate with the extensions strict verifiers (OpenSSL X509_STRICT, Python 3.13's
    default) insist on: AKI, SKI, critical basicConstraints and keyUsage."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


class _Writer:
    """Writes `<stem>.pem` and `<stem>.key`, the key readable by its owner only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> CertPair:
        pair = CertPair(self.directory / f"{stem}.pem", self.directory / f"{stem}.key")
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            _write(pair.key, key_pem, 0o600)
            _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write {stem} certificate files: {exc}") from None
        return pair


def _write(path: Path, data: bytes, mode: int) -> None:
    # os.open with the mode, then fchmod: the file never exists with a wider mode, even if it
    # was left by an earlier run with other permissions.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, mode)
        file.write(data)


def fingerprint_sha256(cert: Path | str | bytes) -> str:
    """SHA-256 fingerprint of a certificate in RFC 8122 form (`AB:CD:...`), as a=fingerprint
    and the suite's reports write it.

    `cert` is a path to a PEM or DER file, or the certificate itself as DER or PEM bytes.
    """
    if isinstance(cert, bytes):
        data = cert
    else:
        try:
            data = Path(cert).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read certificate {cert}: {exc.strerror or exc}") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            data = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
        except ValueError as exc:
            raise ConfigError(f"not a PEM certificate: {exc}") from None
    return ":".join(f"{b:02X}" for b in hashlib.sha256(data).digest())
