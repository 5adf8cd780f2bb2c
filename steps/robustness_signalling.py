"""Steps for the signalling robustness probes: malformed SIP and SDP, oversized requests and
unknown crypto suites, each followed by a look at the conference that was running.

The request or offer in a step's text is parsed by the grammar of `confsec.behaviour.crafted`
(pytest-bdd `converters`), so the step receives a typed value and a wording outside the grammar
fails the scenario with the list of accepted forms. The conversion runs after the step matched:
a type in the pattern itself would turn a bad wording into "step not found" instead."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import checks
from confsec.behaviour import malformed as mf
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.crafted import CraftedOffer, MalformedRequest, parse_offer, parse_request
from confsec.behaviour.participant import OfferSpec
from confsec.observed import Observe


@pytest.fixture
def probes(conf: ConferenceRun) -> mf.SignallingProbes:
    return mf.SignallingProbes(conf)


@when(
    parsers.re(
        r"(?P<name>\w+) sends (?P<malformed>.+) to the service over (?:her|his) own TLS connection"
    ),
    converters={"malformed": parse_request},
)
def sends_malformed(
    probes: mf.SignallingProbes,
    request: pytest.FixtureRequest,
    name: str,
    malformed: MalformedRequest,
) -> None:
    probe = probes.send_request(name, malformed)
    request.node.user_properties.append(("malformed_request", mf.measurements(probe)))


@when(
    parsers.parse("{name} joins the conference with an offer that has {offer}"),
    converters={"offer": parse_offer},
)
def joins_with_crafted_offer(probes: mf.SignallingProbes, name: str, offer: CraftedOffer) -> None:
    probes.join_with_offer(name, offer)


@then(parsers.re(r"the service did not accept (?P<name>\w+)'s (?:malformed|oversized) request"))
def not_accepted(probes: mf.SignallingProbes, observed: Observe, name: str) -> None:
    observed(mf.malformed_not_accepted(probes.raw))


@given(parsers.parse("{first} and {second} hear each other's tones over protected media"))
def baseline(probes: mf.SignallingProbes, first: str, second: str) -> None:
    probes.baseline([first, second])


@then(parsers.parse("{first} and {second} still hear each other's tones over protected media"))
def still_hear(
    probes: mf.SignallingProbes, conf: ConferenceRun, observed: Observe, first: str, second: str
) -> None:
    group = [conf.participant(first), conf.participant(second)]
    observed(mf.conference_went_on(group, probes.cause, probes.baseline_ok, probes.before))


@then(parsers.parse("{name} can still join the conference"))
def can_still_join(conf: ConferenceRun, observed: Observe, name: str) -> None:
    observed(checks.admitted_secure(conf.join(name, OfferSpec()), name))


@then(parsers.parse("the answer to {name} selects the {suite} key offered with tag {tag:d}"))
def selects_offered(
    conf: ConferenceRun, observed: Observe, name: str, suite: str, tag: int
) -> None:
    observed(mf.admitted_with_offered_suite(conf.outcome(name), name, suite, tag))
