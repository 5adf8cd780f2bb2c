"""DTLS-SRTP in a capture: the tracker on real handshakes, the keys against OpenSSL's exporter.

pyOpenSSL runs real handshakes in memory (tests/codec/dtls_pair.py); the datagrams are fed to
the tracker as a capture would give them, and its key log is what an endpoint's SSLKEYLOGFILE
would hold. The SRTP keys derived from the key log and the capture must equal what both
connections export (`export_keying_material(b"EXTRACTOR-dtls_srtp", ...)`), for each PRF hash,
with and without extended master secret, for DTLS 1.0 and for the GCM profiles.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from confsec.analyze.dtls import (
    AssociationKeys,
    DtlsAssociation,
    DtlsAssociationTracker,
    KeyLog,
    NoDtlsKeys,
    association_keys,
    derive_srtp_keys,
    judge_certificate,
    parse_keylog,
    prf_hash,
    srtp_suite,
    tls_prf,
)
from confsec.media.srtp import profile_for

pytest.importorskip("OpenSSL")
from tests.codec.dtls_pair import C2S, Handshake, handshake, self_signed

CLIENT = ("192.0.2.10", 50000)
SERVER = ("198.51.100.20", 40000)


def feed(datagrams: list[tuple[str, bytes]], tracker: DtlsAssociationTracker | None = None):
    t = tracker or DtlsAssociationTracker()
    for i, (way, data) in enumerate(datagrams):
        src, dst = (CLIENT, SERVER) if way == C2S else (SERVER, CLIENT)
        t.feed(float(i), src, dst, data)
    return t


def only(t: DtlsAssociationTracker) -> DtlsAssociation:
    assert len(t.associations) == 1, t.associations
    return t.associations[0]


def exported(hs: Handshake, key_len: int, salt_len: int) -> tuple[bytes, bytes, bytes, bytes]:
    """RFC 5764 §4.2 order: client key, server key, client salt, server salt; both ends agree."""
    n = 2 * (key_len + salt_len)
    out = hs.client.export_keying_material(b"EXTRACTOR-dtls_srtp", n)
    assert out == hs.server.export_keying_material(b"EXTRACTOR-dtls_srtp", n)
    k, s = key_len, salt_len
    return out[:k], out[2 * k : 2 * k + s], out[k : 2 * k], out[2 * k + s :]


@pytest.fixture(scope="module")
def real() -> Handshake:
    return handshake()


# -- the tracker ------------------------------------------------------------------------------


def test_tracker_follows_a_real_handshake(real: Handshake) -> None:
    a = only(feed(real.datagrams))
    assert (a.client, a.server) == (CLIENT, SERVER)
    assert a.client_random == real.client.client_random()
    assert a.server_random == real.server.server_random()
    assert a.offered_profiles == (0x0001,) and a.selected_profile == 0x0001
    assert not a.null_cipher
    assert a.version == 0xFEFD
    assert a.cipher_suite == 0xC02C  # ECDHE-ECDSA-AES256-GCM-SHA384, OpenSSL's first choice
    assert a.cipher_suite in a.offered_suites
    assert a.extended_master_secret
    assert a.sides[CLIENT].certificates == (real.client_cert,)
    assert a.sides[SERVER].certificates == (real.server_cert,)
    assert a.completed and a.completed_at is not None
    assert a.sides[CLIENT].encrypted_handshake >= 1 and a.sides[SERVER].encrypted_handshake >= 1
    assert a.sides[CLIENT].messages[0] == "ClientHello"
    assert "ServerHello" in a.sides[SERVER].messages
    assert (a.malformed, a.notes, a.hello_verify_requests) == (0, [], 0)


def test_non_dtls_datagrams_are_counted_not_followed(real: Handshake) -> None:
    t = DtlsAssociationTracker()
    assert t.feed(0.0, CLIENT, SERVER, b"\x80\x00" + bytes(20)) is None  # RTP
    assert t.feed(0.0, CLIENT, SERVER, b"\x00\x01" + bytes(18)) is None  # STUN
    assert (t.not_dtls, t.associations) == (2, [])
    feed(real.datagrams, t)
    assert t.association(SERVER, CLIENT) is t.association(CLIENT, SERVER) is t.associations[0]


def test_hello_verify_request_keeps_one_association() -> None:
    hs = handshake(cookie=True)
    a = only(feed(hs.datagrams))
    assert a.hello_verify_requests == 1
    assert a.client_random == hs.client.client_random() and a.completed


def test_fragments_in_separate_datagrams_in_any_order() -> None:
    """MTU 300: each Certificate spans datagrams; each flight is fed backwards."""
    hs = handshake(mtu=300)
    flights: list[list[tuple[str, bytes]]] = []
    for item in hs.datagrams:
        if not flights or flights[-1][0][0] != item[0]:
            flights.append([])
        flights[-1].append(item)
    assert max(len(f) for f in flights) > 3
    a = only(feed([d for f in flights for d in reversed(f)]))
    assert a.sides[SERVER].certificates == (hs.server_cert,)
    assert a.sides[CLIENT].certificates == (hs.client_cert,)
    assert a.completed and a.malformed == 0


def test_a_refused_certificate_leaves_an_alert_and_no_completion() -> None:
    hs = handshake(client_accepts=False)
    a = only(feed(hs.datagrams))
    assert not a.completed and a.completed_at is None
    alerts = a.sides[CLIENT].alerts
    assert [(s.alert.level, s.alert.name) for s in alerts] == [(2, "unknown_ca")]


def test_a_new_handshake_on_the_same_flow_is_a_new_association() -> None:
    first, second = handshake(), handshake()
    t = feed(first.datagrams + first.datagrams[:1] + second.datagrams)  # with a retransmission
    assert [a.client_random for a in t.associations] == [
        first.client.client_random(),
        second.client.client_random(),
    ]
    assert all(a.completed for a in t.associations)
    assert t.association(CLIENT, SERVER) is t.associations[1]


# -- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "prf"),
    [
        ({}, "sha384"),
        ({"ems": False}, "sha384"),
        ({"ciphers": b"ECDHE-ECDSA-AES128-GCM-SHA256"}, "sha256"),
        ({"ciphers": b"ECDHE-ECDSA-AES128-GCM-SHA256", "ems": False}, "sha256"),
        ({"ciphers": b"ECDHE-ECDSA-CHACHA20-POLY1305"}, "sha256"),
        ({"dtls10": True}, "md5-sha1"),
        ({"profiles": b"SRTP_AEAD_AES_128_GCM"}, "sha384"),
        ({"profiles": b"SRTP_AEAD_AES_256_GCM"}, "sha384"),
        ({"profiles": b"SRTP_AES128_CM_SHA1_32"}, "sha384"),
    ],
)
def test_keys_from_the_key_log_equal_the_exporter(kwargs: dict, prf: str) -> None:
    hs = handshake(**kwargs)
    a = only(feed(hs.datagrams))
    assert a.extended_master_secret == kwargs.get("ems", True)
    assert prf_hash(a.version or 0, a.cipher_suite or 0) == prf
    log = parse_keylog("\n".join(hs.keylog))
    master = log.master_secret(a.client_random or b"")
    assert master is not None and master == hs.client.master_key()
    profile = a.selected_profile or 0
    suite, klen, slen = srtp_suite(profile)
    want = exported(hs, klen, slen)
    got = derive_srtp_keys(master, a.client_random or b"", a.server_random or b"", profile, prf)
    assert tuple(got) == want
    keys = association_keys(a, log)
    assert keys.prf_hash == prf and keys.suite == suite == profile_for(suite).name
    assert (keys.client.sender, keys.server.sender) == (CLIENT, SERVER)
    assert (keys.client.key, keys.client.salt, keys.server.key, keys.server.salt) == want
    assert keys.for_sender(SERVER) is keys.server and keys.for_sender(("x", 1)) is None
    sk = keys.client.as_srtp_key()
    assert (sk.suite, sk.key, sk.salt) == (suite, want[0], want[1])


USE_SRTP_80 = b"\x00\x0e\x00\x05\x00\x02\x00\x01\x00"  # use_srtp: AES128_CM_HMAC_SHA1_80


def _answer_with(profile: int, hs: Handshake) -> list[tuple[str, bytes]]:
    """The handshake with the ServerHello's use_srtp rewritten (OpenSSL offers no NULL
    profile; the tracker cannot check Finished, so the capture still reads as complete)."""
    chosen = USE_SRTP_80[:-3] + profile.to_bytes(2, "big") + b"\x00"
    out = [(w, d.replace(USE_SRTP_80, chosen) if w != C2S else d) for w, d in hs.datagrams]
    assert out != hs.datagrams
    return out


def test_a_null_profile_is_seen_and_keyed(real: Handshake) -> None:
    a = only(feed(_answer_with(0x0005, real)))
    assert a.selected_profile == 0x0005 and a.null_cipher
    assert any("not offered" in n for n in a.notes)  # the client offered only 0x0001
    keys = association_keys(a, parse_keylog("\n".join(real.keylog)))
    assert keys.null_cipher and keys.suite == "NULL_HMAC_SHA1_80"
    # the exporter does not depend on the profile, only on its lengths (16/14, as 0x0001)
    assert (keys.client.key, keys.client.salt) == exported(real, 16, 14)[:2]


def test_known_suite_names_and_profiles() -> None:
    assert srtp_suite(0x0001) == ("AES_CM_128_HMAC_SHA1_80", 16, 14)
    assert srtp_suite(0x0002) == ("AES_CM_128_HMAC_SHA1_32", 16, 14)
    assert srtp_suite(0x0005) == ("NULL_HMAC_SHA1_80", 16, 14)
    assert srtp_suite(0x0006) == ("NULL_HMAC_SHA1_32", 16, 14)
    assert srtp_suite(0x0007) == ("AEAD_AES_128_GCM", 16, 12)
    assert srtp_suite(0x0008) == ("AEAD_AES_256_GCM", 32, 12)
    assert prf_hash(0xFEFD, 0xC030) == "sha384" and prf_hash(0xFEFD, 0xCCA9) == "sha256"
    assert prf_hash(0xFEFD, 0x1301) is None  # a TLS 1.3 suite: no guess


def test_tls12_prf_known_answer() -> None:
    """The P_SHA256 test vector circulated on the IETF TLS list (used by several TLS stacks)."""
    out = tls_prf(
        bytes.fromhex("9bbe436ba940f017b17652849a71db35"),
        b"test label",
        bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"),
        100,
        "sha256",
    )
    assert out[:16].hex() == "e3f229ba727be17b8d122620557cd453"


def test_why_there_are_no_keys(real: Handshake) -> None:
    t = feed(real.datagrams[:1])  # the ClientHello only
    with pytest.raises(NoDtlsKeys, match="no ServerHello"):
        association_keys(only(t), parse_keylog("\n".join(real.keylog)))
    with pytest.raises(NoDtlsKeys, match="no CLIENT_RANDOM"):
        association_keys(only(feed(real.datagrams)), KeyLog())


def test_key_log_lines() -> None:
    cr, ms = "ab" * 32, "cd" * 48
    log = parse_keylog(
        f"# comment\nCLIENT_RANDOM {cr} {ms}\nCLIENT_RANDOM zz {ms}\n"
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {cr} {'00' * 32}\nCLIENT_RANDOM {cr[:-2]} {ms}\n"
        f"CLIENT_RANDOM {cr}\n"
    )
    assert len(log) == 1 and log.malformed == 3
    assert log.master_secret(bytes.fromhex(cr)) == bytes.fromhex(ms)


def test_no_secret_in_any_repr(real: Handshake) -> None:
    a = only(feed(real.datagrams))
    log = parse_keylog("\n".join(real.keylog))
    keys = association_keys(a, log)
    secrets = [real.client.master_key().hex(), keys.client.key.hex(), keys.server.key.hex()]
    secrets += [keys.client.salt.hex(), keys.server.salt.hex()]
    derived = derive_srtp_keys(
        real.client.master_key(), a.client_random or b"", a.server_random or b"", 1, "sha384"
    )
    texts = [repr(x) for x in (keys, keys.client, log, a, derived, keys.client.as_srtp_key())]
    texts += [str(NoDtlsKeys("x"))] + [f.sentence for f in judge_certificate(a, {})]
    for text in texts:
        assert not any(s in text or s.upper() in text for s in secrets), text
    assert keys.client.fingerprint in repr(keys.client)
    assert isinstance(keys, AssociationKeys)


# -- certificates against a=fingerprint -------------------------------------------------------


def _fp(der: bytes, name: str = "sha256") -> bytes:
    return hashlib.new(name, der).digest()


def test_certificates_match_the_signalled_fingerprints(real: Handshake) -> None:
    a = only(feed(real.datagrams))
    signalled = {
        CLIENT: [("sha-256", _fp(real.client_cert))],
        SERVER: [("md2", b"\x00"), ("SHA-1", _fp(real.server_cert, "sha1"))],
    }
    got = judge_certificate(a, signalled)
    assert [(f.role, f.address, f.outcome) for f in got] == [
        ("client", CLIENT, "matched"),
        ("server", SERVER, "matched"),
    ]
    assert got[1].hash_name == "SHA-1"


def test_a_fingerprint_mismatch_names_both_values(real: Handshake) -> None:
    a = only(feed(real.datagrams))
    stranger = self_signed("someone-else")[0]
    signalled = {
        CLIENT: [("sha-256", _fp(real.client_cert))],
        SERVER: [("sha-256", _fp(stranger))],
    }
    got = judge_certificate(a, signalled)
    server = got[1]
    assert server.outcome == "mismatch"
    want = ":".join(f"{b:02X}" for b in _fp(stranger))
    seen = ":".join(f"{b:02X}" for b in _fp(real.server_cert))
    assert (server.signalled, server.observed) == (want, seen)
    assert want in server.sentence and seen in server.sentence and "RFC 8122" in server.sentence


def test_certificates_not_visible_or_not_signalled(real: Handshake) -> None:
    a = only(feed(real.datagrams[:1]))  # ClientHello only: no certificate went by
    got = judge_certificate(a, {CLIENT: [("sha-256", b"\x01" * 32)]})
    assert [(f.address, f.outcome) for f in got] == [
        (CLIENT, "not-visible"),
        (SERVER, "not-signalled"),
    ]


# -- hostile captures -------------------------------------------------------------------------


def test_damaged_datagrams_are_counted_never_raised(real: Handshake) -> None:
    rng = random.Random(11)
    t = DtlsAssociationTracker()
    for _ in range(300):
        way, data = rng.choice(real.datagrams)
        data = bytearray(data[: rng.randrange(1, len(data) + 1)])
        for _ in range(rng.randrange(3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data[0] = 22 if data[0] < 20 or data[0] > 63 else data[0]
        src, dst = (CLIENT, SERVER) if way == C2S else (SERVER, CLIENT)
        t.feed(0.0, src, dst, bytes(data))
    assert t.malformed > 0
    assert sum(a.malformed for a in t.associations) > 0
    assert all(len(a.notes) <= 32 for a in t.associations)


def test_hostile_records_are_counted() -> None:
    t = DtlsAssociationTracker()

    def rec(body: bytes) -> bytes:
        return b"\x16\xfe\xfd" + bytes(8) + len(body).to_bytes(2, "big") + body

    huge = b"\x0b\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x01x"  # a 16 MiB Certificate
    a = t.feed(0.0, CLIENT, SERVER, rec(huge))
    assert a is not None and a.malformed == 1 and "handshake length" in a.notes[0]
    t.feed(0.0, CLIENT, SERVER, b"\x16\xfe\xfd" + bytes(8) + b"\xff\xff")  # oversize record
    assert t.malformed == 1 and a.malformed == 2
    for seq in range(40):  # fragments of 40 messages, none complete: bounded buffers
        piece = b"\x0b\x00\x01\x00" + seq.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x01x"
        t.feed(0.0, CLIENT, SERVER, rec(piece))
    side = a.sides[CLIENT]
    assert side.reassembler.pending == 8 and side.reassembler.dropped == 32
    t.feed(0.0, CLIENT, SERVER, rec(b"\x01\x00\x00\x02\x00\x63\x00\x00\x00\x00\x00\x02\xfe\xfd"))
    assert "random: needs 32 bytes, 0 left" in a.notes[-1]  # a ClientHello cut short


def test_the_association_limit_is_counted(real: Handshake) -> None:
    t = DtlsAssociationTracker(max_associations=2)
    for port in range(5):
        t.feed(0.0, ("10.0.0.1", port), SERVER, real.datagrams[0][1])
    assert len(t.associations) == 2 and t.dropped == 3
