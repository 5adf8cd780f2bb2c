"""R3 and R4 on the wire: every RTP and RTCP stream judged or named, keyed streams in a ledger.

Each (flow, SSRC) of RTP, and of RTCP, is a stream. Every stream ends up either judged or named
as unjudged, never passed on trust: judged when a known key authenticates it (then every packet
must authenticate, so plain RTP injected into an SRTP stream is seen packet by packet), when its
RTCP compound lengths fill the datagram (plain RTCP, no SRTCP index or tag), when SDP negotiated
RTP/AVP for it, or when SDP negotiated RTP/SAVP for it and no known key authenticates it (plain
RTP where SRTP was agreed). Anything else, a stream no key fits and no SDP describes, is
unjudged and the verdict cannot pass.

DTLS-SRTP keys (`confsec.analyze.dtls_checks`) are bound to the direction of the flow whose
handshake exported them (`bind_key`): a stream there is tried with its own keys only, and one
they do not authenticate is plain RTP, or SRTP under a key its handshake did not agree. A flow
whose handshake gave no key carries the reason (`key_hints`), which the unjudged stream names.

Every keyed RTP stream is written to a `KeyStreamLedger` with its packet indexes and
fingerprints, so reuse of (key, salt, SSRC) across streams is found exactly as in `confsec run`
(R4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pylibsrtp

from confsec.analyze.findings import EXAMPLES, SrtpKey, Tally, Unjudged
from confsec.analyze.pcap import Packet
from confsec.media.ledger import KeyStreamLedger, StreamId, packet_fingerprint
from confsec.media.rtcp import is_plain_rtcp
from confsec.media.srtp import profile_for

_TRY_PACKETS = 8  # packets of a stream held and tried against the keys before giving up
PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
"""SDP protocols that negotiate media without SRTP."""
SDES_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
"""SDP protocols that negotiate SRTP keyed in the SDP (SDES). UDP/TLS/RTP/SAVP is not here:
its keys come from its DTLS handshake and are bound to its flow (`MediaChecks.bind_key`), so a
stream there is failed on those keys, never on whatever other keys are known."""
Flow = tuple[str, int, str, int]
"""(source address, source port, destination address, destination port): one direction."""


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


class MediaChecks:
    """The media observer: `rtp()` and `rtcp()` per packet, `key_learned()` when signalling
    brings a key in mid-pass, `settle()` and `report_reuse()` at the end."""

    def __init__(self, tally: Tally, keys: list[SrtpKey]):
        self.tally = tally
        self.checks = tally.checks
        self.keys = keys
        """The known keys; the analyser appends to this list as signalling reveals more."""
        self.ledger = KeyStreamLedger()
        self.streams: dict[tuple[str, int, str, int, int], _Stream] = {}
        self.rtcp_streams: dict[tuple[str, int, str, int, int], _Stream] = {}
        self.negotiated: dict[tuple[str, int], str] = {}
        """(address, port) where an SDP's author receives -> the protocol its m= line names."""
        self.flow_keys: dict[Flow, list[SrtpKey]] = {}
        """Keys bound to one direction of a flow: what a DTLS-SRTP handshake on it exported for
        that sender. A stream there is tried with these alone, since another known key that
        fits is not the one its handshake agreed."""
        self.key_hints: dict[Flow, str] = {}
        """Why the key of a flow is not known, where a DTLS handshake on it says more than
        "unknown" (no key log given, the key log lacks its random): the unjudged stream says
        it."""

    def learn_media(self, addr: str, port: int, proto: str) -> None:
        """An m= line seen in SDP: media for `addr`:`port` was negotiated as `proto`."""
        if port:
            self.negotiated[(addr, port)] = proto

    def key_learned(self, k: SrtpKey) -> None:
        """A key learned in mid-pass (SDES in clear signalling) is tried on the packets that
        streams still hold, so a stream that began before its key was seen is judged too."""
        self._retry_held(k, None)

    def bind_key(self, flow: Flow, k: SrtpKey) -> None:
        """A DTLS-SRTP handshake on `flow` exported `k` for its sender: the streams of that
        direction are judged under it (and the flow's other bound keys) alone, those that held
        packets waiting for a key at once."""
        self.flow_keys.setdefault(flow, []).append(k)
        self._retry_held(k, flow)

    def _retry_held(self, k: SrtpKey, flow: Flow | None) -> None:
        for table in (self.streams, self.rtcp_streams):
            for s in table.values():
                if s.session is not None or not s.held or (flow is not None and s.flow != flow):
                    continue
                bound = self.flow_keys.get(s.flow)
                if bound is not None and not any(b is k for b in bound):
                    continue
                for _frame, data in s.held:
                    if self._try_keys(s, data, (k,)):
                        self._judge_held(s)
                        break

    # -- the pass ------------------------------------------------------------------------------

    def rtcp(self, p: Packet) -> None:
        self.checks.rtcp += 1
        data = p.payload
        ssrc = int.from_bytes(data[4:8], "big")
        sk = (p.src, p.sport, p.dst, p.dport, ssrc)
        s = self.rtcp_streams.get(sk)
        if s is None:
            s = self.rtcp_streams[sk] = _Stream(sk[:4], ssrc, True, p.frame)
        s.packets += 1
        if is_plain_rtcp(data):  # exact fit: no SRTCP index, no tag
            s.plain += 1
            self.tally.finding(
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

    def rtp(self, p: Packet) -> None:
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
        if not ((self.keys or self.flow_keys) and self._try_keys(s, data)):
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
        to on the same SSRC (a rekey). The stream's current key, if any, is not tried again.
        A stream on a flow with bound keys (DTLS-SRTP) is tried with those alone."""
        if keys is None:
            keys = self.flow_keys.get(s.flow) or self.keys
        for k in keys:
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
        self.tally.finding(
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

    # -- results -------------------------------------------------------------------------------

    def settle(self) -> None:
        """At the end of the pass: judge or name every stream, RTP first, then RTCP."""
        for table in (self.streams, self.rtcp_streams):
            for s in table.values():
                self._settle(s)

    def report_reuse(self) -> None:
        """The ledger's (key, salt, SSRC) reuse, one R4 finding each."""
        for reuse in self.ledger.findings():
            f = self.tally.finding("keystream-reuse", "R4", reuse.kind, reuse.sentence)
            f.count += 1

    def _negotiated(self, s: _Stream) -> str | None:
        """The protocol SDP negotiated for the stream's destination (RTCP: also port - 1)."""
        dst, dport = s.flow[2], s.flow[3]
        proto = self.negotiated.get((dst, dport))
        if proto is None and s.rtcp:
            proto = self.negotiated.get((dst, dport - 1))
        return proto

    def _settle(self, s: _Stream) -> None:
        """Is the stream judged, and on what; if not, name it and say why."""
        c = self.checks
        proto = self._negotiated(s)
        kind = "RTCP" if s.rtcp else "RTP"
        dst, dport = s.flow[2], s.flow[3]
        judged = 0
        if proto in PLAIN_PROTOS:
            f = self.tally.finding(
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
        elif s.flow in self.flow_keys:
            bound = len(self.flow_keys[s.flow])
            keys = "the key" if bound == 1 else f"any of the {bound} keys"
            f = self.tally.finding(
                "media-in-clear",
                "R3",
                f"unauthenticated-{kind.lower()}-in-dtls-srtp-stream",
                f"{kind} that does not authenticate under {keys} the DTLS handshake on its flow "
                f"exported for its sender: plain {kind}, or SRTP under a key the handshake did "
                f"not agree, {s.name()}",
            )
            f.add(s.held[0][0] if s.held else s.first_frame)
            f.count += s.packets - 1
            judged = s.packets
        elif proto in SDES_PROTOS and self.keys:
            f = self.tally.finding(
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
        frames = [f for f, _d in s.held[:EXAMPLES]] or [s.first_frame]
        unjudged = self.tally.unjudged
        hint = self.key_hints.get(s.flow)
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
            elif hint is not None:
                why = hint
            elif proto in SDES_PROTOS:
                why = f"negotiated as {proto}, but no SRTP key at all is known (--keys, --keylog)"
            elif not self.keys:
                why = "no SRTP key is known (--keys, --keylog) and no SDP negotiates it"
            else:
                why = (
                    f"none of the {len(self.keys)} known keys authenticates it and no SDP in the "
                    "capture negotiates it: plain RTP or SRTP under an unknown key"
                )
            unjudged.append(
                Unjudged("media-in-clear", "R3", s.name(), why, s.packets - judged, 0, frames)
            )
        if s.rtcp:
            return
        if s.session is not None:
            c.keyed_streams += 1
            c.keyed_packets += s.packets - s.untried
            if s.untried:
                unjudged.append(
                    Unjudged(
                        "keystream-reuse",
                        "R4",
                        s.name(),
                        f"{s.untried} packets came before its key was known",
                        s.untried,
                    )
                )
        elif proto not in PLAIN_PROTOS:
            unjudged.append(
                Unjudged(
                    "keystream-reuse",
                    "R4",
                    s.name(),
                    hint or "its key is not known, so its key stream cannot be compared",
                    s.packets,
                    0,
                    frames,
                )
            )


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
