"""Steps for claimed identities (R2, R7, R8): an authenticated non-member claims a member's.

Then-steps hand what their check observed to `observed`: a scenario cannot pass on no evidence.
The SUBSCRIBE probe's Then-step is the event package's own (steps/events.py).
"""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from confsec.behaviour import claim_checks as cc
from confsec.behaviour import claims as cl
from confsec.behaviour import events as ev
from confsec.behaviour import floor_binding as fb
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@given(
    parsers.parse("{name} has created a members-only secure conference whose members are {members}")
)
def created_members_only(conf: ConferenceRun, name: str, members: str) -> None:
    names = [m.strip() for m in members.replace(" and ", ",").split(",") if m.strip()]
    cc.members_only_created(cl.create_members_only(conf, name, names), name)


@when(parsers.parse("{name} joins the conference claiming to be {claimed} in {where}"))
def joins_claiming(conf: ConferenceRun, name: str, claimed: str, where: str) -> None:
    cl.join_claiming(conf, name, claimed, where)


@when(
    parsers.parse("{name} subscribes to the conference state claiming to be {claimed} in {where}")
)
def subscribes_claiming(events: ev.EventRun, name: str, claimed: str, where: str) -> None:
    cl.subscribe_claiming(events, name, claimed, where)


@when(
    parsers.parse(
        "{name}, who is not in the conference, opens a fresh floor control connection and sends "
        "a {message} with {other}'s user id first"
    )
)
def outsider_sends(firsts: fb.FirstMessages, name: str, message: str, other: str) -> None:
    cl.outsider_first(firsts, name, message, other)


@then(
    parsers.parse(
        "{name}, claiming to be {member} in {where}, is refused with 403 while the member was "
        "admitted with SRTP"
    )
)
def impostor_refused(
    conf: ConferenceRun, observed: Observe, name: str, member: str, where: str
) -> None:
    observed(cc.impostor_refused(conf.outcome(name), conf.outcome(member), name, member, where))


@then(
    parsers.parse(
        "the floor control server grants nothing to {name}'s first {message} with {other}'s user "
        "id and refuses it"
    )
)
def outsider_refused(firsts: fb.FirstMessages, observed: Observe, name: str, other: str) -> None:
    observed(cc.outsider_floor_refused(firsts.last(other), firsts.last(name, other)))
