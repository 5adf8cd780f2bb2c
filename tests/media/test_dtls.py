"""The DTLS-SRTP endpoint: demultiplexing, handshakes in memory and over UDP, refusals, loss.

Every peer here is a real OpenSSL endpoint: two `DtlsSrtpEndpoint`s, or one and a bare
pyOpenSSL connection where the peer must do something the endpoint never would.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from confsec.codec.dtls import MAX_RECORD_LEN, DtlsRecord
from confsec.codec.sdp import FingerprintAttribute, SdpParseError
from confsec.errors import LocalProtocolError, RemoteProtocolError
from confsec.media.dtls import (
    DEFAULT_PROFILES,
    ConnectionClosed,
    DtlsError,
    DtlsSrtpEndpoint,
    HandshakeCompleted,
    HandshakeFailed,
    SrtpKeys,
    classify,
    fingerprint_of,
    self_signed_identity,
    suite_for_profile,
)
from confsec.media.dtls_records import (
    client_hello_srtp_profiles,
    frame_records,
    negotiation_problem,
    pack_datagrams,
    record_problem,
    signalled_fingerprints,
)
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import UnsupportedSuite, new_receiver, new_sender, profile_for
from confsec.pki import fingerprint_sha256

Batch = list[bytes]
Drop = Callable[[str, Batch], bool]


# -- helpers ------------------------------------------------------------------------------------


def make_pair(
    client: dict | None = None, server: dict | None = None, mtu: int = 1200
) -> tuple[DtlsSrtpEndpoint, DtlsSrtpEndpoint, str, str]:
    """A client and a server that expect each other's fingerprint; and the two fingerprints."""
    c_cert, c_key, c_fp = self_signed_identity("client")
    s_cert, s_key, s_fp = self_signed_identity("server")
    c_kw = {"expected_fingerprint": s_fp, "mtu": mtu, **(client or {})}
    s_kw = {"expected_fingerprint": c_fp, "mtu": mtu, **(server or {})}
    c = DtlsSrtpEndpoint("client", c_cert, c_key, **c_kw)
    s = DtlsSrtpEndpoint("server", s_cert, s_key, **s_kw)
    return c, s, c_fp, s_fp


def step(
    c: DtlsSrtpEndpoint,
    s: DtlsSrtpEndpoint,
    now: float,
    drop: Drop | None = None,
    log: list[tuple[str, Batch]] | None = None,
) -> bool:
    """One round: what each side has to send reaches the other (unless dropped)."""
    moved = False
    for name, a, b in (("client", c, s), ("server", s, c)):
        batch = a.datagrams_to_send()
        if not batch:
            continue
        moved = True
        if log is not None:
            log.append((name, batch))
        if drop is None or not drop(name, batch):
            for d in batch:
                b.receive_datagram(d, now)
    return moved


def pump(
    c: DtlsSrtpEndpoint, s: DtlsSrtpEndpoint, now: float, drop: Drop | None = None
) -> list[tuple[str, Batch]]:
    """Carry datagrams both ways until neither side has any; the batches, in order."""
    log: list[tuple[str, Batch]] = []
    for _ in range(100):
        if not step(c, s, now, drop, log):
            return log
    raise AssertionError("the endpoints never went quiet")


def handshake(c: DtlsSrtpEndpoint, s: DtlsSrtpEndpoint, now: float = 0.0) -> list:
    c.start(now)
    return pump(c, s, now)


def run_with_timers(c: DtlsSrtpEndpoint, s: DtlsSrtpEndpoint, drop: Drop, limit: float) -> float:
    """Handshake on the real monotonic clock, waking only when `next_timer()` says; seconds."""
    start = time.monotonic()
    c.start(start)
    while c.state == "handshaking" or s.state in ("new", "handshaking"):
        now = time.monotonic()
        assert now - start < limit, (c, s)
        if pump(c, s, now, drop):
            continue
        due = [t for t in (c.next_timer(), s.next_timer()) if t is not None]
        assert due, "stuck with no timer"
        time.sleep(max(0.0, min(due) - time.monotonic()) + 0.002)
        now = time.monotonic()
        c.handle_timer(now)
        s.handle_timer(now)
    return time.monotonic() - start


def events(ep: DtlsSrtpEndpoint) -> list:
    out = []
    while (e := ep.next_event()) is not None:
        out.append(e)
    return out


def record_types(batch: Batch) -> list[tuple[int, int]]:
    """(content type, handshake type or -1) of every record in a batch."""
    out = []
    for d in batch:
        for rec, raw in frame_records(d)[0]:
            out.append((rec.content_type, raw[13] if (raw[0], rec.epoch) == (22, 0) else -1))
    return out


def record(raw: bytes) -> DtlsRecord:
    """The one record `raw` frames as."""
    [(rec, _)], rest = frame_records(raw)
    assert rest == 0
    return rec


# -- classify -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (0, "stun"),
        (3, "stun"),
        (4, "unknown"),
        (15, "unknown"),
        (16, "zrtp"),
        (19, "zrtp"),
        (20, "dtls"),
        (22, "dtls"),
        (63, "dtls"),
        (64, "turn"),
        (79, "turn"),
        (80, "unknown"),
        (127, "unknown"),
        (192, "unknown"),
        (255, "unknown"),
    ],
)
def test_classify_by_first_byte(first: int, kind: str) -> None:
    assert classify(bytes([first, 0, 0, 0])) == kind


