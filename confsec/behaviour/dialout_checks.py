"""Judgements of conferences that call their participants (R1, R2, R7 for dial-out and REFER).

Each check reads what reached the suite's parties (`IncomingCall`s, a REFER's answer and its
NOTIFYs) and never touches the network. Each returns `Evidence` for a pass, and raises
`Inconclusive` when nothing was observed that could show the behaviour either way.
"""

from __future__ import annotations

from confsec.behaviour.answering import IncomingCall, offer_problems
from confsec.behaviour.dialout import ReferOutcome
from confsec.behaviour.participant import Participant
from confsec.errors import Inconclusive, NonConformance
from confsec.observed import Evidence


def _calls_of(calls: dict[str, list[IncomingCall]]) -> list[IncomingCall]:
    found = [c for cs in calls.values() for c in cs]
    if not found:
        raise Inconclusive(f"the service called none of {', '.join(calls)}: nothing to judge")
    missing = [n for n, cs in calls.items() if not cs]
    if missing:
        raise Inconclusive(f"the service never called {', '.join(missing)}: nothing to judge")
    return found


def offers_srtp_only(calls: dict[str, list[IncomingCall]]) -> Evidence:
    """R1: every INVITE the service sent a participant came over TLS and offered SRTP only:
    every audio and video stream RTP/SAVP(F) with a usable key. SRTP as an option (RTP/AVP
    with a=crypto) is a finding: a plain answer would leave the stream unprotected."""
    found = _calls_of(calls)
    problems = []
    lines = 0
    for c in found:
        if not c.flow.secure:
            problems.append(f"the INVITE to {c.invitee} came over {c.flow.transport.upper()}")
        if c.offer is None:
            problems.append(f"the INVITE to {c.invitee} had no usable offer ({c.offer_error})")
            continue
        lines += sum(1 for m in c.offer.media if m.port != 0)
        problems += [f"the INVITE to {c.invitee}: {p}" for p in offer_problems(c.offer)]
    if problems:
        raise NonConformance("the service's offer was not SRTP only: " + "; ".join(problems))
    if not lines:
        raise Inconclusive("the service's offers held no media stream: nothing to judge")
    return Evidence.of(invites_judged=len(found), offered_streams_judged=lines)


def called_and_admitted(
    calls: dict[str, list[IncomingCall]], people: dict[str, Participant]
) -> Evidence:
    """The participants the service called are in the conference with SRTP on every stream
    they answered: their answer carried their own key, and they hold the service's."""
    found = _calls_of(calls)
    problems = []
    streams = 0
    for name, cs in calls.items():
        last = cs[-1]
        if not last.admitted:
            why = last.service_problem or last.reason
            problems.append(f"{name} refused the service's call ({last.status} {why})")
            continue
        p = people[name]
        keyed = [k for k in p.legs if k in p.send_crypto]
        if not keyed:
            problems.append(f"{name} was admitted with no SRTP stream")
        streams += len(keyed)
    if problems:
        raise NonConformance("; ".join(problems))
    return Evidence.of(calls_answered=len(found), srtp_streams_admitted=streams)


def control_called(
    calls: dict[str, list[IncomingCall]], people: dict[str, Participant]
) -> Evidence:
    """A positive control: a member's request does make the service call, and the call is
    taken. If not, a user not called later shows nothing (a failed preamble: inconclusive)."""
    try:
        return called_and_admitted(calls, people)
    except NonConformance as exc:
        raise Inconclusive(
            f"control failed: the service's call was not taken ({exc}); that a later request "
            "makes it call no one would not show that it tells the two apart"
        ) from None


