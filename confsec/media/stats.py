"""What a media leg counted, as values: `MediaStats` (a snapshot of one leg) and `RtcpStats`
(how the RTCP it received was judged). `confsec.media.reception` fills them; checks read them
from any thread, so they are frozen and add up part by part."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MediaStats", "RtcpStats"]

Addr = tuple[Any, ...]


@dataclass(frozen=True)
class MediaStats:
    """A snapshot of what a leg sent and received."""

    sent: int
    """Packets sent by the pacing job (not `send_raw()`)."""
    received: int
    """Datagrams received, whatever they were."""
    authenticated: int
    """SRTP packets that authenticated under the receiver's key."""
    auth_failed: int
    """Packets refused by SRTP authentication (wrong key, tampering, plain RTP)."""
    replayed: int
    """Packets refused by the SRTP replay check."""
    malformed: int
    """Datagrams that are not RTP v2 / SRTP at all, or too short to be."""
    plain: int
    """RTP packets accepted without SRTP (no receiver set: negative tests only)."""
    rtcp: int
    """RTCP datagrams (plain or SRTCP) on this port; `RtcpStats` says how each was judged."""
    held: int
    """Packets waiting for their key: they came after `expect_key()` and before the receiver
    was set (media may precede the SDP answer that carries its key, RFC 3264 section 5.1)."""
    ssrcs: frozenset[int]
    """SSRCs seen in RTP packets (authenticated or not)."""
    peers: frozenset[Addr]
    """Source addresses seen."""
    first_arrival: float | None
    """Loop time of the first datagram."""
    last_arrival: float | None
    """Loop time of the last datagram."""
    stun: int = 0
    """STUN messages on the media port (ICE connectivity checks, keepalives): not media."""
    rtcp_accepted: int = 0
    """Of `rtcp`, SRTCP a conformant receiver takes (`RtcpStats.accepted`): the rest of
    `rtcp` is refused like media that does not authenticate."""
    strays: int = 0
    """Datagrams set aside as not the target's (`Reception.attribute`): not in `received`."""


@dataclass(frozen=True)
class RtcpStats:
    """How the RTCP a leg received was judged (RFC 3711 3.4): its parts add up to `received`."""

    received: int = 0
    """RTCP datagrams, whatever they were."""
    authenticated: int = 0
    """SRTCP that authenticated under the negotiated key, encrypted (E flag set)."""
    unencrypted: int = 0
    """SRTCP that authenticated with the E flag clear: conformant only where UNENCRYPTED_SRTCP
    was negotiated (`allowed_unencrypted`), and even then it must authenticate."""
    plain: int = 0
    """Plain RTCP: its compound fills the datagram, no SRTCP index, no tag."""
    auth_failed: int = 0
    replayed: int = 0
    """Refused by the SRTCP replay window (its own index, apart from SRTP's)."""
    malformed: int = 0
    """Neither plain RTCP nor SRTCP libsrtp could read."""
    allowed_unencrypted: bool = False

    def __add__(self, other: RtcpStats) -> RtcpStats:
        return RtcpStats(
            *(a + b for a, b in zip(self._counts(), other._counts(), strict=True)),
            allowed_unencrypted=self.allowed_unencrypted or other.allowed_unencrypted,
        )

    def __sub__(self, other: RtcpStats) -> RtcpStats:
        return RtcpStats(
            *(a - b for a, b in zip(self._counts(), other._counts(), strict=True)),
            allowed_unencrypted=self.allowed_unencrypted,
        )

    def _counts(self) -> tuple[int, ...]:
        return (
            self.received,
            self.authenticated,
            self.unencrypted,
            self.plain,
            self.auth_failed,
            self.replayed,
            self.malformed,
        )

    @property
    def accepted(self) -> int:
        """SRTCP a conformant receiver takes: authenticated, and encrypted unless agreed not."""
        return self.authenticated + (self.unencrypted if self.allowed_unencrypted else 0)

    @property
    def refused(self) -> int:
        return self.received - self.accepted

    def refusals(self) -> str:
        """Every non-zero reason for a refusal, named ('2 plain RTCP, 1 replayed')."""
        parts = [
            (self.plain, "plain RTCP"),
            (self.auth_failed, "failed SRTCP authentication"),
            (self.replayed, "replayed SRTCP"),
            (self.malformed, "neither RTCP nor SRTCP"),
            (0 if self.allowed_unencrypted else self.unencrypted, "unencrypted SRTCP"),
        ]
        return ", ".join(f"{n} {what}" for n, what in parts if n) or "none"