@pytest.mark.parametrize(
    ("second", "kind"),
    [
        (0, "rtp"),
        (96, "rtp"),
        (191, "rtp"),
        (192, "rtcp"),
        (200, "rtcp"),
        (223, "rtcp"),
        (224, "rtp"),
        (255, "rtp"),
    ],
)
@pytest.mark.parametrize("first", [128, 0x90, 191])
def test_classify_rtp_and_rtcp_by_second_byte(first: int, second: int, kind: str) -> None:
    assert classify(bytes([first, second]) + bytes(10)) == kind


def test_classify_short_inputs() -> None:
    assert classify(b"") == "unknown"
    assert classify(b"\x80") == "unknown"  # RTP or RTCP cannot be told from one byte
    assert classify(b"\x16") == "dtls"
    assert classify(bytearray(b"\x00\x01")) == "stun"


# -- profiles, fingerprints, identities ---------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "suite", "key_len", "salt_len"),
    [
        ("SRTP_AES128_CM_SHA1_80", "AES_CM_128_HMAC_SHA1_80", 16, 14),
        ("SRTP_AES128_CM_SHA1_32", "AES_CM_128_HMAC_SHA1_32", 16, 14),
        ("SRTP_AEAD_AES_128_GCM", "AEAD_AES_128_GCM", 16, 12),
        ("SRTP_AEAD_AES_256_GCM", "AEAD_AES_256_GCM", 32, 12),
    ],
)
def test_suite_for_profile_feeds_the_srtp_factory(
    profile: str, suite: str, key_len: int, salt_len: int
) -> None:
    assert suite_for_profile(profile) == suite
    p = profile_for(suite)
    assert (p.key_len, p.salt_len) == (key_len, salt_len)


def test_null_and_unknown_profiles_have_no_suite_confsec_runs() -> None:
    assert suite_for_profile("SRTP_NULL_SHA1_80") == "NULL_HMAC_SHA1_80"
    with pytest.raises(UnsupportedSuite):
        profile_for(suite_for_profile("SRTP_NULL_SHA1_32"))
    with pytest.raises(UnsupportedSuite):
        suite_for_profile("SRTP_F8_128_HMAC_SHA1_80")


def test_self_signed_identity_and_fingerprints() -> None:
    cert, key, fp = self_signed_identity("alice")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert cert.issuer == cert.subject
    now = dt.datetime.now(dt.UTC)
    assert abs(cert.not_valid_before_utc - (now - dt.timedelta(hours=1))) < dt.timedelta(minutes=1)
    assert abs(cert.not_valid_after_utc - (now + dt.timedelta(days=30))) < dt.timedelta(minutes=1)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert fp == fingerprint_of(cert) == "sha-256 " + fingerprint_sha256(der)
    assert fp == fp.upper().replace("SHA-256", "sha-256")
    assert FingerprintAttribute.parse(fp).matches(der)
    for name, octets in (("sha-1", 20), ("sha-384", 48), ("sha-512", 64)):
        other = fingerprint_of(cert, name.upper())
        assert other.startswith(f"{name} ")
        assert len(FingerprintAttribute.parse(other).fingerprint) == octets
    with pytest.raises(LocalProtocolError):
        fingerprint_of(cert, "md5")  # RFC 8122 section 5: never computed
    assert self_signed_identity()[2] != fp  # a fresh key each call


@pytest.mark.parametrize("bad", ["", "AB:CD", "sha-256 ZZ:00", "sha-256 AB:CD", "lower"])
def test_bad_fingerprints_are_refused_by_the_sdp_codec(bad: str) -> None:
    if bad == "lower":  # RFC 8122 section 5: UHEX; the codec is strict, the endpoint reuses it
        bad = fingerprint_of(self_signed_identity()[0]).lower()
    with pytest.raises(SdpParseError) as info:
        signalled_fingerprints(bad)
    assert isinstance(info.value, RemoteProtocolError)


def test_signalled_fingerprints_take_text_attributes_and_lists() -> None:
    cert, _, fp = self_signed_identity()
    attr = FingerprintAttribute.parse(fp)
    assert signalled_fingerprints(fp) == signalled_fingerprints(attr) == (attr,)
    other = fingerprint_of(cert, "sha-512")
    assert signalled_fingerprints([fp, FingerprintAttribute.parse(other)]) == (
        attr,
        FingerprintAttribute.parse(other),
    )
    assert signalled_fingerprints([]) == ()


# -- record framing -----------------------------------------------------------------------------


def _rec(n: int, epoch: int = 0) -> bytes:
    return bytes([22, 0xFE, 0xFD]) + epoch.to_bytes(2) + bytes(6) + n.to_bytes(2) + bytes(n)


def _raws(data: bytes) -> tuple[list[bytes], int]:
    records, rest = frame_records(data)
    return [raw for _, raw in records], rest


