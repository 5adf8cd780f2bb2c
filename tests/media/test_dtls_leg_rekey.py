"""A rekey's new DTLS association on a leg where the old one's peer is still talking (R6).

The race the 50-participant DTLS-SRTP rekey scenario lost on a loaded machine: a join's rekey
starts a handshake (ClientHello 1), the leave's rekey supersedes it (ClientHello 2) before the
service has answered, and the service's answer to ClientHello 1 (its superseded association's
ServerHello and certificate) arrives after ClientHello 2 was sent. The leg must not hand that
flight to the new handshake, which would take it for its own and fail: "peer certificate
fingerprint ... does not match" (a new certificate per association, as the reference makes),
"bad signature" (one certificate for both: the ServerKeyExchange signs the other ClientHello's
random), "digest check failed" (a stale NewSessionTicket). The service is played here by a UDP
socket and sans-IO endpoints (tests/media/dtls_service.py), so that the late flight arrives in
exactly that order, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from confsec.media.dtls import DtlsError, DtlsSrtpEndpoint, self_signed_identity
from confsec.media.dtls_demux import peek_flight, signed_for
from confsec.media.dtls_records import frame_records
from confsec.media.endpoint import MediaLeg
from tests.media.dtls_service import Service, answer, handshake, until
from tests.media.dtls_service import server as service

PARTICIPANT = self_signed_identity("participant")
FIRST, SECOND, IMPOSTOR = (self_signed_identity(n) for n in ("mixer-1", "mixer-2", "impostor"))


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def server(identity, **options: Any) -> DtlsSrtpEndpoint:
    return service(identity, PARTICIPANT[2], **options)


def client(expected: str) -> DtlsSrtpEndpoint:
    cert, key, _ = PARTICIPANT
    return DtlsSrtpEndpoint("client", cert, key, expected_fingerprint=expected, cookies=False)


async def superseded_setup(mtu: int = 1200, second=SECOND):
    """A leg whose rekey association C1 (expecting FIRST) was superseded by C2 (expecting
    `second`) after the service's FIRST server got ClientHello 1 and before it answered."""
    leg = await MediaLeg.open()
    svc = await Service.open(leg)
    c1 = leg.attach_dtls(client(FIRST[2]))
    c1.start()
    s1 = server(FIRST, mtu=mtu)
    late = await answer(svc, s1)  # the answer to ClientHello 1, delayed by a loaded service
    c1.close()  # what dtls_media.answer_rekey does with a handshake a re-offer supersedes
    c2 = leg.attach_dtls(client(second[2]))
    c2.start()
    return leg, svc, s1, late, c2


@pytest.mark.parametrize("mtu", [1200, 300], ids=["one-datagram-flight", "flight-cut-in-three"])
def test_a_late_flight_of_the_superseded_association_does_not_reach_the_new_one(mtu: int) -> None:
    async def main() -> None:
        leg, svc, _s1, late, c2 = await superseded_setup(mtu)
        svc.send(late)
        await until(lambda: leg.dtls_datagrams == len(late), "the late flight")
        s2 = server(SECOND, mtu=mtu)
        await handshake(svc, s2, leg)
        keys = await c2.wait_connected(5)  # was: DtlsError, fingerprint of FIRST not SECOND
        assert keys.remote_key == s2.srtp_keys().local_key
        assert c2.endpoint.peer_fingerprint == SECOND[2]
        peeks = [peek_flight(d) for d in late]
        assert all(p is not None and p.first_flight for p in peeks)
        if mtu == 1200:
            assert len(late) == 1 and peeks[0].certificate == FIRST[0].public_bytes(Encoding.DER)
        else:  # ServerHello + a piece of the certificate, the rest + ServerKeyExchange, the rest
            assert len(late) == 3 and all(p.certificate is None for p in peeks)
            assert peeks[0].server_random is not None
            assert [bool(p.certificate_fragments) for p in peeks] == [True, True, False]
        router = leg.dtls_router
        assert router is not None
        assert (router.stale, router.unattributed) == (len(late), 0)
        assert leg.received == 0  # no DTLS datagram was taken for media either
        leg.close()
        svc.close()

    run(main())


@pytest.mark.parametrize("mtu", [1200, 300], ids=["one-datagram-flight", "flight-cut-in-three"])
def test_a_late_flight_under_the_same_certificate_is_told_by_its_signature(mtu: int) -> None:
    """A service may use one certificate for every association (RFC 8842 asks for a new
    association, not a new certificate): the fingerprint cannot tell the flights apart, the
    ServerKeyExchange can, signed over the random of the ClientHello it answers."""

    async def main() -> None:
        leg, svc, _s1, late, c2 = await superseded_setup(mtu, second=FIRST)
        svc.send(late)
        await until(lambda: leg.dtls_datagrams == len(late), "the late flight")
        s2 = server(FIRST, mtu=mtu)  # the same identity, a new association
        await handshake(svc, s2, leg)
        keys = await c2.wait_connected(5)  # was: DtlsError, a bad ServerKeyExchange signature
        assert keys.remote_key == s2.srtp_keys().local_key
        assert (leg.dtls_router.stale, leg.dtls_router.unattributed) == (len(late), 0)
        leg.close()
        svc.close()

    run(main())


