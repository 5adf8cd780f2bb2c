"""The SRTP wrappers and factory: profiles, counters, classification, ledger registration."""

from __future__ import annotations

import base64

import pytest

from confsec.errors import ConfsecError, LocalProtocolError, RemoteProtocolError
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import RtpParseError, build_rtp
from confsec.media.srtp import (
    AUTH_FAILED,
    MALFORMED,
    OK,
    PROFILES,
    REPLAYED,
    SrtpAuthError,
    SrtpReplayError,
    UnsupportedSuite,
    new_master_key,
    new_receiver,
    new_sender,
    new_session,
    profile_for,
)

SEND = StreamId("alice", "focus", "audio", "send")
RECV = StreamId("focus", "alice", "audio", "recv")
KEY = bytes(range(16))
SALT = bytes(range(100, 114))


def pair(suite: str = "AES_CM_128_HMAC_SHA1_80"):
    ledger = KeyStreamLedger()
    key, salt = new_master_key(suite)
    return (
        ledger,
        new_sender(ledger, SEND, suite, key, salt),
        new_receiver(ledger, RECV, suite, key, salt),
    )


def test_profiles() -> None:
    assert set(PROFILES) == {
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AEAD_AES_128_GCM",
        "AEAD_AES_256_GCM",
    }
    gcm = profile_for("AEAD_AES_128_GCM")
    assert (gcm.key_len, gcm.salt_len, gcm.auth_tag_len, gcm.aead) == (16, 12, 16, True)
    cm32 = profile_for("AES_CM_128_HMAC_SHA1_32")
    assert (cm32.key_len, cm32.salt_len, cm32.auth_tag_len, cm32.master_len) == (16, 14, 4, 30)
    assert profile_for("SRTP_AES128_CM_HMAC_SHA1_80") is PROFILES["AES_CM_128_HMAC_SHA1_80"]


@pytest.mark.parametrize(
    "suite", ["NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32", "F8_128_HMAC_SHA1_80", ""]
)
def test_unsupported_suites(suite: str) -> None:
    with pytest.raises(UnsupportedSuite) as info:
        profile_for(suite)
    assert isinstance(info.value, ConfsecError)
    assert not isinstance(info.value, RemoteProtocolError)


def test_null_suite_message() -> None:
    with pytest.raises(UnsupportedSuite, match="does not encrypt"):
        new_sender(KeyStreamLedger(), SEND, "NULL_HMAC_SHA1_80", KEY, SALT)


@pytest.mark.parametrize("suite", sorted(PROFILES))
def test_round_trip_and_tag_length(suite: str) -> None:
    _, tx, rx = pair(suite)
    rtp = build_rtp(0, 1, 160, 0x1234, b"\xff" * 160)
    srtp = tx.protect(rtp)
    assert len(srtp) == len(rtp) + PROFILES[suite].auth_tag_len
    assert rx.unprotect(srtp) == rtp
    assert (tx.packets, rx.ok, rx.last_status) == (1, 1, OK)


def test_wrong_lengths_and_directions_are_local_errors() -> None:
    ledger = KeyStreamLedger()
    with pytest.raises(LocalProtocolError, match="14-octet salt"):
        new_sender(ledger, SEND, "AES_CM_128_HMAC_SHA1_80", KEY, SALT[:12])
    with pytest.raises(LocalProtocolError):
        new_sender(ledger, RECV, "AES_CM_128_HMAC_SHA1_80", KEY, SALT)
    with pytest.raises(LocalProtocolError):
        new_receiver(ledger, SEND, "AES_CM_128_HMAC_SHA1_80", KEY, SALT)
    assert len(ledger) == 0  # nothing registered for a refused session


def test_protect_refusals_are_local_errors() -> None:
    _, tx, _ = pair()
    with pytest.raises(LocalProtocolError):
        tx.protect(b"\x80\x00")
    with pytest.raises(LocalProtocolError, match="too long"):
        tx.protect(build_rtp(0, 1, 2, 3, b"x" * 1500))
    packet = build_rtp(0, 1, 2, 3, b"x")
    tx.protect(packet)
    with pytest.raises(LocalProtocolError, match="replay"):
        tx.protect(packet)  # libsrtp refuses to encrypt an index twice


def test_allow_repeat_tx_for_defect_switches() -> None:
    ledger = KeyStreamLedger()
    tx = new_sender(ledger, SEND, "AES_CM_128_HMAC_SHA1_80", KEY, SALT, allow_repeat_tx=True)
    a = tx.protect(build_rtp(0, 1, 2, 3, b"first"))
    b = tx.protect(build_rtp(0, 1, 2, 3, b"other"))
    assert a != b
    findings = ledger.findings()
    assert [f.kind for f in findings] == ["keystream-reuse"]
    assert findings[0].confirmed and findings[0].streams == (SEND,)


def test_try_unprotect_classifies_without_raising() -> None:
    _, tx, rx = pair()
    good = tx.protect(build_rtp(0, 5, 0, 9, b"a" * 20))
    assert rx.try_unprotect(good) is not None and rx.last_status == OK
    assert rx.try_unprotect(good) is None and rx.last_status == REPLAYED
    bad = bytearray(tx.protect(build_rtp(0, 6, 0, 9, b"a" * 20)))
    bad[-1] ^= 1
    assert rx.try_unprotect(bytes(bad)) is None and rx.last_status == AUTH_FAILED
    assert rx.try_unprotect(b"\x80\x00\x00") is None and rx.last_status == MALFORMED
    assert rx.try_unprotect(b"\x40" + b"\0" * 40) is None and rx.last_status == MALFORMED
    assert rx.try_unprotect(b"\x80" * 2000) is None and rx.last_status == MALFORMED
    assert rx.counters() == {"ok": 1, "auth_failed": 1, "replayed": 1, "malformed": 3}


