"""Participant join rate over mutual TLS with SHA-256 digest, against raw TLS handshakes.

Run: python benchmarks/join_rate.py [--joins 100] [--concurrency 8] [--handshakes 500]
(from a checkout; no install needed)

The embedded reference runs in a child process (its own core, as in benchmarks/scale.py). The
suite side joins `--joins` participants to one conference, first one at a time, then (into a
second conference) `--concurrency` at a time, each exactly as a scenario does it: a user agent
with its own client certificate, an SDES offer with fresh keys and a UDP media socket, a new
TLS connection with mutual authentication, INVITE -> 401 (SHA-256 digest) -> INVITE with
credentials -> 200 OK -> ACK; every participant already in answers the focus's rekey
re-INVITE that each join triggers (R6; the reference batches the joins that come within its
50 ms window into one rekey, and some rekeys of a phase land after its last join). Per join:

* join latency: from opening the TLS connection to the ACK of the 200 OK; split into the TLS
  connect and the SIP part (INVITE sent -> 200 OK / ACK);
* joins/s: joins over the wall time of the whole phase (user agent start and offer included).

The anchor, measured in the same run against the same listener of the same reference with the
same client SSL contexts (one per account, reused by the joins): TLS handshakes per second and
their latency (TCP connect and handshake; the close is not timed), a new TLS connection
carrying one SIP OPTIONS round trip (so that the server has finished its side of the handshake
too), and an OPTIONS round trip over an established connection. The ratio "join / handshake"
says how many bare mutual-TLS handshakes one join costs; what it adds is the digest round trip,
key generation, SDP and the rekeys of the others.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.reference_child import cpu, reference_in_child, run_reference
from confsec.behaviour.participant import OfferSpec, Participant, attach
from confsec.codec.sdp import parse_sdp
from confsec.codec.sip import Request, Response, SipStream, parse_name_addr
from confsec.media.ledger import KeyStreamLedger
from confsec.net.tls import client_context
from confsec.net.ua import UserAgent
from confsec.target.model import Target

# -- the reference, in its own process ---------------------------------------------------------


def reference_process(conn, workdir: str, users: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Child: the reference; every message but "stop" asks for its CPU time so far."""
    run_reference(conn, workdir, users, lambda msg, deployment, loop: cpu())


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured phase: per-operation latencies and the wall and CPU time of the whole."""

    label: str
    latencies: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    wall: float = 0.0
    suite_cpu: float = 0.0
    ref_cpu: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else 0.0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] * 1000


class Bench:
    def __init__(self, target: Target, conn) -> None:  # type: ignore[no-untyped-def]
        self.target = target
        self.conn = conn
        self.free = sorted(target.accounts)
        # One client context per account, built once: the joins and the anchor share them.
        self.contexts: dict[str, ssl.SSLContext] = {
            name: client_context(target.ca_file, a.client_cert, a.client_key)
            for name, a in target.accounts.items()
        }
        self.ledger = KeyStreamLedger()

    def ref_cpu(self) -> float:
        self.conn.send("cpu")
        return self.conn.recv()

    async def timed(
        self, label: str, count: int, concurrency: int, op: Callable[[int], Awaitable[float]]
    ) -> Phase:
        """Run `op(i)` for i < count, `concurrency` at a time; each returns its latency."""
        phase = Phase(label)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                phase.latencies.append(await op(i))

        cpu0, ref0, t0 = cpu(), self.ref_cpu(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        phase.wall = time.perf_counter() - t0
        phase.suite_cpu, phase.ref_cpu = cpu() - cpu0, self.ref_cpu() - ref0
        return phase

    # anchors

    def _context(self, i: int) -> ssl.SSLContext:
        return self.contexts[self.free[i % len(self.free)]]

    async def _open(self, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        t = self.target
        return await asyncio.open_connection(
            t.host, t.port, ssl=self._context(i), server_hostname=t.domain
        )

    async def handshake(self, i: int) -> float:
        started = time.perf_counter()
        _, writer = await self._open(i)
        elapsed = time.perf_counter() - started
        await close(writer)
        return elapsed

    async def handshake_options(self, i: int) -> float:
        started = time.perf_counter()
        reader, writer = await self._open(i)
        await options(reader, writer, self.target)
        elapsed = time.perf_counter() - started
        await close(writer)
        return elapsed

    async def options_phase(self, count: int, concurrency: int) -> Phase:
        """OPTIONS round trips over `concurrency` established connections."""
        conns = [await self._open(i) for i in range(concurrency)]
        idle = asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]()
        for c in conns:
            idle.put_nowait(c)

        async def op(_: int) -> float:
            reader, writer = await idle.get()
            started = time.perf_counter()
            await options(reader, writer, self.target)
            elapsed = time.perf_counter() - started
            idle.put_nowait((reader, writer))
            return elapsed

        try:
            return await self.timed("OPTIONS, established TLS", count, concurrency, op)
        finally:
            await asyncio.gather(*(close(w) for _, w in conns))

    # joins

    async def conference(self, count: int, concurrency: int) -> tuple[Phase, list[Participant]]:
        """A new conference (its creator not timed), then `count` timed joins."""
        people: list[Participant] = []
        creator, _ = await self.join(self.target.factory_uri, people)
        uri = parse_name_addr(creator).uri
        tls: list[float] = []
        sip: list[float] = []

        async def op(_: int) -> float:
            _, (t_tls, t_sip) = await self.join(uri, people)
            tls.append(t_tls)
            sip.append(t_sip)
            return t_tls + t_sip

        label = "sequential" if concurrency == 1 else f"{concurrency} concurrent"
        phase = await self.timed(f"join, {label}", count, concurrency, op)
        phase.parts = {"TLS connect": tls, "INVITE -> 200 OK/ACK": sip}
        rekeys = sum(len(p.rekeys) for p in people)
        phase.note = f"{rekeys} rekey re-INVITEs answered by the end of the phase"
        return phase, people

    async def join(self, uri: str, people: list[Participant]) -> tuple[str, tuple[float, float]]:
        """One participant joins; returns the 200 OK's Contact and (TLS connect, SIP) seconds."""
        name = self.free.pop()
        t = self.target
        account = t.account(name)
        ua = await UserAgent.start(
            aor=account.aor(t.domain),
            display_name=name,
            contact_host="127.0.0.1",
            credentials=(account.username, account.password),
            client_ssl=self.contexts[name],
            server_hostname=t.domain,
        )
        p = Participant(name, account, t, ua, self.ledger, 440.0, all_tones={})
        people.append(p)
        sdp = await p.build_offer(OfferSpec())
        started = time.perf_counter()
        await ua.resolve(t.dest, uri)  # the new TLS connection (mutual authentication)
        connected = time.perf_counter()
        call = await ua.invite(uri, sdp, dest=t.dest, timeout=60)  # 401, digest, 200, ACK
        done = time.perf_counter()
        if call.dialog is None or not 200 <= call.response.status < 300:
            raise SystemExit(
                f"{name} could not join: {call.response.status} {call.response.reason}"
            )
        answer = parse_sdp(call.response.body)
        p.apply_answer(answer)
        attach(p, call.dialog, answer)  # so that it answers the rekeys of later joins
        return call.response.headers.get("Contact") or "", (connected - started, done - connected)


