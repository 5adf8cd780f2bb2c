"""An independent SRTP implementation on `cryptography`, for cross-checking libsrtp only.

confsec sends and receives SRTP through libsrtp (`confsec.media.srtp`). A conformance suite must
not trust one implementation to judge another, so this module re-derives every byte from the
RFCs with nothing but AES and HMAC primitives; the tests require libsrtp's output and this
module's to agree byte for byte, and this module to reproduce the RFC test vectors. It is slow
(one `Cipher` object per call) and is never used on a media path.

* RFC 3711 section 4.3: key derivation with the AES-CM PRF (kdr = 0 unless given).
* RFC 3711 section 4.1.1: AES-CM encryption, IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
* RFC 3711 section 4.2: HMAC-SHA1 over the authenticated portion followed by the ROC, truncated
  to 80 or 32 bits.
* RFC 7714 sections 8 and 11: AES-GCM with a 12-octet IV = session salt XOR
  (0x0000 || SSRC || ROC || SEQ), the RTP header as associated data and a 16-octet tag; the
  session key and 96-bit session salt come from the same AES-CM KDF, the 96-bit master salt
  taking the first 12 of the 14 octets the KDF works on (the last two are zero), which is also
  what libsrtp does (the tests cross-check it).
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from hashlib import sha1

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confsec.errors import LocalProtocolError
from confsec.media.rtp import RtpParseError, peek_ssrc_seq, rtp_header_length

__all__ = [
    "LABEL_AUTH",
    "LABEL_ENCRYPTION",
    "LABEL_SALT",
    "SUITES",
    "ReferenceSuite",
    "SessionKeys",
    "aes_cm_keystream",
    "derive_session_key",
    "derive_session_keys",
    "gcm_iv",
    "protect_rtp",
    "protect_rtp_with_session_keys",
    "unprotect_rtp",
    "unprotect_rtp_with_session_keys",
]

#: RFC 3711 section 4.3.1 labels for SRTP (SRTCP uses 0x03..0x05).
LABEL_ENCRYPTION = 0x00
LABEL_AUTH = 0x01
LABEL_SALT = 0x02

# The KDF always works on a 112-bit salt field (RFC 3711 section 4.3.1).
_KDF_SALT_LEN = 14


@dataclass(frozen=True)
class ReferenceSuite:
    """What this module needs to know about a crypto suite."""

    name: str
    master_key_len: int
    master_salt_len: int
    session_salt_len: int
    auth_key_len: int
    tag_len: int
    aead: bool


SUITES: dict[str, ReferenceSuite] = {
    s.name: s
    for s in (
        ReferenceSuite("AES_CM_128_HMAC_SHA1_80", 16, 14, 14, 20, 10, False),
        ReferenceSuite("AES_CM_128_HMAC_SHA1_32", 16, 14, 14, 20, 4, False),
        ReferenceSuite("AEAD_AES_128_GCM", 16, 12, 12, 0, 16, True),
        ReferenceSuite("AEAD_AES_256_GCM", 32, 12, 12, 0, 16, True),
    )
}


@dataclass(frozen=True, repr=False)
class SessionKeys:
    """Session keys derived from one master key and salt (repr hides them)."""

    encryption: bytes
    salt: bytes
    auth: bytes

    def __repr__(self) -> str:
        return "SessionKeys(<secret>)"


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def derive_session_key(
    master_key: bytes, master_salt: bytes, label: int, length: int, *, index: int = 0, kdr: int = 0
) -> bytes:
    """One session key by the AES-CM PRF of RFC 3711 section 4.3.

    key_id = label || r with r = index DIV kdr (0 when kdr is 0); x = key_id XOR master_salt,
    both right-aligned in the 112-bit field; the output is the AES-CM keystream at IV x * 2^16.
    A 96-bit master salt (RFC 7714) is placed in the first 12 octets of that field.
    """
    if len(master_salt) > _KDF_SALT_LEN:
        raise LocalProtocolError(f"master salt of {len(master_salt)} octets is over 14")
    r = index // kdr if kdr else 0
    x = bytearray(master_salt.ljust(_KDF_SALT_LEN, b"\0"))
    key_id = bytes((label,)) + r.to_bytes(6, "big")
    for i, b in enumerate(key_id):
        x[_KDF_SALT_LEN - 7 + i] ^= b
    return _aes_ctr(master_key, bytes(x) + b"\0\0", bytes(length))


def derive_session_keys(
    master_key: bytes,
    master_salt: bytes,
    *,
    encryption_len: int | None = None,
    salt_len: int = 14,
    auth_len: int = 20,
    index: int = 0,
    kdr: int = 0,
) -> SessionKeys:
    """The three SRTP session keys (labels 0x00, 0x02, 0x01) for one master key and salt."""
    enc_len = len(master_key) if encryption_len is None else encryption_len
    return SessionKeys(
        encryption=derive_session_key(
            master_key, master_salt, LABEL_ENCRYPTION, enc_len, index=index, kdr=kdr
        ),
        salt=derive_session_key(
            master_key, master_salt, LABEL_SALT, salt_len, index=index, kdr=kdr
        ),
        auth=derive_session_key(master_key, master_salt, LABEL_AUTH, auth_len, index=index, kdr=kdr)
        if auth_len
        else b"",
    )


def aes_cm_keystream(
    session_key: bytes, session_salt: bytes, ssrc: int, index: int, length: int
) -> bytes:
    """AES-CM keystream of RFC 3711 section 4.1.1 for one packet.

    IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16), 128 bits, the low 16 bits counting
    blocks.
    """
    iv = (int.from_bytes(session_salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
    return _aes_ctr(session_key, iv.to_bytes(16, "big"), bytes(length))


def _suite(name: str) -> ReferenceSuite:
    try:
        return SUITES[name]
    except KeyError:
        raise LocalProtocolError(f"the reference SRTP has no suite {name!r}") from None


def _session_keys(suite: ReferenceSuite, master_key: bytes, master_salt: bytes) -> SessionKeys:
    if len(master_key) != suite.master_key_len or len(master_salt) != suite.master_salt_len:
        raise LocalProtocolError(
            f"{suite.name} needs a {suite.master_key_len}-octet key and a "
            f"{suite.master_salt_len}-octet salt"
        )
    return derive_session_keys(
        master_key,
        master_salt,
        salt_len=suite.session_salt_len,
        auth_len=suite.auth_key_len,
    )


def gcm_iv(session_salt: bytes, ssrc: int, roc: int, seq: int) -> bytes:
    """RFC 7714 section 8.1: the 12-octet IV, salt XOR (0x0000 || SSRC || ROC || SEQ)."""
    block = b"\0\0" + struct.pack("!IIH", ssrc, roc, seq)
    return bytes(a ^ b for a, b in zip(session_salt, block, strict=True))


def protect_rtp(
    suite: str, master_key: bytes, master_salt: bytes, packet: bytes, roc: int = 0
) -> bytes:
    """Protect one RTP packet as SRTP under `suite`, with the given rollover counter.

    The header (fixed part, CSRCs and extension) stays in the clear; the payload, including
    any RTP padding, is encrypted, as RFC 3711 says.
    """
    s = _suite(suite)
    return protect_rtp_with_session_keys(
        suite, _session_keys(s, master_key, master_salt), packet, roc
    )


def protect_rtp_with_session_keys(
    suite: str, keys: SessionKeys, packet: bytes, roc: int = 0
) -> bytes:
    """`protect_rtp()` from session keys, for the RFC 7714 vectors that start there."""
    s = _suite(suite)
    hlen = rtp_header_length(packet)
    ssrc, seq = peek_ssrc_seq(packet)
    header, payload = packet[:hlen], packet[hlen:]
    if s.aead:
        iv = gcm_iv(keys.salt, ssrc, roc, seq)
        return header + AESGCM(keys.encryption).encrypt(iv, payload, header)
    index = (roc << 16) | seq
    stream = aes_cm_keystream(keys.encryption, keys.salt, ssrc, index, len(payload))
    body = header + bytes(a ^ b for a, b in zip(payload, stream, strict=True))
    tag = hmac.new(keys.auth, body + struct.pack("!I", roc), sha1).digest()[: s.tag_len]
    return body + tag


def unprotect_rtp(
    suite: str, master_key: bytes, master_salt: bytes, packet: bytes, roc: int = 0
) -> bytes | None:
    """Check and decrypt one SRTP packet; None when it does not authenticate.

    No replay window: this is a reference for single packets, not a receiver.
    """
    s = _suite(suite)
    return unprotect_rtp_with_session_keys(
        suite, _session_keys(s, master_key, master_salt), packet, roc
    )


def unprotect_rtp_with_session_keys(
    suite: str, keys: SessionKeys, packet: bytes, roc: int = 0
) -> bytes | None:
    """`unprotect_rtp()` from session keys."""
    s = _suite(suite)
    if len(packet) < s.tag_len + 12:
        raise RtpParseError("SRTP packet shorter than a header and a tag", offset=len(packet))
    body = packet[: -s.tag_len]
    hlen = rtp_header_length(body)
    ssrc, seq = peek_ssrc_seq(packet)
    header = packet[:hlen]
    if s.aead:
        iv = gcm_iv(keys.salt, ssrc, roc, seq)
        try:
            return header + AESGCM(keys.encryption).decrypt(iv, packet[hlen:], header)
        except InvalidTag:
            return None
    tag = packet[-s.tag_len :]
    want = hmac.new(keys.auth, body + struct.pack("!I", roc), sha1).digest()[: s.tag_len]
    if not hmac.compare_digest(tag, want):
        return None
    index = (roc << 16) | seq
    payload = body[hlen:]
    stream = aes_cm_keystream(keys.encryption, keys.salt, ssrc, index, len(payload))
    return header + bytes(a ^ b for a, b in zip(payload, stream, strict=True))