def test_unprotect_raises_typed_errors() -> None:
    _, tx, rx = pair()
    good = tx.protect(build_rtp(0, 5, 0, 9, b"a" * 20))
    rx.unprotect(good)
    with pytest.raises(SrtpReplayError) as replay:
        rx.unprotect(good)
    assert isinstance(replay.value, RemoteProtocolError)
    with pytest.raises(SrtpAuthError, match="authentication failure"):
        rx.unprotect(build_rtp(0, 6, 0, 9, b"plain RTP, no tag at all"))
    with pytest.raises(RtpParseError, match="too short"):
        rx.unprotect(b"\x80\x00")
    with pytest.raises(RtpParseError, match="version"):
        rx.unprotect(b"\x00" * 40)
    with pytest.raises(RtpParseError, match="CSRC count"):
        rx.unprotect(b"\x8f" + b"\0" * 30)


def test_factory_registers_with_ledger() -> None:
    ledger, tx, rx = pair()
    for seq in range(3):
        rx.unprotect(tx.protect(build_rtp(0, seq, 0, 0xAB, b"z" * 20)))
    rows = {row.stream: row for row in ledger.entries()}
    assert set(rows) == {SEND, RECV}
    assert rows[SEND].ssrcs == (0xAB,) and rows[SEND].packets_seen == 3
    assert rows[RECV].ssrcs == (0xAB,) and rows[RECV].packets_seen == 3
    assert rows[SEND].key_fingerprint == rows[RECV].key_fingerprint
    assert ledger.findings() == []  # one stream seen from both ends


def test_new_session_from_crypto_attribute_like() -> None:
    class Crypto:
        suite = "AEAD_AES_128_GCM"
        key = bytes(16)
        salt = bytes(12)

    ledger = KeyStreamLedger()
    tx = new_session(ledger, SEND, Crypto())
    rx = new_session(ledger, RECV, Crypto())
    assert rx.unprotect(tx.protect(build_rtp(0, 1, 2, 3, b"q"))).endswith(b"q")


def test_reprs_hide_keys() -> None:
    ledger = KeyStreamLedger()
    tx = new_sender(ledger, SEND, "AES_CM_128_HMAC_SHA1_80", KEY, SALT)
    rx = new_receiver(ledger, RECV, "AES_CM_128_HMAC_SHA1_80", KEY, SALT)
    for text in (repr(tx), repr(rx), str(tx), str(rx), repr(ledger)):
        assert KEY.hex() not in text
        assert base64.b64encode(KEY + SALT).decode() not in text
        assert "alice" in text or "KeyStreamLedger" in text


def test_new_master_key_is_fresh() -> None:
    a = new_master_key("AEAD_AES_256_GCM")
    b = new_master_key("AEAD_AES_256_GCM")
    assert (len(a[0]), len(a[1])) == (32, 12) and a != b


def test_ssrc_change_is_bound_after_observation_stopped() -> None:
    ledger, tx, _ = pair()
    for seq in range(2300):
        tx.protect(build_rtp(0, seq, 0, 1, b"x"))
    assert not tx._observer._wanted  # the ledger has its sample: no more hashing
    tx.protect(build_rtp(0, 0, 0, 2, b"x"))  # new SSRC long after sampling ended
    assert ledger.entries()[0].ssrcs == (1, 2)


def test_direct_construction_points_to_the_factory() -> None:
    from confsec.media.srtp import SrtpReceiver, SrtpSender

    with pytest.raises(LocalProtocolError, match="new_sender"):
        SrtpSender("AES_CM_128_HMAC_SHA1_80", KEY, SALT)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="ledger"):
        SrtpReceiver("AES_CM_128_HMAC_SHA1_80", KEY, SALT)  # type: ignore[arg-type]


def test_observer_tracks_rollover_for_the_ledger() -> None:
    ledger, tx, _ = pair()
    for k in range(70):
        tx.protect(build_rtp(0, (0xFFE0 + k) & 0xFFFF, 0, 5, b"x"))
    kept = ledger._current[SEND].ssrcs[5]
    assert 0xFFE0 in kept and 0xFFFF in kept
    assert (1 << 16) | 0x1F in kept  # the 64th packet: ROC 1 after the wrap
    assert (1 << 16) | 0x20 in kept  # then sampled indexes (multiples of 32)
    assert max(kept) < (2 << 16)


def test_second_ssrc_sampled_while_first_is_done() -> None:
    ledger, tx, _ = pair()
    for seq in range(2300):
        tx.protect(build_rtp(0, seq, 0, 1, b"a"))
    for seq in range(10):
        tx.protect(build_rtp(0, seq, 0, 2, b"b"))
        tx.protect(build_rtp(0, 2300 + seq, 0, 1, b"a"))
    kept = ledger._current[SEND].ssrcs
    assert len(kept[2]) == 10
    assert all(i < 2300 for i in kept[1])  # the finished SSRC was not sampled again
