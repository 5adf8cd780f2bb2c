"""The R5/R6 judgements of confsec/behaviour/rekeying.py on hand-made ledgers and packets."""

from __future__ import annotations

import os

import pytest

from confsec.behaviour import group_keys, membership, rekeying
from confsec.errors import NonConformance
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_receiver, new_sender

SUITE = "AES_CM_128_HMAC_SHA1_80"


def _key() -> tuple[bytes, bytes]:
    return os.urandom(16), os.urandom(14)


def _recv(ledger: KeyStreamLedger, owner: str, label: str, key: tuple[bytes, bytes]) -> None:
    new_receiver(ledger, StreamId(owner, "focus", "audio", "recv", label), SUITE, *key)


def test_fresh_keys_pass_and_a_repeated_salt_fails() -> None:
    ledger = KeyStreamLedger()
    group = _key()
    for owner in ("alice", "bob"):
        _recv(ledger, owner, "", _key())
        _recv(ledger, owner, "common", group)  # a group key is shared by design
        _recv(ledger, owner, "epoch-2", _key())  # a rekey: new keys to judge
    rekeying.keys_fresh(ledger)
    k1 = _key()
    _recv(ledger, "carol", "", k1)
    _recv(ledger, "carol", "epoch-2", (os.urandom(16), k1[1]))
    with pytest.raises(NonConformance, match="salt"):
        rekeying.keys_fresh(ledger)


def test_group_key_equal_to_a_unicast_key_fails() -> None:
    ledger = KeyStreamLedger()
    k = _key()
    _recv(ledger, "alice", "", k)
    _recv(ledger, "bob", "common", _key())
    group_keys.group_key_distinct(ledger)
    _recv(ledger, "carol", "common epoch-2", k)
    with pytest.raises(NonConformance, match="shares key material"):
        group_keys.group_key_distinct(ledger)


def test_trial_decryption_finds_packets_under_an_old_key() -> None:
    ledger = KeyStreamLedger()
    old, new = _key(), _key()
    tx_old = new_sender(ledger, StreamId("mixer", "x", "audio", "send", "1"), SUITE, *old)
    tx_new = new_sender(ledger, StreamId("mixer", "x", "audio", "send", "2"), SUITE, *new)
    packets = [tx_new.protect(build_rtp(0, n, n * 160, 7, b"\xff" * 160)) for n in range(5)]
    keys = [(SUITE, *old)]
    assert rekeying.authenticating(packets, keys) == {}
    packets.append(tx_old.protect(build_rtp(0, 9, 9 * 160, 7, b"\xff" * 160)))
    assert sum(rekeying.authenticating(packets, keys).values()) == 1


def test_participant_names_use_reference_accounts() -> None:
    names = membership.participant_names(10)
    assert names[:3] == ["alice", "bob", "carol"] and names[-1] == "guest10" and len(names) == 10
