"""The reception the mixer's robustness defect switches use (confsec/media/defect_srtp.py) opens
what libsrtp refused: check that it really opens forged and replayed packets (else the
self-validation would pin nothing), for every suite."""

from __future__ import annotations

import pytest

from confsec.behaviour.media_abuse import forge
from confsec.media.defect_srtp import IndexGuess, decrypt_ignoring_tag, unprotect_ignoring_replay
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_master_key, new_sender

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
