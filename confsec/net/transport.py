"""SIP transports over asyncio: UDP, TCP and TLS listeners and connections.

One `TransportLayer` owns every socket of a user agent. Its sockets (net/connection.py) frame
incoming bytes (one datagram is one message; streams go through `SipStream`), and the layer
hands each message up with the `Flow` it came in on (net/flow.py).

Connections are kept in a table keyed by (transport, remote address) so that responses and new
requests towards the same peer reuse them, in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from confsec.codec.sip import Request, Response
from confsec.errors import (
    ConfigError,
    PeerTimeout,
    RemoteProtocolError,
    TlsVerificationError,
    TransportError,
)
from confsec.net.connection import StreamConnection, UdpEndpoint, sock_address
from confsec.net.flow import Address, Flow, NextHop

log = logging.getLogger(__name__)

MessageHandler = Callable[["Request | Response", Flow], None]
ErrorHandler = Callable[[RemoteProtocolError, Flow, bytes], None]
ClosedHandler = Callable[[Flow, "Exception | None"], None]

ListenSpec = tuple[str, str, int]
"""(transport, host, port) to listen on; port 0 lets the OS choose."""

_TRANSPORTS = ("udp", "tcp", "tls")


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host == "::1"


def tls_reason(exc: BaseException) -> str:
    """The most useful text of an ssl error: the verify message if there is one."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or exc)
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return str(exc) or type(exc).__name__


# ------------------------------------------------------------------------------------ the layer


