"""The conference event package checks (R7, O4, O7), judged on what `EventRun` observed.

Each check returns the `Evidence` it judged, since a pass must rest on an observation. A change
must arrive as a partial state that shows the joiner; "no state given" is judged only after
listening for a stated window, and only beside a positive control (a participant's subscription
in the same scenario that got the state).
"""

from __future__ import annotations

from collections.abc import Sequence

from confsec.behaviour import checks
from confsec.behaviour.events import (
    REFUSAL_WATCH_S,
    REFUSALS,
    Notification,
    SubscribeOutcome,
    after_join,
    shows,
)
from confsec.behaviour.outcomes import CallOutcome
from confsec.codec.conference_info import (
    ConferenceInfo,
)
from confsec.errors import (
    Inconclusive,
    NonConformance,
)
from confsec.observed import Evidence
from confsec.target.model import Account


def _accepted(sub: SubscribeOutcome) -> None:
    if sub.error is not None:
        raise Inconclusive(f"{sub.subscriber}'s SUBSCRIBE: {sub.error}")
    if sub.status is None or not 200 <= sub.status < 300:
        raise Inconclusive(
            f"{sub.subscriber}, a participant, could not subscribe ({sub.status} {sub.reason}): "
            "the event package cannot be judged"
        )


def full_state_received(sub: SubscribeOutcome, notes: list[Notification]) -> Evidence:
    """RFC 4575 4.2: the first NOTIFY carries the full state as valid conference-info."""
    _accepted(sub)
    if not notes:
        raise Inconclusive(f"{sub.subscriber} received no NOTIFY before the deadline")
    bad = [n.error for n in notes if n.error]
    if bad:
        raise NonConformance(f"a NOTIFY to {sub.subscriber} carries invalid state: {bad[0]}")
    full = [n for n in notes if n.info is not None and n.info.state == "full"]
    if not full:
        raise NonConformance(f"no NOTIFY to {sub.subscriber} carried the full state")
    return Evidence.of(notifies=len(notes), full_states_validated=len(full))


def notifies_only_over_tls(sub: SubscribeOutcome, notes: list[Notification]) -> Evidence:
    """R7: every NOTIFY travelled inside TLS, whatever the subscriber's Contact said."""
    _accepted(sub)
    if not notes:
        raise Inconclusive(f"{sub.subscriber} received no NOTIFY: nothing to judge")
    plain = [n for n in notes if not n.flow.secure]
    if plain:
        n = plain[0]
        what = "with conference state" if n.info is not None else "(no body)"
        raise NonConformance(
            f"{len(plain)} of {len(notes)} NOTIFYs to {sub.subscriber} travelled over "
            f"{n.flow.transport.upper()} in the clear {what}, from {n.flow.remote[0]}:"
            f"{n.flow.remote[1]}"
        )
    return Evidence.of(notifies_over_tls=len(notes), notifies_in_the_clear=0)


def _control_failure(controls: Sequence[SubscribeOutcome]) -> tuple[str | None, str]:
    """(the subscriber that stands as the positive control, or None; why none does)."""
    why = "no other subscription was made in this scenario"
    for c in controls:
        try:
            full_state_received(c, c.notifications())
        except (NonConformance, Inconclusive) as exc:
            why = str(exc)
            continue
        return c.subscriber, ""
    return None, why


def no_state_given(
    sub: SubscribeOutcome,
    controls: Sequence[SubscribeOutcome] = (),
    window_s: float = REFUSAL_WATCH_S,
) -> Evidence:
    """R7/O4: a SUBSCRIBE that is not authenticated and authorised yields no state at all.

    Any state that reached the subscriber, on its dialog or (its UA being its own) any other, is
    a finding, as is an accepted SUBSCRIBE. "No state" is judged only after the suite listened
    `window_s` for a late NOTIFY (`EventRun.listen`), and only beside a positive control: a
    participant's subscription in the same scenario received the full state, so the service
    does send state to a legitimate subscriber and its refusal here means something.
    """
    who = sub.subscriber
    if sub.error is not None:
        raise Inconclusive(f"{who}'s SUBSCRIBE: {sub.error}")
    if sub.status is None:
        raise Inconclusive(f"{who}'s SUBSCRIBE got no final answer: nothing to judge")
    leaked = sub.state_notifications()
    if 200 <= sub.status < 300:
        raise NonConformance(
            f"{who}'s SUBSCRIBE was accepted ({sub.status} {sub.reason})"
            + (f" and {len(leaked)} NOTIFY carried the conference state" if leaked else "")
        )
    if leaked:
        raise NonConformance(
            f"{who} was refused ({sub.status} {sub.reason}) but {len(leaked)} NOTIFY still "
            "brought it the conference state"
        )
    if sub.response is not None and sub.response.body and b"conference-info" in sub.response.body:
        raise NonConformance(f"the {sub.status} refusal to {who} carries the state")
    if sub.listened_s < window_s:
        raise Inconclusive(
            f"the suite listened {sub.listened_s:.1f} s of the {window_s:g} s window for a late "
            f"NOTIFY to {who}: that no state came cannot be judged yet"
        )
    if sub.status not in REFUSALS:
        raise Inconclusive(
            f"{who} was refused with {sub.status} {sub.reason}, not 401 or 403: the "
            "refusal may have another cause"
        )
    control, why = _control_failure(controls)
    if control is None:
        raise Inconclusive(
            f"the positive control failed ({why}): unless a participant's subscription gets the "
            f"state, {who} getting none shows nothing"
        )
    return Evidence.of(
        f"{control}, a participant, received the full conference state",
        subscriptions_refused=1,
        ms_listened_for_a_late_NOTIFY=round(sub.listened_s * 1000),
        NOTIFYs_with_state=0,
    )


