"""What every entry point's fuzzer shares: the running reference, the live conference, mallory,
the liveness probes and the bookkeeping of inputs.

The reference runs on loopback (`EmbeddedReference`) with a live conference on the suite's own
loop thread: alice creates it, bob joins with a BFCP stream and holds a floor control
connection. Mallory, the fuzzing participant, is admitted like anyone else (audio, video, the
common stream and BFCP), so that the inputs sent in its name reach the code behind
authentication: its dialog, its floor bindings, its media legs.

After every input a valid OPTIONS on a connection of its own must be answered within `hang_s`
(and for BFCP a valid Hello on a BFCP connection of its own): otherwise the input is a *hang*
(no answer) or *down* (the connection was refused or closed), and is saved under `out`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.floor import floor_offer_line
from confsec.behaviour.outcomes import CallOutcome
from confsec.behaviour.participant import OfferSpec, Participant
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp
from confsec.codec.sdp import MediaDescription
from confsec.errors import ConfsecError, PeerTimeout
from confsec.fuzz.connections import RawSip
from confsec.fuzz.report import EntryStats, FuzzReport, ReferenceLog
from confsec.net.bfcp import BfcpClient
from confsec.net.flow import Flow
from confsec.net.startup import client_ssl_context
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread
from confsec.target.model import Target

T = TypeVar("T")

MALLORY_OFFER = OfferSpec(media=("audio", "video"), common=True)
"""Every kind of leg the mixer keeps, so the SRTP fuzz reaches its audio and video paths."""


class FuzzHarness:
    """The reference, the conference, mallory and the probes, behind a synchronous face over
    the suite's loop thread (like `ConferenceRun`); every wait has a deadline."""

    def __init__(
        self,
        workdir: Path,
        report: FuzzReport,
        *,
        defects: frozenset[str] = frozenset(),
        seed: int = 1,
        hang_s: float = 2.0,
        grace_s: float = 0.05,
        out: Path | None = None,
        media_s: float = 1.0,
    ) -> None:
        self.workdir = workdir
        self.report = report
        self.defects = defects
        self.rng = random.Random(seed)
        """One generator for every entry point, so a seed reproduces the whole run."""
        self.hang_s = hang_s
        self.grace_s = grace_s
        """How long after the liveness probe an answer to the fuzzed input is still awaited."""
        self.out = out
        self.media_s = media_s
        self.keylog = workdir / "suite-tls-keylog.txt"
        self.log = ReferenceLog()
        self.reference: EmbeddedReference | None = None
        self.runtime: LoopThread | None = None
        self._conf: ConferenceRun | None = None
        self.mallory_run: ConferenceRun | None = None
        """Mallory's own run: a rejoin is a new participant (new UA, new legs), so each
        incarnation gets a fresh run, joined to the conference `conf` created."""
        self.floor: dict[str, dict[str, str]] = {}
        """Per participant: the port, a=confid and a=userid of its answer's BFCP stream."""
        self.bob_bfcp: BfcpClient | None = None
        self.probe: RawSip | None = None
        self.bfcp_probe: BfcpClient | None = None
        self.mallory_ended = False
        """A mutated BYE ended mallory's dialog: its legs are gone until it rejoins."""
        self.mallory_lost = False
        """Mallory could not rejoin: the conference no longer admits anyone (not retried)."""
        self._txn = 1000

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def target(self) -> Target:
        assert self.reference is not None
        return self.reference.target

    @property
    def conf(self) -> ConferenceRun:
        """Alice's and bob's conference: the others the reference must keep serving."""
        assert self._conf is not None
        return self._conf

    @property
    def mallory(self) -> Participant:
        assert self.mallory_run is not None
        return self.mallory_run.participant("mallory")

    def start(self) -> None:
        """The reference, the conference (alice, bob with BFCP) and mallory."""
        logging.getLogger().addHandler(self.log)
        self.reference = EmbeddedReference.start(self.workdir / "reference", defects=self.defects)
        self.reference.loop.loop.set_exception_handler(self.log.loop_exception)
        self.runtime = LoopThread("confsec-fuzz-suite")
        self._conf = ConferenceRun(self.runtime, self.target, keylog=self.keylog)
        created = self.conf.create("alice", OfferSpec())
        if created.status != 200:
            raise RuntimeError(f"cannot create the conference: {created.status} {created.error}")
        out = self.conf.join("bob", OfferSpec(), extra_media=(self.floor_line("bob"),))
        if out.status != 200:
            raise RuntimeError(f"bob cannot join: {out.status} {out.error}")
        self.floor["bob"] = floor_attributes(out)
        self.run(self._start_fuzzing_parties(), 60, "setting up the fuzz conference")

    async def _start_fuzzing_parties(self) -> None:
        self.bob_bfcp = await self.open_bfcp("bob")
        problem = await self.join_mallory()
        if problem is not None:
            raise RuntimeError(problem)

    async def teardown(self) -> None:
        """Close the probes and bob's floor control connection (the entry points close theirs)."""
        if self.probe is not None:
            await self.probe.close()
        for client in (self.bfcp_probe, self.bob_bfcp):
            if client is not None:
                await client.close()

    def close(self) -> None:
        """Leave the conference and stop the reference; `teardown` has run on the loop."""
        logging.getLogger().removeHandler(self.log)
        if self.runtime is not None:
            for conf in (self.mallory_run, self._conf):
                if conf is not None:
                    conf.close()
            self.runtime.close()
        if self.reference is not None:
            self.reference.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        assert self.runtime is not None
        return self.runtime.run(coro, timeout, what)

    def floor_line(self, name: str) -> MediaDescription:
        """The TCP/TLS/BFCP m-line (RFC 8856) `name` adds to its offer, as `FloorRun` does."""
        return floor_offer_line(self.target.account(name).client_cert)

    async def join_mallory(self) -> str | None:
        """Mallory, the fuzzing participant: audio, video, the common stream and BFCP.

        Returns why mallory could not (re)join, or None. A failed rejoin during the run is a
        service failure (the conference no longer admits anyone) and is not retried.
        """
        old = self.mallory_run.participants.get("mallory") if self.mallory_run else None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        self.mallory_run = ConferenceRun(self.conf.runtime, self.target, keylog=self.keylog)
        try:
            out = await self.mallory_run.join_async(
                "mallory",
                MALLORY_OFFER,
                uri=self.conf.conference_uri,
                extra_media=(self.floor_line("mallory"),),
            )
        except ConfsecError as exc:
            self.mallory_lost = True
            return f"mallory cannot join: {exc}"
        if out.status != 200:
            self.mallory_lost = True
            return f"mallory cannot join: {out.status} {out.reason} {out.error or ''}".strip()
        self.floor["mallory"] = floor_attributes(out)
        self.mallory_ended = False
        return None

    async def rejoin_mallory(self, during: str) -> None:
        """After a mutated BYE ended mallory's dialog: join again, or note that it cannot."""
        if not self.mallory_ended or self.mallory_lost:
            return
        problem = await self.join_mallory()
        if problem is not None:
            self.report.service_failures.append(f"during {during}: {problem}")

    # -- bookkeeping ---------------------------------------------------------------------------

    def collect_logs(self) -> None:
        self.report.exceptions = list(self.log.exceptions)
        self.report.errors = list(self.log.errors)

    def save(self, stats: EntryStats, data: bytes, why: str) -> None:
        """Keep an input that hung or downed the server, for replay."""
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{stats.name}-{stats.inputs}-{why}.bin"
        path.write_bytes(data)
        stats.saved.append(path)

    def note_probe(self, stats: EntryStats, result: str, data: bytes) -> bool:
        """Count a failed liveness probe against the input before it; False when down."""
        if result == "hang":
            stats.hangs += 1
            self.save(stats, data, "hang")
        elif result == "down":
            stats.down += 1
            self.save(stats, data, "down")
        return result != "down"

    # -- liveness probes -----------------------------------------------------------------------

    async def sip_probe(self) -> str:
        """A valid OPTIONS on the probe connection: 'ok', 'hang' or 'down'."""
        for _ in range(2):  # a closed probe connection is reopened once
            if self.probe is None or self.probe.closed.is_set():
                self.probe = await self.connect_sip()
                if self.probe is None:
                    return "down"
            conn = self.probe
            since = len(conn.responses)
            conn.send(self.options(conn.flow))
            answered = await conn.wait(since, self.hang_s)
            if not answered:
                return "hang"
            if len(conn.responses) > since:
                return "ok"
        return "down"

    async def bfcp_hello_probe(self) -> str:
        """A valid Hello from mallory on a BFCP connection of its own: 'ok', 'hang' or 'down'."""
        for _ in range(2):
            if self.bfcp_probe is None or self.bfcp_probe.closed.is_set():
                self.bfcp_probe = await self.open_bfcp("mallory")
                if self.bfcp_probe is None:
                    return "down"
            try:
                got = await self.bfcp_probe.transact(
                    self.bfcp_message("mallory", b.Primitive.HELLO), self.hang_s
                )
            except PeerTimeout:
                return "hang"
            if got is not None:
                return "ok" if got.message.primitive == b.Primitive.HELLO_ACK else "down"
        return "down"

    # -- SIP -----------------------------------------------------------------------------------

    async def connect_sip(self) -> RawSip | None:
        """A raw TLS connection to the focus with mallory's certificate."""
        ctx = client_ssl_context(self.target, self.target.account("mallory"), str(self.keylog))
        return await RawSip.open(self.target, ctx, self.hang_s)

    def options(self, flow: Flow) -> bytes:
        """A valid OPTIONS to the factory URI from mallory, for the connection `flow`."""
        return self.mallory.ua.build_request(
            "OPTIONS",
            self.target.factory_uri,
            flow,
            call_id=f"{secrets.token_hex(8)}@fuzz",
            from_tag=secrets.token_hex(4),
            cseq=1,
        ).to_bytes()

    # -- BFCP ----------------------------------------------------------------------------------

    async def open_bfcp(self, name: str) -> BfcpClient | None:
        """A floor control connection as `name`, with its certificate (the answer's
        a=fingerprint binds it); None when the floor server refuses it."""
        a = self.floor[name]
        try:
            return await BfcpClient.connect(
                "127.0.0.1",
                int(a["port"]),
                ssl_context=client_ssl_context(
                    self.target, self.target.account(name), str(self.keylog)
                ),
                server_hostname=self.target.domain,
                timeout=self.hang_s,
            )
        except ConfsecError:
            return None

    def bfcp_message(self, name: str, primitive: int, *attrs: b.BfcpAttribute) -> Bfcp:
        """A BFCP message from `name` with its conference and user ids, a fresh transaction."""
        a = self.floor[name]
        self._txn = self._txn % 60000 + 1
        return Bfcp(
            primitive=primitive,
            conference_id=int(a["confid"]),
            transaction_id=self._txn,
            user_id=int(a["userid"]),
            attributes=list(attrs),
        )


def floor_attributes(out: CallOutcome) -> dict[str, str]:
    """a=confid, a=userid and the port of the answer's BFCP m-line."""
    assert out.answer is not None
    for m in out.answer.media:
        if m.media == "application" and m.port:
            attrs = {n: v or "" for n, v in m.attributes}
            return {"port": str(m.port), "confid": attrs["confid"], "userid": attrs["userid"]}
    raise RuntimeError("the answer carries no BFCP stream")
