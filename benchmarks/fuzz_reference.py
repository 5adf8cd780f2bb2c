"""Mutation fuzz of the embedded reference's network entry points while a conference runs.

Issue 7 asks for proof that the reference "stays up and keeps serving the other participants"
when someone throws garbage at it. `fuzz_codecs.py` shows the parsers survive bytes in memory;
this driver goes through the real sockets, where a parser error meets transactions, dialogs,
the floor server's bindings and the mixer's per-leg state. It starts the reference on loopback
(`EmbeddedReference`), sets up a live conference (alice creates, bob joins with BFCP, both send
tones under SRTP) and a fuzzing participant, mallory, who is admitted like anyone else. Then, per
entry point, it sends mutations (the mutation engine of `fuzz_codecs.py`) of real, valid inputs:

- ``sip``: requests over mallory's own TLS connection to the focus: INVITE with SDP, re-INVITE
  and BYE in mallory's dialog, SUBSCRIBE, OPTIONS. Each is rebuilt with a fresh branch, Call-ID
  and CSeq before it is mutated, so the server never sees a retransmission; when the server
  closes the connection (lost framing) or leaves it waiting, the driver reconnects.
- ``sdp``: mutated offers inside authenticated INVITEs to the conference URI (a UA of its own
  answers each digest challenge). An offer that is admitted is left again at once with BYE.
- ``bfcp``: mutated BFCP messages (Hello, FloorRequest, FloorRelease, FloorQuery, ...) carrying
  mallory's conference and user ids, over a TLS connection opened with mallory's certificate, as
  the answer's a=fingerprint binds it. Half get their Payload Length fixed so that they frame
  and reach the message decoder; the others test the framing.
- ``srtp``: datagrams to the mixer's ports: mutations of captured SRTP, random and truncated
  datagrams to alice's and bob's legs (an off-path attacker), and RTP with a malformed header or
  payload protected under mallory's own key to mallory's legs (authenticated, so it reaches the
  mixer's RTP parsing, mixing and video switching).

After every input (a burst of datagrams for SRTP) a valid OPTIONS on a separate connection must
be answered within ``--hang`` seconds (and for BFCP a valid Hello on a separate BFCP
connection): an input after which it is not is a *hang* (no answer) or *down* (the connection was
refused or closed), and the input is saved under ``--out``. After each batch, and at the end, the
service check: alice and bob exchange tones, each hears the other and every packet each received
since the last check authenticated; on bob's BFCP connection Hello is answered, bob's floor
request is granted and his release confirmed; and a new participant (carol) is admitted with an
SRTP answer and gets a HelloAck from the floor server, then leaves. Tracebacks logged on the
reference's loop thread and calls of its loop's exception handler are counted as reference
exceptions.

    python benchmarks/fuzz_reference.py --inputs 20000

The regression test `tests/reference/test_fuzz_entry_points.py` runs the same driver with a few
dozen inputs per entry point, and against the reference's crash defect switches to show that it
notices a reference that falls over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import random
import re
import secrets
import ssl
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks.` and `confsec.` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fuzz_codecs import mutate
from confsec.behaviour import checks
from confsec.behaviour.conference import CallOutcome, ConferenceRun, OfferSpec
from confsec.behaviour.floor import floor_offer_line
from confsec.behaviour.participant import Participant
from confsec.behaviour.rekeying import attach
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp
from confsec.codec.sdp import parse_sdp
from confsec.codec.sip import Request, Response, SipStream
from confsec.errors import (
    ConfsecError,
    Inconclusive,
    NonConformance,
    PeerTimeout,
    RemoteProtocolError,
)
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_sender
from confsec.net.bfcp import BfcpClient, Received
from confsec.net.startup import client_ssl_context
from confsec.net.transport import Flow
from confsec.net.ua import UserAgent
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread
from confsec.target.model import Target

ENTRY_POINTS = ("sip", "sdp", "bfcp", "srtp")
REFERENCE_THREAD = "confsec-reference"
"""The name of `EmbeddedReference`'s loop thread: log records from it are the server's."""
SRTP_BURST = 20
"""Datagrams sent between two liveness probes: UDP has no answer to wait for."""
_LOOPBACK_C = re.compile(rb"(?m)^(c=[^\r\n]*)$")


# ------------------------------------------------------------------------------ what is counted


@dataclass
class EntryStats:
    """What became of the inputs sent to one entry point."""

    name: str
    inputs: int = 0
    responses: Counter[str] = field(default_factory=Counter)
    """By class: '1xx'..'6xx' for SIP, 'HelloAck'/'Error'/... for BFCP, 'dropped'/'taken'
    (by the mixer's SRTP check, from its counters) for SRTP, 'none' when nothing came back."""
    closed: int = 0
    """Connections the server closed after an input."""
    refused: int = 0
    """Inputs that could not be sent because the server refused a new connection."""
    hangs: int = 0
    """Inputs after which a valid probe got no answer within the hang limit."""
    down: int = 0
    """Inputs after which a valid probe found the server gone (connection refused or closed)."""
    seconds: float = 0.0
    saved: list[Path] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


@dataclass
class FuzzReport:
    entries: dict[str, EntryStats]
    service_checks: int = 0
    service_failures: list[str] = field(default_factory=list)
    """'after <batch>: <what no longer worked>'."""
    exceptions: list[str] = field(default_factory=list)
    """Tracebacks on the reference's loop thread and calls of its loop exception handler."""
    errors: list[str] = field(default_factory=list)
    """ERROR log records of the reference without a traceback (e.g. a defect switch's crash)."""

    @property
    def clean(self) -> bool:
        return not (
            self.service_failures
            or self.exceptions
            or any(e.hangs or e.down or e.refused for e in self.entries.values())
        )

    def table(self) -> str:
        lines = [
            f"{'entry':<6}{'inputs':>8}{'closed':>8}{'refused':>8}{'hangs':>7}{'down':>6}"
            f"{'inputs/s':>10}  responses"
        ]
        for e in self.entries.values():
            classes = ", ".join(f"{k} {v}" for k, v in sorted(e.responses.items()))
            lines.append(
                f"{e.name:<6}{e.inputs:>8}{e.closed:>8}{e.refused:>8}{e.hangs:>7}{e.down:>6}"
                f"{e.rate:>10.0f}  {classes}"
            )
        lines.append(
            f"service checks {self.service_checks}, failed {len(self.service_failures)}; "
            f"reference exceptions {len(self.exceptions)}, error logs {len(self.errors)}"
        )
        lines += [f"  service: {f}" for f in self.service_failures[:10]]
        lines += [f"  exception: {x.splitlines()[0]}" for x in self.exceptions[:10]]
        return "\n".join(lines)


class _ReferenceLog(logging.Handler):
    """Collects what the reference's loop thread logs at ERROR (tracebacks kept apart)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.exceptions: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName != REFERENCE_THREAD:
            return
        text = f"{record.name}: {record.getMessage()}"
        with self._lock:
            if record.exc_info and record.exc_info[0] is not None:
                exc = record.exc_info[1]
                trace = "".join(traceback.format_exception(*record.exc_info)[-6:])
                self.exceptions.append(f"{text}: {type(exc).__name__}: {exc}\n{trace}")
            else:
                self.errors.append(text)

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """The reference loop's exception handler: anything asyncio could not hand to anyone."""
        exc = context.get("exception")
        with self._lock:
            self.exceptions.append(f"asyncio: {context.get('message')}: {exc!r}")


# ------------------------------------------------------------------------------ raw connections


class _RawSip:
    """A bare TLS connection to the focus: writes any bytes, frames whatever comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.responses: list[Response] = []
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()
        sock = writer.get_extra_info("sockname")
        peer = writer.get_extra_info("peername")
        self.flow = Flow("tls", (sock[0], sock[1]), (peer[0], peer[1]))
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, target: Target, ctx: ssl.SSLContext, timeout: float) -> _RawSip | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    target.host, target.port, ssl=ctx, server_hostname=target.domain
                ),
                timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            return None
        return cls(reader, writer)

    async def _read(self) -> None:
        stream = SipStream()
        try:
            while data := await self.reader.read(65536):
                stream.feed(data)
                while (msg := stream.next_message()) is not None:
                    if isinstance(msg, Response):
                        self.responses.append(msg)
                    self.changed.set()
        except (ConnectionError, ssl.SSLError, OSError, RemoteProtocolError):
            pass
        finally:
            self.closed.set()
            self.changed.set()

    def send(self, data: bytes) -> bool:
        if self.closed.is_set() or self.writer.is_closing():
            return False
        self.writer.write(data)
        return True

    async def wait(self, since: int, timeout: float) -> bool:
        """Until a response beyond the first `since` arrived or the connection closed; False
        on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.responses) <= since and not self.closed.is_set():
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


