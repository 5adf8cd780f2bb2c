"""Leaving and vanishing as the suite drives them, watched from the departed side too (R6, R7).

The rekeying judgements (confsec.behaviour.rekeying) look at the participants who stay. A leave
has a side only the leaver sees: after its BYE nothing of the conference may reach it any more,
and nothing it still sends (a client that ignores its own BYE, or whoever holds a copy of its
keys) may reach the others. So the leaver's legs stay open (`ConferenceRun.leave(watch=True)`)
and go on sending under its old keys, and after a grace for media in flight both directions are
watched for a stated window. The controls are taken just before the BYE: the leaver's legs were
receiving the conference, and the others heard the leaver.

A participant that vanishes (its TLS connection closes and its media stops, with no BYE) is
watched the same way once the time its target declares for noticing a lost participant has
passed (`Capabilities.lost_participant_timeout_s`): nothing may reach its legs from then on, and
the others must have been rekeyed as after a leave (`Membership.vanish`, judged by rekeying.py).

A leave also ends the leaver's subscription to the conference state (RFC 6665 4.1.3, RFC 4575):
`watch_subscription_end` waits for the NOTIFY that terminates it and listens on past a later
change for anything more. The verdicts are in confsec.behaviour.leaving_checks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from confsec.behaviour.events import EventRun, Notification, SubscribeOutcome, partial_shows
from confsec.behaviour.membership import PACKETS_PER_SECOND, Membership, MembershipEvent
from confsec.behaviour.participant import COMMON, Participant
from confsec.behaviour.rekeying import authenticating
from confsec.codec.sip import Request
from confsec.errors import ConfsecError, Inconclusive, PeerTimeout
from confsec.runtime.punctuality import Lateness

IN_FLIGHT_GRACE_S = 0.5
"""Media the target sent before it acted on the BYE (or before its declared time to notice a
vanish ran out) may still be on its way: what arrives within this long after that is not
judged. Anything later is judged against the suite's own lateness (`judge_late`)."""
AUDIO_KINDS = ("audio", COMMON)
"""The legs that carry audio a listener can hear a tone in."""


@dataclass
class Departure:
    """One leave or vanish with its departed legs kept open, and what the watch saw."""

    name: str
    event: MembershipEvent
    received_before: dict[str, int]
    """Packets each of the departed participant's legs had received before it left (the
    control: the legs did get the conference)."""
    heard_before: dict[str, bool]
    """For each participant that stays: whether it heard the departed one's tone just before
    (the control of "nothing it sends reaches the others")."""
    window_start: float
    """Loop time from which nothing may reach the departed legs, nor come from them."""
    window_end: float = 0.0
    """When the watch ended (0: not watched yet)."""
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    """Per departed leg: arrival times of what reached it from `window_start` on."""
    opened_by_departed: int = 0
    """How many of those arrivals authenticate under a key the departed participant was given:
    media it can still decrypt."""
    sent_in_window: int = 0
    """Packets the departed participant sent during the watch (a leaver keeps sending)."""
    heard_in_window: dict[str, set[str]] = field(default_factory=dict)
    """For each participant that stays: whose tones it heard in the last second of the watch."""
    listener_packets: list[tuple[str, str, float, bytes]] = field(default_factory=list)
    """(listener, leg, arrival, datagram) received by those who stay during the watch."""
    short: list[str] = field(default_factory=list)
    """Legs of those who stay that fell short of the window's media."""
    lateness: Lateness | None = None
    """The suite's own lateness from the event to the end of the watch."""

    @property
    def watched_s(self) -> float:
        return max(0.0, self.window_end - self.window_start)


