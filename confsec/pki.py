"""A throw-away PKI for one test run, built with `cryptography`.

Why: TLS must be real (real handshakes, real verification failures), but a conformance run must
not depend on, or leak into, anyone's real trust store. So each run makes its own CA and the
certificates the scenarios need, including the bad ones a hostile target would present:

- `service`: the service domain (SAN DNS only, no IP SAN: the suite connects by IP and passes
  `server_hostname=<domain>`, so hostname verification is about the domain),
- `other-domain`: a valid certificate from the same CA for another domain (wrong-domain defect),
- `expired`: the service domain, expired yesterday,
- `self-signed`: the service domain, signed by its own key (not chained to the CA),
- one client certificate per user: CN the user, SAN URI `sip:<user>@<service domain>` (and
  the DNS names given as `client_dns`, for a service that checks the name of the host it calls:
  a UA that calls `sips:bob@127.0.0.1:port` may want `DNS:127.0.0.1` in bob's certificate),
- for the users named in `flawed_for`, client certificates that mutual TLS must refuse, one per
  flaw of `CLIENT_CERT_FLAWS` (self-signed, from a second CA nobody trusts, expired, not yet
  valid, extended key usage serverAuth only), each with the subject and SANs of the user's valid
  certificate, so that the flaw is the only difference. `flawed_client_certs` mints the two that
  need no trusted issuer for any certificate, which is how the suite tests a real target.

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
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from confsec.errors import ConfigError, LocalProtocolError
from confsec.target.model import CA_ISSUED_FLAWS, CLIENT_CERT_FLAWS

__all__ = [
    "SERVER_NAMES",
    "SUITE_MINTED_FLAWS",
    "CertPair",
    "TestPki",
    "fingerprint_sha256",
    "flawed_client_certs",
]

SERVER_NAMES = ("service", "other-domain", "expired", "self-signed")
"""The server certificates `TestPki.server()` knows, by name."""
SUITE_MINTED_FLAWS = tuple(f for f in CLIENT_CERT_FLAWS if f not in CA_ISSUED_FLAWS)
"""Flawed client certificates anyone can mint: no CA the service trusts signs them."""

_VALID_BEFORE = dt.timedelta(hours=1)
_VALID_AFTER = dt.timedelta(days=2)
_DAY = dt.timedelta(days=1)
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
    flawed: Mapping[str, Mapping[str, CertPair]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """user -> flaw -> certificate, for the users given as `flawed_for`."""

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

    def flawed_client(self, user: str, flaw: str) -> CertPair:
        """`user`'s client certificate with the flaw `flaw` (one of `CLIENT_CERT_FLAWS`)."""
        try:
            return self.flawed[user][flaw]
        except KeyError:
            raise LocalProtocolError(
                f"no {flaw!r} client certificate for {user!r}; the PKI has them for "
                f"{', '.join(self.flawed) or 'nobody'}: {', '.join(CLIENT_CERT_FLAWS)}"
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
        flawed_for: Iterable[str] = (),
        client_dns: Iterable[str] = (),
    ) -> TestPki:
        """Make a CA and every certificate in `directory` (created, mode 0700, if missing).

        `now` fixes the clock for tests; it defaults to the current UTC time. `flawed_for`
        names the users (of `users`) who also get one client certificate per flaw.
        `client_dns` adds these DNS names to every user's certificate, after its SIP URI (none
        by default). Raises `ConfigError` for an unusable domain, user name, DNS name or
        directory.
        """
        directory = Path(directory)
        users = tuple(users)
        flawed_for = tuple(flawed_for)
        client_dns = tuple(client_dns)
        for name in client_dns:
            if not isinstance(name, str) or not _DOMAIN.fullmatch(name):
                raise ConfigError(f"client_dns: {name!r} is not a DNS name")
        if not set(flawed_for) <= set(users):
            raise ConfigError(f"flawed_for {flawed_for!r} names users not in {users!r}")
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
        flawed: dict[str, Mapping[str, CertPair]] = {}
        for user in users:
            key = ec.generate_private_key(ec.SECP256R1())
            sans = [
                x509.UniformResourceIdentifier(f"sip:{user}@{service_domain}"),
                *(x509.DNSName(name) for name in client_dns),
            ]
            # A user agent is a TLS client of the service, and its TLS server when the service
            # calls it (dial-out): both key usages, as RFC 5922 7.3 expects of a SIP UA.
            ua_eku = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            cert = _certificate(ca, _cn(user), key.public_key(), valid, sans, ua_eku)
            clients[user] = writer.write(f"client-{user}", cert, key)
            if user in flawed_for:
                minted = _mint_flawed(writer, f"client-{user}", cert, CLIENT_CERT_FLAWS, ca, now)
                flawed[user] = MappingProxyType(minted)

        return cls(
            directory,
            service_domain,
            other_domain,
            ca_pair.cert,
            ca_pair.key,
            MappingProxyType(servers),
            MappingProxyType(clients),
            MappingProxyType(flawed),
        )


