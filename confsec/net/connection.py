"""One socket each: the asyncio protocols that turn bytes into SIP messages.

A `UdpEndpoint` parses each datagram on its own; a `StreamConnection` frames a TCP or TLS byte
stream with `SipStream`. Both hand what they read to their owner (the `TransportLayer`, through
the narrow `ConnectionOwner` interface) together with the `Flow` it came in on; the owner keeps
the tables of sockets and decides what to connect, reuse and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Protocol

from confsec.codec.sip import Request, Response, SipStream, parse_message
from confsec.errors import RemoteProtocolError, TransportError
from confsec.net.flow import Address, Flow

log = logging.getLogger(__name__)


class ConnectionOwner(Protocol):
    """What a connection tells the layer that owns it."""

    def deliver(self, message: Request | Response, flow: Flow) -> None:
        """A parsed message arrived on `flow`."""

    def deliver_error(self, exc: RemoteProtocolError, flow: Flow, raw: bytes) -> None:
        """Bytes on `flow` could not be framed or parsed."""

    def deliver_closed(self, flow: Flow, exc: Exception | None) -> None:
        """The stream connection of `flow` went away."""

    def register(self, conn: StreamConnection) -> None:
        """`conn` is ready for SIP (handshake done): requests towards its peer may reuse it."""

    def unregister(self, conn: StreamConnection) -> None:
        """`conn` is gone."""

    def udp_closed(self, local: Address) -> None:
        """The UDP socket bound to `local` closed."""

    def start_server_tls(self, conn: StreamConnection, raw: asyncio.Transport) -> None:
        """Run the server side of a TLS handshake on `raw`, then `conn.attach()` the result."""


def sock_address(sockaddr: tuple) -> Address:  # type: ignore[type-arg]
    """(host, port) from a socket address (IPv6 addresses have four fields)."""
    return (str(sockaddr[0]), int(sockaddr[1]))


def _is_keepalive(data: bytes) -> bool:
    """CRLF keep-alives (RFC 5626 §4.4.1) and empty datagrams are not messages."""
    return not data.strip(b"\r\n")


class UdpEndpoint(asyncio.DatagramProtocol):
    """One bound UDP socket: parses each datagram on its own."""

    def __init__(self, owner: ConnectionOwner) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("0.0.0.0", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.local = sock_address(transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if _is_keepalive(data):
            return
        flow = Flow("udp", self.local, sock_address(addr))
        try:
            message = parse_message(data)
        except RemoteProtocolError as exc:
            self.owner.deliver_error(exc, flow, data)
            return
        self.owner.deliver(message, flow)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable shows up here on Linux; retransmission timers cope with it.
        log.debug("UDP %s: %s", self.local, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.udp_closed(self.local)


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection, in either direction, framed with `SipStream`."""

    def __init__(
        self,
        owner: ConnectionOwner,
        transport_name: str,
        server_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.owner = owner
        self.name = transport_name
        self.server_ssl = server_ssl
        self.transport: asyncio.Transport | None = None
        self.stream = SipStream()
        self.flow: Flow | None = None
        self.closed = False
        # Bytes that arrive between the end of a server-side TLS handshake and `attach()`: in
        # TLS 1.3 the client's first request follows its Finished at once, and the SSL protocol
        # may deliver it before `start_tls()` has returned to us.
        self._early: list[bytes] = []

    # Called for plain TCP (both sides) and for client-side TLS after the handshake; the server
    # side of TLS is wired by the owner's `start_server_tls` instead.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.server_ssl is not None and transport.get_extra_info("ssl_object") is None:
            # Raw TCP half of a server TLS connection: hold the ClientHello in the kernel until
            # start_tls() takes over, or it would land in data_received as plaintext.
            transport.pause_reading()
            self.owner.start_server_tls(self, transport)  # type: ignore[arg-type]
            return
        self.attach(transport)  # type: ignore[arg-type]

    def attach(self, transport: asyncio.Transport) -> None:
        """Bind to a transport that is ready for SIP and register in the connection table."""
        self.transport = transport
        local = sock_address(transport.get_extra_info("sockname"))
        remote = sock_address(transport.get_extra_info("peername"))
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            self.flow = Flow(
                "tls",
                local,
                remote,
                peer_cert_der=ssl_object.getpeercert(binary_form=True),
                tls_version=ssl_object.version(),
                cipher=cipher[0] if cipher else None,
            )
        else:
            self.flow = Flow(self.name, local, remote)
        with contextlib.suppress(OSError, AttributeError):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner.register(self)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.flow is None:
            self._early.append(data)
            return
        stream = self.stream
        pings = stream.keepalives
        try:
            stream.feed(data)
            while True:
                message = stream.next_message()
                if message is None:
                    break
                self.owner.deliver(message, self.flow)
                if self.closed:
                    return
            if stream.keepalives != pings and self.transport is not None:
                self.transport.write(b"\r\n")  # RFC 5626 §4.4.1 pong
        except RemoteProtocolError as exc:
            # Framing is lost: nothing after this point can be trusted to start a message. What
            # waits on this connection fails now, with the framing error as the reason: after
            # our close, a peer still sending (a 10 MB body) would only add a TLS error
            # (application data after close_notify) to `connection_lost`.
            self.owner.deliver_error(exc, self.flow, data)
            self.closed = True
            self.owner.deliver_closed(self.flow, exc)
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        self.owner.unregister(self)
        if self.flow is not None and not was_closed:
            partial = self.stream.unfinished()
            if partial:
                # The peer closed inside a message (a Content-Length larger than the body it
                # sent): a message that cannot be read, reported like any other.
                why = f"the connection closed inside a message ({len(partial)} octets of it)"
                self.owner.deliver_error(RemoteProtocolError(why), self.flow, partial)
            self.owner.deliver_closed(self.flow, exc)

    def send(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise TransportError(f"connection {self.flow} is closed")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
