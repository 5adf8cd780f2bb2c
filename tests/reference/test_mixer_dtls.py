"""The mixer's DTLS-SRTP associations on a leg stream, over loopback UDP (mixer_leg, mixer_dtls).

Rekeys that come faster than handshakes: the participant answered a join's re-offer (its
ClientHello reached the mixer's new association, which answered), then the leave's re-offer,
and began that handshake before the focus installed the leave's association in the mixer. Its
ClientHello must wait for that association, not go to the join's, which drops a second
ClientHello (or, failed, any): the participant would then resend it only a second later, a
second of rekey latency on every such leg.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization

from confsec.codec.sdp import new_tls_id
from confsec.media.dtls import DtlsSrtpEndpoint, self_signed_identity
from confsec.media.dtls_records import alert_record
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger
from confsec.reference.mixer_control import DtlsSetup, StreamSetup
from confsec.reference.mixer_leg import LegStream, MixerStats
from confsec.reference.mixer_rtcp import RtcpRecord

PARTICIPANT = self_signed_identity("alice.confsec")


@dataclass
class Engine:
    """The mixing engine as a leg stream sees it (`MixingEngine`)."""

    defects: frozenset[str] = frozenset()
    stats: MixerStats = field(default_factory=MixerStats)
    rtcp_record: RtcpRecord = field(default_factory=RtcpRecord)

    def halt(self, conference_id: str, why: str) -> None:
        raise AssertionError(why)

    def switch(self, source: LegStream, payload: bytes) -> None:
        pass

    def relay_rtcp(self, source: LegStream, data: bytes) -> None:
        pass


def association() -> tuple[DtlsSetup, str]:
    """A new association the focus hands the mixer (the participant answered `active`)."""
    cert, key, fingerprint = self_signed_identity("confsec-mixer")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    setup = DtlsSetup(
        role="server",
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        private_key_pem=pem,
        peer_fingerprints=(PARTICIPANT[2],),
        tls_id=new_tls_id(),
    )
    return setup, fingerprint


def client(expected: str) -> DtlsSrtpEndpoint:
    cert, key, _ = PARTICIPANT
    return DtlsSrtpEndpoint("client", cert, key, expected_fingerprint=expected, cookies=False)


async def until(condition, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("join", ["answering-another-client", "failed"])
def test_a_client_hello_of_a_later_rekey_waits_for_its_own_association(join: str) -> None:
    """The join's association took ClientHello 1 (and waits for that client's next flight), or
    it failed (the participant refused its certificate): either way it cannot answer
    ClientHello 2, which waits for the leave's association."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_datagram_endpoint(
            lambda: LegStream(Engine(), "conf-1", "leg-1", "audio"),
            local_addr=("127.0.0.1", 0),
        )
        leg = await MediaLeg.open()
        leg.set_remote(stream.transport.get_extra_info("sockname")[:2])
        ledger = KeyStreamLedger()

        def install(setup: DtlsSetup, label: str) -> None:
            s = StreamSetup("audio", 0, leg.local_addr, None, None, 0x1234, dtls=setup)
            stream.install(s, ledger, label)

        joined, joined_fp = association()
        install(joined, "epoch-2")
        if join == "failed":  # a fatal alert before any ClientHello
            leg.send_raw(alert_record(0xFEFD, 0, 0, 2, 42))
            await until(lambda: stream.pending.endpoint.state == "failed", "the join failed")
        else:  # the join's handshake: ClientHello 1, then superseded
            join_hello = client(joined_fp)
            join_hello.start(loop.time())
            leg.send_raw(join_hello.datagrams_to_send()[0])
            await until(lambda: stream.pending.hello_random is not None, "ClientHello 1")

        left, left_fp = association()
        leave = leg.attach_dtls(client(left_fp))
        leave.start()  # ClientHello 2, before the focus installs the leave's association
        await until(lambda: len(stream._early) == 1, "ClientHello 2 kept for its association")
        assert stream.pending.setup is joined
        install(left, "epoch-3")
        keys = await leave.wait_connected(5)
        assert leave.endpoint.retransmissions == 0  # was: 1, a second later
        assert stream.association is not None and stream.association.setup is left
        assert stream.tx is not None
        assert keys.remote_key == stream.association.endpoint.srtp_keys().local_key
        stream.close()
        leg.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_client_hellos_of_two_rekeys_that_both_came_early_go_one_to_each() -> None:
    """Both ClientHellos came before the focus installed either association (the established
    one keeps them): the join's association takes the first, the second waits for the leave's."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_datagram_endpoint(
            lambda: LegStream(Engine(), "conf-1", "leg-1", "audio"),
            local_addr=("127.0.0.1", 0),
        )
        leg = await MediaLeg.open()
        leg.set_remote(stream.transport.get_extra_info("sockname")[:2])
        ledger = KeyStreamLedger()

        def install(setup: DtlsSetup, label: str) -> None:
            s = StreamSetup("audio", 0, leg.local_addr, None, None, 0x1234, dtls=setup)
            stream.install(s, ledger, label)

        first, first_fp = association()
        install(first, "epoch-1")
        c0 = leg.attach_dtls(client(first_fp))
        c0.start()
        await c0.wait_connected(5)  # the association in use
        await until(lambda: stream.association is not None, "the mixer's side of it")
        (joined, joined_fp), (left, left_fp) = association(), association()
        join = leg.attach_dtls(client(joined_fp))
        join.start()
        join.close()  # superseded by the leave's re-offer before anything came back
        leave = leg.attach_dtls(client(left_fp))
        leave.start()
        await until(lambda: len(stream._early) == 2, "both ClientHellos kept")
        install(joined, "epoch-2")
        assert stream.pending.setup is joined and len(stream._early) == 1
        install(left, "epoch-3")
        await leave.wait_connected(5)
        assert leave.endpoint.retransmissions == 0  # was: 1, a second later
        assert leg.dtls_router.stale == 1  # the join's answer, kept from the leave's handshake
        stream.close()
        leg.close()

    asyncio.run(asyncio.wait_for(main(), 20))
