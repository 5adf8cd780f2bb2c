"""RTCP packets and the SRTCP trailer, sans-IO (RFC 3550 6, RFC 3711 3.4).

A participant that speaks RTCP the way real stacks do sends compound packets: a sender (or
receiver) report first, an SDES CNAME, and a BYE when it leaves (RFC 3550 6.1). The builders
here make them; `parse_compound` reads one back, checking that its lengths add up. What sits
after the compound tells RTCP from SRTCP: plain RTCP ends exactly where its lengths say
(`is_plain_rtcp`), SRTCP carries a 32-bit word (E flag and 31-bit index), an optional MKI and
the authentication tag (`srtcp_trailer`). The same reading serves the live checks, the
reference's mixer and the capture analyser.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from confsec.errors import RemoteProtocolError

__all__ = [
    "APP",
    "BYE",
    "RR",
    "SDES",
    "SR",
    "TYPE_NAMES",
    "RtcpPacket",
    "RtcpParseError",
    "bye",
    "compound",
    "is_plain_rtcp",
    "parse_compound",
    "receiver_report",
    "sdes_cname",
    "sender_report",
    "srtcp_trailer",
]

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204
TYPE_NAMES = {SR: "SR", RR: "RR", SDES: "SDES", BYE: "BYE", APP: "APP"}
_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SR_INFO = struct.Struct("!IIIII")  # NTP msw, NTP lsw, RTP timestamp, packets, octets


class RtcpParseError(RemoteProtocolError):
    """Bytes that are not an RTCP compound packet."""


@dataclass(frozen=True, slots=True)
class RtcpPacket:
    """One packet of a compound: its type, the SSRC it is about (its first word), its size."""

    packet_type: int
    ssrc: int
    length: int
    """In octets, header included."""


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    padded = body + bytes(-len(body) % 4)
    return _HEADER.pack(0x80 | count, packet_type, len(padded) // 4) + padded


def sender_report(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    """An SR without report blocks (RFC 3550 6.4.1); `ntp` is the 64-bit NTP timestamp."""
    info = _SR_INFO.pack(ntp >> 32, ntp & 0xFFFFFFFF, rtp_ts & 0xFFFFFFFF, packets, octets)
    return _packet(SR, 0, _SSRC.pack(ssrc) + info)


def receiver_report(ssrc: int) -> bytes:
    """An RR without report blocks (RFC 3550 6.4.2): what a receiver that sends nothing says."""
    return _packet(RR, 0, _SSRC.pack(ssrc))


def sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with one chunk: the CNAME item, then the end of the item list."""
    text = cname.encode()[:255]
    chunk = _SSRC.pack(ssrc) + bytes([1, len(text)]) + text + b"\x00"
    return _packet(SDES, 1, chunk)


def bye(ssrc: int, reason: str = "") -> bytes:
    """A BYE for one SSRC, with an optional reason (RFC 3550 6.6)."""
    text = reason.encode()[:255]
    return _packet(BYE, 1, _SSRC.pack(ssrc) + (bytes([len(text)]) + text if text else b""))


def compound(*packets: bytes) -> bytes:
    return b"".join(packets)


def parse_compound(data: bytes, trailer: int = 0) -> list[RtcpPacket]:
    """The packets of a compound that fills `data` but for `trailer` octets at its end (0 for
    plain RTCP; the SRTCP word, MKI and tag otherwise). Raises `RtcpParseError`."""
    end = len(data) - trailer
    if end < 8:
        raise RtcpParseError(f"{end} octets is shorter than an RTCP header and an SSRC")
    out = []
    off = 0
    while off < end:
        if off + 8 > end:
            raise RtcpParseError(f"an RTCP packet header at octet {off} is cut short")
        first, packet_type, words = _HEADER.unpack_from(data, off)
        if first >> 6 != 2:
            raise RtcpParseError(f"RTCP version {first >> 6} at octet {off}, expected 2")
        if not 192 <= packet_type <= 223:
            raise RtcpParseError(f"packet type {packet_type} at octet {off} is not RTCP")
        size = 4 * (words + 1)
        if off + size > end:
            raise RtcpParseError(f"the RTCP packet at octet {off} claims {size} octets")
        out.append(RtcpPacket(packet_type, _SSRC.unpack_from(data, off + 4)[0], size))
        off += size
    return out


def is_plain_rtcp(data: bytes) -> bool:
    """RTCP whose compound lengths add up to the datagram: nothing after them, so no SRTCP
    E flag and index and no tag (RFC 3711 3.4)."""
    try:
        parse_compound(data)
    except RtcpParseError:
        return False
    return True


def srtcp_trailer(data: bytes, tag_len: int, mki_len: int = 0) -> tuple[bool, int] | None:
    """(encrypted, SRTCP index) of an SRTCP packet with a `tag_len`-octet tag, or None when
    `data` cannot be one. Only the first header and SSRC of an SRTCP compound are in clear
    (RFC 3711 3.4: encryption starts at octet 8), so only they are checked; a packet whose
    compound lengths fill the datagram is plain RTCP, not SRTCP with a tag."""
    trailer = 4 + mki_len + tag_len
    if len(data) < 8 + trailer or data[0] >> 6 != 2 or not 200 <= data[1] <= 201:
        return None
    if is_plain_rtcp(data):
        return None
    word = _SSRC.unpack_from(data, len(data) - trailer)[0]
    return bool(word >> 31), word & 0x7FFFFFFF
