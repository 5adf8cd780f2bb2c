"""The SRTP mixer of the reference deployment (the MRFP role of TR 33.829 5.1.2).

Audio is *mixed*: every inbound stream is decrypted, each participant gets the sum of the others
(mix-minus, so nobody hears themselves), re-encrypted under that participant's own key. Video is
*switched*: a frame from one participant is re-encrypted for every other participant.

The *common stream* (R5, O3) is the full mix of everyone, protected once under the conference's
group key and SSRC and fanned out as identical packets to every leg that asked for it (a medium
named "common"). During a rekey the legs move to the new group key one by one (when each leg's
re-INVITE completes), so the mixer keeps one group sender per key epoch still in use and protects
each tick once per epoch, never once per leg.

The mixer never chooses keys. The focus hands them over through `MixerControl`, the explicit
focus -> mixer key interface that observation O1 is about (a later issue moves it onto a
protected channel and captures it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from confsec.media import reference_srtp
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import (
    RTP_HEADER_LEN,
    RtpParseError,
    build_rtp,
    peek_ssrc_seq,
    rtp_header_length,
    rtp_payload_bounds,
)
from confsec.media.srtp import (
    AUTH_FAILED,
    REPLAYED,
    SrtpReceiver,
    SrtpSender,
    new_receiver,
    new_sender,
)
from confsec.media.tone import pcmu_decode, pcmu_encode
from confsec.reference.keys import SrtpKeys

log = logging.getLogger(__name__)

FRAME_SAMPLES = 160  # 20 ms of 8 kHz audio
TICK_S = 0.020
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
# Defect switches that decrypt refused packets outside libsrtp: the stream keeps its receive key
# and an estimate of the packet index for them (robustness probes, issue 7).
_DECRYPTING_DEFECTS = frozenset({"mixer-accepts-replay", "mixer-skips-auth-check"})


@dataclass(frozen=True)
class StreamSetup:
    """What the focus tells the mixer about one medium of one leg."""

    media: str
    payload_type: int
    remote: tuple[str, int] | None
    rx: SrtpKeys | None  # the participant's sending key; None = plain RTP admitted
    tx: SrtpKeys | None  # the focus's sending key for this participant; None = plain RTP
    tx_ssrc: int
    epoch: int = 1
    """The conference key epoch these keys belong to (rekeying, R6): names ledger records."""


@dataclass(frozen=True)
class LegSetup:
    conference_id: str
    leg_id: str
    streams: tuple[StreamSetup, ...]


class MixerControl(Protocol):
    """The focus -> mixer interface (O1): ports are allocated first, keys installed after."""

    async def allocate(
        self, conference_id: str, leg_id: str, media: tuple[str, ...]
    ) -> dict[str, tuple[str, int]]: ...

    def install(self, setup: LegSetup) -> None: ...

    def release(self, conference_id: str, leg_id: str) -> None: ...


@dataclass
class MixerStats:
    received: int = 0
    auth_failed: int = 0
    plain_mixed: int = 0
    sent: int = 0


class _Stream(asyncio.DatagramProtocol):
    """One UDP socket: one medium of one leg."""

    def __init__(self, mixer: Mixer, conference_id: str, leg_id: str, media: str):
        self.mixer = mixer
        self.conference_id = conference_id
        self.leg_id = leg_id
        self.media = media
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.rx: SrtpReceiver | None = None
        self.tx: SrtpSender | None = None
        self.secure_rx = True
        self.secure_tx = True
        self.installed = False
        self.tx_ssrc = 0
        self.payload_type = 0
        self.seq = 0
        self.ts = 0
        self.frames: deque[np.ndarray] = deque(maxlen=6)
        self.rx_keys: SrtpKeys | None = None
        """Kept only for the defect switches in `_DECRYPTING_DEFECTS`."""
        self.index: _IndexGuess | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.installed or self.media == "common":  # the common stream is send-only
            return
        self.mixer.stats.received += 1
        if "mixer-crash-on-truncated" in self.mixer.defects and self._truncated(data):
            # The defect: a parser that trusts the length takes the conference's mixing down.
            self.mixer.halt(self.conference_id, f"{len(data)}-octet packet on {self.leg_id}")
            return
        payload = self._payload(data)
        if payload is None:
            return
        if self.media == "audio":
            if len(payload) == FRAME_SAMPLES:
                self.frames.append(pcmu_decode(payload))
        else:
            self.mixer.switch(self, payload)

    def _payload(self, data: bytes) -> bytes | None:
        """Authenticate and decrypt; packets that fail are dropped (unless a defect says not)."""
        if self.secure_rx and self.rx is not None:
            rtp = self.rx.try_unprotect(data)
            if rtp is None:
                self.mixer.stats.auth_failed += 1
                rtp = self._refused(self.rx, data)
                if rtp is None:
                    return None
            elif self.index is not None:
                self.index.accepted(peek_ssrc_seq(data)[1])
        else:
            rtp = data
        try:
            start, end = rtp_payload_bounds(rtp)
        except RtpParseError:
            return None
        return rtp[start:end]

    def _truncated(self, data: bytes) -> bool:
        """Too short for an RTP header (and the SRTP tag, on a protected stream)."""
        tag = self.rx.profile.auth_tag_len if self.secure_rx and self.rx is not None else 0
        return len(data) < RTP_HEADER_LEN + tag

    def _refused(self, rx: SrtpReceiver, data: bytes) -> bytes | None:
        """What the defect switches make of a packet libsrtp refused; None drops it."""
        defects = self.mixer.defects
        keys, index = self.rx_keys, self.index
        if keys is not None and index is not None and not self._truncated(data):
            roc = index.roc_for(peek_ssrc_seq(data)[1])
            if rx.last_status == REPLAYED and "mixer-accepts-replay" in defects:
                # The defect: no replay window. The packet is still authenticated (with a
                # replay-free implementation), so only genuine packets sent before get in.
                return _unprotect_anew(keys, data, roc)
            if rx.last_status == AUTH_FAILED and "mixer-skips-auth-check" in defects:
                return _decrypt_unchecked(keys, data, roc)  # the defect: the tag is not read
        if "mixer-mixes-unauthenticated" in defects:
            self.mixer.stats.plain_mixed += 1
            return data  # the defect: treat what failed authentication as plain RTP
        return None

    def send(self, payload: bytes, marker: bool = False, ts_step: int = FRAME_SAMPLES) -> None:
        if self.transport is None or self.remote is None or not self.installed:
            return
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + ts_step) & 0xFFFFFFFF
        packet = build_rtp(self.payload_type, self.seq, self.ts, self.tx_ssrc, payload, marker)
        if self.secure_tx and self.tx is not None:
            packet = self.tx.protect(packet)
        self.transport.sendto(packet, self.remote)
        self.mixer.stats.sent += 1


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
    legs: dict[str, dict[str, _Stream]] = field(default_factory=dict)
    groups: dict[tuple[bytes, bytes, int], _Group] = field(default_factory=dict)
    members: dict[str, _Group] = field(default_factory=dict)
    """leg id -> the group sender its common stream currently uses."""
    halted: bool = False
    """Mixing stopped for good (the `mixer-crash-on-truncated` defect)."""


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
        streams: dict[str, _Stream] = {}
        addrs: dict[str, tuple[str, int]] = {}
        for kind in media:
            transport, proto = await loop.create_datagram_endpoint(
                lambda k=kind: _Stream(self, conference_id, leg_id, k),
                local_addr=(self.host, 0),
            )
            streams[kind] = proto
            addrs[kind] = transport.get_extra_info("sockname")[:2]
        old = conf.legs.pop(leg_id, None)
        if old:
            for s in old.values():
                if s.transport:
                    s.transport.close()
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
            if s.media == "common":
                self._install_common(conf, setup, stream, s)
                continue
            stream.remote = s.remote
            stream.payload_type = s.payload_type
            stream.tx_ssrc = s.tx_ssrc
            stream.secure_rx = s.rx is not None
            stream.secure_tx = s.tx is not None and "mixer-sends-plain-rtp" not in self.defects
            label = f"{setup.leg_id} epoch-{s.epoch}"
            stream.rx = (
                new_receiver(self.ledger, StreamId("mixer", label, s.media, "recv"), *_k(s.rx))
                if s.rx
                else None
            )
            stream.tx = (
                new_sender(self.ledger, StreamId("mixer", label, s.media, "send"), *_k(s.tx))
                if s.tx
                else None
            )
            if self.defects & _DECRYPTING_DEFECTS:
                stream.rx_keys = s.rx
                stream.index = _IndexGuess()  # a new key is a new libsrtp session
            stream.installed = True

    def _install_common(
        self, conf: _Conference, setup: LegSetup, stream: _Stream, s: StreamSetup
    ) -> None:
        """Point a leg's common stream at the group sender of its key (made on first use)."""
        stream.remote = s.remote
        stream.payload_type = s.payload_type
        stream.tx_ssrc = s.tx_ssrc
        stream.secure_rx = False
        stream.secure_tx = s.tx is not None and "mixer-sends-plain-rtp" not in self.defects
        if s.tx is None:
            conf.members.pop(setup.leg_id, None)
            stream.installed = False
            return
        ident = (s.tx.key, s.tx.salt, s.tx_ssrc)
        group = conf.groups.get(ident)
        if group is None:
            sid = StreamId("mixer", setup.conference_id, "audio", "send", f"common epoch-{s.epoch}")
            group = _Group(ident, new_sender(self.ledger, sid, *_k(s.tx)), s.tx_ssrc)
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
        conf.members.pop(leg_id, None)
        self._forget_unused_groups(conf)
        for stream in conf.legs.pop(leg_id, {}).values():
            stream.installed = False
            if stream.transport:
                stream.transport.close()
        if not conf.legs:
            del self._conferences[conference_id]

    def close(self) -> None:
        for conf_id in list(self._conferences):
            for leg_id in list(self._conferences[conf_id].legs):
                self.release(conf_id, leg_id)
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

    def switch(self, source: _Stream, payload: bytes) -> None:
        conf = self._conferences.get(source.conference_id)
        if conf is None or conf.halted:
            return
        for leg_id, streams in conf.legs.items():
            if leg_id != source.leg_id and (out := streams.get(source.media)) is not None:
                out.send(payload, ts_step=3000)

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
            stream = conf.legs.get(leg_id, {}).get("common")
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