def service_authenticated(calls: dict[str, list[IncomingCall]], domain: str) -> Evidence:
    """R2: the service authenticated itself to the participants it called: each call came
    over TLS from a party whose certificate, verified against the target's CA in the
    handshake, names the service domain. A participant refuses any other caller (403)."""
    found = _calls_of(calls)
    problems = [f"{c.invitee}: {c.service_problem}" for c in found if c.service_problem]
    if problems:
        raise NonConformance("the service did not authenticate itself: " + "; ".join(problems))
    subjects = {
        ", ".join(c.flow.peer_identity.dns_names or c.flow.peer_identity.uris)
        for c in found
        if c.flow.peer_identity is not None
    }
    return Evidence.of(
        f"the service's certificate names {', '.join(sorted(subjects))}",
        calls_from_an_authenticated_service=len(found),
    )


def not_admitted_unprotected(
    calls: list[IncomingCall], invitee: Participant, refer: ReferOutcome | None, window_s: float
) -> Evidence:
    """R1: an invitee that answers only plain RTP is never in the conference unprotected.

    The control is that the service did call it (at least one INVITE reached it). Every offer
    the service made it must be SRTP only, it must not have been admitted by any of them, and
    nothing plain may have reached its legs."""
    if not calls:
        raise Inconclusive(f"the service never called {invitee.name}: nothing to judge")
    problems = []
    for i, c in enumerate(calls, 1):
        if c.offer is not None:
            for p in offer_problems(c.offer):
                problems.append(f"offer {i}: {p}")
        if c.admitted:
            problems.append(f"{invitee.name} was admitted by offer {i} without SRTP")
    plain = sum(s.plain for s in invitee.receive_stats().values())
    if plain:
        problems.append(f"{plain} plain RTP packets reached {invitee.name}")
    if problems:
        raise NonConformance(
            f"{invitee.name}, who answers only plain RTP, was offered or given unprotected "
            "media: " + "; ".join(problems)
        )
    final = refer.final() if refer is not None else None
    controls = [f"the service called {invitee.name} ({len(calls)} INVITE(s)), each refused 488"]
    if final is not None:
        controls.append(f"the referrer was told {final.request.body[:40]!r}")
    return Evidence.of(
        *controls,
        offers_judged=len(calls),
        plain_packets_received=0,
        seconds_watched=int(window_s),
    )


def refer_refused(out: ReferOutcome, calls: list[IncomingCall], window_s: float) -> Evidence:
    """R2: a REFER from a party that is not an authenticated member is refused (401/407 for a
    party without credentials, 403 for a non-member), and the user it named is not called
    while the suite listens."""
    if out.error is not None:
        raise Inconclusive(f"{out.referrer}'s REFER got no answer: {out.error}")
    problems = []
    if out.status is None or out.status < 300:
        problems.append(f"{out.referrer}'s REFER was accepted ({out.status} {out.reason})")
    if calls:
        problems.append(f"the service called {out.target_name} ({len(calls)} INVITE(s))")
    if problems:
        raise NonConformance("; ".join(problems))
    return Evidence.of(
        f"REFER refused with {out.status} {out.reason}",
        refer_requests_refused=1,
        calls_to_the_named_user=0,
        seconds_listened=max(1, int(window_s)),
    )


def progress_over_tls(out: ReferOutcome) -> Evidence:
    """R7: the REFER's progress (sipfrag NOTIFYs, RFC 3515 2.4.4) reached the referrer only over
    TLS, with a final status. None at all is inconclusive: nothing was seen to judge."""
    if not out.accepted:
        raise Inconclusive(f"the REFER was not accepted ({out.status} {out.reason} {out.error})")
    notes = out.progress()
    if not notes:
        raise Inconclusive("no NOTIFY of the REFER's progress reached the referrer")
    plain = [n for n in notes if not n.flow.secure]
    if plain:
        where = ", ".join(sorted({f"{n.flow.transport.upper()} {n.flow}" for n in plain}))
        raise NonConformance(
            f"{len(plain)} of {len(notes)} NOTIFYs of the REFER's progress travelled unprotected "
            f"({where}); they say who is being called and how it went"
        )
    final = out.final()
    if final is None:
        raise Inconclusive("the REFER's progress never reached a final status")
    return Evidence.of(
        f"final progress: SIP/2.0 {final.status}",
        notifies_over_tls=len(notes),
        plain_notifies=0,
    )
