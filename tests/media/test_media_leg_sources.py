"""Whose datagrams a leg judges (confsec/media/reception.py `Reception.attribute`), on real
loopback sockets: the target's, from the addresses it announced or authenticating under the
leg's key, and not a stranger's.

On a shared machine another process's media reaches a port that was its a moment ago (a
mixer still reporting to a participant that closed its socket). One such SRTCP packet made a
conformant target fail R3 in CI ("3 of 3 RTCP packets refused" from a target that sent none).
Each test sends from a third socket, the "stranger", beside the target's own.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from contextlib import ExitStack, closing
from typing import Any, Protocol, TypeVar

from confsec.media import rtcp
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtcp_channel import RtcpChannel
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_master_key, new_receiver, new_sender

SUITE = "AES_CM_128_HMAC_SHA1_80"
SEND = StreamId("focus", "alice", "audio", "send")
RECV = StreamId("alice", "focus", "audio", "recv")
STRANGER_SEND = StreamId("elsewhere", "someone", "audio", "send")


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def kept(stack: ExitStack, *things: C) -> tuple[C, ...]:
    """`things` (sockets, legs), closed when the test's `with` ends, whatever happens."""
    return tuple(stack.enter_context(closing(t)) for t in things)


class Sock:
    """A plain UDP socket on loopback that sends datagrams: the target, or a stranger."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.addr = self.sock.getsockname()

    def send(self, data: bytes, to: tuple[Any, ...]) -> None:
        self.sock.sendto(data, to)

    def close(self) -> None:
        self.sock.close()


async def arrived(leg: MediaLeg, n: int) -> None:
    """Until `n` datagrams reached the leg, judged or set aside (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while leg.received + leg.strays + len(leg._held or ()) < n:
        assert loop.time() < deadline, f"{n} datagrams did not arrive: {leg!r}"
        await asyncio.sleep(0.005)


async def scene(
    stack: ExitStack,
) -> tuple[KeyStreamLedger, tuple[bytes, bytes], tuple[bytes, bytes], Sock, Sock, MediaLeg]:
    """A ledger, the leg's key and a stranger's, the target's socket and a stranger's, and
    the participant's leg (with a history of 16), all closed when `stack` ends."""
    target, stranger = kept(stack, Sock(), Sock())
    (leg,) = kept(stack, await MediaLeg.open(recent_limit=16))
    return KeyStreamLedger(), new_master_key(SUITE), new_master_key(SUITE), target, stranger, leg


def srtp(
    ledger: KeyStreamLedger, key: tuple[bytes, bytes], stream: StreamId, n: int
) -> list[bytes]:
    sender = new_sender(ledger, stream, SUITE, *key)
    return [sender.protect(build_rtp(0, i, 160 * i, 0x5EED, b"\xff" * 160)) for i in range(n)]


def test_a_strangers_datagrams_are_set_aside_and_the_targets_judged() -> None:
    """What does not authenticate counts as refused only when it comes from the target."""

    async def main() -> None:
        with ExitStack() as stack:
            ledger, ours, theirs, target, stranger, leg = await scene(stack)
            leg.set_remote(target.addr)
            leg.set_receiver(new_receiver(ledger, RECV, SUITE, *ours))
            for data in srtp(ledger, theirs, STRANGER_SEND, 3):
                stranger.send(data, leg.local_addr)
            await arrived(leg, 3)
            s = leg.stats
            assert (s.received, s.auth_failed, s.strays) == (0, 0, 3)
            assert s.ssrcs == frozenset()  # nor its SSRC
            assert leg.stray_sources == {stranger.addr: 3}
            size = 12 + 160 + 10  # header, PCMU, tag
            assert [(a, n) for _, a, n, _ in leg.stray_samples] == [(stranger.addr, size)] * 3
            # Nor in the history checks read (rekeying, leaving, DTLS timing): kept apart.
            assert (len(leg.recent or ()), leg.raw_packets, s.peers) == (0, [], frozenset())
            assert [a for _, a, _ in leg.strays_recent] == [stranger.addr] * 3
            assert not leg.from_target(stranger.addr) and leg.from_target(target.addr)
            # The same bytes from the target are its own, and fail.
            for data in srtp(ledger, theirs, StreamId("x", "y", "audio", "send"), 2):
                target.send(data, leg.local_addr)
            for data in srtp(ledger, ours, SEND, 2):
                target.send(data, leg.local_addr)
            await arrived(leg, 7)
            s = leg.stats
            assert (s.received, s.authenticated, s.auth_failed, s.strays) == (4, 2, 2, 3)

    run(main())


def test_a_source_the_target_did_not_announce_is_its_own_once_it_authenticates() -> None:
    """A target may send from a port it did not announce (not symmetric RTP): what comes from
    there authenticating under the leg's key shows the source holds it, and from then on all
    of that source is judged, failures too."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        ours = new_master_key(SUITE)
        with ExitStack() as stack:
            announced, other_port = kept(stack, Sock(), Sock())
            (leg,) = kept(stack, await MediaLeg.open())
            leg.set_remote(announced.addr)
            leg.set_receiver(new_receiver(ledger, RECV, SUITE, *ours))
            good = srtp(ledger, ours, SEND, 3)
            other_port.send(good[0], leg.local_addr)
            other_port.send(good[1][:-1] + bytes([good[1][-1] ^ 1]), leg.local_addr)
            other_port.send(good[2], leg.local_addr)
            await arrived(leg, 3)
            s = leg.stats
            assert (s.received, s.authenticated, s.auth_failed, s.strays) == (3, 2, 1, 0)
            assert leg.from_target(other_port.addr)

    run(main())


def test_stray_srtcp_on_the_own_rtcp_port_is_not_the_targets_rtcp() -> None:
    """The CI failure, on a socket: SRTCP from a stranger reaches a participant's RTCP port;
    the channel has received no RTCP from the target, and says what it set aside."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        ours, theirs = new_master_key(SUITE), new_master_key(SUITE)
        with ExitStack() as stack:
            target_rtp, target_rtcp, stranger = kept(stack, Sock(), Sock(), Sock())
            (leg,) = kept(stack, await MediaLeg.open())
            channel = await RtcpChannel.open(leg, "alice@confsec")  # closed with its leg
            leg.set_remote(target_rtp.addr)
            channel.use_port(target_rtcp.addr)
            leg.set_receiver(new_receiver(ledger, RECV, SUITE, *ours))
            assert channel.socket is not None
            report = rtcp.compound(rtcp.receiver_report(7), rtcp.sdes_cname(7, "x@y"))
            foreign = new_sender(ledger, STRANGER_SEND, SUITE, *theirs)
            for _ in range(3):
                stranger.send(foreign.protect_rtcp(report), channel.socket.local_addr)
            await arrived(channel.socket, 3)
            assert channel.received.received == 0 and channel.strays == 3
            assert channel.refused_samples() == []
            assert {a for _, a, _, _ in channel.stray_samples()} == {stranger.addr}
            # The target's SRTCP, from its RTCP port or its RTP port, is judged.
            mine = new_sender(ledger, SEND, SUITE, *ours)
            target_rtcp.send(mine.protect_rtcp(report), channel.socket.local_addr)
            target_rtp.send(foreign.protect_rtcp(report), channel.socket.local_addr)
            await arrived(channel.socket, 5)
            got = channel.received
            assert (got.received, got.accepted, got.auth_failed) == (2, 1, 1)

    run(main())


def test_what_came_before_the_answer_is_attributed_when_it_is_judged() -> None:
    """Held for its key (`expect_key`), a stranger's datagram is set aside once the answer
    names the target, and no longer counts as received."""

    async def main() -> None:
        with ExitStack() as stack:
            ledger, ours, theirs, target, stranger, leg = await scene(stack)
            leg.expect_key()
            stranger.send(srtp(ledger, theirs, STRANGER_SEND, 1)[0], leg.local_addr)
            target.send(srtp(ledger, ours, SEND, 1)[0], leg.local_addr)
            await arrived(leg, 2)
            assert leg.stats.held == 2 and leg.stats.received == 2
            leg.set_remote(target.addr)
            leg.set_receiver(new_receiver(ledger, RECV, SUITE, *ours))
            s = leg.stats
            assert (s.received, s.held, s.authenticated, s.auth_failed, s.strays) == (
                1,
                0,
                1,
                0,
                1,
            )
            assert [a for _, a, _ in leg.recent or ()] == [target.addr]
            assert [a for _, a, _ in leg.raw_packets] == [target.addr]

    run(main())


def test_from_a_target_on_another_host_every_port_is_its_own() -> None:
    """Nothing but the target sends from the target's host: when that is not the leg's own,
    a failure from any of its ports is judged. On one host (the loopback address both use)
    only the announced ports and key holders are."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        ours, theirs = new_master_key(SUITE), new_master_key(SUITE)
        with ExitStack() as stack:
            announced, same_host, here = kept(stack, Sock("127.0.0.2"), Sock("127.0.0.2"), Sock())
            (leg,) = kept(stack, await MediaLeg.open(host="127.0.0.1"))
            leg.set_remote(announced.addr)
            leg.set_receiver(new_receiver(ledger, RECV, SUITE, *ours))
            bad = srtp(ledger, theirs, STRANGER_SEND, 2)
            same_host.send(bad[0], leg.local_addr)
            here.send(bad[1], leg.local_addr)
            await arrived(leg, 2)
            s = leg.stats
            assert (s.received, s.auth_failed, s.strays) == (1, 1, 1)
            assert leg.stray_sources == {here.addr: 1}

    run(main())


def test_a_target_named_by_a_host_name_has_everything_judged() -> None:
    """A source cannot be compared with a name (resolving it would block the loop): with an
    answer that names a host, the leg judges every datagram, as the strict side."""

    async def main() -> None:
        ledger = KeyStreamLedger()
        ours, theirs = new_master_key(SUITE), new_master_key(SUITE)
        with ExitStack() as stack:
            (stranger,) = kept(stack, Sock())
            (leg,) = kept(stack, await MediaLeg.open())
            leg.set_remote(("localhost", 9))
            leg.set_receiver(new_receiver(ledger, RECV, SUITE, *ours))
            stranger.send(srtp(ledger, theirs, STRANGER_SEND, 1)[0], leg.local_addr)
            await arrived(leg, 1)
            assert (leg.stats.auth_failed, leg.stats.strays) == (1, 0)

    run(main())