class _Sink(asyncio.DatagramProtocol):
    """Where admitted fuzzed offers point their media, so the mixer never sends into a real leg."""


# ------------------------------------------------------------------------------ the driver


class ReferenceFuzzer:
    """A running reference, a live conference, and a mutation fuzzer for each entry point.

    Synchronous face (`start`, `fuzz`, `check_service`, `run`, `close`) over the suite's loop
    thread, like `ConferenceRun`; every wait has a deadline.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        defects: frozenset[str] = frozenset(),
        seed: int = 1,
        hang_s: float = 2.0,
        grace_s: float = 0.05,
        out: Path | None = None,
        media_s: float = 1.0,
    ) -> None:
        self.workdir = workdir
        self.defects = defects
        self.rng = random.Random(seed)
        self.hang_s = hang_s
        self.grace_s = grace_s
        """How long after the liveness probe an answer to the fuzzed input is still awaited."""
        self.out = out
        self.media_s = media_s
        self.keylog = workdir / "suite-tls-keylog.txt"
        self.report = FuzzReport({name: EntryStats(name) for name in ENTRY_POINTS})
        self._log = _ReferenceLog()
        self.reference: EmbeddedReference | None = None
        self.runtime: LoopThread | None = None
        self._counter = 0
        self._baseline: dict[str, tuple[int, int]] = {}
        self._sip: _RawSip | None = None
        self._probe: _RawSip | None = None
        self._bfcp: BfcpClient | None = None
        self._bfcp_probe: BfcpClient | None = None
        self._bob_bfcp: BfcpClient | None = None
        self._floor: dict[str, dict[str, str]] = {}
        self._sdp_ua: UserAgent | None = None
        self._sink: asyncio.DatagramTransport | None = None
        self._srtp_socket: asyncio.DatagramTransport | None = None
        self._sdp_seeds: list[bytes] = []
        self._srtp_seeds: list[bytes] = []
        self._mallory_ended = False
        self._mallory_lost = False
        self._txn = 1000

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def target(self) -> Target:
        assert self.reference is not None
        return self.reference.target

    def start(self) -> None:
        """Reference, conference (alice, bob with BFCP), mallory, the fuzz sockets; then a
        baseline service check, which must pass: a fuzz run on a broken setup proves nothing."""
        logging.getLogger().addHandler(self._log)
        self.reference = EmbeddedReference.start(self.workdir / "reference", defects=self.defects)
        self.reference.loop.loop.set_exception_handler(self._log.loop_exception)
        self.runtime = LoopThread("confsec-fuzz-suite")
        self.conf = ConferenceRun(self.runtime, self.target, keylog=self.keylog)
        created = self.conf.create("alice", OfferSpec())
        if created.status != 200:
            raise RuntimeError(f"cannot create the conference: {created.status} {created.error}")
        self.fuzz_conf = ConferenceRun(self.runtime, self.target, keylog=self.keylog)
        self.fuzz_conf.conference_uri = self.conf.conference_uri
        self._run(self._setup(), 60, "setting up the fuzz conference")
        problems = self.check_service("setup")
        if problems:
            raise RuntimeError(f"the conference does not work before fuzzing: {problems}")

    def close(self) -> None:
        logging.getLogger().removeHandler(self._log)
        if self.runtime is not None:
            with contextlib.suppress(Exception):
                self._run(self._teardown(), 20, "closing the fuzz sockets")
            for conf in (getattr(self, "fuzz_conf", None), getattr(self, "conf", None)):
                if conf is not None:
                    conf.close()
            self.runtime.close()
        if self.reference is not None:
            self.reference.stop()

    def _run(self, coro, timeout: float, what: str):  # type: ignore[no-untyped-def]
        assert self.runtime is not None
        return self.runtime.run(coro, timeout, what)

    async def _setup(self) -> None:
        loop = asyncio.get_running_loop()
        out = await _join_with_floor(self.conf, "bob", OfferSpec())
        if out.status != 200:
            raise RuntimeError(f"bob cannot join: {out.status} {out.error}")
        self._floor["bob"] = _floor_attributes(out)
        self._bob_bfcp = await self._open_bfcp("bob")
        problem = await self._join_mallory()
        if problem is not None:
            raise RuntimeError(problem)
        self._sink, _ = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
        self._srtp_socket, _ = await loop.create_datagram_endpoint(
            _Sink, local_addr=("127.0.0.1", 0)
        )
        account = self.target.account("frank")
        self._sdp_ua = await UserAgent.start(
            aor=account.aor(self.target.domain),
            display_name="Frank",
            contact_host="127.0.0.1",
            credentials=(account.username, account.password),
            client_ssl=client_ssl_context(self.target, account, str(self.keylog)),
            server_hostname=self.target.domain,
        )
        self._sdp_seeds = self._offers_for_fuzzing()
        self._srtp_seeds = self._captured_srtp()

    async def _join_mallory(self) -> str | None:
        """Mallory, the fuzzing participant: audio, video, the common stream and BFCP.

        Returns why mallory could not (re)join, or None. A failed rejoin during the run is a
        service failure (the conference no longer admits anyone) and is not retried.
        """
        old = self.fuzz_conf.participants.pop("mallory", None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        spec = OfferSpec(media=("audio", "video"), common=True)
        out = await _join_with_floor(self.fuzz_conf, "mallory", spec)
        if out.status != 200:
            self._mallory_lost = True
            return f"mallory cannot join: {out.status} {out.reason} {out.error or ''}".strip()
        self._floor["mallory"] = _floor_attributes(out)
        self._mallory_ended = False
        return None

    async def _rejoin_mallory(self, during: str) -> None:
        """After a mutated BYE ended mallory's dialog: join again, or note that it cannot."""
        if not self._mallory_ended or self._mallory_lost:
            return
        problem = await self._join_mallory()
        if problem is not None:
            self.report.service_failures.append(f"during {during}: {problem}")

    async def _teardown(self) -> None:
        for c in (self._sip, self._probe):
            if c is not None:
                await c.close()
        for client in (self._bfcp, self._bfcp_probe, self._bob_bfcp):
            if client is not None:
                await client.close()
        for t in (self._sink, self._srtp_socket):
            if t is not None:
                t.close()
        if self._sdp_ua is not None:
            await self._sdp_ua.close()

    # -- the run -------------------------------------------------------------------------------

    def run(
        self,
        inputs: int,
        batch: int,
        entries: tuple[str, ...] = ENTRY_POINTS,
        progress: Callable[[str], None] | None = None,
    ) -> FuzzReport:
        """`inputs` per entry point, in batches of `batch`, a service check after each batch;
        `progress` is told of each batch (the long run prints it)."""
        done = dict.fromkeys(entries, 0)
        while any(done[e] < inputs for e in entries):
            for entry in entries:
                n = min(batch, inputs - done[entry])
                if n <= 0:
                    continue
                stats = self.fuzz(entry, n)
                done[entry] += n
                label = f"{entry} inputs {done[entry] - n + 1}-{done[entry]}"
                problems = self.check_service(label)
                if progress is not None:
                    progress(
                        f"{label}: so far closed {stats.closed}, hangs {stats.hangs}, "
                        f"down {stats.down}, {stats.rate:.0f}/s; service "
                        f"{'ok' if not problems else problems}; "
                        f"exceptions {len(self._log.exceptions)}"
                    )
        self._collect_logs()
        return self.report

    def fuzz(self, entry: str, n: int) -> EntryStats:
        work = {
            "sip": self._fuzz_sip,
            "sdp": self._fuzz_sdp,
            "bfcp": self._fuzz_bfcp,
            "srtp": self._fuzz_srtp,
        }[entry]
        stats = self.report.entries[entry]
        started = time.perf_counter()
        try:
            self._run(work(stats, n), n * (self.hang_s + 1) + 30, f"fuzzing {entry}")
        finally:
            stats.seconds += time.perf_counter() - started
            self._collect_logs()
        return stats

    def _collect_logs(self) -> None:
        self.report.exceptions = list(self._log.exceptions)
        self.report.errors = list(self._log.errors)

    def _save(self, stats: EntryStats, data: bytes, why: str) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{stats.name}-{stats.inputs}-{why}.bin"
        path.write_bytes(data)
        stats.saved.append(path)

    def _note_probe(self, stats: EntryStats, result: str, data: bytes) -> bool:
        """Count a failed liveness probe against the input before it; False when down."""
        if result == "hang":
            stats.hangs += 1
            self._save(stats, data, "hang")
        elif result == "down":
            stats.down += 1
            self._save(stats, data, "down")
        return result != "down"

    # -- liveness probes -----------------------------------------------------------------------

    async def _sip_probe(self) -> str:
        """A valid OPTIONS on the probe connection: 'ok', 'hang' or 'down'."""
        for _ in range(2):  # a closed probe connection is reopened once
            if self._probe is None or self._probe.closed.is_set():
                self._probe = await self._connect_sip()
                if self._probe is None:
                    return "down"
            conn = self._probe
            since = len(conn.responses)
            conn.send(self._options(conn.flow))
            answered = await conn.wait(since, self.hang_s)
            if not answered:
                return "hang"
            if len(conn.responses) > since:
                return "ok"
        return "down"

    async def _bfcp_hello_probe(self) -> str:
        """A valid Hello from mallory on a BFCP connection of its own: 'ok', 'hang' or 'down'."""
        for _ in range(2):
            if self._bfcp_probe is None or self._bfcp_probe.closed.is_set():
                self._bfcp_probe = await self._open_bfcp("mallory")
                if self._bfcp_probe is None:
                    return "down"
            try:
                got = await self._bfcp_probe.transact(
                    self._bfcp_message("mallory", 11), self.hang_s
                )
            except PeerTimeout:
                return "hang"
            if got is not None:
                return "ok" if got.message.primitive == 12 else "down"
        return "down"

    # -- SIP -----------------------------------------------------------------------------------

    async def _connect_sip(self) -> _RawSip | None:
        ctx = client_ssl_context(self.target, self.target.account("mallory"), str(self.keylog))
        return await _RawSip.open(self.target, ctx, self.hang_s)

    def _options(self, flow: Flow) -> bytes:
        ua = self.fuzz_conf.participant("mallory").ua
        return ua.build_request(
            "OPTIONS",
            self.target.factory_uri,
            flow,
            call_id=f"{secrets.token_hex(8)}@fuzz",
            from_tag=secrets.token_hex(4),
            cseq=1,
        ).to_bytes()

    def _sip_seeds(self, flow: Flow) -> list[Callable[[], bytes]]:
        """Builders of valid requests, each call with a fresh branch, Call-ID or CSeq."""
        mallory = self.fuzz_conf.participant("mallory")
        ua = mallory.ua
        dialog = mallory.dialog
        invite = next(
            e.message
            for e in reversed(ua.trace)
            if e.direction == "sent" and isinstance(e.message, Request) and e.message.body
        )
        auth = invite.headers.get("Authorization") or ""
        sdp = invite.body
        conf_uri = self.conf.conference_uri or ""

        def out_of_dialog(method: str, uri: str, headers: list[tuple[str, str]], body: bytes):  # type: ignore[no-untyped-def]
            def build() -> bytes:
                return ua.build_request(
                    method,
                    uri,
                    flow,
                    call_id=f"{secrets.token_hex(8)}@fuzz",
                    from_tag=secrets.token_hex(4),
                    cseq=self.rng.randint(1, 9999),
                    headers=headers,
                    body=body,
                    content_type="application/sdp" if body else None,
                ).to_bytes()

            return build

        def in_dialog(method: str, body: bytes):  # type: ignore[no-untyped-def]
            def build() -> bytes:
                assert dialog is not None
                self._counter += 1
                return ua.build_request(
                    method,
                    dialog.remote_target or conf_uri,
                    flow,
                    call_id=dialog.call_id,
                    from_tag=dialog.local_tag,
                    cseq=dialog.local_seq + 100 + self._counter,
                    to=f"<{dialog.remote_uri}>;tag={dialog.remote_tag}",
                    body=body,
                    content_type="application/sdp" if body else None,
                ).to_bytes()

            return build

        subscribe = [
            ("Event", "conference"),
            ("Expires", "60"),
            ("Accept", "application/conference-info+xml"),
        ]
        seeds = [
            out_of_dialog("INVITE", conf_uri, [("Authorization", auth)], sdp),
            out_of_dialog("INVITE", self.target.factory_uri, [], sdp),
            out_of_dialog("SUBSCRIBE", conf_uri, subscribe, b""),
            out_of_dialog("OPTIONS", self.target.factory_uri, [], b""),
        ]
        if dialog is not None:
            seeds += [in_dialog("INVITE", sdp), in_dialog("BYE", b"")]
        return seeds

    async def _fuzz_sip(self, stats: EntryStats, n: int) -> None:
        await self._rejoin_mallory("sip")
        for _ in range(n):
            if self._sip is None or self._sip.closed.is_set():
                self._sip = await self._connect_sip()
            if self._sip is None:
                stats.refused += 1
                stats.inputs += 1
                if not self._note_probe(stats, await self._sip_probe(), b""):
                    return
                continue
            conn = self._sip
            seeds = self._sip_seeds(conn.flow)
            pick = self.rng.randrange(len(seeds))
            valid = seeds[pick]()
            data = mutate(self.rng, valid, [valid])
            if self.rng.random() < 0.5:
                data = _fix_content_length(data)
            since = len(conn.responses)
            stats.inputs += 1
            conn.send(data)
            alive = self._note_probe(stats, await self._sip_probe(), data)
            await conn.wait(since, self.grace_s)
            got = conn.responses[since:]
            for r in got:
                stats.responses[f"{r.status // 100}xx"] += 1
                method = (r.headers.get("CSeq") or "").split()[-1:]  # echoed, maybe mangled
                if method == ["BYE"] and 200 <= r.status < 300:
                    self._mallory_ended = True  # a mutated BYE that still ended the dialog
            if conn.closed.is_set():
                stats.closed += 1
                self._sip = None
            elif not got:
                stats.responses["none"] += 1
                await conn.close()  # the server may be waiting for a body: start afresh
                self._sip = None
            if not alive:
                return
            if pick >= 4:
                await self._rejoin_mallory("sip")  # keep the in-dialog seeds on a live dialog

    # -- SDP -----------------------------------------------------------------------------------

    def _offers_for_fuzzing(self) -> list[bytes]:
        """The offers alice, bob and mallory really sent, their media pointed at a sink."""
        assert self._sink is not None
        sink_port = self._sink.get_extra_info("sockname")[1]
        bodies = []
        for conf in (self.conf, self.fuzz_conf):
            for p in conf.participants.values():
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

    async def _fuzz_sdp(self, stats: EntryStats, n: int) -> None:
        assert self._sdp_ua is not None
        uri = self.conf.conference_uri or ""
        for _ in range(n):
            seed = self.rng.choice(self._sdp_seeds)
            data = _loopback_only(mutate(self.rng, seed, self._sdp_seeds))
            stats.inputs += 1
            try:
                call = await self._sdp_ua.invite(
                    uri, data, dest=self.target.dest, timeout=self.hang_s
                )
            except PeerTimeout:
                stats.responses["none"] += 1
                stats.hangs += 1
                self._save(stats, data, "hang")
                continue
            except ConfsecError:  # the connection went away under the transaction
                stats.closed += 1
                if not self._note_probe(stats, await self._sip_probe(), data):
                    return
                continue
            stats.responses[f"{call.response.status // 100}xx"] += 1
            if call.dialog is not None:
                with contextlib.suppress(ConfsecError):
                    await call.dialog.bye(timeout=self.hang_s)
            if not self._note_probe(stats, await self._sip_probe(), data):
                return

    def offer(self, sdp: bytes) -> Response:
        """One authenticated INVITE to the conference with `sdp` (a regression input); an
        admitted one is left again at once."""

        async def send() -> Response:
            assert self._sdp_ua is not None
            call = await self._sdp_ua.invite(
                self.conf.conference_uri or "", sdp, dest=self.target.dest, timeout=self.hang_s
            )
            if call.dialog is not None:
                await call.dialog.bye(timeout=self.hang_s)
            return call.response

        response = self._run(send(), self.hang_s * 3, "INVITE with a given offer")
        self._collect_logs()
        return response

    def send_sip(self, data: bytes) -> tuple[list[Response], bool]:
        """Write `data` on a fresh TLS connection to the focus (a regression input); returns
        the responses that came back and whether the server closed the connection."""

        async def send() -> tuple[list[Response], bool]:
            conn = await self._connect_sip()
            assert conn is not None, "cannot connect to the focus"
            try:
                conn.send(data)
                await self._sip_probe()  # answered: the focus has taken the bytes in
                await conn.wait(0, self.grace_s)
                return list(conn.responses), conn.closed.is_set()
            finally:
                await conn.close()

        result = self._run(send(), self.hang_s * 3, "sending raw SIP")
        self._collect_logs()
        return result

    def options_request(self) -> bytes:
        """A valid OPTIONS to the factory URI, as the liveness probe sends it."""
        assert self._probe is not None
        return self._options(self._probe.flow)

    @property
    def sdp_seeds(self) -> list[bytes]:
        """The valid offers the SDP mutations start from (media pointed at a sink)."""
        return list(self._sdp_seeds)

    # -- BFCP ----------------------------------------------------------------------------------

    async def _open_bfcp(self, name: str) -> BfcpClient | None:
        a = self._floor[name]
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

    def _bfcp_message(self, name: str, primitive: int, *attrs: b.BfcpAttribute) -> Bfcp:
        a = self._floor[name]
        self._txn = self._txn % 60000 + 1
        return Bfcp(
            primitive=primitive,
            conference_id=int(a["confid"]),
            transaction_id=self._txn,
            user_id=int(a["userid"]),
            attributes=list(attrs),
        )

    def _bfcp_seeds(self) -> list[bytes]:
        m = self._bfcp_message
        floor, rid = b.BfcpFloorId(floor_id=1), b.BfcpFloorRequestId(floor_request_id=1)
        return [
            bytes(m("mallory", 11)),
            bytes(m("mallory", 1, floor)),
            bytes(m("mallory", 1, floor, b.BfcpParticipantProvidedInfo(text=b"fuzz"))),
            bytes(m("mallory", 2, rid)),
            bytes(m("mallory", 3, rid)),
            bytes(m("mallory", 7, floor)),
            bytes(m("mallory", 5)),  # UserQuery: not served, an Error
            bytes(m("mallory", 16)),
            bytes(m("mallory", 14)),
        ]

    async def _fuzz_bfcp(self, stats: EntryStats, n: int) -> None:
        try:
            await self._fuzz_bfcp_inputs(stats, n)
        finally:
            # Whatever floor the fuzz connection was granted goes with it (the floor server
            # releases a departed holder's floor): the service check then expects bob's
            # request to be granted.
            if self._bfcp is not None:
                await self._bfcp.close()
                self._bfcp = None

    async def _fuzz_bfcp_inputs(self, stats: EntryStats, n: int) -> None:
        for _ in range(n):
            seeds = self._bfcp_seeds()
            data = bytearray(mutate(self.rng, self.rng.choice(seeds), seeds))
            if self.rng.random() < 0.5 and len(data) >= b.HEADER_LEN:
                _fix_payload_length(data)
            data = bytes(data)
            stats.inputs += 1
            if self._bfcp is None or self._bfcp.closed.is_set():
                self._bfcp = await self._open_bfcp("mallory")
            if self._bfcp is None:
                stats.refused += 1
                self._save(stats, data, "refused")
                if not self._note_probe(stats, await self._bfcp_hello_probe(), data):
                    return
                continue
            client = self._bfcp
            since = len(client.received)
            try:
                client.send(data)
            except ConfsecError:
                stats.closed += 1
                self._bfcp = None
                continue
            alive = self._note_probe(stats, await self._bfcp_hello_probe(), data)
            alive = self._note_probe(stats, await self._sip_probe(), data) and alive
            with contextlib.suppress(PeerTimeout):
                await client.wait_for(lambda _m: True, self.grace_s, since)
            got = client.received[since:]
            for r in got:
                stats.responses[r.message.primitive_name or str(r.message.primitive)] += 1
            if client.closed.is_set():
                stats.closed += 1
                self._bfcp = None
            elif not got:
                stats.responses["none"] += 1
                await client.close()
                self._bfcp = None
            if not alive:
                return

    # -- SRTP ----------------------------------------------------------------------------------

    def _captured_srtp(self) -> list[bytes]:
        """Real SRTP the mixer sent to alice and bob (their legs keep the first datagrams)."""
        seeds = []
        for name in ("alice", "bob"):
            leg = self.conf.participant(name).legs.get("audio")
            if leg is not None:
                seeds += [data for _, _, data in leg.raw_packets[:20]]
        return seeds or [secrets.token_bytes(182)]

    def _srtp_input(self) -> tuple[bytes, tuple[str, int], bool]:
        """One datagram and where it goes; True when it is authenticated under mallory's key."""
        kind = self.rng.randrange(4)
        victims = [self.conf.participant(n).legs["audio"].remote for n in ("alice", "bob")]
        if kind < 2 or self._mallory_ended:
            dest = self.rng.choice(victims)
            assert dest is not None
            if kind == 0 or self._mallory_ended:
                seed = self.rng.choice(self._srtp_seeds)
                return mutate(self.rng, seed, self._srtp_seeds), dest, False
            seed = self.rng.choice(self._srtp_seeds)
            return seed[: self.rng.randrange(len(seed))] or self.rng.randbytes(3), dest, False
        mallory = self.fuzz_conf.participant("mallory")
        media = "audio" if kind == 2 else "video"
        leg = mallory.legs[media]
        crypto = mallory.send_crypto[media]
        payload_len = self.rng.choice((160, 160, 0, 1, 159, 161, 1000, self.rng.randrange(1300)))
        rtp = build_rtp(
            self.rng.randrange(128),
            self.rng.randrange(1 << 16),
            self.rng.randrange(1 << 32),
            self.rng.randrange(1 << 32),
            self.rng.randbytes(payload_len),
            marker=self.rng.random() < 0.1,
        )
        # Mutate the header region (CSRC count, X and P bits, extension lengths) above all.
        head = mutate(self.rng, rtp[:16], [rtp])
        rtp = head + rtp[16:] if self.rng.random() < 0.7 else mutate(self.rng, rtp, [rtp])
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

    async def _fuzz_srtp(self, stats: EntryStats, n: int) -> None:
        await self._rejoin_mallory("srtp")
        assert self._srtp_socket is not None and self.reference is not None
        mixer = self.reference.deployment.mixer.stats
        received, failed = mixer.received, mixer.auth_failed
        sent = 0
        while sent < n:
            burst = []
            for _ in range(min(SRTP_BURST, n - sent)):
                data, dest, _authenticated = self._srtp_input()
                self._srtp_socket.sendto(data, dest)
                burst.append(data)
                sent += 1
                stats.inputs += 1
            if not self._note_probe(stats, await self._sip_probe(), b"".join(burst)):
                break
        stats.responses["dropped"] += mixer.auth_failed - failed
        stats.responses["taken"] += (mixer.received - received) - (mixer.auth_failed - failed)

    # -- the service check ---------------------------------------------------------------------

    def check_service(self, after: str) -> list[str]:
        """Does the reference still serve the others? Returns what no longer works."""
        self.report.service_checks += 1
        problems: list[str] = []
        alice, bob = self.conf.participant("alice"), self.conf.participant("bob")
        try:
            self._run(self._exchange([alice, bob]), self.media_s + 15, "media exchange")
            checks.hears_others([alice, bob])
        except (NonConformance, Inconclusive, ConfsecError) as exc:
            problems.append(f"alice and bob: {exc}")
        for p in (alice, bob):
            stats = p.legs["audio"].stats if "audio" in p.legs else None
            if stats is None:
                problems.append(f"{p.name} has no audio leg")
                continue
            got0, ok0 = self._baseline.get(p.name, (0, 0))
            got, ok = stats.received - got0, stats.authenticated - ok0
            self._baseline[p.name] = (stats.received, stats.authenticated)
            if got == 0:
                problems.append(f"{p.name} received no media since the last check")
            elif got != ok:
                problems.append(f"{p.name}: {got - ok} of {got} packets did not authenticate")
        problems += self._run(self._floor_and_join(), 60, "floor check and a new join")
        for problem in problems:
            self.report.service_failures.append(f"after {after}: {problem}")
        return problems

    async def _exchange(self, group: list[Participant]) -> None:
        """Everyone in `group` sends its tone until each leg has `media_s` of new packets.

        The legs' audio is forgotten first, so the tones are judged on this window alone and
        cannot pass on what was heard before the batch.
        """
        want = int(self.media_s * 50)
        legs = [p.legs["audio"] for p in group]
        for leg in legs:
            leg.reset_audio()
        for p in group:
            p.start_media()
        try:
            await asyncio.gather(
                *(leg.wait_for_packets(leg.stats.received + want, self.media_s + 4) for leg in legs)
            )
        finally:
            for p in group:
                p.stop_media()

    async def _floor_round(self, client: BfcpClient) -> str | None:
        """Hello, FloorRequest (must be granted: no one else holds the floor between batches,
        the fuzz connection is closed by then) and FloorRelease, as bob; None when all worked."""
        floor, bob = b.BfcpFloorId(floor_id=1), "bob"
        try:
            hello = await client.transact(self._bfcp_message(bob, 11), self.hang_s)
            if hello is None or hello.message.primitive != 12:
                return "Hello was not answered with HelloAck"
            got = await client.transact(self._bfcp_message(bob, 1, floor), self.hang_s)
            if 3 not in _request_statuses(got):
                return f"the floor request was not granted ({_request_statuses(got)})"
            fri = got.message.attr(b.BfcpFloorRequestInformation)  # type: ignore[union-attr]
            rid = b.BfcpFloorRequestId(floor_request_id=fri.floor_request_id)
            got = await client.transact(self._bfcp_message(bob, 2, rid), self.hang_s)
            if 6 not in _request_statuses(got):
                return f"the floor release was not confirmed ({_request_statuses(got)})"
        except PeerTimeout as exc:
            return f"no answer: {exc}"
        return None

    async def _floor_and_join(self) -> list[str]:
        problems = []
        if self._bob_bfcp is None or self._bob_bfcp.closed.is_set():
            problems.append("bob's BFCP connection was closed by the floor server")
        else:
            problem = await self._floor_round(self._bob_bfcp)
            if problem is not None:
                problems.append(f"bob's floor control: {problem}")
        joiner = ConferenceRun(self.conf.runtime, self.target, keylog=self.keylog)
        joiner.conference_uri = self.conf.conference_uri
        try:
            out = await _join_with_floor(joiner, "carol", OfferSpec())
            refusal = _not_admitted_secure(out)
            if refusal is not None:
                problems.append(f"a new participant cannot join: {refusal}")
            else:
                self._floor["carol"] = _floor_attributes(out)
                client = await self._open_bfcp("carol")
                if client is None:
                    problems.append("carol cannot open a BFCP connection")
                else:
                    try:
                        got = await client.transact(self._bfcp_message("carol", 11), self.hang_s)
                    except PeerTimeout:
                        got = None
                    if got is None or got.message.primitive != 12:
                        problems.append("carol's BFCP Hello was not answered with HelloAck")
                    await client.close()
        finally:
            await joiner._close()
        return problems


