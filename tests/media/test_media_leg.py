"""MediaLeg on real loopback sockets: SRTP tones, plain RTP, wrong keys, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from confsec.errors import PeerTimeout, TransportError
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import RtpPacket, build_rtp
from confsec.media.srtp import new_master_key, new_receiver, new_sender
from confsec.media.tone import ToneGenerator, tone_for

SUITE = "AES_CM_128_HMAC_SHA1_80"
A_SEND = StreamId("alice", "bob", "audio", "send")
B_RECV = StreamId("bob", "alice", "audio", "recv")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def legs() -> tuple[MediaLeg, MediaLeg]:
    a = await MediaLeg.open()
    b = await MediaLeg.open()
    a.set_remote(b.local_addr)
    b.set_remote(a.local_addr)
    return a, b


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"])
def test_srtp_tones_flow_and_are_heard(suite: str) -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(suite)
        a, b = await legs()
        b.set_receiver(new_receiver(ledger, B_RECV, suite, key, salt))
        seen: list[int] = []
        b.on_packet = lambda data, addr, t: seen.append(len(data))
        loop = asyncio.get_running_loop()
        start = loop.time()
        a.start_sending(
            new_sender(ledger, A_SEND, suite, key, salt),
            ssrc=0x0A11CE,
            frames=ToneGenerator([440, 660]),
            count=25,
        )
        await b.wait_for_packets(25, timeout=5, authenticated=True)
        await a.wait_sending_done(timeout=5)
        elapsed = loop.time() - start
        s = b.stats
        assert (s.received, s.authenticated, s.auth_failed, s.replayed, s.malformed) == (
            25,
            25,
            0,
            0,
            0,
        )
        assert a.stats.sent == 25 and s.ssrcs == {0x0A11CE} and s.peers == {a.local_addr}
        # 25 packets at 50/s: the last leaves 0.48 s after the first (no drift, no burst).
        assert 0.45 <= elapsed < 1.5
        assert s.first_arrival is not None and s.last_arrival is not None
        assert 0.4 <= s.last_arrival - s.first_arrival < 1.5
        assert b.heard_tones([440, 660, 880], seconds=0.5) == {440.0, 660.0}
        ratios = b.tone_ratios([440, 660, 880], seconds=0.5)
        assert ratios[880.0] < 0.001
        raw = b.raw_packets
        assert len(raw) == 25 and seen == [len(p) for _, _, p in raw]
        first = RtpPacket.parse(raw[0][2][: -b._receiver.profile.auth_tag_len])
        assert first.marker and first.ssrc == 0x0A11CE
        assert ledger.findings() == []
        rows = {r.stream: r for r in ledger.entries()}
        assert rows[A_SEND].packets_seen == 25 and rows[B_RECV].packets_seen == 25
        a.close()
        b.close()

    run(main())


def test_plain_rtp_against_srtp_receiver_counts_auth_failures() -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(SUITE)
        a, b = await legs()
        b.set_receiver(new_receiver(ledger, B_RECV, SUITE, key, salt))
        a.start_sending(None, ssrc=7, frames=ToneGenerator(440), count=10, pps=200)
        await b.wait_for_packets(10, timeout=5)
        s = b.stats
        assert s.received == 10 and s.authenticated == 0 and s.auth_failed == 10
        assert b.heard_tones([440]) == set()  # nothing decoded from unauthenticated packets
        a.close()
        b.close()

    run(main())


def test_wrong_key_counts_auth_failures() -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(SUITE)
        other, _ = new_master_key(SUITE)
        a, b = await legs()
        b.set_receiver(new_receiver(ledger, B_RECV, SUITE, other, salt))
        a.start_sending(new_sender(ledger, A_SEND, SUITE, key, salt), ssrc=8, count=10, pps=200)
        await b.wait_for_packets(10, timeout=5)
        assert (b.stats.authenticated, b.stats.auth_failed) == (0, 10)
        a.close()
        b.close()

    run(main())


def test_replay_garbage_and_rtcp_are_classified() -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(SUITE)
        a, b = await legs()
        b.set_receiver(new_receiver(ledger, B_RECV, SUITE, key, salt))
        tx = new_sender(ledger, A_SEND, SUITE, key, salt)
        packet = tx.protect(build_rtp(0, 1, 0, 9, b"\xff" * 160))
        a.send_raw(packet)
        a.send_raw(packet)  # replay
        a.send_raw(b"hello, not RTP")  # garbage
        a.send_raw(bytes([0x80, 200, 0, 6]) + bytes(24))  # an RTCP SR on the muxed port
        await b.wait_for_packets(4, timeout=5)
        s = b.stats
        assert (s.authenticated, s.replayed, s.malformed, s.rtcp) == (1, 1, 1, 1)
        a.close()
        b.close()

    run(main())


def test_stun_on_a_media_port_is_not_media() -> None:
    """ICE connectivity checks and keepalives (linphone sends them) are counted apart: never
    'not SRTP', which would fail R3 for packets that carry no media. Garbage whose first byte
    looks like STUN but has no magic cookie is still garbage."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(SUITE)
        a, b = await legs()
        b.set_receiver(new_receiver(ledger, B_RECV, SUITE, key, salt))
        binding = bytes.fromhex("0001 0000 2112a442") + bytes(12)  # a Binding Request
        a.send_raw(binding)
        a.send_raw(bytes.fromhex("0001 0000 deadbeef") + bytes(12))
        a.send_raw(
            new_sender(ledger, A_SEND, SUITE, key, salt).protect(build_rtp(0, 1, 0, 9, b"x"))
        )
        await b.wait_for_packets(2, timeout=5)
        s = b.stats
        assert (s.received, s.authenticated, s.malformed, s.stun) == (2, 1, 1, 1)
        a.close()
        b.close()

    run(main())


