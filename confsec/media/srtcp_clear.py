"""Unencrypted SRTCP under the AES-CM suites, which libsrtp will not open.

RFC 3711 3.4 lets SRTCP go unencrypted (E flag clear) and still authenticated, where SDES
negotiated UNENCRYPTED_SRTCP (RFC 4568 6.3.2). libsrtp refuses such a packet under
AES_CM_128_HMAC_SHA1_80/32 before it reads the tag ("unable to perform desired validation"),
so a receiver that relied on it alone would call a correctly authenticated packet malformed,
and could never accept it where it was agreed. `ClearSrtcp` checks that tag itself with
SRTCP's own authentication key (label 4, RFC 3711 4.3.2) and keeps a replay record of the
indexes it accepted. (AES-GCM needs none of this: libsrtp opens E=0 SRTCP under it.)
"""

from __future__ import annotations

import hmac
import struct
from hashlib import sha1

from confsec.media import reference_srtp

__all__ = ["CLEAR_OK", "CLEAR_REPLAYED", "CLEAR_TAG", "ClearSrtcp"]

CLEAR_OK, CLEAR_TAG, CLEAR_REPLAYED = "ok", "tag", "replayed"
_TAG_LEN = 10  # SRTCP's tag is 80 bits with both HMAC-SHA1 suites (RFC 4568 6.2.1)
_SRTCP_AUTH_LABEL = 0x04
_REPLAY_LIMIT = 4096
_WORD = struct.Struct("!I")


class ClearSrtcp:
    """The E=0 SRTCP of one receiver's key: tag checked here, each index accepted once."""

    __slots__ = ("_auth", "_key", "_salt", "_seen", "_suite")

    def __init__(self, suite: str, key: bytes, salt: bytes) -> None:
        self._suite = suite
        self._key = key
        self._salt = salt
        self._auth: bytes | None = None  # derived on first use: most receivers never need it
        self._seen: set[tuple[bytes, int]] = set()

    def open(self, packet: bytes) -> tuple[bytes | None, str]:
        """(the RTCP compound, CLEAR_OK), or (None, why): '' when the packet is not E=0 SRTCP
        of an AES-CM suite at all, and then what libsrtp said stands."""
        params = reference_srtp.SUITES.get(self._suite)
        if params is None or params.aead or len(packet) < 8 + 4 + _TAG_LEN:
            return None, ""
        word = _WORD.unpack_from(packet, len(packet) - 4 - _TAG_LEN)[0]
        if word & 0x80000000:
            return None, ""  # E set: encrypted, libsrtp's to judge
        if self._auth is None:
            self._auth = reference_srtp.derive_session_key(
                self._key, self._salt, _SRTCP_AUTH_LABEL, params.auth_key_len
            )
        body, tag = packet[:-_TAG_LEN], packet[-_TAG_LEN:]
        if not hmac.compare_digest(hmac.new(self._auth, body, sha1).digest()[:_TAG_LEN], tag):
            return None, CLEAR_TAG
        seen = (packet[4:8], word)
        if seen in self._seen:
            return None, CLEAR_REPLAYED
        if len(self._seen) < _REPLAY_LIMIT:
            self._seen.add(seen)
        return packet[: -4 - _TAG_LEN], CLEAR_OK