def flawed_client_certs(
    directory: Path | str,
    template: Path | str,
    flaws: Iterable[str] = SUITE_MINTED_FLAWS,
    *,
    now: dt.datetime | None = None,
) -> dict[str, CertPair]:
    """Client certificates with the subject, SANs and key type of the certificate `template`
    (a participant's valid one), each with one flaw of `flaws`, written to `directory`.

    Without the key of a CA the service trusts only `SUITE_MINTED_FLAWS` can be minted; the
    others raise `ConfigError` (the target's profile supplies them).
    """
    directory = Path(directory)
    flaws = tuple(flaws)
    need_ca = [f for f in flaws if f not in SUITE_MINTED_FLAWS]
    if need_ca:
        raise ConfigError(
            f"a client certificate that is {', '.join(need_ca)} must come from a CA the service "
            "trusts: the suite cannot mint it"
        )
    try:
        cert = x509.load_pem_x509_certificate(Path(template).read_bytes())
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot mint client certificates like {template}: {exc}") from None
    writer = _Writer(directory)
    return _mint_flawed(writer, "client", cert, flaws, None, now or dt.datetime.now(dt.UTC))


_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: _PrivateKey


def _mint_flawed(
    writer: _Writer,
    stem: str,
    template: x509.Certificate,
    flaws: Iterable[str],
    ca: _Issuer | None,
    now: dt.datetime,
) -> dict[str, CertPair]:
    """One certificate per flaw, otherwise what a valid client certificate like `template` is:
    the same subject, SANs and key type, keyUsage digitalSignature, EKU clientAuth, valid now,
    issued by `ca`. Each gets a fresh key: the flaw, not a key the service has seen, is tested."""
    valid = (now - _VALID_BEFORE, now + _VALID_AFTER)
    try:
        sans = list(template.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    out: dict[str, CertPair] = {}
    for flaw in flaws:
        key = _key_like(template.public_key())
        issuer, chain = ca, ()
        validity, eku = valid, [ExtendedKeyUsageOID.CLIENT_AUTH]
        if flaw == "self-signed":
            issuer = _Issuer(template.subject, key)
        elif flaw == "untrusted-ca":
            # A CA no service was told about, sent along with the leaf as a real client with
            # a private CA would: the service must not trust a root because it was presented.
            untrusted = _Issuer(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "confsec untrusted CA"),
                        x509.NameAttribute(
                            NameOID.COMMON_NAME, f"confsec untrusted CA {secrets.token_hex(4)}"
                        ),
                    ]
                ),
                ec.generate_private_key(ec.SECP256R1()),
            )
            issuer = untrusted
            pub = untrusted.key.public_key()
            chain = (_certificate(untrusted, untrusted.name, pub, valid, ca=True),)
        elif flaw == "expired":
            validity = (now - 3 * _DAY, now - _DAY)
        elif flaw == "not-yet-valid":
            validity = (now + _DAY, now + 3 * _DAY)
        elif flaw == "server-auth-only":
            eku = [ExtendedKeyUsageOID.SERVER_AUTH]
        else:
            raise ConfigError(f"unknown flaw {flaw!r}; known: {', '.join(CLIENT_CERT_FLAWS)}")
        if issuer is None:
            raise ConfigError(f"a {flaw} client certificate needs the key of a trusted CA")
        cert = _certificate(issuer, template.subject, key.public_key(), validity, sans, eku)
        out[flaw] = writer.write(f"{stem}-{flaw}", cert, key, chain)
    return out


def _key_like(public_key: object) -> _PrivateKey:
    """A new key of the template's type: a service that only takes RSA client certificates
    must refuse ours for the flaw, not for the key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return rsa.generate_private_key(65537, max(public_key.key_size, 2048))
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(public_key.curve)
    return ec.generate_private_key(ec.SECP256R1())


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    issuer: _Issuer,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
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

    def write(
        self,
        stem: str,
        cert: x509.Certificate,
        key: _PrivateKey,
        chain: tuple[x509.Certificate, ...] = (),
    ) -> CertPair:
        """`chain`: issuer certificates written after `cert`, which a TLS peer sends along."""
        pair = CertPair(self.directory / f"{stem}.pem", self.directory / f"{stem}.key")
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            _write(pair.key, key_pem, 0o600)
            pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *chain))
            _write(pair.cert, pem, 0o644)
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
