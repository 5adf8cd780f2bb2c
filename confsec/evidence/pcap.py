"""A minimal pcap writer: synthesises IPv4/UDP/TCP frames from what the suite recorded.

The suite sees SIP after TLS decryption (the UA trace) and SRTP datagrams as they arrived; it
does not sniff the interface (no privileges, no libpcap on the hot path). So the capture is
rebuilt from those records with struct: each SIP message becomes one TCP segment (or UDP
datagram) between the real socket addresses, in plaintext, so that Wireshark dissects it with
"Decode As... SIP"; each SRTP datagram keeps its real ports. struct, not scapy: scapy builds
about 7 k packets/s, which would make the report cost grow with the run.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

LINKTYPE_IPV4 = 228  # raw IPv4, no link-layer header


@dataclass(frozen=True)
class Frame:
    """One record: when, between which sockets, over which transport, carrying what."""

    time: float
    transport: str  # 'udp' or 'tcp' (a TLS flow is written as the TCP it rides on)
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip4(host: str) -> bytes:
    try:
        return ipaddress.IPv4Address(host).packed
    except ValueError:
        return ipaddress.IPv4Address("127.0.0.1").packed  # IPv6/names: keep the ports honest


@dataclass
class PcapWriter:
    """Collects frames, then writes them in time order (libpcap format, microseconds)."""

    frames: list[Frame] = field(default_factory=list)
    _seq: dict[tuple[tuple[str, int], tuple[str, int]], int] = field(default_factory=dict)

    def add(self, frame: Frame) -> None:
        self.frames.append(frame)

    def _packet(self, f: Frame) -> bytes:
        src, dst = _ip4(f.src[0]), _ip4(f.dst[0])
        payload = f.payload[:65000]
        if f.transport == "udp":
            l4 = struct.pack("!HHHH", f.src[1], f.dst[1], 8 + len(payload), 0) + payload
            proto = 17
        else:
            key = (f.src, f.dst)
            seq = self._seq.get(key, 1)
            self._seq[key] = (seq + len(payload)) & 0xFFFFFFFF
            ack = self._seq.get((f.dst, f.src), 1)
            # data offset 5 words, flags PSH|ACK, window 65535, checksum 0 (not validated)
            l4 = struct.pack("!HHIIBBHHH", f.src[1], f.dst[1], seq, ack, 0x50, 0x18, 65535, 0, 0)
            l4 += payload
            proto = 6
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src, dst
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return header + l4

    def to_bytes(self) -> bytes:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_IPV4)]
        self._seq.clear()
        for f in sorted(self.frames, key=lambda fr: fr.time):
            pkt = self._packet(f)
            sec = int(f.time)
            usec = int((f.time - sec) * 1_000_000)
            out.append(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)))
            out.append(pkt)
        return b"".join(out)

    def write(self, path: Path) -> None:
        path.write_bytes(self.to_bytes())


def read_pcap(data: bytes) -> list[tuple[float, bytes]]:
    """(time, IPv4 packet) records of a pcap written by `PcapWriter` (for tests and `verify`)."""
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    if magic != 0xA1B2C3D4 or linktype != LINKTYPE_IPV4:
        raise ValueError("not a confsec pcap (little-endian, LINKTYPE_IPV4)")
    pos, records = 24, []
    while pos + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, pos)
        pos += 16
        records.append((sec + usec / 1e6, data[pos : pos + incl]))
        pos += incl
    return records