def test_frame_and_pack_records() -> None:
    recs = [_rec(87), _rec(137), _rec(87), _rec(287)]  # 100, 150, 100 and 300 octets
    assert _raws(b"".join(recs)) == (recs, 0)
    assert _raws(b"".join(recs) + b"\x16\xfe") == (recs, 2)
    assert _raws(recs[0] + recs[1][:-1]) == ([recs[0]], 149)
    assert _raws(recs[0] + bytes([22, 3, 3]) + bytes(10) + recs[1]) == ([recs[0]], 163)
    too_long = bytes([22, 0xFE, 0xFD]) + bytes(8) + (MAX_RECORD_LEN + 1).to_bytes(2)
    assert _raws(too_long + bytes(MAX_RECORD_LEN + 1)) == ([], len(too_long) + 18433)
    [(rec, _)], _ = frame_records(recs[1])
    assert (rec.content_type, rec.epoch, len(rec.fragment)) == (22, 0, 137)
    packed = pack_datagrams(recs, 300)
    assert [len(d) for d in packed] == [250, 100, 300]
    assert b"".join(packed) == b"".join(recs)
    assert pack_datagrams([_rec(400)], 300) == [_rec(400)]  # never cut inside a record


def test_record_problem() -> None:
    assert record_problem(record(_rec(0))) is None
    assert record_problem(record(bytes([23, 0xFE, 0xFD]) + bytes(10))) is None
    assert record_problem(record(_rec(5, epoch=1))) is None  # ciphertext: OpenSSL judges it
    assert frame_records(bytes([22, 3, 3]) + bytes(10)) == ([], 13)  # not DTLS: never framed
    assert frame_records(bytes([30, 0xFE, 0xFD]) + bytes(10)) == ([], 13)
    fragment = bytes([1]) + (10).to_bytes(3) + bytes(2) + (5).to_bytes(3) + (6).to_bytes(3)
    head = bytes([22, 0xFE, 0xFD]) + bytes(8) + (18).to_bytes(2)
    assert "runs past message length" in record_problem(record(head + fragment + bytes(6)))
    assert "handshake header" in record_problem(record(head[:-2] + (5).to_bytes(2) + bytes(5)))


# -- handshakes in memory -----------------------------------------------------------------------


@pytest.mark.parametrize("profile", DEFAULT_PROFILES)
def test_handshake_in_memory_exports_crosswise_keys(profile: str) -> None:
    c, s, c_fp, s_fp = make_pair({"srtp_profiles": (profile,)}, {"srtp_profiles": (profile,)})
    log = handshake(c, s, 5.0)
    assert c.state == s.state == "connected"
    assert c.selected_profile == s.selected_profile == profile
    assert (c.peer_fingerprint, s.peer_fingerprint) == (s_fp, c_fp)
    assert events(c) == [HandshakeCompleted(profile, s_fp, 5.0)]
    assert events(s) == [HandshakeCompleted(profile, c_fp, 5.0)]
    # The cookie exchange happened: the server's first answer is a HelloVerifyRequest (type 3).
    assert log[1][0] == "server" and record_types(log[1][1]) == [(22, 3)]
    assert s.peer_offered_profiles == (profile,)
    kc, ks = c.srtp_keys(), s.srtp_keys()
    key_len, salt_len = _lens(profile)
    assert (kc.local_key, kc.local_salt) == (ks.remote_key, ks.remote_salt)
    assert (kc.remote_key, kc.remote_salt) == (ks.local_key, ks.local_salt)
    assert len(kc.local_key) == key_len and len(kc.local_salt) == salt_len
    assert kc.local_key != kc.remote_key and kc.local_salt != kc.remote_salt
    assert kc.profile == profile and kc.suite == suite_for_profile(profile)
    assert c.srtp_keys() == kc  # exported again, the same
    assert c.next_timer() is None and s.next_timer() is None


def _lens(profile: str) -> tuple[int, int]:
    p = profile_for(suite_for_profile(profile))
    return p.key_len, p.salt_len


def test_handshake_without_cookies_and_default_offer() -> None:
    c, s, _, _ = make_pair(server={"cookies": False})
    log = handshake(c, s)
    assert c.state == s.state == "connected"
    assert record_types(log[1][1])[0] == (22, 2)  # straight to ServerHello
    assert s.peer_offered_profiles == DEFAULT_PROFILES
    assert c.selected_profile == DEFAULT_PROFILES[0]


def test_flights_are_split_at_record_boundaries_for_the_mtu() -> None:
    c, s, _, _ = make_pair(mtu=300)
    log = handshake(c, s)
    assert c.state == s.state == "connected"
    sizes = [len(d) for _, batch in log for d in batch]
    assert max(sizes) <= 300
    assert any(len(batch) > 1 for _, batch in log)  # some flight needed several datagrams
    for _, batch in log:
        for d in batch:
            assert frame_records(d)[1] == 0  # whole records only


def test_keys_are_refused_before_the_handshake_ends() -> None:
    c, _, _, _ = make_pair()
    with pytest.raises(LocalProtocolError):
        c.srtp_keys()
    c.start(0.0)
    with pytest.raises(LocalProtocolError, match="state handshaking"):
        c.srtp_keys()