def test_a_late_last_flight_of_the_superseded_association_is_dropped() -> None:
    """ClientHello 1 was answered in time and C1 sent its Finished; the service's last flight
    (NewSessionTicket, ChangeCipherSpec, Finished) comes after C2's ClientHello."""

    async def main() -> None:
        leg = await MediaLeg.open()
        svc = await Service.open(leg)
        c1 = leg.attach_dtls(client(FIRST[2]))
        c1.start()
        s1 = server(FIRST)
        svc.send(await answer(svc, s1))
        last = await answer(svc, s1)  # C1's Finished in; the answer delayed
        assert c1.endpoint.finished_sent and len(last) == 1
        assert peek_flight(last[0]).final_flight
        c1.close()
        c2 = leg.attach_dtls(client(SECOND[2]))
        c2.start()
        svc.send(last)
        await until(lambda: leg.dtls_datagrams == 2, "the late last flight")
        s2 = server(SECOND)
        await handshake(svc, s2, leg)
        keys = await c2.wait_connected(5)
        assert keys.remote_key == s2.srtp_keys().local_key
        assert leg.dtls_router.stale == 1
        leg.close()
        svc.close()

    run(main())


def test_a_certificate_no_association_signalled_still_fails_the_new_handshake() -> None:
    """Attributing flights is not trusting them: a certificate that matches neither the new
    association's fingerprint nor an old one's goes to the new handshake, which refuses it."""

    async def main() -> None:
        leg, svc, _s1, _late, c2 = await superseded_setup()
        impostor = server(IMPOSTOR)
        svc.send(await answer(svc, impostor))  # answers ClientHello 2
        with pytest.raises(DtlsError, match="does not match the signalled fingerprint"):
            await c2.wait_connected(5)
        assert c2.endpoint.peer_fingerprint == IMPOSTOR[2]
        assert leg.dtls_router.stale == 0
        leg.close()
        svc.close()

    run(main())


def test_two_unfinished_flights_that_cannot_be_told_apart_are_dropped_not_guessed() -> None:
    """Two flights cut into datagrams and interleaved: the ServerHello of each, with the first
    piece of its certificate (both pieces the same length), then the rest of each. Put
    together, the pieces would make a certificate of neither, which would go to the new
    handshake: nothing of either flight is given to it; the new server's retransmission
    completes it."""

    async def main() -> None:
        leg, svc, _s1, late, c2 = await superseded_setup(mtu=300)
        s2 = server(SECOND, mtu=300)
        fresh = await answer(svc, s2)  # the answer to ClientHello 2, also in three datagrams
        svc.send([late[0], fresh[0]])
        await until(lambda: leg.dtls_datagrams == 2, "two ServerHellos")
        router = leg.dtls_router
        assert router.unattributed == 2  # the first held, both dropped when the second came
        svc.send(late[1:] + fresh[1:])  # pieces and later messages whose ServerHello is gone
        await until(lambda: leg.dtls_datagrams == 6, "the rest of both flights")
        assert (router.unattributed, router.stale) == (6, 0)
        assert c2.endpoint.state == "handshaking" and c2.received == 0
        # The client resends its ClientHello 1 s on; the server answers it with its flight.
        await handshake(svc, s2, leg)
        assert c2.endpoint.retransmissions >= 1
        keys = await c2.wait_connected(5)
        assert keys.remote_key == s2.srtp_keys().local_key
        leg.close()
        svc.close()

    run(main())


def test_the_router_reads_nothing_until_a_second_association_comes() -> None:
    async def main() -> None:
        leg = await MediaLeg.open()
        first = leg.attach_dtls(client(FIRST[2]))
        router = leg.dtls_router
        assert router is not None and router.current is first and not router.superseded
        first.start()
        await asyncio.sleep(0)
        leg.datagram_received(b"\x16\xfe\xfd" + bytes(10), ("127.0.0.1", 9))
        assert first.received == 1 and router.stale == router.unattributed == 0  # straight on
        second = leg.attach_dtls(client(SECOND[2]))
        assert leg.dtls_router is router and router.current is second
        assert list(router.superseded) == [first]
        leg.close()
        assert first.endpoint.state == second.endpoint.state == "failed"  # both closed

    run(main())


def test_peek_flight_reads_only_plaintext_flights() -> None:
    c, s = client(FIRST[2]), server(FIRST)
    c.start(0.0)
    (hello,) = c.datagrams_to_send()
    assert peek_flight(hello) is None  # a ClientHello tells nothing about a server's flight
    s.receive_datagram(hello, 0.0)
    (flight,) = s.datagrams_to_send()
    peek = peek_flight(flight)
    assert peek is not None and peek.first_flight and not peek.final_flight
    assert peek.certificate == FIRST[0].public_bytes(Encoding.DER)
    c.receive_datagram(flight, 0.0)
    s.receive_datagram(c.datagrams_to_send()[0], 0.0)
    (last,) = s.datagrams_to_send()
    records = [rec for rec, _ in frame_records(last)[0]]
    assert [r.epoch for r in records] == [0, 0, 1]  # NewSessionTicket, ChangeCipherSpec, Finished
    assert peek_flight(last).final_flight
    assert peek_flight(b"\x17\xfe\xfd\x00\x01" + bytes(8)) is None  # epoch 1, nothing to read


def test_signed_for_binds_a_key_exchange_to_one_client_hello() -> None:
    c, s = client(FIRST[2]), server(FIRST)
    c.start(0.0)
    s.receive_datagram(c.datagrams_to_send()[0], 0.0)
    peek = peek_flight(s.datagrams_to_send()[0])
    ske, rnd, cert = peek.server_key_exchange, peek.server_random, peek.certificate
    assert signed_for(ske, c.client_random, rnd, cert) is True
    assert signed_for(ske, bytes(32), rnd, cert) is False  # another ClientHello's answer
    assert signed_for(ske, c.client_random, rnd, SECOND[0].public_bytes(Encoding.DER)) is False
    assert signed_for(b"\x01" + ske[1:], c.client_random, rnd, cert) is None  # not named_curve
    assert signed_for(ske[:10], c.client_random, rnd, cert) is None  # cut short