# ------------------------------------------------------------------------------ helpers


async def _join_with_floor(conf: ConferenceRun, name: str, spec: OfferSpec) -> CallOutcome:
    """Join `conf`'s conference with `spec` plus a TCP/TLS/BFCP m-line (RFC 8856), as
    `FloorRun` does, and attach the dialog so that rekeys (R6) keep the media keys current."""
    p: Participant = await conf._participant(name, "valid")
    offer = parse_sdp(await p.build_offer(spec))
    bfcp = floor_offer_line(conf.target.account(name).client_cert)
    sdp = dataclasses.replace(offer, media=(*offer.media, bfcp)).to_bytes()
    out = CallOutcome(name, conf.conference_uri or "")
    try:
        call = await p.ua.invite(
            out.request_uri, sdp, dest=conf.target.dest, timeout=conf.target.timeouts.transaction
        )
    except ConfsecError as exc:
        out.error = f"no answer: {exc}"
        return out
    conf._record(out, call.response)
    if out.status == 200 and out.answer is not None:
        p.apply_answer(out.answer)
        attach(p, call.dialog, out.answer)
    return out


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


def _request_statuses(got: Received | None) -> list[int]:
    """The REQUEST-STATUS values in a FloorRequestStatus (1 Pending, 3 Granted, 6 Released)."""
    if got is None or got.message.primitive != 4:
        return []
    fri = got.message.attr(b.BfcpFloorRequestInformation)
    if fri is None:
        return []
    return [
        x.request_status
        for a in fri.attributes
        if a.type == 18  # OVERALL-REQUEST-STATUS
        for x in a.attributes
        if x.type == 5  # REQUEST-STATUS
    ]


