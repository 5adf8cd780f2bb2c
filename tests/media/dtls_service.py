"""The service's side of a DTLS-SRTP leg, played by hand over loopback UDP (a test helper).

A UDP socket whose DTLS servers are sans-IO `DtlsSrtpEndpoint`s: the test feeds them what the
participant's `MediaLeg` sent and decides when (and whether) their flights go back, so that a
race a loaded service runs into (a superseded association's late flight) happens in exactly
the order a test wants. The endpoints are handed the loop's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from confsec.media.dtls import DtlsSrtpEndpoint
from confsec.media.endpoint import MediaLeg

Identity = tuple[x509.Certificate, ec.EllipticCurvePrivateKey, str]
"""What `self_signed_identity()` returns: certificate, key, fingerprint."""


class Service(asyncio.DatagramProtocol):
    """The service's media socket: what the participant's leg sends queues up here, and its
    DTLS servers are sans-IO endpoints whose flights the test sends when it chooses."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[Any, ...] = ()

    @classmethod
    async def open(cls, peer: MediaLeg) -> Service:
        loop = asyncio.get_running_loop()
        _, svc = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        svc.peer = peer.local_addr
        peer.set_remote(svc.transport.get_extra_info("sockname")[:2])
        return svc

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.inbox.put_nowait(data)

    async def take(self) -> bytes:
        return await asyncio.wait_for(self.inbox.get(), 5)

    def send(self, datagrams: list[bytes]) -> None:
        assert self.transport is not None
        for d in datagrams:
            self.transport.sendto(d, self.peer)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def server(identity: Identity, peer: str, **options: Any) -> DtlsSrtpEndpoint:
    """A sans-IO DTLS server of the service with `identity`, expecting `peer`'s fingerprint."""
    cert, key, _ = identity
    return DtlsSrtpEndpoint(
        "server", cert, key, expected_fingerprint=peer, cookies=False, **options
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    """Loopback delivers in a few microseconds: wait (briefly) for a datagram to be read."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def now() -> float:
    return asyncio.get_running_loop().time()


async def answer(svc: Service, srv: DtlsSrtpEndpoint) -> list[bytes]:
    """Feed the next datagram the service gets to `srv`; what `srv` answers (not sent yet)."""
    srv.receive_datagram(await svc.take(), now())
    return srv.datagrams_to_send()


async def handshake(svc: Service, srv: DtlsSrtpEndpoint, leg: MediaLeg) -> None:
    """Run `srv` (its retransmissions too) until the leg's current association is done."""
    while leg.dtls is not None and leg.dtls.endpoint.state == "handshaking":
        try:
            srv.receive_datagram(await asyncio.wait_for(svc.inbox.get(), 0.05), now())
        except TimeoutError:
            srv.handle_timer(now())
        svc.send(srv.datagrams_to_send())
