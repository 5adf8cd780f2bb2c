"""The SDP entry point: mutated offers inside authenticated INVITEs to the conference URI.

The offers start from those alice, bob and mallory really sent, so most mutations pass the
digest challenge and reach the focus's offer handling and the mixer's leg set-up. They go out on
a user agent of frank's (which answers each challenge) rather than through a participant's join:
this is thousands of offers in a row, most of them refused, on one connection. An offer that is
admitted is left again at once with BYE, and its media points at a sink, so an admitted offer
never makes the mixer send into a real leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re

from confsec.codec.sdp import parse_sdp
from confsec.codec.sip import Request, Response
from confsec.errors import ConfsecError, PeerTimeout
from confsec.fuzz.connections import Sink
from confsec.fuzz.harness import FuzzHarness
from confsec.fuzz.mutate import mutate
from confsec.fuzz.report import EntryStats
from confsec.net.startup import start_ua
from confsec.net.ua import UserAgent

_LOOPBACK_C = re.compile(rb"(?m)^(c=[^\r\n]*)$")


class SdpEntry:
    name = "sdp"

    def __init__(self, h: FuzzHarness) -> None:
        self.h = h
        self._ua: UserAgent | None = None
        self._sink: asyncio.DatagramTransport | None = None
        self.seeds: list[bytes] = []
        """The valid offers the mutations start from (media pointed at the sink)."""

    async def setup(self) -> None:
        h = self.h
        loop = asyncio.get_running_loop()
        self._sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
        frank = h.target.account("frank")
        self._ua = await start_ua(
            h.target,
            h.keylog,
            shown=frank,
            cert=frank,
            credentials=(frank.username, frank.password),
        )
        self.seeds = self._offers_for_fuzzing()

    async def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self._ua is not None:
            await self._ua.close()

    def _offers_for_fuzzing(self) -> list[bytes]:
        """The offers alice, bob and mallory really sent, their media pointed at the sink."""
        assert self._sink is not None
        sink_port = self._sink.get_extra_info("sockname")[1]
        bodies = []
        participants = [*self.h.conf.participants.values(), self.h.mallory]
        for p in participants:
            for e in p.ua.trace:
                m = e.message
                if e.direction == "sent" and isinstance(m, Request) and m.method == "INVITE":
                    if m.body and m.body not in bodies:
                        bodies.append(m.body)
        seeds = []
        for body in bodies:
            sdp = parse_sdp(body)
            media = tuple(
                dataclasses.replace(m, port=sink_port) if m.port and m.proto.endswith("AVP") else m
                for m in sdp.media
            )
            seeds.append(dataclasses.replace(sdp, media=media).to_bytes())
        return seeds

    async def fuzz(self, stats: EntryStats, n: int) -> None:
        h = self.h
        assert self._ua is not None
        uri = h.conf.conference_uri or ""
        for _ in range(n):
            seed = h.rng.choice(self.seeds)
            data = loopback_only(mutate(h.rng, seed, self.seeds))
            stats.inputs += 1
            try:
                call = await self._ua.invite(uri, data, dest=h.target.dest, timeout=h.hang_s)
            except PeerTimeout:
                stats.responses["none"] += 1
                stats.hangs += 1
                h.save(stats, data, "hang")
                continue
            except ConfsecError:  # the connection went away under the transaction
                stats.closed += 1
                if not h.note_probe(stats, await h.sip_probe(), data):
                    return
                continue
            stats.responses[f"{call.response.status // 100}xx"] += 1
            if call.dialog is not None:
                with contextlib.suppress(ConfsecError):
                    await call.dialog.bye(timeout=h.hang_s)
            if not h.note_probe(stats, await h.sip_probe(), data):
                return

    async def offer(self, sdp: bytes) -> Response:
        """One authenticated INVITE to the conference with `sdp`; an admitted one is left
        again at once."""
        h = self.h
        assert self._ua is not None
        call = await self._ua.invite(
            h.conf.conference_uri or "", sdp, dest=h.target.dest, timeout=h.hang_s
        )
        if call.dialog is not None:
            await call.dialog.bye(timeout=h.hang_s)
        return call.response


def loopback_only(sdp: bytes) -> bytes:
    """Keep an admitted offer's media on loopback: a mutated c= line that names any other
    address is put back, so a fuzz run never makes the mixer send media off the machine."""

    def fix(m: re.Match[bytes]) -> bytes:
        line = m.group(1)
        addresses = re.findall(rb"\d+\.\d+\.\d+\.\d+|[0-9a-fA-F:]*:[0-9a-fA-F:]+", line)
        if all(a.startswith(b"127.") or a == b"::1" for a in addresses):
            return line
        return b"c=IN IP4 127.0.0.1"

    return _LOOPBACK_C.sub(fix, sdp)