class TransportLayer:
    """Listeners and connections of one user agent.

    `on_message(message, flow)` receives every parsed message; `on_error(error, flow, raw)`
    every framing or parse error (a stream is closed after it, since framing is lost);
    `on_closed(flow, exc)` every stream connection that went away. Handlers may be set after
    construction with `set_handlers` (the user agent does so when given a ready layer).

    `client_ssl` and `server_hostname` are the defaults for outgoing TLS connections.
    """

    def __init__(
        self,
        on_message: MessageHandler | None = None,
        on_error: ErrorHandler | None = None,
        on_closed: ClosedHandler | None = None,
        *,
        client_ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 5.0,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.on_message = on_message
        self.on_error = on_error
        self.on_closed = on_closed
        self.client_ssl = client_ssl
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self._udp: dict[Address, UdpEndpoint] = {}
        self._servers: list[tuple[str, Address, asyncio.Server]] = []
        self._conns: dict[tuple[str, Address], StreamConnection] = {}
        self._connecting: dict[tuple[str, Address], asyncio.Future[StreamConnection]] = {}
        self._all_conns: set[StreamConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.tls_handshake_failures = 0
        """Server-side TLS handshakes that failed (bad clients); never fatal to the server."""
        self.tls_handshake_errors: list[str] = []
        """The reasons of those failures, oldest first (capped at 100)."""
        self.parse_errors = 0
        """Messages that could not be framed or parsed."""

    def set_handlers(
        self,
        on_message: MessageHandler | None = None,
        on_error: ErrorHandler | None = None,
        on_closed: ClosedHandler | None = None,
    ) -> None:
        """Install the upper layer's callbacks."""
        self.on_message = on_message
        self.on_error = on_error
        self.on_closed = on_closed

    # -- listeners ------------------------------------------------------------------------------
    async def listen(self, spec: ListenSpec, server_ssl: ssl.SSLContext | None = None) -> Address:
        """Listen as `spec` says (a TLS spec needs `server_ssl`); returns the bound address."""
        name, host, port = spec
        if name == "udp":
            return await self.listen_udp(host, port)
        if name == "tcp":
            return await self.listen_tcp(host, port)
        if name == "tls":
            if server_ssl is None:
                raise ConfigError("listening on TLS needs server_ssl")
            return await self.listen_tls(host, port, server_ssl)
        raise ConfigError(f"unknown transport {name!r} in listen spec")

    async def listen_udp(self, host: str, port: int = 0) -> Address:
        """Bind a UDP socket; returns the bound (host, port)."""
        loop = asyncio.get_running_loop()
        try:
            _, endpoint = await loop.create_datagram_endpoint(
                lambda: UdpEndpoint(self), local_addr=(host, port)
            )
        except OSError as exc:
            raise TransportError(f"cannot bind UDP {host}:{port}: {exc}") from exc
        self._udp[endpoint.local] = endpoint
        return endpoint.local

    async def listen_tcp(self, host: str, port: int = 0) -> Address:
        """Listen for TCP connections; returns the bound (host, port)."""
        return await self._listen_stream("tcp", host, port)

    async def listen_tls(
        self, host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> Address:
        """Listen for TLS connections with a server context; returns the bound (host, port).

        The handshake is run by us (`start_tls`) rather than by `create_server(ssl=...)` so that a
        client failing it is logged and counted here instead of vanishing into asyncio's logger.
        """
        if ssl_context is None:
            raise ConfigError("listen_tls needs a server ssl_context")
        return await self._listen_stream("tls", host, port, ssl_context)

    async def _listen_stream(
        self, name: str, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> Address:
        loop = asyncio.get_running_loop()

        def factory() -> StreamConnection:
            conn = StreamConnection(self, name, ssl_context)
            self._all_conns.add(conn)
            return conn

        try:
            server = await loop.create_server(factory, host, port, reuse_address=True)
        except OSError as exc:
            raise TransportError(f"cannot listen on {name} {host}:{port}: {exc}") from exc
        local = sock_address(server.sockets[0].getsockname())
        self._servers.append((name, local, server))
        return local

    async def _server_tls_handshake(self, conn: StreamConnection, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        context = conn.server_ssl
        assert context is not None
        peer = raw.get_extra_info("peername")
        try:
            tls = await loop.start_tls(
                raw,
                conn,
                context,
                server_side=True,
                ssl_handshake_timeout=self.handshake_timeout,
            )
        except (TimeoutError, OSError, EOFError, ConnectionError) as exc:
            self.tls_handshake_failures += 1
            if len(self.tls_handshake_errors) < 100:
                self.tls_handshake_errors.append(tls_reason(exc))
            log.info("TLS handshake from %s failed: %s", peer, tls_reason(exc))
            raw.close()
            self._all_conns.discard(conn)
            return
        if tls is None:  # the transport closed during the handshake
            self._all_conns.discard(conn)
            return
        conn.attach(tls)

    def listeners(self, transport: str | None = None) -> list[tuple[str, Address]]:
        """Every (transport, local address) we listen on, optionally of one transport."""
        found = [("udp", addr) for addr in self._udp]
        found += [(name, addr) for name, addr, _ in self._servers]
        return [item for item in found if transport is None or item[0] == transport]

    def listen_address(self, transport: str) -> Address | None:
        """The first listening address of `transport`, if any (used for Contact and Via)."""
        found = self.listeners(transport)
        return found[0][1] if found else None

    # -- outgoing -------------------------------------------------------------------------------
    async def connect(
        self,
        transport: str,
        remote: Address,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> Flow:
        """A flow to `remote`: an open connection is reused, otherwise one is made.

        For UDP this picks (or binds) a local socket; nothing is sent. TLS certificate failures
        raise `TlsVerificationError` with the ssl reason, refused/reset connections
        `TransportError`, a connection that does not complete in `timeout` `PeerTimeout`.
        """
        if transport not in _TRANSPORTS:
            raise ConfigError(f"unknown SIP transport {transport!r}")
        if self._closed:
            raise TransportError("transport layer is closed")
        remote = (str(remote[0]), int(remote[1]))
        if transport == "udp":
            endpoint = await self._udp_for(remote)
            return Flow("udp", endpoint.local, remote)
        key = (transport, remote)
        conn = self._conns.get(key)
        if conn is not None and not conn.closed:
            assert conn.flow is not None
            return conn.flow
        pending = self._connecting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                self._open(transport, remote, ssl_context, server_hostname, timeout)
            )
            self._connecting[key] = pending
            pending.add_done_callback(lambda _f: self._connecting.pop(key, None))
        conn = await asyncio.shield(pending)
        assert conn.flow is not None
        return conn.flow

    async def _open(
        self,
        transport: str,
        remote: Address,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        timeout: float | None,
    ) -> StreamConnection:
        loop = asyncio.get_running_loop()
        timeout = self.connect_timeout if timeout is None else timeout
        conn = StreamConnection(self, transport)
        kwargs: dict[str, object] = {}
        if transport == "tls":
            context = ssl_context or self.client_ssl
            if context is None:
                raise ConfigError("a TLS connection needs a client ssl_context")
            kwargs["ssl"] = context
            kwargs["server_hostname"] = server_hostname or self.server_hostname or remote[0]
            kwargs["ssl_handshake_timeout"] = timeout
        where = f"{transport}:{remote[0]}:{remote[1]}"
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: conn, remote[0], remote[1], **kwargs)
        except ssl.SSLCertVerificationError as exc:
            raise TlsVerificationError(
                f"TLS certificate of {where} rejected: {tls_reason(exc)}"
            ) from exc
        except ssl.SSLError as exc:
            raise TransportError(f"TLS handshake with {where} failed: {tls_reason(exc)}") from exc
        except TimeoutError as exc:
            raise PeerTimeout(f"connecting to {where} timed out after {timeout} s") from exc
        except OSError as exc:
            raise TransportError(f"cannot connect to {where}: {exc}") from exc
        self._all_conns.add(conn)
        if conn.closed:
            raise TransportError(f"connection to {where} closed during set-up")
        return conn

    async def _udp_for(self, remote: Address) -> UdpEndpoint:
        """A UDP socket to send from: a listener of the same family, or a fresh ephemeral one."""
        family_v6 = ":" in remote[0]
        to_loopback = _is_loopback(remote[0])
        for local, endpoint in self._udp.items():
            if (":" in local[0]) != family_v6:
                continue
            if local[0] in ("0.0.0.0", "::") or _is_loopback(local[0]) == to_loopback:
                return endpoint
        # Loopback peers get a loopback socket so that Via and Contact carry a usable address.
        if to_loopback:
            host = remote[0] if family_v6 else "127.0.0.1"
        else:
            host = "::" if family_v6 else "0.0.0.0"
        local = await self.listen_udp(host, 0)
        return self._udp[local]

    async def send(
        self,
        message: bytes | Request | Response,
        target: NextHop,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Flow:
        """Send bytes or a message on a flow, or towards a (transport, host, port) destination
        (connecting if needed). Returns the flow used."""
        if isinstance(target, Flow):
            flow = target
        else:
            name, host, port = target
            flow = await self.connect(
                name, (host, port), ssl_context=ssl_context, server_hostname=server_hostname
            )
        self.send_on_flow(message, flow)
        return flow

    def send_on_flow(self, message: bytes | Request | Response, flow: Flow) -> None:
        """Send now on an existing flow (no connecting): what transactions use.

        Raises `TransportError` if a stream flow's connection is gone.
        """
        data = message if isinstance(message, bytes | bytearray) else message.to_bytes()
        if flow.transport == "udp":
            endpoint = self._udp.get(flow.local) or self._udp_any(flow)
            if endpoint is None or endpoint.transport is None:
                raise TransportError(f"no UDP socket for {flow}")
            endpoint.transport.sendto(data, flow.remote)
            return
        conn = self._conns.get((flow.transport, flow.remote))
        if conn is None or conn.closed:
            raise TransportError(f"connection {flow} is closed")
        conn.send(bytes(data))

    def _udp_any(self, flow: Flow) -> UdpEndpoint | None:
        # A flow bound to a wildcard address reports e.g. 0.0.0.0; any socket of the family does.
        family_v6 = ":" in flow.remote[0]
        for local, endpoint in self._udp.items():
            if (":" in local[0]) == family_v6:
                return endpoint
        return None

    def is_open(self, flow: Flow) -> bool:
        """True if a message can still be sent on `flow` without connecting."""
        if flow.transport == "udp":
            return bool(self._udp)
        conn = self._conns.get((flow.transport, flow.remote))
        return conn is not None and not conn.closed

    def connections(self) -> list[Flow]:
        """Flows of the open stream connections."""
        return [c.flow for c in self._conns.values() if c.flow is not None and not c.closed]

    def close_flow(self, flow: Flow) -> None:
        """Close the stream connection of `flow` (no-op for UDP)."""
        conn = self._conns.get((flow.transport, flow.remote))
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        """Close every listener and connection."""
        self._closed = True
        for _, _, server in self._servers:
            server.close()
        for conn in list(self._all_conns):
            conn.close()
        for endpoint in list(self._udp.values()):
            if endpoint.transport is not None:
                endpoint.transport.close()
        for task in list(self._tasks):
            task.cancel()
        for _, _, server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
        self._udp.clear()
        # Let connection_lost callbacks run.
        await asyncio.sleep(0)

    # -- from the connections (`ConnectionOwner`) ------------------------------------------------
    def start_server_tls(self, conn: StreamConnection, raw: asyncio.Transport) -> None:
        """Run the server side of the TLS handshake of an accepted connection in the background."""
        self._spawn(self._server_tls_handshake(conn, raw))

    def register(self, conn: StreamConnection) -> None:
        """A connection is ready: later messages towards its peer reuse it."""
        assert conn.flow is not None
        self._all_conns.add(conn)
        key = (conn.flow.transport, conn.flow.remote)
        old = self._conns.get(key)
        if old is not None and old is not conn and not old.closed:
            log.debug("replacing connection %s", conn.flow)
        self._conns[key] = conn

    def unregister(self, conn: StreamConnection) -> None:
        """A connection is gone."""
        self._all_conns.discard(conn)
        if conn.flow is None:
            return
        key = (conn.flow.transport, conn.flow.remote)
        if self._conns.get(key) is conn:
            del self._conns[key]

    def udp_closed(self, local: Address) -> None:
        """A UDP socket closed: stop sending from it."""
        self._udp.pop(local, None)

    def deliver(self, message: Request | Response, flow: Flow) -> None:
        """Hand a message to `on_message`."""
        if self.on_message is None:
            return
        try:
            self.on_message(message, flow)
        except Exception:
            # A bug above us must not take the socket down with it.
            log.exception("on_message handler failed for a message from %s", flow)

    def deliver_error(self, exc: RemoteProtocolError, flow: Flow, raw: bytes) -> None:
        """Count, log and hand unparseable bytes to `on_error`."""
        self.parse_errors += 1
        log.info("unparseable message from %s: %s", flow, exc)
        if self.on_error is None:
            return
        try:
            self.on_error(exc, flow, raw)
        except Exception:
            log.exception("on_error handler failed for %s", flow)

    def deliver_closed(self, flow: Flow, exc: Exception | None) -> None:
        """Hand a closed stream connection to `on_closed`."""
        if self.on_closed is None:
            return
        try:
            self.on_closed(flow, exc)
        except Exception:
            log.exception("on_closed handler failed for %s", flow)

    # -- internal -------------------------------------------------------------------------------
    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
