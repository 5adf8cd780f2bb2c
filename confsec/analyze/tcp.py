"""TCP reassembly and TLS record walking for O1: judge a connection's bytes, not its segments.

A TLS record is up to 16 KiB plus overhead and TCP cuts it wherever the segment size falls, so
judging each segment alone reads the second half of every split record as "not TLS" and fails
O1 on a perfectly protected interface. Each direction of a connection is therefore put back in
order by sequence number (RFC 793 3.3, 3.9: retransmitted and overlapping bytes are delivered
once; segments that arrive early wait, within bounds) and then walked record header by record
header (RFC 8446 5.1, RFC 5246 6.2.1).

Both are sans-IO and keep little: `TcpStream` holds only segments that arrived ahead of a hole
(at most `MAX_PENDING_SEGMENTS` / `MAX_PENDING_BYTES`, after which the hole is skipped and
reported), and `TlsRecords` holds a partial record header, never a record body, except while it
looks for the first record boundary of a connection whose start the capture missed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

SYN = 0x02
_MOD = 1 << 32
_HALF = 1 << 31
MAX_RECORD = (1 << 14) + 2048
"""The largest TLSCiphertext.length (RFC 5246 6.2.3; TLS 1.3 allows less, 2^14 + 256)."""


class Chunk(NamedTuple):
    """Bytes delivered in stream order, with the frame that carried them."""

    frame: int
    data: bytes
    gap: int = 0
    """Bytes of the stream the capture does not have, just before `data` (a skipped hole)."""


class TcpStream:
    """One direction of one TCP connection, put back in sequence order."""

    MAX_PENDING_SEGMENTS = 256
    MAX_PENDING_BYTES = 1 << 20

    __slots__ = ("bytes", "isn", "missing", "next", "pending", "pending_bytes", "retransmitted")

    def __init__(self) -> None:
        self.isn: int | None = None
        """The SYN's sequence number, when the capture holds the connection's start."""
        self.next: int | None = None
        self.pending: dict[int, tuple[int, bytes]] = {}
        self.pending_bytes = 0
        self.retransmitted = 0
        """Segments (or parts) that repeated bytes already delivered, dropped."""
        self.missing = 0
        """Bytes of holes skipped because the data waiting behind them exceeded the bounds."""
        self.bytes = 0
        """Bytes delivered."""

    def feed(self, seq: int, flags: int, payload: bytes, frame: int) -> list[Chunk]:
        """One segment in; the bytes it makes deliverable (possibly none) out, in order."""
        if flags & SYN:
            if self.next is None:
                self.isn = seq
                self.next = (seq + 1) % _MOD
            seq = (seq + 1) % _MOD  # the SYN takes one sequence number; any data follows it
        if not payload:
            return []
        if self.next is None:
            self.next = seq  # the capture began after the SYN: start where we came in
        ahead = (seq - self.next) % _MOD
        if ahead >= _HALF:  # starts before the delivered point: a retransmission, maybe longer
            old = (self.next - seq) % _MOD
            if old >= len(payload):
                self.retransmitted += 1
                return []
            payload, ahead = payload[old:], 0
        if ahead:
            held = self.pending.get(seq)
            if held is not None:
                if len(held[1]) >= len(payload):
                    self.retransmitted += 1
                    return []
                self.pending_bytes -= len(held[1])
            self.pending[seq] = (frame, payload)
            self.pending_bytes += len(payload)
            if (
                len(self.pending) > self.MAX_PENDING_SEGMENTS
                or self.pending_bytes > self.MAX_PENDING_BYTES
            ):
                return self._skip_hole()
            return []
        out = [Chunk(frame, payload)]
        self._advance(len(payload))
        if self.pending:
            self._drain(out)
        return out

    def _advance(self, n: int) -> None:
        assert self.next is not None
        self.next = (self.next + n) % _MOD
        self.bytes += n

    def _drain(self, out: list[Chunk], gap: int = 0) -> None:
        """Deliver what waited behind the point just reached, trimming overlaps."""
        while self.pending:
            assert self.next is not None
            hit = self.pending.pop(self.next, None)
            if hit is None:  # not an exact fit: anything starting before next overlaps it
                start = next((s for s in self.pending if (s - self.next) % _MOD >= _HALF), None)
                if start is None:
                    return
                hit = self.pending.pop(start)
                old = (self.next - start) % _MOD
                self.pending_bytes -= len(hit[1])
                if old >= len(hit[1]):
                    self.retransmitted += 1
                    continue
                hit = (hit[0], hit[1][old:])
            else:
                self.pending_bytes -= len(hit[1])
            out.append(Chunk(hit[0], hit[1], gap))
            gap = 0
            self._advance(len(hit[1]))

    def _skip_hole(self) -> list[Chunk]:
        """Too much waits behind a hole: give the hole up as missing and go on after it."""
        assert self.next is not None
        base = self.next
        first = min(self.pending, key=lambda s: (s - base) % _MOD)
        gap = (first - base) % _MOD
        self.missing += gap
        self.next = first
        out: list[Chunk] = []
        self._drain(out, gap)
        return out

    def unjudged_bytes(self) -> int:
        """Bytes of the stream never delivered: skipped holes, and at the end everything from
        the delivered point to the end of the furthest segment still waiting."""
        span = 0
        if self.pending and self.next is not None:
            base = self.next
            span = max((s - base) % _MOD + len(d) for s, (_f, d) in self.pending.items())
        return self.missing + span


_CANDIDATE = re.compile(rb"[\x14-\x18]\x03[\x00-\x04]")
_TEXT = re.compile(rb"[\t\n\r\x20-\x7e]{16}")
_SYNC_LIMIT = 2 * (MAX_RECORD + 5)


def record_length(header: bytes | bytearray) -> int:
    """The length a 5-byte TLS record header announces, or -1 if it is not one.

    Content types 20..24 (change_cipher_spec, alert, handshake, application_data, heartbeat),
    legacy version 3.0 to 3.4, length within `MAX_RECORD`.
    """
    if 20 <= header[0] <= 24 and header[1] == 3 and header[2] <= 4:
        length = (header[3] << 8) | header[4]
        if length <= MAX_RECORD:
            return length
    return -1


class TlsRecords:
    """Walks one direction's bytes record by record; says when they stop being TLS.

    With the connection's start in the capture (`synced`), the first byte must begin a record.
    Without it, the capture may have begun inside a record, so a record boundary is looked for:
    a header whose record ends exactly where the bytes seen so far end (senders flush whole
    records) or is followed by another header. Bytes that begin with 16 printable characters
    are not ciphertext (a random byte is printable with probability 0.38; 16 in a row, 2e-7),
    and a stream that shows no boundary within two maximal records is not TLS either.
    """

    SYNCED, UNSYNCED, CLEAR = 0, 1, 2

    __slots__ = ("buf", "dropped", "hdr", "need", "records", "skipped", "state")

    def __init__(self, synced: bool) -> None:
        self.state = self.SYNCED if synced else self.UNSYNCED
        self.hdr = b""
        self.need = 0
        self.records = 0
        """Record headers read."""
        self.skipped = 0
        """Bytes before the first record boundary found (the capture began mid-record)."""
        self.dropped = 0
        """Bytes given up unjudged when a hole came before their record boundary was found."""
        self.buf = bytearray()

    @property
    def clear(self) -> bool:
        return self.state == self.CLEAR

    @property
    def unsynced(self) -> bool:
        return self.state == self.UNSYNCED

    @property
    def buffered(self) -> int:
        """Bytes held: a partial header, or what waits for a record boundary."""
        return len(self.hdr) + len(self.buf)

    def resync(self) -> None:
        """After a hole in the stream the next record boundary is unknown again; bytes that
        waited for a boundary before the hole cannot be joined to those after it."""
        if self.state != self.CLEAR:
            self.dropped += len(self.buf)
            self.buf.clear()
            self.state, self.hdr, self.need = self.UNSYNCED, b"", 0

    def feed(self, data: bytes) -> bytes:
        """The next bytes of the stream; returns those shown not to be TLS (b"" while TLS)."""
        if self.state == self.SYNCED:
            return self._walk(data)
        if self.state == self.UNSYNCED:
            return self._sync(data)
        return data

    def _walk(self, data: bytes) -> bytes:
        i, n = 0, len(data)
        while i < n:
            if self.need:
                take = min(self.need, n - i)
                self.need -= take
                i += take
                continue
            if self.hdr or n - i < 5:
                take = 5 - len(self.hdr)
                self.hdr += data[i : i + take]
                i += take
                if len(self.hdr) < 5:
                    return b""
                header, self.hdr = self.hdr, b""
            else:
                header = data[i : i + 5]
                i += 5
            length = record_length(header)
            if length < 0:
                self.state = self.CLEAR
                return header + data[i:]
            self.records += 1
            self.need = length
        return b""

    def _sync(self, data: bytes) -> bytes:
        buf = self.buf
        buf += data
        if _TEXT.match(buf):
            return self._give_up()
        at = _boundary(bytes(buf))
        if at >= 0:
            self.skipped += at
            rest = bytes(buf[at:])
            buf.clear()
            self.state = self.SYNCED
            return self._walk(rest)
        if len(buf) > _SYNC_LIMIT:
            return self._give_up()
        return b""

    def _give_up(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        self.state = self.CLEAR
        return out


def _boundary(buf: bytes) -> int:
    """The first offset where a record header starts whose record ends exactly at the end of
    `buf` or is followed by another header; -1 if there is none yet."""
    size = len(buf)
    for m in _CANDIDATE.finditer(buf):
        i = m.start()
        if i + 5 > size:
            break
        length = record_length(buf[i : i + 5])
        if length < 0:
            continue
        j = i + 5 + length
        if j == size or (j + 5 <= size and record_length(buf[j : j + 5]) >= 0):
            return i
    return -1
