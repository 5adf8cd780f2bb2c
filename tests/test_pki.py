"""confsec.pki: the per-run test PKI."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from confsec.errors import ConfigError, LocalProtocolError
from confsec.net.tls import client_context, server_context
from confsec.pki import (
    SERVER_NAMES,
    SUITE_MINTED_FLAWS,
    CertPair,
    TestPki,
    fingerprint_sha256,
    flawed_client_certs,
)
from confsec.target.model import CLIENT_CERT_FLAWS

DOMAIN = "conf.example.test"
USERS = ["alice", "bob", "carol", "dave", "erin"]
NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki") / "run", DOMAIN, USERS, now=NOW)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    cert.verify_directly_issued_by(issuer)


def test_creation_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    TestPki.create(tmp_path, DOMAIN, USERS)
    assert time.perf_counter() - start < 1.0


def test_files_and_modes(pki: TestPki) -> None:
    assert pki.ca_cert == pki.directory / "ca.pem"
    assert pki.ca_key == pki.directory / "ca.key"
    pairs = [CertPair(pki.ca_cert, pki.ca_key)]
    pairs += [pki.server(name) for name in SERVER_NAMES]
    pairs += [pki.client(user) for user in USERS]
    for pair in pairs:
        assert pair.cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert pair.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert load(pair.cert).public_key() == key.public_key()
    assert len({p.cert for p in pairs}) == len(pairs)
    assert pki.users == tuple(USERS)


def test_ca(pki: TestPki) -> None:
    ca = load(pki.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.not_valid_before_utc == NOW - dt.timedelta(hours=1)
    assert ca.not_valid_after_utc == NOW + dt.timedelta(days=2)


def test_service_certificate(pki: TestPki) -> None:
    cert = load(pki.server().cert)
    assert pki.server() == pki.server("service")
    verify_signed_by(cert, load(pki.ca_cert))
    names = sans(cert)
    assert names.get_values_for_type(x509.DNSName) == [DOMAIN]
    assert names.get_values_for_type(x509.IPAddress) == []  # hostname check is on the domain
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert cert.not_valid_before_utc <= NOW <= cert.not_valid_after_utc


def test_other_domain_certificate(tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path, DOMAIN, [], other_domain="evil.example.test")
    cert = load(pki.server("other-domain").cert)
    verify_signed_by(cert, load(pki.ca_cert))
    assert sans(cert).get_values_for_type(x509.DNSName) == ["evil.example.test"]
    default = TestPki.create(tmp_path / "d", DOMAIN, [])
    names = sans(load(default.server("other-domain").cert)).get_values_for_type(x509.DNSName)
    assert names == ["attacker.example.test"]


def test_expired_and_self_signed(pki: TestPki) -> None:
    expired = load(pki.server("expired").cert)
    verify_signed_by(expired, load(pki.ca_cert))
    assert expired.not_valid_after_utc < NOW
    assert sans(expired).get_values_for_type(x509.DNSName) == [DOMAIN]
    self_signed = load(pki.server("self-signed").cert)
    assert self_signed.issuer == self_signed.subject
    verify_signed_by(self_signed, self_signed)
    with pytest.raises(ValueError):  # issuer is not the CA
        verify_signed_by(self_signed, load(pki.ca_cert))


def test_client_certificates(pki: TestPki) -> None:
    for user in USERS:
        cert = load(pki.client(user).cert)
        verify_signed_by(cert, load(pki.ca_cert))
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == user
        assert sans(cert).get_values_for_type(x509.UniformResourceIdentifier) == [
            f"sip:{user}@{DOMAIN}"
        ]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        # A client of the service, and a server when the service calls it (dial-out).
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        assert sans(cert).get_values_for_type(x509.DNSName) == []  # none unless asked


def test_client_certificates_with_dns_names(tmp_path: Path) -> None:
    """`client_dns`: for a caller that checks the host it dialled (linphone wants
    DNS:127.0.0.1 in the certificate of `sips:bob@127.0.0.1:port`)."""
    pki = TestPki.create(tmp_path, DOMAIN, ["bob"], client_dns=("127.0.0.1", "bob.example.test"))
    names = sans(load(pki.client("bob").cert))
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [f"sip:bob@{DOMAIN}"]
    assert names.get_values_for_type(x509.DNSName) == ["127.0.0.1", "bob.example.test"]
    with pytest.raises(ConfigError, match="client_dns"):
        TestPki.create(tmp_path / "bad", DOMAIN, ["bob"], client_dns=("bad name",))


def test_each_run_has_its_own_ca(tmp_path: Path) -> None:
    a = TestPki.create(tmp_path / "a", DOMAIN, [])
    b = TestPki.create(tmp_path / "b", DOMAIN, [])
    assert load(a.ca_cert).subject != load(b.ca_cert).subject


def test_unknown_names_are_local_errors(pki: TestPki) -> None:
    with pytest.raises(LocalProtocolError, match="service"):
        pki.server("wildcard")
    with pytest.raises(LocalProtocolError, match="alice"):
        pki.client("mallory")


@pytest.mark.parametrize(
    ("domain", "users", "other"),
    [
        ("", [], "x.test"),
        ("bad domain", [], "x.test"),
        ("-lead.test", [], "x.test"),
        (DOMAIN, [], DOMAIN.upper()),
        (DOMAIN, ["../etc"], "x.test"),
        (DOMAIN, ["al ice"], "x.test"),
        (DOMAIN, [""], "x.test"),
        (DOMAIN, ["bob", "bob"], "x.test"),
    ],
)
def test_bad_input_is_a_config_error(
    tmp_path: Path, domain: str, users: list[str], other: str
) -> None:
    with pytest.raises(ConfigError):
        TestPki.create(tmp_path, domain, users, other_domain=other)


def test_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="directory"):
        TestPki.create(blocker / "pki", DOMAIN, [])


def test_recreating_tightens_an_existing_key_file(tmp_path: Path) -> None:
    key = tmp_path / "ca.key"
    key.write_text("old")
    key.chmod(0o644)
    TestPki.create(tmp_path, DOMAIN, [])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_fingerprint_sha256_forms(pki: TestPki) -> None:
    der = load(pki.ca_cert).public_bytes(serialization.Encoding.DER)
    expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert len(expected) == 32 * 3 - 1
    assert fingerprint_sha256(pki.ca_cert) == expected
    assert fingerprint_sha256(str(pki.ca_cert)) == expected
    assert fingerprint_sha256(der) == expected
    assert fingerprint_sha256(pki.ca_cert.read_bytes()) == expected
    der_file = pki.directory / "ca.der"
    der_file.write_bytes(der)
    assert fingerprint_sha256(der_file) == expected


def test_fingerprint_of_missing_or_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        fingerprint_sha256(tmp_path / "missing.pem")
    with pytest.raises(ConfigError):
        fingerprint_sha256(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_not_collected_as_a_test_class() -> None:
    assert TestPki.__test__ is False


# -- client certificates that mutual TLS must refuse (R2) ----------------------------------------


@pytest.fixture(scope="module")
def flawed_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """Made at the real time: OpenSSL judges validity against the clock, not against NOW."""
    return TestPki.create(
        tmp_path_factory.mktemp("flawed") / "run", DOMAIN, USERS, flawed_for=["bob"]
    )


def flaws_of(cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> set[str]:
    """Which of CLIENT_CERT_FLAWS `cert` has, judged property by property."""
    found = set()
    try:
        cert.verify_directly_issued_by(cert)
        found.add("self-signed")
    except (ValueError, TypeError, InvalidSignature):
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            found.add("untrusted-ca")
    if cert.not_valid_after_utc < now:
        found.add("expired")
    if cert.not_valid_before_utc > now:
        found.add("not-yet-valid")
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        found.add("server-auth-only")
    return found


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def extension_types(cert: x509.Certificate) -> list[type]:
    return sorted((type(e.value) for e in cert.extensions), key=lambda t: t.__name__)


def test_each_flawed_client_certificate_has_exactly_its_flaw(flawed_pki: TestPki) -> None:
    ca = load(flawed_pki.ca_cert)
    valid = load(flawed_pki.client("bob").cert)
    now = dt.datetime.now(dt.UTC)
    assert flaws_of(valid, ca, now) == set()
    assert set(flawed_pki.flawed) == {"bob"}
    keys = {_spki(valid)}
    for flaw in CLIENT_CERT_FLAWS:
        pair = flawed_pki.flawed_client("bob", flaw)
        cert = load(pair.cert)
        assert flaws_of(cert, ca, now) == {flaw}, flaw
        # Otherwise bob's valid certificate: identity, extensions, key usage, key type.
        assert cert.subject == valid.subject
        assert sans(cert) == sans(valid)
        assert extension_types(cert) == extension_types(valid)
        for kind in (x509.KeyUsage, x509.BasicConstraints):
            assert cert.extensions.get_extension_for_class(kind) == (
                valid.extensions.get_extension_for_class(kind)
            )
        key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
        assert cert.public_key() == key.public_key()
        assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600
        keys.add(_spki(cert))
    assert len(keys) == 1 + len(CLIENT_CERT_FLAWS)  # a fresh key each: the flaw is tested


def test_the_untrusted_ca_is_sent_along_and_is_a_ca(flawed_pki: TestPki) -> None:
    pems = flawed_pki.flawed_client("bob", "untrusted-ca").cert.read_bytes()
    leaf, issuer = x509.load_pem_x509_certificates(pems)
    leaf.verify_directly_issued_by(issuer)
    assert issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert issuer.subject != load(flawed_pki.ca_cert).subject


def _server_verdict(pki: TestPki, pair: CertPair, version: ssl.TLSVersion) -> str:
    """OpenSSL's verdict, as a TLS server requiring client certificates from the run's CA, on
    `pair` (a handshake over memory BIOs: the verify error names what was wrong)."""
    server_ctx = server_context(
        pki.server().cert, pki.server().key, ca_file=pki.ca_cert, require_client_cert=True
    )
    client_ctx = client_context(pki.ca_cert, pair.cert, pair.key)
    client_ctx.maximum_version = version
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=DOMAIN)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done: set[str] = set()
    for _ in range(6):
        for side, obj in (("client", client), ("server", server)):
            try:
                obj.do_handshake()
                done.add(side)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError as exc:
                return f"{side}: {exc.verify_message}"
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done == {"client", "server"}:
            return "accepted"
    raise AssertionError("the handshake made no progress")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_openssl_refuses_each_flaw_for_that_flaw(flawed_pki: TestPki, version) -> None:
    expected = {
        "self-signed": "server: self-signed certificate",
        "untrusted-ca": "server: self-signed certificate in certificate chain",
        "expired": "server: certificate has expired",
        "not-yet-valid": "server: certificate is not yet valid",
        "server-auth-only": "server: unsuitable certificate purpose",
    }
    assert _server_verdict(flawed_pki, flawed_pki.client("bob"), version) == "accepted"
    for flaw in CLIENT_CERT_FLAWS:
        assert (
            _server_verdict(flawed_pki, flawed_pki.flawed_client("bob", flaw), version)
            == (expected[flaw])
        )


def test_the_suite_mints_the_flaws_that_need_no_trusted_ca(
    flawed_pki: TestPki, tmp_path: Path
) -> None:
    template = flawed_pki.client("carol").cert
    minted = flawed_client_certs(tmp_path / "minted", template)
    assert set(minted) == set(SUITE_MINTED_FLAWS) == {"self-signed", "untrusted-ca"}
    ca, valid = load(flawed_pki.ca_cert), load(template)
    for flaw, pair in minted.items():
        cert = load(pair.cert)
        assert flaws_of(cert, ca, dt.datetime.now(dt.UTC)) == {flaw}
        assert (cert.subject, sans(cert)) == (valid.subject, sans(valid))
        assert _server_verdict(flawed_pki, pair, ssl.TLSVersion.TLSv1_3).startswith("server: ")
    with pytest.raises(ConfigError, match=r"expired.*trusts"):
        flawed_client_certs(tmp_path / "x", template, ["expired"])


def test_minted_certificates_copy_an_rsa_template(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vendor-user")])
    uri = x509.UniformResourceIdentifier("sip:vendor-user@vendor.example.test")
    now = dt.datetime.now(dt.UTC)
    template = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([uri]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "vendor.pem"
    path.write_bytes(template.public_bytes(serialization.Encoding.PEM))
    for pair in flawed_client_certs(tmp_path / "minted", path).values():
        cert = load(pair.cert)
        assert isinstance(cert.public_key(), rsa.RSAPublicKey)
        assert cert.subject == name
        assert sans(cert).get_values_for_type(x509.UniformResourceIdentifier) == [uri.value]


def test_flawed_certificates_only_for_known_users(tmp_path: Path, pki: TestPki) -> None:
    with pytest.raises(ConfigError, match="flawed_for"):
        TestPki.create(tmp_path, DOMAIN, ["alice"], flawed_for=["bob"])
    with pytest.raises(LocalProtocolError, match="expired"):
        pki.flawed_client("alice", "expired")  # none asked for
