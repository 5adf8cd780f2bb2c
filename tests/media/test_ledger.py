"""The key-stream ledger: reuse across participants, directions and media; fan-out; secrecy."""

from __future__ import annotations

import base64
import threading

import pytest

from confsec.behaviour.checks import no_key_stream_reuse
from confsec.errors import LocalProtocolError, NonConformance
from confsec.media import rtcp
from confsec.media.ledger import (
    FIRST_INDEXES,
    SAMPLE_STRIDE,
    KeyStreamLedger,
    StreamId,
    key_fingerprint,
    packet_fingerprint,
)
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_receiver, new_sender

SUITE = "AES_CM_128_HMAC_SHA1_80"
K1, S1 = bytes(range(16)), bytes(range(16, 30))
K2, S2 = bytes(range(30, 46)), bytes(range(46, 60))

A_SEND = StreamId("alice", "focus", "audio", "send")
B_SEND = StreamId("bob", "focus", "audio", "send")
A_RECV = StreamId("alice", "focus", "audio", "recv")
A_VIDEO = StreamId("alice", "focus", "video", "send")
F_TO_A = StreamId("focus", "alice", "audio", "send")
F_TO_B = StreamId("focus", "bob", "audio", "send")
B_RECV = StreamId("bob", "focus", "audio", "recv")
C_RECV = StreamId("carol", "focus", "audio", "recv")


def fp(n: int) -> bytes:
    return packet_fingerprint(n.to_bytes(4, "big"))


def feed(ledger: KeyStreamLedger, stream: StreamId, ssrc: int, indexes, salt: int = 0) -> None:
    for i in indexes:
        ledger.observe(stream, ssrc, i, fp(i * 7919 + salt))


def kinds(ledger: KeyStreamLedger) -> list[str]:
    return [f.kind for f in ledger.findings()]


def test_distinct_keys_no_findings() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 1)
    ledger.register(B_SEND, SUITE, K2, S2, 1)
    feed(ledger, A_SEND, 1, range(10))
    feed(ledger, B_SEND, 1, range(10))
    assert ledger.findings() == []


def test_reuse_across_participants_confirmed() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 0x1111)
    ledger.register(B_SEND, SUITE, K1, S1, 0x1111)
    feed(ledger, A_SEND, 0x1111, range(10), salt=1)
    feed(ledger, B_SEND, 0x1111, range(5, 15), salt=2)
    (f,) = ledger.findings()
    assert f.kind == "keystream-reuse" and f.confirmed
    assert f.streams == tuple(sorted((A_SEND, B_SEND)))
    assert f.ssrc == 0x1111 and f.key_fingerprint == key_fingerprint(K1, S1)
    assert "two-time pad" in f.sentence and "0x00001111" in f.sentence


def test_reuse_across_directions_without_overlap_is_still_reuse() -> None:
    # Alice sends with the key the focus uses towards her, same SSRC, indexes never overlap:
    # no proof that they are one stream, so it is reported (not confirmed).
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 5)
    ledger.register(F_TO_A, SUITE, K1, S1, 5)
    feed(ledger, A_SEND, 5, range(0, 10))
    feed(ledger, F_TO_A, 5, range(1000, 1010))
    (f,) = ledger.findings()
    assert f.kind == "keystream-reuse" and not f.confirmed
    assert "no common packet" in f.sentence


def test_reuse_before_any_packet() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 5)
    ledger.register(B_SEND, SUITE, K1, S1, 5)
    assert kinds(ledger) == ["keystream-reuse"]


def test_audio_video_same_key_same_ssrc() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 9)
    ledger.register(A_VIDEO, SUITE, K1, S1, 9)
    feed(ledger, A_SEND, 9, range(3), salt=1)
    feed(ledger, A_VIDEO, 9, range(3), salt=2)
    assert kinds(ledger) == ["keystream-reuse"]


def test_audio_video_same_key_different_ssrc_is_weaker_finding() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 9)
    ledger.register(A_VIDEO, SUITE, K1, S1, 10)
    (f,) = ledger.findings()
    assert f.kind == "key-shared-different-ssrc" and f.ssrc is None
    assert f.streams == (A_SEND, A_VIDEO)
    assert "0x00000009" in f.sentence and "0x0000000a" in f.sentence


def test_master_key_reused_with_other_salt() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 1)
    ledger.register(B_SEND, SUITE, K1, S2, 2)
    (f,) = ledger.findings()
    assert f.kind == "master-key-reused"
    assert key_fingerprint(K1, S1) in f.sentence and key_fingerprint(K1, S2) in f.sentence


def test_fan_out_of_identical_packets_is_one_stream() -> None:
    # The focus sends the common (group-keyed) stream; Bob and Carol receive the same packets.
    ledger = KeyStreamLedger()
    common = StreamId("focus", "all", "audio", "send", "common")
    for s in (common, B_RECV, C_RECV):
        ledger.register(s, SUITE, K1, S1)
    feed(ledger, common, 77, range(0, 20))
    feed(ledger, B_RECV, 77, range(0, 20))
    feed(ledger, C_RECV, 77, range(5, 15))  # joined late, left early: a subset is fine
    assert ledger.findings() == []


