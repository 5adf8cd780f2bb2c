"""Steps for R5 (group keys), R6 (rekeying on join and leave) and O2 (conference size)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import group_keys, rekeying
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.membership import Membership
from confsec.behaviour.participant import OfferSpec
from confsec.observed import Observe


@pytest.fixture
def membership(conf: ConferenceRun) -> Iterator[Membership]:
    """Joins, leaves and their timing for one scenario (see confsec.behaviour.membership)."""
    yield Membership(conf)  # conf's teardown stops media and leaves with BYE


@given(parsers.parse("a secure conference of {size:d} participants with the common stream"))
def conference_of_size(membership: Membership, size: int) -> None:
    membership.create_of_size(size, OfferSpec(common=True))


@given(parsers.parse("{names} are in a secure conference with every stream the target claims"))
def conference_of_claimed_streams(membership: Membership, conf: ConferenceRun, names: str) -> None:
    membership.create_named(_names(names), rekeying.claimed_offer(conf.target.capabilities))


@given("every participant keeps sending its tone")
def keeps_sending(membership: Membership) -> None:
    membership.start_media()
    membership.receive(0.5)


@when(parsers.re(r"(?P<name>\w+) joins the conference with the common stream"))
def joins(membership: Membership, name: str) -> None:
    membership.join(name, OfferSpec(common=True))


@when(parsers.re(r"(?P<name>\w+) joins the conference with every stream the target claims"))
def joins_claimed(membership: Membership, conf: ConferenceRun, name: str) -> None:
    membership.join(name, rekeying.claimed_offer(conf.target.capabilities))


@when("the last participant leaves the conference")
def last_leaves(membership: Membership) -> None:
    membership.leave(membership.remaining()[-1].name)


@when(parsers.re(r"(?P<name>\w+) leaves the conference"))
def leaves(membership: Membership, name: str) -> None:
    membership.leave(name)


@when(parsers.parse("{joins} join while {leaves} leave, in one burst"))
def burst(membership: Membership, conf: ConferenceRun, joins: str, leaves: str) -> None:
    """The joiners offer every stream the target claims, as everyone in the R6 conferences."""
    spec = rekeying.claimed_offer(conf.target.capabilities)
    membership.burst(_names(joins), _names(leaves), spec)


def _names(text: str) -> list[str]:
    """'dave and erin', 'alice, bob and carol' -> the names."""
    return [n.strip() for n in text.replace(" and ", ",").split(",") if n.strip()]


@when(parsers.parse("the remaining participants receive {seconds:g} second of media"))
@when(parsers.parse("the remaining participants receive {seconds:g} seconds of media"))
def receive(membership: Membership, seconds: float) -> None:
    membership.receive(seconds)


@then("no packet received after the leave authenticates under a key the leaver held")
def forward_last(membership: Membership, observed: Observe) -> None:
    observed(rekeying.forward_security(membership, membership.last("leave").name))


@then(parsers.parse("no packet received after {name} left authenticates under a key {_n} held"))
def forward(membership: Membership, observed: Observe, name: str) -> None:
    observed(rekeying.forward_security(membership, name))


@then(
    parsers.parse(
        "nothing received on the {medium} stream after {name} left authenticates under a key "
        "{_n} held"
    )
)
def forward_medium(membership: Membership, observed: Observe, medium: str, name: str) -> None:
    observed(rekeying.forward_security(membership, name, medium))


@then(
    parsers.parse(
        "nothing received on the {medium} stream before {name} joined authenticates under a key "
        "{_n} received"
    )
)
def backward_medium(membership: Membership, observed: Observe, medium: str, name: str) -> None:
    observed(rekeying.backward_security(membership, name, medium))


@then(
    parsers.parse("no packet received before {name} joined authenticates under a key {_n} received")
)
def backward(membership: Membership, observed: Observe, name: str) -> None:
    observed(rekeying.backward_security(membership, name))


@then("no master key or salt in the ledger repeats an earlier one")
def fresh(conf: ConferenceRun, observed: Observe) -> None:
    observed(rekeying.keys_fresh(conf.ledger))


@then(parsers.parse("no master key or salt of the {medium} stream repeats an earlier one"))
def fresh_medium(membership: Membership, observed: Observe, medium: str) -> None:
    observed(rekeying.fresh_keys_in_use(membership, medium))


@then(
    parsers.parse(
        "the {medium} stream of every remaining participant was rekeyed after {name}'s {kind}"
    )
)
def complete_medium(
    membership: Membership,
    request: pytest.FixtureRequest,
    observed: Observe,
    medium: str,
    name: str,
    kind: str,
) -> None:
    _complete(membership, request, observed, kind, name, medium)


@then(parsers.parse("every stream of the remaining participants was rekeyed after the {kind}"))
def complete_last(
    membership: Membership, request: pytest.FixtureRequest, observed: Observe, kind: str
) -> None:
    _complete(membership, request, observed, kind, membership.last(kind).name)


@then(parsers.parse("every stream of the remaining participants was rekeyed after {name}'s {kind}"))
def complete(
    membership: Membership, request: pytest.FixtureRequest, observed: Observe, name: str, kind: str
) -> None:
    _complete(membership, request, observed, kind, name)


def _complete(
    membership: Membership,
    request: pytest.FixtureRequest,
    observed: Observe,
    kind: str,
    name: str,
    medium: str | None = None,
) -> None:
    try:
        observed(rekeying.rekeyed_completely(membership, kind, name, medium))
    finally:
        _record_lateness(membership, request)
    summary = rekeying.latency_summary(membership.latencies)
    request.node.user_properties.append(("rekey_latency", summary))


def _record_lateness(membership: Membership, request: pytest.FixtureRequest) -> None:
    """The suite's own punctuality in the judged window goes with the verdict, pass or not."""
    if membership.lateness is not None:
        request.node.user_properties.append(("suite_lateness", membership.lateness.numbers()))


@then("every remaining participant received media under new keys within the declared bound")
def within_declared(membership: Membership, observed: Observe) -> None:
    observed(rekeying.rekey_within_declared(membership))


@then("every participant decrypts the common stream and hears everyone in it")
def common_decrypted(conf: ConferenceRun, observed: Observe) -> None:
    observed(group_keys.common_stream_decrypted(list(conf.participants.values())))


@then("every participant holds the same group key")
def same_group_key(conf: ConferenceRun, observed: Observe) -> None:
    observed(group_keys.same_group_key(list(conf.participants.values())))


@then("the common stream's key shares nothing with any other stream in the ledger")
def group_key_distinct(conf: ConferenceRun, observed: Observe) -> None:
    observed(group_keys.group_key_distinct(conf.ledger))


@when(parsers.parse("{name} invites the conference URI {how}"), target_fixture="attempt")
def non_member(conf: ConferenceRun, name: str, how: str) -> group_keys.NonMemberAttempt:
    credentials = "none" if how == "without credentials" else "wrong"
    return group_keys.try_as_non_member(conf, name, credentials)


@then(parsers.parse("{name} receives nothing keyed"))
def nothing_keyed(attempt: group_keys.NonMemberAttempt, observed: Observe) -> None:
    observed(group_keys.non_member_got_nothing(attempt))