def _k(keys: SrtpKeys) -> tuple[str, bytes, bytes]:
    return keys.suite, keys.key, keys.salt


class _IndexGuess:
    """A receiver's rollover counter, estimated as RFC 3711 section 3.3.1 does, for the defect
    switches that decrypt outside libsrtp (which keeps its own and does not show it)."""

    __slots__ = ("roc", "s_l")

    def __init__(self) -> None:
        self.roc = 0
        self.s_l: int | None = None

    def roc_for(self, seq: int) -> int:
        if self.s_l is None:
            return 0
        if self.s_l < 0x8000:
            v = self.roc - 1 if seq - self.s_l > 0x8000 else self.roc
        else:
            v = self.roc + 1 if self.s_l - 0x8000 > seq else self.roc
        return max(v, 0)

    def accepted(self, seq: int) -> None:
        """A packet libsrtp authenticated: advance the highest index seen."""
        v = self.roc_for(seq)
        if self.s_l is None or v > self.roc or (v == self.roc and seq > self.s_l):
            self.roc, self.s_l = v, seq


def _unprotect_anew(keys: SrtpKeys, data: bytes, roc: int) -> bytes | None:
    """The `mixer-accepts-replay` defect: authenticate and decrypt with no replay window."""
    try:
        return reference_srtp.unprotect_rtp(keys.suite, keys.key, keys.salt, data, roc)
    except (RtpParseError, ValueError):
        return None


