"""SRTP known answers (RFC 3711 Appendix B, RFC 7714 section 16) and libsrtp cross-checks.

The reference implementation (`reference_srtp`, on `cryptography`) must reproduce the RFC
vectors; libsrtp (through `confsec.media.srtp`) must then agree with it byte for byte on
every suite, so that neither is trusted alone.
"""

from __future__ import annotations

import random
import struct

import pytest

from confsec.media import reference_srtp as ref
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import RtpHeader, RtpPacket, build_rtp
from confsec.media.srtp import (
    PROFILES,
    SrtpAuthError,
    SrtpReplayError,
    new_receiver,
    new_sender,
)

SUITES = sorted(PROFILES)

# -- RFC 3711 Appendix B.2: AES-CM keystream ---------------------------------------------------

B2_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
B2_SALT = bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
B2_KEYSTREAM = {
    0x0000: "E03EAD0935C95E80E166B16DD92B4EB4",
    0x0001: "D23513162B02D0F72A43A2FE4A5F97AB",
    0x0002: "41E95B3BB0A2E8DD477901E4FCA894C0",
    0xFEFF: "EC8CDF7398607CB0F2D21675EA9EA1E4",
    0xFF00: "362B7C3C6773516318A077D7FC5073AE",
    0xFF01: "6A2CC3787889374FBEB4C81B17BA6C44",
}


def test_rfc3711_b2_aes_cm_keystream() -> None:
    stream = ref.aes_cm_keystream(B2_KEY, B2_SALT, ssrc=0, index=0, length=16 * 0xFF02)
    for block, expected in B2_KEYSTREAM.items():
        assert stream[16 * block : 16 * block + 16].hex().upper() == expected


# -- RFC 3711 Appendix B.3: key derivation -----------------------------------------------------

B3_MASTER_KEY = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
B3_MASTER_SALT = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")


def test_rfc3711_b3_key_derivation() -> None:
    keys = ref.derive_session_keys(B3_MASTER_KEY, B3_MASTER_SALT)
    assert keys.encryption.hex().upper() == "C61E7A93744F39EE10734AFE3FF7A087"
    assert keys.salt.hex().upper() == "30CBBC08863D8C85D49DB34A9AE1"
    assert keys.auth.hex().upper() == "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"


def test_rfc3711_b3_prf_runs_on() -> None:
    # B.3 lists more PRF output than the 14-octet salt and the 20-octet HMAC key use.
    salt16 = ref.derive_session_key(B3_MASTER_KEY, B3_MASTER_SALT, ref.LABEL_SALT, 16)
    assert salt16.hex().upper() == "30CBBC08863D8C85D49DB34A9AE17AC6"
    auth96 = ref.derive_session_key(B3_MASTER_KEY, B3_MASTER_SALT, ref.LABEL_AUTH, 96)
    assert auth96.hex().upper() == (
        "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE"
        "E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25"
        "6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2DC68"
    )


def test_session_keys_repr_hides_keys() -> None:
    keys = ref.derive_session_keys(B3_MASTER_KEY, B3_MASTER_SALT)
    assert "C61E" not in repr(keys).upper() and "secret" in repr(keys)


# -- RFC 7714 section 16.1: AEAD_AES_128_GCM ---------------------------------------------------
# The vectors start from the session key and salt (no KDF step).

GCM_KEYS = ref.SessionKeys(
    encryption=bytes.fromhex("000102030405060708090a0b0c0d0e0f"),
    salt=bytes.fromhex("517569642070726f2071756f"),  # "Quid pro quo"
    auth=b"",
)
GCM_RTP = bytes.fromhex(
    "8040f17b8041f8d35501a0b2"
    "47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573"
)
GCM_SRTP = bytes.fromhex(
    "8040f17b8041f8d35501a0b2"
    "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833"
    "899d7f27beb16a9152cf765ee4390cce"
)


def test_rfc7714_iv() -> None:
    assert ref.gcm_iv(GCM_KEYS.salt, 0x5501A0B2, 0, 0xF17B).hex() == "51753c6580c2726f20718414"


def test_rfc7714_16_1_encrypt() -> None:
    assert GCM_RTP[12:] == b"Gallia est omnis divisa in partes tres"
    assert ref.protect_rtp_with_session_keys("AEAD_AES_128_GCM", GCM_KEYS, GCM_RTP) == GCM_SRTP


def test_rfc7714_16_1_decrypt_and_tag_check() -> None:
    assert ref.unprotect_rtp_with_session_keys("AEAD_AES_128_GCM", GCM_KEYS, GCM_SRTP) == GCM_RTP
    tampered = bytearray(GCM_SRTP)
    tampered[-1] ^= 0x01
    assert (
        ref.unprotect_rtp_with_session_keys("AEAD_AES_128_GCM", GCM_KEYS, bytes(tampered)) is None
    )


# -- libsrtp against the reference -------------------------------------------------------------


def _keys(suite: str, seed: int) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    p = PROFILES[suite]
    return rng.randbytes(p.key_len), rng.randbytes(p.salt_len)


def _packets() -> list[bytes]:
    """Packets of several shapes: SSRCs, sequence numbers, sizes, CSRCs, extension, padding."""
    rng = random.Random(7)
    out = [
        build_rtp(0, 0, 0, 0, b""),
        build_rtp(0, 1, 160, 0x12345678, b"\xff" * 160, marker=True),
        build_rtp(8, 0xFFFE, 0xFFFFFF00, 0xFFFFFFFF, rng.randbytes(1)),
        build_rtp(96, 31337, 90000, 0xDEADBEEF, rng.randbytes(1200)),
        RtpPacket(
            RtpHeader(0, 4242, 7, 0xCAFEBABE, csrcs=(1, 0xFFFFFFFF, 3)), rng.randbytes(33)
        ).to_bytes(),
        RtpPacket(
            RtpHeader(
                111,
                500,
                8,
                0x0BADF00D,
                extension_profile=0xBEDE,
                extension_data=bytes([0x22, 0x01, 0x02, 0x03]),
            ),
            rng.randbytes(57),
        ).to_bytes(),
        RtpPacket(
            RtpHeader(0, 501, 9, 0x0BADF00D, csrcs=(9,), extension_profile=0x1000),
            rng.randbytes(16),
            padding_size=8,
        ).to_bytes(),
    ]
    return out


