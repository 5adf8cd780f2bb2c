"""RtcpChannel on real loopback sockets (confsec/media/rtcp_channel.py): a participant's SRTCP
reports, with rtcp-mux and on a port of its own, BYE, and how the peer judges what arrives
(confsec/media/reception.py `_judge_rtcp`): plain RTCP, SRTCP under a stranger's key,
unencrypted SRTCP, and SRTCP across a rekey.

The R3 RTCP checks read these verdicts, so each is pinned here on what really crossed a socket.
The report interval is shortened to 50 ms so that a test sees several reports in a fraction of
a second; every wait is bounded and waits for a condition, not for a time.
"""

from __future__ import annotations

import asyncio
import hmac
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from hashlib import sha1
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confsec.media import reference_srtp, rtcp
from confsec.media.defect_srtp import SRTCP_LABELS, srtcp_opens_under
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtcp_channel import RtcpChannel
from confsec.media.srtp import (
    AUTH_FAILED,
    MALFORMED,
    OK,
    PROFILES,
    REPLAYED,
    new_master_key,
    new_receiver,
    new_sender,
)

SUITE = "AES_CM_128_HMAC_SHA1_80"
FAST = 0.05
"""The report interval in these tests (1 s in a run): reports every 25 to 75 ms."""
A_SSRC, B_SSRC = 0x0A11CE, 0x0B0B
A_SEND_FIELDS = ("alice", "bob", "audio", "send")
B_RECV_FIELDS = ("bob", "alice", "audio", "recv")
A_SEND = StreamId(*A_SEND_FIELDS)
B_RECV = StreamId(*B_RECV_FIELDS)
B_SEND = StreamId("bob", "alice", "audio", "send")
A_RECV = StreamId("alice", "bob", "audio", "recv")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


