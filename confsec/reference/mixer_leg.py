"""One medium of one leg of the reference mixer: its UDP socket and its SRTP, both directions.

Everything about a single participant's stream lives here: receiving (authenticate, decrypt,
keep the audio frames for the next mix or hand a video frame on), sending (number, time-stamp,
protect) and the keys the focus installed for it. What to do with the media of several legs
together is the mixing engine's (`mixer.py`), which this module only reaches through the narrow
`MixingEngine` protocol, so that the engine can own its legs without the two importing each
other.

The receive path is also where the mixer's media robustness defect switches act: each one is a
visible branch in `_payload` or `_refused`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from confsec.media.defect_srtp import IndexGuess, decrypt_ignoring_tag, unprotect_ignoring_replay
from confsec.media.dtls import SrtpKeys as DtlsKeys
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import (
    RTP_HEADER_LEN,
    RtpParseError,
    build_rtp,
    peek_ssrc_seq,
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
from confsec.media.tone import pcmu_decode
from confsec.reference.mixer_control import COMMON_MEDIA, DtlsSetup, SrtpKeys, StreamSetup
from confsec.reference.mixer_dtls import LegAssociation
from confsec.reference.mixer_rtcp import LegRtcp, RtcpRecord

FRAME_SAMPLES = 160  # 20 ms of 8 kHz audio
EARLY_DTLS_LIMIT = 8
EARLY_MEDIA_DEFECT = "dtls-media-before-handshake"
# Defect switches that decrypt refused packets outside libsrtp: the stream keeps its receive key
# and an estimate of the packet index for them.
DECRYPTING_DEFECTS = frozenset({"mixer-accepts-replay", "mixer-skips-auth-check"})


@dataclass
class MixerStats:
    received: int = 0
    auth_failed: int = 0
    plain_mixed: int = 0
    sent: int = 0


class MixingEngine(Protocol):
    """What a leg needs from the mixer that owns it."""

    @property
    def defects(self) -> frozenset[str]: ...

    @property
    def stats(self) -> MixerStats: ...

    @property
    def rtcp_record(self) -> RtcpRecord: ...

    def relay_rtcp(self, source: LegStream, data: bytes) -> None: ...

    def halt(self, conference_id: str, why: str) -> None: ...

    def switch(self, source: LegStream, payload: bytes) -> None: ...


class LegStream(asyncio.DatagramProtocol):
    """One UDP socket: one medium of one leg."""

    def __init__(self, engine: MixingEngine, conference_id: str, leg_id: str, media: str):
        self.engine = engine
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
        """Kept only for the defect switches in `DECRYPTING_DEFECTS`."""
        self.index: IndexGuess | None = None
        self.last_rx = 0.0
        """Loop time of the last packet that authenticated (or, from allocation on, of the
        allocation): the mixer's media inactivity timer reads it (RFC 3550 6.3.5)."""
        self.deaf = False
        """Released by the focus yet still sent to (the `mixer-keeps-sending-to-leaver`
        defect): what arrives is not mixed."""
        self._clock = time.monotonic
        self.association: LegAssociation | None = None
        """The DTLS-SRTP association whose keys are in use (dtls-srtp mode)."""
        self.pending: LegAssociation | None = None
        """A new association (a join, or a rekey) whose handshake has not completed yet."""
        self._early: list[bytes] = []
        """ClientHello flights for an association the focus has not installed yet (`_dtls`)."""
        self.sent_packets = 0
        self.rtcp = LegRtcp(engine.rtcp_record, engine.defects, f"mixer@{conference_id}")
        """Its SRTCP: reports sent, and what participants report judged (`mixer_rtcp`)."""
        self.released = False
        """The focus released the leg: nothing is sent or mixed, its last RTCP still read."""

    # -- what the focus installs ---------------------------------------------------------------

    def point_at(self, s: StreamSetup) -> None:
        """Where and as what this stream sends, from the focus's setup of it."""
        self.remote = s.remote
        self.rtcp.remote = s.rtcp_remote
        self.payload_type = s.payload_type
        self.tx_ssrc = s.tx_ssrc
        keyed = s.tx is not None or s.dtls is not None
        self.secure_tx = keyed and "mixer-sends-plain-rtp" not in self.engine.defects

    def install(self, s: StreamSetup, ledger: KeyStreamLedger, label: str) -> None:
        """Take the keys of this medium (a rekey installs the next epoch's in place)."""
        self.point_at(s)
        if s.dtls is not None:
            self._associate(s.dtls, ledger, label)
            return
        self.secure_rx = s.rx is not None
        self.rx = (
            new_receiver(ledger, StreamId("mixer", label, s.media, "recv"), *_k(s.rx))
            if s.rx
            else None
        )
        self.tx = (
            new_sender(ledger, StreamId("mixer", label, s.media, "send"), *_k(s.tx))
            if s.tx
            else None
        )
        self.rtcp.tx_keys = s.tx
        if self.engine.defects & DECRYPTING_DEFECTS:
            self.rx_keys = s.rx
            self.index = IndexGuess()  # a new key is a new libsrtp session
        self.installed = True

    def _associate(self, setup: DtlsSetup, ledger: KeyStreamLedger, label: str) -> None:
        """Start the association `setup` names, unless it is the one in use (same tls-id)."""
        for current in (self.association, self.pending):
            if current is not None and current.setup.tls_id == setup.tls_id:
                return
        if self.pending is not None:
            self.pending.close()

        def keyed(keys: DtlsKeys) -> None:
            self.rx = new_receiver(
                ledger,
                StreamId("mixer", label, self.media, "recv"),
                keys.suite,
                keys.remote_key,
                keys.remote_salt,
            )
            self.tx = new_sender(
                ledger,
                StreamId("mixer", label, self.media, "send"),
                keys.suite,
                keys.local_key,
                keys.local_salt,
            )
            self.rtcp.tx_keys = SrtpKeys(keys.suite, keys.local_key, keys.local_salt)
            self.secure_rx = True
            self.secure_tx = "mixer-sends-plain-rtp" not in self.engine.defects
            old, self.association, self.pending = self.association, self.pending, None
            if old is not None:
                old.close()
            self.installed = True

        self.pending = LegAssociation(setup, self._send_dtls, keyed, f"{label} {self.media}")
        if EARLY_MEDIA_DEFECT in self.engine.defects and self.association is None:
            # The defect: media runs from the install on, in the clear until keys exist, and
            # the handshake waits for the media path to be "up" (a few packets later).
            self.installed, self.secure_tx = True, False
            if setup.role == "client":
                asyncio.get_running_loop().call_later(0.2, self.pending.start)
        elif setup.role == "client":
            self.pending.start()
        early, self._early = self._early, []
        for data in early:  # routed again: a later rekey's ClientHello waits on for its own
            self._dtls(data)

    def _dtls(self, data: bytes) -> None:
        """Route one DTLS datagram. A new ClientHello (epoch 0) that comes while no new
        association is set up belongs to the next one: the participant answered a rekey and
        began its handshake before the focus's install reached the mixer. It waits for that
        association (a few datagrams at most) instead of reaching the established one, which
        would answer with the old identity. So does a ClientHello another client sent while
        a rekey's association is still handshaking with the first (`foreign_hello`): a later
        rekey superseded that one, and its install is on the way."""
        if self.pending is not None:
            if not self.pending.foreign_hello(data):
                self.pending.datagram(data)
            elif len(self._early) < EARLY_DTLS_LIMIT:
                self._early.append(data)
            return
        fresh = data[0] == 22 and data[3:5] == b"\x00\x00"
        if self.association is not None and fresh and self.association.connected:
            if len(self._early) < EARLY_DTLS_LIMIT:
                self._early.append(data)
            return
        if self.association is not None:
            self.association.datagram(data)

    def _send_dtls(self, data: bytes) -> None:
        if self.transport is not None and self.remote is not None:
            self.transport.sendto(data, self.remote)

    def close(self) -> None:
        for association in (self.association, self.pending):
            if association is not None:
                association.close()
        self.association = self.pending = None
        self.rtcp.close()
        if self.transport:
            self.transport.close()

    # -- receiving -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._clock = asyncio.get_running_loop().time
        self.last_rx = self._clock()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data and 19 < data[0] < 64:  # DTLS (RFC 7983)
            self._dtls(data)
            return
        if len(data) > 1 and 192 <= data[1] <= 223:  # RTCP on the muxed port (RFC 5761)
            self.rtcp_received(data, addr)
            return
        if not self.installed or self.deaf or self.media == COMMON_MEDIA:  # common: send-only
            return
        self.engine.stats.received += 1
        if "mixer-crash-on-truncated" in self.engine.defects and self._truncated(data):
            # The defect: a parser that trusts the length takes the conference's mixing down.
            self.engine.halt(self.conference_id, f"{len(data)}-octet packet on {self.leg_id}")
            return
        payload = self._payload(data)
        if payload is None:
            return
        self.last_rx = self._clock()
        if self.media == "audio":
            if len(payload) == FRAME_SAMPLES:
                self.frames.append(pcmu_decode(payload))
        else:
            self.engine.switch(self, payload)

    def rtcp_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """RTCP on either port: SRTCP that authenticates is taken, the rest dropped. Before
        the keys are installed only plain RTCP can be judged (a peer may report as soon as it
        has answered); after the release the stream still reads its peer's last RTCP, the BYE
        that often follows the SIP BYE (`Mixer.release` keeps the sockets open a moment)."""
        if self.deaf or self.media == COMMON_MEDIA:
            return
        where = (self.leg_id, self.media)
        # Only what comes from the peer's announced addresses is recorded about the peer.
        peers = [a for a in (self.remote, self.rtcp.remote) if a is not None]
        ours = not peers or tuple(addr[:2]) in peers
        if not self.installed and not self.released:
            self.rtcp.early(data, addr, where, ours)
            return
        rx = self.rx if self.secure_rx else None
        if self.released:
            self.rtcp.received(rx, data, addr, where, lambda d: None, ours)
            return
        relay = self.engine.relay_rtcp
        self.rtcp.received(rx, data, addr, where, lambda d: relay(self, d), ours)

    def send_rtcp(self, data: bytes) -> None:
        """One datagram to the participant's RTCP address: its own port, or the muxed one."""
        port = self.rtcp.port
        if self.rtcp.remote is not None and port is not None and port.transport is not None:
            port.transport.sendto(data, self.rtcp.remote)
        elif self.transport is not None and self.remote is not None:
            self.transport.sendto(data, self.remote)

    def send_report(self) -> None:
        """The mixer's SRTCP sender report on this stream (RFC 3550 6.4.1)."""
        if not self.installed or self.remote is None or self.media == COMMON_MEDIA:
            return
        tx = self.tx if self.secure_tx else None
        self.send_rtcp(self.rtcp.report_packet(tx, self.tx_ssrc, self.ts, self.sent_packets))
        self.rtcp.record.sent += 1

    def _payload(self, data: bytes) -> bytes | None:
        """Authenticate and decrypt; packets that fail are dropped (unless a defect says not)."""
        if self.secure_rx and self.rx is not None:
            rtp = self.rx.try_unprotect(data)
            if rtp is None:
                self.engine.stats.auth_failed += 1
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
        defects = self.engine.defects
        keys, index = self.rx_keys, self.index
        if keys is not None and index is not None and not self._truncated(data):
            roc = index.roc_for(peek_ssrc_seq(data)[1])
            if rx.last_status == REPLAYED and "mixer-accepts-replay" in defects:
                # The defect: no replay window. The packet is still authenticated (with a
                # replay-free implementation), so only genuine packets sent before get in.
                return unprotect_ignoring_replay(*_k(keys), data, roc)
            if rx.last_status == AUTH_FAILED and "mixer-skips-auth-check" in defects:
                return decrypt_ignoring_tag(*_k(keys), data, roc)  # the defect: no tag read
        if "mixer-mixes-unauthenticated" in defects:
            self.engine.stats.plain_mixed += 1
            return data  # the defect: treat what failed authentication as plain RTP
        return None

    # -- sending -------------------------------------------------------------------------------

    def send(self, payload: bytes, marker: bool = False, ts_step: int = FRAME_SAMPLES) -> None:
        if self.transport is None or self.remote is None or not self.installed:
            return
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + ts_step) & 0xFFFFFFFF
        packet = build_rtp(self.payload_type, self.seq, self.ts, self.tx_ssrc, payload, marker)
        if self.secure_tx and self.tx is not None:
            packet = self.tx.protect(packet)
        self.transport.sendto(packet, self.remote)
        self.sent_packets += 1
        self.engine.stats.sent += 1


def _k(keys: SrtpKeys) -> tuple[str, bytes, bytes]:
    return keys.suite, keys.key, keys.salt
