"""How punctual the suite itself was: what a verdict resting on a deadline must show first.

"The target did not rekey within T" is only a finding if the suite was listening on time for
the whole of T. On a busy build agent the suite's event loop can run late, and the embedded
reference can wait for a CPU, and then a compliant target looks slow. So the suite measures its
own lateness while it runs, and a deadline check asks for it before it fails anyone:

* **event-loop lag**: a heartbeat scheduled at absolute times on the suite's loop records how
  late each beat ran (`loop.call_at`, no sleeping loop). The worst lag inside a check's window
  bounds how late the suite saw anything in it.
* **CPU time against wall time**, and the time spent **runnable but waiting for a CPU**
  (Linux schedstat), for the suite's own process and for the embedded reference's when it runs
  in a process of its own. A waiting reference is the machine's doing, not a finding.

`Punctuality.during(t0, t1)` sums this up for one window as a `Lateness`; its `slack_s` is how
much of a missed deadline the suite cannot vouch for. Checks use `judge_late()`: late beyond the
slack is a fail, late within it is inconclusive with a reason that names what was measured.
"""

from __future__ import annotations

import asyncio
import os
import threading
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Lateness", "ProcessClock", "Punctuality", "judge_late"]

BEAT_S = 0.02
"""Heartbeat period of the loop-lag monitor."""
SAMPLE_EVERY = 5
"""Read the process clocks every this many beats (every 100 ms)."""
HISTORY = 60_000
"""Beats kept: 20 minutes at 50 per second, far longer than any check's window."""
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcessClock:
    """CPU seconds and run-queue wait of one process (all its threads), from /proc.

    Where /proc is not there (not Linux) both read as None and the reports say so.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self._stat = Path(f"/proc/{pid}/stat")
        self._tasks = Path(f"/proc/{pid}/task")

    def cpu_s(self) -> float | None:
        try:
            fields = self._stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def wait_s(self) -> float | None:
        """Seconds this process's threads were runnable but not running (schedstat field 2)."""
        total = 0
        try:
            tasks = list(self._tasks.iterdir())
        except OSError:
            return None
        seen = False
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[1])
                seen = True
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended while we read
        return total / 1e9 if seen else None


@dataclass(frozen=True)
class Lateness:
    """The suite's own lateness over one window of a check."""

    window_s: float
    loop_lag_s: float
    """Worst lateness of the suite's event loop inside the window (0 when it kept time)."""
    suite_cpu_share: float | None = None
    """CPU seconds of the suite's process per wall second in the window (1.0 = one core)."""
    suite_wait_s: float | None = None
    """Seconds the suite's threads waited for a CPU in the window, all threads added up."""
    reference_cpu_share: float | None = None
    reference_wait_s: float | None = None
    """The same for the embedded reference in its own process (None for another target)."""

    @property
    def slack_s(self) -> float:
        """How much lateness the suite cannot vouch for: its own loop's worst lag, and the
        time the embedded reference waited for a CPU (a loaded machine, not a finding)."""
        return self.loop_lag_s + (self.reference_wait_s or 0.0)

    def describe(self) -> str:
        parts = [f"the suite's event loop ran up to {self.loop_lag_s * 1000:.0f} ms late"]
        for who, wait, share in (
            ("its threads", self.suite_wait_s, self.suite_cpu_share),
            ("the embedded reference", self.reference_wait_s, self.reference_cpu_share),
        ):
            if wait is not None:
                cpu = f" (CPU {share:.0%} of wall time)" if share is not None else ""
                parts.append(f"{who} waited {wait * 1000:.0f} ms for a CPU{cpu}")
        return f"in those {self.window_s:.1f} s " + ", ".join(parts)

    def numbers(self) -> dict[str, float]:
        """For the scenario's measured numbers (evidence.json, Allure, verdicts.json)."""
        out = {"window_s": round(self.window_s, 3), "loop_lag_ms": round(self.loop_lag_s * 1000, 1)}
        for name, value in (
            ("suite_wait_ms", self.suite_wait_s),
            ("reference_wait_ms", self.reference_wait_s),
        ):
            if value is not None:
                out[name] = round(value * 1000, 1)
        for name, share in (
            ("suite_cpu_share", self.suite_cpu_share),
            ("reference_cpu_share", self.reference_cpu_share),
        ):
            if share is not None:
                out[name] = round(share, 3)
        return out


