"""The service check: does the reference still serve the others after a batch of fuzz?

A server that answers a probe can still have lost what matters, so the check uses the service
as participants do: alice and bob exchange tones and each hears the other, with every packet
each received since the last check authenticating; on bob's BFCP connection Hello is answered,
bob's floor request is granted and his release confirmed; and a new participant (carol) is
admitted with an SRTP answer and gets a HelloAck from the floor server, then leaves.
"""

from __future__ import annotations

import asyncio

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.floor import request_statuses
from confsec.behaviour.outcomes import CallOutcome
from confsec.behaviour.participant import OfferSpec, Participant
from confsec.codec import bfcp as b
from confsec.errors import ConfsecError, Inconclusive, NonConformance, PeerTimeout
from confsec.fuzz.harness import FuzzHarness, floor_attributes
from confsec.net.bfcp import BfcpClient


class ServiceCheck:
    """Runs the check against `h`; remembers each leg's counters between checks, so that every
    check judges only the packets that arrived since the one before."""

    def __init__(self, h: FuzzHarness) -> None:
        self.h = h
        self._baseline: dict[str, tuple[int, int]] = {}

    def __call__(self, after: str) -> list[str]:
        """Returns what no longer works; each problem is also a service failure of the report."""
        h = self.h
        h.report.service_checks += 1
        problems: list[str] = []
        alice, bob = h.conf.participant("alice"), h.conf.participant("bob")
        try:
            h.run(_exchange([alice, bob], h.media_s), h.media_s + 15, "media exchange")
            checks.hears_others([alice, bob])
        except (NonConformance, Inconclusive, ConfsecError) as exc:
            problems.append(f"alice and bob: {exc}")
        for p in (alice, bob):
            stats = p.legs["audio"].stats if "audio" in p.legs else None
            if stats is None:
                problems.append(f"{p.name} has no audio leg")
                continue
            got0, ok0 = self._baseline.get(p.name, (0, 0))
            # SRTCP the leg accepted is the mixer's reports, not media that failed.
            media = stats.received - stats.rtcp_accepted
            got, ok = media - got0, stats.authenticated - ok0
            self._baseline[p.name] = (media, stats.authenticated)
            if got == 0:
                problems.append(f"{p.name} received no media since the last check")
            elif got != ok:
                problems.append(f"{p.name}: {got - ok} of {got} packets did not authenticate")
        problems += _floor_and_join(h)
        for problem in problems:
            h.report.service_failures.append(f"after {after}: {problem}")
        return problems


async def _exchange(group: list[Participant], media_s: float) -> None:
    """Everyone in `group` sends its tone until each leg has `media_s` of new packets.

    The legs' audio is forgotten first, so the tones are judged on this window alone and
    cannot pass on what was heard before the batch.
    """
    want = int(media_s * 50)
    legs = [p.legs["audio"] for p in group]
    for leg in legs:
        leg.reset_audio()
    for p in group:
        p.start_media()
    try:
        await asyncio.gather(
            *(leg.wait_for_packets(leg.stats.received + want, media_s + 4) for leg in legs)
        )
    finally:
        for p in group:
            p.stop_media()


def _floor_and_join(h: FuzzHarness) -> list[str]:
    """Bob's floor control, and carol joining on a run of her own (a fresh participant every
    check), who leaves again when the run closes."""
    joiner = ConferenceRun(h.conf.runtime, h.target, keylog=h.keylog)
    try:
        return h.run(_floor_and_join_async(h, joiner), 60, "floor check and a new join")
    finally:
        joiner.close()


async def _floor_and_join_async(h: FuzzHarness, joiner: ConferenceRun) -> list[str]:
    problems = []
    if h.bob_bfcp is None or h.bob_bfcp.closed.is_set():
        problems.append("bob's BFCP connection was closed by the floor server")
    else:
        problem = await _floor_round(h, h.bob_bfcp)
        if problem is not None:
            problems.append(f"bob's floor control: {problem}")
    try:
        out = await joiner.join_async(
            "carol",
            OfferSpec(),
            uri=h.conf.conference_uri,
            extra_media=(h.floor_line("carol"),),
        )
    except ConfsecError as exc:  # the focus is gone: nobody can join
        problems.append(f"a new participant cannot join: {exc}")
        return problems
    refusal = _not_admitted_secure(out)
    if refusal is not None:
        problems.append(f"a new participant cannot join: {refusal}")
        return problems
    h.floor["carol"] = floor_attributes(out)
    client = await h.open_bfcp("carol")
    if client is None:
        problems.append("carol cannot open a BFCP connection")
        return problems
    try:
        got = await client.transact(h.bfcp_message("carol", b.Primitive.HELLO), h.hang_s)
    except PeerTimeout:
        got = None
    if got is None or got.message.primitive != b.Primitive.HELLO_ACK:
        problems.append("carol's BFCP Hello was not answered with HelloAck")
    await client.close()
    return problems


async def _floor_round(h: FuzzHarness, client: BfcpClient) -> str | None:
    """Hello, FloorRequest (must be granted: no one else holds the floor between batches, the
    fuzz connection is closed by then) and FloorRelease, as bob; None when all worked."""
    floor, bob = b.BfcpFloorId(floor_id=1), "bob"
    try:
        hello = await client.transact(h.bfcp_message(bob, b.Primitive.HELLO), h.hang_s)
        if hello is None or hello.message.primitive != b.Primitive.HELLO_ACK:
            return "Hello was not answered with HelloAck"
        got = await client.transact(h.bfcp_message(bob, b.Primitive.FLOOR_REQUEST, floor), h.hang_s)
        if b.RequestStatus.GRANTED not in request_statuses(got):
            return f"the floor request was not granted ({request_statuses(got)})"
        fri = got.message.attr(b.BfcpFloorRequestInformation)  # type: ignore[union-attr]
        rid = b.BfcpFloorRequestId(floor_request_id=fri.floor_request_id)
        got = await client.transact(h.bfcp_message(bob, b.Primitive.FLOOR_RELEASE, rid), h.hang_s)
        if b.RequestStatus.RELEASED not in request_statuses(got):
            return f"the floor release was not confirmed ({request_statuses(got)})"
    except PeerTimeout as exc:
        return f"no answer: {exc}"
    return None


def _not_admitted_secure(out: CallOutcome) -> str | None:
    """Why a join does not count as admitted under SRTP (None when it does): a 2xx whose
    accepted media lines are all RTP/SAVP with a real key (the BFCP line aside)."""
    if out.status != 200 or out.answer is None:
        return f"{out.status} {out.reason} {out.error or ''}".strip()
    media = [m for m in out.answer.media if m.port and m.media != "application"]
    if not media:
        return "the answer accepts no media"
    for m in media:
        if "SAVP" not in m.proto or not m.crypto or any(c.is_null for c in m.crypto):
            return f"the answer's m={m.media} is {m.proto} without a usable a=crypto"
    return None
