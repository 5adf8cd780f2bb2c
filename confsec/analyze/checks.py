"""The checks `confsec analyze` runs over a capture: R3, R4 and O1 seen from the wire.

One pass over the packets feeds four observers:

- signalling: SIP over UDP or TCP (unprotected) is read for SDP; an `a=crypto` line there is an
  SDES key in the clear (R3), and every `m=` line names the address and port where its author
  receives media and the protocol negotiated for it (SDP read from TLS with the key log arrives
  the same way, from `tlskeys`);
- media: each (flow, SSRC) of RTP, and of RTCP, is a stream. Every stream ends up either judged
  or named as unjudged, never passed on trust (issue 12): judged when a known key authenticates
  it (then every packet must authenticate, so plain RTP injected into an SRTP stream is seen
  packet by packet), when its RTCP compound lengths fill the datagram (plain RTCP, no SRTCP index
  or tag), when SDP negotiated RTP/AVP for it, or when SDP negotiated RTP/SAVP for it and no known
  key authenticates it (plain RTP where SRTP was agreed). Anything else, a stream no key fits and
  no SDP describes, is unjudged and the verdict cannot pass;
- key streams: every keyed stream is written to a `KeyStreamLedger` with its packet indexes and
  fingerprints, so reuse of (key, salt, SSRC) across streams is found exactly as in `confsec run`
  (R4);
- O1: on the ports named as AS/MRFC/MRFP interfaces, TCP is reassembled per direction and walked
  record by record (`confsec.analyze.tcp`), so only bytes that are not TLS records are
  unprotected; UDP that is not ESP is unprotected; ESP whose trailer reads in the clear uses
  null encryption; key material (known keys, `inline:` SDES values, `"key":` fields) in the
  clear is key material in the clear.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pylibsrtp

from confsec.analyze.pcap import PROTO_ESP, PROTO_TCP, PROTO_UDP, Packet, TcpPacket
from confsec.analyze.tcp import SYN, Chunk, TcpStream, TlsRecords
from confsec.media.ledger import KeyStreamLedger, StreamId, packet_fingerprint
from confsec.media.srtp import profile_for

_SIP_START = (
    b"INVITE ",
    b"ACK ",
    b"BYE ",
    b"CANCEL ",
    b"OPTIONS ",
    b"REGISTER ",
    b"UPDATE ",
    b"PRACK ",
    b"SUBSCRIBE ",
    b"NOTIFY ",
    b"MESSAGE ",
    b"INFO ",
    b"REFER ",
    b"PUBLISH ",
    b"SIP/2.0 ",
)
_CRYPTO = re.compile(rb"a=crypto:\d+ ([A-Z0-9_]+) inline:([A-Za-z0-9+/=]+)")
_MLINE = re.compile(rb"m=(\w+) (\d+)(?:/\d+)? ([\w/]+)")
_CLINE = re.compile(rb"c=IN IP[46] ([0-9a-fA-F.:]+)")
_INLINE = re.compile(rb"inline:[A-Za-z0-9+/]{20,}={0,2}")
_KEY_FIELD = re.compile(rb'"(?:master_?)?(?:key|salt)"\s*:[^,}]{0,40}?"[A-Za-z0-9+/]{16,}={0,2}"')
_TRY_PACKETS = 8  # packets of a stream held and tried against the keys before giving up
_EXAMPLES = 5
_TAIL = 160  # bytes of clear O1 data kept so that a key cut across segments is still found
PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
"""SDP protocols that negotiate media without SRTP."""
SDES_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
"""SDP protocols that negotiate SRTP keyed in the SDP (SDES). UDP/TLS/RTP/SAVP is not here:
its keys come from DTLS, which the analyser does not read, so a stream without a known key
there stays unjudged rather than failed."""


@dataclass(frozen=True)
class SrtpKey:
    suite: str
    key: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    origin: str = "--keys"


@dataclass
class Finding:
    """One thing the capture shows that a requirement forbids (or that stops a judgement)."""

    check: str
    requirement: str
    kind: str
    sentence: str
    frames: list[int] = field(default_factory=list)
    count: int = 0

    def add(self, frame: int) -> None:
        self.count += 1
        if len(self.frames) < _EXAMPLES:
            self.frames.append(frame)

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "requirement": self.requirement,
            "kind": self.kind,
            "sentence": self.sentence,
            "packets": self.count,
            "example_frames": self.frames,
        }


@dataclass
class Unjudged:
    """A stream (or part of one) the analyser could not judge, named so that the verdict can
    say what it did not see instead of passing over it."""

    check: str
    requirement: str
    stream: str
    why: str
    packets: int = 0
    bytes: int = 0
    frames: list[int] = field(default_factory=list)

    def describe(self) -> str:
        size = f"{self.bytes} bytes" if self.bytes else f"{self.packets} packets"
        return f"{self.stream} ({size}): {self.why}"

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "requirement": self.requirement,
            "stream": self.stream,
            "why": self.why,
            "packets": self.packets,
            "bytes": self.bytes,
            "example_frames": self.frames,
        }


@dataclass(slots=True)
class _Stream:
    flow: tuple[str, int, str, int]
    ssrc: int
    rtcp: bool = False
    first_frame: int = 0
    packets: int = 0
    key: SrtpKey | None = None
    session: pylibsrtp.Session | None = None
    held: list[tuple[int, bytes]] = field(default_factory=list)
    """Packets no known key authenticated yet (frame, bytes), kept to be judged once one does."""
    untried: int = 0
    """Packets that came while `held` was full and no key fitted: never judged."""
    unauthenticated: int = 0
    plain: int = 0
    """RTCP only: packets whose compound lengths fill the datagram (no SRTCP index or tag)."""
    roc: int = 0
    last_seq: int = -1
    sid: StreamId | None = None
    observing: bool = True

    def name(self) -> str:
        src, sport, dst, dport = self.flow
        kind = "RTCP" if self.rtcp else "RTP"
        return f"{kind} {src}:{sport} -> {dst}:{dport} SSRC 0x{self.ssrc:08x}"


@dataclass(slots=True)
class _TcpDirection:
    stream: TcpStream
    records: TlsRecords | None = None
    held_frames: list[int] = field(default_factory=list)
    """Frames whose bytes wait in an unsynced `records` for a record boundary."""
    tail: bytes = b""


@dataclass
class Checks:
    """Each check's counters, for the report: what was judged and how much of it."""

    sip_clear: int = 0
    sdp_from_tls: int = 0
    """Frames of SIP over TLS with SDP, read with the key log (tshark)."""
    rtp: int = 0
    rtcp: int = 0
    streams_judged: int = 0
    packets_judged: int = 0
    keyed_streams: int = 0
    """RTP streams with a known key: the ones the key-stream ledger sees (R4)."""
    keyed_packets: int = 0
    o1_packets: int = 0
    o1_tls: int = 0
    """TLS record headers read on the O1 ports."""
    tcp_streams: int = 0
    """Directions of TCP connections on the O1 ports that carried bytes, reassembled."""
    tcp_retransmitted: int = 0
    o1_unjudged_bytes: int = 0
    esp: int = 0