def test_close_notify_ends_the_association_on_both_sides() -> None:
    c, s, _, _ = make_pair()
    handshake(c, s)
    events(c), events(s)
    c.close(1.0)
    pump(c, s, 1.0)
    assert (c.state, s.state) == ("closed", "closed")
    assert s.close_reason == "peer sent close_notify"
    assert c.srtp_keys().local_key == s.srtp_keys().remote_key  # keys as they were


# -- over real UDP ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["SRTP_AES128_CM_SHA1_80", "SRTP_AEAD_AES_128_GCM"])
def test_handshake_over_udp_then_srtp_both_ways(profile: str) -> None:
    c, s, _, _ = make_pair({"srtp_profiles": (profile,)})
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        c_sock, s_sock = socks
        ends = {c_sock: (c, s_sock.getsockname()), s_sock: (s, c_sock.getsockname())}
        start = time.monotonic()
        c.start(start)
        while not c.state == s.state == "connected":
            assert time.monotonic() - start < 5, (c, s)
            for sock, (ep, peer) in ends.items():
                for d in ep.datagrams_to_send():
                    sock.sendto(d, peer)
            readable, _, _ = select.select(socks, [], [], 0.05)
            now = time.monotonic()
            for sock in readable:
                data = sock.recv(65535)
                assert classify(data) == "dtls"
                ends[sock][0].receive_datagram(data, now)
            for ep in (c, s):
                ep.handle_timer(now)

        ledger = KeyStreamLedger()
        suite = suite_for_profile(profile)
        kc, ks = c.srtp_keys(), s.srtp_keys()
        for (tx_sock, tx_keys, me), (rx_sock, rx_keys, peer) in (
            ((c_sock, kc, "client"), (s_sock, ks, "server")),
            ((s_sock, ks, "server"), (c_sock, kc, "client")),
        ):
            send = StreamId(me, peer, "audio", "send")
            recv = StreamId(peer, me, "audio", "recv")
            tx = new_sender(ledger, send, suite, tx_keys.local_key, tx_keys.local_salt)
            rx = new_receiver(ledger, recv, suite, rx_keys.remote_key, rx_keys.remote_salt)
            rtp = build_rtp(0, 7, 160, 0x5EC0 + len(me), bytes(range(160)))
            tx_sock.sendto(tx.protect(rtp), rx_sock.getsockname())
            assert select.select([rx_sock], [], [], 2)[0]
            srtp = rx_sock.recv(2048)
            assert classify(srtp) == "rtp" and srtp != rtp
            assert rx.unprotect(srtp) == rtp
        assert ledger.findings() == []
    finally:
        for sock in socks:
            sock.close()


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("checker", ["client", "server"])
def test_fingerprint_mismatch_fails_on_the_checking_side(checker: str) -> None:
    wrong = self_signed_identity("impostor")[2]
    c, s, c_fp, s_fp = make_pair(
        {"expected_fingerprint": wrong} if checker == "client" else None,
        {"expected_fingerprint": wrong} if checker == "server" else None,
    )
    handshake(c, s)
    me, peer = (c, s) if checker == "client" else (s, c)
    assert me.state == "failed" and peer.state == "failed"
    seen = s_fp if checker == "client" else c_fp
    assert me.failure_reason == (
        f"peer certificate fingerprint {seen} does not match the signalled fingerprint {wrong}"
    )
    assert me.peer_fingerprint == seen
    assert peer.failure_reason == "peer alert fatal unknown_ca (48)"
    assert me.alerts_sent == ["fatal unknown_ca (48)"]
    [failed] = events(me)
    assert isinstance(failed, HandshakeFailed) and failed.reason == me.failure_reason
    for ep in (c, s):
        with pytest.raises(DtlsError):
            ep.srtp_keys()
        assert ep.next_timer() is None


@pytest.mark.parametrize("checker", ["client", "server"])
def test_check_fingerprint_false_lets_any_certificate_through(checker: str) -> None:
    unchecked = {"expected_fingerprint": None, "check_fingerprint": False}
    c, s, c_fp, s_fp = make_pair(
        unchecked if checker == "client" else None, unchecked if checker == "server" else None
    )
    handshake(c, s)
    assert c.state == s.state == "connected"
    assert (c.peer_fingerprint, s.peer_fingerprint) == (s_fp, c_fp)
    assert c.srtp_keys().local_key == s.srtp_keys().remote_key


def test_a_wrong_fingerprint_without_the_check_is_recorded_not_refused() -> None:
    wrong = self_signed_identity("impostor")[2]
    c, s, _, s_fp = make_pair({"expected_fingerprint": wrong, "check_fingerprint": False})
    handshake(c, s)
    assert c.state == "connected" and c.peer_fingerprint == s_fp != wrong


# -- the fingerprint after the ClientHello (RFC 5763 section 5) ----------------------------------


def test_a_fingerprint_signalled_before_the_handshake_is_used() -> None:
    c, s, c_fp, _ = make_pair(server={"expected_fingerprint": None})
    s.set_expected_fingerprint(c_fp, 0.0)  # state new: kept for the certificate to come
    handshake(c, s)
    assert c.state == s.state == "connected" and s.peer_fingerprint == c_fp


