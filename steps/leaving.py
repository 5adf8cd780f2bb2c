"""Steps for leaving and vanishing judged from the departed side (R6) and a leaver's
subscription (R7): see confsec.behaviour.leaving and leaving_checks."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import leaving_checks as lc
from confsec.behaviour.events import EventRun
from confsec.behaviour.leaving import Leaving, watch_subscription_end
from confsec.behaviour.membership import Membership
from confsec.behaviour.rekeying import held_keys
from confsec.observed import Observe

PRONOUN = r"(?:his|her|their)"


@pytest.fixture
def leaving(membership: Membership) -> Leaving:
    """The scenario's departures whose legs stay open to be watched."""
    return Leaving(membership)


@given(parsers.parse("the participants hear each other for {seconds:g} second"))
def hear_each_other(membership: Membership, seconds: float) -> None:
    """Media long enough for the tone controls taken before a departure."""
    membership.receive(seconds)


@when(parsers.re(rf"(?P<name>\w+) leaves the conference and keeps {PRONOUN} media legs open"))
def leaves_watched(leaving: Leaving, name: str) -> None:
    leaving.leave(name)


@when(parsers.re(rf"(?P<name>\w+) vanishes without a BYE and {PRONOUN} media legs are watched"))
def vanishes_watched(leaving: Leaving, name: str) -> None:
    leaving.vanish(name)


@when(parsers.re(r"(?P<name>\w+)'s legs and the others' are watched for (?P<s>[\d.]+) seconds?"))
def watched(leaving: Leaving, name: str, s: str) -> None:
    leaving.watch(name, float(s))


@then(parsers.re(rf"nothing reached (?P<name>\w+)'s media legs after {PRONOUN} (?:leave|BYE)"))
@then(parsers.re(r"nothing reached (?P<name>\w+)'s media legs once the declared time to notice .*"))
def nothing_reached(leaving: Leaving, observed: Observe, name: str) -> None:
    observed(lc.nothing_reaches_departed(leaving.departure(name)))


@then(parsers.re(rf"nothing (?P<name>\w+) sent after {PRONOUN} leave reached the others"))
def not_mixed(leaving: Leaving, observed: Observe, name: str) -> None:
    keys = held_keys(leaving.conf.ledger, name, "send")
    observed(lc.departed_not_mixed(leaving.departure(name), keys))


@then(
    parsers.re(
        r"(?P<name>\w+)'s subscription is terminated and, listening for (?P<s>[\d.]+) s after "
        r"(?P<joiner>\w+)'s join, nothing more reaches (?:him|her|them) on it"
    )
)
def subscription_terminated(
    events: EventRun, observed: Observe, name: str, s: str, joiner: str
) -> None:
    end = watch_subscription_end(events, name, joiner, float(s))
    observed(lc.subscription_ended(end, float(s)))