def test_plain_receiver_accepts_rtp_for_negative_tests() -> None:
    async def main() -> None:
        a, b = await legs()
        a.start_sending(None, ssrc=5, frames=ToneGenerator(tone_for(3)), count=30, pps=500)
        await b.wait_for_packets(30, timeout=5)
        assert b.stats.plain == 30
        assert b.heard_tones([tone_for(k) for k in range(6)], seconds=0.5) == {tone_for(3)}
        a.close()
        b.close()

    run(main())


def test_wait_for_packets_times_out_cleanly() -> None:
    async def main() -> None:
        a, b = await legs()
        loop = asyncio.get_running_loop()
        t = loop.time()
        with pytest.raises(PeerTimeout, match="0 of 3 packets"):
            await b.wait_for_packets(3, timeout=0.2)
        assert 0.15 <= loop.time() - t < 1.0
        assert b._waiters == []
        # Already satisfied: returns at once.
        await b.wait_for_packets(0, timeout=0.01)
        a.close()
        b.close()
        with pytest.raises(TransportError):
            await b.wait_for_packets(1, timeout=0.1)

    run(main())


def test_close_wakes_waiters() -> None:
    async def main() -> None:
        _, b = await legs()
        waiter = asyncio.ensure_future(b.wait_for_packets(1, timeout=5))
        await asyncio.sleep(0)
        b.close()
        with pytest.raises(TransportError):
            await waiter

    run(main())


def test_stop_sending_and_restart() -> None:
    async def main() -> None:
        a, b = await legs()
        a.start_sending(None, ssrc=1, pps=100)
        await b.wait_for_packets(3, timeout=5)
        a.stop_sending()
        assert not a.sending
        sent = a.stats.sent
        await asyncio.sleep(0.1)
        assert a.stats.sent == sent
        a.start_sending(None, ssrc=2, count=2, pps=100)
        await a.wait_sending_done(timeout=5)
        await b.wait_for_packets(sent + 2, timeout=5)
        assert b.stats.ssrcs == {1, 2}
        a.close()
        b.close()

    run(main())


def test_send_error_is_kept() -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(SUITE)
        a, b = await legs()
        tx = new_sender(ledger, A_SEND, SUITE, key, salt)
        a.start_sending(tx, ssrc=1, frames=iter([b"x" * 1500]), count=1)
        with pytest.raises(Exception, match="too long"):
            await a.wait_sending_done(timeout=5)
        assert a.send_error is not None and not a.sending
        a.close()
        b.close()

    run(main())


def test_bounded_records() -> None:
    async def main() -> None:
        a = await MediaLeg.open()
        b = await MediaLeg.open(raw_limit=5, audio_seconds=0.1)
        a.set_remote(b.local_addr)
        a.start_sending(None, ssrc=3, count=40, pps=1000)
        await b.wait_for_packets(40, timeout=5)
        assert len(b.raw_packets) == 5
        assert b.audio(3, seconds=10).size <= 800 + 160
        a.close()
        b.close()

    run(main())


