"""The reference's SIP/TLS listener and client certificates (R2 mutual TLS), on loopback.

The compliant reference refuses every flawed certificate the suite presents, and each defect
switch of `confsec.reference.client_auth` lets through exactly the flaws it is named for, over
TLS 1.2 and 1.3 (where the refusal comes after the client's handshake).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from confsec.behaviour import checks
from confsec.behaviour.client_certs import FLAWS_BY_WORDS
from confsec.behaviour.conference import ConferenceRun
from confsec.errors import ConfigError
from confsec.net.tls import client_context, server_context
from confsec.pki import CertPair, TestPki
from confsec.reference.client_auth import CLIENT_CERT_DEFECTS, apply_client_cert_defects
from confsec.target.model import CLIENT_CERT_FLAWS

DOMAIN = "conf.example.test"
TIMEOUT = 10.0


@pytest.mark.parametrize("words", list(FLAWS_BY_WORDS))
def test_the_compliant_reference_refuses_each_flawed_certificate(
    conf: ConferenceRun, words: str
) -> None:
    control = conf.probe_tls("bob", send_request=True)
    probe = conf.probe_tls("bob", send_request=True, flawed=words)
    evidence = checks.tls_refused(probe, control)
    assert probe.response_status is None and probe.closed_by_peer
    assert any(f"bob's certificate, {words}" in c for c in evidence.controls)


ACCEPTS = {
    frozenset(): set(),
    frozenset({"client-cert-ignores-validity"}): {"expired", "not-yet-valid"},
    frozenset({"client-cert-ignores-eku"}): {"server-auth-only"},
    frozenset({"client-cert-any-ca"}): {"self-signed", "untrusted-ca"},
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(
        tmp_path_factory.mktemp("client-auth"), DOMAIN, ["bob"], flawed_for=["bob"]
    )


async def _answered(server_ctx: ssl.SSLContext, pki: TestPki, pair: CertPair, version) -> bool:
    """Whether a server with `server_ctx` answers a client presenting `pair`."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await reader.readline())
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = client_context(pki.ca_cert, pair.cert, pair.key)
    client_ctx.maximum_version = version
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=DOMAIN
        )
        try:
            writer.write(b"OPTIONS\n")
            await writer.drain()
            return await reader.readline() == b"OPTIONS\n"
        finally:
            writer.close()
    except (ConnectionError, ssl.SSLError):
        return False  # TLS 1.2: the refusal ends the handshake
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("defects", list(ACCEPTS), ids=lambda d: ",".join(d) or "compliant")
def test_each_defect_lets_through_only_its_flaws(
    pki: TestPki, defects: frozenset[str], version: ssl.TLSVersion
) -> None:
    assert defects <= CLIENT_CERT_DEFECTS
    ctx = server_context(
        pki.server().cert, pki.server().key, ca_file=pki.ca_cert, require_client_cert=True
    )
    apply_client_cert_defects(ctx, defects)

    async def judge() -> set[str]:
        assert await _answered(ctx, pki, pki.client("bob"), version)  # the control
        return {
            flaw
            for flaw in CLIENT_CERT_FLAWS
            if await _answered(ctx, pki, pki.flawed_client("bob", flaw), version)
        }

    assert asyncio.run(asyncio.wait_for(judge(), TIMEOUT)) == ACCEPTS[defects]


def test_a_defect_needs_a_context_that_requires_client_certificates(pki: TestPki) -> None:
    optional = server_context(pki.server().cert, pki.server().key, ca_file=pki.ca_cert)
    with pytest.raises(ConfigError, match="SSL_CTX"):
        apply_client_cert_defects(optional, frozenset({"client-cert-any-ca"}))


def test_the_reference_profile_supplies_only_what_needs_its_ca(conf: ConferenceRun) -> None:
    flawed = conf.target.account("bob").flawed_certs
    assert set(flawed) == {"expired", "not-yet-valid", "server-auth-only"}
    assert all(isinstance(p, Path) and p.is_file() for pair in flawed.values() for p in pair)
