"""The RTCP of one media leg: the reports a participant sends about its stream, and where.

Real stacks send a compound report every few seconds while a stream lives (RFC 3550 6.1 and
6.4: an SR while they send, an RR otherwise, each with an SDES CNAME) and a BYE when they leave
(6.6). A conformance run has to speak it too, or a service that mishandles RTCP is never put
to the test: a mixer that relays a participant's RTCP unprocessed only shows when participants
send some.

* With rtcp-mux (RFC 5761) RTCP shares the RTP socket. Without, it has a socket of its own,
  which the offer names in `a=rtcp` (RFC 3605), and it goes to the answer's `a=rtcp` port, or
  to the RTP port + 1 when the answer names none (RFC 3550 11).
* Every compound is protected with the leg's *current* SRTP sender (`protect_rtcp`): SRTCP has
  its own session keys from the same master key (RFC 3711 4.3.2), and a rekey that replaces
  the sender moves SRTCP to the new key with SRTP.
* The interval is one second, randomised over [0.5, 1.5] (RFC 3550 6.3.1), much shorter than
  the 5 s minimum of 6.2 so that a scenario of a few seconds sees reports both ways; RFC 3550
  6.2 allows a smaller minimum, and a report a second is a few hundred bits per second.
* One timer per leg on the loop (`call_at`), no task and no sleep.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from confsec.errors import LocalProtocolError
from confsec.media import rtcp
from confsec.media.reception import RtcpStats

__all__ = ["REPORT_INTERVAL_S", "RtcpChannel", "RtcpLeg"]

T = TypeVar("T")
S = TypeVar("S", bound=tuple[Any, ...])  # a kept sample: (arrival time or None, ...)

REPORT_INTERVAL_S = 1.0
_RECENT = 256  # datagrams kept on the own socket, for the checks that scan what arrived
_NTP_EPOCH = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)

Addr = tuple[Any, ...]


class RtcpLeg(Protocol):
    """What the channel needs of a media socket: `confsec.media.endpoint.MediaLeg` is one, and
    its own RTCP socket is another of the same class. A protocol, so that this module does
    not import `endpoint`, whose legs hold a channel."""

    local_addr: tuple[Any, ...]
    remote: tuple[Any, ...] | None
    sender: Any
    sent: int
    rtcp_channel: Any
    allow_unencrypted_srtcp: bool
    rtcp_refused_samples: list[tuple[float | None, bytes]]
    rtcp_opened: deque[tuple[float | None, bytes]]
    recent: deque[tuple[float, Any, bytes]] | None
    strays: int
    stray_samples: list[tuple[float | None, Any, int, bytes]]
    strays_recent: deque[tuple[float | None, Any, bytes]]
    _receiver: Any

    @property
    def sending(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def whole(self, read: Callable[[], T]) -> T: ...
    def rtcp_stats(self) -> RtcpStats: ...
    def send_raw(self, data: bytes, addr: tuple[Any, ...] | None = None) -> None: ...
    def set_receiver(self, receiver: Any, *, keep_previous: bool = False) -> None: ...
    def expect_key(self) -> None: ...
    def attribute(self, *sources: tuple[Any, ...], own_host: str | None = None) -> None: ...
    def close(self) -> None: ...


def _ntp_now() -> int:
    t = time.time() + _NTP_EPOCH
    return (int(t) << 32) | int((t % 1) * (1 << 32))


class RtcpChannel:
    """RTCP for one `MediaLeg`. `await RtcpChannel.open(leg, cname)`, then `start(ssrc)`."""

    def __init__(self, leg: RtcpLeg, cname: str, interval: float = REPORT_INTERVAL_S) -> None:
        self.leg = leg
        self.cname = cname
        self.interval = interval
        self.socket: RtcpLeg | None = None
        """The leg's own RTCP socket, until rtcp-mux is agreed (then closed)."""
        self.remote: Addr | None = None
        """Where RTCP goes without rtcp-mux; with it, `leg.remote`."""
        self.muxed = False
        self.ssrc = 0
        self.reports = 0
        """Compound reports sent (SR or RR with SDES)."""
        self.byes = 0
        self.send_error: BaseException | None = None
        self._handle: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, leg: RtcpLeg, cname: str, *, own_socket: bool = True) -> RtcpChannel:
        """The channel, with its own socket (whose port an offer names in `a=rtcp`) unless
        `own_socket` is False: then RTCP goes only where rtcp-mux is agreed."""
        channel = cls(leg, cname)
        if own_socket:
            host = leg.local_addr[0] if leg.local_addr else "127.0.0.1"
            # The leg's own class opens it: no import of `endpoint`, which imports this module.
            opener: Any = type(leg)  # MediaLeg.open, a classmethod the protocol cannot name
            channel.socket = await opener.open(host=host, port=0, recent_limit=_RECENT)
            # A key set before the channel opened (the dial-out answerer's order) judges the
            # own socket's SRTCP too; `MediaLeg.set_receiver` passes on those set after.
            if leg._receiver is not None:
                channel.socket.set_receiver(leg._receiver)
        leg.rtcp_channel = channel
        return channel

    @property
    def received(self) -> RtcpStats:
        """How the RTCP received was judged, on the RTP socket and the channel's own."""
        stats = self.leg.whole(self.leg.rtcp_stats)
        if self.socket is not None:
            stats += self.socket.whole(self.socket.rtcp_stats)
        return stats

    @property
    def strays(self) -> int:
        """Datagrams on the RTP socket and the own one set aside as not the target's."""
        return self.leg.strays + (self.socket.strays if self.socket is not None else 0)

    def stray_samples(self) -> list[tuple[float | None, Any, int, bytes]]:
        """The strays kept as evidence, from both sockets, in arrival order."""
        return self._both(lambda sock: sock.stray_samples)

    def refused_samples(self) -> list[tuple[float | None, bytes]]:
        """The refused RTCP kept as evidence, from both sockets, in arrival order."""
        return self._both(lambda sock: sock.rtcp_refused_samples)

    def _both(self, samples: Callable[[RtcpLeg], list[S]]) -> list[S]:
        out = list(samples(self.leg))
        if self.socket is not None:
            out += samples(self.socket)
        return sorted(out, key=lambda s: s[0] or 0.0)

    def expect_key(self) -> None:
        """The offer's key is not known yet: the own socket holds SRTCP for it too."""
        if self.socket is not None:
            self.socket.expect_key()

    def allow_unencrypted(self, allowed: bool) -> None:
        """UNENCRYPTED_SRTCP was (not) negotiated for what this leg receives."""
        self.leg.allow_unencrypted_srtcp = allowed
        if self.socket is not None:
            self.socket.allow_unencrypted_srtcp = allowed

    @property
    def port(self) -> int | None:
        return None if self.socket is None else int(self.socket.local_addr[1])

    def use_mux(self) -> None:
        """The answer agreed to rtcp-mux: RTCP on the RTP socket from now on."""
        self.muxed = True
        self.remote = None
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def use_port(self, remote: Addr) -> None:
        """No rtcp-mux: RTCP to `remote` from the channel's own socket."""
        self.muxed = False
        self.remote = tuple(remote)
        # The target's RTCP comes from its RTCP address or its RTP one: both are its own.
        target = [self.remote, *([self.leg.remote] if self.leg.remote is not None else [])]
        own = self.leg.local_addr[0] if self.leg.local_addr else None
        self.leg.attribute(*target, own_host=own)
        if self.socket is not None:
            self.socket.attribute(*target, own_host=own)

    # -- sending ---------------------------------------------------------------------------------

    def start(self, ssrc: int) -> None:
        """Report on `ssrc` from now on, until `stop()`, `bye()` or the leg closes."""
        self.ssrc = ssrc
        if self._handle is None:
            self._schedule(first=True)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, first: bool = False) -> None:
        # RFC 3550 6.2: the first report after half an interval; each randomised (6.3.1).
        delay = self.interval * random.uniform(0.5, 1.5) * (0.5 if first else 1.0)
        loop = asyncio.get_running_loop()
        self._handle = loop.call_at(loop.time() + delay, self._tick)

    def _tick(self) -> None:
        self._handle = None
        if self.leg.closed:
            return
        self.send_report()
        if self.send_error is None:
            self._schedule()

    def report(self) -> bytes:
        """The compound this leg would send now: an SR while it sends RTP, else an RR."""
        leg = self.leg
        if leg.sending:
            first = rtcp.sender_report(self.ssrc, _ntp_now(), 0, leg.sent, leg.sent * 160)
        else:
            first = rtcp.receiver_report(self.ssrc)
        return rtcp.compound(first, rtcp.sdes_cname(self.ssrc, self.cname))

    def send_report(self) -> bool:
        """One protected report now; False when there is no key to protect it with."""
        if self._send_protected(self.report()):
            self.reports += 1
            return True
        return False

    def bye(self, reason: str = "leaving") -> bool:
        """An SRTCP BYE for the stream (RFC 3550 6.6), then no more reports."""
        self.stop()
        packet = rtcp.compound(rtcp.receiver_report(self.ssrc), rtcp.bye(self.ssrc, reason))
        if self._send_protected(packet):
            self.byes += 1
            return True
        return False

    def send_plain(self, compound: bytes) -> None:
        """RTCP sent as it is, unprotected: the negative tests' plain RTCP."""
        self._send(compound)

    def _send_protected(self, compound: bytes) -> bool:
        sender = self.leg.sender
        if sender is None or self.leg.closed:
            return False
        try:
            self._send(sender.protect_rtcp(compound))
        except LocalProtocolError as exc:  # kept for the step to see; a timer has no caller
            self.send_error = exc
            return False
        return True

    def _send(self, data: bytes) -> None:
        if self.muxed:
            if self.leg.remote is not None and not self.leg.closed:
                self.leg.send_raw(data)
        elif self.socket is not None and self.remote is not None and not self.socket.closed:
            self.socket.send_raw(data, self.remote)

    def close(self) -> None:
        self.stop()
        if self.socket is not None:
            self.socket.close()
            self.socket = None
