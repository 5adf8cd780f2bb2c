"""The reception the mixer's robustness defect switches use (confsec/media/defect_srtp.py) opens
what libsrtp refused: check that it really opens forged and replayed packets (else the
self-validation would pin nothing), for every suite. Its SRTCP protector is held to libsrtp
byte for byte, and told apart from the `srtcp-srtp-keystream` defect's."""

from __future__ import annotations

import struct

import pylibsrtp
import pytest

from confsec.behaviour.media_abuse import forge
from confsec.media import rtcp
from confsec.media.defect_srtp import (
    SRTCP_LABELS,
    SRTP_LABELS,
    IndexGuess,
    decrypt_ignoring_tag,
    protect_rtcp_with_srtp_keys,
    protect_srtcp,
    srtcp_opens_under,
    unprotect_ignoring_replay,
)
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import PROFILES, new_master_key, new_sender

SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"]


def _keys(suite: str) -> tuple[str, bytes, bytes]:
    return (suite, *new_master_key(suite))


@pytest.mark.parametrize("suite", SUITES)
def test_unchecked_decryption_opens_a_forged_packet_and_replays_still_need_the_key(
    suite: str,
) -> None:
    keys = _keys(suite)
    tx = new_sender(KeyStreamLedger(), StreamId("carol", "focus", "audio", "send"), *keys)
    for seq in (7, 0xFFFF, 0):  # the last one is after a wrap: rollover counter 1
        rtp = build_rtp(0, seq, 160, 0xCA201, bytes(range(160)))
        srtp = tx.protect(rtp)
        roc = 1 if seq == 0 else 0
        assert decrypt_ignoring_tag(*keys, forge(srtp), roc) == rtp
        assert unprotect_ignoring_replay(*keys, srtp, roc) == rtp
        assert unprotect_ignoring_replay(*keys, forge(srtp), roc) is None  # the tag is checked
        assert decrypt_ignoring_tag(*keys, srtp, roc + 1) != rtp  # a wrong index is garbage
    assert decrypt_ignoring_tag(*keys, b"\x80" * 5, 0) is None


def test_the_index_guess_follows_rfc_3711_across_a_wrap() -> None:
    guess = IndexGuess()
    assert guess.roc_for(0xFFF0) == 0
    guess.accepted(0xFFF0)
    assert guess.roc_for(5) == 1  # just after the wrap
    guess.accepted(5)
    assert (guess.roc, guess.s_l) == (1, 5)
    assert guess.roc_for(0xFFF0) == 0  # a late (or replayed) packet from before it
    guess.accepted(0xFFF0)
    assert (guess.roc, guess.s_l) == (1, 5)


# -- SRTCP: the pure-Python protector against libsrtp ------------------------------------------

ALL_SUITES = list(PROFILES)
"""Every suite confsec runs (confsec.media.srtp.PROFILES): AES-CM with both HMAC tags, both
AES-GCM key sizes."""


def _libsrtp_session(suite: str, key: bytes, salt: bytes) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key + salt,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=PROFILES[suite].libsrtp_profile,
    )
    return pylibsrtp.Session(policy=policy)


def _report(ssrc: int = 0x5EC7, packets: int = 50) -> bytes:
    return rtcp.compound(
        rtcp.sender_report(ssrc, (3_900_000_000 << 32) | 12345, 160, packets, 160 * packets),
        rtcp.sdes_cname(ssrc, "carol@confsec"),
    )


def _srtcp_word(packet: bytes, suite: str) -> int:
    """E flag and index: before the 80-bit tag with HMAC-SHA1, last with AES-GCM (RFC 7714 9)."""
    at = len(packet) - 4 - (0 if PROFILES[suite].aead else 10)
    return struct.unpack_from("!I", packet, at)[0]


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_protect_srtcp_is_libsrtps_srtcp_byte_for_byte(suite: str) -> None:
    """The SRTCP defects and the diagnosis of failed SRTCP rest on `protect_srtcp` being what
    a conformant stack sends: it must reproduce libsrtp exactly, index by index (libsrtp
    counts SRTCP per SSRC from 1), and a different index must give a different packet."""
    key, salt = new_master_key(suite)
    session = _libsrtp_session(suite, key, salt)
    for index in range(1, 5):
        compound = _report(packets=50 * index)  # one SSRC, so one SRTCP index sequence
        theirs = session.protect_rtcp(compound)
        assert _srtcp_word(theirs, suite) == 0x80000000 | index  # encrypted, index from 1
        assert protect_srtcp(suite, key, salt, compound, index) == theirs
        assert protect_srtcp(suite, key, salt, compound, index + 1) != theirs
    assert _srtcp_word(session.protect_rtcp(_report(0x1111)), suite) == 0x80000001  # per SSRC


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_srtcp_opens_under_tells_srtcps_labels_from_srtps(suite: str) -> None:
    """RFC 3711 4.3.2: SRTCP's session keys have labels 3 to 5. libsrtp's SRTCP opens under
    them and not under SRTP's (0 to 2); the `srtcp-srtp-keystream` defect's packet is the
    reverse, which is how the suite names that mistake."""
    key, salt = new_master_key(suite)
    good = _libsrtp_session(suite, key, salt).protect_rtcp(_report())
    assert srtcp_opens_under(suite, key, salt, good, SRTCP_LABELS)
    assert not srtcp_opens_under(suite, key, salt, good, SRTP_LABELS)
    defect = protect_rtcp_with_srtp_keys(suite, key, salt, _report(), 1)
    assert defect != good and len(defect) == len(good)
    assert srtcp_opens_under(suite, key, salt, defect, SRTP_LABELS)
    assert not srtcp_opens_under(suite, key, salt, defect, SRTCP_LABELS)
    other_key, other_salt = new_master_key(suite)
    assert not srtcp_opens_under(suite, other_key, other_salt, good, SRTCP_LABELS)
    tampered = good[:12] + bytes([good[12] ^ 1]) + good[13:]
    assert not srtcp_opens_under(suite, key, salt, tampered, SRTCP_LABELS)
    assert not srtcp_opens_under(suite, key, salt, good[:10], SRTCP_LABELS)  # too short
