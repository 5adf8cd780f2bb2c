"""Judgements of a leave or a vanish from the departed side (R6) and of a leaver's
subscription (R7), over what confsec.behaviour.leaving observed.

Each negative judgement rests on a positive control taken in the same scenario: the departed
legs received the conference before the leave; the others heard the leaver before it; the
others still hear each other in the watched window; the leaver's subscription carried the state
before, and another subscriber was told of the change the leaver must no longer hear of. A
packet that arrives late is a finding only when the suite's own lateness cannot explain it
(`judge_late`): the time the target had is the event, a grace for media in flight, and nothing
more.
"""

from __future__ import annotations

from confsec.behaviour.event_checks import full_state_received
from confsec.behaviour.events import shows
from confsec.behaviour.leaving import Departure, SubscriptionEnd, subscription_state
from confsec.behaviour.participant import Key
from confsec.behaviour.rekeying import authenticating
from confsec.errors import Inconclusive, NonConformance
from confsec.observed import Evidence
from confsec.runtime.punctuality import judge_late

HEARD_SECONDS = 1.0
"""The tones are judged on the last second of the watched window (`MediaLeg.heard_tones`)."""


def _watched(d: Departure) -> None:
    if d.window_end <= 0 or d.lateness is None:
        raise Inconclusive(f"{d.name}'s legs were not watched after the {d.event.kind}")


def _late(d: Departure, last: float, what: str) -> None:
    """Raise for `what`, seen at loop time `last` past the window's start: a fail, unless the
    suite's own lateness could explain it (then inconclusive, with the figures)."""
    assert d.lateness is not None
    excuse = judge_late(last - d.window_start, d.lateness)
    if excuse is None:
        raise NonConformance(what)
    raise Inconclusive(f"{what}; but {excuse}")


def _when(d: Departure) -> str:
    if d.event.kind == "vanish":
        declared = d.event.done - d.event.started
        return f"once the declared {declared:g} s to notice {d.name} had passed"
    return f"after {d.name}'s BYE was answered"


def nothing_reaches_departed(d: Departure) -> Evidence:
    """R6: from the departure on (plus the grace for media in flight), nothing reaches the
    departed participant's legs: the mixer stopped sending to it, common stream included.
    Control: those legs were receiving the conference before."""
    _watched(d)
    before = sum(d.received_before.values())
    if before == 0:
        raise Inconclusive(
            f"{d.name}'s legs received nothing before the {d.event.kind}: a silence afterwards "
            "would show nothing"
        )
    stray = {k: ts for k, ts in d.arrivals.items() if ts}
    if stray:
        count = sum(len(ts) for ts in stray.values())
        legs = ", ".join(f"{len(ts)} on its {k} leg" for k, ts in sorted(stray.items()))
        opened = (
            f", {d.opened_by_departed} of them under keys {d.name} held: it can still listen"
            if d.opened_by_departed
            else ""
        )
        last = max(t for ts in stray.values() for t in ts)
        _late(
            d,
            last,
            f"{count} packets reached {d.name} {_when(d)} (+{_grace(d)} s in flight): {legs}"
            + opened,
        )
    return Evidence.of(
        f"{d.name}'s legs received {before} packets before the {d.event.kind}",
        legs_watched=len(d.arrivals),
        ms_watched=round(d.watched_s * 1000),
        packets_after_the_departure=0,
    )


