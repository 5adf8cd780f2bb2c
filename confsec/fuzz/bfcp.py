"""The BFCP entry point: mutated floor control messages on mallory's own BFCP connection.

The messages (Hello, FloorRequest, FloorRelease, FloorQuery, ...) carry mallory's conference and
user ids, over a TLS connection opened with mallory's certificate as the answer's a=fingerprint
binds it, so they get past the floor server's checks of who is speaking. Half get their Payload
Length fixed so that they frame and reach the message decoder; the others test the framing.
"""

from __future__ import annotations

import contextlib

from confsec.codec import bfcp as b
from confsec.errors import ConfsecError, PeerTimeout
from confsec.fuzz.harness import FuzzHarness
from confsec.fuzz.mutate import mutate
from confsec.fuzz.report import EntryStats
from confsec.net.bfcp import BfcpClient


class BfcpEntry:
    name = "bfcp"

    def __init__(self, h: FuzzHarness) -> None:
        self.h = h
        self._client: BfcpClient | None = None

    async def setup(self) -> None:
        """Nothing to prepare: the connection is opened with the first input."""

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def seeds(self) -> list[bytes]:
        """Valid messages from mallory, each with a fresh transaction id."""
        m, p = self.h.bfcp_message, b.Primitive
        floor, rid = b.BfcpFloorId(floor_id=1), b.BfcpFloorRequestId(floor_request_id=1)
        return [
            bytes(m("mallory", p.HELLO)),
            bytes(m("mallory", p.FLOOR_REQUEST, floor)),
            bytes(
                m("mallory", p.FLOOR_REQUEST, floor, b.BfcpParticipantProvidedInfo(text=b"fuzz"))
            ),
            bytes(m("mallory", p.FLOOR_RELEASE, rid)),
            bytes(m("mallory", p.FLOOR_REQUEST_QUERY, rid)),
            bytes(m("mallory", p.FLOOR_QUERY, floor)),
            bytes(m("mallory", p.USER_QUERY)),  # not served: an Error
            bytes(m("mallory", p.GOODBYE)),
            bytes(m("mallory", p.FLOOR_REQUEST_STATUS_ACK)),
        ]

    async def fuzz(self, stats: EntryStats, n: int) -> None:
        try:
            await self._inputs(stats, n)
        finally:
            # Whatever floor the fuzz connection was granted goes with it (the floor server
            # releases a departed holder's floor): the service check then expects bob's
            # request to be granted.
            if self._client is not None:
                await self._client.close()
                self._client = None

    async def _inputs(self, stats: EntryStats, n: int) -> None:
        h = self.h
        for _ in range(n):
            seeds = self.seeds()
            data = bytearray(mutate(h.rng, h.rng.choice(seeds), seeds))
            if h.rng.random() < 0.5 and len(data) >= b.HEADER_LEN:
                fix_payload_length(data)
            data = bytes(data)
            stats.inputs += 1
            if self._client is None or self._client.closed.is_set():
                self._client = await h.open_bfcp("mallory")
            if self._client is None:
                stats.refused += 1
                h.save(stats, data, "refused")
                if not h.note_probe(stats, await h.bfcp_hello_probe(), data):
                    return
                continue
            client = self._client
            since = len(client.received)
            try:
                client.send(data)
            except ConfsecError:
                stats.closed += 1
                self._client = None
                continue
            alive = h.note_probe(stats, await h.bfcp_hello_probe(), data)
            alive = h.note_probe(stats, await h.sip_probe(), data) and alive
            with contextlib.suppress(PeerTimeout):
                await client.wait_for(lambda _m: True, h.grace_s, since)
            got = client.received[since:]
            for r in got:
                stats.responses[r.message.primitive_name or str(r.message.primitive)] += 1
            if client.closed.is_set():
                stats.closed += 1
                self._client = None
            elif not got:
                stats.responses["none"] += 1
                await client.close()
                self._client = None
            if not alive:
                return


def fix_payload_length(data: bytearray) -> None:
    """Pad to a word and set Payload Length to what follows the header, so the message frames
    and the server's decoder, not its framing, has to judge it."""
    header = b.HEADER_LEN + (4 if data[0] & 0x08 else 0)
    if len(data) < header:
        return
    data += bytes((-(len(data) - header)) % 4)
    data[2:4] = ((len(data) - header) // 4).to_bytes(2, "big")