def _floor_attributes(out: CallOutcome) -> dict[str, str]:
    """a=confid, a=userid and the port of the answer's BFCP m-line."""
    assert out.answer is not None
    for m in out.answer.media:
        if m.media == "application" and m.port:
            attrs = {n: v or "" for n, v in m.attributes}
            return {"port": str(m.port), "confid": attrs["confid"], "userid": attrs["userid"]}
    raise RuntimeError("the answer carries no BFCP stream")


def _fix_payload_length(data: bytearray) -> None:
    """Pad to a word and set Payload Length to what follows the header, so the message frames
    and the server's decoder, not its framing, has to judge it."""
    header = b.HEADER_LEN + (4 if data[0] & 0x08 else 0)
    if len(data) < header:
        return
    data += bytes((-(len(data) - header)) % 4)
    data[2:4] = ((len(data) - header) // 4).to_bytes(2, "big")


def _fix_content_length(data: bytes) -> bytes:
    """Make Content-Length match the body again, so that the message frames on the stream and
    the parser and the focus, not only the framing, judge the mutation."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return data
    fixed = re.sub(
        rb"(?im)^(content-length|l)([ \t]*:[ \t]*)\d+", rb"\g<1>\g<2>%d" % len(body), head
    )
    return fixed + sep + body


def _loopback_only(sdp: bytes) -> bytes:
    """Keep an admitted offer's media on loopback: a mutated c= line that names any other
    address is put back, so a fuzz run never makes the mixer send media off the machine."""

    def fix(m: re.Match[bytes]) -> bytes:
        line = m.group(1)
        addresses = re.findall(rb"\d+\.\d+\.\d+\.\d+|[0-9a-fA-F:]*:[0-9a-fA-F:]+", line)
        if all(a.startswith(b"127.") or a == b"::1" for a in addresses):
            return line
        return b"c=IN IP4 127.0.0.1"

    return _LOOPBACK_C.sub(fix, sdp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=2000, help="inputs per entry point")
    ap.add_argument("--batch", type=int, default=1000, help="inputs between service checks")
    ap.add_argument("--hang", type=float, default=2.0, help="seconds that count as a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=ENTRY_POINTS, action="append")
    ap.add_argument("--defect", action="append", default=[], help="a reference defect switch")
    ap.add_argument("--out", type=Path, default=Path("fuzz-crashes/reference"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="confsec-fuzz-") as tmp:
        fuzzer = ReferenceFuzzer(
            Path(tmp),
            defects=frozenset(args.defect),
            seed=args.seed,
            hang_s=args.hang,
            out=args.out,
        )
        started = time.perf_counter()
        try:
            fuzzer.start()
            report = fuzzer.run(
                args.inputs,
                args.batch,
                tuple(args.only or ENTRY_POINTS),
                progress=lambda line: print(line, flush=True),
            )
        finally:
            fuzzer.close()
    print(report.table())
    print(f"wall time {time.perf_counter() - started:.0f} s")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