def departed_not_mixed(d: Departure, send_keys: list[Key]) -> Evidence:
    """R6: what the leaver goes on sending under its old keys after its BYE reaches nobody:
    no participant that stays hears its tone, on its own mix or the common stream, and no
    packet they receive authenticates under a key the leaver sent with (a forwarder passing its
    packets on). Controls: they heard the leaver just before it left, they hear each other in
    the watched window, and the leaver did send during it."""
    _watched(d)
    if not d.heard_before:
        raise Inconclusive(f"nobody stayed after {d.name} left: nobody to judge")
    deaf = sorted(n for n, heard in d.heard_before.items() if not heard)
    if deaf:
        raise Inconclusive(
            f"{', '.join(deaf)} did not hear {d.name} before it left: not hearing it afterwards "
            "would show nothing"
        )
    if d.sent_in_window == 0:
        raise Inconclusive(f"{d.name} sent nothing during the watch: there was nothing to keep out")
    if send_keys:
        opened = [(t, who) for who, _, t, data in d.listener_packets if _opens(data, send_keys)]
        if opened:
            who = sorted({w for _, w in opened})
            _late(
                d,
                max(t for t, _ in opened),
                f"{len(opened)} packets {', '.join(who)} received {_when(d)} authenticate under "
                f"keys {d.name} sent with: its media is forwarded after its leave",
            )
    hearing = sorted(n for n, heard in d.heard_in_window.items() if d.name in heard)
    if hearing:
        # The judged second is the window's last: the leaver's audio in it came that late.
        last = d.window_start + max(d.watched_s - HEARD_SECONDS, 0.0)
        _late(
            d,
            last,
            f"{', '.join(hearing)} still hear {d.name}'s tone {_when(d)}, in the last second "
            f"of a {d.watched_s:.1f} s window: what it sends after leaving is mixed",
        )
    alone = sorted(n for n, heard in d.heard_in_window.items() if not heard - {n, d.name})
    if alone or d.short:
        why = "; ".join([*(f"{n} heard no one else" for n in alone), *d.short])
        raise Inconclusive(f"the window after {d.name} left shows nothing: {why}")
    return Evidence.of(
        f"{', '.join(sorted(d.heard_before))} heard {d.name} before it left",
        f"they hear each other in the {d.watched_s:.1f} s after it",
        listeners=len(d.heard_in_window),
        packets_the_leaver_sent_after=d.sent_in_window,
        packets_tried_under_the_leavers_keys=len(d.listener_packets) if send_keys else 0,
        leaver_heard=0,
    )


def _opens(data: bytes, keys: list[Key]) -> bool:
    return bool(authenticating([data], keys))


def _grace(d: Departure) -> str:
    return f"{d.window_start - d.event.done:g}"


def subscription_ended(end: SubscriptionEnd, window_s: float) -> Evidence:
    """R7 (O4): the leaver's subscription ends with its membership. A NOTIFY with
    `Subscription-State: terminated` arrives (RFC 6665 4.1.3), nothing comes on it after that,
    and no NOTIFY after the BYE tells the leaver of someone who joined after it left. Judged
    after listening `window_s` past that join; controls: the subscription carried the full
    state before the leave, and another subscriber was told of the join."""
    sub, who = end.sub, end.sub.subscriber
    notes = sub.notifications()
    try:
        full_state_received(sub, [n for n in notes if n.time <= end.left_at])
    except (NonConformance, Inconclusive) as exc:
        raise Inconclusive(f"the control failed: before leaving, {exc}") from None
    after = [n for n in notes if n.time > end.left_at]
    leaks = [n for n in after if shows(n, end.joiner_aor)]
    if leaks:
        raise NonConformance(
            f"{len(leaks)} NOTIFY after {who}'s BYE brought {who} the conference state with "
            f"{end.joiner_aor}, who joined after {who} left: the subscription outlived the "
            "membership that authorised it"
        )
    final = next((n for n in after if subscription_state(n).startswith("terminated")), None)
    if final is None:
        states = ", ".join(subscription_state(n) or "(none)" for n in after) or "no NOTIFY at all"
        raise NonConformance(
            f"no NOTIFY terminated {who}'s subscription after its BYE (it got: {states}): "
            "the subscription outlives the membership that authorised it (RFC 6665 4.1.3)"
        )
    later = [n for n in after if n.time > final.time]
    if later:
        raise NonConformance(
            f"{len(later)} NOTIFY reached {who} on its subscription after the one that "
            f"terminated it ({subscription_state(final)})"
        )
    start = max(final.time, end.joined_at or end.left_at)
    if end.listened_until - start < window_s:
        raise Inconclusive(
            f"the suite listened {max(0.0, end.listened_until - start):.1f} s of the "
            f"{window_s:g} s window on {who}'s ended subscription: that nothing came is not "
            "shown yet"
        )
    if end.control is None:
        raise Inconclusive(f"the control failed: {end.control_failure}")
    return Evidence.of(
        f"{who}'s subscription carried the full state before the leave",
        f"{end.control}, still a participant, was notified of the join",
        NOTIFYs_terminating_it=1,
        ms_listened_after=round((end.listened_until - start) * 1000),
        NOTIFYs_after_it=0,
    )