class Punctuality:
    """The heartbeat and process clocks of one event loop (the suite's)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, beat_s: float = BEAT_S):
        self.loop = loop
        self.beat_s = beat_s
        self._lock = threading.Lock()
        self._times: deque[float] = deque(maxlen=HISTORY)
        self._lags: deque[float] = deque(maxlen=HISTORY)
        self._samples: deque[tuple[float, float | None, float | None, float | None, float | None]]
        self._samples = deque(maxlen=HISTORY // SAMPLE_EVERY)
        self._suite = ProcessClock(os.getpid())
        self._reference: ProcessClock | None = None
        self._due = 0.0
        self._beats = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Arm the heartbeat; safe from any thread."""
        self.loop.call_soon_threadsafe(self._arm)

    def watch_reference(self, pid: int | None) -> None:
        """Also read the embedded reference's process (None: the target is not ours)."""
        self._reference = ProcessClock(pid) if pid is not None else None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        self._due = self.loop.time() + self.beat_s
        self._sample(self.loop.time())
        self._handle = self.loop.call_at(self._due, self._beat)

    def _beat(self) -> None:
        now = self.loop.time()
        lag = max(0.0, now - self._due)
        with self._lock:
            self._times.append(now)
            self._lags.append(lag)
        self._beats += 1
        if self._beats % SAMPLE_EVERY == 0:
            self._sample(now)
        # The next beat is due one period after this one was: a stall is one long lag, not a
        # burst of catch-up beats.
        self._due = max(self._due + self.beat_s, now + self.beat_s / 2)
        self._handle = self.loop.call_at(self._due, self._beat)

    def _sample(self, now: float) -> None:
        ref = self._reference
        row = (
            now,
            self._suite.cpu_s(),
            self._suite.wait_s(),
            ref.cpu_s() if ref else None,
            ref.wait_s() if ref else None,
        )
        with self._lock:
            self._samples.append(row)

    def now(self) -> float:
        return self.loop.time()

    def during(self, t0: float, t1: float | None = None) -> Lateness:
        """The suite's lateness between loop times `t0` and `t1` (default: now).

        A beat that is overdue right now counts too: a stall still in progress is the worst
        lag of all, and would otherwise show only once it ended.
        """
        now = self.loop.time()
        end = now if t1 is None else t1
        if t1 is None:
            self._sample(now)
        with self._lock:
            times = list(self._times)
            lags = list(self._lags)
            samples = list(self._samples)
        i = bisect_left(times, t0)
        # A beat that ran after the window's end but was due inside it was late inside it.
        worst = max(
            (lag for t, lag in zip(times[i:], lags[i:], strict=True) if t - lag <= end),
            default=0.0,
        )
        if t1 is None and self._handle is not None:
            worst = max(worst, now - self._due)
        first = _at_or_before(samples, t0) if samples else None
        last = _at_or_before(samples, end) if samples else None
        return Lateness(
            window_s=max(0.0, end - t0),
            loop_lag_s=max(0.0, worst),
            suite_cpu_share=_share(first, last, 1),
            suite_wait_s=_delta(first, last, 2),
            reference_cpu_share=_share(first, last, 3),
            reference_wait_s=_delta(first, last, 4),
        )


def _at_or_before(samples: list[tuple], t: float) -> tuple:
    times = [s[0] for s in samples]
    i = bisect_left(times, t)
    if i < len(samples) and times[i] == t:
        return samples[i]
    return samples[max(0, i - 1)]


def _delta(a: tuple | None, b: tuple | None, k: int) -> float | None:
    if a is None or b is None or a[k] is None or b[k] is None:
        return None
    return max(0.0, b[k] - a[k])


def _share(a: tuple | None, b: tuple | None, k: int) -> float | None:
    d = _delta(a, b, k)
    if d is None or a is None or b is None or b[0] <= a[0]:
        return None
    return d / (b[0] - a[0])


def judge_late(late_by_s: float, lateness: Lateness) -> str | None:
    """None when `late_by_s` (how far past its deadline the target was seen) exceeds what the
    suite's own lateness could explain: a fail may stand. Otherwise the reason the verdict must
    be inconclusive instead, naming what was measured."""
    if late_by_s > lateness.slack_s:
        return None
    return (
        f"the deadline was missed by {late_by_s * 1000:.0f} ms, but {lateness.describe()}: "
        "the suite cannot show it was on time itself, so this is not a finding"
    )