def test_fan_out_with_one_different_packet_is_reuse() -> None:
    ledger = KeyStreamLedger()
    for s in (F_TO_A, F_TO_B):
        ledger.register(s, SUITE, K1, S1, 3)
    feed(ledger, F_TO_A, 3, range(10))
    feed(ledger, F_TO_B, 3, range(9))
    ledger.observe(F_TO_B, 3, 9, b"different")
    (f,) = ledger.findings()
    assert f.confirmed and f.streams == (F_TO_A, F_TO_B)


def test_sender_and_its_receiver_are_one_stream() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1)
    ledger.register(StreamId("focus", "alice", "audio", "recv"), SUITE, K1, S1)
    feed(ledger, A_SEND, 42, range(100))
    feed(ledger, StreamId("focus", "alice", "audio", "recv"), 42, range(3, 90))
    assert ledger.findings() == []


def test_late_joiner_overlaps_through_sampled_indexes() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1)
    ledger.register(B_RECV, SUITE, K1, S1)
    feed(ledger, A_SEND, 1, range(0, 1000))
    feed(ledger, B_RECV, 1, range(500, 1000))  # saw nothing of Alice's first 64 packets
    assert ledger.findings() == []


def test_memory_is_bounded_and_observe_says_when_to_stop() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1)
    wanted = [ledger.observe(A_SEND, 1, i, fp(i)) for i in range(10_000)]
    stop = wanted.index(False)
    assert stop > FIRST_INDEXES
    kept = ledger._current[A_SEND].ssrcs[1]
    assert len(kept) <= 2 * FIRST_INDEXES
    assert all(i < FIRST_INDEXES or i % SAMPLE_STRIDE == 0 for i in kept)


def test_rekey_to_old_key_is_reuse_within_one_stream_id() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 1)
    feed(ledger, A_SEND, 1, range(10), salt=1)
    ledger.register(A_SEND, SUITE, K2, S2, 1)  # rekey: fine
    assert ledger.findings() == []
    ledger.register(A_SEND, SUITE, K1, S1, 1)  # back to the old key
    feed(ledger, A_SEND, 1, range(10), salt=2)
    (f,) = ledger.findings()
    assert f.kind == "keystream-reuse" and f.confirmed and f.streams == (A_SEND,)


def test_same_stream_restarting_its_sequence_under_same_key() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 1)
    feed(ledger, A_SEND, 1, range(10), salt=1)
    ledger.register(A_SEND, SUITE, K1, S1, 1)  # re-INVITE keeps the key, sender restarts
    feed(ledger, A_SEND, 1, range(10), salt=2)
    (f,) = ledger.findings()
    assert f.confirmed and "twice" in f.sentence


def test_unregistered_stream_is_a_suite_bug() -> None:
    with pytest.raises(LocalProtocolError):
        KeyStreamLedger().observe(A_SEND, 1, 1, b"x")


def test_secrets_never_in_reports() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 1)
    ledger.register(B_SEND, SUITE, K1, S1, 1)
    ledger.register(A_VIDEO, SUITE, K1, S2, 2)
    ledger.register(A_RECV, SUITE, K1, S1, 3)
    texts = [repr(ledger), str(ledger)]
    for f in ledger.findings():
        texts += [repr(f), str(f), f.sentence]
    for row in ledger.entries():
        texts += [repr(row), str(row.as_dict())]
    texts += [repr(e) for e in ledger._entries]
    blob = "\n".join(texts)
    for secret in (K1, S1, S2, K1 + S1, K1 + S2):
        assert secret.hex() not in blob.lower()
        assert secret.hex().upper() not in blob
        assert base64.b64encode(secret).decode() not in blob
        assert repr(secret) not in blob
    assert {f.kind for f in ledger.findings()} == {
        "keystream-reuse",
        "key-shared-different-ssrc",
        "master-key-reused",
    }


def test_keys_for_evidence_has_the_secrets() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 1)
    (row,) = ledger.keys_for_evidence()
    assert row["key"] == K1 and row["salt"] == S1
    assert row["inline"] == base64.b64encode(K1 + S1).decode()
    assert row["stream"] == str(A_SEND) and row["ssrcs"] == [1]


def test_entries_rows() -> None:
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1)
    ledger.bind_ssrc(A_SEND, 0xBEEF)
    feed(ledger, A_SEND, 0xBEEF, range(3))
    (row,) = ledger.entries()
    assert row.stream == A_SEND and row.suite == SUITE and row.ssrcs == (0xBEEF,)
    assert row.packets_seen == 3 and row.key_fingerprint == key_fingerprint(K1, S1)
    d = row.as_dict()
    assert d["stream"] == "alice -> focus audio" and d["ssrcs"] == ["0x0000beef"]


def test_stream_id_text() -> None:
    assert str(StreamId("bob", "mixer", "video", "recv", "m=1")) == "bob <- mixer video [m=1]"


