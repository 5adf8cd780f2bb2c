"""Joins, leaves and bursts of one scenario's conference, driven while every participant keeps
sending media, with the moment each event happened on the suite's clock.

The R6 judgements (confsec.behaviour.rekeying) read these events: a rekey is judged from when
its trigger was sent, and the wait for rekeys to settle is bounded by the target's declared
deadline plus a margin that absorbs the suite's own lateness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from confsec.behaviour.conference import PARTICIPANT_ORDER, ConferenceRun
from confsec.behaviour.participant import OfferSpec, Participant
from confsec.errors import Inconclusive, NotApplicable
from confsec.runtime.punctuality import Lateness

REKEY_MARGIN_S = 1.0
"""What the suite adds to the target's declared rekey deadline (`Capabilities.rekey_deadline_s`)
before it judges that a stream was not rekeyed: whether a rekey happened must not hang on how
punctual the suite was. A participant that got no re-INVITE at all is a finding only if the
suite's measured lateness fits in the time it watched past the declared deadline; otherwise the
judgement is inconclusive (see `rekeyed_completely` and confsec.runtime.punctuality)."""
STARVATION_GRACE_S = 5.0
"""The most the wait for rekeys is extended beyond the declared deadline and margin (plus the
deadline once more) to make up for time the suite or the reference spent starved."""
RECHECK_S = 0.25
"""How often a wait that is still short of rekeys re-reads the suite's lateness."""
PACKETS_PER_SECOND = 50


@dataclass
class MembershipEvent:
    kind: str
    """'join', 'leave' or 'vanish' (gone without a BYE: `ConferenceRun.vanish`)."""
    name: str
    started: float
    """Loop time the INVITE or BYE was sent (a vanish: when media stopped and TLS closed)."""
    done: float
    """Loop time its 200 OK arrived: the trigger of the rekey latency. For a vanish, which
    has no answer, the time by which the target declares it will have noticed
    (`Capabilities.lost_participant_timeout_s` after `started`): the rekey is judged from
    there exactly as after a leave."""
    settled: float = 0.0
    """When every remaining participant had its re-INVITE, or the deadline passed."""


EventJob = Callable[[], Awaitable["MembershipEvent"]]
"""Makes one membership event happen (on the loop) and says when it did."""


