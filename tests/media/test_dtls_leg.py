"""DTLS-SRTP on MediaLegs over real loopback UDP: handshake, paced SRTP, refusals, silence.

Each test waits on events (`wait_connected`, `wait_for_packets`, an `asyncio.Event` set by the
driver's `on_event`); the only fixed span is the half second of paced media.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from confsec.errors import PeerTimeout, RemoteProtocolError, TransportError
from confsec.media.dtls import (
    ConnectionClosed,
    DtlsError,
    DtlsEvent,
    DtlsSrtpEndpoint,
    HandshakeCompleted,
    self_signed_identity,
)
from confsec.media.dtls_leg import DtlsDriver
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.srtp import new_receiver, new_sender


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


class Side:
    """A leg with a DTLS endpoint attached, its identity and the events it saw."""

    def __init__(self, name: str, leg: MediaLeg, role: str, **options: Any) -> None:
        self.name = name
        self.leg = leg
        self.cert, self.key, self.fingerprint = self_signed_identity(name)
        self.role = role
        self.options = options
        self.events: list[DtlsEvent] = []
        self.closed = asyncio.Event()
        self.dtls: DtlsDriver | None = None

    def attach(self, expected: str | None) -> DtlsDriver:
        endpoint = DtlsSrtpEndpoint(
            self.role, self.cert, self.key, expected_fingerprint=expected, **self.options
        )
        self.dtls = self.leg.attach_dtls(endpoint, self._seen)
        return self.dtls

    def _seen(self, event: DtlsEvent) -> None:
        self.events.append(event)
        if isinstance(event, ConnectionClosed):
            self.closed.set()


async def pair(client: dict | None = None, server: dict | None = None) -> tuple[Side, Side]:
    """A DTLS client leg that knows where the server is, and a server leg that does not yet."""
    a = Side("client", await MediaLeg.open(), "client", **(client or {}))
    b = Side("server", await MediaLeg.open(), "server", **(server or {}))
    a.leg.set_remote(b.leg.local_addr)
    return a, b


@pytest.mark.parametrize("profile", ["SRTP_AES128_CM_SHA1_80", "SRTP_AEAD_AES_128_GCM"])
def test_handshake_then_paced_srtp_both_ways(profile: str) -> None:
    async def main() -> None:
        a, b = await pair({"srtp_profiles": (profile,)})
        client, server = a.attach(b.fingerprint), b.attach(a.fingerprint)
        client.start()
        server.start()
        kc, ks = await asyncio.gather(client.wait_connected(5), server.wait_connected(5))
        # The server's leg had no remote: it answered the ClientHello's source.
        assert b.leg.remote is None
        assert kc.profile == ks.profile == profile
        assert (kc.local_key, kc.remote_key) == (ks.remote_key, ks.local_key)
        assert a.events == [HandshakeCompleted(profile, b.fingerprint, a.events[0].at)]
        assert b.events == [HandshakeCompleted(profile, a.fingerprint, b.events[0].at)]
        b.leg.set_remote(a.leg.local_addr)  # what the SDP answer would have said

        ledger = KeyStreamLedger()
        for me, peer, keys, ssrc in ((a, b, kc, 0xC11E), (b, a, ks, 0x5E4E)):
            send = StreamId(me.name, peer.name, "audio", "send")
            recv = StreamId(me.name, peer.name, "audio", "recv")
            tx = new_sender(ledger, send, keys.suite, keys.local_key, keys.local_salt)
            me.leg.set_receiver(
                new_receiver(ledger, recv, keys.suite, keys.remote_key, keys.remote_salt)
            )
            me.leg.start_sending(tx, ssrc=ssrc, count=25)  # 0.5 s at 50 packets per second
        await asyncio.gather(
            a.leg.wait_for_packets(25, 3, authenticated=True),
            b.leg.wait_for_packets(25, 3, authenticated=True),
        )
        for side in (a, b):
            s = side.leg.stats
            assert (s.received, s.authenticated, s.auth_failed, s.malformed) == (25, 25, 0, 0)
            assert side.leg.dtls_datagrams == side.dtls.received >= 2
            assert side.dtls.endpoint.malformed == side.dtls.endpoint.dropped == 0
        assert ledger.findings() == []

        a.leg.close()  # close_notify before the socket goes
        await asyncio.wait_for(b.closed.wait(), 3)
        assert b.dtls.endpoint.close_reason == "peer sent close_notify"
        assert b.dtls.endpoint.srtp_keys() == ks  # keys stay as they were
        b.leg.close()

    run(main())


def test_a_fingerprint_mismatch_fails_with_the_reason_and_no_keys() -> None:
    async def main() -> None:
        a, b = await pair()
        impostor = self_signed_identity("impostor")[2]
        client, server = a.attach(impostor), b.attach(a.fingerprint)
        client.start()
        with pytest.raises(DtlsError) as info:
            await client.wait_connected(5)
        assert isinstance(info.value, RemoteProtocolError)
        assert info.value.reason == (
            f"peer certificate fingerprint {b.fingerprint} does not match the signalled "
            f"fingerprint {impostor}"
        )
        with pytest.raises(DtlsError, match="unknown_ca"):
            await server.wait_connected(5)  # our alert reached it
        for side in (a, b):
            with pytest.raises(DtlsError):
                side.dtls.endpoint.srtp_keys()
            assert side.leg.stats.malformed == side.leg.received == 0
        with pytest.raises(DtlsError):  # asking again gives the same answer
            await client.wait_connected(1)
        a.leg.close()
        b.leg.close()

    run(main())


def test_the_answer_after_the_client_hello_releases_the_keys() -> None:
    """RFC 5763 section 5: the offerer (DTLS server) learns the fingerprint last."""

    async def main() -> None:
        a, b = await pair()
        client, server = a.attach(b.fingerprint), b.attach(None)
        client.start()
        waiting = asyncio.ensure_future(server.wait_connected(5))
        await client.wait_connected(5)
        assert server.endpoint.state == "awaiting_fingerprint" and not waiting.done()
        assert b.events == []
        server.set_expected_fingerprint(a.fingerprint)
        keys = await waiting
        assert keys.remote_key == client.endpoint.srtp_keys().local_key
        assert [type(e) for e in b.events] == [HandshakeCompleted]
        a.leg.close()
        b.leg.close()

    run(main())


def test_a_wrong_late_answer_fails_the_waiting_side() -> None:
    async def main() -> None:
        a, b = await pair()
        client, server = a.attach(b.fingerprint), b.attach(None)
        client.start()
        waiting = asyncio.ensure_future(server.wait_connected(5))
        await client.wait_connected(5)
        server.set_expected_fingerprint(self_signed_identity("impostor")[2])
        with pytest.raises(DtlsError, match="does not match the signalled fingerprint"):
            await waiting
        await asyncio.wait_for(a.closed.wait(), 3)  # the client heard close_notify
        with pytest.raises(DtlsError):
            server.endpoint.srtp_keys()
        a.leg.close()
        b.leg.close()

    run(main())


def test_a_peer_that_never_answers_is_a_peer_timeout() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        silent = await MediaLeg.open()  # a socket with no DTLS: it swallows the ClientHello
        a = Side("client", await MediaLeg.open(), "client")
        a.leg.set_remote(silent.local_addr)
        client = a.attach(self_signed_identity("silent")[2])
        start = loop.time()
        with pytest.raises(PeerTimeout) as info:
            await client.wait_connected(0.3)
        assert 0.25 < loop.time() - start < 1.0
        assert str(info.value) == (
            "no DTLS-SRTP association within 0.3 s: client handshake under way; "
            "0 DTLS datagrams received, 1 sent, 0 retransmissions"
        )
        assert silent.received == 1 and silent.stats.malformed == 1  # no DTLS on that leg
        b = Side("server", await MediaLeg.open(), "server")
        server = b.attach(a.fingerprint)
        with pytest.raises(PeerTimeout, match="server handshake under way; 0 DTLS datagrams"):
            await server.wait_connected(0.2)
        for leg in (a.leg, b.leg, silent):
            leg.close()

    run(main())


def test_the_endpoint_deadline_ends_the_wait_as_a_peer_timeout() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        b = Side("server", await MediaLeg.open(), "server", handshake_timeout=0.3)
        server = b.attach(None)
        server.start()
        start = loop.time()
        with pytest.raises(PeerTimeout, match=r"^no DTLS handshake within 0.3 s") as info:
            await server.wait_connected(5)
        assert 0.25 < loop.time() - start < 1.0  # woken by call_at, not by the 5 s wait
        assert "0 DTLS datagrams received, 0 sent" in str(info.value)
        assert b.events[0].timed_out
        b.leg.close()

    run(main())


def test_a_lost_client_hello_is_resent_on_the_timer() -> None:
    async def main() -> None:
        a, b = await pair()
        remote, a.leg.remote = a.leg.remote, None  # the first ClientHello goes nowhere
        client, server = a.attach(b.fingerprint), b.attach(a.fingerprint)
        client.start()
        assert client.sent == 1 and b.leg.dtls_datagrams == 0
        a.leg.set_remote(remote)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(client.wait_connected(5), server.wait_connected(5))
        assert client.endpoint.retransmissions >= 1
        # OpenSSL's first retransmission is at 1 s. After it the cookie exchange costs one
        # more: OpenSSL 4 numbers the server's first record after DTLSv1_listen 1, at or below
        # the HelloVerifyRequest's (the lost ClientHello's number), the client drops it as a
        # replay, and the retransmissions 2 s in complete the handshake.
        assert 0.9 < loop.time() - start < 3.5
        a.leg.close()
        b.leg.close()

    run(main())


def test_closing_while_waiting_is_a_transport_error() -> None:
    async def main() -> None:
        b = Side("server", await MediaLeg.open(), "server")
        server = b.attach(None)
        waiting = asyncio.ensure_future(server.wait_connected(5))
        await asyncio.sleep(0)  # let it start the endpoint
        b.leg.close()
        with pytest.raises(TransportError, match="closed by this side"):
            await waiting
        assert server.endpoint.state == "failed" and server._timer is None

    run(main())
