"""Real DTLS-SRTP handshakes in memory, recorded datagram by datagram (a test helper).

Two pyOpenSSL `Connection`s over memory BIOs (`Context(DTLS_METHOD)`, `set_tlsext_use_srtp`),
self-signed certificates made with `cryptography`, and the NSS key log line captured with the
context's keylog callback: what a capture and an endpoint's SSLKEYLOGFILE would hold. The
handshake is shuttled until both sides finish; every datagram is kept with its direction, so
the parser and the tracker are tested against OpenSSL's bytes, not our own idea of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from confsec.media.dtls_records import self_signed_identity

C2S, S2C = "c2s", "s2c"
SSL_OP_NO_EXTENDED_MASTER_SECRET = 0x1
"""OpenSSL's SSL_OP_NO_EXTENDED_MASTER_SECRET (SSL_OP_BIT(0)); pyOpenSSL does not name it."""
SSL_OP_NO_QUERY_MTU = 0x1000
_COOKIE = b"confsec-test-cookie"


@functools.cache
def self_signed(name: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """(DER certificate, key) for a common name; cached, so a test run makes two at most."""
    cert, key, _ = self_signed_identity(name)
    return cert.public_bytes(serialization.Encoding.DER), key


@dataclass
class Handshake:
    client: SSL.Connection
    server: SSL.Connection
    datagrams: list[tuple[str, bytes]] = field(default_factory=list)
    """(C2S or S2C, datagram), in the order they were sent."""
    keylog: list[str] = field(default_factory=list)
    """NSS key log lines, as the keylog callback gave them."""
    client_cert: bytes = b""
    server_cert: bytes = b""


def _context(
    name: str,
    keylog: list[str],
    *,
    ems: bool,
    ciphers: bytes | None,
    profiles: bytes,
    dtls10: bool,
    verify_ok: bool,
    mtu: int | None,
) -> SSL.Context:
    der, key = self_signed(name)
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(x509.load_der_x509_certificate(der))
    ctx.use_privatekey(key)
    ctx.set_tlsext_use_srtp(profiles)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *_: verify_ok)  # self-signed: DTLS-SRTP checks by SDP
    ctx.set_keylog_callback(lambda _conn, line: keylog.append(line.decode()))
    if not ems:
        ctx.set_options(SSL_OP_NO_EXTENDED_MASTER_SECRET)
    if mtu:
        ctx.set_options(SSL_OP_NO_QUERY_MTU)
    if ciphers:
        ctx.set_cipher_list(ciphers)
    if dtls10:
        ctx.set_cipher_list(b"ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
        ctx.set_max_proto_version(0xFEFF)
    return ctx


def _drain(conn: SSL.Connection) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(conn.bio_read(65536))
        except SSL.WantReadError:
            return out


def _split(flight: bytes) -> list[bytes]:
    """One record per datagram (its own framing, not the code under test's)."""
    out, i = [], 0
    while i + 13 <= len(flight):
        n = 13 + int.from_bytes(flight[i + 11 : i + 13], "big")
        out.append(flight[i : i + n])
        i += n
    return out


def _step(conn: SSL.Connection) -> bool:
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        return False
    return True


def handshake(
    *,
    ems: bool = True,
    ciphers: bytes | None = None,
    profiles: bytes = b"SRTP_AES128_CM_SHA1_80",
    dtls10: bool = False,
    mtu: int | None = None,
    cookie: bool = False,
    client_accepts: bool = True,
) -> Handshake:
    """Run one handshake. `mtu` fragments messages and sends one record per datagram; `cookie`
    makes the server answer the first ClientHello with a HelloVerifyRequest; with
    `client_accepts=False` the client refuses the server's certificate (a fatal alert)."""
    keylog: list[str] = []
    opts = dict(ems=ems, ciphers=ciphers, profiles=profiles, dtls10=dtls10, mtu=mtu)
    sctx = _context("server", keylog, verify_ok=True, **opts)
    cctx = _context("client", keylog, verify_ok=client_accepts, **opts)
    if cookie:
        sctx.set_cookie_generate_callback(lambda _conn: _COOKIE)
        sctx.set_cookie_verify_callback(lambda _conn, c: c == _COOKIE)
    hs = Handshake(SSL.Connection(cctx), SSL.Connection(sctx), keylog=keylog)
    hs.client_cert, hs.server_cert = self_signed("client")[0], self_signed("server")[0]
    hs.client.set_connect_state()
    hs.server.set_accept_state()
    if mtu:
        hs.client.set_ciphertext_mtu(mtu)
        hs.server.set_ciphertext_mtu(mtu)

    def send(src: SSL.Connection, dst: SSL.Connection, way: str) -> list[bytes]:
        flights = _drain(src)
        for flight in flights:
            for dgram in _split(flight) if mtu else [flight]:
                hs.datagrams.append((way, dgram))
                dst.bio_write(dgram)
        return flights

    if cookie:  # RFC 6347 §4.2.1, as pyOpenSSL's own TestDTLS drives DTLSv1_listen
        _step(hs.client)
        hello = send(hs.client, hs.server, C2S)
        try:
            hs.server.DTLSv1_listen()
        except SSL.WantReadError:
            pass
        send(hs.server, hs.client, S2C)
        _step(hs.client)
        hello = send(hs.client, hs.server, C2S)
        hs.server.DTLSv1_listen()
        for flight in hello:  # the listen consumed it; the handshake reads it again
            hs.server.bio_write(flight)
    done = [False, False]
    for _ in range(10):
        try:
            done[0] = _step(hs.client) or done[0]
        except SSL.Error:
            if client_accepts:
                raise
            send(hs.client, hs.server, C2S)  # the client's fatal alert
            return hs
        send(hs.client, hs.server, C2S)
        done[1] = _step(hs.server) or done[1]
        send(hs.server, hs.client, S2C)
        if all(done):
            return hs
    raise AssertionError("the DTLS handshake did not finish")