class Membership:
    """Joins, leaves and bursts of one scenario's conference, with continuous media."""

    def __init__(self, conf: ConferenceRun):
        self.conf = conf
        self.events: list[MembershipEvent] = []
        self.sending = False
        self.latencies: dict[str, float] = {}
        self.latency_event: MembershipEvent | None = None
        """The event the latencies count from."""
        self.lateness: Lateness | None = None
        """The suite's own lateness over the last completeness judgement's window."""

    # sync faces for the steps

    def create_of_size(self, size: int, spec: OfferSpec) -> list[str]:
        names = participant_names(size)
        self.conf.create(names[0], spec)
        if self.conf.conference_uri is None:
            raise Inconclusive("the conference could not be created")
        self._run(self._join_all(names[1:], spec), 30 + size, "joining the conference")
        missing = [n for n in names if self.conf.participants.get(n) is None or not _in(n, self)]
        if missing:
            raise Inconclusive(f"{', '.join(missing)} could not join: nothing to judge")
        return names

    def create_named(self, names: list[str], spec: OfferSpec) -> None:
        """`names[0]` creates the conference, the others join one after another, all with `spec`
        (the R6 conferences offer every stream the target claims)."""
        self.conf.create(names[0], spec)
        if self.conf.conference_uri is None:
            raise Inconclusive("the conference could not be created")
        for name in names[1:]:
            self.conf.join(name, spec)
        missing = [n for n in names if self.conf.participants.get(n) is None or not _in(n, self)]
        if missing:
            raise Inconclusive(f"{', '.join(missing)} could not join: nothing to judge")

    def start_media(self) -> None:
        self._run(self._start(), 10, "starting media")

    def join(self, name: str, spec: OfferSpec) -> MembershipEvent:
        return self.burst([name], [], spec)[0]

    def leave(self, name: str, *, watch: bool = False) -> MembershipEvent:
        """`name` leaves with BYE; with `watch` its legs stay open (`ConferenceRun.leave`)."""
        return self.burst([], [name], watch=watch)[0]

    def vanish(self, name: str, *, watch: bool = False) -> MembershipEvent:
        """`name` vanishes without a BYE (`ConferenceRun.vanish`); the rekeys are awaited as
        after a leave, from the time the target declares for noticing a lost participant."""
        return self.burst([], [], vanishes=[name], watch=watch)[0]

    def burst(
        self,
        joins: list[str],
        leaves: list[str],
        spec: OfferSpec | None = None,
        *,
        vanishes: Sequence[str] = (),
        watch: bool = False,
    ) -> list[MembershipEvent]:
        """Joins, leaves and vanishes all at once (one burst), then wait for the rekeys to
        settle. `watch`: the leavers' and vanished participants' legs stay open."""
        if self.conf.conference_uri is None:
            raise Inconclusive("no conference was created")
        t = self.conf.target
        timeout = t.timeouts.transaction * 2 + t.capabilities.rekey_deadline_s + REKEY_MARGIN_S + 10
        if vanishes:
            timeout += _noticing_time(self.conf)
        job = self._burst(joins, leaves, spec, vanishes=vanishes, watch=watch)
        return self._run(job, timeout, "joins and leaves")

    def receive(self, seconds: float) -> None:
        """Wait until every remaining participant's every leg got `seconds` more of media."""
        self.conf.count_window("media", seconds)
        self._run(self._receive(seconds), seconds + self.conf.target.timeouts.media + 5, "media")

    def remaining(self) -> list[Participant]:
        return [
            p for p in self.conf.participants.values() if _live(p) and p.name not in self.departed
        ]

    @property
    def departed(self) -> set[str]:
        """Who left or vanished (their legs may still be open, watched)."""
        return self.conf.departed

    def departure(self, name: str) -> MembershipEvent:
        """The last leave or vanish of `name`: either way it is no longer a member."""
        for e in reversed(self.events):
            if e.kind in ("leave", "vanish") and e.name == name:
                return e
        raise Inconclusive(f"{name} did not leave in this scenario")

    def last(self, kind: str) -> MembershipEvent:
        for e in reversed(self.events):
            if e.kind == kind:
                return e
        raise Inconclusive(f"no {kind} happened in this scenario")

    def event(self, kind: str, name: str) -> MembershipEvent:
        """The last `kind` ('join' or 'leave') of `name`."""
        for e in reversed(self.events):
            if e.kind == kind and e.name == name:
                return e
        raise Inconclusive(f"{name} did not {kind} in this scenario")

    def _run(self, coro, timeout: float, what: str):
        return self.conf.runtime.run(coro, timeout, what)

    # async work

    async def _join_all(self, names: list[str], spec: OfferSpec) -> None:
        await asyncio.gather(*(self.conf.join_async(n, spec) for n in names))

    async def _start(self) -> None:
        self.sending = True
        for p in self.remaining():
            p.start_media()

    async def _burst(
        self,
        joins: list[str],
        leaves: list[str],
        spec: OfferSpec | None,
        *,
        vanishes: Sequence[str] = (),
        watch: bool = False,
    ) -> list[MembershipEvent]:
        spec = spec or OfferSpec(common=True)
        jobs = [lambda n=n: self._one_join(n, spec) for n in joins]
        jobs += [lambda n=n: self._one_leave(n, watch) for n in leaves]
        jobs += [lambda n=n: self._one_vanish(n, watch) for n in vanishes]
        return await self._settled(jobs)

    def happen(self, jobs: Sequence[EventJob], what: str) -> list[MembershipEvent]:
        """Run membership events made elsewhere (a participant the service calls, one removed
        by REFER: confsec.behaviour.dialout) as one burst, and wait for the rekeys to settle
        exactly as after joins and leaves of the suite's own."""
        t = self.conf.target
        timeout = t.timeouts.transaction * 3 + t.capabilities.rekey_deadline_s + REKEY_MARGIN_S + 10
        return self._run(self._settled(jobs), timeout, what)

    async def _settled(self, jobs: Sequence[EventJob]) -> list[MembershipEvent]:
        loop = asyncio.get_running_loop()
        before = {p.name: len(p.rekeys) for p in self.remaining()}
        events = list(await asyncio.gather(*(job() for job in jobs)))
        # Settle: every participant that stays and was there before got a re-INVITE after the
        # last event, or the deadline passed (a target that does not rekey is judged on that).
        window = self.conf.target.capabilities.rekey_batching_window_s
        self.conf.count_window("rekey_batching", window)  # the target waits this long by design
        declared = self.conf.target.capabilities.rekey_deadline_s
        base = max(e.done for e in events) + window + declared + REKEY_MARGIN_S
        # Time the suite or the embedded reference spent starved is added to the wait (up to a
        # cap): the target gets its declared deadline in time it could actually use.
        cap = base + declared + STARVATION_GRACE_S
        punctuality = self.conf.runtime.punctuality
        first = min(e.started for e in events)
        # The focus may rekey before the suite has read the BYE's (or INVITE's) 200 OK, which
        # comes on another connection: keys count from when the request was sent.
        last = max(e.started for e in events)
        while True:
            deadline = min(cap, base + punctuality.during(first).slack_s)
            if (left := deadline - loop.time()) <= 0:
                break
            pending = [
                p
                for p in self.remaining()
                if p.name in before and not any(r.at >= last for r in p.rekeys[before[p.name] :])
            ]
            if not pending:
                break
            for p in pending:  # no await since `pending` was taken: no rekey slips through
                p.rekey_arrived.clear()
            waits = [asyncio.ensure_future(p.rekey_arrived.wait()) for p in pending]
            _, rest = await asyncio.wait(
                waits, timeout=min(left, RECHECK_S), return_when=asyncio.FIRST_COMPLETED
            )
            for w in rest:
                w.cancel()
        settled = loop.time()
        for e in events:
            e.settled = settled
        self.events += events
        return events

    async def _one_join(self, name: str, spec: OfferSpec) -> MembershipEvent:
        loop = asyncio.get_running_loop()
        started = loop.time()
        out = await self.conf.join_async(name, spec)
        done = loop.time()
        if not out.admitted:
            raise Inconclusive(f"{name} could not join: {out.status} {out.reason} {out.error}")
        if self.sending:
            self.conf.participants[name].start_media()
        return MembershipEvent("join", name, started, done)

    async def _one_leave(self, name: str, watch: bool = False) -> MembershipEvent:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.conf.leave_async(name, watch=watch)
        done = loop.time()
        return MembershipEvent("leave", name, started, done)

    async def _one_vanish(self, name: str, watch: bool = False) -> MembershipEvent:
        started = asyncio.get_running_loop().time()
        await self.conf.vanish_async(name, watch=watch)
        declared = _noticing_time(self.conf)
        self.conf.count_window("lost_participant", declared)  # the target's, by design
        return MembershipEvent("vanish", name, started, started + declared)

    async def _receive(self, seconds: float) -> None:
        want = max(1, int(seconds * PACKETS_PER_SECOND))
        legs = [leg for p in self.remaining() for leg in p.legs.values() if leg.remote]
        if not legs:
            raise Inconclusive("no participant remains to receive media")
        timeout = seconds + self.conf.target.timeouts.media
        await asyncio.gather(*(leg.wait_for_packets(leg.received + want, timeout) for leg in legs))


def _noticing_time(conf: ConferenceRun) -> float:
    """The seconds the target declares for noticing a participant that vanished."""
    declared = conf.target.capabilities.lost_participant_timeout_s
    if declared is None:
        raise NotApplicable(
            "the capability statement declares no way of noticing a lost participant"
        )
    return declared


def participant_names(size: int) -> list[str]:
    """alice, bob, ... heidi, then guest09, guest10...: accounts the reference provides."""
    names = list(PARTICIPANT_ORDER[:size])
    names += [f"guest{n:02d}" for n in range(len(names) + 1, size + 1)]
    return names


def _live(p: Participant) -> bool:
    return p.dialog is not None and not p.dialog.is_terminated and bool(p.legs)


def _in(name: str, m: Membership) -> bool:
    return _live(m.conf.participants[name])
