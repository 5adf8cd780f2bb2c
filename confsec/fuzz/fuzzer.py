"""Mutation fuzz of the embedded reference's network entry points while a conference runs.

The codec fuzz shows the parsers survive bytes in memory; this goes through the real sockets,
where a parser error meets transactions, dialogs, the floor server's bindings and the mixer's
per-leg state. Per entry point (`sip`, `sdp`, `bfcp`, `srtp`: one module each) it sends
mutations of real, valid inputs, with a liveness probe after every input (`harness`) and, after
each batch and at the end, a check that the others are still served (`service`). Tracebacks
logged on the reference's loop thread and calls of its loop's exception handler are counted as
reference exceptions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from confsec.codec.sip import Response
from confsec.fuzz.bfcp import BfcpEntry
from confsec.fuzz.harness import FuzzHarness
from confsec.fuzz.report import EntryStats, FuzzReport
from confsec.fuzz.sdp import SdpEntry
from confsec.fuzz.service import ServiceCheck
from confsec.fuzz.sip import SipEntry
from confsec.fuzz.srtp import SrtpEntry
from confsec.target.model import Target

ENTRY_POINTS = ("sip", "sdp", "bfcp", "srtp")


class EntryPoint(Protocol):
    """One entry point's fuzzer, over the shared harness."""

    name: str

    async def setup(self) -> None:
        """Prepare the seeds and sockets, once mallory is in the conference."""

    async def fuzz(self, stats: EntryStats, n: int) -> None:
        """Send `n` inputs, counting them in `stats`; stop early when the server is down."""

    async def close(self) -> None: ...


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
        self.report = FuzzReport({name: EntryStats(name) for name in ENTRY_POINTS})
        self.harness = FuzzHarness(
            workdir,
            self.report,
            defects=defects,
            seed=seed,
            hang_s=hang_s,
            grace_s=grace_s,
            out=out,
            media_s=media_s,
        )
        self.sip = SipEntry(self.harness)
        self.sdp = SdpEntry(self.harness)
        self.bfcp = BfcpEntry(self.harness)
        self.srtp = SrtpEntry(self.harness)
        self.entries: dict[str, EntryPoint] = {
            e.name: e for e in (self.sip, self.sdp, self.bfcp, self.srtp)
        }
        self._service = ServiceCheck(self.harness)

    @property
    def target(self) -> Target:
        return self.harness.target

    def check_service(self, after: str) -> list[str]:
        """Does the reference still serve the others? Returns what no longer works."""
        return self._service(after)

    def start(self) -> None:
        """Reference, conference (alice, bob with BFCP), mallory, the fuzz sockets; then a
        baseline service check, which must pass: a fuzz run on a broken setup proves nothing."""
        self.harness.start()
        self.harness.run(self._setup_entries(), 60, "setting up the fuzz conference")
        problems = self.check_service("setup")
        if problems:
            raise RuntimeError(f"the conference does not work before fuzzing: {problems}")

    async def _setup_entries(self) -> None:
        for entry in self.entries.values():
            await entry.setup()

    def close(self) -> None:
        h = self.harness
        if h.runtime is not None:
            # What may be half started is closed as far as it goes: the rest must still close.
            with contextlib.suppress(Exception):
                h.run(self._teardown(), 20, "closing the fuzz sockets")
        h.close()

    async def _teardown(self) -> None:
        for entry in self.entries.values():
            await entry.close()
        await self.harness.teardown()

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
                        f"exceptions {len(self.harness.log.exceptions)}"
                    )
        self.harness.collect_logs()
        return self.report

    def fuzz(self, entry: str, n: int) -> EntryStats:
        """`n` inputs to `entry`; the deadline allows every one of them a hang."""
        stats = self.report.entries[entry]
        h = self.harness
        started = time.perf_counter()
        try:
            h.run(self.entries[entry].fuzz(stats, n), n * (h.hang_s + 1) + 30, f"fuzzing {entry}")
        finally:
            stats.seconds += time.perf_counter() - started
            h.collect_logs()
        return stats

    # -- single inputs, for regression tests ---------------------------------------------------

    def offer(self, sdp: bytes) -> Response:
        """One authenticated INVITE to the conference with `sdp`; an admitted one is left
        again at once."""
        h = self.harness
        response = h.run(self.sdp.offer(sdp), h.hang_s * 3, "INVITE with a given offer")
        h.collect_logs()
        return response

    def send_sip(self, data: bytes) -> tuple[list[Response], bool]:
        """Write `data` on a fresh TLS connection to the focus; returns the responses that came
        back and whether the server closed the connection."""
        h = self.harness
        result = h.run(self.sip.send_raw(data), h.hang_s * 3, "sending raw SIP")
        h.collect_logs()
        return result

    def options_request(self) -> bytes:
        """A valid OPTIONS to the factory URI, as the liveness probe sends it."""
        assert self.harness.probe is not None
        return self.harness.options(self.harness.probe.flow)

    @property
    def sdp_seeds(self) -> list[bytes]:
        """The valid offers the SDP mutations start from (media pointed at a sink)."""
        return list(self.sdp.seeds)
