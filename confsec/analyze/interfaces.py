"""O1 on the wire: what crosses the AS/MRFC/MRFP interfaces unprotected, and key material in it.

On the ports named as interfaces, TCP is reassembled per direction and walked record by record
(`confsec.analyze.tcp`), so only bytes that are not TLS records are unprotected; UDP that is not
ESP is unprotected; ESP whose trailer reads in the clear uses null encryption; key material
(known keys, `inline:` SDES values, `"key":` fields) in the clear is key material in the clear.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from confsec.analyze.findings import EXAMPLES, SrtpKey, Tally, Unjudged
from confsec.analyze.pcap import Packet, TcpPacket
from confsec.analyze.tcp import SYN, Chunk, TcpStream, TlsRecords

_INLINE = re.compile(rb"inline:[A-Za-z0-9+/]{20,}={0,2}")
_KEY_FIELD = re.compile(rb'"(?:master_?)?(?:key|salt)"\s*:[^,}]{0,40}?"[A-Za-z0-9+/]{16,}={0,2}"')
_TAIL = 160  # bytes of clear O1 data kept so that a key cut across segments is still found


@dataclass(slots=True)
class _TcpDirection:
    stream: TcpStream
    records: TlsRecords | None = None
    held_frames: list[int] = field(default_factory=list)
    """Frames whose bytes wait in an unsynced `records` for a record boundary."""
    tail: bytes = b""


class InterfaceChecks:
    """The O1 observer: `packet()` for each packet on an interface port, `esp()` for each ESP
    packet anywhere, `keys_changed()` when the known keys grow, `finish()` at the end."""

    def __init__(self, tally: Tally, keys: list[SrtpKey]):
        self.tally = tally
        self.checks = tally.checks
        self.keys = keys
        """The known keys; the analyser appends to this list as signalling reveals more."""
        self._needles = self._key_needles()
        # (src, dst, SPI) -> [packets, packets whose trailer reads in the clear, first frame]
        self._esp_sas: dict[tuple[str, str, bytes], list[int]] = {}
        self._tcp: dict[tuple[str, int, str, int], _TcpDirection] = {}

    def keys_changed(self) -> None:
        """The known keys grew: search for the new ones too."""
        self._needles = self._key_needles()

    # -- the pass ------------------------------------------------------------------------------

    def packet(self, p: Packet) -> None:
        """A packet to or from an interface port (other than ESP)."""
        data = p.payload
        if not isinstance(p, TcpPacket):
            if data:
                self.checks.o1_packets += 1
                where = f"{p.src}:{p.sport} -> {p.dst}:{p.dport}"
                self._clear(where, [p.frame], data, b"")
            return
        k = (p.src, p.sport, p.dst, p.dport)
        d = self._tcp.get(k)
        if d is None or (p.flags & SYN and d.stream.next is not None and d.stream.isn != p.seq):
            if d is not None:  # the 4-tuple is reused by a new connection
                self._tcp_done(k, d)
            d = self._tcp[k] = _TcpDirection(TcpStream())
        if data:
            self.checks.o1_packets += 1
        for chunk in d.stream.feed(p.seq, p.flags, data, p.frame):
            self._bytes(k, d, chunk)

    def _bytes(self, k: tuple[str, int, str, int], d: _TcpDirection, chunk: Chunk) -> None:
        r = d.records
        if r is None:
            r = d.records = TlsRecords(synced=d.stream.isn is not None)
            self.checks.tcp_streams += 1
        if chunk.gap:
            r.resync()
        before = r.records
        clear = r.feed(chunk.data)
        self.checks.o1_tls += r.records - before
        if clear:
            frames, d.held_frames = [*d.held_frames, chunk.frame], []
            where = f"{k[0]}:{k[1]} -> {k[2]}:{k[3]}"
            self._clear(where, frames, clear, d.tail)
            d.tail = (d.tail + clear)[-_TAIL:]
        elif r.unsynced:
            d.held_frames.append(chunk.frame)
        elif d.held_frames:
            d.held_frames = []

    def _clear(self, where: str, frames: list[int], data: bytes, tail: bytes) -> None:
        """Bytes on an interface port that are neither ESP nor TLS records."""
        needle = self._key_in(tail + data, len(tail))
        if needle:
            self.tally.finding(
                "o1-interfaces",
                "O1",
                "key-material-in-clear",
                f"key material in the clear ({needle}) on the AS/MRFC/MRFP interface {where}",
            ).add(frames[-1])
        f = self.tally.finding(
            "o1-interfaces",
            "O1",
            "unprotected-interface",
            f"traffic neither in ESP nor TLS on the AS/MRFC/MRFP interface {where}",
        )
        for frame in frames:
            f.add(frame)

    def _tcp_done(self, k: tuple[str, int, str, int], d: _TcpDirection) -> None:
        """A direction is over: name the bytes it could not judge (holes, no boundary)."""
        self.checks.tcp_retransmitted += d.stream.retransmitted
        missing = d.stream.unjudged_bytes()
        r = d.records
        unsynced = (r.buffered if r.unsynced else 0) + r.dropped if r is not None else 0
        if not missing + unsynced:
            return
        self.checks.o1_unjudged_bytes += missing + unsynced
        why = []
        if missing:
            why.append(
                f"{missing} bytes could not be put in order: a segment is missing from the "
                "capture (the hole and what came after it)"
            )
        if unsynced:
            why.append(
                f"{unsynced} bytes showed no TLS record boundary (the capture began inside the "
                "connection, or a hole came, before one could be found)"
            )
        self.tally.unjudged.append(
            Unjudged(
                "o1-interfaces",
                "O1",
                f"TCP {k[0]}:{k[1]} -> {k[2]}:{k[3]}",
                "; ".join(why),
                0,
                missing + unsynced,
                sorted([*d.held_frames, *(f for f, _d in d.stream.pending.values())])[:EXAMPLES],
            )
        )

    def esp(self, p: Packet) -> None:
        self.checks.esp += 1
        sa = self._esp_sas.setdefault((p.src, p.dst, p.payload[:4]), [0, 0, p.frame])
        sa[0] += 1
        if _null_esp(p.payload):
            sa[1] += 1
        if self._key_in(p.payload):
            self.tally.finding(
                "o1-interfaces",
                "O1",
                "key-material-in-clear",
                f"key material readable inside ESP {p.src} -> {p.dst}",
            ).add(p.frame)

    def _key_needles(self) -> list[tuple[bytes, str]]:
        out = []
        for k in self.keys:
            out.append((k.key, "a known SRTP master key, raw"))
            out.append((base64.b64encode(k.key + k.salt)[:20], "a known SRTP key, base64"))
            out.append((k.key.hex().encode(), "a known SRTP master key, hex"))
        return out

    def _key_in(self, data: bytes, start: int = 0) -> str | None:
        """What key material `data` holds, if any, ending after `start` (the bytes before
        `start` were searched with the previous segment)."""
        for needle, what in self._needles:
            at = data.find(needle, max(0, start - len(needle) + 1))
            if at >= 0:
                return what
        for rx, what in ((_INLINE, "an SDES inline: key"), (_KEY_FIELD, 'a "key"/"salt" field')):
            for m in rx.finditer(data):
                if m.end() > start:
                    return what
        return None

    # -- results -------------------------------------------------------------------------------

    def finish(self) -> None:
        """At the end of the pass: the TCP directions' unjudged bytes, then the null ESP SAs
        (an SA is judged on all its packets, never on one)."""
        for k, d in self._tcp.items():
            self._tcp_done(k, d)
        for (src, dst, spi), (total, clear, first) in self._esp_sas.items():
            # A trailer of an encrypted packet reads right by chance about once in 10^4
            # packets; an SA is judged null when most of its packets read in the clear.
            if clear * 2 >= total:
                f = self.tally.finding(
                    "o1-interfaces",
                    "O1",
                    "null-esp",
                    f"ESP with NULL encryption (trailers read in the clear) {src} -> {dst} "
                    f"SPI 0x{spi.hex()}",
                )
                f.add(first)
                f.count = clear


def _null_esp(payload: bytes) -> bool:
    """ESP-NULL (RFC 2410) leaves the trailer readable: pad bytes 1,2,..,n then n, next header.

    Tried with the usual ICV lengths; an encrypted trailer matches by chance about once in
    tens of thousands of packets, and one packet alone is never what a finding rests on.
    """
    body = payload[8:]
    for icv in (12, 16, 0):
        if len(body) < icv + 2:
            continue
        end = len(body) - icv
        pad, nxt = body[end - 2], body[end - 1]
        if nxt not in (4, 6, 17, 41, 50, 59) or end - 2 - pad < 0:
            continue
        if all(body[end - 2 - pad + i] == i + 1 for i in range(pad)):
            return True
    return False
