"""What an SRTP session tells the key-stream ledger: its SSRCs, and a sample of its packets by
index (`confsec.media.ledger`). Every session `confsec.media.srtp` makes carries one."""

from __future__ import annotations

import struct

from confsec.media.ledger import KeyStreamLedger, StreamId, packet_fingerprint

__all__ = ["Observer"]

_SSRC = struct.Struct("!2xH4xI")
_WORD = struct.Struct("!I")
_SRTCP_TAG_LEN = 10  # with either HMAC-SHA1 suite (RFC 4568 6.2.1)


class Observer:
    """Feeds a ledger the SSRCs and first packet fingerprints of one session.

    Tracks the rollover counter per SSRC (RFC 3711 section 3.3.1 estimate) so that it can give
    the 48-bit packet index. Once the ledger has its sample of every SSRC, `_wanted` drops and
    the session stops calling here except when a new SSRC shows up.
    """

    __slots__ = (
        "_done",
        "_ledger",
        "_rtcp_done",
        "_rtcp_seen",
        "_rtcp_wanted",
        "_stream",
        "_wanted",
        "roc",
    )

    def __init__(self, ledger: KeyStreamLedger, stream: StreamId) -> None:
        self._ledger = ledger
        self._stream = stream
        self._wanted = True
        # ssrc -> [roc, highest seq]; only kept up to date while that SSRC is sampled.
        self.roc: dict[int, list[int]] = {}
        self._done: set[int] = set()
        self._rtcp_done: set[int] = set()
        self._rtcp_seen: set[int] = set()
        self._rtcp_wanted = True
        """As `_wanted`, for SRTCP: False once every SRTCP SSRC seen has its sample."""

    def seen_packet(self, srtp_packet: bytes) -> None:
        seq, ssrc = _SSRC.unpack_from(srtp_packet)
        self.seen(srtp_packet, ssrc, seq)

    def seen_rtcp(self, srtcp_packet: bytes, aead: bool) -> None:
        """An SRTCP packet at its own index: SRTCP is a key stream of its own (RFC 3711
        4.3.2). At one report a second the ledger's first indexes are the stream's first minute,
        and its sample half an hour; past the sample, as for SRTP, a packet costs a set lookup."""
        # The sender SSRC, and the 31-bit SRTCP index: the word after the encrypted part,
        # before the 80-bit tag with HMAC-SHA1, after the AEAD tag with AES-GCM (RFC 7714 9).
        at = len(srtcp_packet) - 4 - (0 if aead else _SRTCP_TAG_LEN)
        ssrc, index = _WORD.unpack_from(srtcp_packet, 4)[0], _WORD.unpack_from(srtcp_packet, at)[0]
        index &= 0x7FFFFFFF
        if ssrc in self._rtcp_done:
            return
        self._rtcp_seen.add(ssrc)
        fingerprint = packet_fingerprint(srtcp_packet)
        if not self._ledger.observe(self._stream, ssrc, index, fingerprint, rtcp=True):
            self._rtcp_done.add(ssrc)
            self._rtcp_wanted = len(self._rtcp_done) < len(self._rtcp_seen)

    def seen(self, srtp_packet: bytes, ssrc: int, seq: int) -> None:
        if ssrc in self._done:
            return
        state = self.roc.get(ssrc)
        if state is None:
            self.roc[ssrc] = state = [0, seq]
            self._ledger.bind_ssrc(self._stream, ssrc)
            self._wanted = True  # a new SSRC deserves its own sample
            index = seq
        else:
            roc, s_l = state
            if s_l < 0x8000:
                v = roc - 1 if seq - s_l > 0x8000 else roc
            else:
                v = roc + 1 if s_l - 0x8000 > seq else roc
            if v < 0:
                v = 0
            index = (v << 16) | seq
            if v > roc or (v == roc and seq > s_l):
                state[0], state[1] = v, seq
        if not self._ledger.observe(self._stream, ssrc, index, packet_fingerprint(srtp_packet)):
            self._done.add(ssrc)
            self._wanted = len(self._done) < len(self.roc)
