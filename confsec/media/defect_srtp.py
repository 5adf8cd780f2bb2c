"""SRTP reception with a check left out on purpose, for the reference mixer's defect switches.

The reference mixer receives through libsrtp (`confsec.media.srtp`), which always keeps a replay
window and always checks the tag. Two robustness defect switches must make the mixer accept what
libsrtp refuses, and they must really open those packets, or the checks that pin them would pass
on a mixer that only counts them. So a packet libsrtp refused is opened again here, outside it:

- `unprotect_ignoring_replay`: authenticated and decrypted by `reference_srtp`, with no replay
  window, so a replayed genuine packet is accepted a second time (`mixer-accepts-replay`);
- `decrypt_ignoring_tag`: decrypted without reading the tag, so a forged or corrupted packet is
  accepted as genuine (`mixer-skips-auth-check`).

Both need the packet's rollover counter, which libsrtp keeps to itself: `IndexGuess` estimates
it from the sequence numbers libsrtp accepted, as RFC 3711 section 3.3.1 does. Nothing here is
on a conformant media path.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from confsec.media import reference_srtp
from confsec.media.rtp import RtpParseError, peek_ssrc_seq, rtp_header_length

__all__ = ["IndexGuess", "decrypt_ignoring_tag", "unprotect_ignoring_replay"]


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
