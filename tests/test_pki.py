"""confsec.pki: the per-run test PKI."""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from confsec.errors import ConfigError, LocalProtocolError
from confsec.pki import SERVER_NAMES, CertPair, TestPki, fingerprint_sha256

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
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


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