async def until(cond: Callable[[], bool], what: str, timeout: float = 2.0) -> None:
    """Wait, bounded, until `cond()` holds: the datagrams cross the loop's own sockets, so a
    short poll on the loop is all the waiting there is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.005)


@dataclass
class Pair:
    """Alice's and Bob's legs and channels, each keyed to receive what the other sends."""

    ledger: KeyStreamLedger
    a: MediaLeg
    b: MediaLeg
    ca: RtcpChannel
    cb: RtcpChannel

    def close(self) -> None:
        self.a.close()
        self.b.close()


async def pair(*, mux: bool, suite: str = SUITE) -> Pair:
    ledger = KeyStreamLedger()
    a = await MediaLeg.open()
    b = await MediaLeg.open()
    a.set_remote(b.local_addr)
    b.set_remote(a.local_addr)
    ca = await RtcpChannel.open(a, "alice@confsec")
    cb = await RtcpChannel.open(b, "bob@confsec")
    ca.interval = cb.interval = FAST
    if mux:
        ca.use_mux()
        cb.use_mux()
    else:
        assert ca.socket is not None and cb.socket is not None
        ca.use_port(cb.socket.local_addr)
        cb.use_port(ca.socket.local_addr)
    key_a, key_b = new_master_key(suite), new_master_key(suite)
    a.sender = new_sender(ledger, A_SEND, suite, *key_a)
    b.set_receiver(new_receiver(ledger, B_RECV, suite, *key_a))
    b.sender = new_sender(ledger, B_SEND, suite, *key_b)
    a.set_receiver(new_receiver(ledger, A_RECV, suite, *key_b))
    return Pair(ledger, a, b, ca, cb)


def opened_types(leg: MediaLeg) -> list[list[tuple[int, int]]]:
    """(packet type, SSRC) of each decrypted compound the leg accepted, in arrival order."""
    return [[(p.packet_type, p.ssrc) for p in rtcp.parse_compound(c)] for _, c in leg.rtcp_opened]


# -- sending reports ------------------------------------------------------------------------------


def test_the_report_is_an_sr_while_the_leg_sends_rtp_and_an_rr_otherwise() -> None:
    """RFC 3550 6.4: a participant that sends says so (SR, with its packet count); one that
    only listens sends an RR. Each comes with its SDES CNAME (6.1)."""

    async def main() -> None:
        p = await pair(mux=True)
        try:
            p.ca.ssrc = A_SSRC
            idle = p.ca.report()
            assert [(x.packet_type, x.ssrc) for x in rtcp.parse_compound(idle)] == [
                (rtcp.RR, A_SSRC),
                (rtcp.SDES, A_SSRC),
            ]
            assert b"alice@confsec" in idle
            p.a.start_sending(p.a.sender, ssrc=A_SSRC, pps=200)
            await p.b.wait_for_packets(3, 2, authenticated=True)
            talking = p.ca.report()
            packets = rtcp.parse_compound(talking)
            assert [(x.packet_type, x.ssrc) for x in packets] == [
                (rtcp.SR, A_SSRC),
                (rtcp.SDES, A_SSRC),
            ]
            # SR sender info: NTP (2 words), RTP timestamp, packet count, octet count.
            sent, octets = struct.unpack_from("!II", talking, 20)
            assert sent == p.a.sent >= 3 and octets == 160 * sent
            p.a.stop_sending()
            assert rtcp.parse_compound(p.ca.report())[0].packet_type == rtcp.RR
        finally:
            p.close()

    run(main())


def test_with_rtcp_mux_reports_arrive_on_the_rtp_socket_and_are_accepted() -> None:
    async def main() -> None:
        p = await pair(mux=True)
        try:
            assert p.ca.muxed and p.ca.socket is None and p.ca.port is None
            p.ca.start(A_SSRC)
            p.cb.start(B_SSRC)
            await until(
                lambda: p.cb.received.accepted >= 2 and p.ca.received.accepted >= 2,
                "two SRTCP reports each way",
            )
            for got in (p.ca.received, p.cb.received):
                assert got.refused == 0 and got.refusals() == "none"
                assert got.authenticated == got.received
            assert p.b.rtcp_stats() == p.cb.received  # all of it on the RTP socket
            assert p.b.stats.rtcp_accepted == p.cb.received.accepted
            # Bob decrypted Alice's reports: an RR (she sends no RTP) with her CNAME.
            assert opened_types(p.b)[0] == [(rtcp.RR, A_SSRC), (rtcp.SDES, A_SSRC)]
            assert b"alice@confsec" in p.b.rtcp_opened[0][1]
            assert p.ca.reports >= 2 and p.ca.send_error is None
            assert p.ledger.findings() == []  # each SRTCP stream seen by sender and receiver
        finally:
            p.close()

    run(main())


def test_a_sending_leg_reports_in_sr_and_the_peer_accepts_them_beside_its_rtp() -> None:
    async def main() -> None:
        p = await pair(mux=True)
        try:
            p.a.start_sending(p.a.sender, ssrc=A_SSRC, pps=100)
            p.ca.start(A_SSRC)
            await until(
                lambda: any(c[0] == (rtcp.SR, A_SSRC) for c in opened_types(p.b)),
                "an SRTCP sender report",
            )
            assert p.cb.received.refused == 0
            s = p.b.stats
            assert s.authenticated >= 1 and s.auth_failed == 0 and s.malformed == 0
            assert s.rtcp == p.cb.received.received  # RTP and RTCP told apart on one port
        finally:
            p.close()

    run(main())


def test_without_rtcp_mux_reports_arrive_on_the_peers_own_rtcp_socket() -> None:
    async def main() -> None:
        p = await pair(mux=False)
        try:
            assert p.ca.socket is not None and p.cb.socket is not None
            assert not p.ca.muxed
            assert p.ca.port == p.ca.socket.local_addr[1] != p.a.local_addr[1]
            p.ca.start(A_SSRC)
            await until(lambda: p.cb.socket.rtcp_stats().accepted >= 2, "two reports")
            own = p.cb.socket.rtcp_stats()
            assert own.refused == 0
            assert p.b.rtcp_stats().received == 0  # nothing on Bob's RTP socket
            assert p.cb.received == own
            # From Alice's own RTCP socket, not her RTP socket.
            assert {addr for _, addr, _ in p.cb.socket.raw_packets} == {p.ca.socket.local_addr}
            assert opened_types(p.cb.socket)[0] == [(rtcp.RR, A_SSRC), (rtcp.SDES, A_SSRC)]
        finally:
            p.close()

    run(main())


def test_the_own_socket_judges_under_a_key_set_before_the_channel_opened() -> None:
    """The dial-out answerer (behaviour/answering.py) sets the leg's receiver first and opens
    the RTCP channel after: SRTCP on the channel's own socket must still be judged under that
    key, not counted as 'neither RTCP nor SRTCP'."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        key = new_master_key(SUITE)
        a = await MediaLeg.open()
        b = await MediaLeg.open()
        try:
            b.set_receiver(new_receiver(ledger, B_RECV, SUITE, *key))
            ca = await RtcpChannel.open(a, "alice@confsec")
            cb = await RtcpChannel.open(b, "bob@confsec")
            assert cb.socket is not None
            ca.use_port(cb.socket.local_addr)
            a.sender = new_sender(ledger, A_SEND, SUITE, *key)
            ca.ssrc = A_SSRC
            assert ca.send_report()
            await until(lambda: cb.received.received >= 1, "the report")
            assert cb.received.accepted == 1, cb.received.refusals()
        finally:
            a.close()
            b.close()

    run(main())


