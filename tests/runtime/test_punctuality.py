"""The suite's own punctuality, and the deadline verdicts that must ask for it before failing.

The monitor runs on a real event loop here; the verdict rules are checked on hand-built input:
late beyond the suite's own lateness is a fail, late within it is inconclusive, and a bound the
capability statement does not declare is not judged at all.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

from confsec.behaviour import rekeying
from confsec.behaviour.membership import MembershipEvent
from confsec.errors import Inconclusive, NonConformance, NotApplicable
from confsec.runtime.punctuality import Lateness, ProcessClock, Punctuality, judge_late
from confsec.target.model import Capabilities


def test_a_stalled_loop_shows_as_lag_inside_its_window() -> None:
    async def main() -> tuple[Lateness, Lateness]:
        loop = asyncio.get_running_loop()
        p = Punctuality(loop, beat_s=0.01)
        p.start()
        await asyncio.sleep(0.05)
        t0 = loop.time()
        time.sleep(0.3)  # the stall: nothing on this loop runs for 300 ms
        await asyncio.sleep(0.05)
        during = p.during(t0)
        before = p.during(t0 - 0.05, t0 - 0.01)
        p.stop()
        return during, before

    during, before = asyncio.run(main())
    assert during.loop_lag_s >= 0.25
    assert during.slack_s >= during.loop_lag_s
    assert "ran up to" in during.describe()
    assert before.loop_lag_s < during.loop_lag_s  # the stall is not charged to the window before


def test_a_stall_still_in_progress_counts() -> None:
    """Asked from another thread while the loop is stuck, the overdue beat is the lag."""

    async def main() -> Lateness:
        loop = asyncio.get_running_loop()
        p = Punctuality(loop, beat_s=0.01)
        p.start()
        await asyncio.sleep(0.05)
        t0 = loop.time()
        time.sleep(0.2)
        lateness = p.during(t0)  # no beat has run since the stall began
        p.stop()
        return lateness

    assert asyncio.run(main()).loop_lag_s >= 0.15


def test_process_clock_reads_cpu_and_run_queue_wait() -> None:
    clock = ProcessClock(os.getpid())
    before = clock.cpu_s()
    if before is None:
        pytest.skip("no /proc on this system")
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    after = clock.cpu_s()
    assert after is not None and after - before >= 0.05
    wait = clock.wait_s()
    assert wait is None or wait >= 0.0
    assert ProcessClock(2**22 + 12345).cpu_s() is None  # no such process: unknown, not zero


def test_judge_late_fails_only_beyond_the_suites_own_lateness() -> None:
    punctual = Lateness(window_s=3.0, loop_lag_s=0.02)
    starved = Lateness(window_s=3.0, loop_lag_s=0.4, reference_wait_s=0.3)
    assert starved.slack_s == pytest.approx(0.7)
    assert judge_late(0.5, punctual) is None
    reason = judge_late(0.5, starved)
    assert reason is not None
    assert "missed by 500 ms" in reason and "400 ms late" in reason
    assert "reference waited 300 ms" in reason
    assert judge_late(0.8, starved) is None  # later than any starvation explains: a finding


# -- R6 completeness and O2 latency on hand-built memberships -----------------------------------


class FixedPunctuality:
    def __init__(self, lateness: Lateness):
        self.lateness = lateness

    def during(self, t0: float, t1: float | None = None) -> Lateness:
        return self.lateness


def membership(lateness: Lateness, caps: Capabilities, **extra: object) -> SimpleNamespace:
    """bob, in the conference since before carol left, whose audio got no new key."""
    bob = SimpleNamespace(
        name="bob",
        rekeys=[SimpleNamespace(at=0.0, changed=("audio",), recv_keys={})],
        legs={"audio": SimpleNamespace(remote=("127.0.0.1", 40000))},
    )
    event = MembershipEvent("leave", "carol", started=1.0, done=1.1, settled=4.1)
    conf = SimpleNamespace(
        runtime=SimpleNamespace(punctuality=FixedPunctuality(lateness)),
        target=SimpleNamespace(capabilities=caps),
    )
    m = SimpleNamespace(
        events=[event],
        event=lambda kind, name: next(e for e in [event] if (e.kind, e.name) == (kind, name)),
        remaining=lambda: [bob],
        conf=conf,
        lateness=None,
        latencies={},
        latency_event=None,
    )
    for k, v in extra.items():
        setattr(m, k, v)
    return m


def test_a_stream_never_rekeyed_fails_when_the_suite_was_on_time() -> None:
    m = membership(Lateness(3.0, 0.03), Capabilities())
    with pytest.raises(NonConformance, match="bob's audio stream was not rekeyed"):
        rekeying.rekeyed_completely(m, "leave", "carol")  # type: ignore[arg-type]
    assert m.lateness is not None and m.lateness.loop_lag_s == 0.03  # kept for the evidence


def test_a_stream_not_seen_rekeyed_while_the_suite_starved_is_inconclusive() -> None:
    """The suite watched until 1 s past the declared 2 s deadline (settled 4.1, done 1.1), but
    its loop lagged 1.4 s: it cannot show the target had its declared time."""
    m = membership(Lateness(3.0, 1.4), Capabilities())
    with pytest.raises(Inconclusive, match="ran up to 1400 ms late"):
        rekeying.rekeyed_completely(m, "leave", "carol")  # type: ignore[arg-type]
    # The same lag, but the suite went on watching long enough to make up for it: a fail.
    m = membership(Lateness(5.0, 1.4), Capabilities())
    m.events[0].settled = 1.1 + 2.0 + 1.5
    with pytest.raises(NonConformance, match="bob's audio stream was not rekeyed"):
        rekeying.rekeyed_completely(m, "leave", "carol")  # type: ignore[arg-type]


def test_a_reinvite_that_left_a_stream_unrekeyed_fails_whatever_the_lag() -> None:
    """bob got a re-INVITE after the leave, but his audio kept its key: the target acted, so
    no lateness of the suite explains it (rekey-partial was inconclusive before this rule)."""
    m = membership(Lateness(3.0, 1.4), Capabilities())
    bob = m.remaining()[0]
    bob.rekeys.append(SimpleNamespace(at=1.05, changed=("common",), recv_keys={}))
    m.events[0].settled = 1.2  # the settle ended early: everyone had a re-INVITE
    with pytest.raises(NonConformance, match="bob's audio stream was not rekeyed"):
        rekeying.rekeyed_completely(m, "leave", "carol")  # type: ignore[arg-type]


def _latency(latency: float, lag: float, bound: float | None) -> SimpleNamespace:
    caps = replace(Capabilities(), rekey_latency_bound_s=bound)
    event = MembershipEvent("leave", "carol", started=1.0, done=1.1, settled=4.1)
    return membership(Lateness(latency, lag), caps, latencies={"bob": latency}, latency_event=event)


def test_rekey_latency_is_judged_against_the_declared_bound_only() -> None:
    rekeying.rekey_within_declared(_latency(0.9, 0.0, 1.0))  # type: ignore[arg-type]
    with pytest.raises(NonConformance, match="over the declared 1 s: bob 1500 ms"):
        rekeying.rekey_within_declared(_latency(1.5, 0.05, 1.0))  # type: ignore[arg-type]
    with pytest.raises(Inconclusive, match="less than the suite's own lateness"):
        rekeying.rekey_within_declared(_latency(1.2, 0.5, 1.0))  # type: ignore[arg-type]
    with pytest.raises(NotApplicable, match="declares no rekey latency bound"):
        rekeying.rekey_within_declared(_latency(5.0, 0.0, None))  # type: ignore[arg-type]
