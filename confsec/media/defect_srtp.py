"""SRTP reception with a check left out on purpose, for the reference mixer's defect switches.

The reference mixer receives through libsrtp (`confsec.media.srtp`), which always keeps a replay
window and always checks the tag. Two robustness defect switches must make the mixer accept what
libsrtp refuses, and they must really open those packets, or the checks that pin them would pass
on a mixer that only counts them. So a packet libsrtp refused is opened again here, outside it:

- `unprotect_ignoring_replay`: authenticated and decrypted by `reference_srtp`, with no replay
  window, so a replayed genuine packet is accepted a second time (`mixer-accepts-replay`);
- `decrypt_ignoring_tag`: decrypted without reading the tag, so a forged or corrupted packet is
  accepted as genuine (`mixer-skips-auth-check`).

A third defect switch protects rather than opens: `protect_rtcp_with_srtp_keys` makes SRTCP
under the SRTP session keys (labels 0 to 2) instead of SRTCP's own (3 to 5, RFC 3711 4.3.2), so
that its keystream is SRTP's at the same index (`srtcp-srtp-keystream`).

The first two need the packet's rollover counter, which libsrtp keeps to itself: `IndexGuess`
estimates it from the sequence numbers libsrtp accepted, as RFC 3711 section 3.3.1 does.
Nothing here is on a conformant media path.
"""

from __future__ import annotations

import hmac
import struct
from hashlib import sha1

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confsec.media import reference_srtp
from confsec.media.rtp import RtpParseError, peek_ssrc_seq, rtp_header_length

__all__ = [
    "IndexGuess",
    "decrypt_ignoring_tag",
    "protect_rtcp_with_srtp_keys",
    "protect_srtcp",
    "srtcp_opens_under",
    "unprotect_ignoring_replay",
]


class IndexGuess:
    """A receiver's rollover counter, estimated as RFC 3711 section 3.3.1 does."""

    __slots__ = ("roc", "s_l")

    def __init__(self) -> None:
        self.roc = 0
        self.s_l: int | None = None

    def roc_for(self, seq: int) -> int:
        if self.s_l is None:
            return 0
        if self.s_l < 0x8000:
            v = self.roc - 1 if seq - self.s_l > 0x8000 else self.roc
        else:
            v = self.roc + 1 if self.s_l - 0x8000 > seq else self.roc
        return max(v, 0)

    def accepted(self, seq: int) -> None:
        """A packet libsrtp authenticated: advance the highest index seen."""
        v = self.roc_for(seq)
        if self.s_l is None or v > self.roc or (v == self.roc and seq > self.s_l):
            self.roc, self.s_l = v, seq


def unprotect_ignoring_replay(
    suite: str, key: bytes, salt: bytes, data: bytes, roc: int
) -> bytes | None:
    """Authenticate and decrypt one SRTP packet with no replay window; None if it fails."""
    try:
        return reference_srtp.unprotect_rtp(suite, key, salt, data, roc)
    except (RtpParseError, ValueError):
        return None


def decrypt_ignoring_tag(
    suite: str, key: bytes, salt: bytes, data: bytes, roc: int
) -> bytes | None:
    """Decrypt one SRTP packet without ever reading its tag; None if it is not SRTP at all."""
    params = reference_srtp.SUITES.get(suite)
    if params is None:
        return None
    body = data[: len(data) - params.tag_len]
    try:
        hlen = rtp_header_length(body)
    except RtpParseError:
        return None
    ssrc, seq = peek_ssrc_seq(data)
    session = reference_srtp.derive_session_keys(
        key, salt, salt_len=params.session_salt_len, auth_len=params.auth_key_len
    )
    payload = body[hlen:]
    if params.aead:  # GCM's counter mode: the payload starts at block 2 (NIST SP 800-38D)
        iv = reference_srtp.gcm_iv(session.salt, ssrc, roc, seq) + b"\0\0\0\x02"
        dec = Cipher(algorithms.AES(session.encryption), modes.CTR(iv)).decryptor()
        clear = dec.update(payload) + dec.finalize()
    else:
        stream = reference_srtp.aes_cm_keystream(
            session.encryption, session.salt, ssrc, (roc << 16) | seq, len(payload)
        )
        clear = bytes(a ^ b for a, b in zip(payload, stream, strict=True))
    return body[:hlen] + clear