def test_bye_is_srtcp_the_peer_opens_and_no_report_follows() -> None:
    async def main() -> None:
        p = await pair(mux=True)
        try:
            p.ca.start(A_SSRC)
            await until(lambda: p.cb.received.accepted >= 1, "a first report")
            assert p.ca.bye("leaving")
            assert p.ca.byes == 1
            reports = p.ca.reports

            def bye_seen() -> bool:
                return any((rtcp.BYE, A_SSRC) in c for c in opened_types(p.b))

            await until(bye_seen, "the BYE")
            (compound,) = [
                c for _, c in p.b.rtcp_opened if rtcp.parse_compound(c)[-1].packet_type == rtcp.BYE
            ]
            assert compound.endswith(b"\x07leaving" + bytes(-(1 + 7) % 4))  # reason, padded
            assert p.cb.received.refused == 0
            received = p.cb.received.received
            # Absence can only be shown over time: five intervals at their longest.
            await asyncio.sleep(5 * 1.5 * FAST)
            assert p.ca.reports == reports and p.cb.received.received == received
        finally:
            p.close()

    run(main())


# -- what the peer refuses -----------------------------------------------------------------------


@pytest.mark.parametrize("mux", [True, False], ids=["rtcp-mux", "own-port"])
def test_plain_rtcp_and_srtcp_under_a_strangers_key_are_refused_and_kept(mux: bool) -> None:
    async def main() -> None:
        p = await pair(mux=mux)
        try:
            plain = rtcp.compound(
                rtcp.receiver_report(A_SSRC), rtcp.sdes_cname(A_SSRC, "alice@confsec")
            )
            p.ca.send_plain(plain)
            await until(lambda: p.cb.received.received >= 1, "the plain RTCP")
            got = p.cb.received
            assert (got.plain, got.accepted, got.refused) == (1, 0, 1)
            assert got.refusals() == "1 plain RTCP"
            # A stranger's key: SRTCP in form, but it cannot authenticate under Alice's.
            stranger = StreamId("mallory", "bob", "audio", "send")
            p.a.sender = new_sender(p.ledger, stranger, SUITE, *new_master_key(SUITE))
            p.ca.ssrc = A_SSRC
            assert p.ca.send_report()
            await until(lambda: p.cb.received.received >= 2, "the stranger's SRTCP")
            got = p.cb.received
            assert (got.plain, got.auth_failed, got.accepted, got.refused) == (1, 1, 0, 2)
            assert got.refusals() == "1 plain RTCP, 1 failed SRTCP authentication"
            samples = p.cb.refused_samples()
            assert samples[0][1] == plain
            assert len(samples) == 2 and not rtcp.is_plain_rtcp(samples[1][1])
            assert all(t is not None for t, _ in samples)
            assert len(p.b.rtcp_opened) == 0 and (
                p.cb.socket is None or not p.cb.socket.rtcp_opened
            )
        finally:
            p.close()

    run(main())


def unencrypted_srtcp(suite: str, key: bytes, salt: bytes, compound: bytes, index: int) -> bytes:
    """SRTCP with the E flag clear (RFC 3711 3.4), written from the RFC with SRTCP's session
    keys (labels 3 to 5): the compound in clear, the tag over it and E||index (HMAC-SHA1,
    80 bits), or for AES-GCM an empty plaintext whose associated data is the whole compound
    and the word, the tag before the word (RFC 7714 9.2 and 17)."""
    params = reference_srtp.SUITES[suite]
    word = struct.pack("!I", index & 0x7FFFFFFF)
    if params.aead:
        enc = reference_srtp.derive_session_key(key, salt, 0x03, len(key))
        session_salt = reference_srtp.derive_session_key(key, salt, 0x05, params.session_salt_len)
        ssrc = struct.unpack_from("!I", compound, 4)[0]
        block = b"\0\0" + struct.pack("!IHI", ssrc, 0, index)
        iv = bytes(x ^ y for x, y in zip(session_salt, block, strict=True))
        return compound + AESGCM(enc).encrypt(iv, b"", compound + word) + word
    auth = reference_srtp.derive_session_key(key, salt, 0x04, params.auth_key_len)
    return compound + word + hmac.new(auth, compound + word, sha1).digest()[:10]