def test_a_fingerprint_signalled_after_the_handshake_releases_completion_and_keys() -> None:
    c, s, c_fp, _ = make_pair(server={"expected_fingerprint": None, "handshake_timeout": 9})
    handshake(c, s, 1.0)
    assert c.state == "connected" and s.state == "awaiting_fingerprint"
    assert events(s) == [] and s.selected_profile == DEFAULT_PROFILES[0]
    assert s.peer_fingerprint == c_fp and s.peer_certificate is not None
    with pytest.raises(LocalProtocolError, match="awaiting_fingerprint"):
        s.srtp_keys()
    assert s.next_timer() == 10.0  # the handshake deadline still runs
    s.set_expected_fingerprint(FingerprintAttribute.parse(c_fp), 2.5)
    assert s.state == "connected" and s.next_timer() is None
    assert events(s) == [HandshakeCompleted(DEFAULT_PROFILES[0], c_fp, 2.5)]
    assert s.srtp_keys().remote_key == c.srtp_keys().local_key
    s.set_expected_fingerprint(c_fp, 3.0)  # the same again (a re-offer): nothing happens
    assert s.state == "connected" and events(s) == []


def test_a_wrong_fingerprint_after_the_handshake_fails_and_withholds_the_keys() -> None:
    c, s, c_fp, _ = make_pair(server={"expected_fingerprint": None})
    handshake(c, s)
    events(c)
    wrong = self_signed_identity("impostor")[2]
    s.set_expected_fingerprint([wrong], 4.0)
    assert s.state == "failed"
    assert s.failure_reason == (
        f"peer certificate fingerprint {c_fp} does not match the signalled fingerprint {wrong}"
    )
    [failed] = events(s)
    assert failed == HandshakeFailed(s.failure_reason, 4.0)
    with pytest.raises(DtlsError, match="does not match"):
        s.srtp_keys()
    pump(c, s, 4.0)  # the peer reads epoch 1 by now: it hears close_notify
    assert c.state == "closed" and c.close_reason == "peer sent close_notify"
    assert s.next_timer() is None


def test_a_wrong_fingerprint_signalled_mid_handshake_is_refused_at_once() -> None:
    c, s, _, _ = make_pair(client={"expected_fingerprint": None})
    c.start(0.0)
    while c.peer_certificate is None:  # until the server's first flight is in
        assert step(c, s, 0.0)
    assert c.state == "handshaking"
    wrong = self_signed_identity("impostor")[2]
    c.set_expected_fingerprint(wrong, 0.5)
    assert c.state == "failed" and "does not match the signalled fingerprint" in c.failure_reason
    assert c.alerts_sent == ["fatal bad_certificate (42)"]  # in epoch 0: the server reads it
    pump(c, s, 0.5)
    assert s.failure_reason == "peer alert fatal bad_certificate (42)"


def test_the_right_fingerprint_signalled_mid_handshake_completes_it() -> None:
    c, s, _, s_fp = make_pair(client={"expected_fingerprint": None})
    c.start(0.0)
    while c.peer_certificate is None:
        assert step(c, s, 0.0)
    c.set_expected_fingerprint(s_fp, 0.5)
    pump(c, s, 0.5)
    assert c.state == s.state == "connected"
    assert events(c) == [HandshakeCompleted(DEFAULT_PROFILES[0], s_fp, 0.5)]


def test_no_fingerprint_by_the_deadline_times_out() -> None:
    c, s, _, _ = make_pair(server={"expected_fingerprint": None, "handshake_timeout": 5})
    handshake(c, s, 0.0)
    s.handle_timer(4.9)
    assert s.state == "awaiting_fingerprint"
    s.handle_timer(5.0)
    assert s.state == "failed"
    assert s.failure_reason.startswith(
        "DTLS handshake done, but no peer fingerprint signalled within 5 s"
    )
    [failed] = events(s)
    assert failed.timed_out
    pump(c, s, 5.0)
    assert c.state == "closed"


def test_a_changed_fingerprint_closes_an_established_association() -> None:
    c, s, _, _ = make_pair()
    handshake(c, s)
    events(s)
    s.set_expected_fingerprint(self_signed_identity("new")[2], 1.0)
    assert s.state == "closed" and "does not match" in s.close_reason
    [closed] = events(s)
    assert isinstance(closed, ConnectionClosed)
    assert s.srtp_keys().remote_key == c.srtp_keys().local_key  # given out already: as they were


def _fps(cert, *hashes: str, wrong: bool = False) -> list[str]:
    other = self_signed_identity("other")[0]
    return [fingerprint_of(other if wrong else cert, h) for h in hashes]


