"""confsec.net.tls: contexts tried on real loopback TLS connections with the test PKI."""

from __future__ import annotations

import asyncio
import ssl
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from confsec.errors import ConfigError, RemoteProtocolError
from confsec.net.tls import PeerCert, client_context, peer_identity, server_context
from confsec.pki import TestPki, fingerprint_sha256

DOMAIN = "conf.example.test"
TIMEOUT = 10.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("tls-pki"), DOMAIN, ["alice", "bob"])


def run(coro: Awaitable[object]) -> object:
    async def bounded() -> object:
        return await asyncio.wait_for(coro, TIMEOUT)  # a hung handshake fails, not hangs

    return asyncio.run(bounded())


async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        data = await reader.readline()
        writer.write(data)
        await writer.drain()
    finally:
        writer.close()


async def exchange(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, handler: Handler = echo_once
) -> tuple[bytes, PeerCert | None]:
    """Connect by IP with server_hostname=DOMAIN (as the suite does), send a line, read the
    answer. Returns the answer and the server's identity as the client saw it."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=DOMAIN
        )
        try:
            writer.write(b"OPTIONS\n")
            await writer.drain()
            # Read before judging: with TLS 1.3 a refused client certificate only shows here.
            answer = await reader.readline()
            return answer, peer_identity(writer.get_extra_info("ssl_object"))
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_handshake_with_the_right_domain(pki: TestPki) -> None:
    server = server_context(pki.server().cert, pki.server().key)
    client = client_context(pki.ca_cert)
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    answer, identity = run(exchange(server, client))  # type: ignore[misc]
    assert answer == b"OPTIONS\n"
    assert identity is not None
    assert identity.dns_names == (DOMAIN,)
    assert identity.subject_cn == DOMAIN
    assert identity.uris == ()
    assert identity.fingerprint_sha256 == fingerprint_sha256(pki.server().cert)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("other-domain", "Hostname mismatch"),
        ("expired", "expired"),
        ("self-signed", "self-signed"),
    ],
)
def test_bad_server_certificates_fail_verification(pki: TestPki, name: str, reason: str) -> None:
    server = server_context(pki.server(name).cert, pki.server(name).key)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        run(exchange(server, client_context(pki.ca_cert)))
    assert reason.lower() in caught.value.verify_message.lower()


def test_unknown_ca_fails_verification(pki: TestPki, tmp_path: Path) -> None:
    other = TestPki.create(tmp_path, DOMAIN, [])
    server = server_context(other.server().cert, other.server().key)
    with pytest.raises(ssl.SSLCertVerificationError):
        run(exchange(server, client_context(pki.ca_cert)))


def test_mutual_tls_gives_the_client_identity(pki: TestPki) -> None:
    seen: list[PeerCert | None] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(peer_identity(writer.get_extra_info("ssl_object")))
        await echo_once(reader, writer)

    server = server_context(
        pki.server().cert, pki.server().key, ca_file=pki.ca_cert, require_client_cert=True
    )
    assert server.verify_mode == ssl.CERT_REQUIRED
    alice = pki.client("alice")
    client = client_context(pki.ca_cert, alice.cert, alice.key)
    answer, _ = run(exchange(server, client, handler))  # type: ignore[misc]
    assert answer == b"OPTIONS\n"
    (identity,) = seen
    assert identity is not None
    assert identity.uris == (f"sip:alice@{DOMAIN}",)
    assert identity.subject_cn == "alice"
    assert identity.dns_names == ()
    assert identity.fingerprint_sha256 == fingerprint_sha256(alice.cert)


def test_mutual_tls_refuses_a_client_without_certificate_tls13(pki: TestPki) -> None:
    """TLS 1.3: the client's handshake completes; the alert arrives at its first read."""
    handled: list[bool] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handled.append(True)
        await echo_once(reader, writer)

    server = server_context(
        pki.server().cert, pki.server().key, ca_file=pki.ca_cert, require_client_cert=True
    )
    client = client_context(pki.ca_cert)

    async def attempt() -> bytes | BaseException:
        server_obj = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server)
        port = server_obj.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname=DOMAIN
            )
            assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
            # The client believes it is connected: only reading tells the truth.
            writer.write(b"OPTIONS\n")
            try:
                return await reader.read(100)
            except (ssl.SSLError, ConnectionResetError) as exc:
                return exc
            finally:
                writer.close()
        finally:
            server_obj.close()
            await server_obj.wait_closed()

    outcome = run(attempt())
    # asyncio streams report the refusal as end of stream; a blocking socket raises
    # SSLError(TLSV13_ALERT_CERTIFICATE_REQUIRED); a reset is possible too. Never data.
    if isinstance(outcome, ssl.SSLError):
        assert "CERTIFICATE_REQUIRED" in (outcome.reason or str(outcome))
    else:
        assert isinstance(outcome, ConnectionResetError) or outcome == b""
    assert handled == []


def test_mutual_tls_refuses_a_client_without_certificate_tls12(pki: TestPki) -> None:
    """TLS 1.2: the refusal is part of the client's handshake."""
    server = server_context(
        pki.server().cert, pki.server().key, ca_file=pki.ca_cert, require_client_cert=True
    )
    client = client_context(pki.ca_cert)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        run(exchange(server, client))