@pytest.mark.parametrize("suite", SUITES)
def test_libsrtp_matches_reference(suite: str) -> None:
    key, salt = _keys(suite, 1)
    ledger = KeyStreamLedger()
    # One libsrtp sender per packet: each packet has its own SSRC/sequence space in a fresh
    # session, so that ROC is 0 and the comparison is on the transform only.
    for i, packet in enumerate(_packets()):
        sender = new_sender(ledger, StreamId("a", "b", "audio", "send", str(i)), suite, key, salt)
        assert sender.protect(packet) == ref.protect_rtp(suite, key, salt, packet), i


@pytest.mark.parametrize("suite", SUITES)
def test_reference_output_accepted_by_libsrtp(suite: str) -> None:
    key, salt = _keys(suite, 2)
    ledger = KeyStreamLedger()
    receiver = new_receiver(ledger, StreamId("b", "a", "audio", "recv"), suite, key, salt)
    for packet in _packets():
        srtp = ref.protect_rtp(suite, key, salt, packet)
        assert receiver.unprotect(srtp) == packet
        assert ref.unprotect_rtp(suite, key, salt, srtp) == packet


@pytest.mark.parametrize("suite", SUITES)
def test_libsrtp_matches_reference_across_rollover(suite: str) -> None:
    """A stream crossing sequence number 65535 -> 0: the ROC enters IV and tag from then on."""
    key, salt = _keys(suite, 3)
    sender = new_sender(KeyStreamLedger(), StreamId("a", "b", "audio", "send"), suite, key, salt)
    ssrc = 0x5EED5EED
    roc = 0
    for k in range(12):
        seq = (0xFFF8 + k) & 0xFFFF
        if seq == 0:
            roc += 1
        packet = build_rtp(0, seq, 160 * k, ssrc, bytes([k]) * 160)
        assert sender.protect(packet) == ref.protect_rtp(suite, key, salt, packet, roc=roc), k
    assert roc == 1


@pytest.mark.parametrize("suite", SUITES)
def test_key_and_salt_both_matter(suite: str) -> None:
    key, salt = _keys(suite, 4)
    packet = build_rtp(0, 1, 2, 3, b"x" * 40)
    base = ref.protect_rtp(suite, key, salt, packet)
    other_salt = salt[:-1] + bytes([salt[-1] ^ 1])
    assert ref.protect_rtp(suite, key, other_salt, packet) != base
    other_key = bytes([key[0] ^ 1]) + key[1:]
    assert ref.protect_rtp(suite, other_key, salt, packet) != base


# -- libsrtp refuses tampering and replays -----------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_receiver_rejects_every_bit_flip_position_sampled(suite: str) -> None:
    key, salt = _keys(suite, 5)
    ledger = KeyStreamLedger()
    sender = new_sender(ledger, StreamId("a", "b", "audio", "send"), suite, key, salt)
    receiver = new_receiver(ledger, StreamId("b", "a", "audio", "recv"), suite, key, salt)
    seq = 100
    srtp = sender.protect(build_rtp(0, seq, 0, 0xABCDEF01, b"\x55" * 160))
    # Header (timestamp octet 4; sequence octet 3 would change the index), payload, tag.
    for pos in (1, 4, 12, 60, len(srtp) - 1):
        for bit in (0x01, 0x80):
            flipped = bytearray(srtp)
            flipped[pos] ^= bit
            with pytest.raises(SrtpAuthError):
                receiver.unprotect(bytes(flipped))
    assert receiver.auth_failed == 10
    # The untouched packet still passes after the failures (they did not move the window).
    assert receiver.unprotect(srtp)[12:] == b"\x55" * 160


@pytest.mark.parametrize("suite", SUITES)
def test_receiver_rejects_replay(suite: str) -> None:
    key, salt = _keys(suite, 6)
    ledger = KeyStreamLedger()
    sender = new_sender(ledger, StreamId("a", "b", "audio", "send"), suite, key, salt)
    receiver = new_receiver(ledger, StreamId("b", "a", "audio", "recv"), suite, key, salt)
    packets = [sender.protect(build_rtp(0, s, 160 * s, 77, struct.pack("!I", s))) for s in range(5)]
    for p in packets:
        receiver.unprotect(p)
    with pytest.raises(SrtpReplayError):
        receiver.unprotect(packets[2])
    assert receiver.try_unprotect(packets[4]) is None
    assert (receiver.ok, receiver.replayed, receiver.auth_failed) == (5, 2, 0)


@pytest.mark.parametrize("suite", SUITES)
def test_receiver_rejects_wrong_key(suite: str) -> None:
    key, salt = _keys(suite, 8)
    other_key, _ = _keys(suite, 9)
    ledger = KeyStreamLedger()
    sender = new_sender(ledger, StreamId("a", "b", "audio", "send"), suite, key, salt)
    receiver = new_receiver(ledger, StreamId("b", "a", "audio", "recv"), suite, other_key, salt)
    with pytest.raises(SrtpAuthError):
        receiver.unprotect(sender.protect(build_rtp(0, 1, 2, 3, b"y" * 160)))