def test_thread_safety() -> None:
    ledger = KeyStreamLedger()
    streams = [StreamId(f"p{i}", "focus", "audio", "send") for i in range(8)]
    for i, s in enumerate(streams):
        ledger.register(s, SUITE, bytes([i]) * 16, S1)

    def work(s: StreamId) -> None:
        for i in range(2000):
            ledger.observe(s, 1, i, fp(i))
            if i % 500 == 0:
                ledger.findings()
                ledger.entries()

    threads = [threading.Thread(target=work, args=(s,)) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.findings() == []
    assert all(row.packets_seen == 2000 for row in ledger.entries())


def test_through_real_srtp_sessions_fan_out_and_reuse() -> None:
    """End to end through libsrtp: a forwarded stream is fine, a shared key is not."""
    ledger = KeyStreamLedger()
    tx = new_sender(ledger, F_TO_A, SUITE, K1, S1)
    rx_a = new_receiver(ledger, StreamId("alice", "focus", "audio", "recv"), SUITE, K1, S1)
    rx_b = new_receiver(ledger, B_RECV, SUITE, K1, S1)
    for seq in range(40):
        srtp = tx.protect(build_rtp(0, seq, 160 * seq, 0x42, bytes([seq]) * 160))
        rx_a.unprotect(srtp)
        rx_b.unprotect(srtp)  # the same packet fanned out
    assert ledger.findings() == []
    # Now Bob's own sender is (wrongly) given the same key and picks the same SSRC.
    bob = new_sender(ledger, B_SEND, SUITE, K1, S1)
    for seq in range(40):
        bob.protect(build_rtp(0, seq, 0, 0x42, b"bob speaking" * 10))
    (f,) = ledger.findings()
    assert f.confirmed and B_SEND in f.streams and F_TO_A in f.streams


# -- SRTCP: a key stream of its own (RFC 3711 4.3.2) ---------------------------------------------


def _report(ssrc: int, cname: str) -> bytes:
    return rtcp.compound(rtcp.receiver_report(ssrc), rtcp.sdes_cname(ssrc, cname))


def test_one_sender_protecting_rtp_and_rtcp_under_one_key_is_not_reuse() -> None:
    """SRTP and SRTCP of one stream share the master key and the SSRC, and their indexes run
    over the same small numbers (sequence 1.. and SRTCP index 1..), yet RFC 3711 4.3.2 gives
    each its own session keys: one key stream each, no two-time pad. Neither the sender nor
    its receiver (which sees the very same packets) makes a finding."""
    ledger = KeyStreamLedger()
    tx = new_sender(ledger, A_SEND, SUITE, K1, S1)
    rx = new_receiver(ledger, StreamId("focus", "alice", "audio", "recv"), SUITE, K1, S1)
    for n in range(1, 6):
        srtp = tx.protect(build_rtp(0, n, 160 * n, 0x42, bytes([n]) * 160))
        srtcp = tx.protect_rtcp(_report(0x42, f"alice-{n}@confsec"))
        rx.unprotect(srtp)
        assert rx.try_unprotect_rtcp(srtcp) is not None
    entry = ledger._current[A_SEND]
    assert set(entry.ssrcs[0x42]) == set(entry.rtcp[0x42]) == set(range(1, 6))
    assert ledger.findings() == []


def test_two_senders_sending_srtcp_on_one_key_and_ssrc_are_reuse_named_srtcp() -> None:
    """Two streams whose SRTCP runs under one (key, salt, SSRC) encrypt their reports with one
    key stream: SRTCP index 1 of each is a two-time pad. The finding says it is SRTCP, and
    R4's check fails on it."""
    ledger = KeyStreamLedger()
    alice = new_sender(ledger, A_SEND, SUITE, K1, S1)
    bob = new_sender(ledger, B_SEND, SUITE, K1, S1)
    for _ in range(3):
        alice.protect_rtcp(_report(0x42, "alice@confsec"))
        bob.protect_rtcp(_report(0x42, "bob@confsec"))
    (f,) = ledger.findings()
    assert f.kind == "keystream-reuse" and f.confirmed and f.ssrc == 0x42
    assert f.streams == (A_SEND, B_SEND)
    assert "(SRTCP)" in f.sentence and "two-time pad" in f.sentence
    assert "0x00000042" in f.sentence and key_fingerprint(K1, S1) in f.sentence
    with pytest.raises(NonConformance, match="SRTCP"):
        no_key_stream_reuse(ledger, "participants")


def test_srtp_and_srtcp_reuse_are_reported_apart() -> None:
    """Fingerprints recorded for SRTP index n and SRTCP index n of one stream never meet: a
    stream that restarts its SRTP under the same key is reported on SRTP alone."""
    ledger = KeyStreamLedger()
    ledger.register(A_SEND, SUITE, K1, S1, 7)
    feed(ledger, A_SEND, 7, range(5), salt=1)
    for i in range(5):
        ledger.observe(A_SEND, 7, i, fp(i * 31 + 5), rtcp=True)
    assert ledger.findings() == []
    ledger.observe(A_SEND, 7, 2, fp(999))  # the same SRTP index, another packet
    (f,) = ledger.findings()
    assert f.confirmed and "SRTCP" not in f.sentence and "twice" in f.sentence
