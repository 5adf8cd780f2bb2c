"""Steps for R7 (O4, O7): the conference event package, subscriptions and their NOTIFYs.

Then-steps hand what their check observed to `observed`: a scenario cannot pass on no evidence.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import event_checks as ec
from confsec.behaviour import events as ev
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@pytest.fixture
def events(conf: ConferenceRun) -> Iterator[ev.EventRun]:
    run = ev.EventRun(conf)
    yield run
    run.close()


@when(parsers.parse("{name} subscribes to the conference state"))
def subscribes(events: ev.EventRun, name: str) -> None:
    events.subscribe(name)


@given(parsers.parse("{name} has subscribed to the conference state"))
def has_subscribed(events: ev.EventRun, name: str) -> None:
    sub = events.subscribe(name)
    ec.full_state_received(sub, sub.notifications())


@given(parsers.parse("{name} is subscribed to the conference state as a participant"))
def subscribed_as_control(events: ev.EventRun, name: str) -> None:
    """The positive control of a refusal: judged by the Then-step, as a control, not here."""
    events.subscribe(name)


@when(parsers.parse("{name} subscribes to the conference state with a Contact over plain UDP"))
def subscribes_plain_contact(events: ev.EventRun, name: str) -> None:
    events.subscribe(name, plain_contact=True)


@when(parsers.parse("{name} subscribes to the conference state without credentials"))
def subscribes_anonymous(events: ev.EventRun, name: str) -> None:
    events.subscribe(name, credentials="none")


@given(parsers.parse("{name}, claiming to be {claimed} in From, has tried to join the conference"))
def joined_claiming(events: ev.EventRun, name: str, claimed: str) -> None:
    # Admitted (under its own identity, judged below) or refused for the spoofed From: both
    # are compliant (O7); only an admission without SRTP is a finding here.
    ec.spoofed_join_settled(events.join_claiming(name, claimed), name, claimed)


@then(parsers.parse("{name} receives the full conference state"))
def receives_full(events: ev.EventRun, observed: Observe, name: str) -> None:
    sub = events.outcome(name)
    observed(ec.full_state_received(sub, events.await_notifications(name, bool)))


@then(parsers.parse("every NOTIFY {name} received travelled over TLS"))
def notify_tls(events: ev.EventRun, observed: Observe, name: str) -> None:
    sub = events.outcome(name)
    observed(ec.notifies_only_over_tls(sub, sub.notifications()))


@then(parsers.parse("{name} is notified of {joiner}'s join as a partial state"))
def notified(events: ev.EventRun, observed: Observe, name: str, joiner: str) -> None:
    notes, since = events.await_change(name, joiner)
    observed(ec.notified_of(events.outcome(name), notes, events.aor(joiner), since=since))


@then(
    parsers.parse(
        "{name} is refused the subscription and, listening for {seconds:g} s, "
        "receives no conference state"
    )
)
def no_state(events: ev.EventRun, observed: Observe, name: str, seconds: float) -> None:
    sub = events.listen(name, seconds)
    observed(ec.no_state_given(sub, events.others(name), window_s=seconds))


@then(
    parsers.parse(
        "the conference state {name} received shows every participant as who they authenticated as"
    )
)
def identities(events: ev.EventRun, observed: Observe, name: str) -> None:
    accounts = events.conf.target.accounts
    admitted = {n: accounts[n] for n in events.conf.participants if events.admitted(n)}
    observed(
        ec.identities_authenticated(
            events.outcome(name).view(), admitted, accounts, events.conf.target.domain
        )
    )