def test_open_refuses_a_taken_port() -> None:
    async def main() -> None:
        a = await MediaLeg.open()
        with pytest.raises(TransportError):
            await MediaLeg.open(port=a.local_addr[1])
        a.close()

    run(main())


def test_media_before_the_key_is_held_and_judged_under_it() -> None:
    """SRTP that arrives before the answer brings its key (early media, a busy machine) is
    judged under that key once it is known: it counts as authenticated, not as refused."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(SUITE)
        a, b = await legs()
        b.expect_key()
        a.start_sending(new_sender(ledger, A_SEND, SUITE, key, salt), ssrc=7, count=20, pps=200)
        await b.wait_for_packets(20, timeout=5)
        s = b.stats
        assert (s.received, s.held, s.authenticated, s.plain) == (20, 20, 0, 0)
        b.set_receiver(new_receiver(ledger, B_RECV, SUITE, key, salt))
        s = b.stats
        assert (s.received, s.held, s.authenticated, s.auth_failed, s.plain) == (20, 0, 20, 0, 0)
        a.close()
        b.close()

    run(main())


def test_held_media_that_does_not_authenticate_is_still_refused() -> None:
    """Holding is no amnesty: plain RTP sent before the key fails authentication under it."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        key, salt = new_master_key(SUITE)
        a, b = await legs()
        b.expect_key()
        a.start_sending(None, ssrc=7, count=10, pps=200)
        await b.wait_for_packets(10, timeout=5)
        b.set_receiver(new_receiver(ledger, B_RECV, SUITE, key, salt))
        s = b.stats
        assert (s.received, s.held, s.authenticated, s.auth_failed) == (10, 0, 0, 10)
        # An answer without a key (RTP/AVP): what was held is plain RTP, counted as such.
        c, d = await legs()
        d.expect_key()
        c.start_sending(None, ssrc=8, count=5, pps=200)
        await d.wait_for_packets(5, timeout=5)
        d.set_receiver(None)
        assert (d.stats.held, d.stats.plain) == (0, 5)
        for leg in (a, b, c, d):
            leg.close()

    run(main())


def test_a_key_that_never_comes_stops_the_holding() -> None:
    async def main() -> None:
        a, b = await legs()
        b._held_limit = 5
        b.expect_key()
        a.start_sending(None, ssrc=9, count=8, pps=400)
        await b.wait_for_packets(8, timeout=5)
        s = b.stats
        assert (s.received, s.held, s.plain) == (8, 0, 8)  # every datagram accounted for
        a.close()
        b.close()

    run(main())


def test_stats_read_from_another_thread_are_whole_snapshots() -> None:
    """The steps read `stats` on their thread while the loop's thread receives (the suite's
    `LoopThread`). Every snapshot must add up: each judged packet authenticated or was refused
    for a named reason. A snapshot taken half-way through a datagram once counted one received
    and judged nowhere, a false "did not authenticate" against a compliant mixer. Thread
    switches are forced far more often than CPython's default 5 ms so the race shows at once."""
    import sys
    import threading

    from confsec.runtime.loop import LoopThread

    lt = LoopThread("test-media")
    interval = sys.getswitchinterval()
    try:

        async def setup() -> tuple[MediaLeg, MediaLeg]:
            ledger = KeyStreamLedger()
            key, salt = new_master_key(SUITE)
            a, b = await legs()
            b.set_receiver(new_receiver(ledger, B_RECV, SUITE, key, salt))
            a.start_sending(new_sender(ledger, A_SEND, SUITE, key, salt), ssrc=1, pps=2000)
            return a, b

        a, b = lt.run(setup())
        sys.setswitchinterval(1e-6)
        torn, reads = [], 0
        deadline = threading.Event()
        threading.Timer(1.5, deadline.set).start()
        while not deadline.is_set():
            s = b.stats
            reads += 1
            parts = s.authenticated + s.auth_failed + s.replayed + s.malformed + s.plain + s.rtcp
            if s.received - s.held != parts:
                torn.append(s)
        sys.setswitchinterval(interval)
        final = b.stats
        assert final.received > 100 and final.authenticated == final.received, final
        assert reads > 1000 and not torn, (reads, len(torn), torn[:2])
        lt.run(_close(a, b))
    finally:
        sys.setswitchinterval(interval)
        lt.close()


async def _close(*legs_: MediaLeg) -> None:
    for leg in legs_:
        leg.close()