def test_optional_client_certificate(pki: TestPki) -> None:
    seen: list[PeerCert | None] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(peer_identity(writer.get_extra_info("ssl_object")))
        await echo_once(reader, writer)

    server = server_context(pki.server().cert, pki.server().key, ca_file=pki.ca_cert)
    assert server.verify_mode == ssl.CERT_OPTIONAL
    answer, _ = run(exchange(server, client_context(pki.ca_cert), handler))  # type: ignore[misc]
    assert answer == b"OPTIONS\n"
    assert seen == [None]


def test_keylog_files_get_the_tls13_secrets(pki: TestPki, tmp_path: Path) -> None:
    client_log = tmp_path / "evidence" / "client.keys"
    client_log.parent.mkdir()
    server_log = tmp_path / "server.keys"
    server = server_context(pki.server().cert, pki.server().key, keylog_file=server_log)
    client = client_context(pki.ca_cert, keylog_file=client_log)
    assert client.keylog_filename == str(client_log)
    assert stat.S_IMODE(client_log.stat().st_mode) == 0o600
    run(exchange(server, client))
    for log in (client_log, server_log):
        lines = log.read_text().splitlines()
        assert any(line.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") for line in lines)
        assert any(line.startswith("CLIENT_TRAFFIC_SECRET_0 ") for line in lines)
    # Appended, not overwritten: one file can serve a whole run.
    before = client_log.read_text()
    run(exchange(server, client_context(pki.ca_cert, keylog_file=client_log)))
    assert client_log.read_text().startswith(before) and len(client_log.read_text()) > len(before)


def test_minimum_version_is_enforced(pki: TestPki) -> None:
    server = server_context(pki.server().cert, pki.server().key)
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    client = client_context(pki.ca_cert, minimum_version=ssl.TLSVersion.TLSv1_3)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        run(exchange(server, client))


# --------------------------------------------------------------------------------------------
# Configuration errors
# --------------------------------------------------------------------------------------------


def test_missing_files_are_config_errors_naming_the_file(pki: TestPki, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    cases = [
        lambda: client_context(missing),
        lambda: client_context(pki.ca_cert, missing, pki.client("alice").key),
        lambda: client_context(pki.ca_cert, pki.client("alice").cert, missing),
        lambda: server_context(missing, pki.server().key),
        lambda: server_context(pki.server().cert, missing),
        lambda: server_context(pki.server().cert, pki.server().key, ca_file=missing),
    ]
    for call in cases:
        with pytest.raises(ConfigError) as caught:
            call()
        message = str(caught.value)
        assert str(missing) in message
        assert "No such file" in message and "PEM" in message


def test_directory_instead_of_file(pki: TestPki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path)):
        server_context(tmp_path, pki.server().key)


def test_garbage_and_mismatched_files(pki: TestPki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"garbage\.pem"):
        client_context(garbage)
    with pytest.raises(ConfigError, match=r"garbage\.pem"):
        server_context(garbage, pki.server().key)
    with pytest.raises(ConfigError, match="does not belong"):
        server_context(pki.server().cert, pki.client("bob").key)


def test_encrypted_key_is_a_config_error_not_a_prompt(pki: TestPki, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.key"
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigError, match="encrypted"):
        server_context(pki.server().cert, encrypted)


def test_other_config_mistakes(pki: TestPki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_file"):
        server_context(pki.server().cert, pki.server().key, require_client_cert=True)
    with pytest.raises(ConfigError, match="without its certificate"):
        client_context(pki.ca_cert, key_file=pki.client("alice").key)
    with pytest.raises(ConfigError, match="key log"):
        client_context(pki.ca_cert, keylog_file=tmp_path / "no" / "such" / "dir.keys")


def test_combined_pem_without_key_file(pki: TestPki, tmp_path: Path) -> None:
    combined = tmp_path / "alice-combined.pem"
    alice = pki.client("alice")
    combined.write_bytes(alice.cert.read_bytes() + alice.key.read_bytes())
    assert isinstance(client_context(pki.ca_cert, combined), ssl.SSLContext)


def test_system_trust_store_when_no_ca_file() -> None:
    context = client_context(None)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


# --------------------------------------------------------------------------------------------
# peer_identity without a connection
# --------------------------------------------------------------------------------------------


class FakeSsl:
    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.der


def test_peer_identity_from_der(pki: TestPki) -> None:
    from cryptography import x509

    der = x509.load_pem_x509_certificate(pki.client("bob").cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    identity = peer_identity(FakeSsl(der))
    assert identity == PeerCert.from_der(der)
    assert identity is not None and identity.uris == (f"sip:bob@{DOMAIN}",)
    assert "der=" not in repr(identity)
    assert peer_identity(FakeSsl(None)) is None
    ca_der = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    ca = PeerCert.from_der(ca_der)
    assert ca.dns_names == () and ca.uris == () and ca.subject_cn.startswith("confsec test CA")


def test_undecodable_peer_certificate_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError, match="cannot be decoded"):
        PeerCert.from_der(b"\x30\x03\x02\x01\x00")
