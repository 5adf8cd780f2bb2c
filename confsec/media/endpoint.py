"""An asyncio UDP media leg: sends paced RTP/SRTP, receives and classifies what comes back.

Participants use one `MediaLeg` per media stream; the reference mixer may reuse it for its
sockets (with `set_receiver(None)` and an `on_packet` hook). A leg answers the questions the
media checks ask: did packets arrive, did they authenticate under the negotiated key, were any
replayed or not SRTP at all, which SSRCs, and which tones can be heard in them.

Design points (aiortc's thin asyncio adapter over a sans-IO core):

* The judgement of each datagram, its counters and the audio heard are the sans-IO
  `confsec.media.reception.Reception`, which the leg inherits; the leg adds the socket, the
  arrival bookkeeping (time, source, evidence), the pacing and the waiting.
* Pacing uses `loop.call_at()` on absolute times t0 + k / pps, so the send rate does not drift
  with scheduling delays (a late packet is sent late, the next one is still on time) and there
  is no sleep loop.
* Once the answer names the target (`set_remote`), only the target's datagrams are judged
  and kept in the history (`Reception.attribute`): another process's media reaching a reused
  port is set aside and counted, never a verdict about the target.
* Per-packet receive work is a few `struct` reads and counter increments; no dataclass per
  packet, and no call beyond `Reception._classify()` and the SRTP receiver's. Statistics are
  copied into a `MediaStats` only when asked for.
* The steps' thread reads `stats` while the loop's thread receives: a seqlock keeps each
  snapshot whole (`Reception.whole`).
* Waiting is event-driven: `wait_for_packets()` parks a future that the receive path resolves;
  a timeout raises `PeerTimeout` (the system under test did not deliver).
* DTLS-SRTP (`attach_dtls()`): a datagram whose first byte is 20..63 (RFC 7983) goes to its
  association's `DtlsDriver` (`dtls_demux`) before anything else sees it; one check if none.
* Memory is bounded: the first `raw_limit` datagrams are kept for evidence, the last
  `audio_seconds` of PCMU per SSRC for the tone check (`heard_tones()`), at most
  `ssrc_limit` SSRCs and peers.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from confsec.errors import LocalProtocolError, PeerTimeout, TransportError
from confsec.media.pacing import Protector, SendJob, silence
from confsec.media.reception import HELD_LIMIT, PCMU_PT, PCMU_RATE, Reception
from confsec.media.rtp import build_rtp
from confsec.media.srtp import SrtpReceiver, SrtpSender
from confsec.media.stats import MediaStats

STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"
"""RFC 5389 section 6: bytes 4..7 of every STUN message."""

if TYPE_CHECKING:
    from confsec.media.dtls import DtlsSrtpEndpoint
    from confsec.media.dtls_demux import AssociationRouter
    from confsec.media.dtls_leg import DtlsDriver, EventHook
    from confsec.media.rtcp_channel import RtcpChannel

__all__ = ["MediaLeg", "MediaStats", "Protector", "RawPacket"]

Addr = tuple[Any, ...]
#: (arrival time on the loop clock, source address, datagram)
RawPacket = tuple[float, Addr, bytes]
PacketHook = Callable[[bytes, Addr, float], None]


class MediaLeg(Reception, asyncio.DatagramProtocol):
    """One UDP media socket. Create with `await MediaLeg.open()`."""

    def __init__(
        self,
        *,
        audio_seconds: float = 5.0,
        raw_limit: int = 64,
        ssrc_limit: int = 1024,
        recent_limit: int = 0,
    ) -> None:
        super().__init__(
            audio_seconds=audio_seconds,
            ssrc_limit=ssrc_limit,
            held_limit=max(raw_limit, HELD_LIMIT),
        )
        self._loop = asyncio.get_running_loop()
        self._seq_next: int | None = None
        self.receiver_set_at: float | None = None
        """Loop time of the last `set_receiver()`."""
        self.recent: deque[RawPacket] | None = deque(maxlen=recent_limit) if recent_limit else None
        """The last `recent_limit` datagrams (time, source, bytes): what forward and backward
        security are judged on, by trying old keys on packets actually received."""
        self._transport: asyncio.DatagramTransport | None = None
        self.local_addr: Addr = ()
        self.remote: Addr | None = None
        self.sender: SrtpSender | None = None
        """Where a participant keeps this leg's SRTP sender; `start_sending()` takes it
        explicitly, so that a negative test can send plain RTP on a secure leg."""
        self.on_packet: PacketHook | None = None
        """Called as `on_packet(datagram, source, arrival)` for every datagram received."""
        self.hook_error: BaseException | None = None
        self.send_error: BaseException | None = None
        self.socket_errors = 0
        self._job: SendJob | None = None
        self._waiters: list[tuple[int, bool, asyncio.Future[None]]] = []
        self._raw: list[RawPacket] = []
        self._raw_limit = raw_limit
        self._peers: set[Addr] = set()
        self._first: float | None = None
        self._last: float | None = None
        self.sent = 0
        self.received = 0
        self.dtls: DtlsDriver | None = None
        """DTLS-SRTP on this socket (`attach_dtls()`): the newest association, for `dtls_router`."""
        self.dtls_router: AssociationRouter | None = None  # gets the datagrams RFC 7983 calls DTLS
        self.stun = 0
        """STUN messages received (RFC 7983: first byte 0..3 and the magic cookie)."""
        self.dtls_datagrams = 0
        """Datagrams handed to `dtls`: no other counter, `on_packet` or evidence sees them."""
        self._dtls_source: Addr | None = None
        self.rtcp_channel: RtcpChannel | None = None
        """The leg's RTCP (`RtcpChannel.open()`); its own socket until rtcp-mux is agreed."""

    # -- life cycle -----------------------------------------------------------------------------

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0, **options: Any) -> MediaLeg:
        """Bind a UDP socket (port 0: the OS picks one) and return the leg on it."""
        loop = asyncio.get_running_loop()
        try:
            _, leg = await loop.create_datagram_endpoint(
                lambda: cls(**options), local_addr=(host, port)
            )
        except OSError as exc:
            raise TransportError(f"cannot bind a media socket on {host}:{port}: {exc}") from exc
        return leg

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector transport is not a DatagramTransport subclass; duck-type it.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.local_addr = tuple(transport.get_extra_info("sockname")[:2])

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.stop_sending()
        if self.dtls_router is not None:
            self.dtls_router.close()  # stops the timers; nothing can be sent any more
        self._fail_waiters(TransportError("media leg closed"))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the peer is not listening (yet).
        self.socket_errors += 1

    def close(self) -> None:
        """Stop sending, close DTLS and the socket; pending waiters get `TransportError`."""
        self.stop_sending()
        if self.rtcp_channel is not None:
            self.rtcp_channel.close()
        if self.dtls_router is not None:
            self.dtls_router.close()  # close_notify while the socket is still open
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._fail_waiters(TransportError("media leg closed"))

    async def __aenter__(self) -> MediaLeg:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"MediaLeg({self.local_addr} -> {self.remote}, sent={self.sent}, "
            f"received={self.received}, authenticated={self.authenticated})"
        )

    # -- configuration --------------------------------------------------------------------------

    def set_remote(self, addr: Addr) -> None:
        """Where the pacing job and `send_raw()` send to: the target's announced address, so
        from now on only what comes from the target is judged (`Reception.attribute`)."""
        self.remote = tuple(addr)
        self.attribute(self.remote, own_host=self.local_addr[0] if self.local_addr else None)

    def set_receiver(self, receiver: SrtpReceiver | None, *, keep_previous: bool = False) -> None:
        """The SRTP receiver that checks incoming packets; None accepts plain RTP.

        `keep_previous` (a rekey): packets that fail under the new receiver are tried under the
        one it replaces, since the peer switches keys when it gets our answer, a little later.
        Packets held by `expect_key()` are judged now, in the order they arrived.
        """
        self.receiver_set_at = self._loop.time()
        rtcp_socket = self.rtcp_channel.socket if self.rtcp_channel is not None else None
        if rtcp_socket is not None:  # SRTCP without rtcp-mux: judged under the same key
            rtcp_socket.set_receiver(receiver, keep_previous=keep_previous)
        if self._use_receiver(receiver, keep_previous, self._last) and self._waiters:
            self._wake()

    def attach_dtls(
        self, endpoint: DtlsSrtpEndpoint, on_event: EventHook | None = None
    ) -> DtlsDriver:
        """Run DTLS-SRTP on this socket (RFC 5764 section 5.1.2); `start()` the driver returned.

        DTLS goes to `remote`, read at each send, so it may be set later. Until then it goes
        back to the source of the last DTLS datagram: the offerer's DTLS server may hear the
        ClientHello before the SDP answer names the peer (RFC 5763 section 5). That source is
        unauthenticated, but so is the handshake until the fingerprint is checked.
        """
        from confsec.media import dtls_demux, dtls_leg  # pyOpenSSL only for legs that use it

        self.dtls = dtls_leg.DtlsDriver(endpoint, self._send_dtls, self._loop, on_event)
        self.dtls_router = dtls_demux.AssociationRouter.attach(self.dtls_router, self.dtls)
        return self.dtls

    def _send_dtls(self, data: bytes) -> None:
        target = self.remote if self.remote is not None else self._dtls_source
        if self._transport is not None and target is not None:
            self._transport.sendto(data, target)

    def replace_sender(self, sender: SrtpSender | None) -> None:
        """Switch the running pacing job (and `self.sender`) to a new SRTP sender (a rekey)."""
        self.sender = sender
        if self._job is not None:
            self._job.sender = sender

    # -- sending --------------------------------------------------------------------------------

    def start_sending(
        self,
        sender: Protector | None,
        ssrc: int,
        payload_type: int = PCMU_PT,
        frames: Iterator[bytes] | None = None,
        pps: float = 50.0,
        *,
        count: int | None = None,
        start_seq: int | None = None,
        start_ts: int | None = None,
        clock_rate: int = PCMU_RATE,
        marker_first: bool = True,
    ) -> None:
        """Send one RTP stream at `pps` packets per second until the frames or `count` run out.

        `sender` None sends plain RTP (for negative tests). Without `frames` the payload is
        20 ms of PCMU silence. Sequence number and timestamp start at random values (RFC 3550)
        unless given. Replaces any stream this leg was already sending.
        """
        if pps <= 0:
            raise LocalProtocolError(f"packet rate {pps} must be positive")
        self.stop_sending()
        job = SendJob()
        job.sender = sender
        job.ssrc = ssrc
        job.pt = payload_type
        job.frames = frames if frames is not None else silence(int(clock_rate / pps))
        job.pps = float(pps)
        job.count = count
        if start_seq is None:
            # A restarted stream continues its sequence numbers (RFC 3550 5.1): a sender that
            # is still the same SRTP session refuses an index that went back (libsrtp's
            # "replay check failed (index too old)").
            start_seq = random.getrandbits(16) if self._seq_next is None else self._seq_next
        job.seq0 = start_seq
        job.ts0 = random.getrandbits(32) if start_ts is None else start_ts
        job.ts_step = round(clock_rate / pps)
        job.marker_first = marker_first
        job.k = 0
        job.done = self._loop.create_future()
        job.t0 = self._loop.time()
        job.handle = self._loop.call_at(job.t0, self._tick, job)
        self._job = job

    def _tick(self, job: SendJob) -> None:
        if self._job is not job:
            return
        k = job.k
        frame = None if job.count is not None and k >= job.count else next(job.frames, None)
        if frame is None:
            self._finish(job)
            return
        packet = build_rtp(
            job.pt,
            job.seq0 + k,
            job.ts0 + k * job.ts_step,
            job.ssrc,
            frame,
            marker=job.marker_first and k == 0,
        )
        try:
            if job.sender is not None:
                packet = job.sender.protect(packet)
            if self._transport is not None and self.remote is not None:
                self._transport.sendto(packet, self.remote)
                self.sent += 1
        except Exception as exc:  # kept for the step to see; a callback has no caller
            self.send_error = exc
            self._finish(job, exc)
            return
        job.k = k + 1
        if job.count is not None and job.k >= job.count:
            self._finish(job)
            return
        job.handle = self._loop.call_at(job.t0 + job.k / job.pps, self._tick, job)

    def _finish(self, job: SendJob, exc: BaseException | None = None) -> None:
        job.handle.cancel()
        self._seq_next = (job.seq0 + job.k) & 0xFFFF
        if not job.done.done():
            if exc is None:
                job.done.set_result(None)
            else:
                job.done.set_exception(exc)
                job.done.exception()  # retrieved: no "never retrieved" warning if nobody waits
        if self._job is job:
            self._job = None

    def stop_sending(self) -> None:
        """Stop the pacing job, if any."""
        if self._job is not None:
            self._finish(self._job)

    @property
    def sending(self) -> bool:
        return self._job is not None

    @property
    def closed(self) -> bool:
        """The socket is gone: a leaver's or a vanished participant's leg (keys stay in the
        ledger for the judgements, but nothing is sent or received any more)."""
        return self._transport is None

    async def wait_sending_done(self, timeout: float) -> None:
        """Wait until the pacing job has run out of frames or count (or was stopped)."""
        job = self._job
        if job is None:
            if self.send_error is not None:
                raise self.send_error
            return
        try:
            await asyncio.wait_for(asyncio.shield(job.done), timeout)
        except TimeoutError:
            raise PeerTimeout(f"sending did not finish within {timeout} s") from None

    def send_raw(self, data: bytes, addr: Addr | None = None) -> None:
        """Send one crafted datagram (replays, plain RTP, garbage) outside the pacing job."""
        target = addr if addr is not None else self.remote
        if self._transport is None or target is None:
            raise LocalProtocolError("send_raw() on a closed leg or without a remote address")
        self._transport.sendto(data, target)

    # -- receiving ------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if self.dtls_router is not None and data and 19 < data[0] < 64:  # RFC 7983: DTLS
            self.dtls_datagrams += 1
            self._dtls_source = addr
            self.dtls_router.datagram(data)
            return
        if data and data[0] < 4 and data[4:8] == STUN_MAGIC_COOKIE:
            # RFC 7983: STUN (ICE checks, keepalives) shares the port; counted apart, never
            # judged as media.
            self.stun += 1
            return
        now = self._loop.time()
        if self.on_packet is not None:
            try:
                self.on_packet(data, addr, now)
            except Exception as exc:
                if self.hook_error is None:
                    self.hook_error = exc
        self._counting += 1
        try:
            # `Reception._attributed`, inlined: the hot path pays a set lookup and a call.
            if (
                self._attributing
                and addr not in self._sources
                and addr[0] != self._home
                and self._receiver is not None
            ):
                if self._stranger(data, now, addr):
                    return  # not the target's: set aside, in no count or history of its media
            else:
                self._classify(data, now, addr)
            self.received += 1
            if self._first is None:
                self._first = now
            self._last = now
            if len(self._raw) < self._raw_limit:
                self._raw.append((now, addr, data))
            if self.recent is not None:
                self.recent.append((now, addr, data))
            if addr not in self._peers and len(self._peers) < self._ssrc_limit:
                self._peers.add(addr)
        finally:
            self._counting += 1
        if self._waiters:
            self._wake()

    def _unrecord(self, data: bytes) -> None:
        """A datagram held for its key turned out a stray: out of the leg's history too."""
        self._raw = [r for r in self._raw if r[2] is not data]
        if self.recent is not None:
            kept = [r for r in self.recent if r[2] is not data]
            if len(kept) != len(self.recent):
                self.recent = deque(kept, maxlen=self.recent.maxlen)

    def _wake(self) -> None:
        keep = []
        for n, auth, fut in self._waiters:
            if fut.done():
                continue
            if (self.authenticated if auth else self.received) >= n:
                fut.set_result(None)
            else:
                keep.append((n, auth, fut))
        self._waiters = keep

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for _, _, fut in waiters:
            if not fut.done():
                fut.set_exception(exc)

    async def wait_for_packets(
        self, n: int, timeout: float, *, authenticated: bool = False
    ) -> None:
        """Wait until `n` datagrams (or `n` authenticated SRTP packets) have arrived in total.

        Raises `PeerTimeout` naming how many came, or `TransportError` if the leg closes.
        """

        def have() -> int:
            return self.authenticated if authenticated else self.received

        if have() >= n:
            return
        if self._transport is None:
            raise TransportError("media leg closed")
        fut: asyncio.Future[None] = self._loop.create_future()
        entry = (n, authenticated, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            what = "authenticated packets" if authenticated else "packets"
            raise PeerTimeout(
                f"{have()} of {n} {what} arrived on {self.local_addr} within {timeout} s"
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # -- results --------------------------------------------------------------------------------

    @property
    def stats(self) -> MediaStats:
        """A whole snapshot, from any thread (`Reception.whole`)."""
        return self.whole(self._snapshot)

    def _snapshot(self) -> MediaStats:
        return MediaStats(
            sent=self.sent,
            received=self.received,
            authenticated=self.authenticated,
            auth_failed=self.auth_failed,
            replayed=self.replayed,
            malformed=self.malformed,
            plain=self.plain,
            rtcp=self.rtcp,
            held=len(self._held) if self._held is not None else 0,
            ssrcs=frozenset(self._ssrcs),
            peers=frozenset(self._peers),
            first_arrival=self._first,
            last_arrival=self._last,
            stun=self.stun,
            rtcp_accepted=self.rtcp_stats().accepted,
            strays=self.strays,
        )

    @property
    def raw_packets(self) -> list[RawPacket]:
        """The first `raw_limit` datagrams with arrival time and source, for evidence."""
        return list(self._raw)
