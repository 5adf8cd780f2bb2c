"""Steps for keys staying in their holders' SDP answers (R3, R5, O4).

Then-steps hand what their check observed to `observed`: a scenario cannot pass on no evidence.
"""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import key_leaks as kl
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.events import EventRun
from confsec.behaviour.floor import FloorRun
from confsec.behaviour.key_confinement import KeyConfinement
from confsec.behaviour.participant import OfferSpec
from confsec.observed import Observe


@pytest.fixture
def confinement(conf: ConferenceRun, events: EventRun, floor: FloorRun) -> KeyConfinement:
    return KeyConfinement(conf, events, floor)


@given(
    parsers.parse(
        "{name} is subscribed to the conference state, where the target claims the event package"
    )
)
def subscribed_where_claimed(confinement: KeyConfinement, name: str) -> None:
    confinement.subscribe(name)


@given(parsers.parse("the participants have exchanged media for {seconds:g} second"))
def exchanged_media(conf: ConferenceRun, seconds: float) -> None:
    conf.exchange_media(seconds)


@given(
    parsers.parse(
        "{name} has joined with floor control over TLS, where the target claims floor control"
    )
)
def joined_with_floor(confinement: KeyConfinement, name: str) -> None:
    confinement.join_with_floor(name)


@given(parsers.parse("{name} has joined with the common stream and the others have been rekeyed"))
def joined_rekeying(confinement: KeyConfinement, name: str) -> None:
    confinement.join_rekeying(name)


@given(
    parsers.parse(
        "{name} has requested the floor and released it, where the target claims floor control"
    )
)
def requested_floor(confinement: KeyConfinement, name: str) -> None:
    confinement.request_floor(name)


@given(parsers.parse("{name} has been refused a join with a plain RTP offer"))
def refused_plain(conf: ConferenceRun, name: str) -> None:
    conf.join(name, OfferSpec(secure=False))


@given(parsers.parse("{name} has invited the conference without credentials"))
def invited_anonymously(conf: ConferenceRun, name: str) -> None:
    conf.join(name, OfferSpec(common=True), credentials="none")


@given("every plain listener the target declares has been sent an OPTIONS and a SUBSCRIBE")
def listeners_probed(confinement: KeyConfinement) -> None:
    confinement.probe_listeners()


@when("everything the service sent is searched for every media key of the conference")
def searched(confinement: KeyConfinement) -> None:
    confinement.search()


@then("no unicast media key was found anywhere but in its holder's SDP answers over TLS")
def unicast_confined(confinement: KeyConfinement, observed: Observe) -> None:
    observed(kl.unicast_keys_confined(confinement.scanned()))


@then("no group key was found anywhere but in its holders' SDP answers over TLS")
def group_confined(confinement: KeyConfinement, observed: Observe) -> None:
    observed(kl.group_keys_confined(confinement.scanned()))


@then("no NOTIFY of the conference event package carried a media key")
def notify_keyless(confinement: KeyConfinement, observed: Observe) -> None:
    observed(kl.event_package_keyless(confinement.scanned()))
