"""RTP framing (RFC 3550 section 5.1) with `struct`, sans-IO.

Two faces, because the two callers want different things:

* `RtpPacket.parse()` / `RtpPacket.to_bytes()` give a full, checked view of one packet for tests,
  evidence and negative steps (every field, CSRC list, header extension, padding). Bad input from
  the wire raises `RtpParseError`, which names the defect and the byte where it was found.
* `peek_ssrc_seq()`, `rtp_payload_bounds()` and `build_rtp()` are the hot path of a media leg:
  one precompiled `struct.Struct` each, no dataclass per packet.

Nothing here touches a socket or a clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from confsec.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "RTP_HEADER_LEN",
    "RTP_VERSION",
    "RtpHeader",
    "RtpPacket",
    "RtpParseError",
    "build_rtp",
    "looks_like_rtcp",
    "peek_ssrc_seq",
    "rtp_header_length",
    "rtp_payload_bounds",
]

RTP_VERSION = 2
#: Length of the fixed RTP header (no CSRC, no extension).
RTP_HEADER_LEN = 12

# First two octets, sequence number, timestamp, SSRC.
_FIXED = struct.Struct("!BBHII")
# Sequence number at offset 2, SSRC at offset 8: one call for the demultiplexing key.
_SEQ_SSRC = struct.Struct("!2xH4xI")
_U16 = struct.Struct("!H")
_EXT = struct.Struct("!HH")


class RtpParseError(RemoteProtocolError):
    """Bytes from the wire are not a well-formed RTP packet; the reason names the defect."""


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The RTP header of RFC 3550 section 5.1, version 2 only.

    Building one checks field ranges (a suite bug otherwise goes out on the wire silently); a
    step that needs an out-of-range header crafts the bytes itself.
    """

    payload_type: int
    """7-bit payload type (0 is PCMU)."""
    sequence_number: int
    """16-bit sequence number."""
    timestamp: int
    """32-bit media timestamp."""
    ssrc: int
    """32-bit synchronisation source."""
    marker: bool = False
    """The M bit (start of a talk spurt for audio)."""
    csrcs: tuple[int, ...] = ()
    """Contributing sources (at most 15), as a mixer lists them."""
    extension_profile: int | None = None
    """16-bit "defined by profile" value of the header extension; None when there is none."""
    extension_data: bytes = b""
    """Header extension body, a multiple of 4 octets long."""

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 0x7F:
            raise LocalProtocolError(f"RTP payload type {self.payload_type} is not 7 bits")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise LocalProtocolError(f"RTP sequence number {self.sequence_number} is not 16 bits")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise LocalProtocolError(f"RTP timestamp {self.timestamp} is not 32 bits")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise LocalProtocolError(f"RTP SSRC {self.ssrc} is not 32 bits")
        if len(self.csrcs) > 15:
            raise LocalProtocolError(f"{len(self.csrcs)} CSRCs do not fit the 4-bit CC field")
        if any(not 0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise LocalProtocolError("a CSRC is not 32 bits")
        if self.extension_profile is None:
            if self.extension_data:
                raise LocalProtocolError("extension data given without an extension profile")
        else:
            if not 0 <= self.extension_profile <= 0xFFFF:
                raise LocalProtocolError("RTP extension profile is not 16 bits")
            if len(self.extension_data) % 4 or len(self.extension_data) > 4 * 0xFFFF:
                raise LocalProtocolError("RTP extension data is not a whole number of words")

    @property
    def length(self) -> int:
        """Encoded length in octets (fixed part, CSRCs and extension)."""
        n = RTP_HEADER_LEN + 4 * len(self.csrcs)
        if self.extension_profile is not None:
            n += 4 + len(self.extension_data)
        return n

    def to_bytes(self, *, padding: bool = False) -> bytes:
        """Serialise; `padding` sets the P bit (the packet adds the padding octets)."""
        b0 = 0x80 | (0x20 if padding else 0) | len(self.csrcs)
        if self.extension_profile is not None:
            b0 |= 0x10
        out = [
            _FIXED.pack(
                b0,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrcs:
            out.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension_profile is not None:
            out.append(_EXT.pack(self.extension_profile, len(self.extension_data) // 4))
            out.append(self.extension_data)
        return b"".join(out)

    @classmethod
    def parse(cls, data: bytes) -> tuple[RtpHeader, int, bool]:
        """Parse the header at the start of `data`.

        Returns `(header, header_length, padding_bit)`; the caller decides what the padding
        means, because only the whole packet knows where it ends.
        """
        n = len(data)
        if n < RTP_HEADER_LEN:
            raise RtpParseError(
                f"RTP packet too short: {n} octets, the fixed header needs {RTP_HEADER_LEN}",
                offset=n,
            )
        b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
        version = b0 >> 6
        if version != RTP_VERSION:
            raise RtpParseError(f"bad RTP version {version}, expected 2", offset=0)
        cc = b0 & 0x0F
        pos = RTP_HEADER_LEN + 4 * cc
        if pos > n:
            raise RtpParseError(
                f"CSRC count {cc} needs {pos} header octets but the packet has {n}", offset=n
            )
        csrcs = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_LEN) if cc else ()
        ext_profile: int | None = None
        ext_data = b""
        if b0 & 0x10:
            if pos + 4 > n:
                raise RtpParseError(
                    "RTP header extension flagged but its 4-octet header is missing", offset=n
                )
            ext_profile, words = _EXT.unpack_from(data, pos)
            end = pos + 4 + 4 * words
            if end > n:
                raise RtpParseError(
                    f"RTP header extension of {words} words runs past the end of the packet",
                    offset=n,
                )
            ext_data = bytes(data[pos + 4 : end])
            pos = end
        header = cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            marker=bool(b1 & 0x80),
            csrcs=tuple(csrcs),
            extension_profile=ext_profile,
            extension_data=ext_data,
        )
        return header, pos, bool(b0 & 0x20)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet: header, payload and padding.

    `raw` keeps the bytes parsed (None when built) so that evidence shows what was on the wire.
    """

    header: RtpHeader
    payload: bytes = b""
    padding_size: int = 0
    """Number of padding octets including the final count octet; 0 when the P bit is clear."""
    raw: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.padding_size <= 255:
            raise LocalProtocolError(f"RTP padding of {self.padding_size} octets is not 0..255")

    # Shortcuts to the header fields most callers want.
    @property
    def ssrc(self) -> int:
        return self.header.ssrc

    @property
    def sequence_number(self) -> int:
        return self.header.sequence_number

    @property
    def timestamp(self) -> int:
        return self.header.timestamp

    @property
    def payload_type(self) -> int:
        return self.header.payload_type

    @property
    def marker(self) -> bool:
        return self.header.marker

    def to_bytes(self) -> bytes:
        """Serialise; padding octets are zero except the last, which holds the count."""
        head = self.header.to_bytes(padding=self.padding_size > 0)
        if not self.padding_size:
            return head + self.payload
        pad = bytes(self.padding_size - 1) + bytes((self.padding_size,))
        return head + self.payload + pad

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raises `RtpParseError` naming the defect."""
        header, pos, padded = RtpHeader.parse(data)
        end = len(data)
        padding = 0
        if padded:
            if end == pos:
                raise RtpParseError(
                    "RTP padding bit set but there is no octet after the header", offset=end
                )
            padding = data[-1]
            if padding == 0:
                raise RtpParseError("RTP padding count is zero", offset=end - 1)
            if padding > end - pos:
                raise RtpParseError(
                    f"RTP padding count {padding} exceeds the {end - pos} octets after the header",
                    offset=end - 1,
                )
        return cls(header, bytes(data[pos : end - padding]), padding, raw=bytes(data))


# ---------------------------------------------------------------------------------------------
# Hot path: no dataclass, one struct call each.


def peek_ssrc_seq(data: bytes) -> tuple[int, int]:
    """Return `(ssrc, sequence_number)` of an RTP/SRTP packet without parsing the rest.

    Enough to demultiplex or to index a packet; raises `RtpParseError` if it is too short or
    not version 2, so that a caller never mistakes garbage for a stream.
    """
    if len(data) < RTP_HEADER_LEN:
        raise RtpParseError(
            f"RTP packet too short: {len(data)} octets, the fixed header needs {RTP_HEADER_LEN}",
            offset=len(data),
        )
    if data[0] >> 6 != RTP_VERSION:
        raise RtpParseError(f"bad RTP version {data[0] >> 6}, expected 2", offset=0)
    seq, ssrc = _SEQ_SSRC.unpack_from(data)
    return ssrc, seq


def rtp_header_length(data: bytes) -> int:
    """Length of the RTP header (fixed part, CSRCs, extension) at the start of `data`.

    This is also what SRTP authenticates but does not encrypt, and GCM's associated data.
    """
    n = len(data)
    if n < RTP_HEADER_LEN:
        raise RtpParseError(
            f"RTP packet too short: {n} octets, the fixed header needs {RTP_HEADER_LEN}", offset=n
        )
    b0 = data[0]
    if b0 >> 6 != RTP_VERSION:
        raise RtpParseError(f"bad RTP version {b0 >> 6}, expected 2", offset=0)
    pos = RTP_HEADER_LEN + 4 * (b0 & 0x0F)
    if pos > n:
        raise RtpParseError(
            f"CSRC count {b0 & 0x0F} needs {pos} header octets but the packet has {n}", offset=n
        )
    if b0 & 0x10:
        if pos + 4 > n:
            raise RtpParseError(
                "RTP header extension flagged but its 4-octet header is missing", offset=n
            )
        pos += 4 + 4 * _U16.unpack_from(data, pos + 2)[0]
        if pos > n:
            raise RtpParseError("RTP header extension runs past the end of the packet", offset=n)
    return pos


def rtp_payload_bounds(data: bytes) -> tuple[int, int]:
    """`(start, end)` of the payload of a plain RTP packet, padding removed.

    For a media leg that wants `data[start:end]` without building an `RtpPacket`.
    """
    start = rtp_header_length(data)
    end = len(data)
    if data[0] & 0x20:
        if end == start:
            raise RtpParseError(
                "RTP padding bit set but there is no octet after the header", offset=end
            )
        pad = data[-1]
        if pad == 0 or pad > end - start:
            raise RtpParseError(f"bad RTP padding count {pad}", offset=end - 1)
        end -= pad
    return start, end


def build_rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    """Build a plain RTP packet (no CSRC, extension or padding) in one `struct` call.

    `seq` and `ts` are reduced modulo 2**16 and 2**32 so that a sender can keep plain counters
    across wrap-around.
    """
    return (
        _FIXED.pack(0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        + payload
    )


def looks_like_rtcp(data: bytes) -> bool:
    """True when a muxed packet is RTCP rather than RTP (RFC 5761 section 4: PT 64..95).

    RTCP packet types 192..223 put 64..95 in the RTP payload-type position; a leg with
    rtcp-mux uses this to keep RTCP out of its RTP statistics.
    """
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223