SRTCP_LABELS = (0x03, 0x04, 0x05)
"""RFC 3711 4.3.2: SRTCP's encryption, authentication and salt labels."""
SRTP_LABELS = (0x00, 0x01, 0x02)
SRTCP_TAG_LEN = 10


def protect_srtcp(
    suite: str,
    key: bytes,
    salt: bytes,
    compound: bytes,
    index: int,
    labels: tuple[int, int, int] = SRTCP_LABELS,
) -> bytes:
    """SRTCP in the layout of RFC 3711 3.4 (RFC 7714 9 for AES-GCM), E flag set, under the
    session keys of `labels`. With SRTCP's own labels it is what libsrtp sends (the tests
    check it byte for byte); with SRTP's it is the defect."""
    params = reference_srtp.SUITES[suite]
    enc_label, auth_label, salt_label = labels

    def derive(label: int, length: int) -> bytes:
        return reference_srtp.derive_session_key(key, salt, label, length)

    enc = derive(enc_label, len(key))
    session_salt = derive(salt_label, params.session_salt_len)
    ssrc = struct.unpack_from("!I", compound, 4)[0]
    index &= 0x7FFFFFFF
    word = struct.pack("!I", 0x80000000 | index)
    if params.aead:
        block = b"\0\0" + struct.pack("!IHI", ssrc, 0, index)
        iv = bytes(a ^ b for a, b in zip(session_salt, block, strict=True))
        sealed = AESGCM(enc).encrypt(iv, compound[8:], compound[:8] + word)
        return compound[:8] + sealed + word
    stream = reference_srtp.aes_cm_keystream(enc, session_salt, ssrc, index, len(compound) - 8)
    body = compound[:8] + bytes(a ^ b for a, b in zip(compound[8:], stream, strict=True))
    auth = derive(auth_label, params.auth_key_len)
    # SRTCP's tag is 80 bits with both HMAC-SHA1 suites (RFC 4568 6.2.1, as libsrtp does).
    return body + word + hmac.new(auth, body + word, sha1).digest()[:SRTCP_TAG_LEN]


def protect_rtcp_with_srtp_keys(
    suite: str, key: bytes, salt: bytes, compound: bytes, index: int
) -> bytes:
    """The `srtcp-srtp-keystream` defect: SRTCP under the SRTP session keys."""
    return protect_srtcp(suite, key, salt, compound, index, SRTP_LABELS)


def srtcp_opens_under(
    suite: str, key: bytes, salt: bytes, packet: bytes, labels: tuple[int, int, int]
) -> bool:
    """Whether `packet`'s tag checks under the session keys of `labels`: the suite uses it to
    name the `srtcp-srtp-keystream` mistake (labels 0 to 2) in a failed SRTCP packet."""
    params = reference_srtp.SUITES.get(suite)
    if params is None or len(packet) < 8 + 4 + (0 if params.aead else SRTCP_TAG_LEN):
        return False
    enc_label, auth_label, salt_label = labels
    if params.aead:
        word = packet[-4:]
        index = struct.unpack("!I", word)[0] & 0x7FFFFFFF
        ssrc = struct.unpack_from("!I", packet, 4)[0]
        session_salt = reference_srtp.derive_session_key(
            key, salt, salt_label, params.session_salt_len
        )
        block = b"\0\0" + struct.pack("!IHI", ssrc, 0, index)
        iv = bytes(a ^ b for a, b in zip(session_salt, block, strict=True))
        enc = reference_srtp.derive_session_key(key, salt, enc_label, len(key))
        try:
            AESGCM(enc).decrypt(iv, packet[8:-4], packet[:8] + word)
        except InvalidTag:
            return False
        return True
    auth = reference_srtp.derive_session_key(key, salt, auth_label, params.auth_key_len)
    body, tag = packet[:-SRTCP_TAG_LEN], packet[-SRTCP_TAG_LEN:]
    return hmac.compare_digest(hmac.new(auth, body, sha1).digest()[:SRTCP_TAG_LEN], tag)