@pytest.mark.parametrize(
    ("signalled", "ok"),
    [
        (lambda cert: _fps(cert, "sha-256") + _fps(cert, "sha-512"), True),
        # RFC 8122 section 5.1: only the strongest hash counts.
        (lambda cert: _fps(cert, "sha-256", wrong=True) + _fps(cert, "sha-512"), True),
        (lambda cert: _fps(cert, "sha-256") + _fps(cert, "sha-512", wrong=True), False),
        (lambda cert: [], False),
    ],
)
def test_several_signalled_fingerprints(signalled: Callable, ok: bool) -> None:
    c_cert, c_key, _ = self_signed_identity("client")
    s_cert, s_key, _ = self_signed_identity("server")
    c = DtlsSrtpEndpoint("client", c_cert, c_key, expected_fingerprint=signalled(s_cert))
    s = DtlsSrtpEndpoint("server", s_cert, s_key, check_fingerprint=False)
    handshake(c, s)
    assert (c.state == "connected") is ok
    if ok:
        assert c.peer_fingerprint == fingerprint_of(s_cert, "sha-512")
    elif signalled(s_cert):
        assert "does not match the signalled fingerprint sha-512" in c.failure_reason
    else:
        assert c.failure_reason.startswith("the signalling carried no fingerprint")


def test_md5_alone_is_never_accepted() -> None:
    c_cert, c_key, _ = self_signed_identity("client")
    s_cert, s_key, _ = self_signed_identity("server")
    der = s_cert.public_bytes(serialization.Encoding.DER)
    md5 = FingerprintAttribute("md5", hashlib.md5(der).digest(), unchecked=True)
    c = DtlsSrtpEndpoint("client", c_cert, c_key, expected_fingerprint=[md5])
    s = DtlsSrtpEndpoint("server", s_cert, s_key, check_fingerprint=False)
    handshake(c, s)
    assert c.state == "failed" and "RFC 8122 section 5.1" in c.failure_reason
    assert c.failure_reason.endswith(md5.to_value())


def test_without_the_check_a_late_fingerprint_only_names_the_peer() -> None:
    c, s, c_fp, _ = make_pair(server={"expected_fingerprint": None, "check_fingerprint": False})
    handshake(c, s)
    assert s.state == "connected" and s.peer_fingerprint == c_fp
    wrong = self_signed_identity("impostor")[0]
    s.set_expected_fingerprint(fingerprint_of(wrong, "sha-384"), 1.0)
    assert s.state == "connected"
    assert s.peer_fingerprint.startswith("sha-384 ") and s.peer_fingerprint != c_fp


@pytest.mark.parametrize("hash_name", ["sha-1", "SHA-384", "sha-512"])
def test_other_signalled_hashes_are_compared_in_their_own_hash(hash_name: str) -> None:
    c_cert, c_key, _ = self_signed_identity("client")
    s_cert, s_key, _ = self_signed_identity("server")
    expected = fingerprint_of(s_cert, hash_name)
    c = DtlsSrtpEndpoint("client", c_cert, c_key, expected_fingerprint=expected)
    s = DtlsSrtpEndpoint(
        "server", s_cert, s_key, expected_fingerprint=fingerprint_of(c_cert, hash_name)
    )
    handshake(c, s)
    assert c.state == s.state == "connected"
    assert c.peer_fingerprint == expected


def test_an_endpoint_needs_sane_settings_and_a_well_formed_fingerprint() -> None:
    cert, key, fp = self_signed_identity()
    assert DtlsSrtpEndpoint("client", cert, key).state == "new"  # the fingerprint may come later
    with pytest.raises(LocalProtocolError):
        DtlsSrtpEndpoint("peer", cert, key, expected_fingerprint=fp)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        DtlsSrtpEndpoint("client", cert, key, expected_fingerprint=fp, mtu=200)
    with pytest.raises(LocalProtocolError):
        DtlsSrtpEndpoint("client", cert, key, expected_fingerprint=fp, srtp_profiles=("X",))
    with pytest.raises(SdpParseError):
        DtlsSrtpEndpoint("client", cert, key, expected_fingerprint="sha-256 00")
    with pytest.raises(SdpParseError, match="lower-case"):
        DtlsSrtpEndpoint("client", cert, key, expected_fingerprint=fp.lower())


@pytest.mark.parametrize("cookies", [True, False])
def test_no_common_profile_fails_with_the_offers_named(cookies: bool) -> None:
    c, s, _, _ = make_pair(
        {"srtp_profiles": ("SRTP_AES128_CM_SHA1_32",)},
        {"srtp_profiles": ("SRTP_AEAD_AES_128_GCM",), "cookies": cookies},
    )
    handshake(c, s)
    assert s.state == c.state == "failed"
    assert s.failure_reason == (
        "no SRTP protection profile in common: the peer offered SRTP_AES128_CM_SHA1_32, "
        "we offer SRTP_AEAD_AES_128_GCM"
    )
    assert s.alerts_sent == ["fatal handshake_failure (40)"]
    # OpenSSL took the alert the endpoint wrote itself: the record is well formed.
    assert c.failure_reason == "peer alert fatal handshake_failure (40)"
    with pytest.raises(DtlsError, match="no SRTP protection profile"):
        s.srtp_keys()


def _bare_openssl_server() -> SSL.Connection:
    """A DTLS server that offers no use_srtp at all: a peer the endpoint would never be."""
    cert, key, _ = self_signed_identity("bare")
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(cert)
    ctx.use_privatekey(key)
    ctx.set_options(SSL.OP_NO_QUERY_MTU)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *_: True)
    conn = SSL.Connection(ctx, None)
    conn.set_accept_state()
    conn.set_ciphertext_mtu(1200)
    return conn


