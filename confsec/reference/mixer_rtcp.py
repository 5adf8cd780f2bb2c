"""The reference mixer's RTCP: it terminates RTCP, never relays it (RFC 3550 7.3, RFC 3711 3.4).

A mixer is an RTP session end for each participant: it reports on what it sends in its own
SRTCP, under each participant's sending key of the focus's, and it reads what participants
report, taking only SRTCP that authenticates. What does not (plain RTCP, a forged or replayed
SRTCP packet) is dropped and written down as an observation about the peer that sent it, with
its first datagrams as evidence: a third-party participant's plain RTCP is a finding about that
peer even where the mixer is the system under test.

Three defect switches act here, each in one visible branch of `report_packet` or
`LegRtcp.received`: `mixer-sends-plain-rtcp`, `mixer-relays-rtcp` and `srtcp-srtp-keystream`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confsec.media import rtcp
from confsec.media.defect_srtp import SRTCP_TAG_LEN, protect_rtcp_with_srtp_keys
from confsec.media.srtp import AUTH_FAILED, REPLAYED, SrtpReceiver, SrtpSender
from confsec.reference.mixer_control import SrtpKeys

__all__ = [
    "REPORT_INTERVAL_S",
    "LegRtcp",
    "RtcpObservation",
    "RtcpPort",
    "RtcpRecord",
]

REPORT_INTERVAL_S = 1.0
SAMPLES = 4
_NTP_EPOCH = 2_208_988_800


@dataclass
class RtcpObservation:
    """RTCP from one leg's stream that the mixer dropped, by kind, with its first datagrams."""

    leg_id: str
    media: str
    source: tuple[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    """'plain', 'unencrypted', 'auth-failed', 'replayed', 'malformed' -> datagrams."""
    samples: list[tuple[float, str, bytes]] = field(default_factory=list)
    """(wall-clock time, kind, datagram) of the first `SAMPLES`."""

    def sentence(self) -> str:
        what = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        return f"{self.leg_id} {self.media} from {self.source[0]}:{self.source[1]}: {what} RTCP"

    def datagrams(self) -> list[str]:
        """Each kept datagram as evidence a capture can be searched for: arrival time, size,
        the packet types of a plain compound, and its first octets (the datagram itself is in
        `samples`, to match byte for byte against a capture's frames)."""
        out = []
        for at, kind, data in self.samples:
            stamp = time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
            types = ""
            if kind == "plain":
                names = [
                    rtcp.TYPE_NAMES.get(p.packet_type, str(p.packet_type))
                    for p in rtcp.parse_compound(data)
                ]
                types = f" ({'+'.join(names)})"
            out.append(f"{stamp} {kind}{types}, {len(data)} octets: {data[:16].hex()}")
        return out


class RtcpRecord:
    """What the mixer dropped, per (leg, medium): bounded, read by tests and the operator."""

    def __init__(self) -> None:
        self.observations: dict[tuple[str, str], RtcpObservation] = {}
        self.srtcp_ok = 0
        self.dropped = 0
        self.sent = 0
        self.strays = 0
        """Refused RTCP from an address that is not the peer's: another process's, on a shared
        machine (a port reused a moment after its owner closed it); dropped, never an
        observation about the peer."""

    def dropped_from(
        self,
        leg_id: str,
        media: str,
        source: tuple[str, int],
        kind: str,
        data: bytes,
        from_peer: bool = True,
    ) -> None:
        """One refused datagram: about the peer when it came from its address, else a stray."""
        if not from_peer:
            self.strays += 1
            return
        self.dropped += 1
        o = self.observations.get((leg_id, media))
        if o is None:
            o = self.observations[(leg_id, media)] = RtcpObservation(leg_id, media, source)
        o.counts[kind] = o.counts.get(kind, 0) + 1
        if len(o.samples) < SAMPLES:
            o.samples.append((time.time(), kind, data))


class RtcpPort(asyncio.DatagramProtocol):
    """A stream's own RTCP socket, for a participant that does not mux (RFC 3605)."""

    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class LegRtcp:
    """The RTCP of one `LegStream`: where it goes, what was sent, how what came was judged."""

    def __init__(self, record: RtcpRecord, defects: frozenset[str], cname: str) -> None:
        self.record = record
        self.defects = defects
        self.cname = cname
        self.port: RtcpPort | None = None
        self.remote: tuple[str, int] | None = None
        """The participant's RTCP address where it does not mux; else RTCP shares RTP's."""
        self.tx_keys: SrtpKeys | None = None
        """Kept only for `srtcp-srtp-keystream`, which protects outside libsrtp."""
        self.srtcp_index = 0

    def received(
        self,
        rx: SrtpReceiver | None,
        data: bytes,
        source: tuple[str, int],
        where: tuple[str, str],
        relay: Callable[[bytes], None],
        from_peer: bool = True,
    ) -> None:
        """Take SRTCP that authenticates; drop and record everything else, as an observation
        about the peer when it came from the peer's address (`from_peer`)."""
        if "mixer-relays-rtcp" in self.defects:
            relay(data)  # the defect: passed on to the others as it came, unprocessed
        if rx is not None and rx.try_unprotect_rtcp(data) is not None:
            # The E flag leads the word after the encrypted part (RFC 3711 3.4; after the tag
            # with AES-GCM, RFC 7714 9): the reference never agrees UNENCRYPTED_SRTCP.
            at = len(data) - 4 - (0 if rx.profile.aead else SRTCP_TAG_LEN)
            if data[at] & 0x80:
                self.record.srtcp_ok += 1
                return
            kind = "unencrypted"
        elif rtcp.is_plain_rtcp(data):
            kind = "plain"
        elif rx is not None and rx.last_status == AUTH_FAILED:
            kind = "auth-failed"
        elif rx is not None and rx.last_status == REPLAYED:
            kind = "replayed"
        else:
            kind = "malformed"
        self.record.dropped_from(where[0], where[1], source, kind, data, from_peer)

    def early(
        self, data: bytes, source: tuple[str, int], where: tuple[str, str], from_peer: bool = True
    ) -> None:
        """RTCP before the stream's keys are installed: only plain RTCP can be judged yet."""
        if rtcp.is_plain_rtcp(data):
            self.record.dropped_from(where[0], where[1], source, "plain", data, from_peer)

    def report_packet(self, tx: SrtpSender | None, ssrc: int, rtp_ts: int, packets: int) -> bytes:
        """The mixer's SR with an SDES CNAME for one stream, protected as SRTCP."""
        t = time.time() + _NTP_EPOCH
        ntp = (int(t) << 32) | int((t % 1) * (1 << 32))
        compound = rtcp.compound(
            rtcp.sender_report(ssrc, ntp, rtp_ts, packets, packets * 160),
            rtcp.sdes_cname(ssrc, self.cname),
        )
        if "mixer-sends-plain-rtcp" in self.defects or tx is None:
            return compound  # the defect (or a plain RTP leg): RTCP in the clear
        if "srtcp-srtp-keystream" in self.defects and self.tx_keys is not None:
            # The defect: SRTCP protected with the SRTP session keys (labels 0 to 2) instead of
            # its own (3 to 5), so its keystream is SRTP's at the same index.
            self.srtcp_index = (self.srtcp_index + 1) & 0x7FFFFFFF
            k = self.tx_keys
            return protect_rtcp_with_srtp_keys(k.suite, k.key, k.salt, compound, self.srtcp_index)
        return tx.protect_rtcp(compound)

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None
