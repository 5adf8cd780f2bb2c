"""The mixing engine of the reference deployment's SRTP mixer (the MRFP role of TR 33.829 5.1.2).

Audio is *mixed*: every inbound stream is decrypted, each participant gets the sum of the others
(mix-minus, so nobody hears themselves), re-encrypted under that participant's own key. Video is
*switched*: a frame from one participant is re-encrypted for every other participant.

The *common stream* (R5, O3) is the full mix of everyone, protected once under the conference's
group key and SSRC and fanned out as identical packets to every leg that asked for it (a medium
named "common"). During a rekey the legs move to the new group key one by one (when each leg's
re-INVITE completes), so the mixer keeps one group sender per key epoch still in use and protects
each tick once per epoch, never once per leg.

The mixer never chooses keys: the focus hands them over through `MixerControl`
(`mixer_control.py`), the focus -> mixer key interface that observation O1 is about, which the
deployment carries over a protected connection (`keychannel.py`). Each leg's socket and SRTP
sessions are a `LegStream` (`mixer_leg.py`); this module decides what goes to whom, and when.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import SrtpSender, new_sender
from confsec.media.tone import pcmu_encode
from confsec.reference.mixer_control import COMMON_MEDIA, RTCP_SUFFIX, LegSetup, StreamSetup
from confsec.reference.mixer_leg import FRAME_SAMPLES, LegStream, MixerStats
from confsec.reference.mixer_rtcp import REPORT_INTERVAL_S, RtcpPort, RtcpRecord

RTCP_LINGER_S = 2.0
"""How long a released stream's sockets stay open, deaf and mute, to read its peer's last RTCP:
the RTCP BYE of RFC 3550 6.6 often comes after the 200 OK to the SIP BYE, and a closed port
would answer it with ICMP port unreachable and leave it unjudged."""

log = logging.getLogger(__name__)

TICK_S = 0.020
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)


class _Group:
    """One group-key sender of a conference's common stream: one key epoch, one SSRC."""

    __slots__ = ("key", "sender", "seq", "ssrc", "ts")

    def __init__(self, key: tuple[bytes, bytes, int], sender: SrtpSender, ssrc: int):
        self.key = key
        self.sender = sender
        self.ssrc = ssrc
        self.seq = 0
        self.ts = 0


@dataclass
class _Conference:
    legs: dict[str, dict[str, LegStream]] = field(default_factory=dict)
    groups: dict[tuple[bytes, bytes, int], _Group] = field(default_factory=dict)
    members: dict[str, _Group] = field(default_factory=dict)
    """leg id -> the group sender its common stream currently uses."""
    halted: bool = False
    """Mixing stopped for good (the `mixer-crash-on-truncated` defect)."""
    lingering: set[str] = field(default_factory=set)
    """Legs the focus released that the mixer half kept (the leaver defects, `_linger`)."""


