"""Steps for R7 (O4, O7): the conference event package, subscriptions and their NOTIFYs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import checks
from confsec.behaviour import events as ev
from confsec.behaviour.conference import ConferenceRun


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
    ev.full_state_received(sub, sub.notifications())


@when(parsers.parse("{name} subscribes to the conference state with a Contact over plain UDP"))
def subscribes_plain_contact(events: ev.EventRun, name: str) -> None:
    events.subscribe(name, plain_contact=True)


@when(parsers.parse("{name} subscribes to the conference state without credentials"))
def subscribes_anonymous(events: ev.EventRun, name: str) -> None:
    events.subscribe(name, credentials="none")


@given(parsers.parse("{name}, claiming to be {claimed} in From, has joined the conference"))
def joined_claiming(events: ev.EventRun, name: str, claimed: str) -> None:
    checks.admitted_secure(events.join_claiming(name, claimed), name)


@then(parsers.parse("{name} receives the full conference state"))
def receives_full(events: ev.EventRun, name: str) -> None:
    sub = events.outcome(name)
    ev.full_state_received(sub, events.await_notifications(name, bool))


@then(parsers.parse("every NOTIFY {name} received travelled over TLS"))
def notify_tls(events: ev.EventRun, name: str) -> None:
    sub = events.outcome(name)
    ev.notifies_only_over_tls(sub, sub.notifications())


@then(parsers.parse("{name} is notified that {joiner} joined"))
def notified(events: ev.EventRun, name: str, joiner: str) -> None:
    aor = events.conf.target.account(joiner).aor(events.conf.target.domain)
    notes = events.await_notifications(name, lambda ns: ev.lists_after_first(ns, aor))
    ev.notified_of(events.outcome(name), notes, aor)


@then(parsers.parse("{name} is refused the subscription and receives no conference state"))
def no_state(events: ev.EventRun, name: str) -> None:
    ev.no_state_given(events.outcome(name))


@then(
    parsers.parse(
        "the conference state {name} received shows every participant as who they authenticated as"
    )
)
def identities(events: ev.EventRun, name: str) -> None:
    accounts = events.conf.target.accounts
    admitted = {n: accounts[n] for n in events.conf.participants}
    ev.identities_authenticated(
        events.outcome(name).view(), admitted, accounts, events.conf.target.domain
    )