async def options(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, t: Target) -> None:
    """One OPTIONS to the service and its response, built and parsed with the suite's codec."""
    writer.write(
        Request(
            "OPTIONS",
            t.factory_uri,
            [
                ("Via", f"SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bK{secrets.token_hex(8)};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sips:bench@{t.domain}>;tag={secrets.token_hex(4)}"),
                ("To", f"<{t.factory_uri}>"),
                ("Call-ID", f"{secrets.token_hex(8)}@bench"),
                ("CSeq", "1 OPTIONS"),
            ],
        ).to_bytes()
    )
    await writer.drain()
    stream = SipStream()
    while True:
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            raise SystemExit("the reference closed the connection instead of answering OPTIONS")
        stream.feed(data)
        if isinstance(stream.next_message(), Response):
            return


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, ssl.SSLError, TimeoutError):
        pass


# -- the run -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, target: Target, conn) -> list[tuple[Phase, Phase]]:  # type: ignore[no-untyped-def]
    bench = Bench(target, conn)
    await bench.handshake(0)  # warm-up: first handshake loads and caches in both processes
    pairs = []
    people: list[Participant] = []
    try:
        for k in sorted({1, args.concurrency}):
            anchor = await bench.timed(
                f"TLS handshake, {k} at a time", args.handshakes, k, bench.handshake
            )
            with_options = await bench.timed(
                f"TLS handshake + OPTIONS, {k} at a time",
                args.handshakes,
                k,
                bench.handshake_options,
            )
            established = await bench.options_phase(args.handshakes, k)
            joins, new = await bench.conference(args.joins, k)
            people += new
            for p in (anchor, with_options, established, joins):
                show(p)
            pairs.append((joins, anchor))
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)
    return pairs


def show(p: Phase) -> None:
    print(
        f"  {p.label:<36}{len(p.latencies):>5}{p.rate:>9.1f}/s{pct(p.latencies, 50):>9.1f}"
        f"{pct(p.latencies, 99):>9.1f}{p.suite_cpu:>8.2f}{p.ref_cpu:>8.2f}"
    )
    for name, values in p.parts.items():
        print(f"    {name:<42}{'':>10}{pct(values, 50):>9.1f}{pct(values, 99):>9.1f}")
    if p.note:
        print(f"    ({p.note})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--joins", type=int, default=100, help="joins per conference (default 100)")
    parser.add_argument(
        "--concurrency", "-k", type=int, default=8, help="concurrent joiners (default 8)"
    )
    parser.add_argument(
        "--handshakes", type=int, default=500, help="operations per anchor phase (default 500)"
    )
    args = parser.parse_args()
    k = max(1, args.concurrency)
    users = [f"j{n:04d}" for n in range(2 * (args.joins + 1) + (2 if k != 1 else 0))]
    with tempfile.TemporaryDirectory(prefix="confsec-join-") as tmp:
        with reference_in_child(reference_process, tmp, users) as (parent, target, pid):
            print(f"reference pid {pid} on {target.host}:{target.port} (SIP over mutual TLS)")
            print(
                f"  {'phase':<36}{'n':>5}{'rate':>11}{'p50 ms':>9}{'p99 ms':>9}"
                f"{'cpu s':>8}{'ref s':>8}"
            )
            pairs = asyncio.run(run(args, target, parent))
    print()
    print("ratio (anchor: TLS handshakes at the same concurrency, same run)")
    for joins, anchor in pairs:
        print(
            f"  {joins.label:<24} handshakes/s / joins/s = {anchor.rate / joins.rate:6.1f}   "
            f"p50 join / p50 handshake = "
            f"{pct(joins.latencies, 50) / pct(anchor.latencies, 50):6.1f}"
        )


if __name__ == "__main__":
    main()