class Mixer:
    """Mix-minus audio and switched video for every conference of the reference."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        defects: frozenset[str] = frozenset(),
        clock: Callable[[], float] | None = None,
    ):
        self.host = host
        self.defects = defects
        self.stats = MixerStats()
        self.rtcp_record = RtcpRecord()
        """The RTCP the mixer sent, took, and dropped (with the peers that sent it)."""
        self._next_report = 0.0
        self._retiring: dict[int, tuple[LegStream, asyncio.TimerHandle]] = {}
        """Released streams whose sockets stay open a moment for their peer's RTCP BYE."""
        self._closing = False
        # The reference's own record of the keys it uses (evidence for O1 and R4 self-checks).
        self.ledger = KeyStreamLedger()
        self._conferences: dict[str, _Conference] = {}
        self._tick_handle: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self._paused = False

    async def allocate(
        self, conference_id: str, leg_id: str, media: tuple[str, ...]
    ) -> dict[str, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        conf = self._conferences.setdefault(conference_id, _Conference())
        streams: dict[str, LegStream] = {}
        addrs: dict[str, tuple[str, int]] = {}
        for kind in media:
            transport, proto = await loop.create_datagram_endpoint(
                lambda k=kind: LegStream(self, conference_id, leg_id, k),
                local_addr=(self.host, 0),
            )
            streams[kind] = proto
            addrs[kind] = transport.get_extra_info("sockname")[:2]
            if kind != COMMON_MEDIA:  # a port of its own for RTCP, where rtcp-mux is declined
                rtcp_transport, port = await loop.create_datagram_endpoint(
                    lambda s=proto: RtcpPort(s.rtcp_received), local_addr=(self.host, 0)
                )
                proto.rtcp.port = port
                addrs[kind + RTCP_SUFFIX] = rtcp_transport.get_extra_info("sockname")[:2]
        old = conf.legs.pop(leg_id, None)
        if old:
            for s in old.values():
                s.close()
        conf.legs[leg_id] = streams
        self._ensure_ticking()
        return addrs

    def install(self, setup: LegSetup) -> None:
        """Take the keys for a leg from the focus (also used to rekey a leg in place)."""
        conf = self._conferences[setup.conference_id]
        streams = conf.legs[setup.leg_id]
        for s in setup.streams:
            stream = streams.get(s.media)
            if stream is None:
                continue
            if s.media == COMMON_MEDIA:
                self._install_common(conf, setup, stream, s)
                continue
            stream.install(s, self.ledger, f"{setup.leg_id} epoch-{s.epoch}")

    def _install_common(
        self, conf: _Conference, setup: LegSetup, stream: LegStream, s: StreamSetup
    ) -> None:
        """Point a leg's common stream at the group sender of its key (made on first use)."""
        stream.point_at(s)
        stream.secure_rx = False
        if s.tx is None:
            conf.members.pop(setup.leg_id, None)
            stream.installed = False
            return
        ident = (s.tx.key, s.tx.salt, s.tx_ssrc)
        group = conf.groups.get(ident)
        if group is None:
            sid = StreamId("mixer", setup.conference_id, "audio", "send", f"common epoch-{s.epoch}")
            sender = new_sender(self.ledger, sid, s.tx.suite, s.tx.key, s.tx.salt)
            group = _Group(ident, sender, s.tx_ssrc)
            conf.groups[ident] = group
        conf.members[setup.leg_id] = group
        stream.installed = True
        self._forget_unused_groups(conf)

    @staticmethod
    def _forget_unused_groups(conf: _Conference) -> None:
        used = {id(g) for g in conf.members.values()}
        for ident in [i for i, g in conf.groups.items() if id(g) not in used]:
            del conf.groups[ident]

    def release(self, conference_id: str, leg_id: str) -> None:
        conf = self._conferences.get(conference_id)
        if conf is None:
            return
        if self._linger(conf, leg_id):
            if conf.lingering != set(conf.legs):
                return
            leg_id = ""  # the last real leg is gone: the lingering ones go with it
        for gone in [leg_id] if leg_id else list(conf.legs):
            conf.members.pop(gone, None)
            conf.lingering.discard(gone)
            for stream in conf.legs.pop(gone, {}).values():
                stream.installed = False
                self._retire(stream)
        self._forget_unused_groups(conf)
        if not conf.legs:
            del self._conferences[conference_id]

    def _retire(self, stream: LegStream) -> None:
        """Close a released stream's sockets after `RTCP_LINGER_S`, meanwhile reading only its
        peer's RTCP; at once when the mixer closes or runs without a loop."""
        stream.released = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._closing or loop is None:
            stream.close()
            return
        handle = loop.call_later(RTCP_LINGER_S, self._retired, stream)
        self._retiring[id(stream)] = (stream, handle)

    def _retired(self, stream: LegStream) -> None:
        self._retiring.pop(id(stream), None)
        stream.close()

    def _linger(self, conf: _Conference, leg_id: str) -> bool:
        """The leaver defects: a released leg is only half forgotten. With
        `mixer-keeps-sending-to-leaver` the mix still goes to the leaver's address, under the keys
        it held (its common stream included); with `mixer-mixes-leaver` what arrives on the
        leaver's old port still authenticates under its old key and is mixed for the others."""
        keep_sending = "mixer-keeps-sending-to-leaver" in self.defects
        keep_mixing = "mixer-mixes-leaver" in self.defects
        streams = conf.legs.get(leg_id)
        if not (keep_sending or keep_mixing) or streams is None or leg_id in conf.lingering:
            return False
        for stream in streams.values():
            stream.deaf = not keep_mixing
            if not keep_sending:
                stream.remote = None
        if not keep_sending:
            conf.members.pop(leg_id, None)
            self._forget_unused_groups(conf)
        conf.lingering.add(leg_id)
        return True

    def idle_s(self, conference_id: str, leg_id: str) -> float | None:
        """Seconds since the leg last sent media that authenticated (since its allocation if
        it never did); None for a leg the mixer does not have. The media inactivity timer of
        RFC 3550 6.3.5, read by the focus (`liveness.py`) as an MRFC hears of an MRFP's."""
        conf = self._conferences.get(conference_id)
        streams = conf.legs.get(leg_id) if conf is not None else None
        inbound = [s for s in (streams or {}).values() if s.media != COMMON_MEDIA]
        if not inbound:
            return None
        return asyncio.get_running_loop().time() - max(s.last_rx for s in inbound)

    def close(self) -> None:
        self._closing = True
        for conf_id in list(self._conferences):
            for leg_id in list(self._conferences[conf_id].legs):
                self.release(conf_id, leg_id)
        for stream, handle in self._retiring.values():
            handle.cancel()
            stream.close()
        self._retiring.clear()
        if self._tick_handle:
            self._tick_handle.cancel()
            self._tick_handle = None

    # -- media paths ---------------------------------------------------------------------------

    def halt(self, conference_id: str, why: str) -> None:
        """Stop mixing and switching for one conference (the `mixer-crash-on-truncated`
        defect: what a receive path that indexes past a short packet's end amounts to)."""
        conf = self._conferences.get(conference_id)
        if conf is not None and not conf.halted:
            conf.halted = True
            log.error("mixer crashed for conference %s: %s", conference_id, why)

    def switch(self, source: LegStream, payload: bytes) -> None:
        conf = self._conferences.get(source.conference_id)
        if conf is None or conf.halted:
            return
        for leg_id, streams in conf.legs.items():
            if leg_id != source.leg_id and (out := streams.get(source.media)) is not None:
                out.send(payload, ts_step=3000)

    def relay_rtcp(self, source: LegStream, data: bytes) -> None:
        """Only the `mixer-relays-rtcp` defect calls this: a participant's RTCP datagram goes
        to every other leg of the conference unchanged, as a translator that relays it would."""
        conf = self._conferences.get(source.conference_id)
        if conf is None:
            return
        for leg_id, streams in conf.legs.items():
            if leg_id != source.leg_id and (out := streams.get(source.media)) is not None:
                out.send_rtcp(data)

    def _report(self) -> None:
        """Each stream's SRTCP sender report, once a second."""
        for conf in self._conferences.values():
            if conf.halted:
                continue
            for streams in conf.legs.values():
                for stream in streams.values():
                    stream.send_report()

    def pause(self) -> None:
        """Stop sending (benchmarks/scale.py quiesces the media to count packets exactly)."""
        self._paused = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None

    def resume(self) -> None:
        self._paused = False
        if self._conferences:
            self._ensure_ticking()

    def _ensure_ticking(self) -> None:
        if self._tick_handle is None and not self._paused:
            loop = asyncio.get_running_loop()
            self._next_tick = loop.time() + TICK_S
            self._tick_handle = loop.call_at(self._next_tick, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for conf in self._conferences.values():
                self._mix(conf)
            if loop.time() >= self._next_report:
                self._next_report = loop.time() + REPORT_INTERVAL_S
                self._report()
        except Exception:  # a bug in one tick must not stop the mixer
            log.exception("mixer tick failed")
        if not self._conferences:
            self._tick_handle = None
            return
        self._next_tick += TICK_S
        now = loop.time()
        if self._next_tick < now - 0.2:  # fell far behind (loaded machine): resynchronise
            self._next_tick = now + TICK_S
        self._tick_handle = loop.call_at(self._next_tick, self._tick)

    def _mix(self, conf: _Conference) -> None:
        audio = [s["audio"] for s in conf.legs.values() if "audio" in s]
        if not audio or conf.halted:
            return
        frames = [s.frames.popleft() if s.frames else _SILENCE for s in audio]
        total = np.sum(frames, axis=0, dtype=np.int32)
        for stream, own in zip(audio, frames, strict=True):
            if stream.remote is None or not stream.installed:
                continue
            out = np.clip(total - own, -32768, 32767).astype(np.int16)
            stream.send(pcmu_encode(out))
        if conf.members:
            self._send_common(conf, pcmu_encode(np.clip(total, -32768, 32767).astype(np.int16)))

    def _send_common(self, conf: _Conference, payload: bytes) -> None:
        """Protect the full mix once per group epoch and fan the same bytes out to its legs."""
        packets: dict[int, bytes] = {}
        for leg_id, group in conf.members.items():
            stream = conf.legs.get(leg_id, {}).get(COMMON_MEDIA)
            if stream is None or stream.transport is None or stream.remote is None:
                continue
            packet = packets.get(id(group))
            if packet is None:
                group.seq = (group.seq + 1) & 0xFFFF
                group.ts = (group.ts + FRAME_SAMPLES) & 0xFFFFFFFF
                packet = build_rtp(stream.payload_type, group.seq, group.ts, group.ssrc, payload)
                if stream.secure_tx:
                    packet = group.sender.protect(packet)
                packets[id(group)] = packet
            stream.transport.sendto(packet, stream.remote)
            self.stats.sent += 1