class Analyzer:
    """Feed it packets with `feed_all()`, then `finish()`; read `findings`, `unjudged` and
    `checks`."""

    def __init__(
        self,
        keys: Iterable[SrtpKey] = (),
        o1_ports: Iterable[int] = (),
        negotiated: Iterable[tuple[str, int, str]] = (),
        sdp_from_tls: int = 0,
    ):
        self.keys: list[SrtpKey] = list(keys)
        self._key_ids = {(k.key, k.salt) for k in self.keys}
        self.o1_ports = frozenset(o1_ports)
        self.findings: dict[tuple[str, str], Finding] = {}
        self.unjudged: list[Unjudged] = []
        self.checks = Checks(sdp_from_tls=sdp_from_tls)
        self.ledger = KeyStreamLedger()
        self.streams: dict[tuple[str, int, str, int, int], _Stream] = {}
        self.rtcp_streams: dict[tuple[str, int, str, int, int], _Stream] = {}
        self.negotiated: dict[tuple[str, int], str] = {}
        """(address, port) where an SDP's author receives -> the protocol its m= line names."""
        for addr, port, proto in negotiated:
            self.learn_media(addr, port, proto)
        self.frames = 0
        self._needles = self._key_needles()
        # (src, dst, SPI) -> [packets, packets whose trailer reads in the clear, first frame]
        self._esp_sas: dict[tuple[str, str, bytes], list[int]] = {}
        self._tcp: dict[tuple[str, int, str, int], _TcpDirection] = {}

    # -- findings ------------------------------------------------------------------------------

    def _finding(self, check: str, req: str, kind: str, sentence: str) -> Finding:
        f = self.findings.get((check, kind + sentence))
        if f is None:
            f = self.findings[(check, kind + sentence)] = Finding(check, req, kind, sentence)
        return f

    # -- the pass ------------------------------------------------------------------------------

    def feed_all(self, packets: Iterable[Packet]) -> None:
        o1 = self.o1_ports
        for p in packets:
            self.frames = p.frame
            if p.proto == PROTO_ESP:
                self._esp(p)
                continue
            if o1 and (p.sport in o1 or p.dport in o1):
                self._o1(p)
                continue
            data = p.payload
            if not data:
                continue
            if p.proto == PROTO_UDP:
                b0 = data[0]
                if b0 >> 6 == 2 and len(data) >= 12:
                    if 192 <= data[1] <= 223:
                        self._rtcp(p)
                    else:
                        self._rtp(p)
                elif data.startswith(_SIP_START):
                    self._sip(p, "UDP")
            elif p.proto == PROTO_TCP and data.startswith(_SIP_START):
                self._sip(p, "TCP")

    # -- signalling ----------------------------------------------------------------------------

    def _sip(self, p: Packet, transport: str) -> None:
        self.checks.sip_clear += 1
        data = p.payload
        for suite, inline in _CRYPTO.findall(data):
            f = self._finding(
                "sdes-in-clear",
                "R3",
                "sdes-key-in-clear",
                f"an SDES key (a=crypto {suite.decode()}) was sent over unprotected SIP/"
                f"{transport}, {p.src}:{p.sport} -> {p.dst}:{p.dport}: anyone on the path can "
                "decrypt the media",
            )
            f.add(p.frame)
            self._learn_key(suite.decode(), inline, f"SIP/{transport} frame {p.frame}")
        for addr, port, proto in sdp_media(data, p.src):
            self.learn_media(addr, port, proto)

    def learn_media(self, addr: str, port: int, proto: str) -> None:
        """An m= line seen in SDP: media for `addr`:`port` was negotiated as `proto`."""
        if port:
            self.negotiated[(addr, port)] = proto

    def _learn_key(self, suite: str, inline: bytes, origin: str) -> None:
        try:
            prof = profile_for(suite)
            raw = base64.b64decode(inline + b"=" * (-len(inline) % 4))
        except Exception:
            return
        key, salt = raw[: prof.key_len], raw[prof.key_len : prof.key_len + prof.salt_len]
        if len(salt) == prof.salt_len and (key, salt) not in self._key_ids:
            self._key_ids.add((key, salt))
            k = SrtpKey(suite, key, salt, origin)
            self.keys.append(k)
            self._needles = self._key_needles()
            self._retry_held(k)

    def _retry_held(self, k: SrtpKey) -> None:
        """A key learned in mid-pass (SDES in clear signalling) is tried on the packets that
        streams still hold, so a stream that began before its key was seen is judged too."""
        for table in (self.streams, self.rtcp_streams):
            for s in table.values():
                if s.session is None and s.held:
                    for _frame, data in s.held:
                        if self._try_keys(s, data, (k,)):
                            self._judge_held(s)
                            break

    # -- media ---------------------------------------------------------------------------------

    def _rtcp(self, p: Packet) -> None:
        self.checks.rtcp += 1
        data = p.payload
        ssrc = int.from_bytes(data[4:8], "big")
        sk = (p.src, p.sport, p.dst, p.dport, ssrc)
        s = self.rtcp_streams.get(sk)
        if s is None:
            s = self.rtcp_streams[sk] = _Stream(sk[:4], ssrc, True, p.frame)
        s.packets += 1
        if _plain_rtcp(data):  # exact fit: no SRTCP index, no tag
            s.plain += 1
            self._finding(
                "media-in-clear",
                "R3",
                "plain-rtcp",
                f"plain RTCP (no SRTCP index or authentication tag) on {p.src}:{p.sport} -> "
                f"{p.dst}:{p.dport}",
            ).add(p.frame)
            return
        if s.session is None:
            self._trial(s, p.frame, data)
            return
        try:
            s.session.unprotect_rtcp(data)
        except pylibsrtp.Error as exc:
            if not ("replay" in str(exc) and _authenticates(s.key, data, True)) and not (
                self._try_keys(s, data)
            ):
                self._unauthenticated(s, p.frame)

    def _rtp(self, p: Packet) -> None:
        self.checks.rtp += 1
        data = p.payload
        ssrc = int.from_bytes(data[8:12], "big")
        sk = (p.src, p.sport, p.dst, p.dport, ssrc)
        s = self.streams.get(sk)
        if s is None:
            s = self.streams[sk] = _Stream(sk[:4], ssrc, False, p.frame)
        s.packets += 1
        if s.session is None:
            self._trial(s, p.frame, data)
            return
        try:
            s.session.unprotect(data)
        except pylibsrtp.Error as exc:
            # libsrtp checks replay before authentication: a "replay" says nothing about the
            # tag, so such a packet is checked again on a fresh session of the same key.
            if not ("replay" in str(exc) and _authenticates(s.key, data, False)) and not (
                self._try_keys(s, data)
            ):
                self._unauthenticated(s, p.frame)
                return
        self._observe(s, data)

    def _trial(self, s: _Stream, frame: int, data: bytes) -> None:
        """A packet of a stream no key fits yet: try the keys, else hold it (a few per stream)
        so that it is judged when a key fits; beyond that it is counted as never tried."""
        if len(s.held) >= _TRY_PACKETS:
            s.untried += 1
            return
        if not (self.keys and self._try_keys(s, data)):
            s.held.append((frame, data))
            return
        self._judge_held(s)
        if not s.rtcp:
            self._observe(s, data)

    def _judge_held(self, s: _Stream) -> None:
        """The stream just got its key: what it held is judged under that key, in order."""
        held, s.held = s.held, []
        for frame, data in held:
            if _authenticates(s.key, data, s.rtcp):
                if not s.rtcp:
                    self._observe(s, data)
            else:
                self._unauthenticated(s, frame)

    def _try_keys(self, s: _Stream, data: bytes, keys: Iterable[SrtpKey] | None = None) -> bool:
        """Find the key `data` authenticates under: a stream's first key, or the new key it moved
        to on the same SSRC (a rekey). The stream's current key, if any, is not tried again."""
        for k in self.keys if keys is None else keys:
            if k is s.key:
                continue
            session = _session(k)
            try:
                if s.rtcp:
                    session.unprotect_rtcp(data)
                else:
                    session.unprotect(data)
            except pylibsrtp.Error:
                continue
            s.key, s.session = k, session
            if not s.rtcp:
                self._keyed(s)
            return True
        return False

    def _keyed(self, s: _Stream) -> None:
        assert s.key is not None
        src, sport, dst, dport = s.flow
        s.sid = StreamId(f"{src}:{sport}", f"{dst}:{dport}", "rtp", "send", f"ssrc 0x{s.ssrc:08x}")
        self.ledger.register(s.sid, s.key.suite, s.key.key, s.key.salt, s.ssrc)

    def _unauthenticated(self, s: _Stream, frame: int) -> None:
        s.unauthenticated += 1
        src, sport, dst, dport = s.flow
        if s.rtcp:
            kind = "unauthenticated-rtcp-in-srtcp-stream"
            what = "RTCP that does not authenticate under the stream's SRTCP key"
        else:
            kind = "unauthenticated-rtp-in-srtp-stream"
            what = (
                "RTP that does not authenticate under the stream's SRTP key (plain RTP "
                "injected into an SRTP stream)"
            )
        self._finding(
            "media-in-clear",
            "R3",
            kind,
            f"{what} on {src}:{sport} -> {dst}:{dport} SSRC 0x{s.ssrc:08x}",
        ).add(frame)

    def _observe(self, s: _Stream, data: bytes) -> None:
        if not s.observing or s.sid is None:
            return
        seq = (data[2] << 8) | data[3]
        if s.last_seq >= 0 and seq < s.last_seq and s.last_seq - seq > 0x8000:
            s.roc += 1
        s.last_seq = seq
        s.observing = self.ledger.observe(
            s.sid, s.ssrc, (s.roc << 16) | seq, packet_fingerprint(data)
        )

    def _negotiated(self, s: _Stream) -> str | None:
        """The protocol SDP negotiated for the stream's destination (RTCP: also port - 1)."""
        dst, dport = s.flow[2], s.flow[3]
        proto = self.negotiated.get((dst, dport))
        if proto is None and s.rtcp:
            proto = self.negotiated.get((dst, dport - 1))
        return proto

    def _settle(self, s: _Stream) -> None:
        """At the end: is the stream judged, and on what; if not, name it and say why."""
        c = self.checks
        proto = self._negotiated(s)
        kind = "RTCP" if s.rtcp else "RTP"
        dst, dport = s.flow[2], s.flow[3]
        judged = 0
        if proto in PLAIN_PROTOS:
            f = self._finding(
                "media-in-clear",
                "R3",
                "plain-rtp-negotiated",
                f"{proto} (no SRTP) was negotiated in SDP for {dst}:{dport}, and {kind} flows "
                "there",
            )
            f.add(s.first_frame)
            f.count += s.packets - 1
            judged = s.packets
        if s.session is not None:
            judged = max(judged, s.packets - s.untried)
        elif s.plain:
            judged = max(judged, s.plain)
        elif proto in SDES_PROTOS and self.keys:
            f = self._finding(
                "media-in-clear",
                "R3",
                f"unauthenticated-{kind.lower()}-in-savp-stream",
                f"{kind} to {dst}:{dport}, negotiated as {proto}, does not authenticate under any "
                f"of the {len(self.keys)} known keys: plain {kind} where SRTP was agreed (or SRTP "
                f"under a key the capture does not show), {s.name()}",
            )
            f.add(s.held[0][0] if s.held else s.first_frame)
            f.count += s.packets - 1
            judged = s.packets
        if judged:
            c.streams_judged += 1
            c.packets_judged += judged
        frames = [f for f, _d in s.held[:_EXAMPLES]] or [s.first_frame]
        if judged < s.packets:
            if s.session is None and s.plain:
                why = (
                    f"{s.packets - judged} of its packets carry an SRTCP trailer that no known "
                    "key authenticates"
                )
            elif judged:
                why = (
                    f"{s.packets - judged} of its packets were not tried: they came before any "
                    "known key fitted the stream"
                )
            elif proto in SDES_PROTOS:
                why = f"negotiated as {proto}, but no SRTP key at all is known (--keys, --keylog)"
            elif not self.keys:
                why = "no SRTP key is known (--keys, --keylog) and no SDP negotiates it"
            else:
                why = (
                    f"none of the {len(self.keys)} known keys authenticates it and no SDP in the "
                    "capture negotiates it: plain RTP or SRTP under an unknown key"
                )
            self.unjudged.append(
                Unjudged("media-in-clear", "R3", s.name(), why, s.packets - judged, 0, frames)
            )
        if s.rtcp:
            return
        if s.session is not None:
            c.keyed_streams += 1
            c.keyed_packets += s.packets - s.untried
            if s.untried:
                self.unjudged.append(
                    Unjudged(
                        "keystream-reuse",
                        "R4",
                        s.name(),
                        f"{s.untried} packets came before its key was known",
                        s.untried,
                    )
                )
        elif proto not in PLAIN_PROTOS:
            self.unjudged.append(
                Unjudged(
                    "keystream-reuse",
                    "R4",
                    s.name(),
                    "its key is not known, so its key stream cannot be compared",
                    s.packets,
                    0,
                    frames,
                )
            )

    # -- O1 --------------------------------------------------------------------------------------

    def _o1(self, p: Packet) -> None:
        data = p.payload
        if not isinstance(p, TcpPacket):
            if data:
                self.checks.o1_packets += 1
                where = f"{p.src}:{p.sport} -> {p.dst}:{p.dport}"
                self._o1_clear(where, [p.frame], data, b"")
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
            self._o1_bytes(k, d, chunk)

    def _o1_bytes(self, k: tuple[str, int, str, int], d: _TcpDirection, chunk: Chunk) -> None:
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
            self._o1_clear(where, frames, clear, d.tail)
            d.tail = (d.tail + clear)[-_TAIL:]
        elif r.unsynced:
            d.held_frames.append(chunk.frame)
        elif d.held_frames:
            d.held_frames = []

    def _o1_clear(self, where: str, frames: list[int], data: bytes, tail: bytes) -> None:
        """Bytes on an interface port that are neither ESP nor TLS records."""
        needle = self._key_in(tail + data, len(tail))
        if needle:
            self._finding(
                "o1-interfaces",
                "O1",
                "key-material-in-clear",
                f"key material in the clear ({needle}) on the AS/MRFC/MRFP interface {where}",
            ).add(frames[-1])
        f = self._finding(
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
        self.unjudged.append(
            Unjudged(
                "o1-interfaces",
                "O1",
                f"TCP {k[0]}:{k[1]} -> {k[2]}:{k[3]}",
                "; ".join(why),
                0,
                missing + unsynced,
                sorted([*d.held_frames, *(f for f, _d in d.stream.pending.values())])[:_EXAMPLES],
            )
        )

    def _esp(self, p: Packet) -> None:
        self.checks.esp += 1
        sa = self._esp_sas.setdefault((p.src, p.dst, p.payload[:4]), [0, 0, p.frame])
        sa[0] += 1
        if _null_esp(p.payload):
            sa[1] += 1
        if self._key_in(p.payload):
            self._finding(
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
        for table in (self.streams, self.rtcp_streams):
            for s in table.values():
                self._settle(s)
        for k, d in self._tcp.items():
            self._tcp_done(k, d)
        for (src, dst, spi), (total, clear, first) in self._esp_sas.items():
            # A trailer of an encrypted packet reads right by chance about once in 10^4
            # packets; an SA is judged null when most of its packets read in the clear.
            if clear * 2 >= total:
                f = self._finding(
                    "o1-interfaces",
                    "O1",
                    "null-esp",
                    f"ESP with NULL encryption (trailers read in the clear) {src} -> {dst} "
                    f"SPI 0x{spi.hex()}",
                )
                f.add(first)
                f.count = clear
        for reuse in self.ledger.findings():
            f = self._finding("keystream-reuse", "R4", reuse.kind, reuse.sentence)
            f.count += 1


def sdp_media(data: bytes, default_addr: str) -> list[tuple[str, int, str]]:
    """(address, port, protocol) of each m= line in a SIP message's SDP.

    The address is the media-level c= line if there is one, else the session-level one, else
    the sender of the message (RFC 8866 5.7). Only SIP takes this path, so splitting lines here
    costs nothing that matters.
    """
    media: list[tuple[int, str]] = []
    media_addr: list[str | None] = []
    session_addr: str | None = None
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r")
        if line.startswith(b"c="):
            c = _CLINE.match(line)
            if c and media:
                media_addr[-1] = c.group(1).decode()
            elif c:
                session_addr = c.group(1).decode()
        elif line.startswith(b"m="):
            m = _MLINE.match(line)
            if m:
                media.append((int(m.group(2)), m.group(3).decode()))
                media_addr.append(None)
    return [
        (addr or session_addr or default_addr, port, proto)
        for addr, (port, proto) in zip(media_addr, media, strict=True)
    ]


def _plain_rtcp(data: bytes) -> bool:
    """RTCP whose compound packet lengths add up to the datagram: nothing after them, so no
    SRTCP E-flag/index and no tag (RFC 3711 3.4)."""
    off, n = 0, len(data)
    while off + 4 <= n:
        if data[off] >> 6 != 2 or not 192 <= data[off + 1] <= 223:
            return False
        off += 4 * (((data[off + 2] << 8) | data[off + 3]) + 1)
    return off == n


def _session(k: SrtpKey) -> pylibsrtp.Session:
    prof = profile_for(k.suite)
    return pylibsrtp.Session(
        pylibsrtp.Policy(
            key=k.key + k.salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=prof.libsrtp_profile,
        )
    )


def _authenticates(k: SrtpKey | None, data: bytes, rtcp: bool) -> bool:
    if k is None:
        return False
    try:
        if rtcp:
            _session(k).unprotect_rtcp(data)
        else:
            _session(k).unprotect(data)
    except pylibsrtp.Error:
        return False
    return True


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
