"""The SRTP entry point: datagrams to the mixer's media ports.

Two attackers in one: off-path, mutations of captured SRTP and random or truncated datagrams to
alice's and bob's legs, which the mixer's SRTP check must drop; and mallory, RTP with a malformed
header or payload protected under its own key to its own legs, which authenticates and so
reaches the mixer's RTP parsing, mixing and video switching. UDP has no answer to wait for, so
the liveness probe follows a burst of datagrams, and what became of them is read from the
mixer's counters.
"""

from __future__ import annotations

import asyncio
import secrets

from confsec.errors import ConfsecError
from confsec.fuzz.connections import Sink
from confsec.fuzz.harness import FuzzHarness
from confsec.fuzz.mutate import mutate
from confsec.fuzz.report import EntryStats
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_sender

SRTP_BURST = 20
"""Datagrams sent between two liveness probes: UDP has no answer to wait for."""


class SrtpEntry:
    name = "srtp"

    def __init__(self, h: FuzzHarness) -> None:
        self.h = h
        self._socket: asyncio.DatagramTransport | None = None
        self._seeds: list[bytes] = []

    async def setup(self) -> None:
        loop = asyncio.get_running_loop()
        self._socket, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
        self._seeds = self._captured_srtp()

    async def close(self) -> None:
        if self._socket is not None:
            self._socket.close()

    def _captured_srtp(self) -> list[bytes]:
        """Real SRTP the mixer sent to alice and bob (their legs keep the first datagrams; its
        SRTCP reports among them are left out, RFC 5761 4)."""
        seeds = []
        for name in ("alice", "bob"):
            leg = self.h.conf.participant(name).legs.get("audio")
            if leg is not None:
                # SRTP only: the mixer's SRTCP reports go down its RTCP path, not the media one
                seeds += [d for _, _, d in leg.raw_packets[:24] if not 192 <= d[1] <= 223][:20]
        return seeds or [secrets.token_bytes(182)]

    def _input(self) -> tuple[bytes, tuple[str, int], bool]:
        """One datagram and where it goes; True when it is authenticated under mallory's key."""
        h, rng = self.h, self.h.rng
        kind = rng.randrange(4)
        victims = [h.conf.participant(n).legs["audio"].remote for n in ("alice", "bob")]
        if kind < 2 or h.mallory_ended:
            dest = rng.choice(victims)
            assert dest is not None
            if kind == 0 or h.mallory_ended:
                seed = rng.choice(self._seeds)
                return mutate(rng, seed, self._seeds), dest, False
            seed = rng.choice(self._seeds)
            return seed[: rng.randrange(len(seed))] or rng.randbytes(3), dest, False
        mallory = h.mallory
        media = "audio" if kind == 2 else "video"
        leg = mallory.legs[media]
        crypto = mallory.send_crypto[media]
        payload_len = rng.choice((160, 160, 0, 1, 159, 161, 1000, rng.randrange(1300)))
        rtp = build_rtp(
            rng.randrange(128),
            rng.randrange(1 << 16),
            rng.randrange(1 << 32),
            rng.randrange(1 << 32),
            rng.randbytes(payload_len),
            marker=rng.random() < 0.1,
        )
        # Mutate the header region (CSRC count, X and P bits, extension lengths) above all.
        head = mutate(rng, rtp[:16], [rtp])
        rtp = head + rtp[16:] if rng.random() < 0.7 else mutate(rng, rtp, [rtp])
        sender = new_sender(
            KeyStreamLedger(),  # a throw-away ledger: the fuzzer's key stream is not judged
            StreamId("fuzz", "mixer", media, "send"),
            crypto.suite,
            crypto.key,
            crypto.salt,
        )
        assert leg.remote is not None
        try:
            return sender.protect(rtp), leg.remote, True
        except ConfsecError:  # libsrtp will not protect this header: send it as it is
            return rtp, leg.remote, False

    async def fuzz(self, stats: EntryStats, n: int) -> None:
        h = self.h
        await h.rejoin_mallory("srtp")
        assert self._socket is not None and h.reference is not None
        mixer = h.reference.deployment.mixer.stats
        received, failed = mixer.received, mixer.auth_failed
        sent = 0
        while sent < n:
            burst = []
            for _ in range(min(SRTP_BURST, n - sent)):
                data, dest, _authenticated = self._input()
                self._socket.sendto(data, dest)
                burst.append(data)
                sent += 1
                stats.inputs += 1
            if not h.note_probe(stats, await h.sip_probe(), b"".join(burst)):
                break
        stats.responses["dropped"] += mixer.auth_failed - failed
        stats.responses["taken"] += (mixer.received - received) - (mixer.auth_failed - failed)