def _drain(conn: SSL.Connection) -> bytes:
    out = b""
    while True:
        try:
            out += conn.bio_read(65536)
        except SSL.WantReadError:
            return out


def test_client_refuses_a_server_hello_without_use_srtp() -> None:
    cert, key, _ = self_signed_identity()
    c = DtlsSrtpEndpoint("client", cert, key, check_fingerprint=False)
    bare = _bare_openssl_server()
    c.start(0.0)
    server_error = None
    for _ in range(5):
        for d in c.datagrams_to_send():
            bare.bio_write(d)
            try:
                bare.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                server_error = exc
        out = _drain(bare)
        if out:
            c.receive_datagram(out, 0.0)
    assert c.state == "failed"
    assert c.failure_reason == (
        "no SRTP protection profile in common: the peer's ServerHello selected none of "
        + ", ".join(DEFAULT_PROFILES)
    )
    assert "alert handshake failure" in str(server_error)  # our own alert, read by OpenSSL


def test_null_profiles_are_never_offered_by_default_and_openssl_cannot_offer_them() -> None:
    cert, key, fp = self_signed_identity()
    with pytest.raises(LocalProtocolError, match="allow_null_profile"):
        DtlsSrtpEndpoint(
            "client", cert, key, expected_fingerprint=fp, srtp_profiles=("SRTP_NULL_SHA1_80",)
        )
    plain = DtlsSrtpEndpoint("client", cert, key, expected_fingerprint=fp)
    assert plain.offered_profiles == DEFAULT_PROFILES and not plain.null_profiles_offered
    # The defect switch asks for them; the OpenSSL in the venv does not know them.
    c, s, _, _ = make_pair({"allow_null_profile": True}, {"allow_null_profile": True})
    assert not c.null_profiles_offered and c.offered_profiles == DEFAULT_PROFILES
    handshake(c, s)
    assert c.state == s.state == "connected" and c.selected_profile == DEFAULT_PROFILES[0]


def test_a_client_offering_only_a_null_profile_is_refused() -> None:
    # A real ClientHello whose use_srtp offer is rewritten from 0x0001 to 0x0005 (NULL_SHA1_80).
    c, s, _, _ = make_pair({"srtp_profiles": ("SRTP_AES128_CM_SHA1_80",)}, {"cookies": False})
    c.start(0.0)
    [hello] = c.datagrams_to_send()
    offer = b"\x00\x0e\x00\x05\x00\x02\x00\x01\x00"  # type 14, length 5, one profile, no MKI
    assert hello.count(offer) == 1
    s.receive_datagram(hello.replace(offer, offer[:7] + b"\x05\x00"), 0.0)
    assert s.peer_offered_profiles == ("SRTP_NULL_SHA1_80",)
    assert s.state == "failed"
    assert s.failure_reason == (
        "no SRTP protection profile in common: the peer offered SRTP_NULL_SHA1_80, we offer "
        + ", ".join(DEFAULT_PROFILES)
    )


def test_negotiation_verdicts() -> None:
    offered = ("SRTP_AES128_CM_SHA1_80",)
    assert negotiation_problem("client", offered[0], offered, None, allow_null=False) is None
    reason, alert = negotiation_problem(
        "client", "SRTP_NULL_SHA1_80", offered, None, allow_null=False
    )
    assert (reason, alert) == ("the peer selected SRTP_NULL_SHA1_80, which does not encrypt", 71)
    reason, alert = negotiation_problem(
        "client", "SRTP_NULL_SHA1_80", offered, None, allow_null=True
    )
    assert alert == 47 and "which we did not offer" in reason
    nulls = (*offered, "SRTP_NULL_SHA1_80")
    assert negotiation_problem("client", nulls[1], nulls, None, allow_null=True) is None
    reason, _ = negotiation_problem("server", "", offered, (), allow_null=False)
    assert "the peer offered no use_srtp extension" in reason


def test_client_hello_offer_is_read() -> None:
    c, _, _, _ = make_pair()
    c.start(0.0)
    [hello] = c.datagrams_to_send()
    rec = record(hello)
    assert client_hello_srtp_profiles(rec) == (0x0001, 0x0007, 0x0008, 0x0002)
    for cut in range(len(rec.fragment)):  # never raises
        assert client_hello_srtp_profiles(replace(rec, fragment=rec.fragment[:cut])) is None
    assert client_hello_srtp_profiles(replace(rec, content_type=23)) is None
    assert client_hello_srtp_profiles(replace(rec, epoch=1)) is None
    use_srtp = b"\x00\x0e\x00\x0b\x00\x08"  # type 14, length 11, four profiles
    assert hello.count(use_srtp) == 1
    no_srtp = hello.replace(use_srtp, b"\x00\x63" + use_srtp[2:])  # now an unknown extension
    assert client_hello_srtp_profiles(record(no_srtp)) == ()


# -- loss, time and garbage ---------------------------------------------------------------------


