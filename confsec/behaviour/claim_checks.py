"""Checks that authorisation rests on the authenticated identity, not a claimed one (R2, R8).

Each judges what `confsec.behaviour.claims` observed, beside its positive control: the member
whose identity the impostor claimed was itself admitted, or served, by the same service in the
same scenario. A service that refuses everyone therefore gets inconclusive, never a pass. (The
SUBSCRIBE probes of R7 are judged by `event_checks.no_state_given`, whose control is the
claimed participant's own subscription.)
"""

from __future__ import annotations

from confsec.behaviour import checks
from confsec.behaviour import floor_checks as fc
from confsec.behaviour.floor_binding import FirstMessage
from confsec.behaviour.outcomes import CallOutcome
from confsec.errors import Inconclusive, NonConformance
from confsec.observed import Evidence

__all__ = [
    "AUTHORISATION_REFUSALS",
    "impostor_refused",
    "members_only_created",
    "outsider_floor_refused",
]

AUTHORISATION_REFUSALS = frozenset({403, 603})
"""What refuses a request for who sent it (RFC 3261 21.4.4 403 Forbidden, 21.6.2 603 Decline):
authenticating again will not help. A 401/407 would say the credentials were not accepted."""


def members_only_created(outcome: CallOutcome | None, creator: str) -> Evidence:
    """The precondition of the members-only checks: the creation INVITE with its RFC 5366
    recipient list was admitted with SRTP. A target that claims restricted membership and
    refuses it leaves nothing to judge (inconclusive, with its answer)."""
    return checks.control_admitted(
        outcome, creator, "the creation of a members-only conference (RFC 5366 recipient list)"
    )


def impostor_refused(
    impostor: CallOutcome | None,
    member: CallOutcome | None,
    name: str,
    claimed: str,
    where: str,
) -> Evidence:
    """R2: `name`, authenticated but not a member of a members-only conference, claiming to be
    the member `claimed` in `where`, is refused with 403 (or 603); admitted, it is a fail.

    The control is `claimed`'s own join, admitted with SRTP: the service does admit that
    member, so refusing the impostor shows it told who authenticated from who was named."""
    control = checks.control_admitted(member, claimed, f"{claimed}'s own join as a member")
    what = f"{name}'s join claiming to be {claimed} in {where}"
    if impostor is None or impostor.status is None:
        why = impostor.error if impostor is not None else "no request was sent"
        raise Inconclusive(f"{what} got no final answer: {why}")
    if impostor.admitted:
        raise NonConformance(
            f"{what} was admitted ({impostor.status} {impostor.reason}): {name} authenticated as "
            f"{name} and is not a member; the service authorised what the request claimed"
        )
    if impostor.status not in AUTHORISATION_REFUSALS:
        raise Inconclusive(
            f"{what} was refused with {impostor.status} {impostor.reason}, not 403: the "
            "refusal may have another cause than membership"
        )
    return control + Evidence.of(non_members_refused=1)


def outsider_floor_refused(control: FirstMessage | None, probe: FirstMessage | None) -> Evidence:
    """R8/O5: a user in no floor session of the conference (valid certificate from the
    service's CA, no offer naming it) that opens a fresh floor control connection and sends a
    first message under a participant's user id is refused (an Error or a close) and granted
    nothing. The control is that participant's own first message on a fresh connection,
    answered, before the probe (`floor_checks.first_foreign_refused` judges both)."""
    if probe is None:
        raise Inconclusive("no first message was sent from outside the conference")
    if probe.offered is not None:
        raise Inconclusive(f"{probe.sender} made an offer: it is not outside the conference")
    if control is None or control.sender != probe.claimed:
        raise Inconclusive(
            f"{probe.claimed}'s own first {probe.primitive} must stand as the control of "
            f"{probe.sender}'s, and none was sent"
        )
    return fc.first_foreign_refused(control, probe) + Evidence.of(
        first_messages_from_outside_the_conference=1
    )
