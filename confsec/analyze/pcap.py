"""Fast capture reading: classic pcap with `struct`, pcapng through scapy's raw reader.

A vendor's capture of a conference can hold millions of packets; dissecting each with scapy
runs at a few thousand packets a second, so frames are read as bytes and only the few headers
the checks need (link, IPv4/IPv6, UDP, TCP, ESP) are unpacked with precompiled structs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confsec.errors import ConfigError

LINK_NULL = 0
LINK_ETHERNET = 1
LINK_RAW = 101
LINK_LINUX_SLL = 113
LINK_RAW_IPV4 = 228
LINK_RAW_IPV6 = 229
LINK_LINUX_SLL2 = 276

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ESP = 50

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanosecond variant
    b"\xa1\xb2\x3c\x4d": ">",
}
_PCAPNG = b"\x0a\x0d\x0d\x0a"


@dataclass(frozen=True, slots=True)
class Packet:
    """One IP packet above the link layer: what every check looks at."""

    frame: int
    proto: int
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class TcpPacket(Packet):
    """A TCP segment: also what O1 needs to put the stream back in order.

    A subclass rather than two more fields on `Packet`, because a frozen dataclass pays for
    every field on construction, and UDP media is most of a capture (about 200 ns a packet).
    """

    seq: int = 0
    flags: int = 0
    """The flags byte (FIN 0x01, SYN 0x02, RST 0x04, ...)."""


def read_frames(path: Path) -> tuple[int, Iterator[bytes]]:
    """The link type and an iterator over the raw frames of a pcap or pcapng file."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the capture: {exc.strerror}") from None
    magic = f.read(4)
    if magic in _MAGIC:
        endian = _MAGIC[magic]
        header = f.read(20)
        if len(header) < 20:
            f.close()
            raise ConfigError(f"{path}: truncated pcap header")
        linktype = struct.unpack(endian + "HHiIII", header)[5] & 0x0FFFFFFF
        return linktype, _pcap_frames(f, endian)
    f.close()
    if magic == _PCAPNG:
        return _pcapng(path)
    raise ConfigError(f"{path}: not a pcap or pcapng capture (magic {magic.hex()})")


def _pcap_frames(f, endian: str) -> Iterator[bytes]:
    rec = struct.Struct(endian + "IIII")
    read = f.read
    try:
        while True:
            h = read(16)
            if len(h) < 16:
                return
            incl = rec.unpack(h)[2]
            data = read(incl)
            if len(data) < incl:
                return  # a capture cut short: keep what was complete
            yield data
    finally:
        f.close()


def _pcapng(path: Path) -> tuple[int, Iterator[bytes]]:
    from scapy.utils import RawPcapNgReader

    reader = RawPcapNgReader(str(path))

    def frames() -> Iterator[bytes]:
        try:
            for data, _meta in reader:
                yield data
        finally:
            reader.close()

    # scapy reads the first interface block on open; one link type per file is assumed.
    linktype = reader.interfaces[0][0] if reader.interfaces else LINK_ETHERNET
    return linktype, frames()


_V4 = struct.Struct("!BBHHHBBH4s4s")
_PORTS = struct.Struct("!HH")
_TCP = struct.Struct("!HHI")


def packets(path: Path) -> Iterator[Packet]:
    """Every IPv4/IPv6 UDP, TCP or ESP packet of the capture, numbered like Wireshark frames."""
    linktype, frames = read_frames(path)
    offset_of = _link_offset(linktype, path)
    from ipaddress import IPv6Address

    names: dict[bytes, str] = {}
    for n, frame in enumerate(frames, 1):
        off = offset_of(frame)
        if off is None or len(frame) < off + 20:
            continue
        version = frame[off] >> 4
        if version == 4:
            ihl = (frame[off] & 0x0F) * 4
            total = (frame[off + 2] << 8) | frame[off + 3]
            if frame[off + 6] & 0x1F or frame[off + 7]:
                continue  # a non-first fragment has no transport header
            proto = frame[off + 9]
            sa, da = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
            end = off + total if total else len(frame)
            l4 = off + ihl
        elif version == 6:
            proto = frame[off + 6]
            sa, da = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
            end = off + 40 + ((frame[off + 4] << 8) | frame[off + 5])
            l4 = off + 40
        else:
            continue
        src = names.get(sa)
        if src is None:
            src = names[sa] = ".".join(map(str, sa)) if len(sa) == 4 else str(IPv6Address(sa))
        dst = names.get(da)
        if dst is None:
            dst = names[da] = ".".join(map(str, da)) if len(da) == 4 else str(IPv6Address(da))
        if proto == PROTO_UDP:
            sport, dport = _PORTS.unpack_from(frame, l4)
            yield Packet(n, proto, src, dst, sport, dport, frame[l4 + 8 : end])
        elif proto == PROTO_TCP:
            if len(frame) < l4 + 20:
                continue  # cut short by the snap length: no whole TCP header
            sport, dport, seq = _TCP.unpack_from(frame, l4)
            doff = (frame[l4 + 12] >> 4) * 4
            yield TcpPacket(
                n, proto, src, dst, sport, dport, frame[l4 + doff : end], seq, frame[l4 + 13]
            )
        elif proto == PROTO_ESP:
            yield Packet(n, proto, src, dst, 0, 0, frame[l4:end])


def _link_offset(linktype: int, path: Path):
    if linktype == LINK_ETHERNET:

        def eth(frame: bytes) -> int | None:
            et = (frame[12] << 8) | frame[13]
            off = 14
            while et == 0x8100 and len(frame) >= off + 4:  # VLAN tags
                et = (frame[off + 2] << 8) | frame[off + 3]
                off += 4
            return off if et in (0x0800, 0x86DD) else None

        return eth
    if linktype in (LINK_RAW, LINK_RAW_IPV4, LINK_RAW_IPV6):
        return lambda frame: 0
    if linktype == LINK_NULL:
        return lambda frame: 4
    if linktype == LINK_LINUX_SLL:
        return lambda frame: 16
    if linktype == LINK_LINUX_SLL2:
        return lambda frame: 20
    raise ConfigError(f"{path}: link type {linktype} is not supported (Ethernet, raw IP, SLL)")