class Leaving:
    """Leaves and vanishes of one scenario whose departed legs are watched."""

    def __init__(self, membership: Membership):
        self.m = membership
        self.conf = membership.conf
        self.departures: dict[str, Departure] = {}

    def _run(self, coro, timeout: float, what: str):  # type: ignore[no-untyped-def]
        return self.conf.runtime.run(coro, timeout, what)

    # -- sync faces for the steps --------------------------------------------------------------

    def leave(self, name: str) -> Departure:
        """`name` leaves with BYE and keeps its legs open, sending under its old keys."""
        before = self._run(self._before(name), 10, "controls before the leave")
        event = self.m.leave(name, watch=True)
        return self._depart(name, event, before)

    def vanish(self, name: str) -> Departure:
        """`name` vanishes without a BYE; its legs stay open, silent (`@pics` guards this)."""
        before = self._run(self._before(name), 10, "controls before the vanish")
        event = self.m.vanish(name, watch=True)
        return self._depart(name, event, before)

    def departure(self, name: str) -> Departure:
        try:
            return self.departures[name]
        except KeyError:
            raise Inconclusive(f"{name} did not leave with its legs watched") from None

    def watch(self, name: str, seconds: float) -> Departure:
        """Wait out the grace, then watch the departed legs and those who stay for `seconds`
        of media (and at least that long)."""
        d = self.departure(name)
        wait = max(0.0, d.window_start - self.conf.runtime.punctuality.now())
        self.conf.count_window("departure_watch", wait + seconds)
        timeout = wait + seconds + self.conf.target.timeouts.media + 10
        self._run(self._watch(d, seconds), timeout, f"watching {name}'s legs")
        return d

    # -- async work ----------------------------------------------------------------------------

    def _depart(
        self, name: str, event: MembershipEvent, before: tuple[dict[str, int], dict[str, bool]]
    ) -> Departure:
        received, heard = before
        d = Departure(name, event, received, heard, event.done + IN_FLIGHT_GRACE_S)
        self.departures[name] = d
        return d

    async def _before(self, name: str) -> tuple[dict[str, int], dict[str, bool]]:
        """The controls, read on the loop while media flows."""
        p = self.conf.participant(name)
        received = {k: leg.received for k, leg in p.legs.items() if leg.remote is not None}
        heard = {
            q.name: _hears(q, p.tone_hz) for q in self.m.remaining() if q.name != name and q.legs
        }
        return received, heard

    async def _watch(self, d: Departure, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if (wait := d.window_start - loop.time()) > 0:
            await asyncio.sleep(wait)  # the grace for media in flight, a stated window
        departed = self.conf.participant(d.name)
        stayers = self.m.remaining()
        legs = [(p.name, k, leg) for p in stayers for k, leg in p.legs.items() if leg.remote]
        for _, _, leg in legs:
            leg.reset_audio()  # what is heard afterwards is the window's
        sent = sum(leg.sent for leg in departed.legs.values())
        want = max(1, int(seconds * PACKETS_PER_SECOND))
        timeout = seconds + self.conf.target.timeouts.media
        results = await asyncio.gather(
            *(leg.wait_for_packets(leg.received + want, timeout) for _, _, leg in legs),
            return_exceptions=True,
        )
        for (who, kind, _), result in zip(legs, results, strict=True):
            if isinstance(result, ConfsecError):
                d.short.append(f"{who}'s {kind} leg: {result}")
            elif isinstance(result, BaseException):
                raise result  # a bug of the suite, not a quiet target
        if (left := d.window_start + seconds - loop.time()) > 0:
            await asyncio.sleep(left)  # the window is stated in seconds as well as in media
        d.window_end = loop.time()
        d.sent_in_window = sum(leg.sent for leg in departed.legs.values()) - sent
        d.heard_in_window = {p.name: _heard(p, self.conf.participants) for p in stayers}
        d.arrivals = {
            k: [t for t, _, _ in list(leg.recent or ()) if t >= d.window_start]
            for k, leg in departed.legs.items()
            if leg.remote is not None
        }
        d.opened_by_departed = _opened_by_own_keys(departed, d.window_start)
        d.listener_packets = [
            (who, kind, t, data)
            for who, kind, leg in legs
            for t, _, data in list(leg.recent or ())
            if t >= d.window_start
        ]
        d.lateness = self.conf.runtime.punctuality.during(d.event.started, d.window_end)


def _hears(p: Participant, tone_hz: float) -> bool:
    leg = p.legs.get("audio")
    return leg is not None and tone_hz in leg.heard_tones([tone_hz])


def _heard(p: Participant, everyone: dict[str, Participant]) -> set[str]:
    """Whose tones `p` hears in the last second on any leg carrying audio (its own mix-minus
    and the common stream)."""
    tones = {n: q.tone_hz for n, q in everyone.items()}
    heard: set[str] = set()
    for kind in AUDIO_KINDS:
        leg = p.legs.get(kind)
        if leg is not None:
            found = leg.heard_tones(list(tones.values()))
            heard |= {n for n, f in tones.items() if f in found}
    return heard


def _opened_by_own_keys(p: Participant, since: float) -> int:
    """How many packets that reached `p`'s legs since `since` authenticate under a key `p` was
    given for that leg (the admission's or a rekey's): media the departed could still read."""
    total = 0
    for kind, leg in p.legs.items():
        keys = list(dict.fromkeys(r.recv_keys[kind] for r in p.rekeys if kind in r.recv_keys))
        packets = [data for t, _, data in list(leg.recent or ()) if t >= since]
        if keys and packets:
            total += sum(authenticating(packets, keys).values())
    return total


# -- the subscription of a leaver (R7) ---------------------------------------------------------


@dataclass
class SubscriptionEnd:
    """What reached a leaver on the subscription it held before leaving."""

    sub: SubscribeOutcome
    left_at: float
    """Wall-clock time the leaver's BYE went out (the UA trace's clock)."""
    joined_at: float | None
    """Wall-clock time the later joiner's INVITE went out."""
    joiner_aor: str
    listened_until: float
    """Wall-clock time the suite stopped listening on the subscription."""
    control: str | None = None
    """Another subscriber that was notified of the join (the change did get notified)."""
    control_failure: str = ""


def watch_subscription_end(
    events: EventRun, name: str, joiner: str, seconds: float
) -> SubscriptionEnd:
    """Wait (up to the transaction deadline) for the NOTIFY that terminates `name`'s
    subscription, and for another subscriber to hear of `joiner`; then listen `seconds` past
    the later of that NOTIFY and `joiner`'s INVITE for anything more on the subscription."""
    sub = events.outcome(name)
    left_at = _bye_time(events, name)
    aor = events.aor(joiner)
    events.await_notifications(name, lambda ns: _terminated(ns, left_at) is not None)
    end = SubscriptionEnd(sub, left_at, events.join_time(joiner), aor, time.time())
    end.control, end.control_failure = _change_control(events, name, joiner, left_at)
    terminated = _terminated(sub.notifications(), left_at)
    start = max(terminated.time if terminated else time.time(), end.joined_at or left_at)
    end.listened_until = events.conf.runtime.run(
        _listen(sub, start + seconds), seconds + 10, f"listening on {name}'s subscription"
    )
    events.conf.count_window("notify_watch", max(0.0, end.listened_until - start))
    return end


def _bye_time(events: EventRun, name: str) -> float:
    p = events.conf.participant(name)
    for entry in reversed(p.ua.trace):
        msg = entry.message
        if entry.direction == "sent" and isinstance(msg, Request) and msg.method == "BYE":
            return entry.time
    raise Inconclusive(f"{name} sent no BYE: it did not leave")


def subscription_state(n: Notification) -> str:
    return (n.request.headers.get("Subscription-State") or "").strip().lower()


def _terminated(notes: list[Notification], after: float) -> Notification | None:
    """The first NOTIFY after `after` whose Subscription-State is terminated."""
    return next(
        (n for n in notes if n.time > after and subscription_state(n).startswith("terminated")),
        None,
    )


def _change_control(
    events: EventRun, name: str, joiner: str, since: float
) -> tuple[str | None, str]:
    """(another subscriber notified of `joiner`'s join after `since`, or None; why none was)."""
    aor = events.aor(joiner)
    why = f"no other subscription was made in this scenario to show {joiner}'s join is notified"
    for other in events.others(name):
        notes, _ = events.await_change(other.subscriber, joiner)
        if partial_shows(notes, aor, since):
            return other.subscriber, ""
        why = f"{other.subscriber}, a participant, was not notified of {joiner}'s join either"
    return None, why


async def _listen(sub: SubscribeOutcome, until: float) -> float:
    """Listen on `sub`'s dialog until the wall-clock time `until`; returns when it stopped."""
    while (left := until - time.time()) > 0:
        mark = len(sub.ua.trace)
        try:
            await sub.ua.wait_for(
                lambda e: (
                    isinstance(e.message, Request)
                    and e.message.method == "NOTIFY"
                    and e.message.call_id == sub.call_id
                ),
                left,
                since=mark,
            )
        except PeerTimeout:
            break
    return time.time()