def test_a_lost_server_flight_is_retransmitted_on_the_timer() -> None:
    c, s, _, _ = make_pair()
    lost: list[Batch] = []

    def drop_server_hello(name: str, batch: Batch) -> bool:
        if name == "server" and not lost and (22, 2) in record_types(batch):
            lost.append(batch)
            return True
        return False

    took = run_with_timers(c, s, drop_server_hello, limit=4.0)
    assert lost and c.state == s.state == "connected"
    assert c.retransmissions + s.retransmissions >= 1
    assert 0.9 < took < 3.0
    assert c.srtp_keys().local_key == s.srtp_keys().remote_key


def test_a_lost_final_flight_is_resent_by_the_connected_server() -> None:
    c, s, _, _ = make_pair()
    finals: list[Batch] = []

    def drop_first_server_finished(name: str, batch: Batch) -> bool:
        if name == "server" and any(t == 20 for t, _ in record_types(batch)):
            finals.append(batch)
            return len(finals) == 1
        return False

    run_with_timers(c, s, drop_first_server_finished, limit=4.0)
    assert c.state == s.state == "connected"
    # The server was done when its last flight was lost: it resent it when the client's
    # retransmitted Finished reached it, on the post-handshake read path.
    assert len(finals) == 2 and c.retransmissions >= 1 and s.retransmissions == 0
    assert c.srtp_keys().local_key == s.srtp_keys().remote_key


def test_handshake_deadline_on_the_callers_clock() -> None:
    c, _, _, _ = make_pair(client={"handshake_timeout": 10.0})
    c.start(100.0)
    assert c.next_timer() is not None and c.next_timer() <= 101.5
    c.handle_timer(105.0)  # OpenSSL's own timer runs on real time: nothing is due for it yet
    assert c.state == "handshaking" and c.retransmissions == 0
    c.handle_timer(110.0)
    assert c.state == "failed"
    assert c.failure_reason.startswith("no DTLS handshake within 10 s")
    assert c.next_timer() is None


def _garbage(rng: random.Random) -> list[bytes]:
    out = [b"", b"\x16", b"\x16" * 12, b"\x80\x00" + bytes(20), b"\x00\x01" + bytes(18)]
    out += [bytes([22]) + rng.randbytes(rng.randrange(0, 300)) for _ in range(40)]
    for _ in range(20):  # headers that frame, with random content
        n = rng.randrange(0, 200)
        head = bytes([22, 0xFE, 0xFD, 0, 0]) + rng.randbytes(6) + n.to_bytes(2)
        out.append(head + rng.randbytes(n))
    out.append(bytes([22]) + rng.randbytes(70000))
    return out


@pytest.mark.parametrize("victim", ["client", "server"])
@pytest.mark.parametrize("stage", [0, 1, 2, 3, 4, 99])
def test_garbage_never_raises_and_does_not_stop_a_handshake(victim: str, stage: int) -> None:
    """Garbage before each round of the handshake (99: once it is over) changes nothing."""
    rng = random.Random(f"{victim}{stage}")
    c, s, _, _ = make_pair()
    c.start(0.0)
    target = c if victim == "client" else s
    if stage == 99:
        pump(c, s, 0.0)
    for i in range(100):
        if i == stage or (stage == 99 and i == 0):
            assert target.state in ("new", "handshaking", "connected")
            for g in _garbage(rng):
                target.receive_datagram(g, 0.0)
            for cut in range(0, 220, 7):  # truncated copies of a record
                target.receive_datagram(_rec(200)[:cut], 0.0)
        if not step(c, s, 0.0) and i > stage:
            break
    assert c.state == s.state == "connected", (c.failure_reason, s.failure_reason)
    assert target.dropped + target.malformed > 0
    assert c.srtp_keys().local_key == s.srtp_keys().remote_key


def test_hostile_handshake_content_fails_with_a_reason_not_a_traceback() -> None:
    c, _, _, _ = make_pair()
    c.start(0.0)
    c.datagrams_to_send()
    # A well-framed ServerHello fragment full of nonsense: OpenSSL must refuse it.
    body = bytes([2]) + (40).to_bytes(3) + bytes(2) + bytes(3) + (40).to_bytes(3) + b"\xff" * 40
    c.receive_datagram(bytes([22, 0xFE, 0xFD]) + bytes(8) + len(body).to_bytes(2) + body, 0.0)
    assert c.state == "failed" and c.failure_reason.startswith("DTLS handshake error: ")
    assert c.alerts_sent  # OpenSSL told the peer
    c.receive_datagram(b"\x16" + bytes(40), 0.0)
    assert c.dropped == 1


def test_secrets_never_show_in_repr() -> None:
    c, s, _, _ = make_pair()
    handshake(c, s)
    keys = c.srtp_keys()
    assert isinstance(keys, SrtpKeys)
    shown = " ".join([repr(keys), str(keys), repr(c), repr(s), repr(events(c)), repr(events(s))])
    for secret in (keys.local_key, keys.local_salt, keys.remote_key, keys.remote_salt):
        for form in (secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()):
            assert form not in shown
        assert repr(secret) not in shown
    for key, salt in ((keys.local_key, keys.local_salt), (keys.remote_key, keys.remote_salt)):
        assert base64.b64encode(key + salt).decode() not in shown
    assert "16+14 octets" in repr(keys)
