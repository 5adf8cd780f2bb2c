"""The checks `confsec analyze` runs over a capture: R3, R4 and O1 seen from the wire.

One pass over the packets feeds four observers:

- signalling: SIP over UDP or TCP (unprotected) is read for SDP; an `a=crypto` line there is an
  SDES key in the clear (R3), and every `m=` line names a media port and its protocol;
- media: each (flow, SSRC) of RTP is a stream; with keys (`--keys`, or keys read from clear
  signalling) the stream's key is found by trial and every packet must authenticate under it,
  so plain RTP injected into an SRTP stream is seen packet by packet (R3); RTCP whose compound
  lengths add up to the datagram carries no SRTCP index or tag, i.e. it is plain RTCP;
- key streams: every keyed stream is written to a `KeyStreamLedger` with its packet indexes and
  fingerprints, so reuse of (key, salt, SSRC) across streams is found exactly as in `confsec run`
  (R4);
- O1: on the ports named as AS/MRFC/MRFP interfaces, anything that is neither ESP nor TLS is
  unprotected, ESP whose trailer reads in the clear uses null encryption, and key material
  (known keys, `inline:` SDES values, `"key":` fields) in a payload is key material in the clear.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pylibsrtp

from confsec.analyze.pcap import PROTO_ESP, PROTO_TCP, PROTO_UDP, Packet
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
_TRY_PACKETS = 8  # packets of a new stream tried against the known keys before giving up
_EXAMPLES = 5


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
class _Stream:
    flow: tuple[str, int, str, int]
    ssrc: int
    packets: int = 0
    tries: int = 0
    key: SrtpKey | None = None
    session: pylibsrtp.Session | None = None
    failed_before_key: list[int] = field(default_factory=list)
    unauthenticated: int = 0
    roc: int = 0
    last_seq: int = -1
    sid: StreamId | None = None
    observing: bool = True


@dataclass
class Checks:
    """Each check's counters, for the report: what was judged and how much of it."""

    sip_clear: int = 0
    rtp: int = 0
    rtcp: int = 0
    keyed_streams: int = 0
    unkeyed_streams: int = 0
    o1_packets: int = 0
    o1_tls: int = 0
    esp: int = 0


