"""The asyncio half of DTLS-SRTP: one `DtlsSrtpEndpoint` driven on a socket it shares with SRTP.

aioquic's adapter shape over the sans-IO core in `confsec.media.dtls`: feed a datagram, send
what the endpoint has to send, hand out its events, and re-arm one `loop.call_at()` timer from
`next_timer()`. There is no sleep loop and no polling: between datagrams the loop runs this
code only when the endpoint's retransmission timer or handshake deadline is due. The endpoint is
handed `loop.time()` as its clock.

`MediaLeg.attach_dtls()` builds a driver on a leg's socket, where RFC 7983 demultiplexing sends
it the datagrams whose first byte is 20..63 (RFC 5764 section 5.1.2: DTLS and SRTP share the
5-tuple). Nothing here reads the socket or knows an address: `send` decides where a datagram
goes.

Errors follow `confsec.errors`: a handshake the peer failed, refused or broke is a
`DtlsError` (a `RemoteProtocolError`) carrying the endpoint's reason; a peer that never
finished, by `wait_connected()`'s timeout or the endpoint's own deadline, is a `PeerTimeout`
naming what was seen; waiting on an association this side closed is a `TransportError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from confsec.errors import ConfsecError, PeerTimeout, TransportError
from confsec.media.dtls import (
    DtlsError,
    DtlsEvent,
    DtlsSrtpEndpoint,
    Fingerprints,
    HandshakeCompleted,
    HandshakeFailed,
    SrtpKeys,
)

__all__ = ["DtlsDriver"]

EventHook = Callable[[DtlsEvent], None]


class DtlsDriver:
    """Runs one `DtlsSrtpEndpoint` on the loop; `send(datagram)` puts a datagram on the wire.

    Counters: `received` (DTLS datagrams fed), `sent` (datagrams handed to `send`),
    `send_errors`. `events` keeps every event in order (an endpoint makes at most two: the end
    of its handshake, then the end of its association). An exception from `send` or `on_event`
    is kept in `send_error` / `hook_error` (they run in a callback that has no caller).
    """

    def __init__(
        self,
        endpoint: DtlsSrtpEndpoint,
        send: Callable[[bytes], None],
        loop: asyncio.AbstractEventLoop,
        on_event: EventHook | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.on_event = on_event
        self._send = send
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._connected: asyncio.Future[None] = loop.create_future()
        self._closing = False
        self.events: list[DtlsEvent] = []
        self.received = self.sent = self.send_errors = 0
        self.send_error: BaseException | None = None
        self.hook_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"DtlsDriver({self.endpoint!r}, received={self.received}, sent={self.sent})"

    # -- feeding the endpoint ----------------------------------------------------------------

    def start(self) -> None:
        """Start the endpoint: the client sends its ClientHello, the server's deadline begins."""
        self.endpoint.start(self._loop.time())
        self._flush()

    def datagram(self, data: bytes) -> None:
        """Feed one DTLS datagram from the peer, send the answer, re-arm the timer."""
        self.received += 1
        self.endpoint.receive_datagram(data, self._loop.time())
        self._flush()

    def set_expected_fingerprint(self, fingerprints: Fingerprints) -> None:
        """The peer's `a=fingerprint`(s) from an SDP answer that came after the ClientHello
        (RFC 5763 section 5); see `DtlsSrtpEndpoint.set_expected_fingerprint`."""
        self.endpoint.set_expected_fingerprint(fingerprints, self._loop.time())
        self._flush()

    def close(self) -> None:
        """Send close_notify (or abandon the handshake) and cancel the timer. Idempotent."""
        self._closing = True
        self.endpoint.close(self._loop.time())
        self._flush()
        self._arm(None)

    # -- waiting -----------------------------------------------------------------------------

    async def wait_connected(self, timeout: float) -> SrtpKeys:
        """The SRTP keys once the handshake has completed and the peer's fingerprint matched.

        Starts the endpoint if nobody did. Raises `DtlsError` with the endpoint's reason when
        the handshake fails, `PeerTimeout` naming what was seen when it does not end within
        `timeout` seconds (the handshake goes on: a later call may still succeed), and
        `TransportError` when this side closed it first.
        """
        if self.endpoint.state == "new":
            self.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except TimeoutError:
            raise PeerTimeout(
                f"no DTLS-SRTP association within {timeout:g} s: {self.progress()}"
            ) from None
        return self.endpoint.srtp_keys()

    def progress(self) -> str:
        """What has happened so far, for a timeout's message."""
        ep = self.endpoint
        state = {
            "new": "not started",
            "handshaking": "handshake under way",
            "awaiting_fingerprint": "handshake done, no peer fingerprint signalled yet",
        }.get(ep.state, ep.state)
        return f"{ep.role} {state}; {self._seen()}, {ep.retransmissions} retransmissions"

    def _seen(self) -> str:
        return f"{self.received} DTLS datagrams received, {self.sent} sent"

    # -- the adapter ---------------------------------------------------------------------------

    def _flush(self) -> None:
        ep = self.endpoint
        for data in ep.datagrams_to_send():
            try:
                self._send(data)
                self.sent += 1
            except Exception as exc:  # a callback has no caller: keep it for the step
                self.send_errors += 1
                self.send_error = exc
        while (event := ep.next_event()) is not None:
            self._deliver(event)
        self._arm(None if self._closing else ep.next_timer())

    def _deliver(self, event: DtlsEvent) -> None:
        self.events.append(event)
        fut = self._connected
        if not fut.done():
            if isinstance(event, HandshakeCompleted):
                fut.set_result(None)
            elif isinstance(event, HandshakeFailed):
                fut.set_exception(self._error(event))
                fut.exception()  # retrieved: no "never retrieved" warning if nobody waits
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:
                if self.hook_error is None:
                    self.hook_error = exc

    def _error(self, event: HandshakeFailed) -> ConfsecError:
        if self._closing:
            return TransportError(f"DTLS association closed by this side: {event.reason}")
        if event.timed_out:
            return PeerTimeout(f"{event.reason}; {self._seen()}")
        return DtlsError(event.reason)

    def _arm(self, when: float | None) -> None:
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, when
        if when is not None:
            self._timer = self._loop.call_at(when, self._fire, when)

    def _fire(self, due: float) -> None:
        self._timer = self._timer_at = None
        # call_at may run a hair early (the loop's clock resolution): never hand the endpoint a
        # time before the one it asked for, or it would ask for the same time again.
        self.endpoint.handle_timer(max(self._loop.time(), due))
        self._flush()