def _decrypt_unchecked(keys: SrtpKeys, data: bytes, roc: int) -> bytes | None:
    """The `mixer-skips-auth-check` defect: decrypt with the stream's key, never reading the
    tag, so a forged or corrupted packet is mixed as if it were genuine."""
    suite = reference_srtp.SUITES.get(keys.suite)
    if suite is None:
        return None
    body = data[: len(data) - suite.tag_len]
    try:
        hlen = rtp_header_length(body)
    except RtpParseError:
        return None
    ssrc, seq = peek_ssrc_seq(data)
    session = reference_srtp.derive_session_keys(
        keys.key, keys.salt, salt_len=suite.session_salt_len, auth_len=suite.auth_key_len
    )
    payload = body[hlen:]
    if suite.aead:  # GCM's counter mode: the payload starts at block 2 (NIST SP 800-38D)
        iv = reference_srtp.gcm_iv(session.salt, ssrc, roc, seq) + b"\0\0\0\x02"
        dec = Cipher(algorithms.AES(session.encryption), modes.CTR(iv)).decryptor()
        clear = dec.update(payload) + dec.finalize()
    else:
        stream = reference_srtp.aes_cm_keystream(
            session.encryption, session.salt, ssrc, (roc << 16) | seq, len(payload)
        )
        clear = bytes(a ^ b for a, b in zip(payload, stream, strict=True))
    return body[:hlen] + clear
