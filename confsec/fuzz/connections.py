"""The fuzzer's own sockets: a bare TLS connection to the focus, and a media sink.

A user agent would refuse to send most mutated requests, and would retransmit, time out and
match responses to transactions; the fuzzer wants none of that, so SIP goes over a connection
that writes any bytes and frames whatever comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from confsec.codec.sip import Response, SipStream
from confsec.errors import RemoteProtocolError
from confsec.net.flow import Flow
from confsec.target.model import Target


class RawSip:
    """A bare TLS connection to the focus: writes any bytes, frames whatever comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.responses: list[Response] = []
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()
        sock = writer.get_extra_info("sockname")
        peer = writer.get_extra_info("peername")
        self.flow = Flow("tls", (sock[0], sock[1]), (peer[0], peer[1]))
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, target: Target, ctx: ssl.SSLContext, timeout: float) -> RawSip | None:
        """Connect to the focus; None when it refuses or does not finish the handshake."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    target.host, target.port, ssl=ctx, server_hostname=target.domain
                ),
                timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            return None
        return cls(reader, writer)

    async def _read(self) -> None:
        stream = SipStream()
        try:
            while data := await self.reader.read(65536):
                stream.feed(data)
                while (msg := stream.next_message()) is not None:
                    if isinstance(msg, Response):
                        self.responses.append(msg)
                    self.changed.set()
        except (ConnectionError, ssl.SSLError, OSError, RemoteProtocolError):
            pass
        finally:
            self.closed.set()
            self.changed.set()

    def send(self, data: bytes) -> bool:
        if self.closed.is_set() or self.writer.is_closing():
            return False
        self.writer.write(data)
        return True

    async def wait(self, since: int, timeout: float) -> bool:
        """Until a response beyond the first `since` arrived or the connection closed; False
        on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.responses) <= since and not self.closed.is_set():
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


class Sink(asyncio.DatagramProtocol):
    """Where admitted fuzzed offers point their media, so the mixer never sends into a real leg;
    also the socket fuzzed datagrams leave from (nothing sent back to it is read)."""