def notified_of(
    sub: SubscribeOutcome, notes: list[Notification], aor: str, since: float | None = None
) -> Evidence:
    """R7: the state follows a join as a partial state (RFC 4575 `state="partial"`) that
    lists `aor`, among the notifications after `since` (the joiner's INVITE; None: after the
    subscription's first NOTIFY). Notifications after the join that never show the joiner, or
    show it only in full states, are findings; no notification after the join is inconclusive.
    """
    _accepted(sub)
    who = sub.subscriber
    later = after_join(notes, since)
    if not later:
        raise Inconclusive(f"no NOTIFY reached {who} after {aor} joined: nothing to judge")
    bad = [n.error for n in later if n.error]
    if bad:
        raise NonConformance(f"a NOTIFY to {who} carries invalid state: {bad[0]}")
    showing = [n for n in later if shows(n, aor)]
    if not showing:
        raise NonConformance(
            f"{len(later)} NOTIFY reached {who} after {aor} joined, and none shows {aor}: the "
            "state did not follow the join"
        )
    partial = [n for n in showing if n.info is not None and n.info.state == "partial"]
    if not partial:
        raise NonConformance(
            f"{aor}'s join reached {who} only as full state ({len(showing)} NOTIFY), not as the "
            'partial state (RFC 4575 state="partial") that carries a change'
        )
    return Evidence.of(
        notifies_after_the_join=len(later), partial_states_showing_the_joiner=len(partial)
    )


def spoofed_join_settled(outcome: CallOutcome | None, name: str, claimed: str) -> Evidence:
    """O7: a join whose From claims another user is either refused (a 4xx: the service will
    not take a claimed identity, which is compliant) or admitted with SRTP, and then the
    conference state must show the joiner as who it authenticated as."""
    if outcome is None or outcome.status is None:
        why = outcome.error if outcome is not None else "no request was sent"
        raise Inconclusive(f"{name}'s join claiming to be {claimed} got no final answer: {why}")
    if 400 <= outcome.status < 500:
        return Evidence.of(
            f"{name}'s join claiming to be {claimed} refused with {outcome.status}", refusals=1
        )
    return checks.admitted_secure(outcome, name)


def identities_authenticated(
    view: ConferenceInfo | None,
    admitted: dict[str, Account],
    accounts: dict[str, Account],
    domain: str,
) -> Evidence:
    """R2/O7: each user appears under the identity it authenticated as, and no one else's.

    `admitted` are the participants the suite put in the conference (name -> account it logged
    in with). A user entity no one authenticated as, a participant missing under its own
    identity, two users under one entity, or a display name of another account, are findings.
    """
    if view is None:
        raise Inconclusive("no conference state was received")
    expected = {a.aor(domain).lower(): n for n, a in admitted.items()}
    shown = [u for u in view.users if u.state != "deleted"]
    entities = [u.entity.lower() for u in shown]
    problems = []
    for aor, name in expected.items():
        if aor not in entities:
            problems.append(f"{name} is not listed under its authenticated identity {aor}")
    for entity in sorted(set(entities)):
        if entity not in expected:
            problems.append(f"the state lists {entity}, which no admitted participant is")
        elif entities.count(entity) > 1:
            problems.append(f"{entities.count(entity)} users are shown as {entity}")
    for u in shown:
        owner = expected.get(u.entity.lower())
        if not u.display_text or owner is None:
            continue
        others = {(a.display_name or n).lower(): n for n, a in accounts.items() if n != owner} | {
            n.lower(): n for n in accounts if n != owner
        }
        claimed = others.get(u.display_text.strip().lower())
        if claimed is not None:
            problems.append(f"{owner} is shown with {claimed}'s name {u.display_text!r}")
    if problems:
        raise NonConformance("; ".join(problems))
    return Evidence.of(
        users_shown=len(shown), participants_found_under_their_identity=len(expected)
    )
