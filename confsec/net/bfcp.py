"""The suite's BFCP client: one TLS (or, for negative probes, plain TCP) connection, asyncio.

A reader task frames incoming bytes with `BfcpStream` and keeps every message (leniently
decoded: a malformed answer is still an observation). `transact` sends a request and waits, with
a deadline, for the message that answers it (same transaction id, or an Error); the end of the
connection is an answer too (`closed`), so a server that hangs or crashes ends a step with an
observation, never a hung suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from confsec.codec.bfcp import Bfcp, BfcpParseError, BfcpStream, Primitive
from confsec.errors import PeerTimeout, TransportError
from confsec.net.tls import PeerCert, peer_identity

__all__ = ["BfcpClient", "Received"]


@dataclass(frozen=True)
class Received:
    """One message from the server, decoded leniently; `raw` is what came off the wire."""

    raw: bytes
    message: Bfcp


class BfcpClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: PeerCert | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        """The certificate the server presented (None over plain TCP)."""
        self.received: list[Received] = []
        self.closed = asyncio.Event()
        """Set when the server closed the connection (or it broke)."""
        self.close_reason: str | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        timeout: float,
    ) -> BfcpClient:
        """Open the connection (TLS when `ssl_context` is given). `TransportError` on failure."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    ssl=ssl_context,
                    server_hostname=server_hostname if ssl_context else None,
                ),
                timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise TransportError(
                f"cannot open BFCP connection to {host}:{port}: {exc or type(exc).__name__}"
            ) from None
        sslobj = writer.get_extra_info("ssl_object")
        return cls(reader, writer, peer_identity(sslobj) if sslobj is not None else None)

    async def _read(self) -> None:
        stream = BfcpStream(max_message=1 << 20)
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self.close_reason = "closed by the server"
                    break
                stream.feed(data)
                while (raw := stream.next_message()) is not None:
                    try:
                        msg = Bfcp(raw)
                    except Exception:  # scapy on hostile bytes
                        msg = Bfcp()
                    self.received.append(Received(raw, msg))
                    self._changed.set()
        except (ConnectionError, ssl.SSLError, OSError, BfcpParseError) as exc:
            self.close_reason = f"connection broke: {exc}"
        finally:
            self.closed.set()
            self._changed.set()

    def send(self, data: bytes | Bfcp) -> None:
        if self.writer.is_closing():
            raise TransportError("BFCP connection is closed")
        self.writer.write(bytes(data))

    async def wait_for(self, predicate, timeout: float, since: int = 0) -> Received | None:  # type: ignore[no-untyped-def]
        """The first message from `since` on that matches, or None once the connection closed.

        Raises `PeerTimeout` when neither happens before the deadline.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for r in self.received[since:]:
                if predicate(r.message):
                    return r
            if self.closed.is_set():
                return None
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PeerTimeout(f"no BFCP answer within {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def transact(self, msg: Bfcp | bytes, timeout: float) -> Received | None:
        """Send and wait for the answer: same transaction id, or an Error; None = closed."""
        since = len(self.received)
        txn = msg.transaction_id if isinstance(msg, Bfcp) else int.from_bytes(msg[8:10], "big")
        try:
            self.send(msg)
        except (TransportError, OSError):
            return None
        return await self.wait_for(
            lambda m: m.transaction_id == txn or m.primitive == Primitive.ERROR, timeout, since
        )

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