@pytest.mark.parametrize("suite", list(PROFILES))
@pytest.mark.parametrize("allowed", [False, True], ids=["not-negotiated", "UNENCRYPTED_SRTCP"])
def test_unencrypted_srtcp_is_refused_unless_negotiated(suite: str, allowed: bool) -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        key = new_master_key(suite)
        a = await MediaLeg.open()
        b = await MediaLeg.open()
        try:
            a.set_remote(b.local_addr)
            cb = await RtcpChannel.open(b, "bob@confsec", own_socket=False)
            cb.use_mux()
            b.set_receiver(new_receiver(ledger, B_RECV, suite, *key))
            cb.allow_unencrypted(allowed)
            compound = rtcp.compound(
                rtcp.receiver_report(A_SSRC), rtcp.sdes_cname(A_SSRC, "alice@confsec")
            )
            packet = unencrypted_srtcp(suite, *key, compound, 1)
            if not PROFILES[suite].aead:  # the tag is right: any refusal is for the E flag
                assert srtcp_opens_under(suite, *key, packet, SRTCP_LABELS)
            a.send_raw(packet)
            await until(lambda: cb.received.received >= 1, "the unencrypted SRTCP")
            got = cb.received
            assert got.unencrypted == 1 and got.authenticated == 0
            assert got.allowed_unencrypted is allowed
            if allowed:
                assert (got.accepted, got.refused, cb.refused_samples()) == (1, 0, [])
            else:
                assert (got.accepted, got.refused) == (0, 1)
                assert got.refusals() == "1 unencrypted SRTCP"
                assert len(cb.refused_samples()) == 1
        finally:
            a.close()
            b.close()

    run(main())


# -- rekey ----------------------------------------------------------------------------------------


def test_after_a_rekey_reports_move_to_the_new_key_and_late_ones_still_open() -> None:
    """A rekey replaces the leg's SRTP sender, and SRTCP moves with it (RFC 3711 4.3.2: its
    session keys come from the same master key). The receiver keeps the previous key for
    what was already on its way (`set_receiver(..., keep_previous=True)`)."""

    async def main() -> None:
        p = await pair(mux=True)
        try:
            old_rx = p.b._receiver
            assert old_rx is not None
            p.ca.start(A_SSRC)
            await until(lambda: old_rx.rtcp[OK] >= 1, "a report under the first key")
            late = p.a.sender.protect_rtcp(p.ca.report())  # protected now, delivered later
            # Let what is on its way arrive, so that the old key's count is final.
            p.ca.stop()
            await until(lambda: p.cb.received.received == p.ca.reports, "the reports sent")
            before_old = old_rx.rtcp[OK]
            key = new_master_key(SUITE)
            new_rx = new_receiver(p.ledger, StreamId(*B_RECV_FIELDS, "2"), SUITE, *key)
            p.b.set_receiver(new_rx, keep_previous=True)
            p.a.replace_sender(new_sender(p.ledger, StreamId(*A_SEND_FIELDS, "2"), SUITE, *key))
            p.ca.start(A_SSRC)
            await until(lambda: new_rx.rtcp[OK] >= 2, "two reports under the new key")
            assert old_rx.rtcp[OK] == before_old  # nothing new is sent under the old key
            p.ca.send_plain(late)
            await until(lambda: old_rx.rtcp[OK] == before_old + 1, "the late report")
            got = p.cb.received
            assert got.refused == 0 and got.accepted == got.received
            assert p.ledger.findings() == []
        finally:
            p.close()

    run(main())


def test_unencrypted_aes_cm_srtcp_is_authenticated_and_replay_checked_by_the_suite() -> None:
    """libsrtp will not open E=0 SRTCP under AES-CM (`confsec.media.srtcp_clear` does): a
    forged tag is an authentication failure and a repeated index a replay, as for SRTCP."""
    suite = "AES_CM_128_HMAC_SHA1_80"
    key = new_master_key(suite)
    rx = new_receiver(KeyStreamLedger(), B_RECV, suite, *key)
    compound = rtcp.compound(rtcp.receiver_report(A_SSRC), rtcp.sdes_cname(A_SSRC, "a@confsec"))
    packet = unencrypted_srtcp(suite, *key, compound, 7)
    assert rx.try_unprotect_rtcp(packet) == compound and rx.last_status == OK
    assert rx.try_unprotect_rtcp(packet) is None and rx.last_status == REPLAYED
    forged = unencrypted_srtcp(suite, *new_master_key(suite), compound, 8)
    assert rx.try_unprotect_rtcp(forged) is None and rx.last_status == AUTH_FAILED
    assert rx.rtcp == {OK: 1, AUTH_FAILED: 1, REPLAYED: 1, MALFORMED: 0}