class Analyzer:
    """Feed it packets with `feed()`; read `findings` and `checks` at the end."""

    def __init__(self, keys: Iterable[SrtpKey] = (), o1_ports: Iterable[int] = ()):
        self.keys: list[SrtpKey] = list(keys)
        self._key_ids = {(k.key, k.salt) for k in self.keys}
        self.o1_ports = frozenset(o1_ports)
        self.findings: dict[tuple[str, str], Finding] = {}
        self.checks = Checks()
        self.ledger = KeyStreamLedger()
        self.streams: dict[tuple[str, int, str, int, int], _Stream] = {}
        self.plain_media: dict[tuple[str, int], str] = {}  # from clear SDP: (addr, port) -> proto
        self.frames = 0
        self._needles = self._key_needles()
        # (src, dst, SPI) -> [packets, packets whose trailer reads in the clear, first frame]
        self._esp_sas: dict[tuple[str, str, bytes], list[int]] = {}

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
        conn = _CLINE.search(data)
        addr = conn.group(1).decode() if conn else p.src
        for _media, port, proto in _MLINE.findall(data):
            if int(port):
                self.plain_media[(addr, int(port))] = proto.decode()

    def _learn_key(self, suite: str, inline: bytes, origin: str) -> None:
        try:
            prof = profile_for(suite)
            raw = base64.b64decode(inline + b"=" * (-len(inline) % 4))
        except Exception:
            return
        key, salt = raw[: prof.key_len], raw[prof.key_len : prof.key_len + prof.salt_len]
        if len(salt) == prof.salt_len and (key, salt) not in self._key_ids:
            self._key_ids.add((key, salt))
            self.keys.append(SrtpKey(suite, key, salt, origin))
            self._needles = self._key_needles()

    # -- media ---------------------------------------------------------------------------------

    def _rtcp(self, p: Packet) -> None:
        self.checks.rtcp += 1
        data = p.payload
        off, n = 0, len(data)
        while off + 4 <= n:
            if data[off] >> 6 != 2 or not 192 <= data[off + 1] <= 223:
                return
            off += 4 * (((data[off + 2] << 8) | data[off + 3]) + 1)
        if off == n:  # exact fit: no SRTCP index, no tag
            self._finding(
                "media-in-clear",
                "R3",
                "plain-rtcp",
                f"plain RTCP (no SRTCP index or authentication tag) on {p.src}:{p.sport} -> "
                f"{p.dst}:{p.dport}",
            ).add(p.frame)

    def _rtp(self, p: Packet) -> None:
        self.checks.rtp += 1
        data = p.payload
        ssrc = int.from_bytes(data[8:12], "big")
        sk = (p.src, p.sport, p.dst, p.dport, ssrc)
        s = self.streams.get(sk)
        if s is None:
            s = self.streams[sk] = _Stream((p.src, p.sport, p.dst, p.dport), ssrc)
            proto = self.plain_media.get((p.dst, p.dport))
            if proto == "RTP/AVP":
                self._finding(
                    "media-in-clear",
                    "R3",
                    "plain-rtp-negotiated",
                    f"RTP/AVP (no SRTP) was negotiated in clear SDP for {p.dst}:{p.dport}, and "
                    "RTP flows there",
                ).add(p.frame)
        s.packets += 1
        if s.session is None:
            if s.tries >= _TRY_PACKETS or not self.keys:
                return
            s.tries += 1
            if not self._try_keys(s, data):
                s.failed_before_key.append(p.frame)
                return
            for frame in s.failed_before_key:
                self._unauthenticated(s, frame)
            self._observe(s, data)
            return
        try:
            s.session.unprotect(data)
        except pylibsrtp.Error as exc:
            # libsrtp checks replay before authentication: a "replay" says nothing about the
            # tag, so such a packet is checked again on a fresh session of the same key.
            if not ("replay" in str(exc) and _authenticates(s.key, data)) and not self._try_keys(
                s, data
            ):
                self._unauthenticated(s, p.frame)
                return
        self._observe(s, data)

    def _try_keys(self, s: _Stream, data: bytes) -> bool:
        """Find the key `data` authenticates under: a stream's first key, or the new key it moved
        to on the same SSRC (a rekey). The stream's current key, if any, is not tried again."""
        for k in self.keys:
            if k is s.key:
                continue
            session = _session(k)
            try:
                session.unprotect(data)
            except pylibsrtp.Error:
                continue
            s.key, s.session = k, session
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
        self._finding(
            "media-in-clear",
            "R3",
            "unauthenticated-rtp-in-srtp-stream",
            f"RTP that does not authenticate under the stream's SRTP key (plain RTP injected "
            f"into an SRTP stream) on {src}:{sport} -> {dst}:{dport} SSRC 0x{s.ssrc:08x}",
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

    # -- O1 --------------------------------------------------------------------------------------

    def _o1(self, p: Packet) -> None:
        data = p.payload
        if not data:
            return
        self.checks.o1_packets += 1
        where = f"{p.src}:{p.sport} -> {p.dst}:{p.dport}"
        if p.proto == PROTO_TCP and len(data) >= 3 and 20 <= data[0] <= 23 and data[1] == 3:
            self.checks.o1_tls += 1
            return
        needle = self._key_in(data)
        if needle:
            self._finding(
                "o1-interfaces",
                "O1",
                "key-material-in-clear",
                f"key material in the clear ({needle}) on the AS/MRFC/MRFP interface {where}",
            ).add(p.frame)
        self._finding(
            "o1-interfaces",
            "O1",
            "unprotected-interface",
            f"traffic neither in ESP nor TLS on the AS/MRFC/MRFP interface {where}",
        ).add(p.frame)

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

    def _key_in(self, data: bytes) -> str | None:
        for needle, what in self._needles:
            if needle in data:
                return what
        if _INLINE.search(data):
            return "an SDES inline: key"
        if _KEY_FIELD.search(data):
            return 'a "key"/"salt" field'
        return None

    # -- results -------------------------------------------------------------------------------

    def finish(self) -> None:
        for s in self.streams.values():
            if s.session is not None:
                self.checks.keyed_streams += 1
            else:
                self.checks.unkeyed_streams += 1
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


def _session(k: SrtpKey) -> pylibsrtp.Session:
    prof = profile_for(k.suite)
    return pylibsrtp.Session(
        pylibsrtp.Policy(
            key=k.key + k.salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=prof.libsrtp_profile,
        )
    )


def _authenticates(k: SrtpKey | None, data: bytes) -> bool:
    if k is None:
        return False
    try:
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
